//! Deepgram live and batch transcription against local servers speaking Deepgram's wire format
//! (a WebSocket server written here, `wiremock` for HTTP), and the shared conformance suite
//! against a fake Deepgram serving both APIs on one address. No network, no key.

// The handshake callback's error type is tungstenite's (`http::Response`).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_voice::providers::deepgram::DeepgramStt;
use agentkit_voice::testkit::conformance::{SttCase, stt_suite};
use agentkit_voice::testkit::speech;
use agentkit_voice::{
    AudioClip, AudioFormat, AudioFrame, SpeechToText, SttEvent, SttOptions, SttStream,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KEY: &str = "dg-test-key-6f1c2a9e";

type Ws = WebSocketStream<TcpStream>;

/// What the client's handshake asked for.
#[derive(Debug, Clone)]
struct Handshake {
    path: String,
    query: HashMap<String, String>,
    authorization: Option<String>,
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
            authorization: request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// A server for one connection: records the handshake, then runs `script` on the socket.
async fn serve<F, Fut, R>(script: F) -> (String, tokio::task::JoinHandle<(Handshake, R)>)
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("ws://{}", listener.local_addr().expect("addr"));
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut seen = None;
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
            seen = Some(Handshake::of(req));
            Ok(resp)
        })
        .await
        .expect("handshake");
        let out = script(ws).await;
        (seen.expect("handshake seen"), out)
    });
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
                .header("content-type", "application/json")
                .body(Some(body))
                .expect("response");
            Err(refusal)
        })
        .await;
    });
    base
}

/// The next data or close message the client sent (pings skipped).
async fn next_message(ws: &mut Ws) -> Message {
    loop {
        match ws.next().await.expect("client message").expect("read") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

fn text_json(message: &Message) -> Option<Value> {
    match message {
        Message::Text(t) => Some(serde_json::from_str(t.as_str()).expect("client JSON")),
        _ => None,
    }
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

fn results(
    transcript: &str,
    is_final: bool,
    speech_final: bool,
    start: f64,
    duration: f64,
) -> Value {
    json!({
        "type": "Results",
        "channel_index": [0, 1],
        "duration": duration,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.93, "words": []}]},
        "metadata": {"request_id": "r-1", "model_info": {"name": "2-general-nova"}},
        "from_finalize": false
    })
}

fn frame(samples: &[i16]) -> AudioFrame {
    AudioFrame::new(AudioFormat::SPEECH, samples.to_vec()).expect("frame")
}

/// Runs `f`, failing the test instead of hanging.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test hung")
}

async fn next_event(stream: &mut SttStream) -> SttEvent {
    stream
        .next()
        .await
        .expect("an event")
        .expect("not an error")
}

async fn next_error(stream: &mut SttStream) -> agentkit_core::Error {
    match stream.next().await.expect("an event") {
        Err(e) => e,
        Ok(event) => panic!("expected an error, got {event:?}"),
    }
}

