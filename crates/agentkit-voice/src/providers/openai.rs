//! OpenAI audio: batch transcription ([`OpenAiStt`], `POST /audio/transcriptions`) and speech
//! ([`OpenAiTts`], `POST /audio/speech`), also against any server that speaks the same API
//! (`openai_compatible` with a `base_url`).
//!
//! Both go through the shared provider HTTP plumbing ([`agentkit_providers::http::Http`]), so
//! failures are typed like those of the chat providers (401 → [`Error::Unauthenticated`], 429 →
//! [`Error::RateLimited`] with the server's `retry-after`, 5xx → [`Error::Server`], an
//! unreadable answer → [`Error::MalformedResponse`]) and the API key never appears in `Debug`
//! output or error messages. Neither API streams here: [`SpeechToText::stream`] and
//! [`TextToSpeech::stream`] use the buffered adapters ([`stt::buffered_stream`],
//! [`tts::buffered_stream`]).

use std::sync::Arc;

use agentkit_core::{Error, Result};
use agentkit_providers::http::{Auth, Http};
use agentkit_providers::{ProviderConfig, ProviderKind};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audio::{AudioClip, AudioFormat};
use crate::stt::{self, SpeechToText, SttOptions, SttStream, Transcript};
use crate::tts::{self, TextToSpeech, TtsOptions, TtsStream};

/// The transcription model used when neither the config nor the options name one.
pub const DEFAULT_STT_MODEL: &str = "gpt-4o-mini-transcribe";
/// The speech model used when neither the config nor the options name one.
pub const DEFAULT_TTS_MODEL: &str = "gpt-4o-mini-tts";
/// The voice used when the options name none.
pub const DEFAULT_VOICE: &str = "alloy";
/// The format of the `pcm` speech OpenAI returns: raw 16-bit little-endian samples, 24 kHz
/// mono, no header.
pub const PCM_FORMAT: AudioFormat = AudioFormat::mono(24_000);

/// The speaking rates `/audio/speech` accepts.
const SPEED_RANGE: std::ops::RangeInclusive<f32> = 0.25..=4.0;

/// The HTTP client, the provider's name and its default model, for a config of kind `openai`
/// or `openai_compatible`.
fn connect(config: &ProviderConfig, what: &str, default_model: &str) -> Result<Inner> {
    match config.provider {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {}
        other => {
            return Err(Error::InvalidConfig(format!(
                "{what} speaks `openai` or `openai_compatible`, not `{other}`"
            )));
        }
    }
    let key = config.resolved_api_key()?;
    let model = match config.model.trim() {
        "" => default_model.to_owned(),
        m => m.to_owned(),
    };
    Ok(Inner {
        http: Http::new(config, Auth::Bearer, key, &[])?,
        name: config.provider_name().to_owned(),
        model,
    })
}

#[derive(Debug)]
struct Inner {
    http: Http,
    name: String,
    model: String,
}

/// OpenAI speech-to-text: one `POST /audio/transcriptions` per clip (the clip sent as a WAV
/// file, the answer read as `{"text": ...}`).
///
/// The config's `model` is the transcription model (`gpt-4o-mini-transcribe`,
/// `gpt-4o-transcribe`, `whisper-1`; empty means [`DEFAULT_STT_MODEL`]); [`SttOptions::model`]
/// overrides it per call. [`SttOptions::language`] is sent as its ISO 639-1 code (`en-US` →
/// `en`). Streaming buffers the audio and transcribes it at each finalize
/// ([`stt::buffered_stream`]). Cloning is cheap (the client is shared).
///
/// ```no_run
/// # async fn demo() -> agentkit_core::Result<()> {
/// use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind};
/// use agentkit_voice::providers::openai::OpenAiStt;
/// use agentkit_voice::{AudioClip, SpeechToText, SttOptions};
///
/// let stt = OpenAiStt::from_config(
///     &ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini-transcribe")
///         .with_api_key(KeyRef::env("OPENAI_API_KEY")),
/// )?;
/// let clip = AudioClip::read_wav("question.wav")?;
/// let transcript = stt.transcribe(&clip, &SttOptions::default().with_language("en")).await?;
/// println!("{}", transcript.text);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiStt {
    inner: Arc<Inner>,
}

impl OpenAiStt {
    /// A transcriber from a config of kind `openai` or `openai_compatible` (with `base_url`).
    ///
    /// A config of another kind, a missing key (OpenAI reads `OPENAI_API_KEY` when the config
    /// has none) or an invalid `base_url` is an [`Error::InvalidConfig`].
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(connect(config, "OpenAiStt", DEFAULT_STT_MODEL)?),
        })
    }

    /// The model used when the options name none.
    pub fn model(&self) -> &str {
        &self.inner.model
    }
}

#[derive(Deserialize)]
struct TranscriptionResponse {
    text: String,
}

/// The ISO 639-1 part of a BCP-47 tag (`en-US` → `en`), which is what the API takes.
fn iso_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
    (!primary.is_empty()).then(|| primary.to_ascii_lowercase())
}

