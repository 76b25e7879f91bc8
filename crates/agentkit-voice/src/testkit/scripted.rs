//! Scripted speech providers: deterministic, offline, with configurable delays (run them
//! under paused Tokio time for exact latency checks).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::{Error, Result};
use async_trait::async_trait;

use crate::audio::{AudioClip, AudioFormat};
use crate::stt::{
    SpeechToText, SttCommand, SttEvent, SttOptions, SttStream, Transcript, stt_channel,
};
use crate::tts::{self, TextToSpeech, TtsOptions, TtsStream};

/// Sleeps unless `d` is zero (a zero sleep still waits for the timer wheel's next tick, about
/// a millisecond, which a zero-delay provider must not add).
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct SttState {
    script: Mutex<VecDeque<String>>,
    final_delay: Duration,
    interim_after: Option<Duration>,
    fail_after: Option<Duration>,
}

/// Speech-to-text that "hears" its script: each utterance (voiced audio up to a finalize)
/// is transcribed as the script's next line, `final_delay` after the finalize. With
/// `interim_after`, an interim transcript (the line's first word) follows that much voiced
/// audio. With `fail_after`, the stream fails with [`Error::Unavailable`] after that much
/// audio, as a connection cut mid-utterance would.
#[derive(Debug, Clone)]
pub struct ScriptedStt {
    state: Arc<SttState>,
}

impl ScriptedStt {
    /// Hears `lines`, one per utterance.
    pub fn new(lines: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            state: Arc::new(SttState {
                script: Mutex::new(lines.into_iter().map(Into::into).collect()),
                final_delay: Duration::ZERO,
                interim_after: None,
                fail_after: None,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut SttState)) -> Self {
        let mut state = SttState {
            script: Mutex::new(lock(&self.state.script).clone()),
            final_delay: self.state.final_delay,
            interim_after: self.state.interim_after,
            fail_after: self.state.fail_after,
        };
        f(&mut state);
        Self {
            state: Arc::new(state),
        }
    }

    /// Sends each final transcript this long after the finalize.
    pub fn with_final_delay(self, delay: Duration) -> Self {
        self.with(|s| s.final_delay = delay)
    }

    /// Sends an interim transcript after this much voiced audio of an utterance.
    pub fn with_interim_after(self, voiced: Duration) -> Self {
        self.with(|s| s.interim_after = Some(voiced))
    }

    /// Fails the stream after this much audio.
    pub fn failing_after(self, audio: Duration) -> Self {
        self.with(|s| s.fail_after = Some(audio))
    }

    /// Lines not heard yet.
    pub fn remaining(&self) -> usize {
        lock(&self.state.script).len()
    }

    fn next_line(&self) -> String {
        lock(&self.state.script).pop_front().unwrap_or_default()
    }
}

#[async_trait]
impl SpeechToText for ScriptedStt {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn transcribe(&self, audio: &AudioClip, _options: &SttOptions) -> Result<Transcript> {
        pause(self.state.final_delay).await;
        Ok(Transcript::new(self.next_line()).with_timing(Duration::ZERO, audio.duration()))
    }

    async fn stream(&self, options: &SttOptions) -> Result<SttStream> {
        let (stream, mut backend) = stt_channel(64);
        let this = self.clone();
        let format = options.format;
        tokio::spawn(async move {
            let mut audio = Duration::ZERO;
            let mut voiced = Duration::ZERO;
            let mut interim_sent = false;
            while let Some(command) = backend.commands.recv().await {
                match command {
                    SttCommand::Audio(frame) => {
                        if frame.format() != format {
                            backend
                                .fail(Error::InvalidInput(format!(
                                    "{} audio sent to a {format} stream",
                                    frame.format()
                                )))
                                .await;
                            return;
                        }
                        audio += frame.duration();
                        if this.state.fail_after.is_some_and(|f| audio >= f) {
                            backend
                                .fail(Error::Unavailable {
                                    message: "scripted: the connection was cut".into(),
                                    source: None,
                                })
                                .await;
                            return;
                        }
                        if frame.level_dbfs() > -45.0 {
                            if voiced.is_zero() && !backend.send(SttEvent::SpeechStarted).await {
                                return;
                            }
                            voiced += frame.duration();
                        }
                        if let Some(after) = this.state.interim_after
                            && !interim_sent
                            && voiced >= after
                        {
                            interim_sent = true;
                            let first = lock(&this.state.script)
                                .front()
                                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
                                .unwrap_or_default();
                            if !backend
                                .send(SttEvent::Interim(Transcript::new(first)))
                                .await
                            {
                                return;
                            }
                        }
                    }
                    SttCommand::Finalize | SttCommand::Close => {
                        let close = matches!(command, SttCommand::Close);
                        if !voiced.is_zero() {
                            pause(this.state.final_delay).await;
                            let line = this.next_line();
                            let t = Transcript::new(line).with_timing(audio - voiced, voiced);
                            if !backend.send(SttEvent::Final(t)).await
                                || !backend.send(SttEvent::UtteranceEnd).await
                            {
                                return;
                            }
                            voiced = Duration::ZERO;
                            interim_sent = false;
                        }
                        if close {
                            return;
                        }
                    }
                }
            }
        });
        Ok(stream)
    }
}

#[derive(Debug)]
struct TtsState {
    first_audio_delay: Duration,
    per_word: Duration,
    spoken: Mutex<Vec<String>>,
}

/// Text-to-speech that "speaks" a tone of `per_word` per word, `first_audio_delay` after it
/// is asked. It records what it was asked to speak.
#[derive(Debug, Clone)]
pub struct ScriptedTts {
    state: Arc<TtsState>,
}

impl Default for ScriptedTts {
    fn default() -> Self {
        Self::new(Duration::ZERO, Duration::from_millis(100))
    }
}

impl ScriptedTts {
    /// A synthesiser with these delays.
    pub fn new(first_audio_delay: Duration, per_word: Duration) -> Self {
        Self {
            state: Arc::new(TtsState {
                first_audio_delay,
                per_word,
                spoken: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The texts synthesised so far, in order.
    pub fn spoken(&self) -> Vec<String> {
        lock(&self.state.spoken).clone()
    }
}

#[async_trait]
impl TextToSpeech for ScriptedTts {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip> {
        pause(self.state.first_audio_delay).await;
        lock(&self.state.spoken).push(text.trim().to_owned());
        let words = text.split_whitespace().count() as u32;
        let format: AudioFormat = options.format;
        Ok(super::tone(format, self.state.per_word * words, 2000))
    }

    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream> {
        Ok(tts::buffered_stream(Arc::new(self.clone()), options))
    }
}
