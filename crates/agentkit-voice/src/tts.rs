//! Text-to-speech: the [`TextToSpeech`] contract, batch and streaming.
//!
//! A streaming session carries several *contexts* (one per spoken reply): text is pushed to a
//! context, [`TtsStream::flush`] asks for its audio now, [`TtsStream::cancel`] drops it (on
//! barge-in) and the provider stops sending its audio. As for speech-to-text, a session is a
//! pair of channels ([`TtsStream`] for the host, [`TtsStreamBackend`] for the provider).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::{Error, Result};
use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::audio::{AudioClip, AudioFormat, AudioFrame, FRAME};

/// What a synthesis is asked for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TtsOptions {
    /// The audio wanted (16 kHz mono by default; providers resample when theirs differs).
    pub format: AudioFormat,
    /// The provider's voice.
    pub voice: Option<String>,
    /// The provider's model.
    pub model: Option<String>,
    /// Speaking rate, 1.0 normal.
    pub speed: Option<f32>,
}

impl Default for TtsOptions {
    fn default() -> Self {
        Self {
            format: AudioFormat::SPEECH,
            voice: None,
            model: None,
            speed: None,
        }
    }
}

impl TtsOptions {
    /// Options producing audio of `format`.
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    /// Sets the voice.
    pub fn with_voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// Sets the model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
}

/// What a streaming synthesis reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TtsEvent {
    /// Audio of a context, in order.
    Audio {
        /// The context.
        context: String,
        /// The audio.
        frame: AudioFrame,
    },
    /// All audio of the text flushed so far in this context has been sent.
    Flushed {
        /// The context.
        context: String,
    },
}

/// What the host asks of a streaming synthesis.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TtsCommand {
    /// Text to speak in a context (opened by its first text).
    Text {
        /// The context.
        context: String,
        /// The text.
        text: String,
    },
    /// Speak the context's pending text now; a [`TtsEvent::Flushed`] follows its audio.
    Flush {
        /// The context.
        context: String,
    },
    /// Drop the context: its pending text and any audio not yet sent.
    Cancel {
        /// The context.
        context: String,
    },
    /// End the session.
    Close,
}

/// The host side of a streaming synthesis.
#[derive(Debug)]
pub struct TtsStream {
    commands: mpsc::Sender<TtsCommand>,
    events: mpsc::Receiver<Result<TtsEvent>>,
}

/// The provider side of a streaming synthesis.
#[derive(Debug)]
pub struct TtsStreamBackend {
    /// What the host sends.
    pub commands: mpsc::Receiver<TtsCommand>,
    /// Where events go; an error is the session's last event.
    pub events: mpsc::Sender<Result<TtsEvent>>,
}

impl TtsStreamBackend {
    /// Sends an event; false when the host has gone.
    pub async fn send(&self, event: TtsEvent) -> bool {
        self.events.send(Ok(event)).await.is_ok()
    }

    /// Sends the error that ends the session.
    pub async fn fail(&self, error: Error) {
        let _ = self.events.send(Err(error)).await;
    }
}

/// A connected pair: the host's [`TtsStream`] and the provider's [`TtsStreamBackend`].
pub fn tts_channel(capacity: usize) -> (TtsStream, TtsStreamBackend) {
    let (ctx, crx) = mpsc::channel(capacity.max(1));
    let (etx, erx) = mpsc::channel(capacity.max(1));
    (
        TtsStream {
            commands: ctx,
            events: erx,
        },
        TtsStreamBackend {
            commands: crx,
            events: etx,
        },
    )
}

fn ended() -> Error {
    Error::Unavailable {
        message: "the text-to-speech stream has ended".into(),
        source: None,
    }
}

impl TtsStream {
    async fn send(&self, command: TtsCommand) -> Result<()> {
        self.commands.send(command).await.map_err(|_| ended())
    }

