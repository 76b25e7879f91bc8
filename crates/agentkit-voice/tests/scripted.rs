//! The speech conformance suites against the scripted providers (`testkit::ScriptedStt`,
//! `testkit::ScriptedTts`): the reference implementations pass every check, in both audio
//! formats and with delays, so a provider failing a check fails it for its own reasons. And
//! the suites' checks can fail: providers broken on purpose are caught.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::Result;
use agentkit_voice::stt::{SttCommand, stt_channel};
use agentkit_voice::testkit::conformance::{
    SttCase, stt_suite, tts_cancel, tts_cancel_unflushed, tts_suite,
};
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, speech};
use agentkit_voice::tts::{TtsCommand, tts_channel};
use agentkit_voice::{
    AudioClip, AudioFormat, SpeechToText, SttEvent, SttOptions, SttStream, TextToSpeech,
    Transcript, TtsOptions, TtsStream,
};
use async_trait::async_trait;

/// `duration` of voiced test audio of `format`, built frame by frame.
fn clip(format: AudioFormat, duration: Duration) -> AudioClip {
    let mut clip = AudioClip::new(format);
    for frame in speech(format, duration) {
        clip.push(&frame).expect("one format");
    }
    clip
}

/// Batch and streamed recognition, with an interim transcript before the final one and a
/// delay before each final: the suite hears the line once in each mode.
#[tokio::test]
async fn scripted_stt_passes_the_stt_conformance_suite() {
    for format in [AudioFormat::SPEECH, AudioFormat::TELEPHONY] {
        let line = "What is the status of order 427?";
        let stt = ScriptedStt::new([line, line])
            .with_interim_after(Duration::from_millis(200))
            .with_final_delay(Duration::from_millis(30));
        let case = SttCase::new(
            clip(format, Duration::from_secs(1)),
            "what is the status of order 427",
        );
        stt_suite(Arc::new(stt.clone()), &case).await;
        assert_eq!(stt.remaining(), 0, "one line for batch, one for the stream");
    }
}

/// Batch and streamed speech, and a cancel while the cancelled context is being synthesised:
/// the suite passes, and the cancelled text was never spoken.
#[tokio::test]
async fn scripted_tts_passes_the_tts_conformance_suite() {
    for format in [AudioFormat::SPEECH, AudioFormat::TELEPHONY] {
        tts_suite(Arc::new(ScriptedTts::default()), &TtsOptions::new(format)).await;
        let slow = ScriptedTts::new(Duration::from_millis(50), Duration::from_millis(100));
        tts_suite(Arc::new(slow.clone()), &TtsOptions::new(format)).await;
        let spoken = slow.spoken();
        assert!(
            spoken.iter().any(|t| t == "Still here."),
            "the context after the cancel was spoken: {spoken:?}"
        );
        assert!(
            !spoken.iter().any(|t| t.contains("cancelled")),
            "the cancel stopped the synthesis in flight: {spoken:?}"
        );
    }
}

/// A recogniser broken or demanding on purpose: it hears `line` in any audio; streaming, it
/// sends an interim transcript for every frame through small channels (so it waits for its
/// events to be read before it takes more audio), the final one at each finalize, and with
/// `dangling` one more interim after that final.
#[derive(Debug, Clone)]
struct Chatty {
    line: &'static str,
    dangling: bool,
}

#[async_trait]
impl SpeechToText for Chatty {
    fn name(&self) -> &str {
        "chatty"
    }

    async fn transcribe(&self, audio: &AudioClip, _options: &SttOptions) -> Result<Transcript> {
        Ok(Transcript::new(self.line).with_timing(Duration::ZERO, audio.duration()))
    }

