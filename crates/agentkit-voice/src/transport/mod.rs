//! Transports: how a host carries a [`VoiceSession`](crate::VoiceSession) over the wire it
//! already has, without this crate depending on a web framework.
//!
//! Each transport runs a session over a *stream* of inbound messages and a *sink* of outbound
//! ones (the [`futures`] traits), so it fits any WebSocket library: split an axum
//! `WebSocket` (or a `tokio-tungstenite` stream) into its sink and stream halves and map the
//! message type. The transport starts the session, converts audio both ways, forwards
//! barge-in and returns a report when the session ends.
//!
//! - [`twilio`]: Twilio Media Streams (bidirectional, `<Connect><Stream>`): µ-law 8 kHz in
//!   JSON text messages, [`twilio::run_twilio`].
//! - [`websocket`]: a small documented protocol for browser and app clients: binary PCM16
//!   audio and JSON control and events, [`websocket::run_websocket`].
//!
//! Both transports share the rules:
//!
//! - **Bad input is skipped, never fatal.** A message that cannot be parsed becomes a typed
//!   [`Error`] (`MalformedResponse` from Twilio, `InvalidInput` from a
//!   client), is logged, counted in the report's `rejected` list and skipped.
//! - **The caller's stream ending closes the session** ([`VoiceInput::close`]: the last turn
//!   is answered and played, then the session ends); a transport *error* on the inbound side
//!   hangs up ([`VoiceInput::hang_up`]). An outbound send that fails hangs up too.
//! - **The run returns when the session has ended** ([`VoiceEvent::Ended`]), after closing
//!   the outbound sink.
//!
//! [`AudioConverter`] is the streaming format conversion both use (channels, sample rate and
//! re-framing into fixed frames); hosts writing another transport can use it too.
//!
//! [`VoiceInput::close`]: crate::VoiceInput::close
//! [`VoiceInput::hang_up`]: crate::VoiceInput::hang_up
//! [`VoiceEvent::Ended`]: crate::VoiceEvent::Ended

pub mod twilio;
pub mod websocket;

use std::fmt::Display;
use std::pin::Pin;
use std::time::Duration;

use agentkit_core::{Error, Result};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::audio::{AudioFormat, AudioFrame, Resampler, remix};
use crate::session::{VoiceEvent, VoiceInput};

/// Streaming conversion of PCM16 audio from one format to another, cut into frames of a fixed
/// length: channels are mixed down (averaged) or duplicated, the sample rate is converted with
/// a streaming [`Resampler`], and the output is re-framed.
///
/// Push frames as they come ([`AudioConverter::push`]); what does not fill a whole frame yet
/// waits. [`AudioConverter::flush`] ends a stretch of audio (the resampler's tail, the last
/// frame padded with silence); [`AudioConverter::reset`] drops what waits (a barge-in).
pub struct AudioConverter {
    from: AudioFormat,
    to: AudioFormat,
    /// Samples (all channels) in one output frame.
    frame_len: usize,
    resampler: Option<Resampler>,
    /// Converted samples waiting for a whole frame.
    pending: Vec<i16>,
}