fn transcript_of(event: &SttEvent) -> (&'static str, String) {
    match event {
        SttEvent::Interim(t) => ("interim", t.text.clone()),
        SttEvent::Final(t) => ("final", t.text.clone()),
        SttEvent::SpeechStarted => ("speech_started", String::new()),
        SttEvent::UtteranceEnd => ("utterance_end", String::new()),
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test]
async fn streams_audio_and_maps_results_in_order() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let mut got = vec![next_message(&mut ws).await, next_message(&mut ws).await];
            send_json(&mut ws, json!({"type": "Metadata", "request_id": "r-1"})).await;
            send_json(
                &mut ws,
                json!({"type": "SpeechStarted", "channel": [0], "timestamp": 0.2}),
            )
            .await;
            send_json(&mut ws, results("hel", false, false, 0.0, 0.5)).await;
            send_json(&mut ws, results("", false, false, 0.5, 0.1)).await;
            send_json(&mut ws, results("hello world", true, false, 0.0, 1.5)).await;
            send_json(
                &mut ws,
                json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.4}),
            )
            .await;
            // A second UtteranceEnd for the same utterance is not reported again.
            send_json(
                &mut ws,
                json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.4}),
            )
            .await;
            got.push(next_message(&mut ws).await);
            send_json(&mut ws, results("bye", true, true, 1.5, 0.4)).await;
            send_json(
                &mut ws,
                json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.9}),
            )
            .await;
            send_json(
                &mut ws,
                json!({"type": "Metadata", "request_id": "r-1", "duration": 1.9}),
            )
            .await;
            ws.close(None).await.expect("close");
            got
        })
        .await;
        let stt = DeepgramStt::new(KEY).with_base_url(&base);
        let mut stream = stt.stream(&SttOptions::default()).await.expect("stream");
        let a = frame(&[1, -2, 300, i16::MIN]);
        let b = frame(&[i16::MAX, 0, -1]);
        stream.push(a.clone()).await.expect("push");
        stream.push(b.clone()).await.expect("push");

        let mut events = Vec::new();
        for _ in 0..4 {
            events.push(next_event(&mut stream).await);
        }
        stream.close().await.expect("close");
        while let Some(event) = stream.next().await {
            events.push(event.expect("no error"));
        }
        let seen: Vec<_> = events.iter().map(transcript_of).collect();
        assert_eq!(
            seen,
            vec![
                ("speech_started", String::new()),
                ("interim", "hel".into()),
                ("final", "hello world".into()),
                ("utterance_end", String::new()),
                ("final", "bye".into()),
                ("utterance_end", String::new()),
            ]
        );
        let SttEvent::Final(t) = &events[2] else {
            unreachable!()
        };
        assert_eq!(t.start, Duration::ZERO);
        assert_eq!(t.duration, Duration::from_millis(1500));
        assert_eq!(t.confidence, Some(0.93));
        let SttEvent::Final(t) = &events[4] else {
            unreachable!()
        };
        assert_eq!(t.start, Duration::from_millis(1500));

        let (handshake, got) = server.await.expect("server");
        assert_eq!(handshake.path, "/v1/listen");
        assert_eq!(
            handshake.authorization.as_deref(),
            Some(format!("Token {KEY}").as_str())
        );
        for (k, v) in [
            ("model", "nova-3"),
            ("encoding", "linear16"),
            ("sample_rate", "16000"),
            ("channels", "1"),
            ("interim_results", "true"),
            ("vad_events", "true"),
            ("utterance_end_ms", "1000"),
            ("punctuate", "true"),
        ] {
            assert_eq!(
                handshake.query.get(k).map(String::as_str),
                Some(v),
                "query {k}"
            );
        }
        assert_eq!(got[0], Message::binary(a.to_le_bytes()));
        assert_eq!(got[1], Message::binary(b.to_le_bytes()));
        assert_eq!(text_json(&got[2]), Some(json!({"type": "CloseStream"})));
    })
    .await;
}

#[tokio::test]
async fn finalize_sends_finalize_and_ends_the_utterance() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let audio = next_message(&mut ws).await;
            let finalize = next_message(&mut ws).await;
            let mut done = results("done", true, false, 0.0, 0.3);
            done["from_finalize"] = json!(true);
            send_json(&mut ws, done).await;
            let close = next_message(&mut ws).await;
            ws.close(None).await.expect("close");
            (audio, finalize, close)
        })
        .await;
        let stt = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .with_model("nova-2")
            .with_query("smart_format", "true");
        let options = SttOptions::default().with_language("de");
        let mut stream = stt.stream(&options).await.expect("stream");
        stream.push(frame(&[5; 320])).await.expect("push");
        stream.finalize().await.expect("finalize");
        assert_eq!(
            transcript_of(&next_event(&mut stream).await),
            ("final", "done".into())
        );
        assert_eq!(next_event(&mut stream).await, SttEvent::UtteranceEnd);
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());

        let (handshake, (audio, finalize, close)) = server.await.expect("server");
        assert!(audio.is_binary());
        assert!(finalize.is_text(), "Finalize is a text frame");
        assert_eq!(text_json(&finalize), Some(json!({"type": "Finalize"})));
        assert_eq!(text_json(&close), Some(json!({"type": "CloseStream"})));
        assert_eq!(
            handshake.query.get("model").map(String::as_str),
            Some("nova-2")
        );
        assert_eq!(
            handshake.query.get("language").map(String::as_str),
            Some("de")
        );
        assert_eq!(
            handshake.query.get("smart_format").map(String::as_str),
            Some("true")
        );
    })
    .await;
}

