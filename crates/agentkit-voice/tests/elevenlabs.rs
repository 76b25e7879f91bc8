//! ElevenLabs streaming and batch speech against local servers speaking ElevenLabs' wire format
//! (a multi-context WebSocket server written here, `wiremock` for HTTP), and the shared
//! conformance suite against a fake ElevenLabs serving both APIs on one address. No network, no
//! key.

// The handshake callback's error type is tungstenite's (`http::Response`).
#![allow(clippy::result_large_err)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_voice::providers::elevenlabs::{ElevenLabsTts, pcm_rate_for};
use agentkit_voice::testkit::conformance::tts_suite;
use agentkit_voice::{AudioFormat, TextToSpeech, TtsEvent, TtsOptions, TtsStream};
use base64::Engine as _;
use common::{
    Handshake, Ws, le_bytes, next_error, next_event, read_http, refusal, refuse, send_json as send,
    serve, serve_many, vendor, within, write_http, write_json,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const KEY: &str = "xi-test-key-3b7d0c55";
const VOICE: &str = "voice-1";

/// The next JSON message the client sent (pings skipped); `None` once it closes.
async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(t.as_str()).expect("client JSON"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(Message::Binary(b)) => panic!("the client sent binary data: {b:?}"),
            Ok(_) => continue,
        }
    }
}

async fn expect(ws: &mut Ws, want: Value) {
    let got = recv(ws).await.expect("a client message");
    assert_eq!(got, want);
}

/// The client's messages for one segment of `context`: it opens, gets `text`, is flushed and
/// closed.
async fn expect_segment(ws: &mut Ws, context: &str, text: &str) {
    expect(ws, json!({"text": " ", "context_id": context})).await;
    expect(ws, json!({"text": text, "context_id": context})).await;
    expect(ws, json!({"context_id": context, "flush": true})).await;
    expect(ws, json!({"context_id": context, "close_context": true})).await;
}

/// The client ends the session (`close_socket`); the server closes.
async fn expect_close(mut ws: Ws) {
    expect(&mut ws, json!({"close_socket": true})).await;
    ws.close(None).await.expect("close");
}

/// A stream of the default options to the server at `base`.
async fn open(base: &str) -> TtsStream {
    ElevenLabsTts::new(KEY, VOICE)
        .with_base_url(base)
        .stream(&TtsOptions::default())
        .await
        .expect("stream")
}

/// Closes the stream, which then ends.
async fn close(mut stream: TtsStream) {
    stream.close().await.expect("close");
    assert!(stream.next().await.is_none());
}

/// An audio message as ElevenLabs sends it: PCM16 `bytes`, base64.
fn audio_bytes(context: &str, bytes: &[u8]) -> Value {
    let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"audio": audio, "isFinal": null, "normalizedAlignment": null, "alignment": null, "contextId": context})
}

/// An audio message as ElevenLabs sends it.
fn audio(context: &str, samples: &[i16]) -> Value {
    audio_bytes(context, &le_bytes(samples))
}

fn final_of(context: &str) -> Value {
    json!({"isFinal": true, "contextId": context})
}

/// `(context, samples)` of an audio event, `(context, [])` of a flushed one.
fn shown(event: &TtsEvent) -> (String, Option<Vec<i16>>) {
    match event {
        TtsEvent::Audio { context, frame } => (context.clone(), Some(frame.samples().to_vec())),
        TtsEvent::Flushed { context } => (context.clone(), None),
        other => panic!("unexpected event {other:?}"),
    }
}

fn audio_event(context: &str, samples: &[i16]) -> (String, Option<Vec<i16>>) {
    (context.to_owned(), Some(samples.to_vec()))
}

fn flushed(context: &str) -> (String, Option<Vec<i16>>) {
    (context.to_owned(), None)
}

