//! ElevenLabs streaming and batch speech against local servers speaking ElevenLabs' wire format
//! (a multi-context WebSocket server written here, `wiremock` for HTTP), and the shared
//! conformance suite against a fake ElevenLabs serving both APIs on one address. No network, no
//! key.

// The handshake callback's error type is tungstenite's (`http::Response`).
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_voice::providers::elevenlabs::{ElevenLabsTts, pcm_rate_for};
use agentkit_voice::testkit::conformance::tts_suite;
use agentkit_voice::{AudioFormat, TextToSpeech, TtsEvent, TtsOptions, TtsStream};
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;

const KEY: &str = "xi-test-key-3b7d0c55";
const VOICE: &str = "voice-1";

type Ws = WebSocketStream<TcpStream>;

/// What the client's handshake asked for.
#[derive(Debug, Clone)]
struct Handshake {
    path: String,
    query: HashMap<String, String>,
    api_key: Option<String>,
}

impl Handshake {
    fn of(request: &Request) -> Self {
        let query = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            path: request.uri().path().to_owned(),
            query,
            api_key: request
                .headers()
                .get("xi-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// A server for `connections` connections in turn: records each handshake, then runs
/// `script(index, socket)`.
async fn serve_many<F, Fut, R>(
    connections: usize,
    script: F,
) -> (String, tokio::task::JoinHandle<Vec<(Handshake, R)>>)
where
    F: Fn(usize, Ws) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("ws://{}", listener.local_addr().expect("addr"));
    let handle = tokio::spawn(async move {
        let mut out = Vec::new();
        for i in 0..connections {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut seen = None;
            let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
                seen = Some(Handshake::of(req));
                Ok(resp)
            })
            .await
            .expect("handshake");
            let r = script(i, ws).await;
            out.push((seen.expect("handshake seen"), r));
        }
        out
    });
    (base, handle)
}

async fn serve<F, Fut, R>(script: F) -> (String, tokio::task::JoinHandle<(Handshake, R)>)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let script = std::sync::Mutex::new(Some(script));
    let (base, handle) = serve_many(1, move |_, ws| {
        let f = script.lock().expect("lock").take().expect("one connection");
        f(ws)
    })
    .await;
    let handle =
        tokio::spawn(async move { handle.await.expect("server").pop().expect("one connection") });
    (base, handle)
}

/// A server refusing the handshake with `status` and `body`.
async fn refuse(status: u16, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("ws://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let _ = tokio_tungstenite::accept_hdr_async(tcp, move |_: &Request, _: Response| {
            let refusal: ErrorResponse = http::Response::builder()
                .status(status)
                .body(Some(body))
                .expect("response");
            Err(refusal)
        })
        .await;
    });
    base
}

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

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

fn b64(samples: &[i16]) -> String {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An audio message as ElevenLabs sends it.
fn audio(context: &str, samples: &[i16]) -> Value {
    json!({"audio": b64(samples), "isFinal": null, "normalizedAlignment": null, "alignment": null, "contextId": context})
}

fn final_of(context: &str) -> Value {
    json!({"isFinal": true, "contextId": context})
}

/// Runs `f`, failing the test instead of hanging.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test hung")
}

async fn next_event(stream: &mut TtsStream) -> TtsEvent {
    stream
        .next()
        .await
        .expect("an event")
        .expect("not an error")
}

