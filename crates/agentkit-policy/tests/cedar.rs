//! Native and Cedar policies agree on a decision table.
#![cfg(feature = "cedar")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::policy::{CallCounters, PolicyEvaluator, PolicyRequest};
use agentkit_core::store::InMemoryStore;
use agentkit_policy::PolicyEngine;
use agentkit_policy::cedar::CedarEvaluator;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

const NATIVE: &str = r#"{
  "agents": {"marketing": {"permissions": [
    {"action": "budget.get_balance"},
    {"action": "marketing.create_campaign", "constraints": [{"type": "argument", "pointer": "/budget", "op": "le", "value": 50}]},
    {"action": "ops.deploy", "constraints": [{"type": "time_window", "days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]},
    {"action": "sched.create_event", "constraints": [{"type": "confidence", "execute_at": 0.85, "approve_at": 0.5}]}
  ]}},
  "rules": [{"action": "marketing.create_campaign", "effect": "require_approval", "reason": "large campaigns need approval",
             "when": [{"pointer": "/budget", "op": "gt", "value": 40}]}]
}"#;

const CEDAR: &str = r#"
permit(principal == Agent::"marketing", action == Action::"budget.get_balance", resource);

permit(principal == Agent::"marketing", action == Action::"marketing.create_campaign", resource)
when { context.arguments.budget <= 40 };

@approval("large campaigns need approval")
permit(principal == Agent::"marketing", action == Action::"marketing.create_campaign", resource)
when { context.arguments.budget > 40 && context.arguments.budget <= 50 };

@reason("argument constraint /budget <= 50 does not hold")
forbid(principal, action == Action::"marketing.create_campaign", resource)
when { context.arguments.budget > 50 };

permit(principal == Agent::"marketing", action == Action::"ops.deploy", resource)
when { ["mon", "tue", "wed", "thu", "fri"].contains(context.weekday) && context.hour >= 9 && context.hour < 17 };

permit(principal == Agent::"marketing", action == Action::"sched.create_event", resource)
when { context has confidence_pct && context.confidence_pct >= 85 };

@approval("confidence below the execution threshold")
permit(principal == Agent::"marketing", action == Action::"sched.create_event", resource)
when { !(context has confidence_pct) || (context.confidence_pct >= 50 && context.confidence_pct < 85) };
"#;

fn req(agent: &str, action: &str, args: Value, confidence: Option<f64>) -> PolicyRequest {
    let mut r = PolicyRequest::new(
        agentkit_core::testkit::scope("acme", agent, "s", "r"),
        action,
        args,
    );
    r.confidence = confidence;
    r.counters = CallCounters {
        calls_this_turn: 1,
        calls_this_run: 1,
        identical_calls_this_run: 0,
    };
    r
}

#[tokio::test]
async fn native_and_cedar_agree() {
    let table: Vec<(DateTime<Utc>, PolicyRequest, &str)> = {
        let wed_10 = Utc.with_ymd_and_hms(2026, 11, 18, 10, 0, 0).unwrap();
        let wed_18 = Utc.with_ymd_and_hms(2026, 11, 18, 18, 0, 0).unwrap();
        let sat_10 = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
        vec![
            (
                wed_10,
                req("marketing", "budget.get_balance", json!({}), None),
                "allow",
            ),
            (
                wed_10,
                req(
                    "marketing",
                    "marketing.create_campaign",
                    json!({"name": "a", "budget": 20}),
                    None,
                ),
                "allow",
            ),
            (
                wed_10,
                req(
                    "marketing",
                    "marketing.create_campaign",
                    json!({"name": "a", "budget": 45}),
                    None,
                ),
                "require_approval",
            ),
            (
                wed_10,
                req(
                    "marketing",
                    "marketing.create_campaign",
                    json!({"name": "a", "budget": 80}),
                    None,
                ),
                "deny",
            ),
            (
                wed_10,
                req(
                    "marketing",
                    "marketing.create_campaign",
                    json!({"name": "a"}),
                    None,
                ),
                "deny",
            ),
            (
                wed_10,
                req("marketing", "admin.drop_all", json!({}), None),
                "deny",
            ),
            (
                wed_10,
                req("intruder", "budget.get_balance", json!({}), None),
                "deny",
            ),
            (
                wed_10,
                req("marketing", "ops.deploy", json!({}), None),
                "allow",
            ),
            (
                wed_18,
                req("marketing", "ops.deploy", json!({}), None),
                "deny",
            ),
            (
                sat_10,
                req("marketing", "ops.deploy", json!({}), None),
                "deny",
            ),
            (
                wed_10,
                req("marketing", "sched.create_event", json!({}), Some(0.9)),
                "allow",
            ),
            (
                wed_10,
                req("marketing", "sched.create_event", json!({}), Some(0.7)),
                "require_approval",
            ),
            (
                wed_10,
                req("marketing", "sched.create_event", json!({}), Some(0.3)),
                "deny",
            ),
            (
                wed_10,
                req("marketing", "sched.create_event", json!({}), None),
                "require_approval",
            ),
        ]
    };
    for (now, request, expected) in table {
        let store = Arc::new(InMemoryStore::new());
        let native = PolicyEngine::from_json(NATIVE, store.clone())
            .unwrap()
            .with_clock(Arc::new(move || now));
        let cedar = CedarEvaluator::new(CEDAR, store)
            .unwrap()
            .with_clock(Arc::new(move || now));
        let n = native.evaluate(&request).await.unwrap();
        let c = cedar.evaluate(&request).await.unwrap();
        assert_eq!(
            n.label(),
            expected,
            "native on {} {} at {now}: {n:?}",
            request.action,
            request.arguments
        );
        assert_eq!(
            c.label(),
            expected,
            "cedar on {} {} at {now}: {c:?}",
            request.action,
            request.arguments
        );
    }
}

#[tokio::test]
async fn cedar_denial_reasons_and_bad_policies() {
    let store = Arc::new(InMemoryStore::new());
    let cedar = CedarEvaluator::new(CEDAR, store.clone()).unwrap();
    let d = cedar
        .evaluate(&req(
            "marketing",
            "marketing.create_campaign",
            json!({"budget": 99}),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        d.reason(),
        Some("argument constraint /budget <= 50 does not hold")
    );
    let err = CedarEvaluator::new("permit(principal,", store).unwrap_err();
    assert_eq!(err.kind(), agentkit_core::ErrorKind::InvalidConfig);
}
