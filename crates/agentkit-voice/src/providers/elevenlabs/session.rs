//! The streaming session: one task per [`TtsStream`](crate::tts::TtsStream) driving the
//! multi-context WebSocket, mapping host contexts onto ElevenLabs contexts (one per flushed
//! segment), keeping open ones alive and reading the audio back.

use std::collections::HashMap;
use std::time::Duration;

use agentkit_core::{Error, Result};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use url::Url;

use super::wire;
use crate::audio::{AudioFormat, Resampler};
use crate::providers::ws::{self, Ctx, Socket};
use crate::tts::{TtsCommand, TtsEvent, TtsStreamBackend};

/// One ElevenLabs context: a host context's text up to (and including) one flush.
struct Segment {
    host: String,
    /// Order of creation, to find a host context's latest segment.
    seq: u64,
    /// Flushed and closed: only audio and `isFinal` are still to come.
    flushed: bool,
    /// Cancelled by the host: whatever still comes is dropped.
    cancelled: bool,
    /// `Flushed` events owed when `isFinal` arrives.
    flushes: usize,
    last_sent: Instant,
    /// An odd byte left over from the previous audio chunk.
    carry: Option<u8>,
    resampler: Option<Resampler>,
}

/// The contexts of one connection.
#[derive(Default)]
struct Contexts {
    segments: HashMap<String, Segment>,
    /// Host context → its segment still taking text.
    open: HashMap<String, String>,
    seq: u64,
}

impl Contexts {
    /// Whether anything is still to come: unflushed text or flushed audio not yet final.
    fn pending(&self) -> bool {
        self.segments.values().any(|s| !s.cancelled)
    }

    fn wire_id(&self, host: &str) -> String {
        if !self.segments.contains_key(host) {
            return host.to_owned();
        }
        (2u64..)
            .map(|n| format!("{host}~{n}"))
            .find(|id| !self.segments.contains_key(id))
            .unwrap_or_else(|| host.to_owned())
    }

    /// The latest flushed segment of `host` still waiting for its `isFinal`.
    fn latest_in_flight(&mut self, host: &str) -> Option<&mut Segment> {
        self.segments
            .values_mut()
            .filter(|s| s.host == host && s.flushed && !s.cancelled)
            .max_by_key(|s| s.seq)
    }

    /// When the next keep-alive is due.
    fn next_keepalive(&self, every: Duration) -> Option<Instant> {
        self.segments
            .values()
            .filter(|s| !s.flushed && !s.cancelled)
            .map(|s| s.last_sent + every)
            .min()
    }
}

/// One streaming session's task.
pub(super) struct Session {
    pub(super) ctx: Ctx,
    pub(super) url: Url,
    /// The rate ElevenLabs is asked for (`pcm_<rate>`).
    pub(super) wire_rate: u32,
    /// The format the host asked for.
    pub(super) format: AudioFormat,
    /// Sent when each context opens.
    pub(super) voice_settings: Option<Value>,
    pub(super) keepalive: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) close_timeout: Duration,
}

/// What to do after a server message.
enum Flow {
    Continue,
    /// The connection ended while nothing was pending: open another for the next text.
    Idle,
    /// The session is over (its error, if any, has been sent).
    End,
}