#[tokio::test]
async fn keepalive_is_sent_during_silence_only() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let mut got = Vec::new();
            loop {
                let m = next_message(&mut ws).await;
                let end = text_json(&m) == Some(json!({"type": "CloseStream"}));
                got.push(m);
                if end {
                    break;
                }
            }
            ws.close(None).await.expect("close");
            got
        })
        .await;
        let stt = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .with_keepalive(Duration::from_millis(150));
        let mut stream = stt.stream(&SttOptions::default()).await.expect("stream");
        // Audio every 10 ms for a while: no keep-alive is needed.
        for _ in 0..15 {
            stream.push(frame(&[7; 160])).await.expect("push");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Silence: keep-alives keep the connection open.
        tokio::time::sleep(Duration::from_millis(650)).await;
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());

        let (_, got) = server.await.expect("server");
        let last_audio = got.iter().rposition(Message::is_binary).expect("audio");
        let first_audio = got.iter().position(Message::is_binary).expect("audio");
        assert_eq!(
            last_audio - first_audio,
            14,
            "all 15 frames, nothing between them"
        );
        let keepalives: Vec<_> = got[last_audio + 1..got.len() - 1].to_vec();
        assert!(
            keepalives.len() >= 2,
            "keep-alives during 650 ms of silence: {keepalives:?}"
        );
        for k in &keepalives {
            assert!(k.is_text(), "KeepAlive is a text frame: {k:?}");
            assert_eq!(text_json(k), Some(json!({"type": "KeepAlive"})));
        }
    })
    .await;
}

#[tokio::test]
async fn a_connection_cut_mid_utterance_is_one_unavailable_error() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let _ = next_message(&mut ws).await;
            send_json(&mut ws, results("half a sen", false, false, 0.0, 0.4)).await;
            // Dropped without a close frame.
            drop(ws);
        })
        .await;
        let stt = DeepgramStt::new(KEY).with_base_url(&base);
        let mut stream = stt.stream(&SttOptions::default()).await.expect("stream");
        stream.push(frame(&[1; 160])).await.expect("push");
        assert_eq!(
            transcript_of(&next_event(&mut stream).await),
            ("interim", "half a sen".into())
        );
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(stream.next().await.is_none(), "one error, then the end");
        let e = stream
            .push(frame(&[1; 160]))
            .await
            .expect_err("the session has ended");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn a_refused_handshake_is_unauthenticated_without_the_key() {
    within(async {
        let body = json!({"err_code": "INVALID_AUTH", "err_msg": format!("Invalid credentials: {KEY}"), "request_id": "r-9"});
        let base = refuse(401, body.to_string()).await;
        let stt = DeepgramStt::new(KEY).with_base_url(&base);
        let mut stream = stt.stream(&SttOptions::default()).await.expect("stream");
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
        assert!(e.to_string().contains("Invalid credentials"), "{e}");
        assert!(!e.to_string().contains(KEY), "{e}");
        assert!(!format!("{e:?}").contains(KEY), "{e:?}");
        assert!(stream.next().await.is_none());
        assert_eq!(
            stream.push(frame(&[1])).await.expect_err("ended").kind(),
            ErrorKind::Unavailable
        );

        let base = refuse(403, "{}".into()).await;
        let mut stream = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .stream(&SttOptions::default())
            .await
            .expect("stream");
        assert_eq!(next_error(&mut stream).await.kind(), ErrorKind::Unauthenticated);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("ws://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let mut stream = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .stream(&SttOptions::default())
            .await
            .expect("stream");
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(stream.next().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn malformed_json_is_a_malformed_response() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let _ = next_message(&mut ws).await;
            ws.send(Message::text("{\"type\": \"Results\", oops"))
                .await
                .expect("send");
            // The client hangs up after the error.
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        let mut stream = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .stream(&SttOptions::default())
            .await
            .expect("stream");
        stream.push(frame(&[1; 160])).await.expect("push");
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
        assert!(stream.next().await.is_none());
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn an_error_close_is_typed_by_its_reason() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let _ = next_message(&mut ws).await;
            ws.close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "DATA-0000: The payload cannot be decoded as audio.".into(),
            }))
            .await
            .expect("close");
        })
        .await;
        let mut stream = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .stream(&SttOptions::default())
            .await
            .expect("stream");
        stream.push(frame(&[1; 160])).await.expect("push");
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("DATA-0000"), "{e}");
        assert!(stream.next().await.is_none());
        server.await.expect("server");
    })
    .await;
}

