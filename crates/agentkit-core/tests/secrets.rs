//! A value the tool's redaction rules mask never reaches a record through a side door: a
//! policy's deny or approval reason that quotes it, or a tool error that echoes it.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::policy::{Decision, PolicyEvaluator, PolicyRequest};
use agentkit_core::prelude::*;
use agentkit_core::store::{AuditQuery, MessageWindow};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use async_trait::async_trait;
use serde_json::json;

const CARD: &str = "4111111111111111";

/// Quotes the arguments in its reasons, as a careless policy would.
struct Quoting {
    deny: bool,
}

#[async_trait]
impl PolicyEvaluator for Quoting {
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision> {
        let card = request.arguments["card"].as_str().unwrap_or_default();
        Ok(if self.deny {
            Decision::deny(format!("card {card} is on the block list"))
        } else {
            Decision::require_approval(format!("first charge on card {card}"))
        })
    }
}

fn charge(fail_with_card: bool) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "payments.charge",
            "Charges a card",
            json!({"type": "object", "properties": {"card": {"type": "string"}}}),
        )
        .with_redacted(["card"]),
        move |_ctx, args| async move {
            if fail_with_card {
                Err(Error::Tool(format!(
                    "gateway said: card {} declined",
                    args["card"].as_str().unwrap_or_default()
                )))
            } else {
                Ok(json!("charged"))
            }
        },
    ))
}

/// Everything stored about the call for the tenant, as one string.
async fn everything(st: &Arc<dyn StateStore>) -> String {
    let t = TenantId::from_static("acme");
    let audit = st.list_audit(&t, &AuditQuery::all()).await.unwrap();
    let messages = st
        .load_messages(&t, &SessionId::from_static("s1"), MessageWindow::All)
        .await
        .unwrap();
    let approvals = st.list_pending_approvals(&t).await.unwrap();
    // The model's own tool call carries the card (the model wrote it); what is checked is
    // everything written about it: tool results, audit, approvals' reasons, executions.
    let results: Vec<_> = messages
        .iter()
        .filter(|m| m.message.is_tool_result())
        .collect();
    let mut out = serde_json::to_string(&audit).unwrap();
    out.push_str(&serde_json::to_string(&results).unwrap());
    out.push_str(
        &serde_json::to_string(&approvals.iter().map(|a| &a.reason).collect::<Vec<_>>()).unwrap(),
    );
    for run in audit.iter().filter_map(|e| e.entry.run.clone()) {
        let executions = st.list_tool_executions(&t, &run).await.unwrap();
        out.push_str(&serde_json::to_string(&executions).unwrap());
    }
    out
}

async fn run(
    policy: Arc<dyn PolicyEvaluator>,
    tool: Arc<dyn Tool>,
) -> (Arc<dyn StateStore>, ScriptedModel) {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("payments.charge", json!({"card": CARD})),
        ScriptedResponse::text("done"),
    ]);
    Agent::builder()
        .id("billing")
        .model(Arc::new(model.clone()), "m")
        .tool(tool)
        .store(st.clone())
        .policy(policy)
        .build()
        .unwrap()
        .run(RunRequest::new("acme", "s1", "charge it"))
        .await
        .unwrap();
    (st, model)
}

#[tokio::test]
async fn a_deny_reason_quoting_a_redacted_argument_is_scrubbed() {
    let (st, _) = run(Arc::new(Quoting { deny: true }), charge(false)).await;
    let stored = everything(&st).await;
    assert!(!stored.contains(CARD), "{stored}");
    assert!(
        stored.contains("card [REDACTED] is on the block list"),
        "{stored}"
    );
}

#[tokio::test]
async fn an_approval_reason_quoting_a_redacted_argument_is_scrubbed() {
    let (st, _) = run(Arc::new(Quoting { deny: false }), charge(false)).await;
    let stored = everything(&st).await;
    assert!(!stored.contains(CARD), "{stored}");
    assert!(
        stored.contains("first charge on card [REDACTED]"),
        "{stored}"
    );
}

#[tokio::test]
async fn a_tool_error_echoing_a_redacted_argument_is_scrubbed() {
    let (st, model) = run(AllowListPolicy::allow_all().into_arc(), charge(true)).await;
    let stored = everything(&st).await;
    assert!(!stored.contains(CARD), "{stored}");
    assert!(
        stored.contains("gateway said: card [REDACTED] declined"),
        "{stored}"
    );
    let told = model.requests()[1]
        .messages
        .last()
        .unwrap()
        .text()
        .to_owned();
    assert!(!told.contains(CARD), "{told}");
}
