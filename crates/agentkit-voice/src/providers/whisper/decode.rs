//! Greedy decoding of one 30-second window, after candle's Whisper example and OpenAI's
//! `DecodingTask` without timestamps: the prompt is `<|startoftranscript|><|notimestamps|>`
//! (an English-only model takes no language or task token), each step feeds every token so
//! far and takes the most likely next one, the configured tokens are suppressed (and a blank
//! or the end of text as the first token), and decoding stops at `<|endoftext|>` or after the
//! token budget. A window the model thinks holds no speech (`<|nocaptions|>` likely at the
//! start and a low average log-probability) yields no text, as in Whisper's own transcribe.

use candle_core::{Device, IndexOp, Result, Tensor};
use candle_transformers::models::whisper::{self as m, audio, model::Whisper};

/// Whisper's thresholds for calling a window silence.
const NO_SPEECH_THRESHOLD: f64 = 0.6;
const LOGPROB_THRESHOLD: f64 = -1.0;

/// The special tokens decoding needs.
#[derive(Debug, Clone)]
pub(crate) struct Special {
    pub(crate) sot: u32,
    pub(crate) no_timestamps: u32,
    pub(crate) eot: u32,
    pub(crate) no_speech: u32,
}

/// What one window decoded to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Segment {
    /// The text tokens (no prompt, no end of text).
    pub(crate) tokens: Vec<u32>,
    /// The sum of the chosen tokens' log-probabilities, end of text included.
    pub(crate) sum_logprob: f64,
    /// How many tokens that sum covers.
    pub(crate) scored: usize,
    /// The probability of `<|nocaptions|>` right after the start token.
    pub(crate) no_speech_prob: f64,
}

impl Segment {
    /// The mean log-probability of the chosen tokens.
    pub(crate) fn avg_logprob(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            self.sum_logprob / self.scored as f64
        }
    }

    /// Whether Whisper would skip this window as silence.
    pub(crate) fn is_silence(&self) -> bool {
        self.no_speech_prob > NO_SPEECH_THRESHOLD && self.avg_logprob() < LOGPROB_THRESHOLD
    }
}

/// What stays the same for every window.
#[derive(Debug, Clone)]
pub(crate) struct Decoding {
    pub(crate) special: Special,
    /// Never produced (`suppress_ids` and every token after `<|notimestamps|>`).
    pub(crate) suppress: Vec<u32>,
    /// Not produced as the first token (`suppress_ids_begin`).
    pub(crate) suppress_begin: Vec<u32>,
    /// The most tokens one window may produce.
    pub(crate) max_tokens: usize,
    /// The mel filter bank (`n_mels` × 201), adjusted for candle ([`super::mel::for_candle`]).
    pub(crate) filters: Vec<f32>,
}

/// The 16 kHz samples cut into 30-second windows (a last window shorter than 100 ms, too
/// short to hold a word, is dropped).
pub(crate) fn windows(samples: &[f32]) -> impl Iterator<Item = &[f32]> {
    samples
        .chunks(m::N_SAMPLES)
        .enumerate()
        .filter(|(i, chunk)| *i == 0 || chunk.len() >= m::SAMPLE_RATE / 10)
        .map(|(_, chunk)| chunk)
}

/// The log-mel spectrogram of one window (at most 30 s of 16 kHz samples), padded with
/// silence to 30 s: a `(1, n_mels, 3000)` tensor.
pub(crate) fn window_mel(
    config: &m::Config,
    window: &[f32],
    filters: &[f32],
    device: &Device,
) -> Result<Tensor> {
    let mel = audio::pcm_to_mel(config, &super::mel::centre(window, m::N_FFT), filters);
    let n_mels = config.num_mel_bins;
    let frames = mel.len() / n_mels;
    let mel = Tensor::from_vec(mel, (1, n_mels, frames), device)?;
    if frames >= m::N_FRAMES {
        mel.narrow(2, 0, m::N_FRAMES)
    } else {
        mel.pad_with_zeros(2, 0, m::N_FRAMES - frames)
    }
}

/// `log(Σ exp(x))`, stably.
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::from(max);
    }
    let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
    f64::from(max) + sum.ln()
}