async fn next_error(stream: &mut TtsStream) -> agentkit_core::Error {
    match stream.next().await.expect("an event") {
        Err(e) => e,
        Ok(event) => panic!("expected an error, got {event:?}"),
    }
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
            let bytes: Vec<u8> = [400i16, -500].iter().flat_map(|s| s.to_le_bytes()).collect();
            let engine = base64::engine::general_purpose::STANDARD;
            send(&mut ws, json!({"audio": engine.encode(&bytes[..3]), "isFinal": null, "contextId": "c1"})).await;
            send(&mut ws, json!({"audio": engine.encode(&bytes[3..]), "isFinal": null, "contextId": "c1"})).await;
            expect(&mut ws, json!({"context_id": "c1", "close_context": true})).await;
            send(&mut ws, final_of("c1")).await;
            expect(&mut ws, json!({"close_socket": true})).await;
            ws.close(None).await.expect("close");
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
            events.push(next_event(&mut stream).await);
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
        assert_eq!(handshake.api_key.as_deref(), Some(KEY));
        assert_eq!(handshake.query.get("model_id").map(String::as_str), Some("eleven_flash_v2_5"));
        assert_eq!(handshake.query.get("output_format").map(String::as_str), Some("pcm_16000"));
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
            expect(&mut ws, json!({"text": " ", "context_id": "c2"})).await;
            expect(&mut ws, json!({"text": "Sorry? ", "context_id": "c2"})).await;
            expect(&mut ws, json!({"context_id": "c2", "flush": true})).await;
            expect(&mut ws, json!({"context_id": "c2", "close_context": true})).await;
            send(&mut ws, audio("c2", &[21, 21])).await;
            send(&mut ws, audio("c1", &[13, 13])).await;
            send(&mut ws, audio("c2", &[22])).await;
            send(&mut ws, final_of("c2")).await;
            expect(&mut ws, json!({"close_socket": true})).await;
            ws.close(None).await.expect("close");
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream
            .push_text("c1", "A long answer ")
            .await
            .expect("text");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("c1", &[11, 11])
        );
        stream.cancel("c1").await.expect("cancel");
        stream.push_text("c2", "Sorry? ").await.expect("text");
        stream.flush("c2").await.expect("flush");
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(shown(&next_event(&mut stream).await));
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
            expect(&mut ws, json!({"close_socket": true})).await;
            ws.close(None).await.expect("close");
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream.push_text("c1", "One. ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("c1", &[1])
        );
        stream.cancel("c1").await.expect("cancel");
        stream.push_text("c2", "Two. ").await.expect("text");
        stream.flush("c2").await.expect("flush");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("c2", &[3])
        );
        assert_eq!(shown(&next_event(&mut stream).await), flushed("c2"));
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn a_context_reused_after_its_flush_gets_a_new_elevenlabs_context() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            expect(&mut ws, json!({"text": " ", "context_id": "r"})).await;
            expect(&mut ws, json!({"text": "First. ", "context_id": "r"})).await;
            expect(&mut ws, json!({"context_id": "r", "flush": true})).await;
            expect(&mut ws, json!({"context_id": "r", "close_context": true})).await;
            // The first segment is still speaking when the second opens.
            expect(&mut ws, json!({"text": " ", "context_id": "r~2"})).await;
            expect(&mut ws, json!({"text": "Second. ", "context_id": "r~2"})).await;
            expect(&mut ws, json!({"context_id": "r~2", "flush": true})).await;
            expect(&mut ws, json!({"context_id": "r~2", "close_context": true})).await;
            send(&mut ws, audio("r", &[1])).await;
            send(&mut ws, final_of("r")).await;
            send(&mut ws, audio("r~2", &[2])).await;
            send(&mut ws, final_of("r~2")).await;
            expect(&mut ws, json!({"close_socket": true})).await;
            ws.close(None).await.expect("close");
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream.push_text("r", "First. ").await.expect("text");
        stream.flush("r").await.expect("flush");
        stream.push_text("r", "Second. ").await.expect("text");
        stream.flush("r").await.expect("flush");
        // A flush with nothing new is reported after the audio before it.
        stream.flush("r").await.expect("flush");
        let mut events = Vec::new();
        for _ in 0..5 {
            events.push(shown(&next_event(&mut stream).await));
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
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());
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
            shown(&next_event(&mut stream).await),
            audio_event("c1", &[1])
        );
        assert_eq!(shown(&next_event(&mut stream).await), flushed("c1"));
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
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream.push_text("c1", "Hello ").await.expect("text");
        stream.flush("c1").await.expect("flush");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("c1", &[9, 9])
        );
        let e = next_error(&mut stream).await;
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
            expect(&mut ws, json!({"text": " ", "context_id": c})).await;
            expect(&mut ws, json!({"text": "Hi. ", "context_id": c})).await;
            expect(&mut ws, json!({"context_id": c, "flush": true})).await;
            expect(&mut ws, json!({"context_id": c, "close_context": true})).await;
            send(&mut ws, audio(c, &[i as i16 + 1])).await;
            send(&mut ws, final_of(c)).await;
            if i == 0 {
                // Idle: the server ends the connection.
                ws.close(None).await.expect("close");
            } else {
                expect(&mut ws, json!({"close_socket": true})).await;
                ws.close(None).await.expect("close");
            }
        })
        .await;
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream.push_text("a", "Hi. ").await.expect("text");
        stream.flush("a").await.expect("flush");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("a", &[1])
        );
        assert_eq!(shown(&next_event(&mut stream).await), flushed("a"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.push_text("b", "Hi. ").await.expect("text");
        stream.flush("b").await.expect("flush");
        assert_eq!(
            shown(&next_event(&mut stream).await),
            audio_event("b", &[2])
        );
        assert_eq!(shown(&next_event(&mut stream).await), flushed("b"));
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());
        let handshakes = server.await.expect("server");
        assert_eq!(handshakes.len(), 2);
        assert!(
            handshakes
                .iter()
                .all(|(h, ())| h.api_key.as_deref() == Some(KEY))
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_handshake_is_unauthenticated_without_the_key() {
    within(async {
        let body = json!({"detail": {"status": "invalid_api_key", "message": format!("Invalid API key: {KEY}")}});
        let base = refuse(401, body.to_string()).await;
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        let e = next_error(&mut stream).await;
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
            let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
            let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
            stream.push_text("c1", "Hello ").await.expect("text");
            let e = next_error(&mut stream).await;
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
        let tts = ElevenLabsTts::new(KEY, VOICE).with_base_url(&base);
        let mut stream = tts.stream(&TtsOptions::default()).await.expect("stream");
        stream.push_text("c1", "Hello ").await.expect("text");
        let e = next_error(&mut stream).await;
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
            expect(&mut ws, json!({"close_socket": true})).await;
            ws.close(None).await.expect("close");
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
            match next_event(&mut stream).await {
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
        assert_eq!(
            handshake.query.get("output_format").map(String::as_str),
            Some("pcm_44100")
        );
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

/// An HTTP request read by hand: the request line, headers (names lowercase) and body.
struct HttpRequest {
    line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// The head of the request waiting on `tcp`, lowercase, left unread (so a WebSocket handshake
/// can still read it).
async fn peek_head(tcp: &TcpStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..1000 {
        let n = tcp.peek(&mut buf).await.expect("peek");
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if let Some(end) = head.find("\r\n\r\n") {
            return head[..end].to_owned();
        }
        if n == 0 {
            return String::new();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("no complete request head");
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_http(tcp: &mut TcpStream) -> HttpRequest {
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("request line");
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.expect("header");
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("body");
    HttpRequest {
        line: line.trim_end().to_owned(),
        headers,
        body,
    }
}

async fn write_http(tcp: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(body).await.expect("write");
    tcp.shutdown().await.expect("shutdown");
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = peek_head(&tcp).await;
                if head.starts_with("get ") && head.contains("upgrade: websocket") {
                    multi_context_vendor(tcp).await;
                } else if !head.is_empty() {
                    batch_vendor(tcp).await;
                }
            });
        }
    });
    base
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
    let authorized = request.headers.get("xi-api-key").map(String::as_str) == Some(KEY);
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
            write_http(
                &mut tcp,
                400,
                "application/json",
                detail.to_string().as_bytes(),
            )
            .await;
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
            && seen.api_key.as_deref() == Some(KEY)
            && seen.query.contains_key("model_id")
        {
            Ok(response)
        } else {
            let refusal: ErrorResponse = http::Response::builder()
                .status(401)
                .body(Some(
                    "{\"detail\":{\"status\":\"invalid_api_key\"}}".to_owned(),
                ))
                .expect("response");
            Err(refusal)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let rate = rate.expect("output_format=pcm_<rate>");
    let engine = base64::engine::general_purpose::STANDARD;
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
                let message = json!({"audio": engine.encode(chunk), "isFinal": null, "normalizedAlignment": null, "alignment": null, "contextId": context});
                send(&mut ws, message).await;
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
