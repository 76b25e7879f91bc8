//! Pricing, spend from the usage ledger, invoice recomputation, audit export and tampering.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::policy::{PolicyEvaluator, PolicyRequest};
use agentkit_core::prelude::*;
use agentkit_core::store::{
    AuditQuery, CounterStore, UsageEvent, UsageKind, UsageQuery, UsageStore, Usd,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_policy::audit::{export_jsonl, verify, verify_jsonl};
use agentkit_policy::metering::{ModelPrice, invoice_draft};
use agentkit_policy::{Meter, Period, PolicyEngine, PriceBook, PriceTable, SpendOf};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

fn book() -> PriceBook {
    let table = |version: &str, from: DateTime<Utc>, input: f64| PriceTable {
        version: version.into(),
        effective_from: from,
        models: [(
            "gpt-test".to_string(),
            ModelPrice {
                input_per_mtok: input,
                output_per_mtok: 0.60,
                cached_input_per_mtok: Some(0.075),
            },
        )]
        .into_iter()
        .collect(),
        tool_call_usd: 0.001,
        tools: [("marketing.create_campaign".to_string(), 0.01)]
            .into_iter()
            .collect(),
        knowledge_query_usd: 0.0005,
        audio_per_minute_usd: 0.006,
    };
    PriceBook::new(vec![
        table("2026-12", at(2026, 12, 1, 0), 0.10),
        table("2026-01", at(2026, 1, 1, 0), 0.15),
    ])
    .unwrap()
}

fn event(kind: UsageKind, resource: &str, quantity: u64, when: DateTime<Utc>) -> UsageEvent {
    let mut e = UsageEvent::new(
        TenantId::from_static("acme"),
        AgentId::from_static("marketing"),
        kind,
        quantity,
    );
    e.resource = Some(resource.into());
    e.at = when;
    e
}

#[test]
fn prices_are_exact_and_versioned() {
    let b = book();
    let nov = at(2026, 11, 10, 12);
    assert_eq!(
        b.price(&event(UsageKind::InputTokens, "gpt-test", 1234, nov))
            .unwrap(),
        (Usd::from_nanos(185_100), "2026-01".into())
    );
    assert_eq!(
        b.price(&event(
            UsageKind::InputTokens,
            "gpt-test",
            1234,
            at(2026, 12, 2, 0)
        ))
        .unwrap()
        .0,
        Usd::from_nanos(123_400)
    );
    assert_eq!(
        b.price(&event(UsageKind::CachedInputTokens, "gpt-test", 1000, nov))
            .unwrap()
            .0,
        Usd::from_nanos(75_000)
    );
    assert_eq!(
        b.price(&event(
            UsageKind::ToolCall,
            "marketing.create_campaign",
            2,
            nov
        ))
        .unwrap()
        .0,
        Usd::from_micros(20_000)
    );
    assert_eq!(
        b.price(&event(UsageKind::ToolCall, "other.tool", 1, nov))
            .unwrap()
            .0,
        Usd::from_micros(1_000)
    );
    assert_eq!(
        b.price(&event(UsageKind::AudioMillis, "stt", 90_000, nov))
            .unwrap()
            .0,
        Usd::from_micros(9_000)
    );
    assert!(
        b.price(&event(UsageKind::InputTokens, "unknown-model", 1, nov))
            .is_err()
    );
    assert!(
        b.price(&event(
            UsageKind::InputTokens,
            "gpt-test",
            1,
            at(2025, 1, 1, 0)
        ))
        .is_err(),
        "before any table"
    );
}

const POLICY: &str = r#"{
  "tenants": {"acme": {"timezone": "America/New_York"}},
  "agents": {"marketing": {"permissions": [
    {"action": "budget.get_balance"},
    {"action": "marketing.create_campaign", "constraints": [
      {"type": "budget", "period": "day", "limit_usd": 0.02, "cost": {"fixed_usd": 0.01}}]}
  ]}}
}"#;

