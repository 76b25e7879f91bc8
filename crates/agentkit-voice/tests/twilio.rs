//! The Twilio Media Streams transport through its public API, under paused Tokio time: a
//! scripted call of JSON messages (µ-law 8 kHz in, µ-law 8 kHz out), barge-in as `clear`,
//! malformed messages skipped, the call's report, and a broken or cut connection.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::store::InMemoryStore;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::{ErrorKind, Result};
use agentkit_voice::audio::level_dbfs;
use agentkit_voice::mulaw;
use agentkit_voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit_voice::transport::twilio::{TwilioBridge, TwilioInbound, TwilioOutbound, run_twilio};
use agentkit_voice::{AudioFormat, TurnOutcome, VoiceEvent, VoiceSession};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{agent, ms, voice_session};
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use serde_json::{Value, json};
use tokio::time::Instant;

const STREAM: &str = "MZ00000000000000000000000000000001";
const CALL: &str = "CA00000000000000000000000000000001";

fn session(model: ScriptedModel, stt: ScriptedStt, tts: ScriptedTts) -> VoiceSession {
    let agent = agent("phone", Arc::new(model), Arc::new(InMemoryStore::new()));
    voice_session(agent, stt, tts, "call-1")
}

/// Twilio's side of the socket: sends its messages at playing speed.
struct Twilio {
    tx: UnboundedSender<Result<String>>,
    chunk: u64,
}

impl Twilio {
    fn send(&self, message: Value) {
        let _ = self.tx.unbounded_send(Ok(message.to_string()));
    }

    fn send_raw(&self, text: &str) {
        let _ = self.tx.unbounded_send(Ok(text.to_owned()));
    }

    fn connect(&self) {
        self.send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
        self.send(json!({
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC00000000000000000000000000000001",
                "streamSid": STREAM,
                "callSid": CALL,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"customer": "c-42"}
            },
            "streamSid": STREAM
        }));
    }

    async fn play(&mut self, frames: Vec<agentkit_voice::AudioFrame>) {
        for frame in frames {
            self.chunk += 1;
            let payload = BASE64.encode(mulaw::encode_frame(&frame).expect("mono"));
            self.send(json!({
                "event": "media",
                "sequenceNumber": (self.chunk + 1).to_string(),
                "media": {
                    "track": "inbound",
                    "chunk": self.chunk.to_string(),
                    "timestamp": (self.chunk * 20).to_string(),
                    "payload": payload
                },
                "streamSid": STREAM
            }));
            tokio::time::sleep(ms(20)).await;
        }
    }

    async fn speak(&mut self, duration: Duration) {
        self.play(speech(AudioFormat::TELEPHONY, duration)).await;
    }

    async fn pause(&mut self, duration: Duration) {
        self.play(silence(AudioFormat::TELEPHONY, duration)).await;
    }

    fn stop(&self) {
        self.send(json!({
            "event": "stop",
            "sequenceNumber": "999",
            "stop": {"accountSid": "AC00000000000000000000000000000001", "callSid": CALL},
            "streamSid": STREAM
        }));
    }
}

fn twilio() -> (Twilio, UnboundedReceiver<Result<String>>) {
    let (tx, rx) = unbounded();
    (Twilio { tx, chunk: 0 }, rx)
}

/// Everything the bridge sends, with the (paused) time it was sent, until it closes.
fn collect(mut rx: UnboundedReceiver<String>) -> tokio::task::JoinHandle<Vec<(Instant, Value)>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(text) = rx.next().await {
            let value: Value = serde_json::from_str(&text).expect("the bridge sends JSON");
            out.push((Instant::now(), value));
        }
        out
    })
}

/// Checks a `media` message and returns its decoded PCM.
fn media_pcm(message: &Value) -> Vec<i16> {
    assert_eq!(message["event"], "media", "{message}");
    assert_eq!(message["streamSid"], STREAM);
    let payload = message["media"]["payload"].as_str().expect("a payload");
    let bytes = BASE64.decode(payload).expect("base64");
    assert_eq!(bytes.len(), 160, "20 ms of 8 kHz µ-law");
    mulaw::decode(&bytes)
}

