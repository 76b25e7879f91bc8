//! A simple WebSocket protocol for browser and app clients.
//!
//! **Client → server.**
//!
//! - *Binary* messages: the caller's audio, PCM16 little-endian in the session's input format
//!   (`config().stt.format`, 16 kHz mono by default), any length (an even number of bytes);
//!   the server cuts it into 20 ms frames.
//! - *Text* messages: JSON control ([`ClientMessage`]):
//!   - `{"type":"say","text":"Welcome!","interruptible":true}`: speak outside a turn
//!     (`interruptible` defaults to `true`);
//!   - `{"type":"close"}`: the caller's audio has ended (the last turn is answered, then the
//!     session ends);
//!   - `{"type":"hang_up"}`: end the session now.
//!
//! **Server → client.**
//!
//! - *Binary* messages: audio to play, PCM16 little-endian in the session's output format
//!   (`config().tts.format`), paced at playing speed (a little ahead of it).
//! - *Text* messages: JSON events ([`ServerMessage`]), each with a `type`:
//!   - `ready` (first): `{"type":"ready","input":{"sample_rate":16000,"channels":1},"output":{…}}`;
//!   - `speech_started`, `speech_stopped`: the VAD heard the caller start or stop;
//!   - `transcript`: `{"type":"transcript","text":"Where is","final":false}`;
//!   - `user_turn`: `{"type":"user_turn","text":…}`, the caller's turn went to the agent;
//!   - `agent_text`: `{"type":"agent_text","text":…}`, a sentence of the reply is spoken;
//!   - `interrupted`: the caller barged in: **drop any audio not yet played**;
//!   - `resumed`: a false interruption, the reply goes on;
//!   - `approval_required`: `{"type":"approval_required","approval_id":…,"tool":…,"reason":…,"run_id":…}`;
//!   - `turn`: a turn ended: `user_text`, `reply`, `outcome` (`completed`, `interrupted`,
//!     `suspended`, `failed`, with `error` when failed), `latency_ms` by stage (`stt`,
//!     `endpointing`, `model`, `sentence`, `tts`, `end_to_end`), `stt_audio_ms`,
//!     `tts_audio_ms`;
//!   - `error`: `{"type":"error","message":…}`, something failed without ending the session
//!     (a rejected client message, a failed turn);
//!   - `ended` (last): `{"type":"ended"}`, or `{"type":"ended","error":…}` when a provider
//!     failed; the server then closes the socket.
//!
//! A text message that is not a [`ClientMessage`], or binary audio of an odd length, is an
//! [`Error::InvalidInput`]: logged, answered with an `error` message, listed in
//! [`WebSocketReport::rejected`] and skipped.
//!
//! # Wiring axum
//!
//! ```ignore
//! use agentkit_voice::transport::websocket::{WsMessage, run_websocket};
//! use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! use axum::response::Response;
//! use futures::{SinkExt, StreamExt};
//!
//! async fn voice(ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(|socket: WebSocket| async move {
//!         let (sink, stream) = socket.split();
//!         let inbound = stream.filter_map(|message| async move {
//!             match message {
//!                 Ok(Message::Text(text)) => Some(Ok(WsMessage::Text(text.to_string()))),
//!                 Ok(Message::Binary(bytes)) => Some(Ok(WsMessage::Binary(bytes.to_vec()))),
//!                 Ok(_) => None, // ping, pong, close
//!                 Err(e) => Some(Err(agentkit_core::Error::Unavailable {
//!                     message: format!("voice websocket: {e}"),
//!                     source: None,
//!                 })),
//!             }
//!         });
//!         let outbound = sink.with(|message: WsMessage| async move {
//!             Ok::<_, axum::Error>(match message {
//!                 WsMessage::Text(text) => Message::Text(text.into()),
//!                 WsMessage::Binary(bytes) => Message::Binary(bytes.into()),
//!             })
//!         });
//!         let session = make_session(); // VoiceSession::new(agent, stt, tts, tenant, id)
//!         if let Ok(report) = run_websocket(session, inbound, outbound).await {
//!             tracing::info!(turns = report.turns.len(), "voice session ended");
//!         }
//!     })
//! }
//! ```

use std::fmt::Display;
use std::pin::Pin;
use std::time::Duration;