#[tokio::test]
async fn metered_agent_usage_is_priced_and_counts_toward_budgets() {
    let store = Arc::new(InMemoryStore::new());
    let engine = PolicyEngine::from_json(POLICY, store.clone()).unwrap();
    // One table in force since 2020, so the expected prices do not depend on today's date.
    let mut table = book().table_at(at(2026, 11, 1, 0)).unwrap().clone();
    table.effective_from = at(2020, 1, 1, 0);
    let meter = Arc::new(Meter::new(
        Arc::new(PriceBook::new(vec![table]).unwrap()),
        engine.clone(),
    ));
    let balance = FnTool::new(
        ToolSpec::new("budget.get_balance", "balance", json!({"type": "object"})),
        |_c, _a| async { Ok(json!(120)) },
    );
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("budget.get_balance", json!({})).with_usage(Usage {
            input_tokens: 100_000,
            output_tokens: 1_000,
            ..Usage::default()
        }),
        ScriptedResponse::text("ok").with_usage(Usage {
            input_tokens: 20_000,
            output_tokens: 500,
            ..Usage::default()
        }),
    ]);
    let agent = Agent::builder()
        .id("marketing")
        .model(Arc::new(model), "gpt-test")
        .tool(Arc::new(balance))
        .store(store.clone())
        .policy(Arc::new(engine.clone()))
        .meter(meter)
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "balance?"))
        .await
        .unwrap();
    let events = store
        .list_usage(&TenantId::from_static("acme"), &UsageQuery::all())
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    for e in &events {
        assert!(e.cost.is_some(), "unpriced event {e:?}");
        assert_eq!(e.price_version.as_deref(), Some("2026-01"));
    }
    let total: Usd = events.iter().filter_map(|e| e.cost).sum();
    // 120k input × $0.15/M + 1.5k output × $0.60/M + one tool call × $0.001 = $0.0199
    assert_eq!(total, Usd::from_nanos(19_900_000));
    // The public spend query reads the counters the budgets reserve on (tenant's timezone).
    let acme = TenantId::from_static("acme");
    let agent = SpendOf::Agent(agentkit_core::id::AgentId::from_static("marketing"));
    let spent = engine.spend(&acme, &agent, Period::Day).await.unwrap();
    assert_eq!(
        spent, total,
        "the ledger's spend is on the agent's day counter"
    );
    assert_eq!(
        engine.spend(&acme, &agent, Period::Month).await.unwrap(),
        total
    );
    assert_eq!(
        engine
            .spend(&acme, &SpendOf::Tenant, Period::Day)
            .await
            .unwrap(),
        total,
        "and on the tenant's"
    );
    assert_eq!(
        engine
            .spend(
                &TenantId::from_static("globex"),
                &SpendOf::Tenant,
                Period::Day
            )
            .await
            .unwrap(),
        Usd::from_nanos(0),
        "another tenant spent nothing"
    );
    // Model spend counts: $0.0199 spent, a $0.01 campaign would pass $0.02.
    let r = PolicyRequest::new(
        agentkit_core::testkit::scope("acme", "marketing", "s1", "r"),
        "marketing.create_campaign",
        json!({}),
    );
    let d = engine.evaluate(&r).await.unwrap();
    assert_eq!(d.label(), "deny", "{d:?}");
    let month = Utc::now()
        .with_timezone(&chrono_tz::America::New_York)
        .format("%Y-%m");
    let tokens = store
        .counter_get(
            &TenantId::from_static("acme"),
            &format!("quota:tokens:{month}"),
        )
        .await
        .unwrap();
    assert_eq!(tokens, 121_500);
}

