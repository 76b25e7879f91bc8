//! Twilio Media Streams: a phone call through a bidirectional stream (`<Connect><Stream>`).
//!
//! Twilio opens a WebSocket to the host and sends JSON text messages ([`TwilioInbound`]):
//! `connected`, then `start` (the stream and call ids, custom parameters and the media format,
//! always `audio/x-mulaw` at 8000 Hz mono), then a `media` message per 20 ms of the caller's
//! audio (base64 µ-law), `dtmf` for key presses, `mark` when audio the host sent has played,
//! and `stop` when the stream ends. The host answers with [`TwilioOutbound`] messages: `media`
//! (base64 µ-law to play), `mark` and `clear` (drop the audio Twilio has buffered).
//!
//! [`run_twilio`] (or [`TwilioBridge`] for options) runs a [`VoiceSession`] over such a stream:
//!
//! - it waits for `start`, then starts the session;
//! - the caller's µ-law is decoded and resampled to the session's input format
//!   (`config().stt.format`, 16 kHz by default) in 20 ms frames;
//! - the session's audio (`config().tts.format`) is resampled to 8 kHz and sent as µ-law in
//!   20 ms `media` messages (160 bytes each); when the reply pauses, the tail is flushed
//!   (padded with silence to a whole chunk);
//! - a barge-in ([`VoiceEvent::Interrupted`]) sends `clear`, so Twilio drops what it buffered;
//! - `stop`, or the stream ending, closes the session ([`VoiceInput::close`]: the last turn is
//!   answered, then the session ends); an inbound transport error hangs up;
//! - a message that is not valid JSON, or a payload that is not base64, is an
//!   [`Error::MalformedResponse`]: logged, listed in [`TwilioCallReport::rejected`] and
//!   skipped;
//! - it returns when the session has ended, with a [`TwilioCallReport`].
//!
//! # Wiring axum
//!
//! Answer Twilio's voice webhook with TwiML that connects the call to the stream, e.g.
//! `<Response><Connect><Stream url="wss://example.com/twilio" /></Connect></Response>`, and
//! serve the WebSocket:
//!
//! ```ignore
//! use agentkit_voice::transport::twilio::run_twilio;
//! use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
//! use axum::response::Response;
//! use futures::{SinkExt, StreamExt};
//!
//! async fn twilio(ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(|socket: WebSocket| async move {
//!         let (sink, stream) = socket.split();
//!         // Text messages in; a broken socket is an error; other frames are ignored.
//!         let inbound = stream.filter_map(|message| async move {
//!             match message {
//!                 Ok(Message::Text(text)) => Some(Ok(text.to_string())),
//!                 Ok(_) => None,
//!                 Err(e) => Some(Err(agentkit_core::Error::Unavailable {
//!                     message: format!("twilio websocket: {e}"),
//!                     source: None,
//!                 })),
//!             }
//!         });
//!         // Text messages out.
//!         let outbound = sink.with(|text: String| async move {
//!             Ok::<_, axum::Error>(Message::Text(text.into()))
//!         });
//!         let session = make_session(); // VoiceSession::new(agent, stt, tts, tenant, call id)
//!         match run_twilio(session, inbound, outbound).await {
//!             Ok(report) => tracing::info!(call = %report.call_sid, turns = report.turns.len(), "call ended"),
//!             Err(e) => tracing::warn!(error = %e, "the call did not start"),
//!         }
//!     })
//! }
//! ```
//!
//! The session is built before Twilio's `start` arrives, so a host that serves several
//! tenants or agents decides from its own webhook (it wrote the TwiML): a path segment of the
//! stream URL (`wss://example.com/twilio/acme`) is the simplest carrier. The `start`
//! message's `customParameters` (TwiML `<Parameter>`s) arrive in the report and through
//! [`TwilioBridge::on_message`].

use std::collections::BTreeMap;
use std::fmt::Display;
use std::pin::Pin;
use std::time::Duration;

use agentkit_core::{Error, Result};
use futures::{Sink, Stream, StreamExt};
use tokio::time::Instant;

use super::{AudioConverter, Bridge, EventHook, Link, PlayClock, pump, unavailable};
use crate::audio::{AudioFormat, AudioFrame, FRAME};
use crate::mulaw;
use crate::session::{TurnReport, VoiceEvent, VoiceInput, VoiceSession};

mod messages;

pub use messages::*;

