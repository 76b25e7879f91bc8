//! The conformance suites of the speech contracts, run against every provider (scripted,
//! OpenAI, Deepgram, ElevenLabs, espeak-ng) as `Arc<dyn …>`.
//!
//! Each check panics with a message naming the guarantee it saw broken.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentkit_voice::AudioFormat;
//! use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, speech};
//! use agentkit_voice::testkit::conformance::{SttCase, stt_suite, tts_suite};
//! use agentkit_voice::tts::TtsOptions;
//!
//! let mut clip = agentkit_voice::AudioClip::new(AudioFormat::SPEECH);
//! for f in speech(AudioFormat::SPEECH, Duration::from_secs(1)) { clip.push(&f).unwrap(); }
//! let stt = ScriptedStt::new(["hello there", "hello there"]);
//! stt_suite(Arc::new(stt), &SttCase::new(clip, "hello there")).await;
//! tts_suite(Arc::new(ScriptedTts::default()), &TtsOptions::default()).await;
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;

use crate::audio::{AudioClip, FRAME};
use crate::stt::{SpeechToText, SttEvent, SttOptions, SttStream};
use crate::tts::{TextToSpeech, TtsEvent, TtsOptions, TtsStream};

/// How long any step may take before a check fails.
const STEP: Duration = Duration::from_secs(20);

/// An utterance and what a provider must recognise in it.
#[derive(Debug, Clone)]
pub struct SttCase {
    /// The audio.
    pub clip: AudioClip,
    /// Text the transcript must contain (compared lowercase, punctuation ignored).
    pub expected: String,
}

