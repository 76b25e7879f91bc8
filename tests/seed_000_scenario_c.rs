//! Seed 000, scenario C, end to end on SQLite and Postgres: marketing agent → plan approval →
//! ads → wait for a correlated lead → call approval → voice call → CRM → archive snapshot; the
//! process "restarts" (the database is reopened) while the run waits; and the ROLLBACK variant
//! when the CRM fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/seed_000/call.rs"]
mod call;
#[path = "../examples/seed_000/scenario_c.rs"]
mod scenario;
mod support;

use std::sync::Arc;

use agentkit::id::TenantId;
use agentkit::redact::hash_json;
use agentkit::store::{ApprovalDecision, AuditQuery, StateStore, UsageKind, UsageQuery};
use agentkit_workflow::{Delivery, RunState, StartRequest, Wait, WorkflowEvent, Workflows};
use chrono::Utc;
use serde_json::json;

fn input() -> serde_json::Value {
    json!({"campaign_id": "C-100", "product": "Spicy Chips", "audience": "snack lovers", "budget": 500})
}

fn open(
    db: &support::Db,
    effects: &scenario::Effects,
    crm_failures: usize,
) -> (Arc<dyn StateStore>, Workflows) {
    let engine = scenario::engine(db.workflows(), db.state(), effects, crm_failures).unwrap();
    (db.state(), engine)
}