#[tokio::test]
async fn invoice_drafts_are_recomputable_and_follow_the_tenants_month() {
    let store = InMemoryStore::new();
    let tz = chrono_tz::America::New_York;
    let events = vec![
        event(
            UsageKind::InputTokens,
            "gpt-test",
            1_000_000,
            at(2026, 11, 3, 12),
        ),
        event(
            UsageKind::OutputTokens,
            "gpt-test",
            10_000,
            at(2026, 11, 3, 12),
        ),
        event(
            UsageKind::ToolCall,
            "marketing.create_campaign",
            3,
            at(2026, 11, 20, 9),
        ),
        // 2026-12-01 03:00 UTC is still November 30 in New York.
        event(
            UsageKind::InputTokens,
            "gpt-test",
            1_000_000,
            at(2026, 12, 1, 3),
        ),
        // December in New York: not on the November invoice.
        event(
            UsageKind::InputTokens,
            "gpt-test",
            5_000_000,
            at(2026, 12, 1, 6),
        ),
        event(
            UsageKind::InputTokens,
            "mystery-model",
            7,
            at(2026, 11, 5, 0),
        ),
    ];
    store
        .append_usage(&events[0].tenant, &events)
        .await
        .unwrap();
    let b = book();
    let d1 = invoice_draft(&store, &TenantId::from_static("acme"), 2026, 11, tz, &b)
        .await
        .unwrap();
    let d2 = invoice_draft(&store, &TenantId::from_static("acme"), 2026, 11, tz, &b)
        .await
        .unwrap();
    assert_eq!(d1, d2);
    assert_eq!(d1.fingerprint, d2.fingerprint);
    assert_eq!(d1.events, 5);
    assert_eq!(d1.unpriced.len(), 1, "unknown model listed, not charged");
    // Nov 3: $0.15 + $0.006; Nov 20: $0.03; Nov 30 (local): priced with the December table, $0.10.
    assert_eq!(
        d1.total,
        Usd::from_nanos(150_000_000 + 6_000_000 + 30_000_000 + 100_000_000)
    );
    assert_eq!(d1.total, d1.lines.iter().map(|l| l.amount).sum());
    let versions: Vec<_> = d1.lines.iter().map(|l| l.price_version.as_str()).collect();
    assert!(versions.contains(&"2026-12") && versions.contains(&"2026-01"));
    // Another tenant's invoice is empty.
    let other = invoice_draft(&store, &TenantId::from_static("globex"), 2026, 11, tz, &b)
        .await
        .unwrap();
    assert_eq!((other.events, other.total), (0, Usd::ZERO));
}

#[tokio::test]
async fn audit_chain_verifies_exports_and_detects_tampering() {
    let store = Arc::new(InMemoryStore::new());
    let engine = PolicyEngine::from_json(POLICY, store.clone())
        .unwrap()
        .with_audit(store.clone());
    for i in 0..5 {
        let r = PolicyRequest::new(
            agentkit_core::testkit::scope("acme", "marketing", "s", format!("r{i}")),
            "budget.get_balance",
            json!({}),
        );
        engine.evaluate(&r).await.unwrap();
    }
    let report = verify(&*store, &TenantId::from_static("acme"))
        .await
        .unwrap();
    assert!(report.is_intact());
    assert_eq!(report.entries, 5);

    let mut out = Vec::new();
    assert_eq!(
        export_jsonl(
            &*store,
            &TenantId::from_static("acme"),
            &AuditQuery::all(),
            &mut out
        )
        .await
        .unwrap(),
        5
    );
    assert!(verify_jsonl(out.as_slice()).unwrap().is_intact());
    let text = String::from_utf8(out).unwrap();

    // Edit one entry's decision.
    let lines: Vec<&str> = text.lines().collect();
    let edited = lines[2].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    assert_ne!(edited, lines[2]);
    let mut tampered = lines.clone();
    tampered[2] = &edited;
    assert_eq!(
        verify_jsonl(tampered.join("\n").as_bytes())
            .unwrap()
            .first_bad,
        Some(3)
    );
    // Remove one entry.
    let mut removed = lines.clone();
    removed.remove(1);
    assert_eq!(
        verify_jsonl(removed.join("\n").as_bytes())
            .unwrap()
            .first_bad,
        Some(2)
    );
    // Garbage is a typed error with the line number.
    let err = verify_jsonl("{not json}\n".as_bytes()).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}