/// How a Twilio call went.
#[derive(Debug)]
#[non_exhaustive]
pub struct TwilioCallReport {
    /// The stream (`MZ…`).
    pub stream_sid: String,
    /// The call (`CA…`).
    pub call_sid: String,
    /// The account (`AC…`).
    pub account_sid: String,
    /// The `<Parameter>`s of the `<Stream>` TwiML.
    pub custom_parameters: BTreeMap<String, String>,
    /// The session's turns, in order.
    pub turns: Vec<TurnReport>,
    /// The keys the caller pressed, in order.
    pub dtmf: String,
    /// Caller audio received.
    pub audio_in: Duration,
    /// Session audio sent (before conversion to µ-law).
    pub audio_out: Duration,
    /// `media` messages sent.
    pub media_sent: usize,
    /// `clear` messages sent (barge-ins).
    pub clears_sent: usize,
    /// Messages from Twilio that were skipped (bad JSON, bad base64).
    pub rejected: Vec<Error>,
    /// What ended the call abnormally: the session's error (a provider failed) or the
    /// transport's (the socket broke); `None` for a call that ended normally.
    pub error: Option<Error>,
}

type MessageHook = Box<dyn FnMut(&TwilioInbound, &VoiceInput) + Send>;

/// Runs a [`VoiceSession`] over a Twilio media stream, with options; [`run_twilio`] is the
/// same with the defaults.
pub struct TwilioBridge {
    session: VoiceSession,
    greeting: Option<(String, bool)>,
    hang_up_on_stop: bool,
    on_event: Option<EventHook>,
    on_message: Option<MessageHook>,
}

impl std::fmt::Debug for TwilioBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioBridge")
            .field("session", &self.session)
            .field("greeting", &self.greeting)
            .field("hang_up_on_stop", &self.hang_up_on_stop)
            .finish_non_exhaustive()
    }
}

/// Runs `session` over a Twilio media stream: `inbound` is Twilio's text messages (an `Err`
/// is a broken connection), `outbound` takes the messages to Twilio. Returns when the session
/// has ended; an `Err` only when the call never started (the stream ended or broke before
/// `start`, an unsupported media format, the session failed to start). See the
/// [module](self) for the behaviour and an axum example.
pub async fn run_twilio<S, K>(
    session: VoiceSession,
    inbound: S,
    outbound: K,
) -> Result<TwilioCallReport>
where
    S: Stream<Item = Result<String>>,
    K: Sink<String>,
    K::Error: Display,
{
    TwilioBridge::new(session).run(inbound, outbound).await
}

impl TwilioBridge {
    /// A bridge for `session` (not started yet: the bridge starts it on Twilio's `start`).
    pub fn new(session: VoiceSession) -> Self {
        Self {
            session,
            greeting: None,
            hang_up_on_stop: false,
            on_event: None,
            on_message: None,
        }
    }

    /// Says `text` as soon as the call starts (`interruptible: false` plays it whole).
    pub fn with_greeting(mut self, text: impl Into<String>, interruptible: bool) -> Self {
        self.greeting = Some((text.into(), interruptible));
        self
    }

    /// On `stop`, ends the session at once ([`VoiceInput::hang_up`]) instead of letting it
    /// answer the last turn ([`VoiceInput::close`], the default).
    pub fn hang_up_on_stop(mut self, hang_up: bool) -> Self {
        self.hang_up_on_stop = hang_up;
        self
    }

