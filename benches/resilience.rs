//! Run with: `cargo bench --bench resilience`
//!
//! What the full resilience stack costs when nothing fails: timeout + circuit breaker + retry +
//! fallback around a `ScriptedModel::repeating`, against the bare scripted model, for one
//! `complete` and for one `stream` drained to the end. The difference is the overhead a call
//! pays (target: under 1 µs).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use agentkit::message::Message;
use agentkit::model::{CompletionRequest, LlmProvider};
use agentkit::resilience::{CircuitBreaker, ProviderExt, RetryPolicy};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;

fn scripted() -> Arc<dyn LlmProvider> {
    Arc::new(ScriptedModel::repeating([ScriptedResponse::text(
        "Lead 42 is Ada, qualified.",
    )]))
}

fn stacked() -> Arc<dyn LlmProvider> {
    scripted()
        .with_timeout(Duration::from_secs(60), Duration::from_secs(20))
        .with_circuit_breaker(CircuitBreaker::consecutive_failures(
            5,
            Duration::from_secs(30),
        ))
        .with_retry(RetryPolicy::default())
        .with_fallback([scripted()])
}

fn resilience(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = CompletionRequest::new(
        "m",
        vec![
            Message::system("You are a CRM assistant."),
            Message::user("Who is lead 42?"),
        ],
    );
    let bare = scripted();
    let full = stacked();

    let mut group = c.benchmark_group("resilience_complete");
    for (name, model) in [
        ("bare_scripted", &bare),
        ("timeout_breaker_retry_fallback", &full),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(model.complete(&request).await.unwrap()) })
        });
    }
    group.finish();

    // One layer at a time, to see where the stack's cost goes.
    let timeout = scripted().with_timeout(Duration::from_secs(60), Duration::from_secs(20));
    let breaker = scripted().with_circuit_breaker(CircuitBreaker::consecutive_failures(
        5,
        Duration::from_secs(30),
    ));
    let retry = scripted().with_retry(RetryPolicy::default());
    let fallback = scripted().with_fallback([scripted()]);
    let layers = [
        ("bare_scripted", &bare),
        ("timeout_only", &timeout),
        ("circuit_breaker_only", &breaker),
        ("retry_only", &retry),
        ("fallback_only", &fallback),
        ("timeout_breaker_retry_fallback", &full),
    ];

    let mut group = c.benchmark_group("resilience_stream");
    for (name, model) in layers {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut s = model.stream(&request).await.unwrap();
                while let Some(e) = s.next().await {
                    black_box(e.unwrap());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, resilience);
criterion_main!(benches);
