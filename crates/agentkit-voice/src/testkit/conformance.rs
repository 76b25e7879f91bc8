//! The conformance suites of the speech contracts, run against every provider (scripted,
//! OpenAI, Deepgram, ElevenLabs, espeak-ng) as `Arc<dyn …>`.
//!
//! Each check panics with a message naming the guarantee it saw broken. No step waits longer
//! than 20 s: a provider that stops answering fails instead of hanging the test.
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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::audio::{AudioClip, FRAME};
use crate::stt::{SpeechToText, SttCommand, SttEvent, SttOptions};
use crate::tts::{TextToSpeech, TtsEvent, TtsOptions, TtsStream};

/// How long any step may take before a check fails.
const STEP: Duration = Duration::from_secs(20);

/// An utterance and what a provider must recognise in it.
#[derive(Debug, Clone)]
pub struct SttCase {
    /// The audio.
    pub clip: AudioClip,
    /// Words the transcript must contain, in order (compared lowercase, punctuation ignored,
    /// whole words only). It must have at least one word.
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

    /// The expected words, normalised; a case without any cannot check a transcript.
    fn expected_words(&self) -> String {
        let words = normalise(&self.expected);
        assert!(
            !words.is_empty(),
            "the case expects no words ({:?}): any transcript would contain it",
            self.expected
        );
        words
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

/// Whether `heard` contains the normalised words `expected` as whole words.
fn contains_words(heard: &str, expected: &str) -> bool {
    format!(" {} ", normalise(heard)).contains(&format!(" {expected} "))
}

/// `step`, or a panic naming `what` when it takes over [`STEP`].
async fn within<T>(name: &str, what: &str, step: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| panic!("{name}: nothing within {STEP:?} while {what}"))
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
    let expected = case.expected_words();
    let options = SttOptions::new(case.clip.format());
    let t = within(
        stt.name(),
        "transcribing",
        stt.transcribe(&case.clip, &options),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: transcribe failed: {e}", stt.name()));
    assert!(
        contains_words(&t.text, &expected),
        "{}: transcribe heard {:?}, expected {:?}",
        stt.name(),
        t.text,
        case.expected
    );
}

/// What a streaming check has heard so far.
struct Heard<'a> {
    name: &'a str,
    /// The final transcripts, in order.
    finals: String,
    /// The latest interim transcript not yet followed by a final one.
    pending_interim: Option<String>,
}

impl Heard<'_> {
    /// Takes the next event; the stream's end or failure is a panic (`what` says when).
    fn take(&mut self, event: Option<agentkit_core::Result<SttEvent>>, what: &str) {
        match event {
            Some(Ok(SttEvent::Final(t))) => {
                self.finals.push_str(&t.text);
                self.finals.push(' ');
                self.pending_interim = None;
            }
            Some(Ok(SttEvent::Interim(t))) => self.pending_interim = Some(t.text),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{}: the stream failed {what}: {e}", self.name),
            None => panic!(
                "{}: the stream ended {what} (final transcripts so far: {:?})",
                self.name, self.finals
            ),
        }
    }
}

/// Sends `command`; false when the session has ended. Waiting over [`STEP`] is a panic.
async fn send_stt(
    name: &str,
    commands: &mpsc::Sender<SttCommand>,
    command: SttCommand,
    what: &str,
) -> bool {
    within(name, what, commands.send(command)).await.is_ok()
}

