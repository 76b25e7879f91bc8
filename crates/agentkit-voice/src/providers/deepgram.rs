//! Deepgram speech-to-text: live transcription over a WebSocket (`/v1/listen`), batch
//! transcription over HTTP (`POST /v1/listen`).
//!
//! A streaming session opens
//! `wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000&channels=1&interim_results=true&vad_events=true&utterance_end_ms=1000&punctuate=true`
//! with the header `Authorization: Token <key>`, then:
//!
//! | host | on the wire |
//! |---|---|
//! | [`SttCommand::Audio`] | a binary message of little-endian PCM16 |
//! | no audio for [`DeepgramStt::with_keepalive`] (3 s) | `{"type":"KeepAlive"}` (Deepgram closes after 10 s without data) |
//! | [`SttCommand::Finalize`] | `{"type":"Finalize"}` |
//! | [`SttCommand::Close`] | `{"type":"CloseStream"}`, then the last results are read until the server closes |
//!
//! | Deepgram | event |
//! |---|---|
//! | `Results` with a transcript, `is_final: false` | [`SttEvent::Interim`] |
//! | `Results` with a transcript, `is_final: true` | [`SttEvent::Final`] |
//! | `Results` with `speech_final` or `from_finalize` | then [`SttEvent::UtteranceEnd`] |
//! | `SpeechStarted` | [`SttEvent::SpeechStarted`] |
//! | `UtteranceEnd` | [`SttEvent::UtteranceEnd`] (once per utterance: not again after a `speech_final`) |
//! | `Metadata`, empty transcripts, unknown types | nothing |
//!
//! Failures end the session with one error event: a refused handshake by its status (401 and
//! 403 are [`Error::Unauthenticated`]), an unreachable server or a connection cut before the
//! end [`Error::Unavailable`], a message that is not JSON [`Error::MalformedResponse`], a close
//! frame by its code and reason (`DATA-0000`, undecodable audio, is [`Error::InvalidInput`];
//! `NET-0001`, no audio, is [`Error::Timeout`]). The API key is sent as a sensitive header and
//! never appears in `Debug` output or error messages.

use std::sync::OnceLock;
use std::time::Duration;

use agentkit_core::{Error, Result};
use agentkit_providers::{KeyRef, SecretString};
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;

use super::ws::{self, Ctx};
use crate::audio::{AudioClip, AudioFormat};
use crate::stt::{
    SpeechToText, SttCommand, SttEvent, SttOptions, SttStream, SttStreamBackend, Transcript,
    stt_channel,
};

/// Deepgram's API.
pub const DEFAULT_BASE_URL: &str = "wss://api.deepgram.com";
/// The model used when neither the provider nor the options name one.
pub const DEFAULT_MODEL: &str = "nova-3";
/// The environment variable [`DeepgramStt::from_env`] reads.
pub const API_KEY_ENV: &str = "DEEPGRAM_API_KEY";

/// Deepgram speech-to-text ([`SpeechToText`]): live transcription over a WebSocket, batch
/// transcription over HTTP. See the [module docs](self) for the wire format.
///
/// ```no_run
/// use agentkit_voice::providers::deepgram::DeepgramStt;
/// use agentkit_voice::{AudioFormat, AudioFrame, FRAME, SpeechToText, SttEvent, SttOptions};
///
/// # async fn run() -> agentkit_core::Result<()> {
/// let stt = DeepgramStt::from_env()?.with_model("nova-3");
/// let mut stream = stt.stream(&SttOptions::new(AudioFormat::SPEECH).with_language("en")).await?;
/// stream.push(AudioFrame::silence(AudioFormat::SPEECH, FRAME)).await?;
/// stream.finalize().await?;
/// while let Some(event) = stream.next().await {
///     match event? {
///         SttEvent::Final(t) => println!("{}", t.text),
///         SttEvent::UtteranceEnd => break,
///         _ => {}
///     }
/// }
/// stream.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct DeepgramStt {
    ctx: Ctx,
    base_url: String,
    model: String,
    keepalive: Duration,
    utterance_end: Option<Duration>,
    query: Vec<(String, String)>,
    connect_timeout: Duration,
    close_timeout: Duration,
    request_timeout: Duration,
    http: OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for DeepgramStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = Url::parse(&self.base_url)
            .map(|u| ws::shown_url(&u))
            .unwrap_or_else(|_| ws::REDACTED.to_owned());
        f.debug_struct("DeepgramStt")
            .field("base_url", &base)
            .field("model", &self.model)
            .field("api_key", &ws::REDACTED)
            .field("keepalive", &self.keepalive)
            .field("utterance_end", &self.utterance_end)
            .finish_non_exhaustive()
    }
}

