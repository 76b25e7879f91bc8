//! G.711 µ-law, the telephony codec (8 kHz, one byte per sample; Twilio media streams carry
//! it base64-encoded).

const BIAS: i32 = 0x84;
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

#[cfg(test)]
mod tests {
    use super::*;

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
