//! espeak-ng, run for real. Tests that need the program print why they skip when it is not
//! installed (`apt-get install espeak-ng`), and fail instead when `CI=true`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_voice::providers::espeak::{EspeakTts, PROGRAM_ENV};
use agentkit_voice::testkit::conformance::tts_suite;
use agentkit_voice::tts::TtsEvent;
use agentkit_voice::{AudioFormat, FRAME, TextToSpeech, TtsOptions};
use common::next_within;

/// The program, or `None` (with the reason printed) when it is missing outside CI.
fn espeak() -> Option<EspeakTts> {
    match EspeakTts::find() {
        Ok(tts) => Some(tts),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("espeak-ng is required when CI=true: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// A sentence becomes a clip of the asked format, of a plausible length and clearly audible;
/// a faster speed makes it shorter, and an unknown voice is invalid input.
#[tokio::test]
async fn a_sentence_becomes_audible_speech() {
    let Some(tts) = espeak() else { return };
    assert_eq!(tts.name(), "espeak-ng");
    let text = "What is the status of order four two seven?";
    let clip = tts
        .synthesize(text, &TtsOptions::default())
        .await
        .expect("speech");
    assert_eq!(clip.format, AudioFormat::SPEECH);
    let secs = clip.duration().as_secs_f32();
    assert!((0.5..=5.0).contains(&secs), "{secs} s");
    assert!(
        clip.to_frame().level_dbfs() > -35.0,
        "{} dBFS",
        clip.to_frame().level_dbfs()
    );
    let voiced = clip
        .frames(FRAME)
        .iter()
        .filter(|f| f.level_dbfs() > -40.0)
        .count();
    assert!(
        voiced * 2 > clip.frames(FRAME).len(),
        "mostly speech: {voiced} voiced frames"
    );

    let mut fast = TtsOptions::new(AudioFormat::TELEPHONY);
    fast.speed = Some(2.0);
    let quick = tts.synthesize(text, &fast).await.expect("fast speech");
    assert_eq!(quick.format, AudioFormat::TELEPHONY);
    assert!(
        quick.duration() < clip.duration() * 3 / 4,
        "{:?} at 2x vs {:?}",
        quick.duration(),
        clip.duration()
    );

    let e = tts
        .synthesize(text, &TtsOptions::default().with_voice("xx-nosuchvoice"))
        .await
        .expect_err("unknown voice");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // Text that looks like options is spoken, not obeyed.
    let odd = tts
        .synthesize("--help -s 999", &TtsOptions::default())
        .await
        .expect("speech");
    assert!(odd.duration() > Duration::from_millis(300));
}

/// Streaming with two contexts: the one cancelled while being synthesised sends nothing; the
/// other is spoken in 20 ms frames and flushed.
#[tokio::test]
async fn streaming_speaks_one_context_and_drops_the_cancelled_one() {
    let Some(tts) = espeak() else { return };
    let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
    stream
        .push_text(
            "barged-in",
            "This is a long answer that the caller interrupts before it is ever heard. ".repeat(8),
        )
        .await
        .expect("text");
    stream.flush("barged-in").await.expect("flush");
    stream
        .push_text("reply", "Your order has shipped.")
        .await
        .expect("text");
    stream.flush("reply").await.expect("flush");
    stream.cancel("barged-in").await.expect("cancel");

    let mut contexts = BTreeSet::new();
    let mut reply = Duration::ZERO;
    loop {
        match next_within(Duration::from_secs(30), stream.next()).await {
            TtsEvent::Audio { context, frame } => {
                assert!(frame.duration() <= FRAME);
                if context == "reply" {
                    reply += frame.duration();
                }
                contexts.insert(context);
            }
            TtsEvent::Flushed { context } => {
                contexts.insert(context.clone());
                if context == "reply" {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(contexts, BTreeSet::from(["reply".to_owned()]));
    assert!(reply > Duration::from_millis(500), "{reply:?}");
    stream.close().await.expect("close");
}

/// The shared text-to-speech conformance suite, with the real program: batch speech, two
/// flushed contexts and a cancel while espeak-ng is speaking, in the default and the telephony
/// format.
#[tokio::test]
async fn passes_the_tts_conformance_suite() {
    let Some(tts) = espeak() else { return };
    let tts: Arc<dyn TextToSpeech> = Arc::new(tts);
    for format in [AudioFormat::SPEECH, AudioFormat::TELEPHONY] {
        tts_suite(Arc::clone(&tts), &TtsOptions::new(format)).await;
    }
}

/// An explicit path to nothing, or a name not on `PATH`: invalid configuration that says how
/// to install the program.
#[test]
fn a_missing_program_is_invalid_config_with_an_install_hint() {
    for program in [
        "/nonexistent/bin/espeak-ng",
        "espeak-ng-not-installed-anywhere",
    ] {
        let e = EspeakTts::with_program(program).expect_err("missing");
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        let text = e.to_string();
        assert!(text.contains(program), "{text}");
        assert!(text.contains("apt-get install espeak-ng"), "{text}");
    }
}

const CHILD: &str = "AGENTKIT_ESPEAK_TEST_CHILD";

/// `ESPEAK_NG` pointing at a nonexistent file: `find` does not fall back to `PATH`, it says
/// what is wrong. Run in a child process, since the environment cannot be changed safely in a
/// multi-threaded test.
#[test]
fn espeak_ng_env_pointing_nowhere_is_invalid_config() {
    if std::env::var_os(CHILD).is_some() {
        let e = EspeakTts::find().expect_err("ESPEAK_NG points nowhere");
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        let text = e.to_string();
        assert!(text.contains(PROGRAM_ENV), "{text}");
        assert!(text.contains("/nonexistent/espeak-ng"), "{text}");
        assert!(text.contains("apt-get install espeak-ng"), "{text}");
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "espeak_ng_env_pointing_nowhere_is_invalid_config",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env(PROGRAM_ENV, "/nonexistent/espeak-ng")
        .output()
        .expect("child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