impl DeepgramStt {
    /// A provider using `api_key`, Deepgram's API and [`DEFAULT_MODEL`].
    pub fn new(api_key: impl Into<SecretString>) -> Self {
        Self {
            ctx: Ctx::new("deepgram", api_key.into()),
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            keepalive: Duration::from_secs(3),
            utterance_end: Some(Duration::from_millis(1000)),
            query: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            http: OnceLock::new(),
        }
    }

    /// A provider with the key a [`KeyRef`] names (an environment variable or a value).
    pub fn from_key(key: &KeyRef) -> Result<Self> {
        Ok(Self::new(key.resolve()?))
    }

    /// A provider with the key in `DEEPGRAM_API_KEY`; [`Error::InvalidConfig`] when unset.
    pub fn from_env() -> Result<Self> {
        Self::from_key(&KeyRef::env(API_KEY_ENV))
    }

    /// Another server (a proxy, a self-hosted Deepgram, a test server): `http(s)://` or
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

    /// How long a stream may go without sending audio before a `KeepAlive` is sent (default
    /// 3 s; Deepgram closes a connection after 10 s without data).
    pub fn with_keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// The silence after which Deepgram sends `UtteranceEnd` (`utterance_end_ms`, default
    /// 1 s; only with interim results, as Deepgram requires); `None` leaves it out.
    pub fn with_utterance_end(mut self, after: Option<Duration>) -> Self {
        self.utterance_end = after;
        self
    }

