//! OpenAI audio against a local server speaking the documented wire format: multipart
//! transcription requests, JSON speech requests answered with raw 24 kHz PCM, typed errors, a
//! key that never leaks, and the shared conformance suites.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::{Error, ErrorKind};
use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind};
use agentkit_voice::providers::openai::{OpenAiStt, OpenAiTts};
use agentkit_voice::stt::SttEvent;
use agentkit_voice::testkit::conformance::{SttCase, stt_suite, tts_suite};
use agentkit_voice::testkit::speech;
use agentkit_voice::tts::TtsEvent;
use agentkit_voice::{
    AudioClip, AudioFormat, FRAME, SpeechToText, SttOptions, TextToSpeech, TtsOptions,
};
use common::next_within;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk-test-7f3a9c2e1b";

fn config(server: &MockServer, model: &str) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::OpenAi, model)
        .with_base_url(format!("{}/v1", server.uri()))
        .with_api_key(KeyRef::value(KEY))
        .with_timeout(Duration::from_secs(10))
}

fn tone(rate: u32, secs: f32) -> AudioClip {
    let n = (rate as f32 * secs) as usize;
    let samples = (0..n)
        .map(|i| ((i as f32 / rate as f32 * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16)
        .collect();
    AudioClip::from_samples(AudioFormat::mono(rate), samples).expect("clip")
}

fn pcm_bytes(clip: &AudioClip) -> Vec<u8> {
    clip.samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// One part of a `multipart/form-data` body.
#[derive(Debug)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Part {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 field")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn attribute(disposition: &str, key: &str) -> Option<String> {
    let start = disposition.find(&format!("{key}=\""))? + key.len() + 2;
    let end = disposition[start..].find('"')? + start;
    Some(disposition[start..end].to_owned())
}

/// Splits a multipart request into its parts (RFC 7578), checking the framing on the way.
fn multipart(request: &Request) -> Vec<Part> {
    let content_type = request
        .headers
        .get("content-type")
        .expect("content-type")
        .to_str()
        .expect("ascii");
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut rest = &request.body[..];
    let mut parts = Vec::new();
    let start = find(rest, delimiter.as_bytes()).expect("first delimiter");
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after delimiter");
        let end = find(rest, format!("\r\n{delimiter}").as_bytes()).expect("next delimiter");
        let (part, tail) = rest.split_at(end);
        rest = &tail[2 + delimiter.len()..];
        let split = find(part, b"\r\n\r\n").expect("part headers");
        let headers = std::str::from_utf8(&part[..split]).expect("headers");
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let (key, value) = line.split_once(':').expect("header line");
            match key.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    name = attribute(value, "name");
                    filename = attribute(value, "filename");
                }
                "content-type" => content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        parts.push(Part {
            name: name.expect("part name"),
            filename,
            content_type,
            body: part[split + 4..].to_vec(),
        });
    }
}

fn field<'a>(parts: &'a [Part], name: &str) -> Option<&'a Part> {
    parts.iter().find(|p| p.name == name)
}

async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording");
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.remove(0)
}

fn transcription_mock(text: &str) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "text": text,
            "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 9, "total_tokens": 23}
        })))
}

fn speech_mock(pcm: Vec<u8>) -> Mock {
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/pcm")
                .set_body_bytes(pcm),
        )
}

/// The happy path: the clip goes out as a WAV file part with the model, language and
/// response format fields, and the JSON answer's text comes back trimmed.
#[tokio::test]
async fn transcribe_sends_the_clip_as_a_multipart_wav() {
    let server = MockServer::start().await;
    transcription_mock(" What is the status of order 427? ")
        .expect(1)
        .mount(&server)
        .await;
    let stt = OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt");
    assert_eq!(stt.name(), "openai");
    let clip = tone(16_000, 0.4);

    let transcript = stt
        .transcribe(&clip, &SttOptions::default().with_language("en-US"))
        .await
        .expect("transcript");
    assert_eq!(transcript.text, "What is the status of order 427?");
    assert_eq!(transcript.duration, clip.duration());

    let request = only_request(&server).await;
    let parts = multipart(&request);
    let file = field(&parts, "file").expect("file part");
    assert_eq!(file.filename.as_deref(), Some("audio.wav"));
    assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(AudioClip::from_wav_bytes(&file.body).expect("a WAV"), clip);
    assert_eq!(
        field(&parts, "model").expect("model").text(),
        "gpt-4o-mini-transcribe"
    );
    assert_eq!(field(&parts, "language").expect("language").text(), "en");
    assert_eq!(
        field(&parts, "response_format").expect("format").text(),
        "json"
    );
}

