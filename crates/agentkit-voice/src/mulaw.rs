//! G.711 µ-law, the telephony codec (8 kHz, one byte per sample; Twilio media streams carry
//! it base64-encoded).

use agentkit_core::{Error, Result};

use crate::audio::{AudioClip, AudioFormat, AudioFrame};

const BIAS: i32 = 0x84;

/// The µ-law code of silence (PCM 0): what pads a short telephony chunk.
pub const SILENCE: u8 = 0xFF;
const CLIP: i32 = 32_635;

/// Encodes one PCM16 sample to µ-law.
pub fn encode_sample(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    // The segment: the position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law byte to PCM16.
pub fn decode_sample(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes PCM16 samples to µ-law bytes.
pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode_sample(s)).collect()
}

/// Decodes µ-law bytes to PCM16 samples.
pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode_sample(b)).collect()
}

/// Decodes µ-law bytes to a frame of 8 kHz mono PCM16 ([`AudioFormat::TELEPHONY`]), one
/// sample per byte.
pub fn decode_frame(bytes: &[u8]) -> AudioFrame {
    AudioClip {
        format: AudioFormat::TELEPHONY,
        samples: decode(bytes),
    }
    .to_frame()
}

/// Encodes a mono frame to µ-law bytes (G.711 is 8 kHz: resample first, for example with a
/// [`transport::AudioConverter`](crate::transport::AudioConverter)); a frame of more than one
/// channel is an [`Error::InvalidInput`].
pub fn encode_frame(frame: &AudioFrame) -> Result<Vec<u8>> {
    if frame.format().channels != 1 {
        return Err(Error::InvalidInput(format!(
            "µ-law carries mono audio, not {}",
            frame.format()
        )));
    }
    Ok(encode(frame.samples()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stereo_is_refused() {
        let frame = decode_frame(&[0x80, SILENCE, 0x00]);
        assert_eq!(frame.format(), AudioFormat::TELEPHONY);
        assert_eq!(frame.samples(), &[32_124, 0, -32_124]);
        assert_eq!(
            encode_frame(&frame).expect("mono"),
            vec![0x80, SILENCE, 0x00]
        );
        let stereo = AudioFrame::new(
            AudioFormat {
                sample_rate: 8_000,
                channels: 2,
            },
            vec![0i16; 4],
        )
        .expect("frame");
        assert!(encode_frame(&stereo).is_err());
    }

    #[test]
    fn known_codes() {
        // ITU-T G.711 reference points.
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(-1), 0x7F);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x80), 32_124);
        assert_eq!(decode_sample(0x00), -32_124);
    }

    #[test]
    fn every_code_round_trips_and_error_is_bounded() {
        for b in 0..=255u8 {
            let s = decode_sample(b);
            // 0x7F and 0xFF both decode to 0; everything else is exact.
            if b != 0x7F {
                assert_eq!(encode_sample(s), b, "code {b:#04x}");
            }
        }
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = i32::from(decode_sample(encode_sample(s)));
            let err = (back - i32::from(s)).abs();
            // The quantisation step grows with the level: at most 1/16 of the value + bias.
            assert!(
                err <= (i32::from(s).abs() / 16).max(8) + 132,
                "{s} -> {back}"
            );
        }
    }
}
