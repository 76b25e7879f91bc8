//! Speech-to-text: the [`SpeechToText`] contract, batch and streaming.
//!
//! A streaming session is a pair of channels: the host side ([`SttStream`]) pushes audio and
//! commands and reads events; the provider side ([`SttStreamBackend`]) is driven by the
//! provider's own task (a WebSocket, a local recogniser). Ending either side ends the session:
//! a provider that fails sends one error and stops; a host that drops its stream closes the
//! provider's connection.

use std::time::Duration;

use agentkit_core::{Error, Result};
use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::audio::{AudioClip, AudioFormat, AudioFrame};

/// What a transcription is asked for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SttOptions {
    /// The audio's format (16 kHz mono by default).
    pub format: AudioFormat,
    /// BCP-47 language (`en`, `en-US`); the provider's default or detection when unset.
    pub language: Option<String>,
    /// The provider's model, when it has several.
    pub model: Option<String>,
    /// Whether a stream sends interim (not yet final) transcripts.
    pub interim_results: bool,
}

impl Default for SttOptions {
    fn default() -> Self {
        Self {
            format: AudioFormat::SPEECH,
            language: None,
            model: None,
            interim_results: true,
        }
    }
}

impl SttOptions {
    /// Options for audio of `format`.
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    /// Sets the language.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Sets the model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
}

/// Recognised text.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// The text.
    pub text: String,
    /// The provider's confidence (0–1), when it gives one.
    pub confidence: Option<f32>,
    /// Where the text starts in the stream's audio.
    pub start: Duration,
    /// How much audio it covers.
    pub duration: Duration,
}

impl Transcript {
    /// A transcript of `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Sets the timing.
    pub fn with_timing(mut self, start: Duration, duration: Duration) -> Self {
        self.start = start;
        self.duration = duration;
        self
    }

    /// Sets the confidence.
    pub fn with_confidence(mut self, confidence: f32) -> Self {
        self.confidence = Some(confidence);
        self
    }
}

/// What a streaming session reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SttEvent {
    /// The provider heard speech begin (its own VAD).
    SpeechStarted,
    /// A transcript that may still change.
    Interim(Transcript),
    /// A transcript that will not change: the next one continues after it.
    Final(Transcript),
    /// The provider decided the utterance ended (a pause after the last final).
    UtteranceEnd,
}

/// What the host asks of a streaming session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SttCommand {
    /// Audio to transcribe.
    Audio(AudioFrame),
    /// Transcribe what was sent so far now and send it as final (the local VAD heard the end
    /// of speech).
    Finalize,
    /// No more audio: send the last results and end.
    Close,
}

/// The host side of a streaming transcription.
#[derive(Debug)]
pub struct SttStream {
    commands: mpsc::Sender<SttCommand>,
    events: mpsc::Receiver<Result<SttEvent>>,
}

/// The provider side of a streaming transcription.
#[derive(Debug)]
pub struct SttStreamBackend {
    /// What the host sends.
    pub commands: mpsc::Receiver<SttCommand>,
    /// Where events go; an error is the session's last event.
    pub events: mpsc::Sender<Result<SttEvent>>,
}

impl SttStreamBackend {
    /// Sends an event; false when the host has gone.
    pub async fn send(&self, event: SttEvent) -> bool {
        self.events.send(Ok(event)).await.is_ok()
    }

    /// Sends the error that ends the session.
    pub async fn fail(&self, error: Error) {
        let _ = self.events.send(Err(error)).await;
    }
}

/// A connected pair: the host's [`SttStream`] and the provider's [`SttStreamBackend`], with
/// room for `capacity` items each way (pushing audio waits when the provider falls behind).
pub fn stt_channel(capacity: usize) -> (SttStream, SttStreamBackend) {
    let (ctx, crx) = mpsc::channel(capacity.max(1));
    let (etx, erx) = mpsc::channel(capacity.max(1));
    (
        SttStream {
            commands: ctx,
            events: erx,
        },
        SttStreamBackend {
            commands: crx,
            events: etx,
        },
    )
}

