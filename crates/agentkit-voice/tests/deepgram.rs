//! Deepgram live and batch transcription against local servers speaking Deepgram's wire format
//! (a WebSocket server written here, `wiremock` for HTTP), and the shared conformance suite
//! against a fake Deepgram serving both APIs on one address. No network, no key.

// The handshake callback's error type is tungstenite's (`http::Response`).
#![allow(clippy::result_large_err)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_voice::providers::deepgram::DeepgramStt;
use agentkit_voice::testkit::conformance::{SttCase, stt_suite};
use agentkit_voice::testkit::speech;
use agentkit_voice::{
    AudioClip, AudioFormat, AudioFrame, SpeechToText, SttEvent, SttOptions, SttStream,
};
use common::{
    Handshake, Ws, le_bytes, next_error, next_event, read_http, refusal, refuse, send_json, serve,
    vendor, within, write_json,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KEY: &str = "dg-test-key-6f1c2a9e";

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

/// A stream of the default options to the server at `base`.
async fn open(base: &str) -> SttStream {
    DeepgramStt::new(KEY)
        .with_base_url(base)
        .stream(&SttOptions::default())
        .await
        .expect("stream")
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
        let mut stream = open(&base).await;
        let a = frame(&[1, -2, 300, i16::MIN]);
        let b = frame(&[i16::MAX, 0, -1]);
        stream.push(a.clone()).await.expect("push");
        stream.push(b.clone()).await.expect("push");

        let mut events = Vec::new();
        for _ in 0..4 {
            events.push(next_event(stream.next()).await);
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
            handshake.header("authorization"),
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
            assert_eq!(handshake.param(k), Some(v), "query {k}");
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
            transcript_of(&next_event(stream.next()).await),
            ("final", "done".into())
        );
        assert_eq!(next_event(stream.next()).await, SttEvent::UtteranceEnd);
        stream.close().await.expect("close");
        assert!(stream.next().await.is_none());

        let (handshake, (audio, finalize, close)) = server.await.expect("server");
        assert!(audio.is_binary());
        assert!(finalize.is_text(), "Finalize is a text frame");
        assert_eq!(text_json(&finalize), Some(json!({"type": "Finalize"})));
        assert_eq!(text_json(&close), Some(json!({"type": "CloseStream"})));
        assert_eq!(handshake.param("model"), Some("nova-2"));
        assert_eq!(handshake.param("language"), Some("de"));
        assert_eq!(handshake.param("smart_format"), Some("true"));
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
        let mut stream = open(&base).await;
        stream.push(frame(&[1; 160])).await.expect("push");
        assert_eq!(
            transcript_of(&next_event(stream.next()).await),
            ("interim", "half a sen".into())
        );
        let e = next_error(stream.next()).await;
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
        let mut stream = open(&base).await;
        let e = next_error(stream.next()).await;
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
        let mut stream = open(&base).await;
        assert_eq!(next_error(stream.next()).await.kind(), ErrorKind::Unauthenticated);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("ws://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let mut stream = open(&base).await;
        let e = next_error(stream.next()).await;
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
        let mut stream = open(&base).await;
        stream.push(frame(&[1; 160])).await.expect("push");
        let e = next_error(stream.next()).await;
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
        let mut stream = open(&base).await;
        stream.push(frame(&[1; 160])).await.expect("push");
        let e = next_error(stream.next()).await;
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
        let mut stream = open(&base).await;
        let phone = AudioFrame::new(AudioFormat::TELEPHONY, vec![1i16; 160]).expect("frame");
        stream.push(phone).await.expect("push");
        let e = next_error(stream.next()).await;
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

/// What the fake Deepgram recognises: exactly this audio, as this text.
struct Utterance {
    clip: AudioClip,
    text: String,
}

/// A server behaving like Deepgram for both APIs on one address, for any number of
/// connections: `POST /v1/listen` transcribes a WAV body, a WebSocket on `/v1/listen` is a
/// live session. Both check the `Token` key and recognise only the utterance's exact audio.
async fn deepgram_vendor(utterance: Utterance) -> String {
    let utterance = Arc::new(utterance);
    let live = Arc::clone(&utterance);
    vendor(
        move |tcp| {
            let utterance = Arc::clone(&live);
            async move { live_vendor(tcp, &utterance).await }
        },
        move |tcp| {
            let utterance = Arc::clone(&utterance);
            async move { batch_vendor(tcp, &utterance).await }
        },
    )
    .await
}

/// `POST /v1/listen` as Deepgram answers it (the prerecorded response shape).
async fn batch_vendor(mut tcp: TcpStream, utterance: &Utterance) {
    let request = read_http(&mut tcp).await;
    let authorized = request.header("authorization") == Some(&format!("Token {KEY}"));
    if !request.line.starts_with("POST /v1/listen?") || !authorized {
        let body = json!({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.", "request_id": "r-9"});
        write_json(&mut tcp, 401, &body).await;
        return;
    }
    let wav = (request.header("content-type") == Some("audio/wav"))
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
    write_json(&mut tcp, 200, &body).await;
}

/// A live session as Deepgram runs one: `SpeechStarted` at the first audio, an interim
/// transcript halfway through the utterance, a `from_finalize` final at `Finalize` (the text
/// only when exactly the utterance's audio was sent), and after `CloseStream` the closing
/// `Metadata` and a normal close.
async fn live_vendor(tcp: TcpStream, utterance: &Utterance) {
    let callback = |request: &Request, response: Response| {
        let seen = Handshake::of(request);
        let ok = seen.path == "/v1/listen"
            && seen.header("authorization") == Some(&format!("Token {KEY}"))
            && seen.param("encoding") == Some("linear16")
            && seen.param("sample_rate") == Some("16000");
        if ok {
            Ok(response)
        } else {
            Err(refusal(401, "{\"err_code\":\"INVALID_AUTH\"}".to_owned()))
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let expected = le_bytes(&utterance.clip.samples);
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
