//! A load test of the host over HTTP on loopback: N concurrent chat sessions, each sending
//! messages one after another for a fixed time, with the offline rule-based model and the
//! SQLite store. Reports throughput, p50/p99 latency and errors, then checks that no message
//! was lost or reordered (every session's history holds exactly its messages, in order, each
//! answered).
//!
//! ```sh
//! cargo bench -p agentkit-example-host --bench load          # 64 sessions, 10 s
//! AGENTKIT_LOAD_SESSIONS=256 AGENTKIT_LOAD_SECS=30 cargo bench -p agentkit-example-host --bench load
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use agentkit::id::TenantId;
use agentkit_example_host::{App, HostConfig, router};
use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let sessions = env_or("AGENTKIT_LOAD_SESSIONS", 64) as usize;
    let secs = env_or("AGENTKIT_LOAD_SECS", 10);
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(HostConfig {
        db_path: dir.path().join("load.db"),
        ..HostConfig::default()
    })
    .await
    .unwrap();
    let acme = TenantId::new("acme").unwrap();
    let key = app.create_tenant(&acme).await.unwrap();

    // Baseline, same run: the same chats in process (no HTTP, no JSON, no auth).
    let agent = app
        .agent(&acme, &agentkit::id::AgentId::new("marketing").unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let t = Instant::now();
                let request = agentkit::prelude::RunRequest::new(
                    "acme",
                    format!("base-{s}").as_str(),
                    format!("hello {i}"),
                );
                if agent.run(request).await.is_ok() {
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }));
    }
    let mut base = Vec::new();
    for t in tasks {
        base.extend(t.await.unwrap());
    }
    let base_elapsed = started.elapsed();
    base.sort();
    let base_rate = base.len() as f64 / base_elapsed.as_secs_f64();
    println!(
        "baseline (in process): {} chats in {:.1} s; throughput {base_rate:.0} chats/s; latency p50 {:.1} ms, p99 {:.1} ms",
        base.len(),
        base_elapsed.as_secs_f64(),
        percentile(&base, 50.0).as_secs_f64() * 1e3,
        percentile(&base, 99.0).as_secs_f64() * 1e3,
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, router(app)).await.unwrap() });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(sessions)
        .build()
        .unwrap();

    println!(
        "load: {sessions} concurrent sessions for {secs} s against {base} (SQLite, rule-based model)"
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let client = client.clone();
        let url = format!("{base}/v1/sessions/load-{s}/messages");
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut sent = 0u64;
            while Instant::now() < deadline {
                sent += 1;
                let t = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"message": format!("hello {sent}")}))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors, sent)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sent_per_session = Vec::new();
    for t in tasks {
        let (l, e, sent) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
        sent_per_session.push(sent);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let ok = latencies.len();
    println!(
        "requests: {ok} ok, {errors} errors in {:.1} s; throughput {:.0} chats/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "HTTP / in-process throughput: {:.2}×",
        ok as f64 / elapsed.as_secs_f64() / base_rate
    );

    // No message lost or reordered: each history is exactly hello 1..n, each answered.
    let mut broken = 0;
    for (s, sent) in sent_per_session.iter().enumerate() {
        let history: Value = client
            .get(format!("{base}/v1/sessions/load-{s}/messages"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = history.as_array().cloned().unwrap_or_default();
        let users: Vec<String> = messages
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["text"].as_str().unwrap_or("").to_string())
            .collect();
        let expected: Vec<String> = (1..=*sent).map(|i| format!("hello {i}")).collect();
        let answered = messages
            .windows(2)
            .filter(|w| w[0]["role"] == "user" && w[1]["role"] == "assistant")
            .count();
        if users != expected || answered != users.len() {
            broken += 1;
            eprintln!(
                "session load-{s}: {} user messages, expected {sent}; {answered} answered",
                users.len()
            );
        }
    }
    println!(
        "histories: {} sessions checked, {broken} lost or reordered",
        sessions
    );
    assert_eq!(errors, 0, "requests failed");
    assert_eq!(broken, 0, "messages lost or reordered");
}