/// The options' model wins over the config's, and no language means no language field.
#[tokio::test]
async fn transcribe_uses_the_options_model_and_omits_an_unset_language() {
    let server = MockServer::start().await;
    transcription_mock("cancel my subscription")
        .mount(&server)
        .await;
    let stt = OpenAiStt::from_config(&config(&server, "")).expect("stt");
    assert_eq!(
        stt.model(),
        "gpt-4o-mini-transcribe",
        "an empty model is the default"
    );

    let text = stt
        .transcribe(
            &tone(8_000, 0.2),
            &SttOptions::new(AudioFormat::TELEPHONY).with_model("whisper-1"),
        )
        .await
        .expect("transcript")
        .text;
    assert_eq!(text, "cancel my subscription");
    let parts = multipart(&only_request(&server).await);
    assert_eq!(field(&parts, "model").expect("model").text(), "whisper-1");
    assert!(field(&parts, "language").is_none());
    let wav = AudioClip::from_wav_bytes(&field(&parts, "file").expect("file").body).expect("wav");
    assert_eq!(wav.format, AudioFormat::TELEPHONY);
}

/// Streaming through the buffered adapter: frames are collected and one finalize makes one
/// request with all of them and one final transcript.
#[tokio::test]
async fn streaming_transcribes_the_buffered_audio_at_finalize() {
    let server = MockServer::start().await;
    transcription_mock("what is the status of order four two seven")
        .expect(1)
        .mount(&server)
        .await;
    let stt = OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt");
    let clip = tone(16_000, 0.3);
    let mut stream = stt.stream(&SttOptions::default()).await.expect("stream");
    for frame in clip.frames(FRAME) {
        stream.push(frame).await.expect("push");
    }
    stream.finalize().await.expect("finalize");

    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("events in time")
    {
        let event = event.expect("no error");
        let done = matches!(event, SttEvent::UtteranceEnd);
        events.push(event);
        if done {
            break;
        }
    }
    let finals: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1, "{events:?}");
    assert_eq!(finals[0].text, "what is the status of order four two seven");
    assert_eq!(finals[0].duration, clip.duration());
    assert_eq!(events.first(), Some(&SttEvent::SpeechStarted));

    let parts = multipart(&only_request(&server).await);
    let sent = AudioClip::from_wav_bytes(&field(&parts, "file").expect("file").body).expect("wav");
    assert_eq!(sent, clip, "every pushed frame was sent, in order");

    stream.close().await.expect("close");
    assert!(
        stream.next().await.is_none(),
        "the session ends after close"
    );
}

/// Speech: the JSON body carries the documented fields; the raw 24 kHz PCM answer becomes a
/// clip of the same duration in the options' format.
#[tokio::test]
async fn speech_pcm_at_24k_is_resampled_to_the_options_format() {
    let server = MockServer::start().await;
    let reply = tone(24_000, 0.5);
    speech_mock(pcm_bytes(&reply))
        .expect(2)
        .mount(&server)
        .await;
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    assert_eq!(tts.name(), "openai");

    let clip = tts
        .synthesize("Your order has shipped.", &TtsOptions::default())
        .await
        .expect("speech");
    assert_eq!(clip.format, AudioFormat::SPEECH);
    assert_eq!(clip.samples.len(), 8_000, "0.5 s at 16 kHz");
    assert_eq!(clip.duration(), Duration::from_millis(500));
    assert!(clip.to_frame().level_dbfs() > -20.0, "not silent");

    let mut options = TtsOptions::new(AudioFormat::TELEPHONY)
        .with_voice("coral")
        .with_model("tts-1");
    options.speed = Some(1.25);
    let phone = tts.synthesize("Goodbye.", &options).await.expect("speech");
    assert_eq!(phone.format, AudioFormat::TELEPHONY);
    assert_eq!(phone.samples.len(), 4_000, "0.5 s at 8 kHz");

    let requests = server.received_requests().await.expect("recording");
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| r.body_json().expect("JSON body"))
        .collect();
    assert_eq!(
        bodies[0],
        json!({
            "model": "gpt-4o-mini-tts",
            "input": "Your order has shipped.",
            "voice": "alloy",
            "response_format": "pcm"
        })
    );
    assert_eq!(
        bodies[1],
        json!({
            "model": "tts-1",
            "input": "Goodbye.",
            "voice": "coral",
            "response_format": "pcm",
            "speed": 1.25
        })
    );
}

