//! Seed 000, scenario C on Temporal: the same workflow definition, integrations and marketing
//! agent as the embedded engine's run (`examples/seed_000/scenario_c.rs`), executed by
//! [`GraphWorkflow`] against a real dev server. The agent node is a child agent workflow, the
//! approvals are decided by the host in the agentkit store and signalled, the lead arrives as a
//! correlated event signal, the voice call is a governed activity, the archive a snapshot in
//! the audit chain. The governance records match the embedded engine's for the same scenario;
//! the ROLLBACK variant runs the compensation as an activity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../examples/seed_000/call.rs"]
mod call;
mod common;
#[path = "../../../examples/seed_000/scenario_c.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::id::{ApprovalId, RunId, TenantId};
use agentkit_core::redact::hash_json;
use agentkit_core::store::{
    ApprovalDecision, AuditQuery, InMemoryStore, RunStatus, StateStore, UsageQuery,
    verify_audit_chain,
};
use agentkit_store_sqlite::SqliteStore;
use agentkit_temporal::{GraphRunInput, TemporalAgents};
use agentkit_workflow::{
    InMemoryWorkflowStore, RunState, StartRequest, WorkflowEvent, WorkflowStore, Workflows,
};
use chrono::Utc;
use serde_json::{Value, json};

fn input() -> Value {
    json!({"campaign_id": "C-100", "product": "Spicy Chips", "audience": "snack lovers", "budget": 500})
}

fn lead(id: &str, campaign: &str, score: i64) -> WorkflowEvent {
    WorkflowEvent::new(
        id,
        "lead.submitted",
        campaign,
        json!({"name": "Ada", "phone": "+49 30 1234567", "score": score}),
        Utc::now(),
    )
}

/// A worker serving the scenario on a fresh queue while `$flow` runs.
macro_rules! with_worker {
    ($client:expr, $state:expr, $effects:expr, $crm_failures:expr, |$queue:ident| $flow:block) => {{
        let $queue = common::unique("growth");
        let (executor, marketing) =
            scenario::parts($state.clone(), &$effects, $crm_failures).unwrap();
        let worker = TemporalAgents::new()
            .agent(marketing)
            .workflow_executor(executor)
            .workflow(scenario::definition())
            .worker(&$client, &$queue)
            .unwrap();
        common::serve(worker, async { $flow }).await
    }};
}

