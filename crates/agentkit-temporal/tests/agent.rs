//! An agent run on Temporal against a real dev server: the model and the governed tool calls
//! are activities, the policy asks a person, the decision is recorded in the agentkit store and
//! signalled, the approved call runs exactly once; a rejection runs nothing. The governance
//! records (approvals, executions, usage, audit chain) are in the agentkit store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::agent::Agent;
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{
    ApprovalDecision, ApprovalStatus, ApprovalStore, AuditQuery, AuditStore, InMemoryStore,
    RunStatus, RunStore, StateStore, ToolExecutionStore, UsageKind, UsageQuery, UsageStore,
    verify_audit_chain,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, SideEffect, ToolSpec};
use agentkit_temporal::{AgentRunInput, TemporalAgents};
use serde_json::json;

/// Runs `$flow` (a block that may `.await`, naming the task queue `$queue`) while a worker for
/// `$agent` serves that queue; the worker stops when the block ends.
macro_rules! with_worker {
    ($client:expr, $agent:expr, |$queue:ident| $flow:block) => {{
        let $queue = common::unique("agents");
        let worker = TemporalAgents::new()
            .agent($agent)
            .worker(&$client, &$queue)
            .unwrap();
        common::serve(worker, async { $flow }).await
    }};
}

fn marketing(store: Arc<InMemoryStore>, drafts: Arc<AtomicUsize>, reply: &str) -> Agent {
    let draft = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign_draft",
            "Creates a campaign draft",
            json!({"type": "object", "properties": {"name": {"type": "string"},
                   "budget": {"type": "number"}}, "required": ["name", "budget"]}),
        )
        .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let drafts = drafts.clone();
            async move {
                drafts.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"campaign": "cmp_1", "budget": args["budget"]}))
            }
        },
    );
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call(
            "marketing.create_campaign_draft",
            json!({"name": "Spicy Chips", "budget": 45}),
        ),
        ScriptedResponse::text(reply),
    ]);
    Agent::builder()
        .id("marketing")
        .system_prompt("You run ads.")
        .model(Arc::new(model), "scripted")
        .tool(Arc::new(draft))
        .policy(
            AllowListPolicy::new(["marketing.*"])
                .require_approval_for(["marketing.create_campaign_draft"])
                .into_arc(),
        )
        .store(store)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_runs_once_and_the_records_are_in_the_agentkit_store() {
    let Some(server) = common::dev_server("approved").await else {
        return;
    };
    let store = Arc::new(InMemoryStore::new());
    let drafts = Arc::new(AtomicUsize::new(0));
    let agent = marketing(store.clone(), drafts.clone(), "Draft created, approved.");
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let tenant = TenantId::new("spicy-co").unwrap();
    let run = common::unique("run");
    let out = with_worker!(client, agent, |queue| {
        let input = AgentRunInput::new("spicy-co", "marketing", "s-1", "Sell Spicy Chips");
        agentkit_temporal::start(&client, &queue, &run, input)
            .await
            .unwrap();
        let approval = common::pending(store.as_ref(), &tenant).await.id;
        assert_eq!(
            drafts.load(Ordering::SeqCst),
            0,
            "nothing ran before the approval"
        );
        let state: Arc<dyn StateStore> = store.clone();
        let decided = agentkit_temporal::decide(
            &client,
            state.clone(),
            &tenant,
            &approval,
            &ApprovalDecision::approve("lead@spicy.co"),
        )
        .await
        .unwrap();
        assert_eq!(decided.status, ApprovalStatus::Approved);
        assert_eq!(decided.run.as_str(), run, "the approval is the run's own");
        // A second decision is refused by the store, and signals nothing.
        let again = agentkit_temporal::decide(
            &client,
            state,
            &tenant,
            &approval,
            &ApprovalDecision::reject("someone", "late"),
        )
        .await;
        assert!(again.is_err());
        agentkit_temporal::result(&client, &run).await.unwrap()
    });
    assert_eq!(out.reply, "Draft created, approved.");
    assert_eq!(out.turns, 2);
    assert_eq!(out.tool_calls.len(), 1);
    assert!(!out.tool_calls[0].is_error, "{:?}", out.tool_calls);
    assert_eq!(
        drafts.load(Ordering::SeqCst),
        1,
        "the approved call ran exactly once"
    );

    // The governance records are agentkit's, under the workflow's run id.
    let run_id = RunId::new(&run).unwrap();
    let executions = store.list_tool_executions(&tenant, &run_id).await.unwrap();
    assert_eq!(executions.len(), 1);
    assert!(
        executions[0]
            .idempotency_key
            .as_str()
            .starts_with(&format!("temporal:{run}:"))
    );
    let usage = store
        .list_usage(&tenant, &UsageQuery::all().run(run_id.clone()))
        .await
        .unwrap();
    let tokens = usage
        .iter()
        .filter(|e| e.kind == UsageKind::InputTokens || e.kind == UsageKind::OutputTokens)
        .count();
    assert!(tokens >= 2, "model usage metered per call: {usage:?}");
    assert!(
        usage.iter().any(|e| e.kind == UsageKind::ToolCall),
        "{usage:?}"
    );
    let audit = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    assert!(audit.iter().any(|e| e.entry.run.as_ref() == Some(&run_id)));
    assert_eq!(verify_audit_chain(&audit), Ok(()));
    // The run is listed in the agentkit store, completed, with its answer.
    let record = store.get_run(&tenant, &run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.reply.as_deref(), Some("Draft created, approved."));
    assert_eq!((record.turns, record.tool_calls), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_call_runs_nothing_and_the_model_is_told() {
    let Some(server) = common::dev_server("rejected").await else {
        return;
    };
    let store = Arc::new(InMemoryStore::new());
    let drafts = Arc::new(AtomicUsize::new(0));
    let agent = marketing(store.clone(), drafts.clone(), "Understood, no campaign.");
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let tenant = TenantId::new("spicy-co").unwrap();
    let run = common::unique("run");
    let out = with_worker!(client, agent, |queue| {
        let input = AgentRunInput::new("spicy-co", "marketing", "s-2", "Sell Spicy Chips");
        agentkit_temporal::start(&client, &queue, &run, input)
            .await
            .unwrap();
        let approval = common::pending(store.as_ref(), &tenant).await.id;
        agentkit_temporal::decide(
            &client,
            store.clone(),
            &tenant,
            &approval,
            &ApprovalDecision::reject("lead@spicy.co", "not this week"),
        )
        .await
        .unwrap();
        agentkit_temporal::result(&client, &run).await.unwrap()
    });
    assert_eq!(
        drafts.load(Ordering::SeqCst),
        0,
        "a rejected call never runs"
    );
    assert!(out.tool_calls[0].is_error);
    assert!(
        out.tool_calls[0].result.contains("not this week"),
        "{:?}",
        out.tool_calls
    );
    assert_eq!(out.reply, "Understood, no campaign.");
}

/// The records one scenario leaves in an agentkit store, without ids and times.
async fn records(store: &InMemoryStore, tenant: &TenantId, run: &RunId) -> Vec<String> {
    let mut out = Vec::new();
    let mut usage: Vec<String> = store
        .list_usage(tenant, &UsageQuery::all().run(run.clone()))
        .await
        .unwrap()
        .iter()
        .map(|e| format!("usage {} {} {:?}", e.kind.as_str(), e.quantity, e.resource))
        .collect();
    usage.sort();
    out.extend(usage);
    for e in store.list_tool_executions(tenant, run).await.unwrap() {
        out.push(format!(
            "execution {} {:?} {}",
            e.tool, e.status, e.arguments_hash
        ));
    }
    for e in store
        .list_audit(tenant, &AuditQuery::all().run(run.clone()))
        .await
        .unwrap()
    {
        out.push(format!(
            "audit {} {} {:?}",
            e.entry.kind, e.entry.action, e.entry.decision
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_leaves_the_same_governance_records_as_the_embedded_engine() {
    let Some(server) = common::dev_server("parity").await else {
        return;
    };
    let tenant = TenantId::new("spicy-co").unwrap();
    let approve = ApprovalDecision::approve("lead@spicy.co");

    // Embedded: the agent's own loop, suspended and resumed.
    let embedded = Arc::new(InMemoryStore::new());
    let agent = marketing(embedded.clone(), Arc::default(), "Draft created, approved.");
    let run_a = RunId::new(common::unique("run")).unwrap();
    let out = agent
        .run(
            agentkit_core::agent::RunRequest::new("spicy-co", "s-1", "Sell Spicy Chips")
                .with_run_id(run_a.clone()),
        )
        .await
        .unwrap();
    let approval = out.approvals()[0].id.clone();
    embedded
        .decide_approval(&tenant, &approval, &approve)
        .await
        .unwrap();
    let done = agent.resume(tenant.clone(), &run_a).await.unwrap();
    assert_eq!(done.reply(), Some("Draft created, approved."));

    // Temporal: the same agent definition on its own store.
    let temporal = Arc::new(InMemoryStore::new());
    let agent = marketing(temporal.clone(), Arc::default(), "Draft created, approved.");
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let run_b = common::unique("run");
    let out = with_worker!(client, agent, |queue| {
        let input = AgentRunInput::new("spicy-co", "marketing", "s-1", "Sell Spicy Chips");
        agentkit_temporal::start(&client, &queue, &run_b, input)
            .await
            .unwrap();
        let approval = common::pending(temporal.as_ref(), &tenant).await.id;
        agentkit_temporal::decide(&client, temporal.clone(), &tenant, &approval, &approve)
            .await
            .unwrap();
        agentkit_temporal::result(&client, &run_b).await.unwrap()
    });
    assert_eq!(out.reply, "Draft created, approved.");

    let a = records(&embedded, &tenant, &run_a).await;
    let b = records(&temporal, &tenant, &RunId::new(&run_b).unwrap()).await;
    assert_eq!(a, b, "embedded:\n{a:#?}\ntemporal:\n{b:#?}");
    for kind in [
        "usage input_tokens",
        "usage output_tokens",
        "usage tool_call",
        "execution",
        "audit",
    ] {
        assert!(
            a.iter().any(|r| r.starts_with(kind)),
            "no {kind} record: {a:#?}"
        );
    }
    for store in [&embedded, &temporal] {
        let audit = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
        assert_eq!(verify_audit_chain(&audit), Ok(()));
    }
}

#[test]
fn a_run_input_takes_the_agents_limits() {
    let agent = Agent::builder()
        .id("marketing")
        .model(Arc::new(ScriptedModel::new([])), "scripted")
        .max_turns(3)
        .build()
        .unwrap();
    let input = AgentRunInput::for_agent(&agent, "acme", "s", "hi");
    assert_eq!(input.max_turns, 3);
    assert_eq!(
        input.tool_timeout_secs,
        agent.limits().tool_timeout_secs + 5
    );
    assert_eq!(input.agent, "marketing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tier_runs_on_its_own_queue_and_workers() {
    let Some(server) = common::dev_server("tiers").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let store = Arc::new(InMemoryStore::new());
    let served_by = |who: &str| {
        Agent::builder()
            .id("support")
            .model(
                Arc::new(ScriptedModel::repeating([ScriptedResponse::text(format!(
                    "answered by the {who} workers"
                ))])),
                "scripted",
            )
            .store(store.clone())
            .build()
            .unwrap()
    };
    let suffix = RunId::generate();
    let queues = agentkit_temporal::TaskQueues::new(format!("agents-{suffix}"))
        .tier("enterprise", format!("agents-enterprise-{suffix}"));
    let mut enterprise = TemporalAgents::new()
        .agent(served_by("enterprise"))
        .worker(&client, queues.queue("enterprise"))
        .unwrap();
    // The free tier shares the default queue, braked by the server for every worker of it.
    let mut free = TemporalAgents::new()
        .agent(served_by("default"))
        .max_activities_per_second(20.0)
        .worker(&client, queues.queue("free"))
        .unwrap();
    let (stop_enterprise, stop_free) = (enterprise.shutdown_handle(), free.shutdown_handle());
    let flow = async {
        let mut replies = Vec::new();
        for (tenant, tier) in [("bigco", "enterprise"), ("smallco", "free")] {
            let run = common::unique(tenant);
            let input = AgentRunInput::new(tenant, "support", "s-1", "hello");
            agentkit_temporal::start(&client, queues.queue(tier), &run, input)
                .await
                .unwrap();
            replies.push(
                agentkit_temporal::result(&client, &run)
                    .await
                    .unwrap()
                    .reply,
            );
        }
        stop_enterprise();
        stop_free();
        replies
    };
    let (a, b, replies) = tokio::join!(enterprise.run(), free.run(), flow);
    a.unwrap();
    b.unwrap();
    assert_eq!(
        replies,
        [
            "answered by the enterprise workers",
            "answered by the default workers"
        ]
    );
    assert_eq!(queues.queues().count(), 2);
}
