//! Traces carry tenant/agent/session/run ids and never a secret; records are redacted.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use agentkit_core::prelude::*;
use agentkit_core::redact::REDACTED;
use agentkit_core::store::AuditQuery;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRET: &str = "4111-1111-1111-1111";

#[tokio::test]
async fn traces_have_ids_and_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let charge = FnTool::new(
        ToolSpec::new(
            "payments.charge",
            "Charges a card",
            json!({"type": "object", "properties": {"card_number": {"type": "string"}, "amount": {"type": "number"}}, "required": ["card_number", "amount"]}),
        )
        .with_side_effect(SideEffect::External)
        .with_redacted(["card_number"]),
        |_ctx, args| async move {
            Ok(json!({"charged": args["amount"], "card_number": args["card_number"]}))
        },
    );
    let model = ScriptedModel::new([
        ScriptedResponse::tool_call(
            "payments.charge",
            json!({"card_number": SECRET, "amount": 12}),
        ),
        ScriptedResponse::text("Charged."),
    ]);
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let agent = Agent::builder()
        .id("billing")
        .model(Arc::new(model), "m")
        .tool(Arc::new(charge))
        .store(store.clone())
        .build()
        .unwrap();
    let out = agent
        .run(RunRequest::new("acme", "sess-42", "charge it"))
        .await
        .unwrap();
    let run = out.run_id().clone();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for span in ["agent.turn", "model.call", "tool.call"] {
        assert!(logs.contains(span), "missing span {span}:\n{logs}");
    }
    assert!(logs.contains("tenant=acme"), "{logs}");
    assert!(logs.contains("agent=billing"), "{logs}");
    assert!(logs.contains("session=sess-42"), "{logs}");
    assert!(logs.contains(&format!("run={run}")), "{logs}");
    assert!(
        !logs.contains(SECRET),
        "a secret reached the traces:\n{logs}"
    );

    let tenant = TenantId::from_static("acme");
    let audit = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    let audit_text = serde_json::to_string(&audit).unwrap();
    assert!(!audit_text.contains(SECRET), "{audit_text}");
    assert!(audit_text.contains(REDACTED));
    let executions = store.list_tool_executions(&tenant, &run).await.unwrap();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].input["card_number"], REDACTED);
    assert_eq!(
        executions[0].output.as_ref().unwrap()["card_number"],
        REDACTED
    );
}