#[tokio::test]
async fn speaks_text_and_reports_flushed() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            expect(&mut ws, json!({"text": " ", "context_id": "c1", "voice_settings": {"stability": 0.5, "speed": 1.1}})).await;
            expect(&mut ws, json!({"text": "Hello ", "context_id": "c1"})).await;
            expect(&mut ws, json!({"text": "world. ", "context_id": "c1"})).await;
            expect(&mut ws, json!({"context_id": "c1", "flush": true})).await;
            send(&mut ws, audio("c1", &[1, 2, 3])).await;
            // A sample split across two chunks.
            let bytes = le_bytes(&[400, -500]);
            send(&mut ws, audio_bytes("c1", &bytes[..3])).await;
            send(&mut ws, audio_bytes("c1", &bytes[3..])).await;
            expect(&mut ws, json!({"context_id": "c1", "close_context": true})).await;
            send(&mut ws, final_of("c1")).await;
            expect_close(ws).await;
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE)
            .with_base_url(&base)
            .with_voice_settings(json!({"stability": 0.5}));
        let mut options = TtsOptions::default();
        options.speed = Some(1.1);
        let mut stream = tts.stream(&options).await.expect("stream");
        stream.push_text("c1", "Hello ").await.expect("text");
        stream.push_text("c1", "world. ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        let mut events = Vec::new();
        for _ in 0..4 {
            events.push(next_event(stream.next()).await);
        }
        for e in &events {
            if let TtsEvent::Audio { frame, .. } = e {
                assert_eq!(frame.format(), AudioFormat::SPEECH);
            }
        }
        assert_eq!(
            events.iter().map(shown).collect::<Vec<_>>(),
            vec![
                audio_event("c1", &[1, 2, 3]),
                audio_event("c1", &[400]),
                audio_event("c1", &[-500]),
                flushed("c1"),
            ]
        );
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());

        let (handshake, ()) = server.await.expect("server");
        assert_eq!(handshake.path, format!("/v1/text-to-speech/{VOICE}/multi-stream-input"));
        assert_eq!(handshake.header("xi-api-key"), Some(KEY));
        assert_eq!(handshake.param("model_id"), Some("eleven_flash_v2_5"));
        assert_eq!(handshake.param("output_format"), Some("pcm_16000"));
    })
    .await;
}