impl std::fmt::Debug for AudioConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioConverter")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("frame_len", &self.frame_len)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl AudioConverter {
    /// Converts `from` audio to frames of `to` lasting `frame` each; an empty format or a
    /// frame shorter than one sample is an [`Error::InvalidInput`].
    pub fn new(from: AudioFormat, to: AudioFormat, frame: Duration) -> Result<Self> {
        // `AudioFrame::new` checks a format (both values at least 1).
        AudioFrame::new(from, Vec::new())?;
        AudioFrame::new(to, Vec::new())?;
        let frame_len = to.samples_in(frame);
        if frame_len == 0 {
            return Err(Error::InvalidInput(format!(
                "a {frame:?} frame holds no sample of {to}"
            )));
        }
        Ok(Self {
            from,
            to,
            frame_len,
            resampler: Self::resampler(from, to)?,
            pending: Vec::new(),
        })
    }

    fn resampler(from: AudioFormat, to: AudioFormat) -> Result<Option<Resampler>> {
        if from.sample_rate == to.sample_rate {
            return Ok(None);
        }
        let mid = AudioFormat {
            sample_rate: from.sample_rate,
            channels: to.channels,
        };
        Resampler::new(mid, to.sample_rate).map(Some)
    }

    /// The input format.
    pub fn from_format(&self) -> AudioFormat {
        self.from
    }

    /// The output format.
    pub fn to_format(&self) -> AudioFormat {
        self.to
    }

    /// Converts `frame` (of the input format; another format is an [`Error::InvalidInput`])
    /// and returns the whole output frames now ready.
    pub fn push(&mut self, frame: &AudioFrame) -> Result<Vec<AudioFrame>> {
        if frame.format() != self.from {
            return Err(Error::InvalidInput(format!(
                "a {} frame sent to a converter from {}",
                frame.format(),
                self.from
            )));
        }
        let remixed = remix(frame.samples(), self.from.channels, self.to.channels);
        let converted = match &mut self.resampler {
            Some(r) => r.process(&remixed)?,
            None => remixed,
        };
        self.pending.extend_from_slice(&converted);
        self.take_frames()
    }

    /// Ends a stretch of audio: returns the rest (the resampler's tail; the last frame padded
    /// with silence) and starts afresh.
    pub fn flush(&mut self) -> Result<Vec<AudioFrame>> {
        if let Some(r) = &mut self.resampler {
            let tail = r.finish()?;
            self.pending.extend_from_slice(&tail);
            self.resampler = Self::resampler(self.from, self.to)?;
        }
        let partial = self.pending.len() % self.frame_len;
        if partial != 0 {
            self.pending
                .resize(self.pending.len() + self.frame_len - partial, 0);
        }
        self.take_frames()
    }

    /// Drops the audio waiting (in the resampler and in a partial frame).
    pub fn reset(&mut self) -> Result<()> {
        self.pending.clear();
        self.resampler = Self::resampler(self.from, self.to)?;
        Ok(())
    }

    fn take_frames(&mut self) -> Result<Vec<AudioFrame>> {
        let whole = self.pending.len() / self.frame_len * self.frame_len;
        let frames = self.pending[..whole]
            .chunks_exact(self.frame_len)
            .map(|c| AudioFrame::new(self.to, c.to_vec()))
            .collect::<Result<Vec<_>>>()?;
        self.pending.drain(..whole);
        Ok(frames)
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An [`Error::Unavailable`] for a transport failure.
fn unavailable(message: String) -> Error {
    Error::Unavailable {
        message,
        source: None,
    }
}

/// A host's observer of the session's events (transcripts, approvals, reports), called before
/// the transport handles each one.
type EventHook = Box<dyn FnMut(&VoiceEvent) + Send>;

/// What a transport keeps of a running session, whatever the wire: the session's input,
/// whether the outbound sink is still open, the host's event hook and what ended the session
/// abnormally (the first failure).
struct Link {
    /// The transport, for logs (`twilio`, `voice websocket`).
    name: &'static str,
    /// The other end, for errors (`Twilio`, `the client`).
    peer: &'static str,
    input: VoiceInput,
    sink_open: bool,
    on_event: Option<EventHook>,
    error: Option<Error>,
}

impl Link {
    fn new(
        name: &'static str,
        peer: &'static str,
        input: VoiceInput,
        on_event: Option<EventHook>,
    ) -> Self {
        Self {
            name,
            peer,
            input,
            sink_open: true,
            on_event,
            error: None,
        }
    }

    /// Says the greeting, if there is one, as the session starts.
    async fn greet(&mut self, greeting: Option<(String, bool)>) {
        if let Some((text, interruptible)) = greeting
            && let Err(e) = self.input.say(text, interruptible).await
        {
            tracing::warn!(error = %e, "{}: the greeting was not said", self.name);
        }
    }

    /// Pushes frames into the session.
    async fn push(&mut self, frames: Vec<AudioFrame>) {
        for frame in frames {
            if self.input.push_audio(frame).await.is_err() {
                // The session ended; its `Ended` event is on the way.
                return;
            }
        }
    }

    /// The peer's audio has ended: the rest of it (what waits in `converter`) goes in, then
    /// the session closes (or hangs up).
    async fn end_input(&mut self, converter: &mut AudioConverter, hang_up: bool) {
        match converter.flush() {
            Ok(frames) => self.push(frames).await,
            Err(e) => tracing::warn!(error = %e, "{}: inbound audio not converted", self.name),
        }
        let result = if hang_up {
            self.input.hang_up().await
        } else {
            self.input.close().await
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "{}: the session had already ended", self.name);
        }
    }

    /// Sends a message; a failure hangs up (the peer is gone). `false` when nothing was sent.
    async fn send<M, K>(&mut self, message: M, outbound: &mut Pin<&mut K>) -> bool
    where
        K: Sink<M>,
        K::Error: Display,
    {
        if !self.sink_open {
            return false;
        }
        match outbound.send(message).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "{}: sending failed; hanging up", self.name);
                self.sink_open = false;
                self.fail(unavailable(format!("sending to {} failed: {e}", self.peer)));
                if let Err(e) = self.input.hang_up().await {
                    tracing::debug!(error = %e, "{}: the session had already ended", self.name);
                }
                false
            }
        }
    }

    /// Closes the outbound sink, unless sending already failed.
    async fn close<M, K>(&mut self, outbound: &mut Pin<&mut K>)
    where
        K: Sink<M>,
        K::Error: Display,
    {
        if self.sink_open
            && let Err(e) = outbound.close().await
        {
            tracing::debug!(error = %e, "{}: closing the outbound sink", self.name);
        }
    }

    /// Records what ended the session (the first failure wins).
    fn fail(&mut self, error: Error) {
        match &self.error {
            None => self.error = Some(error),
            Some(first) => {
                tracing::debug!(error = %error, first = %first, "{}: a later failure", self.name);
            }
        }
    }
}