/// The index of the largest value (the first on ties).
fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

impl Decoding {
    /// Decodes one window's mel spectrogram `(1, n_mels, 3000)`.
    pub(crate) fn decode(&self, model: &mut Whisper, mel: &Tensor) -> Result<Segment> {
        let audio_features = model.encoder.forward(mel, true)?;
        let s = &self.special;
        let mut tokens = vec![s.sot, s.no_timestamps];
        let prompt = tokens.len();
        let limit = self
            .max_tokens
            .min(model.config.max_target_positions.saturating_sub(prompt + 1));
        let mut segment = Segment::default();
        for step in 0..limit {
            let input = Tensor::new(tokens.as_slice(), mel.device())?.unsqueeze(0)?;
            // The cross-attention keys and values are computed at the first step and reused.
            let ys = model.decoder.forward(&input, &audio_features, step == 0)?;
            if step == 0 {
                let at_sot: Vec<f32> = model
                    .decoder
                    .final_linear(&ys.i((..1, ..1))?)?
                    .flatten_all()?
                    .to_vec1()?;
                let no_speech = at_sot
                    .get(s.no_speech as usize)
                    .copied()
                    .unwrap_or(f32::NEG_INFINITY);
                segment.no_speech_prob = (f64::from(no_speech) - log_sum_exp(&at_sot)).exp();
            }
            let seq_len = ys.dim(1)?;
            let mut logits: Vec<f32> = model
                .decoder
                .final_linear(&ys.i((..1, seq_len - 1..))?)?
                .flatten_all()?
                .to_vec1()?;
            let begin = if step == 0 {
                self.suppress_begin.as_slice()
            } else {
                &[]
            };
            for &id in self.suppress.iter().chain(begin) {
                if let Some(logit) = logits.get_mut(id as usize) {
                    *logit = f32::NEG_INFINITY;
                }
            }
            let Some(next) = argmax(&logits) else { break };
            let logprob = f64::from(logits[next]) - log_sum_exp(&logits);
            if logprob.is_finite() {
                segment.sum_logprob += logprob;
                segment.scored += 1;
            }
            let next = u32::try_from(next).map_err(candle_core::Error::wrap)?;
            if next == s.eot {
                break;
            }
            tokens.push(next);
        }
        segment.tokens = tokens.split_off(prompt);
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_matches_softmax() {
        let logits = [1.0f32, 2.0, 3.0, f32::NEG_INFINITY];
        let t = Tensor::new(&logits, &Device::Cpu).expect("tensor");
        let p: Vec<f32> = candle_nn::ops::softmax(&t, candle_core::D::Minus1)
            .expect("softmax")
            .to_vec1()
            .expect("vec");
        let lse = log_sum_exp(&logits);
        for (x, p) in logits.iter().zip(p) {
            assert!(((f64::from(*x) - lse).exp() - f64::from(p)).abs() < 1e-6);
        }
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY]), f64::NEG_INFINITY);
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn windows_are_thirty_seconds() {
        let samples = vec![0f32; m::N_SAMPLES * 2 + m::SAMPLE_RATE * 5];
        let lens: Vec<usize> = windows(&samples).map(<[f32]>::len).collect();
        assert_eq!(lens, [m::N_SAMPLES, m::N_SAMPLES, m::SAMPLE_RATE * 5]);
        // A 10 ms tail is dropped; a short clip is one window.
        let samples = vec![0f32; m::N_SAMPLES + 160];
        assert_eq!(windows(&samples).count(), 1);
        assert_eq!(windows(&samples[..1600]).count(), 1);
    }

    #[test]
    fn silence_needs_both_signals() {
        let mut s = Segment {
            tokens: vec![1],
            sum_logprob: -3.0,
            scored: 2,
            no_speech_prob: 0.9,
        };
        assert!(s.is_silence());
        s.sum_logprob = -0.2;
        assert!(!s.is_silence(), "confident text is kept");
        s.sum_logprob = -3.0;
        s.no_speech_prob = 0.1;
        assert!(!s.is_silence());
    }
}