    /// An extra query parameter for both calls (`smart_format`, `endpointing`, `keyterm`...).
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// How long the WebSocket handshake may take (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long, after [`SttCommand::Close`], to wait for the last results and the server's
    /// close (default 10 s; then the session ends with [`Error::Timeout`]).
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How long a batch transcription may take (default 120 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    fn listen_url(&self, options: &SttOptions, live: bool) -> Result<Url> {
        let mut url = ws::endpoint(&self.base_url, "/v1/listen", live)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model", options.model.as_deref().unwrap_or(&self.model));
            if live {
                let AudioFormat {
                    sample_rate,
                    channels,
                } = options.format;
                q.append_pair("encoding", "linear16");
                q.append_pair("sample_rate", &sample_rate.to_string());
                q.append_pair("channels", &channels.to_string());
                q.append_pair("interim_results", bool_str(options.interim_results));
                q.append_pair("vad_events", "true");
                if let Some(after) = self.utterance_end.filter(|_| options.interim_results) {
                    q.append_pair("utterance_end_ms", &after.as_millis().to_string());
                }
            }
            q.append_pair("punctuate", "true");
            if let Some(language) = &options.language {
                q.append_pair("language", language);
            }
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn client(&self) -> Result<&reqwest::Client> {
        self.ctx.http_client(&self.http, self.connect_timeout)
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

#[async_trait]
impl SpeechToText for DeepgramStt {
    fn name(&self) -> &str {
        "deepgram"
    }

    /// `POST /v1/listen` with the clip as WAV; the first channel's first alternative.
    async fn transcribe(&self, audio: &AudioClip, options: &SttOptions) -> Result<Transcript> {
        if audio.samples.is_empty() {
            return Ok(Transcript::default());
        }
        let url = self.listen_url(options, false)?;
        let body = audio.to_wav_bytes()?;
        let request = self
            .client()?
            .post(url.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                self.ctx.key_header("Token ")?,
            )
            .header(reqwest::header::CONTENT_TYPE, "audio/wav")
            .timeout(self.request_timeout)
            .body(body);
        let bytes = self.ctx.http_body(request, &url).await?;
        let answer: Prerecorded = serde_json::from_slice(&bytes)
            .map_err(|e| self.ctx.malformed(format!("the transcription answer: {e}")))?;
        let alternative = answer
            .results
            .channels
            .into_iter()
            .next()
            .and_then(|c| c.alternatives.into_iter().next())
            .ok_or_else(|| {
                self.ctx
                    .malformed("the transcription answer has no alternatives")
            })?;
        let mut transcript =
            Transcript::new(alternative.transcript).with_timing(Duration::ZERO, audio.duration());
        if let Some(c) = alternative.confidence {
            transcript = transcript.with_confidence(c);
        }
        Ok(transcript)
    }

    /// Opens a live session; the connection is made by the session's task, so a refused
    /// handshake is the stream's first (and last) event.
    async fn stream(&self, options: &SttOptions) -> Result<SttStream> {
        if self.keepalive.is_zero() {
            return Err(Error::InvalidConfig(
                self.ctx.msg("the keep-alive interval must be above zero"),
            ));
        }
        let url = self.listen_url(options, true)?;
        let (stream, backend) = stt_channel(64);
        let session = Session {
            ctx: self.ctx.clone(),
            url,
            format: options.format,
            keepalive: self.keepalive,
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
        };
        tokio::spawn(session.run(backend));
        Ok(stream)
    }
}

#[derive(Deserialize)]
struct Prerecorded {
    results: PrerecordedResults,
}

#[derive(Deserialize)]
struct PrerecordedResults {
    #[serde(default)]
    channels: Vec<Channel>,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    confidence: Option<f32>,
}

/// A live `Results` message.
#[derive(Deserialize)]
struct LiveResults {
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    channel: Channel,
}

/// Server messages to events, remembering whether an utterance is open (so `UtteranceEnd` is
/// reported once per utterance).
struct Mapper {
    ctx: Ctx,
    open: bool,
}

impl Mapper {
    fn map(&mut self, text: &str) -> Result<Vec<SttEvent>> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            self.ctx.malformed(format!(
                "a message that is not JSON ({e}): {}",
                ws::shorten(text, 200)
            ))
        })?;
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return Err(self.ctx.malformed(format!(
                "a message without a type: {}",
                ws::shorten(text, 200)
            )));
        };
        let mut events = Vec::new();
        match kind {
            "Results" => {
                let results: LiveResults = serde_json::from_value(value)
                    .map_err(|e| self.ctx.malformed(format!("a Results message: {e}")))?;
                let alternative = results.channel.alternatives.into_iter().next();
                if let Some(alternative) = alternative
                    && !alternative.transcript.trim().is_empty()
                {
                    self.open = true;
                    let mut t = Transcript::new(alternative.transcript)
                        .with_timing(secs(results.start), secs(results.duration));
                    if let Some(c) = alternative.confidence {
                        t = t.with_confidence(c);
                    }
                    events.push(if results.is_final {
                        SttEvent::Final(t)
                    } else {
                        SttEvent::Interim(t)
                    });
                }
                if results.is_final && (results.speech_final || results.from_finalize) && self.open
                {
                    self.open = false;
                    events.push(SttEvent::UtteranceEnd);
                }
            }
            "SpeechStarted" => {
                self.open = true;
                events.push(SttEvent::SpeechStarted);
            }
            // Not again for an utterance a `speech_final` already ended.
            "UtteranceEnd" if self.open => {
                self.open = false;
                events.push(SttEvent::UtteranceEnd);
            }
            "Error" => {
                let detail = ["description", "message", "variant"]
                    .iter()
                    .find_map(|k| value.get(*k).and_then(Value::as_str))
                    .unwrap_or("an error without a description");
                return Err(Error::Server {
                    status: None,
                    message: self.ctx.msg(detail),
                });
            }
            // Metadata, a repeated UtteranceEnd, and message types added later.
            _ => {}
        }
        Ok(events)
    }
}

/// One live session's task.
struct Session {
    ctx: Ctx,
    url: Url,
    format: AudioFormat,
    keepalive: Duration,
    connect_timeout: Duration,
    close_timeout: Duration,
}

/// What to do after a server message.
enum Flow {
    Continue,
    /// The session is over (its error, if any, has been sent).
    End,
}