/// A transport's part in [`pump`]: what it does with the session's events and the peer's
/// messages (`M`: a message to the peer). [`pump`] does the rest, alike for every transport: the host's hook first, the
/// session's end, the inbound stream ending (the session closes) or breaking (it hangs up).
trait Bridge<M> {
    /// A message from the peer.
    type Inbound;

    /// The session's link, and the converter of the peer's audio into the session's format.
    fn parts(&mut self) -> (&mut Link, &mut AudioConverter);

    /// Handles a session event (not `Ended`).
    async fn on_event<K>(&mut self, event: VoiceEvent, outbound: &mut Pin<&mut K>)
    where
        K: Sink<M>,
        K::Error: Display;

    /// The session has ended (`error` when it failed): the last messages to the peer.
    async fn on_ended<K>(&mut self, error: Option<&Error>, outbound: &mut Pin<&mut K>)
    where
        K: Sink<M>,
        K::Error: Display;

    /// Handles a message from the peer; `false` once the peer has finished sending.
    async fn on_message<K>(&mut self, message: Self::Inbound, outbound: &mut Pin<&mut K>) -> bool
    where
        K: Sink<M>,
        K::Error: Display;

    /// When [`Bridge::on_deadline`] is due (never, by default).
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// The deadline has passed.
    async fn on_deadline<K>(&mut self, _outbound: &mut Pin<&mut K>)
    where
        K: Sink<M>,
        K::Error: Display,
    {
    }

    /// The peer's audio has ended: the rest goes in, then the session closes (or hangs up).
    async fn end_input(&mut self, hang_up: bool) {
        let (link, converter) = self.parts();
        link.end_input(converter, hang_up).await;
    }
}

