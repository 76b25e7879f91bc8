//! Tenant tiers: quotas enforced through the engine.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::policy::{PolicyEvaluator, PolicyRequest};
use agentkit_core::store::{CounterStore, InMemoryStore};
use agentkit_policy::PolicyEngine;
use chrono::{TimeZone, Utc};
use serde_json::json;

const POLICY: &str = r#"{
  "tenants": {"small": {"tier": "free"}, "custom": {"tier": "starter"}, "big": {"tier": "enterprise"}},
  "tiers": {"starter": {"tool_calls_per_day": 2}},
  "agents": {"a": {"permissions": [{"action": "*"}]}}
}"#;

fn req(tenant: &str, i: usize) -> PolicyRequest {
    PolicyRequest::new(
        agentkit_core::testkit::scope(tenant, "a", "s", format!("r{i}")),
        "crm.read",
        json!({"i": i}),
    )
}

#[tokio::test]
async fn tier_quotas_limit_actions_per_tenant() {
    let store = Arc::new(InMemoryStore::new());
    let now = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
    let e = PolicyEngine::from_json(POLICY, store.clone())
        .unwrap()
        .with_clock(Arc::new(move || now));
    // Free: 10 actions per minute.
    let mut allowed = 0;
    for i in 0..15 {
        if e.evaluate(&req("small", i)).await.unwrap().label() == "allow" {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
    let d = e.evaluate(&req("small", 99)).await.unwrap();
    assert!(
        d.reason()
            .unwrap()
            .contains("10 actions per minute (tier free)"),
        "{d:?}"
    );
    // Overridden starter quota: 2 tool calls a day.
    assert_eq!(
        e.evaluate(&req("custom", 1)).await.unwrap().label(),
        "allow"
    );
    assert_eq!(
        e.evaluate(&req("custom", 2)).await.unwrap().label(),
        "allow"
    );
    let d = e.evaluate(&req("custom", 3)).await.unwrap();
    assert!(
        d.reason()
            .unwrap()
            .contains("daily quota of 2 tool calls (tier starter)"),
        "{d:?}"
    );
    // Enterprise: unlimited; other tenants are not affected by the small ones.
    for i in 0..50 {
        assert_eq!(e.evaluate(&req("big", i)).await.unwrap().label(), "allow");
    }
    // Monthly token quota (the Meter adds tokens to this counter).
    store
        .counter_add(
            &agentkit_core::id::TenantId::from_static("small"),
            "quota:tokens:2026-11",
            100_000,
            None,
        )
        .await
        .unwrap();
    let later = Utc.with_ymd_and_hms(2026, 11, 18, 12, 5, 0).unwrap();
    let e2 = PolicyEngine::from_json(POLICY, store.clone())
        .unwrap()
        .with_clock(Arc::new(move || later));
    let d = e2.evaluate(&req("small", 100)).await.unwrap();
    assert!(
        d.reason()
            .unwrap()
            .contains("monthly quota of 100000 model tokens"),
        "{d:?}"
    );
}