impl SttCase {
    /// A case.
    pub fn new(clip: AudioClip, expected: impl Into<String>) -> Self {
        Self {
            clip,
            expected: expected.into(),
        }
    }
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

async fn next_stt(stream: &mut SttStream, what: &str) -> Option<agentkit_core::Result<SttEvent>> {
    tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no speech-to-text event within {STEP:?} while {what}"))
}

async fn next_tts(stream: &mut TtsStream, what: &str) -> Option<agentkit_core::Result<TtsEvent>> {
    tokio::time::timeout(STEP, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no text-to-speech event within {STEP:?} while {what}"))
}

/// Every speech-to-text check; the provider must recognise `case` twice (once in batch, once
/// streamed).
pub async fn stt_suite(stt: Arc<dyn SpeechToText>, case: &SttCase) {
    stt_batch(Arc::clone(&stt), case).await;
    stt_streaming(stt, case).await;
}

/// `transcribe` recognises the clip.
pub async fn stt_batch(stt: Arc<dyn SpeechToText>, case: &SttCase) {
    let options = SttOptions::new(case.clip.format());
    let t = stt
        .transcribe(&case.clip, &options)
        .await
        .unwrap_or_else(|e| panic!("{}: transcribe failed: {e}", stt.name()));
    assert!(
        normalise(&t.text).contains(&normalise(&case.expected)),
        "{}: transcribe heard {:?}, expected {:?}",
        stt.name(),
        t.text,
        case.expected
    );
}

/// A stream: audio then finalize gives a final transcript of it (interim ones, if any, come
/// before it); close ends the events; pushing after the end fails with `Unavailable`.
pub async fn stt_streaming(stt: Arc<dyn SpeechToText>, case: &SttCase) {
    let options = SttOptions::new(case.clip.format());
    let mut stream = stt
        .stream(&options)
        .await
        .unwrap_or_else(|e| panic!("{}: stream failed to open: {e}", stt.name()));
    for frame in case.clip.frames(FRAME) {
        stream
            .push(frame)
            .await
            .unwrap_or_else(|e| panic!("{}: push failed: {e}", stt.name()));
    }
    stream.finalize().await.expect("finalize");
    let mut heard = String::new();
    loop {
        match next_stt(&mut stream, "waiting for the final transcript").await {
            Some(Ok(SttEvent::Final(t))) => {
                heard.push_str(&t.text);
                heard.push(' ');
                if normalise(&heard).contains(&normalise(&case.expected)) {
                    break;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{}: the stream failed: {e}", stt.name()),
            None => panic!(
                "{}: the stream ended before a final transcript of {:?} (heard {heard:?})",
                stt.name(),
                case.expected
            ),
        }
    }
    stream.close().await.expect("close");
    loop {
        match next_stt(&mut stream, "waiting for the stream to end after close").await {
            None => break,
            Some(Ok(SttEvent::Interim(t))) => {
                panic!(
                    "{}: an interim transcript {:?} after the final one and close",
                    stt.name(),
                    t.text
                )
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{}: closing failed: {e}", stt.name()),
        }
    }
    let after = stream
        .push(AudioClip::new(options.format).to_frame())
        .await
        .expect_err("pushing to an ended stream must fail");
    assert_eq!(
        after.kind(),
        ErrorKind::Unavailable,
        "{}: {after}",
        stt.name()
    );
}

/// Every text-to-speech check, for audio of `options.format`.
pub async fn tts_suite(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    tts_batch(Arc::clone(&tts), options).await;
    tts_streaming(Arc::clone(&tts), options).await;
    tts_cancel(tts, options).await;
}

/// `synthesize` gives audible audio of the asked format.
pub async fn tts_batch(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let clip = tts
        .synthesize("Hello there. Your order has shipped.", options)
        .await
        .unwrap_or_else(|e| panic!("{}: synthesize failed: {e}", tts.name()));
    assert_eq!(
        clip.format(),
        options.format,
        "{}: the clip's format",
        tts.name()
    );
    assert!(
        clip.duration() >= Duration::from_millis(200),
        "{}: {:?} of audio for two sentences",
        tts.name(),
        clip.duration()
    );
    assert!(
        clip.to_frame().level_dbfs() > -50.0,
        "{}: the audio is silent",
        tts.name()
    );
}

/// Two contexts flushed in turn: each one's audio (in the asked format) then its `Flushed`;
/// close ends the events.
pub async fn tts_streaming(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let mut stream = tts
        .stream(options)
        .await
        .unwrap_or_else(|e| panic!("{}: stream failed to open: {e}", tts.name()));
    for (context, text) in [("a", "Hello there."), ("b", "Your order has shipped.")] {
        stream.push_text(context, text).await.expect("push_text");
        stream.flush(context).await.expect("flush");
        let mut audio = Duration::ZERO;
        loop {
            match next_tts(&mut stream, "waiting for a flushed context").await {
                Some(Ok(TtsEvent::Audio { context: c, frame })) => {
                    assert_eq!(c, context, "{}: audio of another context", tts.name());
                    assert_eq!(
                        frame.format(),
                        options.format,
                        "{}: frame format",
                        tts.name()
                    );
                    audio += frame.duration();
                }
                Some(Ok(TtsEvent::Flushed { context: c })) => {
                    assert_eq!(c, context, "{}: flushed another context", tts.name());
                    break;
                }
                Some(Err(e)) => panic!("{}: the stream failed: {e}", tts.name()),
                None => panic!(
                    "{}: the stream ended before `{context}` was flushed",
                    tts.name()
                ),
            }
        }
        assert!(
            audio >= Duration::from_millis(100),
            "{}: only {audio:?} of audio for {text:?}",
            tts.name()
        );
    }
    stream.close().await.expect("close");
    while let Some(event) = next_tts(&mut stream, "waiting for the stream to end after close").await
    {
        if let Err(e) = event {
            panic!("{}: closing failed: {e}", tts.name());
        }
    }
}

/// A cancelled context stops: once a later context is flushed, no audio of the cancelled one
/// follows, and it is never reported flushed after the later one.
pub async fn tts_cancel(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let mut stream = tts
        .stream(options)
        .await
        .unwrap_or_else(|e| panic!("{}: stream failed to open: {e}", tts.name()));
    stream
        .push_text(
            "c",
            "This sentence is cancelled before it is spoken in full, and it is long.",
        )
        .await
        .expect("push_text");
    stream.flush("c").await.expect("flush");
    stream.cancel("c").await.expect("cancel");
    stream
        .push_text("d", "Still here.")
        .await
        .expect("push_text");
    stream.flush("d").await.expect("flush");
    let mut d_audio = false;
    loop {
        match next_tts(&mut stream, "waiting for the context after a cancelled one").await {
            Some(Ok(TtsEvent::Audio { context, .. })) if context == "d" => d_audio = true,
            Some(Ok(TtsEvent::Audio { context, .. })) => assert!(
                !d_audio,
                "{}: audio of cancelled context `{context}` after the next context's",
                tts.name()
            ),
            Some(Ok(TtsEvent::Flushed { context })) if context == "d" => break,
            Some(Ok(TtsEvent::Flushed { .. })) => {}
            Some(Err(e)) => panic!("{}: the stream failed: {e}", tts.name()),
            None => panic!("{}: the stream ended after a cancel", tts.name()),
        }
    }
    assert!(
        d_audio,
        "{}: no audio for the context after a cancel",
        tts.name()
    );
    stream.close().await.expect("close");
    while let Some(event) = next_tts(&mut stream, "waiting for the stream to end").await {
        match event {
            Ok(TtsEvent::Audio { context, .. }) | Ok(TtsEvent::Flushed { context }) => {
                assert_ne!(
                    context,
                    "c",
                    "{}: the cancelled context after close",
                    tts.name()
                );
            }
            Err(e) => panic!("{}: closing failed: {e}", tts.name()),
        }
    }
}
