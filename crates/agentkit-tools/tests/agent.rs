//! Tools through the agent: validation messages reach the model, allow-lists limit what the
//! model sees, redaction covers records and traces, recorded results are replayed.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentkit_core::agent::{Agent, RunRequest};
use agentkit_core::id::{IdempotencyKey, RunId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::redact::REDACTED;
use agentkit_core::store::{
    AuditQuery, AuditStore, InMemoryStore, StateStore, ToolExecution, ToolExecutionStatus,
    ToolExecutionStore,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_tools::{
    Allowlist, GovernedTool, SideEffect, Tool, ToolContext, ToolMetadata, ToolRegistry,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[serde(deny_unknown_fields)]
#[tool(name = "crm.create_lead", handler = create_lead, side_effect = "write")]
pub struct CreateLead {
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Budget in dollars, at most 50.
    #[schemars(range(max = 50))]
    pub budget: u32,
}

async fn create_lead(_ctx: ToolContext, lead: CreateLead) -> agentkit_core::Result<Value> {
    Ok(json!({"id": 42, "name": lead.name}))
}

fn tool_messages(requests: &[agentkit_core::model::CompletionRequest]) -> Vec<(String, bool)> {
    requests
        .last()
        .unwrap()
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool {
                content, is_error, ..
            } => Some((content.clone(), *is_error)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn invalid_arguments_reach_the_model_naming_each_failing_field() {
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call(
            "crm.create_lead",
            json!({"name": 7, "budget": 80, "nickname": "Ada"}),
        ),
        ScriptedResponse::text("Sorry."),
    ]));
    let agent = Agent::builder()
        .id("sales")
        .model(model.clone(), "scripted")
        .tool(Arc::new(CreateLeadTool::new()))
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "add Ada"))
        .await
        .unwrap();
    let results = tool_messages(&model.requests());
    assert_eq!(results.len(), 1);
    let (text, is_error) = &results[0];
    assert!(is_error);
    // One line per failing field: wrong type, above the maximum, missing, not allowed.
    for expected in [
        "/name: 7 is not of type \"string\"",
        "/budget: 80 is greater than the maximum of 50",
        "\"email\" is a required property",
        "nickname",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

fn named(name: &str) -> Arc<dyn Tool> {
    Arc::new(
        GovernedTool::from_json(
            ToolMetadata::new(name, format!("The {name} tool")),
            json!({"type": "object"}),
            |_ctx, _args| async move { Ok(json!("ok")) },
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn the_model_sees_only_the_tools_the_allowlist_matches() {
    let registry = ToolRegistry::builder()
        .register(named("crm.lookup_lead"))
        .register(named("crm.notes.add"))
        .register(named("crm.delete_lead"))
        .register(named("billing.refund"))
        .register(named("crm_admin.reset"))
        .build()
        .unwrap();
    assert_eq!(
        registry.namespaces(),
        ["billing", "crm", "crm.notes", "crm_admin"]
    );
    let names = |allow: &[&str]| {
        registry
            .for_agent(&Allowlist::new(allow.iter().copied()))
            .iter()
            .map(|t| t.spec().name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&["crm.*"]),
        ["crm.delete_lead", "crm.lookup_lead", "crm.notes.add"]
    );
    assert_eq!(
        names(&["crm.lookup_lead", "billing.*"]),
        ["billing.refund", "crm.lookup_lead"]
    );
    assert_eq!(names(&["crm.delete_*"]), ["crm.delete_lead"]);
    assert!(names(&["crm"]).is_empty());
    assert_eq!(names(&["*"]).len(), 5);
    let err = registry
        .check_allowlist(&Allowlist::new(["crm.*", "crm.lookup_leads"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("crm.lookup_leads"), "{err}");

    // Through an agent: the model is offered exactly the allowed tools, and a call to another
    // registered tool is refused as unknown.
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("billing.refund", json!({})),
        ScriptedResponse::text("Done."),
    ]));
    let agent = Agent::builder()
        .id("support")
        .model(model.clone(), "scripted")
        .tools(registry.for_agent(&Allowlist::new(["crm.lookup_lead", "crm.notes.*"])))
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "refund"))
        .await
        .unwrap();
    let offered: Vec<String> = model.requests()[0]
        .tools
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(offered, ["crm.lookup_lead", "crm.notes.add"]);
    let (text, is_error) = &tool_messages(&model.requests())[0];
    assert!(is_error);
    assert!(text.starts_with("Unknown tool `billing.refund`"), "{text}");
}

/// A `MakeWriter` collecting formatted tracing output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Charges a card.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(
    name = "billing.charge",
    handler = charge,
    side_effect = "external",
    redact = ["card_number", "/billing/iban", "token"]
)]
pub struct Charge {
    /// Card number.
    pub card_number: String,
    /// Amount in cents.
    pub amount: u64,
    /// Billing details.
    pub billing: Billing,
}