/// Streaming speech through the buffered adapter: a flushed context comes back as 20 ms
/// frames then `Flushed`.
#[tokio::test]
async fn speech_streams_through_the_buffered_adapter() {
    let server = MockServer::start().await;
    speech_mock(pcm_bytes(&tone(24_000, 0.2)))
        .expect(1)
        .mount(&server)
        .await;
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
    stream.push_text("reply-1", "Hello ").await.expect("text");
    stream.push_text("reply-1", "there.").await.expect("text");
    stream.flush("reply-1").await.expect("flush");

    let mut samples = 0;
    loop {
        match next_within(Duration::from_secs(10), stream.next()).await {
            TtsEvent::Audio { context, frame } => {
                assert_eq!(context, "reply-1");
                assert!(frame.duration() <= FRAME);
                samples += frame.samples().len();
            }
            TtsEvent::Flushed { context } => {
                assert_eq!(context, "reply-1");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(samples, 3_200, "0.2 s at 16 kHz");
    let body: Value = only_request(&server).await.body_json().expect("JSON");
    assert_eq!(body["input"], "Hello there.");
}

/// PCM16 is two bytes a sample: an odd count is a malformed answer, not a silently dropped byte.
#[tokio::test]
async fn an_odd_pcm_byte_count_is_malformed() {
    let server = MockServer::start().await;
    speech_mock(vec![0, 1, 2]).mount(&server).await;
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    let e = tts
        .synthesize("Hello.", &TtsOptions::default())
        .await
        .expect_err("odd PCM");
    assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
    assert!(e.to_string().contains("openai"), "{e}");
}

/// A transcription answer that is not the documented JSON is malformed.
#[tokio::test]
async fn an_unreadable_transcription_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;
    let stt = OpenAiStt::from_config(&config(&server, "whisper-1")).expect("stt");
    let e = stt
        .transcribe(&tone(16_000, 0.1), &SttOptions::default())
        .await
        .expect_err("not JSON");
    assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
}

async fn failing(server: &MockServer, status: u16, body: Value, retry_after: Option<&str>) {
    server.reset().await;
    let mut reply = ResponseTemplate::new(status).set_body_json(body);
    if let Some(wait) = retry_after {
        reply = reply.insert_header("retry-after", wait);
    }
    Mock::given(method("POST"))
        .respond_with(reply)
        .mount(server)
        .await;
}

/// 401, 429 (with its wait) and 500 become their typed errors, for both endpoints.
#[tokio::test]
async fn http_errors_are_typed() {
    let server = MockServer::start().await;
    let stt = OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt");
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    let clip = tone(16_000, 0.1);
    let both = || async {
        let a = stt
            .transcribe(&clip, &SttOptions::default())
            .await
            .expect_err("transcription fails");
        let b = tts
            .synthesize("Hello.", &TtsOptions::default())
            .await
            .expect_err("speech fails");
        [a, b]
    };

    failing(
        &server,
        401,
        json!({"error": {"message": "Invalid authentication", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        None,
    )
    .await;
    for e in both().await {
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    }

    failing(
        &server,
        429,
        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}),
        Some("3"),
    )
    .await;
    for e in both().await {
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    }

    failing(
        &server,
        500,
        json!({"error": {"message": "The server had an error processing your request", "type": "server_error"}}),
        None,
    )
    .await;
    for e in both().await {
        assert!(
            matches!(
                e,
                Error::Server {
                    status: Some(500),
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

/// The key is in the request header only: not in `Debug` output, and scrubbed from an error
/// message that echoes it.
#[tokio::test]
async fn the_key_never_leaks() {
    let server = MockServer::start().await;
    let stt = OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt");
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    assert!(!format!("{stt:?}").contains(KEY), "{stt:?}");
    assert!(!format!("{tts:?}").contains(KEY), "{tts:?}");

    failing(
        &server,
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error"}}),
        None,
    )
    .await;
    let a = stt
        .transcribe(&tone(16_000, 0.1), &SttOptions::default())
        .await
        .expect_err("401");
    let b = tts
        .synthesize("Hello.", &TtsOptions::default())
        .await
        .expect_err("401");
    for e in [a, b] {
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}

/// Only OpenAI-speaking configs build, and an OpenAI-compatible server needs its URL.
#[test]
fn configs_of_other_kinds_are_refused() {
    let anthropic =
        ProviderConfig::new(ProviderKind::Anthropic, "claude").with_api_key(KeyRef::value(KEY));
    let e = OpenAiStt::from_config(&anthropic).expect_err("not OpenAI");
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let e = OpenAiTts::from_config(&anthropic).expect_err("not OpenAI");
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let compatible = ProviderConfig::new(ProviderKind::OpenAiCompatible, "whisper-large-v3");
    let e = OpenAiStt::from_config(&compatible).expect_err("no base_url");
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let local = compatible
        .with_base_url("http://127.0.0.1:8000/v1")
        .with_name("local-whisper");
    assert_eq!(
        OpenAiStt::from_config(&local).expect("builds").name(),
        "local-whisper"
    );
}

/// Blank text and empty audio make no request; an out-of-range speed is refused before one.
#[tokio::test]
async fn nothing_to_do_makes_no_request() {
    let server = MockServer::start().await;
    let stt = OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt");
    let tts = OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts");
    let t = stt
        .transcribe(&AudioClip::default(), &SttOptions::default())
        .await
        .expect("empty");
    assert!(t.text.is_empty());
    let clip = tts
        .synthesize("  ", &TtsOptions::default())
        .await
        .expect("blank");
    assert!(clip.samples.is_empty());
    let mut fast = TtsOptions::default();
    fast.speed = Some(9.0);
    let e = tts.synthesize("Hello.", &fast).await.expect_err("speed");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        server
            .received_requests()
            .await
            .expect("recording")
            .is_empty()
    );
}

/// `duration` of the voiced test signal, frame by frame.
fn speech_clip(format: AudioFormat, duration: Duration) -> AudioClip {
    let mut clip = AudioClip::new(format);
    for frame in speech(format, duration) {
        clip.push(&frame).expect("one format");
    }
    clip
}

/// The conformance suite against a server that behaves like OpenAI: it recognises the
/// utterance only in a well-formed multipart request whose WAV file is exactly the clip (else
/// it hears nothing, `{"text": ""}`), and the suite's batch call and one streamed finalize make
/// exactly one request each.
#[tokio::test]
async fn passes_the_stt_conformance_suite() {
    let server = MockServer::start().await;
    let clip = speech_clip(AudioFormat::SPEECH, Duration::from_millis(1200));
    let said = "What is the status of order 427?";
    let heard = clip.clone();
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(move |request: &Request| {
            let parts = multipart(request);
            let wav = field(&parts, "file").and_then(|f| AudioClip::from_wav_bytes(&f.body).ok());
            let text = if wav.as_ref() == Some(&heard)
                && field(&parts, "model").is_some_and(|m| m.text() == "gpt-4o-mini-transcribe")
            {
                said
            } else {
                ""
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "text": text,
                "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 9, "total_tokens": 23}
            }))
        })
        .expect(2)
        .mount(&server)
        .await;
    let stt: Arc<dyn SpeechToText> =
        Arc::new(OpenAiStt::from_config(&config(&server, "gpt-4o-mini-transcribe")).expect("stt"));
    stt_suite(stt, &SttCase::new(clip, "what is the status of order 427")).await;
}

/// The conformance suite against a server that behaves like OpenAI: `/audio/speech` answers a
/// well-formed request for `pcm` with raw 24 kHz PCM, 250 ms of a tone per word of the input
/// (the audio's length follows the text), in both the default and the telephony format.
#[tokio::test]
async fn passes_the_tts_conformance_suite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/speech"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(|request: &Request| {
            let body: Value = request.body_json().expect("JSON body");
            if body["response_format"] != "pcm" || body["voice"] != "alloy" {
                return ResponseTemplate::new(400).set_body_json(json!({
                    "error": {"message": "unexpected request", "type": "invalid_request_error"}
                }));
            }
            let words = body["input"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .count();
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/pcm")
                .set_body_bytes(pcm_bytes(&tone(24_000, 0.25 * words as f32)))
        })
        .mount(&server)
        .await;
    let tts: Arc<dyn TextToSpeech> =
        Arc::new(OpenAiTts::from_config(&config(&server, "gpt-4o-mini-tts")).expect("tts"));
    for format in [AudioFormat::SPEECH, AudioFormat::TELEPHONY] {
        tts_suite(Arc::clone(&tts), &TtsOptions::new(format)).await;
    }
}
