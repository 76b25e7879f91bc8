//! Run with: `cargo bench --bench voice --features voice`.
//!
//! What the voice pipeline itself adds to a turn's latency, with speech-to-text, the model and
//! text-to-speech all answering at once (scripted, zero delay) and real time (not paused):
//!
//! - `pipeline_turn`: one voice turn, from the user's stop (as the VAD dates it) to the
//!   reply's first audio, minus the configured waits (the VAD's 20 ms stop hangover; the
//!   endpointing minimum is zero). What is left is the pipeline's own cost across its stages
//!   (VAD, STT stream, endpointing, agent turn, sentence chunking, TTS stream).
//! - `baseline_agent_first_token`: the same agent and store alone, from `run_stream` to the
//!   first text delta: the part of a turn that is not voice.
//!
//! After the timings, the per-stage overheads of every measured turn are printed as p50, p95
//! and p99 (the target: ≤ 10 ms p95 between stages).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentkit::agent::{Agent, AgentEvent, RunRequest};
use agentkit::store::InMemoryStore;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::voice::endpoint::EndpointingConfig;
use agentkit::voice::testkit::{ScriptedStt, ScriptedTts, silence, speech};
use agentkit::voice::{
    AudioFormat, InterruptionConfig, TurnLatency, VadConfig, VoiceConfig, VoiceEvent, VoiceInput,
    VoiceSession,
};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use tokio::sync::mpsc;

const HANGOVER: Duration = Duration::from_millis(20);
const TURNS_PER_SESSION: usize = 200;

fn agent() -> Agent {
    Agent::builder()
        .id("phone")
        .system_prompt("You answer the phone.")
        .model(
            Arc::new(ScriptedModel::repeating([ScriptedResponse::text(
                "Your order shipped. It arrives Monday.",
            )])),
            "m",
        )
        .store(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap()
}

fn config() -> VoiceConfig {
    let mut c = VoiceConfig::default();
    c.vad = VadConfig::default()
        .with_start(Duration::from_millis(40))
        .with_stop(HANGOVER);
    // No endpointing wait once the transcript is in (the maximum only bounds the wait for it).
    c.endpointing = EndpointingConfig::new(Duration::ZERO, Duration::from_secs(1));
    let mut i = InterruptionConfig::default();
    i.enabled = false;
    c.interruptions = i;
    c.playback_lead = Duration::from_secs(3600);
    c
}

struct Call {
    input: VoiceInput,
    events: mpsc::Receiver<VoiceEvent>,
    turns: usize,
}

async fn call() -> Call {
    let stt = ScriptedStt::new(vec!["Where is my order?"; 1_000_000]);
    let tts = ScriptedTts::new(Duration::ZERO, Duration::from_millis(20));
    let session = VoiceSession::new(agent(), Arc::new(stt), Arc::new(tts), "acme", "bench")
        .unwrap()
        .with_config(config());
    let (input, events) = session.start().await.unwrap();
    Call {
        input,
        events,
        turns: 0,
    }
}

/// One turn: speech then silence pushed at once; the latency report of the turn.
async fn turn(call: &mut Call) -> TurnLatency {
    for f in speech(AudioFormat::SPEECH, Duration::from_millis(60))
        .into_iter()
        .chain(silence(AudioFormat::SPEECH, HANGOVER))
    {
        call.input.push_audio(f).await.unwrap();
    }
    call.turns += 1;
    loop {
        match call.events.recv().await.expect("session alive") {
            VoiceEvent::TurnCompleted(r) => return r.latency,
            VoiceEvent::Ended(r) => panic!("the session ended: {r:?}"),
            _ => {}
        }
    }
}

fn overhead(l: &TurnLatency) -> Duration {
    l.end_to_end.saturating_sub(HANGOVER)
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("voice");
    let all: Arc<Mutex<Vec<TurnLatency>>> = Arc::default();
    let mut current = rt.block_on(call());
    {
        let all = Arc::clone(&all);
        group.bench_function("pipeline_turn", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if current.turns >= TURNS_PER_SESSION {
                            current = call().await;
                        }
                        let l = turn(&mut current).await;
                        total += overhead(&l);
                        all.lock().unwrap().push(l);
                    }
                    total
                })
            })
        });
    }
    let baseline_agent = agent();
    group.bench_function("baseline_agent_first_token", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let start = Instant::now();
                    let mut s = baseline_agent.run_stream(RunRequest::new(
                        "acme",
                        format!("s{}", i % 64),
                        "Where is my order?",
                    ));
                    while let Some(e) = s.next().await {
                        if matches!(e.unwrap(), AgentEvent::TextDelta(_)) {
                            total += start.elapsed();
                            break;
                        }
                    }
                    while s.next().await.is_some() {}
                }
                total
            })
        })
    });
    group.finish();
    report(&all.lock().unwrap());
}

fn percentiles(mut v: Vec<Duration>) -> [Duration; 3] {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    [at(0.50), at(0.95), at(0.99)]
}

/// How one stage's overhead is read off a turn's latency.
type Stage = fn(&TurnLatency) -> Duration;

fn report(turns: &[TurnLatency]) {
    if turns.is_empty() {
        return;
    }
    println!(
        "\nvoice pipeline overhead over {} turns (p50 / p95 / p99, ms):",
        turns.len()
    );
    let rows: [(&str, Stage); 6] = [
        ("stt (stop → final, minus the hangover)", |l| {
            l.stt.saturating_sub(HANGOVER)
        }),
        ("endpointing (final → turn end)", |l| l.endpointing),
        ("model (turn end → first token)", |l| l.model),
        ("sentence (first token → first sentence)", |l| l.sentence),
        ("tts (first sentence → first audio)", |l| l.tts),
        ("end to end, minus the hangover", overhead),
    ];
    for (name, f) in rows {
        let [p50, p95, p99] = percentiles(turns.iter().map(f).collect());
        println!(
            "  {name:<44} {:>7.3} {:>7.3} {:>7.3}",
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