use agentkit_core::{Error, Result};
use futures::{Sink, Stream};
use serde::{Deserialize, Serialize};

use super::{AudioConverter, Bridge, EventHook, Link, pump};
use crate::audio::{AudioFormat, AudioFrame, FRAME};
use crate::session::{TurnLatency, TurnOutcome, TurnReport, VoiceEvent, VoiceSession};

/// A WebSocket message of either kind (map your library's message type to and from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message (JSON).
    Text(String),
    /// A binary message (PCM16 little-endian audio).
    Binary(Vec<u8>),
}

/// A control message from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Speak `text` outside a turn.
    Say {
        /// What to say.
        text: String,
        /// Whether the caller can interrupt it (default `true`).
        #[serde(default = "yes")]
        interruptible: bool,
    },
    /// The caller's audio has ended: answer the last turn, then end.
    Close,
    /// End the session now.
    HangUp,
}

fn yes() -> bool {
    true
}

impl ClientMessage {
    /// Parses a text message; anything else is an [`Error::InvalidInput`].
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("not a voice control message: {e}")))
    }
}

/// An event for the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The session runs: the audio formats to send and to expect.
    Ready {
        /// The format of the client's binary audio.
        input: AudioFormat,
        /// The format of the server's binary audio.
        output: AudioFormat,
    },
    /// The VAD heard the caller start speaking.
    SpeechStarted,
    /// The VAD heard the caller stop.
    SpeechStopped,
    /// A transcript of the caller.
    Transcript {
        /// The text.
        text: String,
        /// Whether it will not change.
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// The caller's turn went to the agent.
    UserTurn {
        /// What the caller said.
        text: String,
    },
    /// A sentence of the reply went to speech synthesis.
    AgentText {
        /// The sentence.
        text: String,
    },
    /// The caller interrupted: drop the audio not yet played.
    Interrupted,
    /// A false interruption: the reply goes on.
    Resumed,
    /// A tool call waits for a human's approval.
    ApprovalRequired {
        /// The approval to decide.
        approval_id: String,
        /// The tool.
        tool: String,
        /// Why approval is needed.
        reason: String,
        /// The suspended run.
        run_id: String,
    },
    /// A turn ended.
    Turn {
        /// What the caller said.
        user_text: String,
        /// What the agent said (up to an interruption).
        reply: String,
        /// `completed`, `interrupted`, `suspended` or `failed`.
        outcome: String,
        /// Why the turn failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Latency by stage, in milliseconds.
        latency_ms: LatencyMs,
        /// Caller audio in the turn, in milliseconds.
        stt_audio_ms: u64,
        /// Reply audio synthesised, in milliseconds.
        tts_audio_ms: u64,
    },
    /// Something failed without ending the session.
    Error {
        /// What failed.
        message: String,
    },
    /// The session ended (the last message).
    Ended {
        /// Why, when a provider failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// A turn's latency by stage, in milliseconds (see [`TurnLatency`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencyMs {
    /// User stopped → final transcript.
    pub stt: u64,
    /// Final transcript → turn handed to the agent.
    pub endpointing: u64,
    /// Turn handed over → first token.
    pub model: u64,
    /// First token → first sentence.
    pub sentence: u64,
    /// First sentence → first audio.
    pub tts: u64,
    /// User stopped → first audio.
    pub end_to_end: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<TurnLatency> for LatencyMs {
    fn from(l: TurnLatency) -> Self {
        Self {
            stt: millis(l.stt),
            endpointing: millis(l.endpointing),
            model: millis(l.model),
            sentence: millis(l.sentence),
            tts: millis(l.tts),
            end_to_end: millis(l.end_to_end),
        }
    }
}

impl ServerMessage {
    /// The message for a session event, if the client gets one (audio goes as binary).
    pub fn from_event(event: &VoiceEvent) -> Option<Self> {
        Some(match event {
            VoiceEvent::UserSpeechStarted => Self::SpeechStarted,
            VoiceEvent::UserSpeechStopped => Self::SpeechStopped,
            VoiceEvent::Transcript { text, is_final } => Self::Transcript {
                text: text.clone(),
                is_final: *is_final,
            },
            VoiceEvent::UserTurn(text) => Self::UserTurn { text: text.clone() },
            VoiceEvent::AgentText(text) => Self::AgentText { text: text.clone() },
            VoiceEvent::Interrupted => Self::Interrupted,
            VoiceEvent::Resumed => Self::Resumed,
            VoiceEvent::ApprovalRequired(request) => Self::ApprovalRequired {
                approval_id: request.id.to_string(),
                tool: request.call.name.clone(),
                reason: request.reason.clone(),
                run_id: request.run.to_string(),
            },
            VoiceEvent::TurnCompleted(report) => Self::turn(report),
            VoiceEvent::Error(message) => Self::Error {
                message: message.clone(),
            },
            VoiceEvent::Ended(result) => Self::Ended {
                error: result.as_ref().err().map(ToString::to_string),
            },
            _ => return None,
        })
    }

    fn turn(report: &TurnReport) -> Self {
        let (outcome, error) = match &report.outcome {
            TurnOutcome::Completed => ("completed", None),
            TurnOutcome::Interrupted => ("interrupted", None),
            TurnOutcome::Suspended => ("suspended", None),
            TurnOutcome::Failed(e) => ("failed", Some(e.clone())),
        };
        Self::Turn {
            user_text: report.user_text.clone(),
            reply: report.reply.clone(),
            outcome: outcome.into(),
            error,
            latency_ms: report.latency.into(),
            stt_audio_ms: millis(report.stt_audio),
            tts_audio_ms: millis(report.tts_audio),
        }
    }

    /// The message as JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("serialising a voice event: {e}")))
    }
}

/// How a WebSocket session went.
#[derive(Debug)]
#[non_exhaustive]
pub struct WebSocketReport {
    /// The session's turns, in order.
    pub turns: Vec<TurnReport>,
    /// Caller audio received.
    pub audio_in: Duration,
    /// Audio sent.
    pub audio_out: Duration,
    /// Client messages that were skipped (bad JSON, odd-length audio).
    pub rejected: Vec<Error>,
    /// What ended the session abnormally: the session's error (a provider failed) or the
    /// transport's (the socket broke); `None` when it ended normally.
    pub error: Option<Error>,
}

/// Runs a [`VoiceSession`] over a WebSocket, with options; [`run_websocket`] is the same with
/// the defaults.
pub struct WebSocketBridge {
    session: VoiceSession,
    greeting: Option<(String, bool)>,
    on_event: Option<EventHook>,
}

impl std::fmt::Debug for WebSocketBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketBridge")
            .field("session", &self.session)
            .field("greeting", &self.greeting)
            .finish_non_exhaustive()
    }
}