/// Runs `bridge` until the session has ended: session events (first), the bridge's deadline
/// and the peer's messages, in that order of priority.
async fn pump<M, B, S, K>(
    bridge: &mut B,
    mut inbound: Pin<&mut S>,
    outbound: &mut Pin<&mut K>,
    mut events: mpsc::Receiver<VoiceEvent>,
) where
    B: Bridge<M>,
    S: Stream<Item = Result<B::Inbound>>,
    K: Sink<M>,
    K::Error: Display,
{
    let mut inbound_open = true;
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => {
                    if let Some(hook) = &mut bridge.parts().0.on_event {
                        hook(&event);
                    }
                    if let VoiceEvent::Ended(result) = event {
                        bridge.on_ended(result.as_ref().err(), outbound).await;
                        if let Err(e) = result {
                            bridge.parts().0.fail(e);
                        }
                        return;
                    }
                    bridge.on_event(event, outbound).await;
                }
                None => {
                    let e = unavailable("the voice session stopped without ending".into());
                    bridge.parts().0.fail(e);
                    return;
                }
            },
            () = sleep_until(bridge.deadline()) => bridge.on_deadline(outbound).await,
            message = inbound.next(), if inbound_open => match message {
                Some(Ok(message)) => inbound_open = bridge.on_message(message, outbound).await,
                Some(Err(e)) => {
                    let link = bridge.parts().0;
                    tracing::warn!(error = %e, "{}: the inbound stream broke", link.name);
                    link.fail(e);
                    bridge.end_input(true).await;
                    inbound_open = false;
                }
                None => {
                    tracing::debug!("{}: the inbound stream ended", bridge.parts().0.name);
                    bridge.end_input(false).await;
                    inbound_open = false;
                }
            },
        }
    }
}

/// When the transport's outbound audio stops, so the converter's tail can be flushed: the
/// moment the audio sent so far has played out.
#[derive(Debug, Default)]
struct PlayClock {
    until: Option<Instant>,
}

impl PlayClock {
    /// Audio of `duration` was sent at `now`.
    fn sent(&mut self, now: Instant, duration: Duration) {
        let start = self.until.filter(|&u| u > now).unwrap_or(now);
        self.until = Some(start + duration);
    }

    /// When the audio sent ends, if some is pending a flush.
    fn deadline(&self) -> Option<Instant> {
        self.until
    }

    fn clear(&mut self) {
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{AudioClip, FRAME};

    fn tone(format: AudioFormat, ms: u64) -> AudioClip {
        let n = format.samples_in(Duration::from_millis(ms));
        let samples = (0..n)
            .map(|i| if (i / 20) % 2 == 0 { 3000 } else { -3000 })
            .collect();
        AudioClip::from_samples(format, samples).expect("clip")
    }

    #[test]
    fn resamples_into_whole_frames_and_keeps_the_duration() {
        let mut c = AudioConverter::new(AudioFormat::SPEECH, AudioFormat::TELEPHONY, FRAME)
            .expect("converter");
        let clip = tone(AudioFormat::SPEECH, 900);
        let mut out = Vec::new();
        // Odd pieces: 30 ms each.
        for piece in clip.frames(Duration::from_millis(30)) {
            out.extend(c.push(&piece).expect("push"));
        }
        out.extend(c.flush().expect("flush"));
        assert!(
            out.iter()
                .all(|f| f.samples().len() == 160 && f.format() == AudioFormat::TELEPHONY)
        );
        assert_eq!(out.len(), 45, "900 ms in 20 ms frames");
        assert!(out.iter().skip(1).all(|f| f.level_dbfs() > -30.0));
        assert!(c.flush().expect("again").is_empty());
    }

    #[test]
    fn remixes_channels_pads_the_tail_and_resets() {
        let stereo = AudioFormat {
            sample_rate: 8_000,
            channels: 2,
        };
        let mut c = AudioConverter::new(stereo, AudioFormat::TELEPHONY, FRAME).expect("converter");
        let frame = AudioFrame::new(stereo, [100i16, 300].repeat(200)).expect("frame");
        let out = c.push(&frame).expect("push");
        assert_eq!(out.len(), 1);
        assert!(out[0].samples().iter().all(|&s| s == 200));
        let tail = c.flush().expect("flush");
        assert_eq!(tail.len(), 1);
        assert_eq!(&tail[0].samples()[..40], &[200; 40]);
        assert!(tail[0].samples()[40..].iter().all(|&s| s == 0));
        c.push(&frame).expect("push");
        c.reset().expect("reset");
        assert!(
            c.flush().expect("flush").is_empty(),
            "reset dropped the partial frame"
        );
        assert!(
            c.push(&AudioFrame::silence(AudioFormat::SPEECH, FRAME))
                .is_err()
        );
        assert!(
            AudioConverter::new(AudioFormat::SPEECH, AudioFormat::SPEECH, Duration::ZERO).is_err()
        );
    }
}
