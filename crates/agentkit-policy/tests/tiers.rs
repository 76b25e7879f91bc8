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

#[tokio::test]
async fn an_hourly_action_cap_counts_every_action_of_the_tenant() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let store = Arc::new(InMemoryStore::new());
    let policy = r#"{
      "tenants": {"ops": {"tier": "professional", "timezone": "Europe/Berlin"}},
      "tiers": {"professional": {"actions_per_minute": 60, "actions_per_hour": 5}},
      "agents": {"a": {"permissions": [{"action": "*"}]}}
    }"#;
    let start = Utc
        .with_ymd_and_hms(2026, 11, 18, 12, 0, 0)
        .unwrap()
        .timestamp();
    let clock = Arc::new(AtomicI64::new(start));
    let c = clock.clone();
    let e = PolicyEngine::from_json(policy, store)
        .unwrap()
        .with_clock(Arc::new(move || {
            Utc.timestamp_opt(c.load(Ordering::SeqCst), 0).unwrap()
        }));
    let at = |action: &str, i: usize| {
        PolicyRequest::new(
            agentkit_core::testkit::scope("ops", "a", "s", format!("r{i}")),
            action,
            json!({}),
        )
    };
    // Five different actions in five different minutes of one hour: all allowed.
    let actions = [
        "pipeline.assign",
        "calendar.create_event",
        "notify.send",
        "automation.trigger",
        "pipeline.assign",
    ];
    for (i, action) in actions.iter().enumerate() {
        clock.store(start + 60 * i64::try_from(i).unwrap(), Ordering::SeqCst);
        assert_eq!(
            e.evaluate(&at(action, i)).await.unwrap().label(),
            "allow",
            "{action}"
        );
    }
    // A sixth, of yet another action, later in the same hour: refused by the hourly cap.
    clock.store(start + 59 * 60, Ordering::SeqCst);
    let d = e.evaluate(&at("notify.escalate", 6)).await.unwrap();
    assert_eq!(d.label(), "deny");
    assert!(
        d.reason()
            .unwrap()
            .contains("5 actions per hour (tier professional)"),
        "{d:?}"
    );
    // The next clock hour starts a new count.
    clock.store(start + 60 * 60, Ordering::SeqCst);
    assert_eq!(
        e.evaluate(&at("notify.escalate", 7)).await.unwrap().label(),
        "allow"
    );
}