async fn approve_pending(
    db: &Arc<dyn StateStore>,
    engine: &Workflows,
    tenant: &TenantId,
    decision: ApprovalDecision,
) {
    let pending = db.list_pending_approvals(tenant).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    engine
        .decide_approval(tenant, &pending[0].id, &decision)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_scenario_end_to_end_across_a_restart() {
    for db in support::databases("growth_scenario_end_to_end_across_a_restart").await {
        end_to_end_across_a_restart(&db).await;
        db.cleanup().await;
    }
}

async fn end_to_end_across_a_restart(original: &support::Db) {
    let tenant = TenantId::new("spicy-co").unwrap();
    let effects = scenario::Effects::default();

    // Process 1: start, approve the plan with an edited budget, launch; the run then waits.
    let first = original.reopen().await.unwrap();
    let (db, engine) = open(&first, &effects, 0);
    engine
        .publish(&tenant, &scenario::definition())
        .await
        .unwrap();
    let start = || {
        StartRequest::new("growth", input())
            .unwrap()
            .trigger_key("campaign-C-100")
    };
    let run = engine
        .start(&tenant, start())
        .await
        .unwrap()
        .run()
        .id
        .clone();
    engine.run_due("w1").await.unwrap();
    let mut edit = ApprovalDecision::approve("maria");
    let plan = db.list_pending_approvals(&tenant).await.unwrap()[0]
        .call
        .arguments["plan"]
        .clone();
    assert!(
        plan.as_str().unwrap().contains("Spicy Chips"),
        "the agent's plan is what is reviewed"
    );
    edit.edited_arguments = Some(json!({"plan": plan, "budget": 400}));
    approve_pending(&db, &engine, &tenant, edit).await;
    engine.run_due("w1").await.unwrap();
    let waiting = engine.get_run(&tenant, &run).await.unwrap().unwrap();
    assert_eq!(waiting.state, RunState::Waiting);
    assert!(
        matches!(waiting.wait, Some(Wait::Event { ref correlation, .. }) if correlation == "C-100")
    );
    assert_eq!(
        effects.of("ads.create"),
        vec![json!({"campaign": "C-100", "plan": plan, "budget": 400})]
    );
    drop((engine, db));
    if let support::Db::Postgres { store, .. } = first {
        store.pool().close().await;
    }

    // Process 2, later: the webhook reports a lead for another campaign, then ours (twice: the
    // sender retries).
    let second = original.reopen().await.unwrap();
    let (db, engine) = open(&second, &effects, 0);
    let again = engine.start(&tenant, start()).await.unwrap();
    assert!(
        !again.is_new(),
        "the retried campaign trigger started nothing"
    );
    let lead = |id: &str, campaign: &str, score: i64| {
        WorkflowEvent::new(
            id,
            "lead.submitted",
            campaign,
            json!({"name": "Ada", "phone": "+49 30 1234567", "score": score}),
            Utc::now(),
        )
    };
    assert_eq!(
        engine
            .send_event(&tenant, &lead("f-1", "C-999", 90))
            .await
            .unwrap(),
        Delivery::Kept
    );
    assert_eq!(
        engine
            .send_event(&tenant, &lead("f-2", "C-100", 86))
            .await
            .unwrap(),
        Delivery::Woke(vec![run.clone()])
    );
    assert_eq!(
        engine
            .send_event(&tenant, &lead("f-2", "C-100", 86))
            .await
            .unwrap(),
        Delivery::Duplicate
    );
    engine.run_due("w2").await.unwrap();
    approve_pending(&db, &engine, &tenant, ApprovalDecision::approve("tom")).await;
    engine.run_due("w2").await.unwrap();

    let done = engine.get_run(&tenant, &run).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Done, "{done:?}");
    assert_eq!(
        effects.tools(),
        vec!["ads.create", "voice.call", "crm.create_lead"]
    );
    assert_eq!(effects.of("crm.create_lead")[0]["interest"], "high");
    // The call was a real voice session: the agent's opening, the lead's words, the offer.
    let transcript = done.context["call"]["transcript"]
        .as_array()
        .unwrap()
        .clone();
    let lines: Vec<(&str, &str)> = transcript
        .iter()
        .map(|l| (l["role"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(lines[0], ("agent", call::OPENING), "{lines:?}");
    assert_eq!(lines[1], ("lead", call::LEAD_SAYS), "{lines:?}");
    assert!(
        lines[2..]
            .iter()
            .any(|(who, text)| *who == "agent" && text.contains("20% discount")),
        "{lines:?}"
    );
    // Its tokens and audio were metered to the tenant (billing of step 8).
    let usage = db.list_usage(&tenant, &UsageQuery::all()).await.unwrap();
    assert!(
        usage
            .iter()
            .any(|e| e.kind == UsageKind::AudioMillis && e.agent.as_str() == "sales_voice"),
        "{usage:?}"
    );
    let steps: Vec<String> = engine
        .steps(&tenant, &run)
        .await
        .unwrap()
        .iter()
        .map(|s| format!("{}:{}", s.node, s.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            "propose:succeeded",
            "review_plan:waiting",
            "review_plan:succeeded",
            "launch_ads:succeeded",
            "wait_lead:waiting",
            "wait_lead:succeeded",
            "qualify:succeeded",
            "review_call:waiting",
            "review_call:succeeded",
            "call:succeeded",
            "crm:succeeded",
            "archive:succeeded",
        ]
    );
    // The archive: an immutable snapshot whose hash covers the context and step log.
    let snapshots = engine.snapshots(&tenant, &run).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    let out = &snapshots[0].entry.output;
    assert_eq!(out["sha256"], json!(hash_json(&out["snapshot"])));
    assert_eq!(out["snapshot"]["context"]["crm"]["lead_id"], "crm-1");
    assert_eq!(done.context["archive"]["sha256"], out["sha256"]);
    // Every governed call left its records: executions under the run, audit entries.
    let executions = db.list_tool_executions(&tenant, &run).await.unwrap();
    assert_eq!(executions.len(), 3);
    let audit = db
        .list_audit(&tenant, &AuditQuery::all().run(run.clone()))
        .await
        .unwrap();
    assert!(audit.iter().filter(|e| e.entry.kind == "tool.call").count() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_crm_rolls_the_campaign_back() {
    for db in support::databases("a_failing_crm_rolls_the_campaign_back").await {
        rolls_back(&db).await;
        db.cleanup().await;
    }
}

async fn rolls_back(original: &support::Db) {
    let tenant = TenantId::new("spicy-co").unwrap();
    let effects = scenario::Effects::default();
    let (db, engine) = open(original, &effects, 99);
    engine
        .publish(&tenant, &scenario::definition())
        .await
        .unwrap();
    let run = engine
        .start(&tenant, StartRequest::new("growth", input()).unwrap())
        .await
        .unwrap()
        .run()
        .id
        .clone();
    engine.run_due("w").await.unwrap();
    approve_pending(&db, &engine, &tenant, ApprovalDecision::approve("maria")).await;
    engine.run_due("w").await.unwrap();
    let lead = WorkflowEvent::new(
        "f-1",
        "lead.submitted",
        "C-100",
        json!({"name": "Bo", "phone": "+1", "score": 99}),
        Utc::now(),
    );
    engine.send_event(&tenant, &lead).await.unwrap();
    engine.run_due("w").await.unwrap();
    approve_pending(&db, &engine, &tenant, ApprovalDecision::approve("tom")).await;
    // The CRM fails; its retry comes after a durable backoff of one second.
    engine.run_due("w").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    engine.run_due("w").await.unwrap();
    let failed = engine.get_run(&tenant, &run).await.unwrap().unwrap();
    assert_eq!(failed.state, RunState::Failed, "{failed:?}");
    assert!(failed.error.as_deref().unwrap().contains("rolled back"));
    assert_eq!(
        effects.tools(),
        vec!["ads.create", "voice.call", "ads.pause"]
    );
    assert_eq!(effects.of("ads.pause"), vec![json!({"ad_id": "ad-C-100"})]);
    assert!(
        engine.snapshots(&tenant, &run).await.unwrap().is_empty(),
        "a failed campaign is not archived as closed"
    );
}
