//! The WebSocket transport's protocol through its public API, under paused Tokio time:
//! binary PCM16 in and out, JSON control and events, barge-in, approvals, rejected client
//! messages and a broken connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::store::InMemoryStore;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::{Error, ErrorKind, Result};
use agentkit_voice::audio::level_dbfs;
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit_voice::transport::websocket::{
    ClientMessage, ServerMessage, WsMessage, run_websocket,
};
use agentkit_voice::{AudioClip, AudioFormat, VoiceSession};
use common::{agent, approval_agent, ms, voice_session};
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use serde_json::{Value, json};
use tokio::time::Instant;

fn session(model: ScriptedModel, stt: ScriptedStt, tts: ScriptedTts) -> VoiceSession {
    let agent = agent("web", Arc::new(model), Arc::new(InMemoryStore::new()));
    voice_session(agent, stt, tts, "web-1")
}

/// The browser: sends audio in 30 ms pieces at playing speed.
struct Client {
    tx: UnboundedSender<Result<WsMessage>>,
}

impl Client {
    fn send(&self, message: Value) {
        let _ = self
            .tx
            .unbounded_send(Ok(WsMessage::Text(message.to_string())));
    }

    fn send_text(&self, text: &str) {
        let _ = self.tx.unbounded_send(Ok(WsMessage::Text(text.to_owned())));
    }

    fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.tx.unbounded_send(Ok(WsMessage::Binary(bytes)));
    }

    async fn play(&self, frames: Vec<agentkit_voice::AudioFrame>) {
        let mut clip = AudioClip::new(AudioFormat::SPEECH);
        for f in &frames {
            clip.push(f).expect("same format");
        }
        for piece in clip.frames(ms(30)) {
            self.send_binary(piece.to_le_bytes());
            tokio::time::sleep(piece.duration()).await;
        }
    }

    async fn speak(&self, duration: Duration) {
        self.play(speech(AudioFormat::SPEECH, duration)).await;
    }

    async fn pause(&self, duration: Duration) {
        self.play(silence(AudioFormat::SPEECH, duration)).await;
    }
}

fn client() -> (Client, UnboundedReceiver<Result<WsMessage>>) {
    let (tx, rx) = unbounded();
    (Client { tx }, rx)
}

#[derive(Debug)]
enum Out {
    Event(Value),
    Audio(Vec<i16>),
}

fn collect(mut rx: UnboundedReceiver<WsMessage>) -> tokio::task::JoinHandle<Vec<(Instant, Out)>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(message) = rx.next().await {
            let item = match message {
                WsMessage::Text(text) => {
                    Out::Event(serde_json::from_str(&text).expect("events are JSON"))
                }
                WsMessage::Binary(bytes) => {
                    assert_eq!(bytes.len() % 2, 0);
                    Out::Audio(
                        bytes
                            .chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]]))
                            .collect(),
                    )
                }
            };
            out.push((Instant::now(), item));
        }
        out
    })
}

fn events(out: &[(Instant, Out)]) -> Vec<&Value> {
    out.iter()
        .filter_map(|(_, o)| match o {
            Out::Event(v) => Some(v),
            Out::Audio(_) => None,
        })
        .collect()
}

fn of_type<'a>(out: &'a [(Instant, Out)], kind: &str) -> Vec<&'a Value> {
    events(out)
        .into_iter()
        .filter(|v| v["type"] == kind)
        .collect()
}

fn audio_ms(out: &[(Instant, Out)]) -> u64 {
    let samples: usize = out
        .iter()
        .map(|(_, o)| match o {
            Out::Audio(s) => s.len(),
            Out::Event(_) => 0,
        })
        .sum();
    (samples / 16) as u64
}

fn position(out: &[(Instant, Out)], f: impl Fn(&Value) -> bool) -> usize {
    out.iter()
        .position(|(_, o)| matches!(o, Out::Event(v) if f(v)))
        .expect("the event was sent")
}