fn zero_crossings(samples: &[i16]) -> usize {
    samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_call_end_to_end_mulaw_in_and_out_with_a_report() {
    let model = ScriptedModel::new([ScriptedResponse::text(
        "Your order 427 shipped yesterday. It arrives on Monday.",
    )]);
    let stt = ScriptedStt::new(["Where is my order 427?"]);
    let tts = ScriptedTts::new(ms(80), ms(100));
    let (mut caller, inbound) = twilio();
    let (out_tx, out_rx) = unbounded::<String>();
    let call = tokio::spawn(run_twilio(
        session(model, stt, tts.clone()),
        inbound,
        out_tx,
    ));
    let sent = collect(out_rx);

    caller.connect();
    // Garbage from the peer: skipped, typed, and the call goes on.
    caller.send_raw("{\"event\": \"media\", this is not JSON");
    caller.send(json!({"event": "media", "streamSid": STREAM,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "%%% not base64 %%%"}}));
    caller.send(
        json!({"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "1"}}),
    );
    caller.pause(ms(300)).await;
    caller.speak(ms(1200)).await;
    let stopped_speaking = Instant::now();
    caller.pause(ms(2500)).await;
    let hung_up = Instant::now();
    caller.stop();
    let report = call.await.expect("task").expect("the call ran");
    let sent = sent.await.expect("collector");

    // The caller's µ-law reached speech-to-text as 16 kHz PCM (a wrong format fails it).
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.turns.len(), 1, "{report:?}");
    assert_eq!(report.turns[0].user_text, "Where is my order 427?");
    assert_eq!(report.turns[0].outcome, TurnOutcome::Completed);
    assert_eq!(
        tts.spoken(),
        vec!["Your order 427 shipped yesterday.", "It arrives on Monday."]
    );

    // Every message is a `media` of the stream with 160 bytes of µ-law; together they are
    // the reply: 9 words at 100 ms, no more, no less.
    let pcm: Vec<i16> = sent.iter().flat_map(|(_, m)| media_pcm(m)).collect();
    assert_eq!(sent.len(), 45, "900 ms in 20 ms chunks");
    assert_eq!(pcm.len(), 7200);
    // It is the synthesised tone, not silence, at its pitch (200 Hz: 2 crossings a period),
    // so it was resampled from 16 kHz, not just cut.
    assert!(level_dbfs(&pcm) > -30.0, "{} dBFS", level_dbfs(&pcm));
    let chunks_with_sound = sent
        .iter()
        .filter(|(_, m)| level_dbfs(&media_pcm(m)) > -40.0)
        .count();
    assert_eq!(chunks_with_sound, 45);
    let crossings = zero_crossings(&pcm);
    assert!(
        (340..=380).contains(&crossings),
        "{crossings} zero crossings"
    );
    // Paced at playing speed after the caller stopped, not dumped at once.
    let first = sent.first().expect("media").0;
    let last = sent.last().expect("media").0;
    assert!(first > stopped_speaking);
    assert!(last - first >= ms(700), "{:?}", last - first);
    // The reply's tail went out when the reply ended, not when the call did.
    assert!(
        last + ms(1000) < hung_up,
        "{:?} before the end",
        hung_up - last
    );

    assert_eq!(report.stream_sid, STREAM);
    assert_eq!(report.call_sid, CALL);
    assert_eq!(report.account_sid, "AC00000000000000000000000000000001");
    assert_eq!(report.custom_parameters["customer"], "c-42");
    assert_eq!(report.dtmf, "1");
    assert_eq!(report.media_sent, 45);
    assert_eq!(report.clears_sent, 0);
    assert_eq!(report.audio_in, ms(300 + 1200 + 2500));
    assert_eq!(report.audio_out, ms(900));
    let kinds: Vec<ErrorKind> = report.rejected.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        vec![ErrorKind::MalformedResponse, ErrorKind::MalformedResponse]
    );
}