    /// Adds text to `context`.
    pub async fn push_text(&self, context: &str, text: impl Into<String>) -> Result<()> {
        self.send(TtsCommand::Text {
            context: context.to_owned(),
            text: text.into(),
        })
        .await
    }

    /// Speaks `context`'s pending text now.
    pub async fn flush(&self, context: &str) -> Result<()> {
        self.send(TtsCommand::Flush {
            context: context.to_owned(),
        })
        .await
    }

    /// Drops `context`.
    pub async fn cancel(&self, context: &str) -> Result<()> {
        self.send(TtsCommand::Cancel {
            context: context.to_owned(),
        })
        .await
    }

    /// Ends the session.
    pub async fn close(&self) -> Result<()> {
        self.send(TtsCommand::Close).await
    }

    /// The next event; `None` once the session has ended.
    pub async fn next(&mut self) -> Option<Result<TtsEvent>> {
        self.events.recv().await
    }

    /// Splits into the command sender and the event receiver.
    pub fn split(self) -> (mpsc::Sender<TtsCommand>, mpsc::Receiver<Result<TtsEvent>>) {
        (self.commands, self.events)
    }
}

/// A text-to-speech provider.
///
/// Implementations are tested with the conformance suite in `testkit` (feature `testkit`).
/// A provider without a streaming API implements `stream` with [`buffered_stream`].
#[async_trait]
pub trait TextToSpeech: Send + Sync {
    /// The provider's name, used in usage records (`tts:<name>`) and errors.
    fn name(&self) -> &str;

    /// Speaks `text` into one clip of `options.format`.
    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip>;

    /// Opens a streaming session.
    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream>;
}

/// A streaming session over a batch-only provider: each context's text is buffered and
/// synthesised with one `synthesize` call at each flush, its audio sent in 20 ms frames. A
/// cancel drops the context's pending text and stops a synthesis of it in flight. Contexts are
/// spoken in the order they were flushed.
pub fn buffered_stream<T>(provider: Arc<T>, options: &TtsOptions) -> TtsStream
where
    T: TextToSpeech + ?Sized + 'static,
{
    let (stream, mut backend) = tts_channel(64);
    let options = options.clone();
    tokio::spawn(async move {
        let mut pending: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<(String, String)> = Default::default();
        let mut current: Option<(String, BoxFuture<'static, Result<AudioClip>>)> = None;
        loop {
            if current.is_none()
                && let Some((context, text)) = queue.pop_front()
            {
                let provider = Arc::clone(&provider);
                let options = options.clone();
                let fut = async move {
                    if text.trim().is_empty() {
                        return Ok(AudioClip::new(options.format));
                    }
                    provider.synthesize(&text, &options).await
                }
                .boxed();
                current = Some((context, fut));
            }
            tokio::select! {
                command = backend.commands.recv() => match command {
                    None | Some(TtsCommand::Close) => return,
                    Some(TtsCommand::Text { context, text }) => {
                        pending.entry(context).or_default().push_str(&text);
                    }
                    Some(TtsCommand::Flush { context }) => {
                        let text = pending.remove(&context).unwrap_or_default();
                        queue.push_back((context, text));
                    }
                    Some(TtsCommand::Cancel { context }) => {
                        pending.remove(&context);
                        queue.retain(|(c, _)| *c != context);
                        if current.as_ref().is_some_and(|(c, _)| *c == context) {
                            current = None;
                        }
                    }
                },
                result = async { (&mut current.as_mut().expect("guarded").1).await }, if current.is_some() => {
                    let (context, _) = current.take().expect("guarded");
                    match result {
                        Ok(clip) => {
                            for frame in clip.frames(FRAME) {
                                if !backend.send(TtsEvent::Audio { context: context.clone(), frame }).await {
                                    return;
                                }
                            }
                            if !backend.send(TtsEvent::Flushed { context }).await {
                                return;
                            }
                        }
                        Err(e) => {
                            backend.fail(e).await;
                            return;
                        }
                    }
                }
            }
        }
    });
    stream
}