/// The next message of the connection, if there is one (never ready otherwise).
async fn next_message(
    socket: &mut Option<Socket>,
) -> Option<std::result::Result<Message, tungstenite::Error>> {
    match socket.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Session {
    async fn connect(&self) -> Result<Socket> {
        ws::connect(&self.ctx, &self.url, "xi-api-key", "", self.connect_timeout).await
    }

    pub(super) async fn run(self, mut backend: TtsStreamBackend) {
        let mut socket = match self.connect().await {
            Ok(s) => Some(s),
            Err(e) => {
                backend.fail(e).await;
                return;
            }
        };
        let mut contexts = Contexts::default();
        let mut closing: Option<Instant> = None;
        loop {
            let keepalive_at = contexts.next_keepalive(self.keepalive);
            let timer = closing.or(keepalive_at);
            tokio::select! {
                command = backend.commands.recv(), if closing.is_none() => {
                    let result = match command {
                        None => {
                            if let Some(s) = socket.as_mut() {
                                let _ = ws::send_json(&self.ctx, s, &wire::close_socket()).await;
                                ws::shut(s).await;
                            }
                            return;
                        }
                        Some(TtsCommand::Close) => {
                            let Some(s) = socket.as_mut() else { return };
                            closing = Some(Instant::now() + self.close_timeout);
                            ws::send_json(&self.ctx, s, &wire::close_socket()).await
                        }
                        Some(command) => {
                            self.command(command, &mut socket, &mut contexts, &backend).await
                        }
                    };
                    if let Err(e) = result {
                        let e = match socket.as_mut() {
                            Some(s) => ws::write_error(&self.ctx, s, e).await,
                            None => e,
                        };
                        backend.fail(e).await;
                        return;
                    }
                }
                message = next_message(&mut socket) => {
                    match self.on_message(message, &mut contexts, &backend, closing.is_some()).await {
                        Flow::Continue => {}
                        Flow::Idle => {
                            if let Some(mut s) = socket.take() {
                                ws::shut(&mut s).await;
                            }
                            contexts = Contexts::default();
                        }
                        Flow::End => {
                            if let Some(s) = socket.as_mut() {
                                ws::shut(s).await;
                            }
                            return;
                        }
                    }
                }
                () = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    if closing.is_some() {
                        backend
                            .fail(Error::Timeout(self.ctx.msg(format!(
                                "the flushed audio did not end within {:?} of closing",
                                self.close_timeout
                            ))))
                            .await;
                        if let Some(s) = socket.as_mut() {
                            ws::shut(s).await;
                        }
                        return;
                    }
                    if let Err(e) = self.keep_alive(&mut socket, &mut contexts).await {
                        backend.fail(e).await;
                        return;
                    }
                }
            }
        }
    }

    /// Sends `KeepContextAlive` for each open segment idle for the keep-alive interval.
    async fn keep_alive(&self, socket: &mut Option<Socket>, contexts: &mut Contexts) -> Result<()> {
        let Some(s) = socket.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        for (wire_id, segment) in contexts.segments.iter_mut() {
            if !segment.flushed && !segment.cancelled && segment.last_sent + self.keepalive <= now {
                ws::send_json(&self.ctx, s, &wire::keep_alive(wire_id)).await?;
                segment.last_sent = Instant::now();
            }
        }
        Ok(())
    }

    async fn command(
        &self,
        command: TtsCommand,
        socket: &mut Option<Socket>,
        contexts: &mut Contexts,
        backend: &TtsStreamBackend,
    ) -> Result<()> {
        match command {
            TtsCommand::Text { context, text } => {
                if text.is_empty() {
                    return Ok(());
                }
                if socket.is_none() {
                    *socket = Some(self.connect().await?);
                }
                let Some(s) = socket.as_mut() else {
                    return Ok(());
                };
                let wire_id = match contexts.open.get(&context) {
                    Some(wire_id) => wire_id.clone(),
                    None => {
                        let wire_id = contexts.wire_id(&context);
                        let init = wire::init(&wire_id, self.voice_settings.as_ref());
                        ws::send_json(&self.ctx, s, &init).await?;
                        let resampler = if self.wire_rate == self.format.sample_rate {
                            None
                        } else {
                            Some(Resampler::new(
                                AudioFormat::mono(self.wire_rate),
                                self.format.sample_rate,
                            )?)
                        };
                        contexts.seq += 1;
                        contexts.segments.insert(
                            wire_id.clone(),
                            Segment {
                                host: context.clone(),
                                seq: contexts.seq,
                                flushed: false,
                                cancelled: false,
                                flushes: 0,
                                last_sent: Instant::now(),
                                carry: None,
                                resampler,
                            },
                        );
                        contexts.open.insert(context, wire_id.clone());
                        wire_id
                    }
                };
                ws::send_json(&self.ctx, s, &wire::text(&wire_id, &text)).await?;
                if let Some(segment) = contexts.segments.get_mut(&wire_id) {
                    segment.last_sent = Instant::now();
                }
                Ok(())
            }
            TtsCommand::Flush { context } => {
                if let (Some(wire_id), Some(s)) = (contexts.open.remove(&context), socket.as_mut())
                {
                    ws::send_json(&self.ctx, s, &wire::flush(&wire_id)).await?;
                    ws::send_json(&self.ctx, s, &wire::close_context(&wire_id)).await?;
                    if let Some(segment) = contexts.segments.get_mut(&wire_id) {
                        segment.flushed = true;
                        segment.flushes += 1;
                    }
                } else if let Some(segment) = contexts.latest_in_flight(&context) {
                    // Nothing new since the last flush: report it after that one's audio.
                    segment.flushes += 1;
                } else {
                    backend.send(TtsEvent::Flushed { context }).await;
                }
                Ok(())
            }
            TtsCommand::Cancel { context } => {
                if let (Some(wire_id), Some(s)) = (contexts.open.remove(&context), socket.as_mut())
                {
                    ws::send_json(&self.ctx, s, &wire::close_context(&wire_id)).await?;
                }
                for segment in contexts.segments.values_mut() {
                    if segment.host == context {
                        segment.cancelled = true;
                        segment.resampler = None;
                    }
                }
                Ok(())
            }
            // Handled by the caller.
            TtsCommand::Close => Ok(()),
        }
    }

    async fn on_message(
        &self,
        message: Option<std::result::Result<Message, tungstenite::Error>>,
        contexts: &mut Contexts,
        backend: &TtsStreamBackend,
        closing: bool,
    ) -> Flow {
        let failure = match message {
            Some(Ok(Message::Text(text))) => {
                match self.on_text(text.as_str(), contexts, backend).await {
                    Ok(true) => return Flow::Continue,
                    Ok(false) => return Flow::End,
                    Err(e) => e,
                }
            }
            // Pings are answered by the socket; ElevenLabs sends no binary messages.
            Some(Ok(Message::Close(frame))) => {
                if closing {
                    return Flow::End;
                }
                if ws::is_normal_close(frame.as_ref()) && !contexts.pending() {
                    return Flow::Idle;
                }
                self.ctx.close_error(frame.as_ref())
            }
            Some(Ok(_)) => return Flow::Continue,
            Some(Err(e)) => {
                if closing {
                    return Flow::End;
                }
                if !contexts.pending() {
                    return Flow::Idle;
                }
                self.ctx.transport_error(e)
            }
            None => {
                if closing {
                    return Flow::End;
                }
                if !contexts.pending() {
                    return Flow::Idle;
                }
                self.ctx
                    .unavailable("the connection was cut before the flushed audio arrived")
            }
        };
        backend.fail(failure).await;
        Flow::End
    }

    /// Handles a text message; `Ok(false)` when the host has gone.
    async fn on_text(
        &self,
        text: &str,
        contexts: &mut Contexts,
        backend: &TtsStreamBackend,
    ) -> Result<bool> {
        let message = wire::ServerMessage::parse(&self.ctx, text)?;
        let Some(wire_id) = message.context.as_deref() else {
            return Ok(true);
        };
        let Some(segment) = contexts.segments.get_mut(wire_id) else {
            // A context this session no longer knows (or never opened).
            return Ok(true);
        };
        if let Some(audio) = message.audio.as_deref()
            && !segment.cancelled
        {
            let bytes = wire::decode_audio(&self.ctx, audio)?;
            let samples = wire::pcm16(&mut segment.carry, &bytes);
            let samples = match segment.resampler.as_mut() {
                Some(r) => r.process(&samples)?,
                None => samples,
            };
            if !self.send_audio(backend, &segment.host, samples).await? {
                return Ok(false);
            }
        }
        if message.is_final
            && let Some(mut segment) = contexts.segments.remove(wire_id)
        {
            if contexts
                .open
                .get(&segment.host)
                .is_some_and(|w| w == wire_id)
            {
                contexts.open.remove(&segment.host);
            }
            if segment.cancelled {
                return Ok(true);
            }
            if let Some(r) = segment.resampler.as_mut()
                && !self.send_audio(backend, &segment.host, r.finish()?).await?
            {
                return Ok(false);
            }
            for _ in 0..segment.flushes {
                if !backend
                    .send(TtsEvent::Flushed {
                        context: segment.host.clone(),
                    })
                    .await
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// `samples` (mono, at the session's rate) as an audio event of `host`'s context, none
    /// when empty; `false` once the host has gone.
    async fn send_audio(
        &self,
        backend: &TtsStreamBackend,
        host: &str,
        samples: Vec<i16>,
    ) -> Result<bool> {
        Ok(match wire::to_frame(self.format, samples)? {
            Some(frame) => {
                backend
                    .send(TtsEvent::Audio {
                        context: host.to_owned(),
                        frame,
                    })
                    .await
            }
            None => true,
        })
    }
}