#[derive(Deserialize, JsonSchema)]
pub struct Billing {
    /// Account holder.
    pub holder: String,
    /// Bank account.
    pub iban: String,
}

async fn charge(_ctx: ToolContext, c: Charge) -> agentkit_core::Result<Value> {
    Ok(json!({"charged": c.amount, "token": "tok_SECRET_TOKEN_9"}))
}

#[tokio::test]
async fn redaction_covers_execution_records_audit_and_traces() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Arc::new(InMemoryStore::new());
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call(
            "billing.charge",
            json!({
                "card_number": "4111111111111111",
                "amount": 500,
                "billing": {"holder": "Ada", "iban": "DE89370400440532013000"}
            }),
        ),
        ScriptedResponse::text("Charged."),
    ]));
    let agent = Agent::builder()
        .id("billing")
        .model(model, "scripted")
        .tool(Arc::new(ChargeTool::new()))
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = agent
        .run(RunRequest::new("acme", "s1", "charge Ada"))
        .await
        .unwrap();
    let run = outcome.run_id().clone();
    let tenant = TenantId::from_static("acme");

    let executions = store.list_tool_executions(&tenant, &run).await.unwrap();
    assert_eq!(executions.len(), 1);
    let record = &executions[0];
    assert_eq!(record.status, ToolExecutionStatus::Succeeded);
    assert_eq!(record.input["card_number"], REDACTED);
    assert_eq!(record.input["billing"]["iban"], REDACTED);
    assert_eq!(record.input["billing"]["holder"], "Ada");
    assert_eq!(record.output.as_ref().unwrap()["token"], REDACTED);

    let audit = store
        .list_audit(&tenant, &AuditQuery::all().run(run.clone()))
        .await
        .unwrap();
    let audit_text = serde_json::to_string(&audit).unwrap();

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("tool call") && logs.contains(REDACTED),
        "the tool logs its (redacted) arguments at debug level:\n{logs}"
    );
    for secret in [
        "4111111111111111",
        "DE89370400440532013000",
        "tok_SECRET_TOKEN_9",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into traces:\n{logs}"
        );
        assert!(
            !audit_text.contains(secret),
            "{secret} leaked into the audit trail"
        );
        assert!(
            !serde_json::to_string(record).unwrap().contains(secret),
            "{secret} leaked into the execution record"
        );
    }
}

#[tokio::test]
async fn a_recorded_result_is_replayed_through_the_agent_without_executing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let tool = GovernedTool::from_json(
        ToolMetadata::new("crm.create_lead", "Creates a lead").with_side_effect(SideEffect::Write),
        json!({"type": "object"}),
        move |_ctx, _args| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"id": "fresh"}))
            }
        },
    )
    .unwrap();
    let store = Arc::new(InMemoryStore::new());
    // An earlier attempt of this run (turn 1, call 0) succeeded before the process stopped.
    let run = RunId::generate();
    let key = IdempotencyKey::new(format!("{run}:1:0")).unwrap();
    let done = ToolExecution {
        tenant: TenantId::from_static("acme"),
        idempotency_key: key.clone(),
        agent: agentkit_core::id::AgentId::from_static("sales"),
        session: agentkit_core::id::SessionId::from_static("s1"),
        run: run.clone(),
        call_id: "call_1".into(),
        tool: "crm.create_lead".into(),
        arguments_hash: agentkit_core::redact::hash_json(&json!({})),
        attempt: 1,
        input: json!({}).into(),
        output: Some(json!({"id": "recorded"}).into()),
        error: None,
        status: ToolExecutionStatus::Succeeded,
        started_at: chrono::Utc::now(),
        finished_at: Some(chrono::Utc::now()),
    };
    store
        .record_tool_execution(&done.tenant, &done)
        .await
        .unwrap();

    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("crm.create_lead", json!({})),
        ScriptedResponse::text("ok"),
    ]));
    let agent = Agent::builder()
        .id("sales")
        .model(model.clone(), "scripted")
        .tool(Arc::new(tool))
        .store(store.clone() as Arc<dyn StateStore>)
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "add").with_run_id(run))
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the tool must not run again"
    );
    let (text, _) = &tool_messages(&model.requests())[0];
    assert_eq!(text, r#"{"id":"recorded"}"#);
}