#[tokio::test]
async fn audio_of_another_format_is_refused() {
    within(async {
        let (base, server) = serve(|mut ws| async move {
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
                got.push(m);
            }
            got
        })
        .await;
        let mut stream = DeepgramStt::new(KEY)
            .with_base_url(&base)
            .stream(&SttOptions::default())
            .await
            .expect("stream");
        let phone = AudioFrame::new(AudioFormat::TELEPHONY, vec![1i16; 160]).expect("frame");
        stream.push(phone).await.expect("push");
        let e = next_error(&mut stream).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(stream.next().await.is_none());
        let (_, got) = server.await.expect("server");
        assert!(
            !got.iter().any(Message::is_binary),
            "nothing of the wrong format was sent"
        );
    })
    .await;
}

#[tokio::test]
async fn the_key_is_not_in_debug_output() {
    let stt = DeepgramStt::new(KEY).with_base_url("ws://127.0.0.1:9");
    let shown = format!("{stt:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
    assert_eq!(stt.name(), "deepgram");
}

#[tokio::test]
async fn transcribe_posts_wav_to_listen() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/listen"))
        .and(header("authorization", format!("Token {KEY}").as_str()))
        .and(header("content-type", "audio/wav"))
        .and(query_param("model", "nova-3"))
        .and(query_param("language", "en"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "metadata": {"request_id": "r-2", "duration": 0.5, "channels": 1},
            "results": {"channels": [{"alternatives": [
                {"transcript": "hello there", "confidence": 0.97, "words": []}
            ]}]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let stt = DeepgramStt::new(KEY).with_base_url(server.uri());
    let clip = AudioClip::from_samples(AudioFormat::SPEECH, vec![100; 8000]).expect("clip");
    let t = stt
        .transcribe(&clip, &SttOptions::default().with_language("en"))
        .await
        .expect("transcribe");
    assert_eq!(t.text, "hello there");
    assert_eq!(t.confidence, Some(0.97));
    assert_eq!(t.duration, Duration::from_millis(500));
    let requests = server.received_requests().await.expect("recorded");
    let sent = AudioClip::from_wav_bytes(&requests[0].body).expect("a WAV body");
    assert_eq!(sent, clip);
}

#[tokio::test]
async fn transcribe_errors_are_typed_and_scrubbed() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "err_code": "INVALID_AUTH",
            "err_msg": format!("Invalid credentials for {KEY}."),
            "request_id": "r-3"
        })))
        .mount(&server)
        .await;
    let clip = AudioClip::from_samples(AudioFormat::SPEECH, vec![1; 160]).expect("clip");
    let e = DeepgramStt::new(KEY)
        .with_base_url(server.uri())
        .transcribe(&clip, &SttOptions::default())
        .await
        .expect_err("401");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("Invalid credentials"), "{e}");
    assert!(
        !e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY),
        "{e:?}"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    let e = DeepgramStt::new(KEY)
        .with_base_url(server.uri())
        .transcribe(&clip, &SttOptions::default())
        .await
        .expect_err("not JSON");
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
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

/// What the fake Deepgram recognises: exactly this audio, as this text.
struct Utterance {
    clip: AudioClip,
    text: String,
}

/// A server behaving like Deepgram for both APIs on one address, for any number of
/// connections: `POST /v1/listen` transcribes a WAV body, a WebSocket on `/v1/listen` is a
/// live session. Both check the `Token` key and recognise only the utterance's exact audio.
async fn deepgram_vendor(utterance: Utterance) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let utterance = Arc::new(utterance);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let utterance = Arc::clone(&utterance);
            tokio::spawn(async move {
                let head = peek_head(&tcp).await;
                if head.starts_with("get ") && head.contains("upgrade: websocket") {
                    live_vendor(tcp, &utterance).await;
                } else if !head.is_empty() {
                    batch_vendor(tcp, &utterance).await;
                }
            });
        }
    });
    base
}

/// `POST /v1/listen` as Deepgram answers it (the prerecorded response shape).
async fn batch_vendor(mut tcp: TcpStream, utterance: &Utterance) {
    let request = read_http(&mut tcp).await;
    let authorized =
        request.headers.get("authorization").map(String::as_str) == Some(&format!("Token {KEY}"));
    if !request.line.starts_with("POST /v1/listen?") || !authorized {
        let body = json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "r-9"});
        write_http(
            &mut tcp,
            401,
            "application/json",
            body.to_string().as_bytes(),
        )
        .await;
        return;
    }
    let wav = (request.headers.get("content-type").map(String::as_str) == Some("audio/wav"))
        .then(|| AudioClip::from_wav_bytes(&request.body).ok())
        .flatten();
    let transcript = if wav.as_ref() == Some(&utterance.clip) {
        utterance.text.as_str()
    } else {
        ""
    };
    let body = json!({
        "metadata": {"request_id": "r-2", "duration": utterance.clip.duration().as_secs_f64(), "channels": 1},
        "results": {"channels": [{"alternatives": [
            {"transcript": transcript, "confidence": 0.97, "words": []}
        ]}]}
    });
    write_http(
        &mut tcp,
        200,
        "application/json",
        body.to_string().as_bytes(),
    )
    .await;
}