#[async_trait]
impl SpeechToText for OpenAiStt {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Transcribes `audio` (sent as a 16-bit WAV file, whatever its format). An empty clip is
    /// an empty transcript, without a request.
    async fn transcribe(&self, audio: &AudioClip, options: &SttOptions) -> Result<Transcript> {
        if audio.samples.is_empty() {
            return Ok(Transcript::new(""));
        }
        let http = &self.inner.http;
        let wav = audio.to_wav_bytes()?;
        let file = reqwest::multipart::Part::bytes(wav)
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .map_err(|e| Error::Internal(format!("multipart part: {e}")))?;
        let model = options.model.as_deref().unwrap_or(&self.inner.model);
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", model.to_owned())
            .text("response_format", "json");
        if let Some(language) = options.language.as_deref().and_then(iso_language) {
            form = form.text("language", language);
        }
        let response = http.post_multipart("/audio/transcriptions", form).await?;
        let bytes = response.bytes().await.map_err(|e| http.ctx.transport(e))?;
        let answer: TranscriptionResponse = serde_json::from_slice(&bytes)
            .map_err(|e| http.ctx.malformed(format!("transcription: {e}")))?;
        Ok(Transcript::new(answer.text.trim())
            .with_timing(std::time::Duration::ZERO, audio.duration()))
    }

    /// A buffered session: the audio is transcribed at each finalize ([`stt::buffered_stream`]).
    async fn stream(&self, options: &SttOptions) -> Result<SttStream> {
        Ok(stt::buffered_stream(Arc::new(self.clone()), options))
    }
}

/// OpenAI text-to-speech: one `POST /audio/speech` per text, asking for `pcm` (24 kHz mono
/// 16-bit, [`PCM_FORMAT`]) and resampling it to [`TtsOptions::format`].
///
/// The config's `model` is the speech model (`gpt-4o-mini-tts`, `tts-1`, `tts-1-hd`; empty
/// means [`DEFAULT_TTS_MODEL`]); [`TtsOptions::model`] overrides it per call. The voice is
/// [`TtsOptions::voice`], else [`DEFAULT_VOICE`]; [`TtsOptions::speed`] must be within
/// 0.25–4.0. The API takes up to 4096 characters per request. Streaming synthesises each
/// context at its flush ([`tts::buffered_stream`]). Cloning is cheap (the client is shared).
///
/// ```no_run
/// # async fn demo() -> agentkit_core::Result<()> {
/// use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind};
/// use agentkit_voice::providers::openai::OpenAiTts;
/// use agentkit_voice::{TextToSpeech, TtsOptions};
///
/// let tts = OpenAiTts::from_config(
///     &ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini-tts")
///         .with_api_key(KeyRef::env("OPENAI_API_KEY")),
/// )?;
/// let clip = tts
///     .synthesize("Your order has shipped.", &TtsOptions::default().with_voice("coral"))
///     .await?;
/// clip.write_wav("reply.wav")?; // 16 kHz mono, the options' default format
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    inner: Arc<Inner>,
}

impl OpenAiTts {
    /// A speech synthesiser from a config of kind `openai` or `openai_compatible` (with
    /// `base_url`).
    ///
    /// A config of another kind, a missing key (OpenAI reads `OPENAI_API_KEY` when the config
    /// has none) or an invalid `base_url` is an [`Error::InvalidConfig`].
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(connect(config, "OpenAiTts", DEFAULT_TTS_MODEL)?),
        })
    }

    /// The model used when the options name none.
    pub fn model(&self) -> &str {
        &self.inner.model
    }
}

#[derive(Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f32>,
}

#[async_trait]
impl TextToSpeech for OpenAiTts {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Speaks `text` into a clip of `options.format`. Blank text is an empty clip, without a
    /// request; a speed outside 0.25–4.0 is an [`Error::InvalidInput`].
    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip> {
        if text.trim().is_empty() {
            return Ok(AudioClip::new(options.format));
        }
        if let Some(speed) = options.speed
            && !SPEED_RANGE.contains(&speed)
        {
            return Err(Error::InvalidInput(format!(
                "{}: speed {speed} is outside 0.25–4.0",
                self.inner.name
            )));
        }
        let http = &self.inner.http;
        let body = SpeechRequest {
            model: options.model.as_deref().unwrap_or(&self.inner.model),
            input: text,
            voice: options.voice.as_deref().unwrap_or(DEFAULT_VOICE),
            response_format: "pcm",
            speed: options.speed,
        };
        let response = http.post("/audio/speech", &body, false).await?;
        let bytes = response.bytes().await.map_err(|e| http.ctx.transport(e))?;
        if !bytes.len().is_multiple_of(2) {
            return Err(http.ctx.malformed(format!(
                "speech: {} bytes of 16-bit PCM (the count must be even)",
                bytes.len()
            )));
        }
        let samples = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let clip = AudioClip::from_samples(PCM_FORMAT, samples)?;
        clip.to_format(options.format)
    }

    /// A buffered session: each context is synthesised at its flush ([`tts::buffered_stream`]).
    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream> {
        Ok(tts::buffered_stream(Arc::new(self.clone()), options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_sent_as_iso_639_1() {
        assert_eq!(iso_language("en-US").as_deref(), Some("en"));
        assert_eq!(iso_language("pt_BR").as_deref(), Some("pt"));
        assert_eq!(iso_language("FR").as_deref(), Some("fr"));
        assert_eq!(iso_language(" "), None);
    }
}