/// Runs `session` over a WebSocket speaking the [module](self)'s protocol: `inbound` is the
/// client's messages (an `Err` is a broken connection: the session hangs up), `outbound`
/// takes the server's. Returns when the session has ended (after sending `ended` and closing
/// `outbound`); an `Err` only when the session failed to start.
pub async fn run_websocket<S, K>(
    session: VoiceSession,
    inbound: S,
    outbound: K,
) -> Result<WebSocketReport>
where
    S: Stream<Item = Result<WsMessage>>,
    K: Sink<WsMessage>,
    K::Error: Display,
{
    WebSocketBridge::new(session).run(inbound, outbound).await
}

impl WebSocketBridge {
    /// A bridge for `session` (not started yet).
    pub fn new(session: VoiceSession) -> Self {
        Self {
            session,
            greeting: None,
            on_event: None,
        }
    }

    /// Says `text` as soon as the session starts (`interruptible: false` plays it whole).
    pub fn with_greeting(mut self, text: impl Into<String>, interruptible: bool) -> Self {
        self.greeting = Some((text.into(), interruptible));
        self
    }

    /// Calls `hook` with each session event (transcripts, approvals, turn reports) before
    /// the bridge handles it.
    pub fn on_event(mut self, hook: impl FnMut(&VoiceEvent) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(hook));
        self
    }

    /// Runs the session (see [`run_websocket`]).
    pub async fn run<S, K>(self, inbound: S, outbound: K) -> Result<WebSocketReport>
    where
        S: Stream<Item = Result<WsMessage>>,
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        let inbound = std::pin::pin!(inbound);
        let mut outbound = std::pin::pin!(outbound);
        let input_format = self.session.config().stt.format;
        let output_format = self.session.config().tts.format;
        let framer = AudioConverter::new(input_format, input_format, FRAME)?;
        let (input, events) = self.session.start().await?;
        let mut ws = Ws {
            link: Link::new("voice websocket", "the client", input, self.on_event),
            input_format,
            framer,
            report: WebSocketReport {
                turns: Vec::new(),
                audio_in: Duration::ZERO,
                audio_out: Duration::ZERO,
                rejected: Vec::new(),
                error: None,
            },
        };
        ws.send_event(
            ServerMessage::Ready {
                input: input_format,
                output: output_format,
            },
            &mut outbound,
        )
        .await;
        ws.link.greet(self.greeting).await;
        pump(&mut ws, inbound, &mut outbound, events).await;
        ws.link.close(&mut outbound).await;
        ws.report.error = ws.link.error.take();
        Ok(ws.report)
    }
}