/// What a scenario left in the governance records, without run ids or times: usage (kind and
/// agent → quantity) and audit entries (kind and action → count: tool calls, approvals and
/// their decisions, compensations, snapshots); the audit chain verifies.
async fn governance(store: &Arc<dyn StateStore>, tenant: &TenantId) -> Value {
    let mut usage: BTreeMap<String, u64> = BTreeMap::new();
    for e in store.list_usage(tenant, &UsageQuery::all()).await.unwrap() {
        *usage
            .entry(format!("{}:{}", e.kind.as_str(), e.agent))
            .or_default() += e.quantity;
    }
    let audit = store.list_audit(tenant, &AuditQuery::all()).await.unwrap();
    assert_eq!(verify_audit_chain(&audit), Ok(()));
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for e in &audit {
        *kinds
            .entry(format!("{}:{}", e.entry.kind, e.entry.action))
            .or_default() += 1;
    }
    json!({"usage": usage, "audit": kinds})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_runs_on_temporal_with_the_approvals_signalled_by_the_host() {
    let Some(server) = common::dev_server("scenario_c").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state: Arc<dyn StateStore> =
        Arc::new(SqliteStore::open(dir.path().join("host.db")).await.unwrap());
    let tenant = TenantId::new("spicy-co").unwrap();
    let effects = scenario::Effects::default();
    let run = common::unique("growth-C-100");
    let out = with_worker!(client, state, effects, 0, |queue| {
        agentkit_temporal::start_workflow(
            &client,
            &queue,
            &run,
            GraphRunInput::new("spicy-co", "growth", input()),
        )
        .await
        .unwrap();
        // The plan, drafted by the marketing agent (a child agent workflow), is reviewed and
        // its budget edited; the decision goes to the store, then to the run as a signal.
        let plan = common::pending(state.as_ref(), &tenant).await;
        assert_eq!(
            plan.run.as_str(),
            run,
            "the approval node's request is the run's"
        );
        let drafted = plan.call.arguments["plan"].clone();
        assert!(
            drafted.as_str().unwrap().contains("Spicy Chips"),
            "{drafted}"
        );
        let mut edit = ApprovalDecision::approve("maria");
        edit.edited_arguments = Some(json!({"plan": drafted, "budget": 400}));
        agentkit_temporal::decide(&client, state.clone(), &tenant, &plan.id, &edit)
            .await
            .unwrap();
        // A second decision is refused by the store (and signals nothing).
        assert!(
            agentkit_temporal::decide(
                &client,
                state.clone(),
                &tenant,
                &plan.id,
                &ApprovalDecision::reject("eve", "late")
            )
            .await
            .is_err()
        );
        // The landing page's webhook: a lead for another campaign (not this run's), then
        // ours twice (the sender retried) — whenever they come, the waiting node takes ours.
        for event in [
            lead("f-1", "C-999", 90),
            lead("f-2", "C-100", 86),
            lead("f-2", "C-100", 86),
        ] {
            agentkit_temporal::send_event(&client, &run, &event)
                .await
                .unwrap();
        }
        let call = common::pending(state.as_ref(), &tenant).await;
        assert_eq!(call.call.name, "workflow.approval");
        assert_eq!(call.call.arguments["phone"], "+49 30 1234567");
        agentkit_temporal::decide(
            &client,
            state.clone(),
            &tenant,
            &call.id,
            &ApprovalDecision::approve("tom"),
        )
        .await
        .unwrap();
        agentkit_temporal::workflow_result(&client, &run)
            .await
            .unwrap()
    });

    // Each integration ran once, with the reviewer's edited budget.
    assert_eq!(
        effects.tools(),
        vec!["ads.create", "voice.call", "crm.create_lead"]
    );
    assert_eq!(effects.of("ads.create")[0]["budget"], 400);
    assert_eq!(effects.of("crm.create_lead")[0]["interest"], "high");
    let lines: Vec<String> = out.context["call"]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                l["role"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines[0], format!("agent: {}", call::OPENING), "{lines:?}");
    assert_eq!(lines[1], format!("lead: {}", call::LEAD_SAYS), "{lines:?}");
    let steps: Vec<String> = out
        .steps
        .iter()
        .map(|s| format!("{}:{}", s.node, s.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            "propose:succeeded",
            "review_plan:succeeded",
            "launch_ads:succeeded",
            "wait_lead:succeeded",
            "qualify:succeeded",
            "review_call:succeeded",
            "call:succeeded",
            "crm:succeeded",
            "archive:succeeded",
        ]
    );
    assert_eq!(out.context["wait_lead"]["score"], 86, "our campaign's lead");
    // The archive: a snapshot in the audit chain whose hash covers the run so far.
    let run_id = RunId::new(&run).unwrap();
    let snapshots = state
        .list_audit(
            &tenant,
            &AuditQuery::all()
                .kind("workflow.snapshot")
                .run(run_id.clone()),
        )
        .await
        .unwrap();
    assert_eq!(snapshots.len(), 1);
    let snap = &snapshots[0].entry.output;
    assert_eq!(snap["sha256"], json!(hash_json(&snap["snapshot"])));
    assert_eq!(out.context["archive"]["sha256"], snap["sha256"]);
    // The run and its governed calls are in the host's store.
    assert_eq!(
        state
            .list_tool_executions(&tenant, &run_id)
            .await
            .unwrap()
            .len(),
        3
    );
    let record = state.get_run(&tenant, &run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    let temporal = governance(&state, &tenant).await;

    // The same scenario on the embedded engine leaves the same governance records.
    let embedded_state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let embedded_effects = scenario::Effects::default();
    let store: Arc<dyn WorkflowStore> = Arc::new(InMemoryWorkflowStore::new());
    let engine = scenario::engine(store, embedded_state.clone(), &embedded_effects, 0).unwrap();
    embedded(&engine, &embedded_state, &tenant).await;
    assert_eq!(embedded_effects.tools(), effects.tools());
    assert_eq!(governance(&embedded_state, &tenant).await, temporal);
}

/// The scenario on the embedded engine, decided the same way.
async fn embedded(engine: &Workflows, state: &Arc<dyn StateStore>, tenant: &TenantId) {
    engine
        .publish(tenant, &scenario::definition())
        .await
        .unwrap();
    let run = engine
        .start(tenant, StartRequest::new("growth", input()).unwrap())
        .await
        .unwrap()
        .run()
        .id
        .clone();
    engine.run_due("w").await.unwrap();
    let plan = common::pending(state.as_ref(), tenant).await;
    let mut edit = ApprovalDecision::approve("maria");
    edit.edited_arguments = Some(json!({"plan": plan.call.arguments["plan"], "budget": 400}));
    engine
        .decide_approval(tenant, &plan.id, &edit)
        .await
        .unwrap();
    engine.run_due("w").await.unwrap();
    for event in [
        lead("f-1", "C-999", 90),
        lead("f-2", "C-100", 86),
        lead("f-2", "C-100", 86),
    ] {
        engine.send_event(tenant, &event).await.unwrap();
    }
    engine.run_due("w").await.unwrap();
    let call: ApprovalId = common::pending(state.as_ref(), tenant).await.id;
    engine
        .decide_approval(tenant, &call, &ApprovalDecision::approve("tom"))
        .await
        .unwrap();
    engine.run_due("w").await.unwrap();
    let done = engine.get_run(tenant, &run).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Done, "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_crm_rolls_the_campaign_back_with_compensation_activities() {
    let Some(server) = common::dev_server("scenario_c_rollback").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let tenant = TenantId::new("spicy-co").unwrap();
    let effects = scenario::Effects::default();
    let run = common::unique("growth");
    let failed = with_worker!(client, state, effects, 99, |queue| {
        agentkit_temporal::start_workflow(
            &client,
            &queue,
            &run,
            GraphRunInput::new("spicy-co", "growth", input()),
        )
        .await
        .unwrap();
        let plan = common::pending(state.as_ref(), &tenant).await;
        agentkit_temporal::decide(
            &client,
            state.clone(),
            &tenant,
            &plan.id,
            &ApprovalDecision::approve("maria"),
        )
        .await
        .unwrap();
        agentkit_temporal::send_event(&client, &run, &lead("f-1", "C-100", 99))
            .await
            .unwrap();
        let call = common::pending(state.as_ref(), &tenant).await;
        agentkit_temporal::decide(
            &client,
            state.clone(),
            &tenant,
            &call.id,
            &ApprovalDecision::approve("tom"),
        )
        .await
        .unwrap();
        // The CRM fails twice (its retry after a durable one-second timer): ROLLBACK.
        agentkit_temporal::workflow_result(&client, &run).await
    });
    let error = failed.unwrap_err().to_string();
    assert!(error.contains("rolled back"), "{error}");
    assert!(error.contains("node `crm` failed"), "{error}");
    assert_eq!(
        effects.tools(),
        vec!["ads.create", "voice.call", "ads.pause"]
    );
    assert_eq!(effects.of("ads.pause"), vec![json!({"ad_id": "ad-C-100"})]);
    let run_id = RunId::new(&run).unwrap();
    let record = state.get_run(&tenant, &run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.error.unwrap().contains("rolled back"));
    let audit = state
        .list_audit(&tenant, &AuditQuery::all().run(run_id))
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.entry.kind == "tool.compensate"),
        "{audit:?}"
    );
    assert!(!audit.iter().any(|e| e.entry.kind == "workflow.snapshot"));
}
