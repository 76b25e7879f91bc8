//! Compensation: rollback undoes a run's effects newest first, exactly once each.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agentkit_core::agent::{Agent, RunRequest};
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::message::ToolCall;
use agentkit_core::store::{AuditQuery, AuditStore, InMemoryStore, ToolExecutionStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{SideEffect, ToolContext};
use agentkit_core::{Error, ErrorKind};
use agentkit_tools::{
    Allowlist, Compensation, GovernedTool, RegisteredTool, RollbackOutcome, Tool, ToolMetadata,
    ToolRegistry, rollback,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

fn tool(
    meta: ToolMetadata,
    log: &Log,
    fail: Option<Arc<AtomicBool>>,
    output: impl Fn(&Value) -> Value + Send + Sync + 'static,
) -> GovernedTool {
    let log = log.clone();
    let output = Arc::new(output);
    let name = meta.name.clone();
    GovernedTool::from_json(meta, json!({"type": "object"}), move |_ctx, args| {
        let log = log.clone();
        let output = output.clone();
        let name = name.clone();
        let fail = fail.clone();
        async move {
            if fail.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                return Err(Error::Tool(format!("{name} is down")));
            }
            log.lock().unwrap().push(format!("{name} {args}"));
            Ok(output(&args))
        }
    })
    .unwrap()
}

/// Logs a note on a lead (no undo declared).
#[derive(Deserialize, JsonSchema, agentkit_tools::Tool)]
#[tool(name = "crm.log_note", handler = log_note, side_effect = "write")]
pub struct LogNote {
    /// The note.
    pub text: String,
}

async fn log_note(_ctx: ToolContext, _n: LogNote) -> agentkit_core::Result<Value> {
    Ok(json!({"note": "n-1"}))
}

struct Fixture {
    registry: ToolRegistry,
    log: Log,
    delete_campaign_fails: Arc<AtomicBool>,
}

fn fixture() -> Fixture {
    let log: Log = Arc::default();
    let fails = Arc::new(AtomicBool::new(false));
    let write = |name: &str| ToolMetadata::new(name, name).with_side_effect(SideEffect::Write);
    let registry =
        ToolRegistry::builder()
            .register(tool(
                write("marketing.create_list").with_compensation(
                    Compensation::new("marketing.delete_list").pointer("list_id", "/output/id"),
                ),
                &log,
                None,
                |_| json!({"id": "l-1"}),
            ))
            .register(tool(
                write("marketing.create_campaign")
                    .with_side_effect(SideEffect::External)
                    .with_redacted(["budget_card"])
                    .with_compensation(
                        Compensation::new("marketing.delete_campaign")
                            .pointer("campaign_id", "/output/id")
                            .pointer("list", "/input/list_id")
                            .constant("reason", json!("rollback")),
                    ),
                &log,
                None,
                |args| json!({"id": format!("c-for-{}", args["list_id"].as_str().unwrap_or("?"))}),
            ))
            .register(tool(
                ToolMetadata::new("crm.lookup", "Looks up"),
                &log,
                None,
                |_| json!({"lead": 1}),
            ))
            .register(RegisteredTool::from(LogNoteTool::new()).with_compensation(
                Compensation::new("crm.delete_note").pointer("id", "/output/note"),
            ))
            .register(tool(write("crm.delete_note"), &log, None, |_| {
                json!("deleted")
            }))
            .register(tool(write("marketing.delete_list"), &log, None, |_| {
                json!("deleted")
            }))
            .register(tool(
                write("marketing.delete_campaign"),
                &log,
                Some(fails.clone()),
                |_| json!("deleted"),
            ))
            .build()
            .unwrap();
    Fixture {
        registry,
        log,
        delete_campaign_fails: fails,
    }
}

/// Runs a marketing agent that creates a list, then (in one turn) a campaign and a lookup, then
/// a note; returns the run id.
async fn run_agent(f: &Fixture, store: &Arc<InMemoryStore>) -> RunId {
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("marketing.create_list", json!({"name": "spring"})),
        ScriptedResponse::tool_calls([
            ToolCall::new(
                "c2",
                "marketing.create_campaign",
                json!({"list_id": "l-1", "budget_card": "4111"}),
            ),
            ToolCall::new("c3", "crm.lookup", json!({})),
        ]),
        ScriptedResponse::tool_call("crm.log_note", json!({"text": "campaign created"})),
        ScriptedResponse::text("Campaign ready."),
    ]));
    let agent = Agent::builder()
        .id("marketing")
        .model(model, "scripted")
        .tools(f.registry.for_agent(&Allowlist::new([
            "marketing.create_*",
            "crm.lookup",
            "crm.log_note",
        ])))
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = agent
        .run(RunRequest::new("acme", "s1", "launch the spring campaign"))
        .await
        .unwrap();
    assert_eq!(outcome.reply(), Some("Campaign ready."));
    outcome.run_id().clone()
}