/// A WebSocket session in progress.
struct Ws {
    link: Link,
    input_format: AudioFormat,
    /// Cuts the client's audio into 20 ms frames.
    framer: AudioConverter,
    report: WebSocketReport,
}

impl Bridge<WsMessage> for Ws {
    type Inbound = WsMessage;

    fn parts(&mut self) -> (&mut Link, &mut AudioConverter) {
        (&mut self.link, &mut self.framer)
    }

    /// Handles a client message; `false` once the client closed or hung up.
    async fn on_message<K>(&mut self, message: WsMessage, outbound: &mut Pin<&mut K>) -> bool
    where
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        match message {
            WsMessage::Binary(bytes) => {
                let frame = match AudioFrame::from_le_bytes(self.input_format, &bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        self.reject(e, outbound).await;
                        return true;
                    }
                };
                self.report.audio_in += frame.duration();
                match self.framer.push(&frame) {
                    Ok(frames) => self.link.push(frames).await,
                    Err(e) => self.reject(e, outbound).await,
                }
                true
            }
            WsMessage::Text(text) => match ClientMessage::parse(&text) {
                Ok(ClientMessage::Say {
                    text,
                    interruptible,
                }) => {
                    if let Err(e) = self.link.input.say(text, interruptible).await {
                        tracing::debug!(error = %e, "voice websocket: the session had ended");
                    }
                    true
                }
                Ok(ClientMessage::Close) => {
                    self.end_input(false).await;
                    false
                }
                Ok(ClientMessage::HangUp) => {
                    self.end_input(true).await;
                    false
                }
                Err(e) => {
                    self.reject(e, outbound).await;
                    true
                }
            },
        }
    }

    async fn on_event<K>(&mut self, event: VoiceEvent, outbound: &mut Pin<&mut K>)
    where
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        match &event {
            VoiceEvent::Audio(frame) => {
                self.report.audio_out += frame.duration();
                self.link
                    .send(WsMessage::Binary(frame.to_le_bytes()), outbound)
                    .await;
                return;
            }
            VoiceEvent::TurnCompleted(report) => self.report.turns.push(report.clone()),
            VoiceEvent::Error(message) => {
                tracing::warn!(error = %message, "voice websocket: the session reported an error");
            }
            _ => {}
        }
        if let Some(message) = ServerMessage::from_event(&event) {
            self.send_event(message, outbound).await;
        }
    }

    /// `ended`, with the error when the session failed.
    async fn on_ended<K>(&mut self, error: Option<&Error>, outbound: &mut Pin<&mut K>)
    where
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        let error = error.map(ToString::to_string);
        self.send_event(ServerMessage::Ended { error }, outbound)
            .await;
    }
}

impl Ws {
    async fn send_event<K>(&mut self, message: ServerMessage, outbound: &mut Pin<&mut K>)
    where
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        match message.to_json() {
            Ok(text) => {
                self.link.send(WsMessage::Text(text), outbound).await;
            }
            Err(e) => tracing::warn!(error = %e, "voice websocket: event not sent"),
        }
    }

    async fn reject<K>(&mut self, error: Error, outbound: &mut Pin<&mut K>)
    where
        K: Sink<WsMessage>,
        K::Error: Display,
    {
        tracing::warn!(error = %error, "voice websocket: skipped a client message");
        self.send_event(
            ServerMessage::Error {
                message: error.to_string(),
            },
            outbound,
        )
        .await;
        self.report.rejected.push(error);
    }
}