#[tokio::test(start_paused = true)]
async fn a_session_end_to_end_over_the_protocol() {
    let model = ScriptedModel::new([ScriptedResponse::text(
        "Your order 427 shipped yesterday. It arrives on Monday.",
    )
    .with_delay(ms(200))]);
    let stt = ScriptedStt::new(["Where is my order 427?"]).with_final_delay(ms(150));
    let tts = ScriptedTts::new(ms(80), ms(100));
    let (browser, inbound) = client();
    let (out_tx, out_rx) = unbounded::<WsMessage>();
    let run = tokio::spawn(run_websocket(
        session(model, stt, tts.clone()),
        inbound,
        out_tx,
    ));
    let sent = collect(out_rx);

    browser.send(json!({"type": "say", "text": "Hello, how can I help?", "interruptible": false}));
    // Three bad messages: not JSON, an unknown type, audio of an odd length.
    browser.send_text("{nope");
    browser.send(json!({"type": "dance"}));
    browser.send_binary(vec![1, 2, 3]);
    browser.pause(ms(600)).await;
    browser.speak(ms(1200)).await;
    browser.pause(ms(2500)).await;
    browser.send(json!({"type": "close"}));
    let report = run.await.expect("task").expect("the session ran");
    let sent = sent.await.expect("collector");

    // `ready` first, with the formats; `ended` last.
    let Out::Event(ready) = &sent[0].1 else {
        panic!("audio before ready");
    };
    assert_eq!(
        ready,
        &json!({"type": "ready", "input": {"sample_rate": 16000, "channels": 1},
            "output": {"sample_rate": 16000, "channels": 1}})
    );
    let Out::Event(ended) = &sent.last().expect("messages").1 else {
        panic!("audio after ended");
    };
    assert_eq!(ended, &json!({"type": "ended"}));

    // The audio: the greeting (5 words) and the reply (9 words) at 100 ms a word, as PCM16.
    assert_eq!(audio_ms(&sent), 1400);
    assert!(sent.iter().all(|(_, o)| match o {
        Out::Audio(s) => level_dbfs(s) > -30.0,
        Out::Event(_) => true,
    }));
    assert_eq!(
        tts.spoken(),
        vec![
            "Hello, how can I help?",
            "Your order 427 shipped yesterday.",
            "It arrives on Monday."
        ]
    );

    // The events of the turn, in order.
    let transcript = position(&sent, |v| {
        v == &json!({"type": "transcript", "text": "Where is my order 427?", "final": true})
    });
    let user_turn = position(&sent, |v| {
        v == &json!({"type": "user_turn", "text": "Where is my order 427?"})
    });
    let agent_text = position(&sent, |v| {
        v == &json!({"type": "agent_text", "text": "Your order 427 shipped yesterday."})
    });
    let turn = position(&sent, |v| v["type"] == "turn");
    assert!(transcript < user_turn && user_turn < agent_text && agent_text < turn);
    assert_eq!(
        audio_ms(&sent[user_turn..]),
        900,
        "the reply's audio follows its turn"
    );
    let Out::Event(turn) = &sent[turn].1 else {
        unreachable!()
    };
    assert_eq!(turn["outcome"], "completed");
    assert_eq!(turn["user_text"], "Where is my order 427?");
    assert_eq!(
        turn["reply"],
        "Your order 427 shipped yesterday. It arrives on Monday."
    );
    assert_eq!(turn["tts_audio_ms"], 900);
    let l = &turn["latency_ms"];
    assert_eq!(l["model"], 200);
    assert_eq!(l["tts"], 80);
    let stages: u64 = ["stt", "endpointing", "model", "sentence", "tts"]
        .iter()
        .map(|k| l[k].as_u64().expect("a number"))
        .sum();
    assert_eq!(l["end_to_end"].as_u64(), Some(stages));
    assert_eq!(of_type(&sent, "speech_started").len(), 1);
    assert_eq!(of_type(&sent, "speech_stopped").len(), 1);

    // Each bad message was answered with an `error` and skipped.
    let errors = of_type(&sent, "error");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().all(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid input"))
    }));

    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.turns.len(), 1);
    assert_eq!(report.audio_in, ms(600 + 1200 + 2500));
    assert_eq!(report.audio_out, ms(1400));
    let kinds: Vec<ErrorKind> = report.rejected.iter().map(Error::kind).collect();
    assert_eq!(kinds, vec![ErrorKind::InvalidInput; 3]);
}