#[tokio::test]
async fn cancel_drops_the_late_audio_of_that_context_only() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            expect(&mut ws, json!({"text": " ", "context_id": "c1"})).await;
            expect(
                &mut ws,
                json!({"text": "A long answer ", "context_id": "c1"}),
            )
            .await;
            // Generated before any flush (the buffer filled).
            send(&mut ws, audio("c1", &[11, 11])).await;
            // Barge-in: the unflushed context is closed.
            expect(&mut ws, json!({"context_id": "c1", "close_context": true})).await;
            send(&mut ws, audio("c1", &[12, 12])).await;
            send(&mut ws, final_of("c1")).await;
            expect_segment(&mut ws, "c2", "Sorry? ").await;
            send(&mut ws, audio("c2", &[21, 21])).await;
            send(&mut ws, audio("c1", &[13, 13])).await;
            send(&mut ws, audio("c2", &[22])).await;
            send(&mut ws, final_of("c2")).await;
            expect_close(ws).await;
        })
        .await;
        let mut stream = open(&base).await;
        stream
            .push_text("c1", "A long answer ")
            .await
            .expect("text");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("c1", &[11, 11])
        );
        stream.cancel("c1").await.expect("cancel");
        stream.push_text("c2", "Sorry? ").await.expect("text");
        stream.flush("c2").await.expect("flush");
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(shown(&next_event(stream.next()).await));
        }
        assert_eq!(
            events,
            vec![
                audio_event("c2", &[21, 21]),
                audio_event("c2", &[22]),
                flushed("c2")
            ]
        );
        stream.close().await.expect("close");
        assert!(
            stream.next().await.is_none(),
            "nothing more, no Flushed for c1"
        );
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn cancel_after_flush_drops_the_rest_of_that_context() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            expect(&mut ws, json!({"text": " ", "context_id": "c1"})).await;
            expect(&mut ws, json!({"text": "One. ", "context_id": "c1"})).await;
            expect(&mut ws, json!({"context_id": "c1", "flush": true})).await;
            expect(&mut ws, json!({"context_id": "c1", "close_context": true})).await;
            send(&mut ws, audio("c1", &[1])).await;
            // After the cancel, the next context opens (c1 was already closed: nothing to send).
            expect(&mut ws, json!({"text": " ", "context_id": "c2"})).await;
            send(&mut ws, audio("c1", &[2])).await;
            send(&mut ws, final_of("c1")).await;
            expect(&mut ws, json!({"text": "Two. ", "context_id": "c2"})).await;
            expect(&mut ws, json!({"context_id": "c2", "flush": true})).await;
            expect(&mut ws, json!({"context_id": "c2", "close_context": true})).await;
            send(&mut ws, audio("c2", &[3])).await;
            send(&mut ws, final_of("c2")).await;
            expect_close(ws).await;
        })
        .await;
        let mut stream = open(&base).await;
        stream.push_text("c1", "One. ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("c1", &[1])
        );
        stream.cancel("c1").await.expect("cancel");
        stream.push_text("c2", "Two. ").await.expect("text");
        stream.flush("c2").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("c2", &[3])
        );
        assert_eq!(shown(&next_event(stream.next()).await), flushed("c2"));
        close(stream).await;
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn a_context_reused_after_its_flush_gets_a_new_elevenlabs_context() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            expect_segment(&mut ws, "r", "First. ").await;
            // The first segment is still speaking when the second opens.
            expect_segment(&mut ws, "r~2", "Second. ").await;
            send(&mut ws, audio("r", &[1])).await;
            send(&mut ws, final_of("r")).await;
            send(&mut ws, audio("r~2", &[2])).await;
            send(&mut ws, final_of("r~2")).await;
            expect_close(ws).await;
        })
        .await;
        let mut stream = open(&base).await;
        stream.push_text("r", "First. ").await.expect("text");
        stream.flush("r").await.expect("flush");
        stream.push_text("r", "Second. ").await.expect("text");
        stream.flush("r").await.expect("flush");
        // A flush with nothing new is reported after the audio before it.
        stream.flush("r").await.expect("flush");
        let mut events = Vec::new();
        for _ in 0..5 {
            events.push(shown(&next_event(stream.next()).await));
        }
        assert_eq!(
            events,
            vec![
                audio_event("r", &[1]),
                flushed("r"),
                audio_event("r", &[2]),
                flushed("r"),
                flushed("r"),
            ]
        );
        close(stream).await;
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn keepalive_keeps_an_open_context_alive() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let mut got = Vec::new();
            while let Some(m) = recv(&mut ws).await {
                if m.get("close_context") == Some(&json!(true)) {
                    send(&mut ws, audio("c1", &[1])).await;
                    send(&mut ws, final_of("c1")).await;
                }
                let end = m.get("close_socket").is_some();
                got.push(m);
                if end {
                    break;
                }
            }
            ws.close(None).await.expect("close");
            got
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE)
            .with_base_url(&base)
            .with_keepalive(Duration::from_millis(100));
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        // Nothing open: no keep-alive.
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream.push_text("c1", "Let me check ").await.expect("text");
        // A slow tool call: the context must not time out.
        tokio::time::sleep(Duration::from_millis(450)).await;
        stream.flush("c1").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("c1", &[1])
        );
        assert_eq!(shown(&next_event(stream.next()).await), flushed("c1"));
        // Flushed and closed: nothing to keep alive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());

        let (_, got) = server.await.expect("server");
        let keepalive = json!({"text": "", "context_id": "c1"});
        assert_eq!(
            got[0],
            json!({"text": " ", "context_id": "c1"}),
            "the context opens first"
        );
        assert_eq!(got[1], json!({"text": "Let me check ", "context_id": "c1"}));
        let flush = got
            .iter()
            .position(|m| *m == json!({"context_id": "c1", "flush": true}))
            .expect("flush");
        let during: Vec<_> = got[2..flush].to_vec();
        assert!(
            during.len() >= 2,
            "keep-alives during 450 ms of waiting: {during:?}"
        );
        assert!(during.iter().all(|m| *m == keepalive), "{during:?}");
        assert!(
            got[flush..].iter().all(|m| *m != keepalive),
            "no keep-alive once flushed: {got:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_connection_cut_mid_speech_is_one_unavailable_error() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            for _ in 0..4 {
                recv(&mut ws).await.expect("message");
            }
            send(&mut ws, audio("c1", &[9, 9])).await;
            drop(ws);
        })
        .await;
        let mut stream = open(&base).await;
        stream.push_text("c1", "Hello ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("c1", &[9, 9])
        );
        let e = next_error(stream.next()).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(stream.next().await.is_none(), "one error, then the end");
        let e = stream.push_text("c2", "more").await.expect_err("ended");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_reopened() {
    within(async {
        let (base, server) = serve_many(2, |i, mut ws| async move {
            let c = if i == 0 { "a" } else { "b" };
            expect_segment(&mut ws, c, "Hi. ").await;
            send(&mut ws, audio(c, &[i as i16 + 1])).await;
            send(&mut ws, final_of(c)).await;
            if i == 0 {
                // Idle: the server ends the connection.
                ws.close(None).await.expect("close");
            } else {
                expect_close(ws).await;
            }
        })
        .await;
        let mut stream = open(&base).await;
        stream.push_text("a", "Hi. ").await.expect("text");
        stream.flush("a").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("a", &[1])
        );
        assert_eq!(shown(&next_event(stream.next()).await), flushed("a"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.push_text("b", "Hi. ").await.expect("text");
        stream.flush("b").await.expect("flush");
        assert_eq!(
            shown(&next_event(stream.next()).await),
            audio_event("b", &[2])
        );
        assert_eq!(shown(&next_event(stream.next()).await), flushed("b"));
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());
        let handshakes = server.await.expect("server");
        assert_eq!(handshakes.len(), 2);
        assert!(
            handshakes
                .iter()
                .all(|(h, ())| h.header("xi-api-key") == Some(KEY))
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_handshake_is_unauthenticated_without_the_key() {
    within(async {
        let body = json!({"detail": {"status": "invalid_api_key", "message": format!("Invalid API key: {KEY}")}});
        let base = refuse(401, body.to_string()).await;
        let mut stream = open(&base).await;
        let e = next_error(stream.next()).await;
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(e.to_string().contains("Invalid API key"), "{e}");
        assert!(!e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY), "{e:?}");
        assert!(stream.next().await.is_none());
        assert_eq!(
            stream.push_text("c1", "x").await.expect_err("ended").kind(),
            ErrorKind::Unavailable
        );
    })
    .await;
}

#[tokio::test]
async fn malformed_messages_are_malformed_responses() {
    for bad in [
        "{\"audio\": \"AAA",
        "{\"audio\": \"%%% not base64\", \"contextId\": \"c1\"}",
    ] {
        within(async {
            let (base, server) = serve(move |mut ws| async move {
                recv(&mut ws).await.expect("init");
                recv(&mut ws).await.expect("text");
                ws.send(Message::text(bad)).await.expect("send");
                while recv(&mut ws).await.is_some() {}
            })
            .await;
            let mut stream = open(&base).await;
            stream.push_text("c1", "Hello ").await.expect("text");
            let e = next_error(stream.next()).await;
            assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{bad}: {e}");
            assert!(stream.next().await.is_none());
            server.await.expect("server");
        })
        .await;
    }
}

#[tokio::test]
async fn an_error_message_is_typed() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            recv(&mut ws).await.expect("init");
            recv(&mut ws).await.expect("text");
            send(&mut ws, json!({"message": "This request exceeds your quota.", "error": "quota_exceeded", "code": 1008})).await;
            while recv(&mut ws).await.is_some() {}
        })
        .await;
        let mut stream = open(&base).await;
        stream.push_text("c1", "Hello ").await.expect("text");
        let e = next_error(stream.next()).await;
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("exceeds your quota"), "{e}");
        assert!(stream.next().await.is_none());
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn unsupported_rates_are_resampled_and_channels_filled() {
    assert_eq!(pcm_rate_for(16_000), 16_000);
    assert_eq!(pcm_rate_for(24_000), 24_000);
    assert_eq!(pcm_rate_for(32_000), 44_100);
    assert_eq!(pcm_rate_for(48_000), 44_100);
    assert_eq!(pcm_rate_for(12_000), 16_000);
    within(async {
        // 100 ms of a 441 Hz tone at 44.1 kHz.
        let tone: Vec<i16> = (0..4410)
            .map(|i| ((i as f32 / 100.0 * std::f32::consts::TAU).sin() * 8000.0) as i16)
            .collect();
        let sent = tone.clone();
        let (base, server) = serve(move |mut ws| async move {
            for _ in 0..4 {
                recv(&mut ws).await.expect("message");
            }
            send(&mut ws, audio("c1", &sent[..2000])).await;
            send(&mut ws, audio("c1", &sent[2000..])).await;
            send(&mut ws, final_of("c1")).await;
            expect_close(ws).await;
        })
        .await;
        let format = AudioFormat {
            sample_rate: 48_000,
            channels: 2,
        };
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::new(format)).await.expect("stream");
        stream.push_text("c1", "Tone. ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        let mut samples = Vec::new();
        loop {
            match next_event(stream.next()).await {
                TtsEvent::Audio { frame, .. } => {
                    assert_eq!(frame.format(), format);
                    samples.extend_from_slice(frame.samples());
                }
                TtsEvent::Flushed { .. } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // 100 ms at 48 kHz, in two equal channels.
        assert_eq!(samples.len(), 4800 * 2);
        assert!(samples.chunks_exact(2).all(|c| c[0] == c[1]));
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let crossings = left.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!(
            (80..=100).contains(&crossings),
            "441 Hz for 100 ms: {crossings}"
        );
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());
        let (handshake, ()) = server.await.expect("server");
        assert_eq!(handshake.param("output_format"), Some("pcm_44100"));
    })
    .await;
}

#[tokio::test]
async fn the_key_is_not_in_debug_output() {
    let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url("ws://127.0.0.1:9");
    let shown = format!("{tts:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
    assert_eq!(tts.name(), "elevenlabs");
}

#[tokio::test]
async fn synthesize_posts_text_and_reads_pcm() {
    use wiremock::matchers::{body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let pcm: Vec<i16> = vec![0, 1000, -1000, 32767, -32768];
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/text-to-speech/{VOICE}")))
        .and(header("xi-api-key", KEY))
        .and(query_param("output_format", "pcm_16000"))
        .and(body_partial_json(
            json!({"text": "Hi there.", "model_id": "eleven_flash_v2_5"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
        .expect(1)
        .mount(&server)
        .await;
    let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(server.uri());
    let clip = tts
        .synthesize("Hi there.", &TtsOptions::default())
        .await
        .expect("synthesize");
    assert_eq!(clip.format(), AudioFormat::SPEECH);
    assert_eq!(clip.samples, pcm);
}

#[tokio::test]
async fn synthesize_errors_are_typed_and_scrubbed() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "detail": {"status": "invalid_api_key", "message": format!("Invalid API key {KEY}")}
        })))
        .mount(&server)
        .await;
    let e = ElevenLabsTts::new(KEY, VOICE)
        .with_base_url(server.uri())
        .synthesize("Hi.", &TtsOptions::default())
        .await
        .expect_err("401");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("Invalid API key"), "{e}");
    assert!(
        !e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY),
        "{e:?}"
    );
}