/// A stream: audio then finalize gives a final transcript of it (events are read while the
/// audio is pushed, as a host does: a provider may wait for them to be read before it takes
/// more audio); close ends the events, the last transcript among them a final one (an interim
/// transcript is never left pending); pushing after the end fails.
pub async fn stt_streaming(stt: Arc<dyn SpeechToText>, case: &SttCase) {
    let name = stt.name();
    let expected = case.expected_words();
    let options = SttOptions::new(case.clip.format());
    let stream = within(name, "opening a stream", stt.stream(&options))
        .await
        .unwrap_or_else(|e| panic!("{name}: stream failed to open: {e}"));
    let (commands, mut events) = stream.split();
    let mut heard = Heard {
        name,
        finals: String::new(),
        pending_interim: None,
    };

    let pushed = {
        let push = async {
            for frame in case.clip.frames(FRAME) {
                if !send_stt(name, &commands, SttCommand::Audio(frame), "pushing audio").await {
                    return false;
                }
            }
            send_stt(name, &commands, SttCommand::Finalize, "finalizing").await
        };
        tokio::pin!(push);
        loop {
            tokio::select! {
                pushed = &mut push => break pushed,
                event = events.recv() => heard.take(event, "while the audio was pushed"),
            }
        }
    };
    if !pushed {
        // The session ended: its error, if any, is its last event.
        loop {
            let event = within(name, "reading why the stream ended", events.recv()).await;
            heard.take(event, "while the audio was pushed");
        }
    }

    while !contains_words(&heard.finals, &expected) {
        let event = within(name, "waiting for the final transcript", events.recv()).await;
        heard.take(
            event,
            &format!("before a final transcript of {:?}", case.expected),
        );
    }

    assert!(
        send_stt(name, &commands, SttCommand::Close, "closing").await,
        "{name}: the stream ended by itself before close"
    );
    loop {
        match within(
            name,
            "waiting for the stream to end after close",
            events.recv(),
        )
        .await
        {
            None => break,
            Some(Err(e)) => panic!("{name}: closing failed: {e}"),
            event => heard.take(event, "after close"),
        }
    }
    if let Some(interim) = heard.pending_interim {
        panic!("{name}: the interim transcript {interim:?} was never followed by a final one");
    }

    let after = AudioClip::new(options.format).to_frame();
    assert!(
        !send_stt(
            name,
            &commands,
            SttCommand::Audio(after),
            "pushing after the end"
        )
        .await,
        "{name}: pushing to an ended stream must fail"
    );
}

/// Every text-to-speech check, for audio of `options.format`.
pub async fn tts_suite(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    tts_batch(Arc::clone(&tts), options).await;
    tts_streaming(Arc::clone(&tts), options).await;
    tts_cancel(Arc::clone(&tts), options).await;
    tts_cancel_unflushed(tts, options).await;
}