#[tokio::test(start_paused = true)]
async fn barge_in_sends_clear_and_drops_the_rest_of_the_reply() {
    let model = ScriptedModel::new([
        ScriptedResponse::text(
            "Our return policy has many parts, so let me read all of them to you now, one by one.",
        ),
        ScriptedResponse::text("Sure, the address is one Main Street."),
    ]);
    // The interim (the first word) comes as the VAD hears the barge-in (200 ms): the
    // interruption is confirmed at once, with audio still waiting in the bridge's converter.
    let stt = ScriptedStt::new(["What is your return policy?", "Stop, what is the address?"])
        .with_interim_after(ms(200));
    let tts = ScriptedTts::new(ms(50), ms(200));
    let (mut caller, inbound) = twilio();
    let (out_tx, out_rx) = unbounded::<String>();
    let events: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let bridge = TwilioBridge::new(session(model, stt, tts)).on_event({
        let events = Arc::clone(&events);
        move |e| {
            let name = match e {
                VoiceEvent::UserTurn(t) => format!("user_turn:{t}"),
                VoiceEvent::Interrupted => "interrupted".into(),
                _ => return,
            };
            events.lock().expect("lock").push((Instant::now(), name));
        }
    });
    let call = tokio::spawn(bridge.run(inbound, out_tx));
    let sent = collect(out_rx);

    caller.connect();
    caller.speak(ms(1000)).await;
    caller.pause(ms(1400)).await;
    // The reply (18 words, 3.6 s) has been playing for about a second: talk over it.
    let barge_in = Instant::now();
    caller.speak(ms(800)).await;
    caller.pause(ms(4000)).await;
    caller.stop();
    let report = call.await.expect("task").expect("the call ran");
    let sent = sent.await.expect("collector");
    assert!(report.error.is_none(), "{:?}", report.error);

    let clears: Vec<usize> = sent
        .iter()
        .enumerate()
        .filter(|(_, (_, m))| m["event"] == "clear")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(clears.len(), 1, "one barge-in, one clear");
    let (cleared_at, clear) = &sent[clears[0]];
    assert_eq!(clear, &json!({"event": "clear", "streamSid": STREAM}));
    // The clear follows the barge-in once words confirm it (VAD start + an interim).
    assert!(
        *cleared_at > barge_in && *cleared_at - barge_in <= ms(400),
        "{:?} after the barge-in",
        *cleared_at - barge_in
    );
    let events = events.lock().expect("lock").clone();
    let interrupted_at = events
        .iter()
        .find(|(_, e)| e == "interrupted")
        .expect("the session was interrupted")
        .0;
    assert_eq!(*cleared_at, interrupted_at);

    // Less than the first reply went out before the clear…
    let before: Vec<i16> = sent[..clears[0]]
        .iter()
        .flat_map(|(_, m)| media_pcm(m))
        .collect();
    let played = AudioFormat::TELEPHONY.duration_of(before.len());
    assert!(played > ms(500) && played < ms(2500), "{played:?} of 3.6 s");
    // …and nothing of it after: the next audio is the answer to the interrupting words.
    let second_turn = events
        .iter()
        .find(|(_, e)| e.contains("address"))
        .expect("the interrupting words became a turn")
        .0;
    let after = &sent[clears[0] + 1..];
    assert!(!after.is_empty(), "the second reply was sent");
    assert!(after.iter().all(|(t, _)| *t > second_turn));
    let after_pcm: Vec<i16> = after.iter().flat_map(|(_, m)| media_pcm(m)).collect();
    // "Sure, the address is one Main Street.": 7 words at 200 ms.
    assert_eq!(
        AudioFormat::TELEPHONY.duration_of(after_pcm.len()),
        ms(1400)
    );

    assert_eq!(report.clears_sent, 1);
    assert_eq!(report.turns.len(), 2);
    assert_eq!(report.turns[1].user_text, "Stop, what is the address?");
    assert_eq!(report.turns[1].outcome, TurnOutcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn the_stream_ending_without_stop_still_answers_the_last_turn() {
    let model = ScriptedModel::new([ScriptedResponse::text("Goodbye then.")]);
    let stt = ScriptedStt::new(["That is all, thanks."]);
    let tts = ScriptedTts::default();
    let (mut caller, inbound) = twilio();
    let (out_tx, out_rx) = unbounded::<String>();
    let bridge = TwilioBridge::new(session(model, stt, tts.clone())).with_greeting("Hello!", false);
    let call = tokio::spawn(bridge.run(inbound, out_tx));
    let sent = collect(out_rx);
    caller.connect();
    caller.speak(ms(800)).await;
    caller.pause(ms(100)).await;
    // The socket closes before the turn has even ended.
    drop(caller);
    let report = call.await.expect("task").expect("the call ran");
    let sent = sent.await.expect("collector");
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.turns.len(), 1);
    assert_eq!(report.turns[0].reply, "Goodbye then.");
    assert_eq!(tts.spoken(), vec!["Hello!", "Goodbye then."]);
    // The greeting (1 word) and the reply (2 words) at 100 ms.
    assert_eq!(sent.len(), 15);
    assert!(sent.iter().all(|(_, m)| level_dbfs(&media_pcm(m)) > -40.0));
}

#[tokio::test(start_paused = true)]
async fn hanging_up_on_stop_drops_the_last_turn() {
    let model = ScriptedModel::new([ScriptedResponse::text("Too late.")]);
    let stt = ScriptedStt::new(["Bye."]);
    let (mut caller, inbound) = twilio();
    let (out_tx, out_rx) = unbounded::<String>();
    let bridge =
        TwilioBridge::new(session(model, stt, ScriptedTts::default())).hang_up_on_stop(true);
    let call = tokio::spawn(bridge.run(inbound, out_tx));
    let sent = collect(out_rx);
    caller.connect();
    caller.speak(ms(800)).await;
    caller.pause(ms(100)).await;
    let stopped = Instant::now();
    caller.stop();
    let report = call.await.expect("task").expect("the call ran");
    assert_eq!(Instant::now(), stopped, "ended at once");
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(report.turns.is_empty());
    assert!(sent.await.expect("collector").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_broken_outbound_socket_hangs_up_with_a_typed_error() {
    let model = ScriptedModel::new([ScriptedResponse::text("You will not hear this.")]);
    let stt = ScriptedStt::new(["Hello?"]);
    let (mut caller, inbound) = twilio();
    let (out_tx, out_rx) = unbounded::<String>();
    drop(out_rx);
    let call = tokio::spawn(run_twilio(
        session(model, stt, ScriptedTts::default()),
        inbound,
        out_tx,
    ));
    caller.connect();
    caller.speak(ms(800)).await;
    let spoke = Instant::now();
    // The caller would go on, but the call ends when the reply cannot be sent.
    let pusher = tokio::spawn(async move {
        caller.pause(ms(10_000)).await;
    });
    let report = call.await.expect("task").expect("the call ran");
    assert!(Instant::now() - spoke < ms(3000), "hung up promptly");
    let error = report.error.expect("the transport failed");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert_eq!(report.media_sent, 0);
    pusher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_before_start_is_an_error_and_no_session_starts() {
    let stt = ScriptedStt::new(["never"]);
    let (caller, inbound) = twilio();
    let (out_tx, mut out_rx) = unbounded::<String>();
    caller.send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
    caller.send_raw("not json at all");
    drop(caller);
    let result = run_twilio(
        session(
            ScriptedModel::new(Vec::<ScriptedResponse>::new()),
            stt.clone(),
            ScriptedTts::default(),
        ),
        inbound,
        out_tx,
    )
    .await;
    let error = result.expect_err("no start, no call");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(out_rx.next().await.is_none(), "nothing was sent");

    // A media format other than µ-law 8 kHz is refused.
    let (caller, inbound) = twilio();
    let (out_tx, _out_rx) = unbounded::<String>();
    caller.send(json!({"event": "start", "streamSid": STREAM, "start": {"streamSid": STREAM,
        "callSid": CALL, "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}}));
    let error = run_twilio(
        session(
            ScriptedModel::new(Vec::<ScriptedResponse>::new()),
            stt,
            ScriptedTts::default(),
        ),
        inbound,
        out_tx,
    )
    .await
    .expect_err("unsupported format");
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}

#[test]
fn messages_match_twilios_documented_shapes() {
    // Outbound, as Twilio documents them.
    let media = TwilioOutbound::media(STREAM, &[0xFF, 0x7F, 0x00]);
    assert_eq!(
        serde_json::from_str::<Value>(&media.to_json().expect("json")).expect("json"),
        json!({"event": "media", "streamSid": STREAM, "media": {"payload": BASE64.encode([0xFF, 0x7F, 0x00])}})
    );
    let mark = TwilioOutbound::mark(STREAM, "reply-1");
    assert_eq!(
        serde_json::from_str::<Value>(&mark.to_json().expect("json")).expect("json"),
        json!({"event": "mark", "streamSid": STREAM, "mark": {"name": "reply-1"}})
    );
    let clear = TwilioOutbound::clear(STREAM);
    assert_eq!(
        serde_json::from_str::<Value>(&clear.to_json().expect("json")).expect("json"),
        json!({"event": "clear", "streamSid": STREAM})
    );

    // Inbound examples from Twilio's documentation.
    let stop = TwilioInbound::parse(
        r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#,
    )
    .expect("stop");
    assert!(matches!(&stop, TwilioInbound::Stop(s) if s.stop.call_sid == "CA1"));
    let dtmf = TwilioInbound::parse(
        r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#,
    )
    .expect("dtmf");
    assert!(matches!(&dtmf, TwilioInbound::Dtmf(d) if d.dtmf.digit == "1"));
    let mark = TwilioInbound::parse(
        r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"my label"}}"#,
    )
    .expect("mark");
    assert!(matches!(&mark, TwilioInbound::Mark(m) if m.mark.name == "my label"));
    let connected =
        TwilioInbound::parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)
            .expect("connected");
    assert!(matches!(&connected, TwilioInbound::Connected(c) if c.protocol == "Call"));
    let media = TwilioInbound::parse(
        r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzS"},"streamSid":"MZ1"}"#,
    )
    .expect("media");
    let TwilioInbound::Media(media) = media else {
        panic!("not media");
    };
    assert_eq!(media.media.decode_payload().expect("base64").len(), 9);
    assert_eq!(media.media.timestamp.as_deref(), Some("5"));

    // Not JSON, or JSON of the wrong shape: a typed error, not a panic.
    for bad in [
        "",
        "{",
        "[1,2]",
        r#"{"event":"media"}"#,
        r#"{"event":"start","start":7}"#,
    ] {
        let e = TwilioInbound::parse(bad).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{bad}: {e}");
    }
}