/// The `output_format=pcm_<rate>` of a request target.
fn pcm_rate_in(target: &str) -> Option<u32> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("output_format=pcm_"))?
        .parse()
        .ok()
}

/// What the fake speaks for `text`: 200 ms of a 250 Hz tone per word, as PCM16 at `rate`.
fn spoken(text: &str, rate: u32) -> Vec<u8> {
    let words = text.split_whitespace().count();
    let n = rate as usize / 5 * words;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            ((t * 250.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
        })
        .flat_map(i16::to_le_bytes)
        .collect()
}

/// A server behaving like ElevenLabs for both APIs on one address, for any number of
/// connections: `POST /v1/text-to-speech/{voice}` answers raw PCM, a WebSocket on
/// `.../multi-stream-input` is a multi-context session. Both check the `xi-api-key`.
async fn elevenlabs_vendor() -> String {
    vendor(multi_context_vendor, batch_vendor).await
}

/// `POST /v1/text-to-speech/{voice}?output_format=pcm_<rate>` with `{"text", "model_id"}`:
/// the speech as raw PCM at that rate.
async fn batch_vendor(mut tcp: TcpStream) {
    let request = read_http(&mut tcp).await;
    let target = request
        .line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let authorized = request.header("xi-api-key") == Some(KEY);
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let rate = pcm_rate_in(&target);
    match (authorized, rate, body["text"].as_str()) {
        (true, Some(rate), Some(text))
            if target.starts_with(&format!("/v1/text-to-speech/{VOICE}?"))
                && body["model_id"].is_string() =>
        {
            write_http(&mut tcp, 200, "audio/pcm", &spoken(text, rate)).await;
        }
        _ => {
            let detail =
                json!({"detail": {"status": "invalid_request", "message": "Invalid request."}});
            write_json(&mut tcp, 400, &detail).await;
        }
    }
}