    /// Calls `hook` with each session event (transcripts, approvals, turn reports) before
    /// the bridge handles it.
    pub fn on_event(mut self, hook: impl FnMut(&VoiceEvent) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with each message from Twilio once the session runs (`start` first; then
    /// media, marks, key presses, `stop`), with the session's input (to `say` something on a
    /// key press, say).
    pub fn on_message(
        mut self,
        hook: impl FnMut(&TwilioInbound, &VoiceInput) + Send + 'static,
    ) -> Self {
        self.on_message = Some(Box::new(hook));
        self
    }

    /// Runs the call (see [`run_twilio`]).
    pub async fn run<S, K>(self, inbound: S, outbound: K) -> Result<TwilioCallReport>
    where
        S: Stream<Item = Result<String>>,
        K: Sink<String>,
        K::Error: Display,
    {
        let mut inbound = std::pin::pin!(inbound);
        let mut outbound = std::pin::pin!(outbound);
        let mut rejected = Vec::new();
        let start = loop {
            let text = match inbound.next().await {
                Some(Ok(text)) => text,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(unavailable(
                        "the Twilio stream ended before its `start` message".into(),
                    ));
                }
            };
            match TwilioInbound::parse(&text) {
                Ok(TwilioInbound::Start(start)) => break start,
                Ok(TwilioInbound::Connected(c)) => {
                    tracing::debug!(protocol = %c.protocol, version = %c.version, "twilio: connected");
                }
                Ok(other) => {
                    tracing::debug!(
                        event = other.event(),
                        "twilio: message before `start` ignored"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "twilio: skipped a message");
                    rejected.push(e);
                }
            }
        };
        let twilio_format = start.start.media_format.audio_format()?;
        let config = self.session.config();
        let decoder = AudioConverter::new(twilio_format, config.stt.format, FRAME)?;
        let encoder = AudioConverter::new(config.tts.format, AudioFormat::TELEPHONY, FRAME)?;
        let (input, events) = self.session.start().await?;
        tracing::info!(
            stream_sid = start.stream_sid(),
            call_sid = %start.start.call_sid,
            "twilio: call started"
        );
        let mut call = Call {
            stream_sid: start.stream_sid().to_owned(),
            link: Link::new("twilio", "Twilio", input, self.on_event),
            decoder,
            encoder,
            clock: PlayClock::default(),
            hang_up_on_stop: self.hang_up_on_stop,
            on_message: self.on_message,
            report: TwilioCallReport {
                stream_sid: start.stream_sid().to_owned(),
                call_sid: start.start.call_sid.clone(),
                account_sid: start.start.account_sid.clone(),
                custom_parameters: start.start.custom_parameters.clone(),
                turns: Vec::new(),
                dtmf: String::new(),
                audio_in: Duration::ZERO,
                audio_out: Duration::ZERO,
                media_sent: 0,
                clears_sent: 0,
                rejected,
                error: None,
            },
        };
        if let Some(hook) = &mut call.on_message {
            hook(&TwilioInbound::Start(start), &call.link.input);
        }
        call.link.greet(self.greeting).await;
        pump(&mut call, inbound.as_mut(), &mut outbound, events).await;
        call.link.close(&mut outbound).await;
        call.report.error = call.link.error.take();
        tracing::info!(
            stream_sid = %call.report.stream_sid,
            turns = call.report.turns.len(),
            error = call.report.error.as_ref().map(tracing::field::display),
            "twilio: call ended"
        );
        Ok(call.report)
    }
}

/// A call in progress.
struct Call {
    stream_sid: String,
    link: Link,
    /// Twilio's µ-law (decoded) → the session's input format.
    decoder: AudioConverter,
    /// The session's output → 8 kHz for µ-law.
    encoder: AudioConverter,
    /// When the audio sent so far has played (then the encoder's tail is flushed).
    clock: PlayClock,
    hang_up_on_stop: bool,
    on_message: Option<MessageHook>,
    report: TwilioCallReport,
}

impl Bridge<String> for Call {
    type Inbound = String;

    fn parts(&mut self) -> (&mut Link, &mut AudioConverter) {
        (&mut self.link, &mut self.decoder)
    }

    /// Handles a message from Twilio; `false` once the stream has stopped.
    async fn on_message<K>(&mut self, text: String, _outbound: &mut Pin<&mut K>) -> bool
    where
        K: Sink<String>,
        K::Error: Display,
    {
        let message = match TwilioInbound::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                self.reject(e);
                return true;
            }
        };
        if let Some(hook) = &mut self.on_message {
            hook(&message, &self.link.input);
        }
        match message {
            TwilioInbound::Media(m) if m.media.is_inbound() => {
                let bytes = match m.media.decode_payload() {
                    Ok(b) => b,
                    Err(e) => {
                        self.reject(e);
                        return true;
                    }
                };
                let frame = mulaw::decode_frame(&bytes);
                self.report.audio_in += frame.duration();
                match self.decoder.push(&frame) {
                    Ok(frames) => self.link.push(frames).await,
                    Err(e) => tracing::warn!(error = %e, "twilio: caller audio not converted"),
                }
            }
            TwilioInbound::Stop(_) => {
                tracing::debug!("twilio: stop");
                self.end_input(self.hang_up_on_stop).await;
                return false;
            }
            TwilioInbound::Dtmf(d) => {
                tracing::debug!(digit = %d.dtmf.digit, "twilio: key pressed");
                self.report.dtmf.push_str(&d.dtmf.digit);
            }
            TwilioInbound::Mark(m) => tracing::debug!(name = %m.mark.name, "twilio: mark"),
            other => tracing::debug!(event = other.event(), "twilio: message ignored"),
        }
        true
    }

    async fn on_event<K>(&mut self, event: VoiceEvent, outbound: &mut Pin<&mut K>)
    where
        K: Sink<String>,
        K::Error: Display,
    {
        match event {
            VoiceEvent::Audio(frame) => {
                if frame.format() != self.encoder.from_format() {
                    self.flush_audio(outbound).await;
                    match AudioConverter::new(frame.format(), AudioFormat::TELEPHONY, FRAME) {
                        Ok(c) => self.encoder = c,
                        Err(e) => {
                            tracing::warn!(error = %e, "twilio: session audio not converted");
                            return;
                        }
                    }
                }
                self.clock.sent(Instant::now(), frame.duration());
                self.report.audio_out += frame.duration();
                match self.encoder.push(&frame) {
                    Ok(frames) => self.send_audio(frames, outbound).await,
                    Err(e) => tracing::warn!(error = %e, "twilio: session audio not converted"),
                }
            }
            VoiceEvent::Interrupted => {
                if let Err(e) = self.encoder.reset() {
                    tracing::warn!(error = %e, "twilio: resetting the audio converter");
                }
                self.clock.clear();
                if self
                    .send(TwilioOutbound::clear(self.stream_sid.clone()), outbound)
                    .await
                {
                    self.report.clears_sent += 1;
                }
            }
            VoiceEvent::TurnCompleted(report) => self.report.turns.push(report),
            VoiceEvent::Error(message) => {
                tracing::warn!(error = %message, "twilio: the session reported an error");
            }
            _ => {}
        }
    }

    /// The reply's tail goes out.
    async fn on_ended<K>(&mut self, _error: Option<&Error>, outbound: &mut Pin<&mut K>)
    where
        K: Sink<String>,
        K::Error: Display,
    {
        self.flush_audio(outbound).await;
    }

    fn deadline(&self) -> Option<Instant> {
        self.clock.deadline()
    }

    /// The reply paused or ended: send its tail.
    async fn on_deadline<K>(&mut self, outbound: &mut Pin<&mut K>)
    where
        K: Sink<String>,
        K::Error: Display,
    {
        self.clock.clear();
        self.flush_audio(outbound).await;
    }
}