impl Session {
    async fn run(self, mut backend: SttStreamBackend) {
        let mut socket = match ws::connect(
            &self.ctx,
            &self.url,
            "authorization",
            "Token ",
            self.connect_timeout,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                backend.fail(e).await;
                return;
            }
        };
        let mut mapper = Mapper {
            ctx: self.ctx.clone(),
            open: false,
        };
        let mut last_sent = Instant::now();
        let mut closing: Option<Instant> = None;
        loop {
            let keepalive_at = last_sent + self.keepalive;
            let close_at = closing.unwrap_or(keepalive_at);
            let sent = tokio::select! {
                command = backend.commands.recv(), if closing.is_none() => match command {
                    Some(SttCommand::Audio(frame)) => {
                        if frame.format() != self.format {
                            backend
                                .fail(Error::InvalidInput(self.ctx.msg(format!(
                                    "{} audio sent to a {} stream",
                                    frame.format(),
                                    self.format
                                ))))
                                .await;
                            ws::shut(&mut socket).await;
                            return;
                        }
                        if frame.is_empty() {
                            continue;
                        }
                        ws::send(&self.ctx, &mut socket, Message::binary(frame.to_le_bytes())).await
                    }
                    Some(SttCommand::Finalize) => {
                        ws::send_json(&self.ctx, &mut socket, &json!({"type": "Finalize"})).await
                    }
                    Some(SttCommand::Close) => {
                        closing = Some(Instant::now() + self.close_timeout);
                        ws::send_json(&self.ctx, &mut socket, &json!({"type": "CloseStream"})).await
                    }
                    None => {
                        // The host has gone: nobody reads the results.
                        let _ = ws::send_json(&self.ctx, &mut socket, &json!({"type": "CloseStream"})).await;
                        ws::shut(&mut socket).await;
                        return;
                    }
                },
                message = socket.next() => {
                    match self.on_message(message, &mut mapper, &backend, closing.is_some()).await {
                        Flow::Continue => continue,
                        Flow::End => {
                            ws::shut(&mut socket).await;
                            return;
                        }
                    }
                }
                () = tokio::time::sleep_until(keepalive_at), if closing.is_none() => {
                    ws::send_json(&self.ctx, &mut socket, &json!({"type": "KeepAlive"})).await
                }
                () = tokio::time::sleep_until(close_at), if closing.is_some() => {
                    backend
                        .fail(Error::Timeout(self.ctx.msg(format!(
                            "the last results did not arrive within {:?} of closing",
                            self.close_timeout
                        ))))
                        .await;
                    ws::shut(&mut socket).await;
                    return;
                }
            };
            // Audio, a command or a keep-alive went out.
            match sent {
                Ok(()) => last_sent = Instant::now(),
                Err(e) => {
                    backend
                        .fail(ws::write_error(&self.ctx, &mut socket, e).await)
                        .await;
                    return;
                }
            }
        }
    }

    async fn on_message(
        &self,
        message: Option<std::result::Result<Message, tungstenite::Error>>,
        mapper: &mut Mapper,
        backend: &SttStreamBackend,
        closing: bool,
    ) -> Flow {
        match message {
            Some(Ok(Message::Text(text))) => match mapper.map(text.as_str()) {
                Ok(events) => {
                    for event in events {
                        if !backend.send(event).await {
                            return Flow::End;
                        }
                    }
                    Flow::Continue
                }
                Err(e) => {
                    backend.fail(e).await;
                    Flow::End
                }
            },
            Some(Ok(Message::Close(frame))) => {
                if !(closing && ws::is_normal_close(frame.as_ref())) {
                    backend.fail(self.ctx.close_error(frame.as_ref())).await;
                }
                Flow::End
            }
            // Deepgram sends no binary messages; pings are answered by the socket.
            Some(Ok(_)) => Flow::Continue,
            Some(Err(e)) => {
                let cut = matches!(
                    e,
                    tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Protocol(
                            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                        )
                );
                if !(closing && cut) {
                    backend.fail(self.ctx.transport_error(e)).await;
                }
                Flow::End
            }
            None => {
                if !closing {
                    backend
                        .fail(
                            self.ctx
                                .unavailable("the connection was cut before the session ended"),
                        )
                        .await;
                }
                Flow::End
            }
        }
    }
}