#[tokio::test(start_paused = true)]
async fn barge_in_is_an_interrupted_event_and_the_audio_stops() {
    let model = ScriptedModel::new([
        ScriptedResponse::text(
            "Our return policy has many parts, so let me read all of them to you now, one by one.",
        ),
        ScriptedResponse::text("Sure, the address is one Main Street."),
    ]);
    let stt = ScriptedStt::new(["What is your return policy?", "Stop, what is the address?"])
        .with_interim_after(ms(300));
    let tts = ScriptedTts::new(ms(50), ms(200));
    let (browser, inbound) = client();
    let (out_tx, out_rx) = unbounded::<WsMessage>();
    let run = tokio::spawn(run_websocket(session(model, stt, tts), inbound, out_tx));
    let sent = collect(out_rx);
    browser.speak(ms(1000)).await;
    browser.pause(ms(1400)).await;
    browser.speak(ms(800)).await;
    browser.pause(ms(4000)).await;
    drop(browser);
    let report = run.await.expect("task").expect("the session ran");
    let sent = sent.await.expect("collector");
    assert!(report.error.is_none(), "{:?}", report.error);

    let interrupted = position(&sent, |v| v == &json!({"type": "interrupted"}));
    assert_eq!(of_type(&sent, "interrupted").len(), 1);
    let played = audio_ms(&sent[..interrupted]);
    assert!(
        played > 500 && played < 2500,
        "{played} ms of the 3.6 s reply"
    );
    // No audio between the interruption and the next turn; then the new answer, whole.
    let next_turn = position(&sent, |v| {
        v == &json!({"type": "user_turn", "text": "Stop, what is the address?"})
    });
    assert!(next_turn > interrupted);
    assert_eq!(audio_ms(&sent[interrupted..next_turn]), 0);
    assert_eq!(audio_ms(&sent[next_turn..]), 7 * 200);
    assert_eq!(report.turns.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_approval_is_announced_with_its_id_and_tool() {
    let agent = approval_agent("web", Arc::new(InMemoryStore::new()));
    let (browser, inbound) = client();
    let (out_tx, out_rx) = unbounded::<WsMessage>();
    let run = tokio::spawn(run_websocket(
        voice_session(
            agent,
            ScriptedStt::new(["Refund order 427."]),
            ScriptedTts::default(),
            "web-1",
        ),
        inbound,
        out_tx,
    ));
    let sent = collect(out_rx);
    browser.speak(ms(800)).await;
    browser.pause(ms(3000)).await;
    browser.send(json!({"type": "hang_up"}));
    let report = run.await.expect("task").expect("the session ran");
    let sent = sent.await.expect("collector");

    let approvals = of_type(&sent, "approval_required");
    assert_eq!(approvals.len(), 1, "{:?}", events(&sent));
    let a = approvals[0];
    assert_eq!(a["tool"], "orders.refund");
    assert!(a["approval_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(a["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    let turns = of_type(&sent, "turn");
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0]["outcome"], "suspended");
    assert_eq!(report.turns.len(), 1);
    assert!(matches!(
        events(&sent).last(),
        Some(v) if v["type"] == "ended"
    ));
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_hangs_up_and_is_reported() {
    let model = ScriptedModel::new([ScriptedResponse::text("You will not hear all of this.")]);
    let (browser, inbound) = client();
    let (out_tx, out_rx) = unbounded::<WsMessage>();
    let run = tokio::spawn(run_websocket(
        session(model, ScriptedStt::new(["Hello?"]), ScriptedTts::default()),
        inbound,
        out_tx,
    ));
    let sent = collect(out_rx);
    browser.speak(ms(800)).await;
    browser.pause(ms(100)).await;
    let broke = Instant::now();
    let _ = browser.tx.unbounded_send(Err(Error::Unavailable {
        message: "connection reset".into(),
        source: None,
    }));
    let report = run.await.expect("task").expect("the session ran");
    let sent = sent.await.expect("collector");
    assert_eq!(Instant::now(), broke, "hung up at once, no turn answered");
    let error = report.error.expect("the connection broke");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(error.to_string().contains("connection reset"));
    assert_eq!(audio_ms(&sent), 0);
    assert!(matches!(events(&sent).last(), Some(v) if v["type"] == "ended"));
}

#[test]
fn the_protocol_messages() {
    assert_eq!(
        ClientMessage::parse(r#"{"type":"say","text":"Hi"}"#).expect("say"),
        ClientMessage::Say {
            text: "Hi".into(),
            interruptible: true
        }
    );
    assert_eq!(
        ClientMessage::parse(r#"{"type":"close"}"#).expect("close"),
        ClientMessage::Close
    );
    assert_eq!(
        ClientMessage::parse(r#"{"type":"hang_up"}"#).expect("hang up"),
        ClientMessage::HangUp
    );
    for bad in ["", "{}", r#"{"type":"say"}"#, r#"{"type":"close""#] {
        assert_eq!(
            ClientMessage::parse(bad).expect_err(bad).kind(),
            ErrorKind::InvalidInput
        );
    }
    let json = |m: ServerMessage| -> Value {
        serde_json::from_str(&m.to_json().expect("json")).expect("json")
    };
    assert_eq!(
        json(ServerMessage::Transcript {
            text: "Where is".into(),
            is_final: false
        }),
        json!({"type": "transcript", "text": "Where is", "final": false})
    );
    assert_eq!(
        json(ServerMessage::Interrupted),
        json!({"type": "interrupted"})
    );
    assert_eq!(
        json(ServerMessage::Ended {
            error: Some("unavailable: cut".into())
        }),
        json!({"type": "ended", "error": "unavailable: cut"})
    );
}