    async fn stream(&self, _options: &SttOptions) -> Result<SttStream> {
        let (stream, mut backend) = stt_channel(4);
        let this = self.clone();
        tokio::spawn(async move {
            let mut frames = 0;
            while let Some(command) = backend.commands.recv().await {
                let events = match command {
                    SttCommand::Audio(_) => {
                        frames += 1;
                        vec![SttEvent::Interim(Transcript::new(format!(
                            "{frames} frames"
                        )))]
                    }
                    SttCommand::Finalize if this.dangling => vec![
                        SttEvent::Final(Transcript::new(this.line)),
                        SttEvent::Interim(Transcript::new("and")),
                    ],
                    SttCommand::Finalize => vec![SttEvent::Final(Transcript::new(this.line))],
                    _ => return,
                };
                for event in events {
                    if !backend.send(event).await {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}

/// `ScriptedTts` with cancels thrown away.
#[derive(Debug, Clone, Default)]
struct IgnoresCancel(ScriptedTts);

#[async_trait]
impl TextToSpeech for IgnoresCancel {
    fn name(&self) -> &str {
        "ignores-cancel"
    }

    async fn synthesize(&self, text: &str, options: &TtsOptions) -> Result<AudioClip> {
        self.0.synthesize(text, options).await
    }

    async fn stream(&self, options: &TtsOptions) -> Result<TtsStream> {
        let (inner_commands, mut inner_events) = self.0.stream(options).await?.split();
        let (stream, mut backend) = tts_channel(64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    command = backend.commands.recv() => match command {
                        Some(TtsCommand::Cancel { .. }) => {}
                        Some(command) => {
                            if inner_commands.send(command).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    event = inner_events.recv() => match event {
                        Some(event) => {
                            if backend.events.send(event).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                }
            }
        });
        Ok(stream)
    }
}

/// The panic message of `check`, which must fail.
async fn failure(check: impl Future<Output = ()> + Send + 'static) -> String {
    let panic = tokio::spawn(check)
        .await
        .expect_err("the check must fail")
        .into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// A provider that sends an event for every frame and waits for it to be read passes: the suite
/// reads events while it pushes audio, as a host does (pushing a whole 6 s clip first would
/// leave both sides waiting on each other).
#[tokio::test]
async fn a_provider_with_an_event_per_frame_passes() {
    let stt = Chatty {
        line: "Hello there.",
        dangling: false,
    };
    let case = SttCase::new(
        clip(AudioFormat::SPEECH, Duration::from_secs(6)),
        "hello there",
    );
    stt_suite(Arc::new(stt), &case).await;
}

/// The speech-to-text checks that cannot pass vacuously: a case without words is refused, words
/// are matched whole, and an interim transcript left after the final one is caught.
#[tokio::test]
async fn the_stt_suite_catches_what_it_checks() {
    let speech = clip(AudioFormat::SPEECH, Duration::from_secs(1));
    let case = SttCase::new(speech.clone(), " ?! ");
    let stt = ScriptedStt::new(["anything", "anything"]);
    let why = failure(async move { stt_suite(Arc::new(stt), &case).await }).await;
    assert!(why.contains("expects no words"), "{why}");

    let case = SttCase::new(speech.clone(), "hell");
    let stt = ScriptedStt::new(["Hello there.", "Hello there."]);
    let why = failure(async move { stt_suite(Arc::new(stt), &case).await }).await;
    assert!(why.contains("transcribe heard"), "{why}");

    let case = SttCase::new(speech, "hello there");
    let stt = Chatty {
        line: "Hello there.",
        dangling: true,
    };
    let why = failure(async move { stt_suite(Arc::new(stt), &case).await }).await;
    assert!(why.contains("never followed by a final"), "{why}");
}

/// A provider that ignores cancels: the racing cancel check cannot tell (the cancelled context
/// is spoken in full before the next one), the one on unflushed text does.
#[tokio::test]
async fn the_tts_suite_catches_an_ignored_cancel() {
    let options = TtsOptions::default();
    tts_cancel(Arc::new(IgnoresCancel::default()), &options).await;
    let why = failure(async move {
        tts_cancel_unflushed(Arc::new(IgnoresCancel::default()), &options).await;
    })
    .await;
    assert!(
        why.contains("cancelled before its flush was spoken"),
        "{why}"
    );
}