fn ended() -> Error {
    Error::Unavailable {
        message: "the speech-to-text stream has ended".into(),
        source: None,
    }
}

impl SttStream {
    /// Sends audio; fails with [`Error::Unavailable`] once the session has ended (its error,
    /// if any, is the last event).
    pub async fn push(&self, frame: AudioFrame) -> Result<()> {
        self.commands
            .send(SttCommand::Audio(frame))
            .await
            .map_err(|_| ended())
    }

    /// Asks for the final transcript of what was sent so far.
    pub async fn finalize(&self) -> Result<()> {
        self.commands
            .send(SttCommand::Finalize)
            .await
            .map_err(|_| ended())
    }

    /// Ends the audio; the remaining events follow, then the stream ends.
    pub async fn close(&self) -> Result<()> {
        self.commands
            .send(SttCommand::Close)
            .await
            .map_err(|_| ended())
    }

    /// The next event; `None` once the session has ended.
    pub async fn next(&mut self) -> Option<Result<SttEvent>> {
        self.events.recv().await
    }

    /// Splits into the command sender and the event receiver, for a host that sends from one
    /// task and reads from another.
    pub fn split(self) -> (mpsc::Sender<SttCommand>, mpsc::Receiver<Result<SttEvent>>) {
        (self.commands, self.events)
    }
}

/// A speech-to-text provider.
///
/// `transcribe` is required; `stream` defaults to [`buffered_stream`], which transcribes the
/// audio received so far in one batch call at each [`SttCommand::Finalize`] (for providers
/// without a streaming API). Implementations are tested with the conformance suite in
/// `testkit` (feature `testkit`).
#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// The provider's name, used in usage records (`stt:<name>`) and errors.
    fn name(&self) -> &str;

    /// Transcribes a whole clip.
    async fn transcribe(&self, audio: &AudioClip, options: &SttOptions) -> Result<Transcript>;

    /// Opens a streaming session.
    async fn stream(&self, options: &SttOptions) -> Result<SttStream>;
}

/// A streaming session over a batch-only provider: audio is buffered, and at each
/// [`SttCommand::Finalize`] (and at [`SttCommand::Close`]) what was buffered is transcribed
/// with one `transcribe` call and sent as one [`SttEvent::Final`] (no interim results).
pub fn buffered_stream<T>(provider: std::sync::Arc<T>, options: &SttOptions) -> SttStream
where
    T: SpeechToText + ?Sized + 'static,
{
    let (stream, mut backend) = stt_channel(64);
    let options = options.clone();
    tokio::spawn(async move {
        let mut clip = AudioClip::new(options.format);
        let mut offset = Duration::ZERO;
        let mut speaking = false;
        while let Some(command) = backend.commands.recv().await {
            let last = matches!(command, SttCommand::Close);
            match command {
                SttCommand::Audio(frame) => {
                    if frame.format() != options.format {
                        backend
                            .fail(Error::InvalidInput(format!(
                                "{} audio sent to a {} stream",
                                frame.format(),
                                options.format
                            )))
                            .await;
                        return;
                    }
                    if !speaking {
                        speaking = true;
                        if !backend.send(SttEvent::SpeechStarted).await {
                            return;
                        }
                    }
                    let _ = clip.push(&frame);
                }
                SttCommand::Finalize | SttCommand::Close => {
                    if !clip.samples.is_empty() {
                        let duration = clip.duration();
                        match provider.transcribe(&clip, &options).await {
                            Ok(t) => {
                                let t = t.with_timing(offset, duration);
                                if !t.text.trim().is_empty()
                                    && !backend.send(SttEvent::Final(t)).await
                                {
                                    return;
                                }
                                if !backend.send(SttEvent::UtteranceEnd).await {
                                    return;
                                }
                            }
                            Err(e) => {
                                backend.fail(e).await;
                                return;
                            }
                        }
                        offset += duration;
                        clip.samples.clear();
                        speaking = false;
                    }
                }
            }
            if last {
                return;
            }
        }
    });
    stream
}