/// `synthesize` gives audible audio of the asked format.
pub async fn tts_batch(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let clip = within(
        tts.name(),
        "synthesizing",
        tts.synthesize("Hello there. Your order has shipped.", options),
    )
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

/// Opens a stream, within [`STEP`].
async fn open_tts(tts: &dyn TextToSpeech, options: &TtsOptions) -> TtsStream {
    within(tts.name(), "opening a stream", tts.stream(options))
        .await
        .unwrap_or_else(|e| panic!("{}: stream failed to open: {e}", tts.name()))
}

/// Sends a command (through `send`), within [`STEP`].
async fn command(name: &str, what: &str, send: impl Future<Output = agentkit_core::Result<()>>) {
    within(name, what, send)
        .await
        .unwrap_or_else(|e| panic!("{name}: {what} failed: {e}"));
}

/// Two contexts flushed in turn: each one's audio (in the asked format) then its `Flushed`;
/// close ends the events.
pub async fn tts_streaming(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let name = tts.name();
    let mut stream = open_tts(tts.as_ref(), options).await;
    for (context, text) in [("a", "Hello there."), ("b", "Your order has shipped.")] {
        command(name, "push_text", stream.push_text(context, text)).await;
        command(name, "flush", stream.flush(context)).await;
        let mut audio = Duration::ZERO;
        loop {
            match next_tts(&mut stream, "waiting for a flushed context").await {
                Some(Ok(TtsEvent::Audio { context: c, frame })) => {
                    assert_eq!(c, context, "{name}: audio of another context");
                    assert_eq!(frame.format(), options.format, "{name}: frame format");
                    audio += frame.duration();
                }
                Some(Ok(TtsEvent::Flushed { context: c })) => {
                    assert_eq!(c, context, "{name}: flushed another context");
                    break;
                }
                Some(Err(e)) => panic!("{name}: the stream failed: {e}"),
                None => panic!("{name}: the stream ended before `{context}` was flushed"),
            }
        }
        assert!(
            audio >= Duration::from_millis(100),
            "{name}: only {audio:?} of audio for {text:?}"
        );
    }
    command(name, "close", stream.close()).await;
    while let Some(event) = next_tts(&mut stream, "waiting for the stream to end after close").await
    {
        if let Err(e) = event {
            panic!("{name}: closing failed: {e}");
        }
    }
}

/// A cancelled context stops: once a later context is flushed, no audio of the cancelled one
/// follows, and it is never reported flushed after the later one.
pub async fn tts_cancel(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let name = tts.name();
    let mut stream = open_tts(tts.as_ref(), options).await;
    command(
        name,
        "push_text",
        stream.push_text(
            "c",
            "This sentence is cancelled before it is spoken in full, and it is long.",
        ),
    )
    .await;
    command(name, "flush", stream.flush("c")).await;
    command(name, "cancel", stream.cancel("c")).await;
    command(name, "push_text", stream.push_text("d", "Still here.")).await;
    command(name, "flush", stream.flush("d")).await;
    let mut d_audio = false;
    loop {
        match next_tts(&mut stream, "waiting for the context after a cancelled one").await {
            Some(Ok(TtsEvent::Audio { context, .. })) if context == "d" => d_audio = true,
            Some(Ok(TtsEvent::Audio { context, .. })) => assert!(
                !d_audio,
                "{name}: audio of cancelled context `{context}` after the next context's"
            ),
            Some(Ok(TtsEvent::Flushed { context })) if context == "d" => break,
            Some(Ok(TtsEvent::Flushed { .. })) => {}
            Some(Err(e)) => panic!("{name}: the stream failed: {e}"),
            None => panic!("{name}: the stream ended after a cancel"),
        }
    }
    assert!(d_audio, "{name}: no audio for the context after a cancel");
    command(name, "close", stream.close()).await;
    while let Some(event) = next_tts(&mut stream, "waiting for the stream to end").await {
        match event {
            Ok(TtsEvent::Audio { context, .. }) | Ok(TtsEvent::Flushed { context }) => {
                assert_ne!(context, "c", "{name}: the cancelled context after close");
            }
            Err(e) => panic!("{name}: closing failed: {e}"),
        }
    }
}

/// A cancel drops the context's pending text: text pushed and cancelled before any flush is
/// never spoken, so a flush of that context afterwards is reported with no audio (and the
/// stream goes on: a later context is spoken).
///
/// Unlike [`tts_cancel`], whose cancel races the synthesis it stops (a provider may finish
/// before the cancel arrives, and one that speaks contexts one after another passes it even if
/// it ignores cancels), this outcome does not depend on timing.
pub async fn tts_cancel_unflushed(tts: Arc<dyn TextToSpeech>, options: &TtsOptions) {
    let name = tts.name();
    let mut stream = open_tts(tts.as_ref(), options).await;
    command(
        name,
        "push_text",
        stream.push_text("e", "This text is cancelled before it is flushed."),
    )
    .await;
    command(name, "cancel", stream.cancel("e")).await;
    command(name, "flush", stream.flush("e")).await;
    command(name, "push_text", stream.push_text("f", "Still here.")).await;
    command(name, "flush", stream.flush("f")).await;
    let (mut e_flushed, mut f_flushed, mut f_audio) = (false, false, false);
    while !(e_flushed && f_flushed) {
        match next_tts(&mut stream, "waiting for a flush after a cancel").await {
            Some(Ok(TtsEvent::Audio { context, .. })) if context == "e" => {
                panic!("{name}: text cancelled before its flush was spoken")
            }
            Some(Ok(TtsEvent::Audio { context, .. })) if context == "f" => f_audio = true,
            Some(Ok(TtsEvent::Flushed { context })) if context == "e" => e_flushed = true,
            Some(Ok(TtsEvent::Flushed { context })) if context == "f" => f_flushed = true,
            Some(Ok(other)) => panic!("{name}: {other:?} of a context never used"),
            Some(Err(e)) => panic!("{name}: the stream failed: {e}"),
            None if !e_flushed => panic!(
                "{name}: the stream ended before a flush after a cancel was reported (flush \
                 reports `Flushed` even with nothing to speak)"
            ),
            None => panic!("{name}: the stream ended before `f` was flushed"),
        }
    }
    assert!(f_audio, "{name}: no audio for the context after a cancel");
    command(name, "close", stream.close()).await;
    while let Some(event) = next_tts(&mut stream, "waiting for the stream to end").await {
        match event {
            Ok(TtsEvent::Audio { context, .. }) => {
                assert_ne!(context, "e", "{name}: cancelled text spoken after close");
            }
            Ok(TtsEvent::Flushed { .. }) => {}
            Err(e) => panic!("{name}: closing failed: {e}"),
        }
    }
}
