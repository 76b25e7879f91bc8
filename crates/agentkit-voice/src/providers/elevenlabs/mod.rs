//! ElevenLabs text-to-speech: streaming over the multi-context WebSocket
//! (`/v1/text-to-speech/{voice_id}/multi-stream-input`), batch over HTTP
//! (`POST /v1/text-to-speech/{voice_id}`).
//!
//! A streaming session opens
//! `wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/multi-stream-input?model_id=eleven_flash_v2_5&output_format=pcm_16000`
//! with the header `xi-api-key`. Each host context becomes one ElevenLabs context per flushed
//! segment (the first one has the host's context id, later ones `<id>~2`, `<id>~3`...):
//!
//! | host | on the wire |
//! |---|---|
//! | first [`TtsCommand::Text`] of a segment | `{"text":" ","context_id":"c1","voice_settings":{..}}` (settings when configured), then the text |
//! | [`TtsCommand::Text`] | `{"text":"Hello ","context_id":"c1"}` |
//! | [`TtsCommand::Flush`] | `{"context_id":"c1","flush":true}` then `{"context_id":"c1","close_context":true}`: ElevenLabs only reports the end of a context's audio (`isFinal`) when it is closed, and a closed context still speaks what was flushed |
//! | [`TtsCommand::Cancel`] | `{"context_id":"c1","close_context":true}` for a segment not yet closed; the context's audio still arriving is dropped |
//! | an open segment idle for [`ElevenLabsTts::with_keepalive`] (10 s) | `{"text":"","context_id":"c1"}`, the documented `KeepContextAlive` message (ElevenLabs closes a context after `inactivity_timeout`, 20 s by default) |
//! | [`TtsCommand::Close`] | `{"close_socket":true}`, then the flushed audio is read until the server closes |
//!
//! | ElevenLabs | event |
//! |---|---|
//! | `{"audio":"<base64>","contextId":"c1"}` | [`TtsEvent::Audio`] (PCM16 in the options' format) |
//! | `{"isFinal":true,"contextId":"c1"}` | [`TtsEvent::Flushed`] for each flush of that segment |
//!
//! Audio is asked for as `pcm_<rate>` at the options' sample rate when ElevenLabs has it
//! (8, 16, 22.05, 24 or 44.1 kHz), otherwise at the next higher rate (or 44.1 kHz) and
//! resampled; it is mono, copied into every channel of the options' format.
//!
//! When the server ends an idle connection (nothing flushed still to come, no unflushed text),
//! the next text opens a new one. Otherwise a failure ends the session with one error event: a
//! refused handshake by its status (401 and 403 are [`Error::Unauthenticated`]), an unreachable
//! server or a connection cut mid-speech [`Error::Unavailable`], a message that is not JSON or
//! audio that is not base64 [`Error::MalformedResponse`], an error message or close frame by
//! what it says. The API key is sent as a sensitive header and never appears in `Debug` output
//! or error messages.
//!
//! [`TtsCommand::Text`]: crate::tts::TtsCommand::Text
//! [`TtsCommand::Flush`]: crate::tts::TtsCommand::Flush
//! [`TtsCommand::Cancel`]: crate::tts::TtsCommand::Cancel
//! [`TtsCommand::Close`]: crate::tts::TtsCommand::Close
//! [`TtsEvent::Audio`]: crate::tts::TtsEvent::Audio
//! [`TtsEvent::Flushed`]: crate::tts::TtsEvent::Flushed

mod session;
mod wire;

use std::sync::OnceLock;
use std::time::Duration;

use agentkit_core::{Error, Result};
use agentkit_providers::{KeyRef, SecretString};
use async_trait::async_trait;
use serde_json::{Value, json};
use url::Url;

use super::ws::{self, Ctx};
use crate::audio::{AudioClip, AudioFormat};
use crate::tts::{TextToSpeech, TtsOptions, TtsStream, tts_channel};

/// ElevenLabs' API.
pub const DEFAULT_BASE_URL: &str = "wss://api.elevenlabs.io";
/// The model used when neither the provider nor the options name one.
pub const DEFAULT_MODEL: &str = "eleven_flash_v2_5";
/// The environment variable [`ElevenLabsTts::from_env`] reads.
pub const API_KEY_ENV: &str = "ELEVENLABS_API_KEY";
/// The PCM sample rates ElevenLabs produces (`pcm_<rate>`).
pub const PCM_RATES: [u32; 5] = [8_000, 16_000, 22_050, 24_000, 44_100];

