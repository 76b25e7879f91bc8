//! Run with: `cargo bench -p agentkit-policy --bench decision`
//!
//! One policy decision for an agent holding N permissions (one of which matches and carries a
//! daily budget and a per-minute rate limit, both reserved atomically in the in-memory counter
//! store), for N = 100, 1,000 and 10,000; plus the same decision without stateful constraints.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use agentkit_core::policy::{PolicyEvaluator, PolicyRequest};
use agentkit_core::store::InMemoryStore;
use agentkit_policy::PolicyEngine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn engine(n: usize, stateful: bool) -> PolicyEngine {
    let mut perms: Vec<_> = (0..n - 1)
        .map(|i| json!({"action": format!("svc{i}.action_{i}")}))
        .collect();
    let constraints = if stateful {
        json!([
            {"type": "argument", "pointer": "/budget", "op": "le", "value": 50},
            {"type": "budget", "period": "day", "limit_usd": 1.0e9, "cost": {"argument": "/budget"}},
            {"type": "rate_limit", "max": 4_000_000_000u32, "per": "minute"}
        ])
    } else {
        json!([{"type": "argument", "pointer": "/budget", "op": "le", "value": 50}])
    };
    perms.push(json!({"action": "marketing.create_campaign", "constraints": constraints}));
    let doc = json!({"agents": {"marketing": {"permissions": perms}}}).to_string();
    PolicyEngine::from_json(&doc, Arc::new(InMemoryStore::new())).unwrap()
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = PolicyRequest::new(
        agentkit_core::testkit::scope("acme", "marketing", "s", "r"),
        "marketing.create_campaign",
        json!({"name": "Spicy Chips", "budget": 20}),
    );
    let mut group = c.benchmark_group("policy_decision");
    for n in [100usize, 1_000, 10_000] {
        let e = engine(n, true);
        group.bench_with_input(BenchmarkId::new("budget_and_rate_limit", n), &n, |b, _| {
            b.iter(|| black_box(rt.block_on(e.evaluate(&request)).unwrap()))
        });
    }
    let e = engine(100, false);
    group.bench_function("stateless_100", |b| {
        b.iter(|| black_box(rt.block_on(e.evaluate(&request)).unwrap()))
    });
    #[cfg(feature = "cedar")]
    for n in [100usize, 1_000] {
        let mut text: String = (0..n - 1)
            .map(|i| format!("permit(principal == Agent::\"marketing\", action == Action::\"svc{i}.action_{i}\", resource);\n"))
            .collect();
        text.push_str("permit(principal == Agent::\"marketing\", action == Action::\"marketing.create_campaign\", resource) when { context.arguments.budget <= 50 && context.spent_today_micros < 50000000 };\n");
        let cedar =
            agentkit_policy::cedar::CedarEvaluator::new(&text, Arc::new(InMemoryStore::new()))
                .unwrap();
        group.bench_with_input(BenchmarkId::new("cedar_equivalent", n), &n, |b, _| {
            b.iter(|| black_box(rt.block_on(cedar.evaluate(&request)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
