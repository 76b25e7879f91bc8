//! The mel filter bank Whisper's log-mel spectrogram uses: librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)`, that is the Slaney mel scale (linear below
//! 1 kHz, logarithmic above) with Slaney normalisation (each triangle scaled to unit area),
//! computed here rather than shipped as a data file.
//!
//! candle's `pcm_to_mel` (a port of whisper.cpp's) differs from OpenAI's `log_mel_spectrogram`
//! in two ways that cost accuracy on short clips, both undone here: its frames are not centred
//! ([`centre`] adds the 200 reflected samples `torch.stft(center=True)` puts in front), and it
//! doubles the power of every bin but DC and Nyquist ([`for_candle`] halves those filter
//! weights). With both, its spectrogram is OpenAI's.

/// The sample rate Whisper hears.
pub(crate) const SAMPLE_RATE: u32 = 16_000;
/// The FFT length (25 ms).
pub(crate) const N_FFT: usize = 400;

/// Slaney's scale: linear (200/3 Hz per mel) up to 1 kHz, then logarithmic.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// `n_mels` triangular filters over the `n_fft / 2 + 1` FFT bins of audio at `sample_rate`,
/// row-major (`n_mels` rows of `n_fft / 2 + 1`), from 0 Hz to the Nyquist frequency.
pub(crate) fn filters(n_mels: usize, n_fft: usize, sample_rate: u32) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|k| nyquist * k as f64 / (bins - 1).max(1) as f64)
        .collect();
    let top = hz_to_mel(nyquist);
    let points = n_mels + 2;
    let mel_freqs: Vec<f64> = (0..points)
        .map(|i| mel_to_hz(top * i as f64 / (points - 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            let w = lower.min(upper).max(0.0);
            weights[m * bins + k] = (w * norm) as f32;
        }
    }
    weights
}

/// `filters` (`n_fft / 2 + 1` columns) with the weights of the bins candle's spectrogram
/// doubles (all but the first and the last) halved.
pub(crate) fn for_candle(mut filters: Vec<f32>, n_fft: usize) -> Vec<f32> {
    let bins = n_fft / 2 + 1;
    for row in filters.chunks_mut(bins) {
        let last = row.len().saturating_sub(1);
        for w in row.iter_mut().take(last).skip(1) {
            *w *= 0.5;
        }
    }
    filters
}

/// `samples` with `n_fft / 2` samples reflected in front (`[x₂₀₀ … x₁] x₀ x₁ …`), so that
/// frame `i` of an uncentred STFT is centred on sample `160 i`, as with
/// `torch.stft(center=True)`. Samples past the end count as zeros (the audio is padded with
/// silence anyway).
pub(crate) fn centre(samples: &[f32], n_fft: usize) -> Vec<f32> {
    let pad = n_fft / 2;
    let mut out = Vec::with_capacity(samples.len() + pad);
    out.extend(
        (1..=pad)
            .rev()
            .map(|i| samples.get(i).copied().unwrap_or(0.0)),
    );
    out.extend_from_slice(samples);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librosa's (and so Whisper's `mel_filters.npz`) 80 × 201 bank, as little-endian f32.
    const REFERENCE: &[u8] = include_bytes!("../../../tests/fixtures/mel_filters_80x201_f32le.bin");

    #[test]
    fn matches_the_librosa_reference() {
        let reference: Vec<f32> = REFERENCE
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours = filters(80, N_FFT, SAMPLE_RATE);
        assert_eq!(ours.len(), reference.len());
        assert_eq!(ours.len(), 80 * 201);
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let peak = reference.iter().copied().fold(0f32, f32::max);
        assert!(
            worst <= peak * 1e-5,
            "worst difference {worst} (peak {peak})"
        );
        // Every filter covers something.
        for row in ours.chunks(201) {
            assert!(row.iter().any(|&w| w > 0.0));
        }
    }

    #[test]
    fn candle_adjustments() {
        let f = for_candle(vec![1.0; 2 * 201], N_FFT);
        for row in f.chunks(201) {
            assert_eq!((row[0], row[1], row[199], row[200]), (1.0, 0.5, 0.5, 1.0));
        }
        assert_eq!(
            centre(&[1.0, 2.0, 3.0, 4.0], 6),
            [4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(centre(&[1.0, 2.0], 4), [0.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn the_scale_round_trips() {
        for hz in [0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }
}