/// A live session as Deepgram runs one: `SpeechStarted` at the first audio, an interim
/// transcript halfway through the utterance, a `from_finalize` final at `Finalize` (the text
/// only when exactly the utterance's audio was sent), and after `CloseStream` the closing
/// `Metadata` and a normal close.
async fn live_vendor(tcp: TcpStream, utterance: &Utterance) {
    let callback = |request: &Request, response: Response| {
        let seen = Handshake::of(request);
        let ok = seen.path == "/v1/listen"
            && seen.authorization.as_deref() == Some(&format!("Token {KEY}"))
            && seen.query.get("encoding").map(String::as_str) == Some("linear16")
            && seen.query.get("sample_rate").map(String::as_str) == Some("16000");
        if ok {
            Ok(response)
        } else {
            let refusal: ErrorResponse = http::Response::builder()
                .status(401)
                .body(Some("{\"err_code\":\"INVALID_AUTH\"}".to_owned()))
                .expect("response");
            Err(refusal)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let expected: Vec<u8> = utterance
        .clip
        .samples
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let bytes_per_sec = f64::from(AudioFormat::SPEECH.sample_rate) * 2.0;
    let mut heard: Vec<u8> = Vec::new();
    let mut start = 0.0;
    let mut interim_sent = false;
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Binary(audio) => {
                if heard.is_empty() {
                    send_json(
                        &mut ws,
                        json!({"type": "SpeechStarted", "channel": [0], "timestamp": start}),
                    )
                    .await;
                }
                heard.extend_from_slice(&audio);
                if !interim_sent && heard.len() * 2 >= expected.len() {
                    interim_sent = true;
                    let first = utterance.text.split_whitespace().next().unwrap_or_default();
                    let duration = heard.len() as f64 / bytes_per_sec;
                    send_json(&mut ws, results(first, false, false, start, duration)).await;
                }
            }
            Message::Text(text) => {
                let command: Value = serde_json::from_str(text.as_str()).expect("client JSON");
                match command["type"].as_str() {
                    Some("Finalize") => {
                        let transcript = if heard == expected {
                            utterance.text.as_str()
                        } else {
                            ""
                        };
                        let duration = heard.len() as f64 / bytes_per_sec;
                        let mut done = results(transcript, true, false, start, duration);
                        done["from_finalize"] = json!(true);
                        send_json(&mut ws, done).await;
                        start += duration;
                        heard.clear();
                        interim_sent = false;
                    }
                    Some("CloseStream") => {
                        send_json(
                            &mut ws,
                            json!({"type": "Metadata", "request_id": "r-1", "duration": start}),
                        )
                        .await;
                        let _ = ws.close(None).await;
                    }
                    Some("KeepAlive") => {}
                    other => panic!("a message Deepgram does not know: {other:?}"),
                }
            }
            _ => {}
        }
    }
}

/// The shared speech-to-text conformance suite against a server behaving like Deepgram (one
/// address for the batch and the live API): the utterance is heard once in batch and once
/// live, the live final arriving as Deepgram's answer to `Finalize` after an interim one, and
/// the session ending cleanly after `CloseStream`.
#[tokio::test]
async fn passes_the_stt_conformance_suite() {
    let mut clip = AudioClip::new(AudioFormat::SPEECH);
    for f in speech(AudioFormat::SPEECH, Duration::from_millis(1200)) {
        clip.push(&f).expect("one format");
    }
    let text = "What is the status of order 427?";
    let base = deepgram_vendor(Utterance {
        clip: clip.clone(),
        text: text.to_owned(),
    })
    .await;
    let stt: Arc<dyn SpeechToText> = Arc::new(DeepgramStt::new(KEY).with_base_url(&base));
    stt_suite(stt, &SttCase::new(clip, "what is the status of order 427")).await;
}