/// The `pcm_<rate>` ElevenLabs is asked for to produce audio at `sample_rate`: the same rate
/// when it has it, else the next higher one, else the highest.
pub fn pcm_rate_for(sample_rate: u32) -> u32 {
    PCM_RATES
        .iter()
        .copied()
        .find(|&r| r >= sample_rate)
        .unwrap_or(PCM_RATES[PCM_RATES.len() - 1])
}

/// ElevenLabs text-to-speech ([`TextToSpeech`]): streaming over the multi-context WebSocket,
/// batch over HTTP. See the [module docs](self) for the wire format.
///
/// ```no_run
/// use agentkit_voice::providers::elevenlabs::ElevenLabsTts;
/// use agentkit_voice::{TextToSpeech, TtsEvent, TtsOptions};
///
/// # async fn run() -> agentkit_core::Result<()> {
/// let tts = ElevenLabsTts::from_env("21m00Tcm4TlvDq8ikWAM")?;
/// let mut stream = tts.stream(&TtsOptions::default()).await?;
/// stream.push_text("reply-1", "Hello there. ").await?;
/// stream.flush("reply-1").await?;
/// while let Some(event) = stream.next().await {
///     match event? {
///         TtsEvent::Audio { frame, .. } => { /* play frame */ let _ = frame; }
///         TtsEvent::Flushed { .. } => break,
///         _ => {}
///     }
/// }
/// // On barge-in: stream.cancel("reply-1").await?;
/// stream.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct ElevenLabsTts {
    ctx: Ctx,
    base_url: String,
    voice_id: String,
    model: String,
    voice_settings: Option<Value>,
    inactivity_timeout: Option<Duration>,
    keepalive: Duration,
    query: Vec<(String, String)>,
    connect_timeout: Duration,
    close_timeout: Duration,
    request_timeout: Duration,
    http: OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for ElevenLabsTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = Url::parse(&self.base_url)
            .map(|u| ws::shown_url(&u))
            .unwrap_or_else(|_| ws::REDACTED.to_owned());
        f.debug_struct("ElevenLabsTts")
            .field("base_url", &base)
            .field("voice_id", &self.voice_id)
            .field("model", &self.model)
            .field("api_key", &ws::REDACTED)
            .field("keepalive", &self.keepalive)
            .finish_non_exhaustive()
    }
}

impl ElevenLabsTts {
    /// A provider using `api_key`, speaking with `voice_id` (unless the options name a voice),
    /// ElevenLabs' API and [`DEFAULT_MODEL`].
    pub fn new(api_key: impl Into<SecretString>, voice_id: impl Into<String>) -> Self {
        Self {
            ctx: Ctx::new("elevenlabs", api_key.into()),
            base_url: DEFAULT_BASE_URL.to_owned(),
            voice_id: voice_id.into(),
            model: DEFAULT_MODEL.to_owned(),
            voice_settings: None,
            inactivity_timeout: None,
            keepalive: Duration::from_secs(10),
            query: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            http: OnceLock::new(),
        }
    }

    /// A provider with the key a [`KeyRef`] names (an environment variable or a value).
    pub fn from_key(key: &KeyRef, voice_id: impl Into<String>) -> Result<Self> {
        Ok(Self::new(key.resolve()?, voice_id))
    }

    /// A provider with the key in `ELEVENLABS_API_KEY`; [`Error::InvalidConfig`] when unset.
    pub fn from_env(voice_id: impl Into<String>) -> Result<Self> {
        Self::from_key(&KeyRef::env(API_KEY_ENV), voice_id)
    }

    /// Another server (a proxy, a regional endpoint, a test server): `http(s)://` or
    /// `ws(s)://`, the scheme follows the call (WebSocket for streams, HTTP for batch).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The model when the options name none (default [`DEFAULT_MODEL`]).
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// `voice_settings` sent when each context opens (`stability`, `similarity_boost`,
    /// `style`, `use_speaker_boost`, `speed`); the options' speed is added to them.
    pub fn with_voice_settings(mut self, settings: Value) -> Self {
        self.voice_settings = Some(settings);
        self
    }