impl Call {
    /// Sends what waits in the encoder (padded to a whole chunk).
    async fn flush_audio<K>(&mut self, outbound: &mut Pin<&mut K>)
    where
        K: Sink<String>,
        K::Error: Display,
    {
        match self.encoder.flush() {
            Ok(frames) => self.send_audio(frames, outbound).await,
            Err(e) => tracing::warn!(error = %e, "twilio: session audio not converted"),
        }
    }

    async fn send_audio<K>(&mut self, frames: Vec<AudioFrame>, outbound: &mut Pin<&mut K>)
    where
        K: Sink<String>,
        K::Error: Display,
    {
        for frame in frames {
            let bytes = match mulaw::encode_frame(&frame) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "twilio: session audio not encoded");
                    continue;
                }
            };
            let message = TwilioOutbound::media(self.stream_sid.clone(), &bytes);
            if !self.send(message, outbound).await {
                return;
            }
            self.report.media_sent += 1;
        }
    }

    /// Sends a message; a failure hangs up (the call is gone). `false` when nothing was sent.
    async fn send<K>(&mut self, message: TwilioOutbound, outbound: &mut Pin<&mut K>) -> bool
    where
        K: Sink<String>,
        K::Error: Display,
    {
        if !self.link.sink_open {
            return false;
        }
        match message.to_json() {
            Ok(text) => self.link.send(text, outbound).await,
            Err(e) => {
                tracing::warn!(error = %e, "twilio: message not sent");
                false
            }
        }
    }

    fn reject(&mut self, error: Error) {
        tracing::warn!(error = %error, "twilio: skipped a message");
        self.report.rejected.push(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_messages_parse() {
        let start = TwilioInbound::parse(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",
            "callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw",
            "sampleRate":8000,"channels":1},"customParameters":{"FirstName":"Jane"}},"streamSid":"MZ1"}"#,
        )
        .expect("start");
        let TwilioInbound::Start(start) = start else {
            panic!("not a start: {start:?}");
        };
        assert_eq!(start.stream_sid(), "MZ1");
        assert_eq!(start.start.call_sid, "CA1");
        assert_eq!(start.start.custom_parameters["FirstName"], "Jane");
        assert_eq!(
            start.start.media_format.audio_format().expect("format"),
            AudioFormat::TELEPHONY
        );
        let media = TwilioInbound::parse(
            r#"{"event":"media","sequenceNumber":4,"media":{"track":"inbound","chunk":"2",
            "timestamp":"5","payload":"/w=="},"streamSid":"MZ1"}"#,
        )
        .expect("media");
        let TwilioInbound::Media(media) = media else {
            panic!("not media: {media:?}");
        };
        assert_eq!(media.sequence_number.as_deref(), Some("4"));
        assert_eq!(media.media.decode_payload().expect("base64"), vec![0xFF]);
        assert!(matches!(
            TwilioInbound::parse(r#"{"event":"something-new","x":1}"#),
            Ok(TwilioInbound::Other)
        ));
        assert!(TwilioInbound::parse("{").is_err());
    }
}