/// A multi-context session as ElevenLabs runs one: a context opens with its first text and
/// buffers text; `flush` speaks the buffered text (audio in chunks that split samples);
/// `close_context` drops unflushed text, ends the context with `isFinal` and refuses anything
/// more for it; `close_socket` ends the session with a normal close.
async fn multi_context_vendor(tcp: TcpStream) {
    let mut rate = None;
    let callback = |request: &Request, response: Response| {
        let seen = Handshake::of(request);
        rate = request
            .uri()
            .query()
            .and_then(|q| pcm_rate_in(&format!("?{q}")));
        if seen.path == format!("/v1/text-to-speech/{VOICE}/multi-stream-input")
            && seen.header("xi-api-key") == Some(KEY)
            && seen.query.contains_key("model_id")
        {
            Ok(response)
        } else {
            let body = json!({"detail": {"status": "invalid_api_key"}});
            Err(refusal(401, body.to_string()))
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let rate = rate.expect("output_format=pcm_<rate>");
    let mut buffered: HashMap<String, String> = HashMap::new();
    let mut closed: HashSet<String> = HashSet::new();
    while let Some(m) = recv(&mut ws).await {
        if m.get("close_socket") == Some(&json!(true)) {
            let _ = ws.close(None).await;
            while recv(&mut ws).await.is_some() {}
            return;
        }
        let Some(context) = m["context_id"].as_str().map(str::to_owned) else {
            send(
                &mut ws,
                json!({"message": "context_id is required", "error": "invalid_request"}),
            )
            .await;
            continue;
        };
        if closed.contains(&context) {
            let message = format!("Context {context} has been closed.");
            send(
                &mut ws,
                json!({"message": message, "error": "context_closed", "code": 1008}),
            )
            .await;
            continue;
        }
        if let Some(text) = m["text"].as_str() {
            buffered.entry(context).or_default().push_str(text);
        } else if m.get("flush") == Some(&json!(true)) {
            let text = buffered
                .get_mut(&context)
                .map(std::mem::take)
                .unwrap_or_default();
            for chunk in spoken(&text, rate).chunks(4001) {
                send(&mut ws, audio_bytes(&context, chunk)).await;
            }
        } else if m.get("close_context") == Some(&json!(true)) {
            buffered.remove(&context);
            closed.insert(context.clone());
            send(&mut ws, final_of(&context)).await;
        }
    }
}

/// The shared text-to-speech conformance suite against a server behaving like ElevenLabs (one
/// address for the batch and the streaming API), in the default format and in one ElevenLabs
/// does not produce (48 kHz stereo, resampled and copied into both channels).
#[tokio::test]
async fn passes_the_tts_conformance_suite() {
    let base = elevenlabs_vendor().await;
    let tts: Arc<dyn TextToSpeech> = Arc::new(ElevenLabsTts::new(KEY, VOICE).with_base_url(&base));
    let stereo = AudioFormat {
        sample_rate: 48_000,
        channels: 2,
    };
    for format in [AudioFormat::SPEECH, stereo] {
        tts_suite(Arc::clone(&tts), &TtsOptions::new(format)).await;
    }
}