    /// ElevenLabs' `inactivity_timeout` (how long an idle context lives; the server's default
    /// is 20 s, its maximum 180 s).
    pub fn with_inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.inactivity_timeout = Some(timeout);
        self
    }

    /// How long a context with unflushed text may go without a message before a
    /// `KeepContextAlive` is sent (default 10 s; keep it under the inactivity timeout).
    pub fn with_keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// An extra query parameter for the WebSocket (`language_code`, `auto_mode`, `seed`...).
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// How long the WebSocket handshake may take (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long, after [`TtsCommand::Close`], to wait for the flushed audio and the server's
    /// close (default 10 s; then the session ends with [`Error::Timeout`]).
    ///
    /// [`TtsCommand::Close`]: crate::tts::TtsCommand::Close
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How long a batch synthesis may take (default 120 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    fn voice<'a>(&'a self, options: &'a TtsOptions) -> &'a str {
        options.voice.as_deref().unwrap_or(&self.voice_id)
    }

    fn settings(&self, options: &TtsOptions) -> Option<Value> {
        let mut settings = self.voice_settings.clone();
        if let Some(speed) = options.speed {
            let obj = settings.get_or_insert_with(|| json!({}));
            if let Some(map) = obj.as_object_mut() {
                // Through the f32's shortest decimal form: 1.1, not 1.100000023841858.
                let speed = speed.to_string().parse::<f64>().unwrap_or(f64::from(speed));
                map.insert("speed".into(), json!(speed));
            }
        }
        settings
    }

    fn url(&self, voice: &str, tail: Option<&str>, websocket: bool) -> Result<Url> {
        if voice.trim().is_empty() {
            return Err(Error::InvalidConfig(self.ctx.msg("no voice id")));
        }
        let mut url = ws::endpoint(&self.base_url, "", websocket)?;
        url.path_segments_mut()
            .map_err(|()| Error::InvalidConfig(self.ctx.msg("the base URL cannot have a path")))?
            .pop_if_empty()
            .extend(["v1", "text-to-speech", voice])
            .extend(tail);
        Ok(url)
    }

    /// The options' audio format; an empty one is an [`Error::InvalidInput`].
    fn format(&self, options: &TtsOptions) -> Result<AudioFormat> {
        let format = options.format;
        if format.sample_rate == 0 || format.channels == 0 {
            return Err(Error::InvalidInput(self.ctx.msg(format!(
                "audio format {} Hz × {} channels",
                format.sample_rate, format.channels
            ))));
        }
        Ok(format)
    }

    fn client(&self) -> Result<&reqwest::Client> {
        self.ctx.http_client(&self.http, self.connect_timeout)
    }
}

#[async_trait]
impl TextToSpeech for ElevenLabsTts {
    fn name(&self) -> &str {
        "elevenlabs"
    }

    /// `POST /v1/text-to-speech/{voice_id}?output_format=pcm_<rate>`, the raw PCM answer
    /// resampled to the options' format when needed.
    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip> {
        let format = self.format(options)?;
        if text.trim().is_empty() {
            return Ok(AudioClip::new(format));
        }
        let rate = pcm_rate_for(format.sample_rate);
        let mut url = self.url(self.voice(options), None, false)?;
        url.query_pairs_mut()
            .append_pair("output_format", &format!("pcm_{rate}"));
        let mut body = json!({
            "text": text,
            "model_id": options.model.as_deref().unwrap_or(&self.model),
        });
        if let Some(settings) = self.settings(options) {
            body["voice_settings"] = settings;
        }
        let request = self
            .client()?
            .post(url.clone())
            .header("xi-api-key", self.ctx.key_header("")?)
            .json(&body)
            .timeout(self.request_timeout);
        let bytes = self.ctx.http_body(request, &url).await?;
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        AudioClip::from_samples(AudioFormat::mono(rate), samples)?.to_format(format)
    }

    /// Opens a streaming session; the connection is made by the session's task, so a refused
    /// handshake is the stream's first (and last) event.
    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream> {
        let format = self.format(options)?;
        if self.keepalive.is_zero() {
            return Err(Error::InvalidConfig(
                self.ctx.msg("the keep-alive interval must be above zero"),
            ));
        }
        let rate = pcm_rate_for(format.sample_rate);
        let mut url = self.url(self.voice(options), Some("multi-stream-input"), true)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model_id", options.model.as_deref().unwrap_or(&self.model));
            q.append_pair("output_format", &format!("pcm_{rate}"));
            if let Some(t) = self.inactivity_timeout {
                q.append_pair("inactivity_timeout", &t.as_secs().clamp(1, 180).to_string());
            }
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
        }
        let (stream, backend) = tts_channel(64);
        let session = session::Session {
            ctx: self.ctx.clone(),
            url,
            wire_rate: rate,
            format,
            voice_settings: self.settings(options),
            keepalive: self.keepalive,
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
        };
        tokio::spawn(session.run(backend));
        Ok(stream)
    }
}
