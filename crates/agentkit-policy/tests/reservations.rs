//! Reservations: a decision's budgets and rate limits are reserved together or not at all, on
//! the in-memory store (one batch under one lock) and on a store that keeps the default
//! `counter_add_many` (SQLite, Postgres); counters are per tenant; an action instance
//! evaluated twice without an outcome releases both reservations when it did not run.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::id::TenantId;
use agentkit_core::policy::{ActionOutcome, Decision, PolicyEvaluator, PolicyRequest};
use agentkit_core::store::{CounterOutcome, CounterStore, InMemoryStore};
use agentkit_policy::PolicyEngine;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

/// Counters with `CounterStore`'s default batch (one add at a time, undone on a refusal).
struct DefaultBatches(InMemoryStore);

#[async_trait::async_trait]
impl CounterStore for DefaultBatches {
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> agentkit_core::Result<CounterOutcome> {
        self.0.counter_add(tenant, key, delta, limit).await
    }

    async fn counter_get(&self, tenant: &TenantId, key: &str) -> agentkit_core::Result<i64> {
        self.0.counter_get(tenant, key).await
    }
}

const POLICY: &str = r#"{"agents": {"marketing": {"permissions": [{"action": "ads.spend", "constraints": [
    {"type": "budget", "period": "day", "limit_usd": 50, "cost": {"argument": "/usd"}},
    {"type": "rate_limit", "max": 2, "per": "minute"}]}]}}}"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0).unwrap()
}

fn engine(store: Arc<dyn CounterStore>) -> PolicyEngine {
    PolicyEngine::from_json(POLICY, store)
        .unwrap()
        .with_clock(Arc::new(now))
}

fn spend(tenant: &str, run: &str, usd: f64) -> PolicyRequest {
    PolicyRequest::new(
        agentkit_core::testkit::scope(tenant, "marketing", "s", run),
        "ads.spend",
        json!({"usd": usd}),
    )
}

async fn counter(store: &dyn CounterStore, tenant: &str, key: &str) -> i64 {
    store
        .counter_get(&TenantId::new(tenant).unwrap(), key)
        .await
        .unwrap()
}

const BUDGET: &str = "budget:agent:marketing:2026-11-18";
const RATE: &str = "rate:agent:marketing:ads.spend:2026-11-18T15:00";

async fn all_or_nothing(store: Arc<dyn CounterStore>) {
    let e = engine(store.clone());
    assert_eq!(
        e.evaluate(&spend("acme", "r1", 10.0)).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        e.evaluate(&spend("acme", "r2", 10.0)).await.unwrap(),
        Decision::Allow
    );
    let refused = e.evaluate(&spend("acme", "r3", 10.0)).await.unwrap();
    assert!(
        refused
            .reason()
            .unwrap()
            .contains("rate limit of 2 per minute"),
        "{refused:?}"
    );
    assert_eq!(
        counter(&*store, "acme", BUDGET).await,
        20_000_000_000,
        "the budget the refused call fitted is not kept"
    );
    assert_eq!(counter(&*store, "acme", RATE).await, 2);
    let over = e.evaluate(&spend("globex", "r1", 60.0)).await.unwrap();
    assert!(over.reason().unwrap().contains("daily budget"), "{over:?}");
    assert_eq!(
        counter(&*store, "globex", RATE).await,
        0,
        "the rate-limit slot of a call refused by its budget is not kept"
    );
    assert_eq!(
        e.evaluate(&spend("globex", "r2", 50.0)).await.unwrap(),
        Decision::Allow,
        "another tenant's counters are its own"
    );
    assert_eq!(counter(&*store, "globex", BUDGET).await, 50_000_000_000);
    assert_eq!(counter(&*store, "acme", BUDGET).await, 20_000_000_000);
}

#[tokio::test]
async fn a_decision_reserves_all_or_nothing_in_memory() {
    all_or_nothing(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn a_decision_reserves_all_or_nothing_with_the_default_batch() {
    all_or_nothing(Arc::new(DefaultBatches(InMemoryStore::new()))).await;
}

#[tokio::test]
async fn an_instance_evaluated_twice_releases_both_reservations() {
    let store = Arc::new(InMemoryStore::new());
    let budget_only = r#"{"agents": {"marketing": {"permissions": [{"action": "ads.spend", "constraints": [
        {"type": "budget", "period": "day", "limit_usd": 50, "cost": {"argument": "/usd"}}]}]}}}"#;
    let e = PolicyEngine::from_json(budget_only, store.clone())
        .unwrap()
        .with_clock(Arc::new(now));
    let r = spend("acme", "r1", 5.0);
    assert_eq!(e.evaluate(&r).await.unwrap(), Decision::Allow);
    assert_eq!(e.evaluate(&r).await.unwrap(), Decision::Allow);
    let other = spend("acme", "r2", 5.0);
    assert_eq!(e.evaluate(&other).await.unwrap(), Decision::Allow);
    assert_eq!(counter(&*store, "acme", BUDGET).await, 15_000_000_000);
    e.record_outcome(&r, &ActionOutcome::NotRun).await.unwrap();
    assert_eq!(
        counter(&*store, "acme", BUDGET).await,
        5_000_000_000,
        "both $5 of `r` are released, the other call's stay"
    );
    e.record_outcome(&r, &ActionOutcome::NotRun).await.unwrap();
    assert_eq!(
        counter(&*store, "acme", BUDGET).await,
        5_000_000_000,
        "nothing is released twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_race_with_the_default_batch() {
    let store = Arc::new(DefaultBatches(InMemoryStore::new()));
    let policy = r#"{"agents": {"marketing": {"permissions": [{"action": "ads.spend", "constraints": [
        {"type": "budget", "period": "day", "limit_usd": 50, "cost": {"argument": "/usd"}},
        {"type": "rate_limit", "max": 1000, "per": "minute"}]}]}}}"#;
    let e = Arc::new(
        PolicyEngine::from_json(policy, store.clone())
            .unwrap()
            .with_clock(Arc::new(now)),
    );
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move { e.evaluate(&spend("acme", &format!("r{i}"), 1.5)).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == Decision::Allow {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 33, "33 × $1.50 = $49.50 fits, a 34th would not");
    assert_eq!(counter(&*store, "acme", BUDGET).await, 49_500_000_000);
    assert_eq!(
        counter(&*store, "acme", RATE).await,
        33,
        "refused calls keep no rate-limit slot"
    );
}