/// Rolls `run` back through the registry's executor over `store` (the host's governed path).
async fn undo(
    f: &Fixture,
    store: &Arc<InMemoryStore>,
    run: &RunId,
) -> agentkit_core::Result<agentkit_tools::RollbackReport> {
    let executor = f.registry.executor(store.clone()).build();
    rollback(&executor, &TenantId::from_static("acme"), run, &f.registry).await
}

#[tokio::test]
async fn rollback_runs_compensations_newest_first_and_once() {
    let f = fixture();
    let store = Arc::new(InMemoryStore::new());
    let run = run_agent(&f, &store).await;
    let tenant = TenantId::from_static("acme");
    f.log.lock().unwrap().clear();

    let report = undo(&f, &store, &run).await.unwrap();
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(
        report.ran(),
        [
            "crm.delete_note",
            "marketing.delete_campaign",
            "marketing.delete_list"
        ]
    );
    assert_eq!(
        report
            .steps
            .iter()
            .map(|s| s.tool.as_str())
            .collect::<Vec<_>>(),
        [
            "crm.log_note",
            "marketing.create_campaign",
            "marketing.create_list"
        ],
        "read-only calls have nothing to undo"
    );
    assert_eq!(
        *f.log.lock().unwrap(),
        [
            r#"crm.delete_note {"id":"n-1"}"#,
            r#"marketing.delete_campaign {"campaign_id":"c-for-l-1","list":"l-1","reason":"rollback"}"#,
            r#"marketing.delete_list {"list_id":"l-1"}"#,
        ]
    );

    // Each compensation is recorded under its own key and audited.
    let executions = store.list_tool_executions(&tenant, &run).await.unwrap();
    let keys: Vec<&str> = executions
        .iter()
        .map(|e| e.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(":compensate")).count(),
        3
    );
    let audited = store
        .list_audit(&tenant, &AuditQuery::all().kind("tool.compensation"))
        .await
        .unwrap();
    assert_eq!(audited.len(), 3);

    // Running it again replays: nothing runs twice.
    let again = undo(&f, &store, &run).await.unwrap();
    assert!(again.is_complete());
    assert!(again.ran().is_empty());
    assert!(
        again
            .steps
            .iter()
            .all(|s| matches!(s.outcome, RollbackOutcome::AlreadyCompensated(_)))
    );
    assert_eq!(f.log.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failing_compensation_stops_the_rollback_until_it_is_run_again() {
    let f = fixture();
    let store = Arc::new(InMemoryStore::new());
    let run = run_agent(&f, &store).await;
    f.delete_campaign_fails.store(true, Ordering::SeqCst);

    let report = undo(&f, &store, &run).await.unwrap();
    assert!(!report.is_complete());
    let outcomes: Vec<&RollbackOutcome> = report.steps.iter().map(|s| &s.outcome).collect();
    assert!(matches!(outcomes[0], RollbackOutcome::Compensated(_)));
    assert!(
        matches!(outcomes[1], RollbackOutcome::Failed(e) if e.contains("marketing.delete_campaign is down")),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[2],
        &RollbackOutcome::NotRun,
        "the list is kept while its campaign exists"
    );

    f.delete_campaign_fails.store(false, Ordering::SeqCst);
    let report = undo(&f, &store, &run).await.unwrap();
    assert!(report.is_complete());
    assert_eq!(
        report.ran(),
        ["marketing.delete_campaign", "marketing.delete_list"]
    );
}

#[test]
fn a_compensation_cannot_read_a_redacted_field_or_a_missing_tool() {
    let log: Log = Arc::default();
    let create = |comp: Compensation| {
        tool(
            ToolMetadata::new("billing.create_card", "Stores a card")
                .with_side_effect(SideEffect::Write)
                .with_redacted(["card_id"])
                .with_compensation(comp),
            &log,
            None,
            |_| json!({"card_id": "k-1"}),
        )
    };
    let delete = tool(
        ToolMetadata::new("billing.delete_card", "Deletes a card"),
        &log,
        None,
        |_| json!(null),
    );
    let err = ToolRegistry::builder()
        .register(create(
            Compensation::new("billing.delete_card").pointer("id", "/output/card_id"),
        ))
        .register(delete.clone())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string()
            .contains("reads `/output/card_id`, which the redaction rule `card_id` masks"),
        "{err}"
    );
    let err = ToolRegistry::builder()
        .register(create(Compensation::new("billing.forget_card")))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`billing.forget_card` is not registered"),
        "{err}"
    );
    assert_eq!(delete.spec().name, "billing.delete_card");
}
