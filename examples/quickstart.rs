//! Run with: `cargo run --example quickstart`
//!
//! Scenario A of the CRM seed, offline: a marketing agent checks the ad account balance, drafts
//! a campaign, and the campaign creation waits for a human's approval. After the approval a
//! *new* agent over the same store resumes the run. The model is scripted, so this needs no
//! network and no API key.
//!
//! State is kept in SQLite, the embedded default: the file named by `AGENTKIT_DB`, or
//! `examples/quickstart.db` next to this example. Every run starts a new session in it.

use std::sync::Arc;

use agentkit::agent::decide_approval;
use agentkit::prelude::*;
use agentkit::store::{AuditQuery, MessageWindow, UsageQuery, verify_audit_chain};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

fn tools() -> Vec<Arc<dyn Tool>> {
    let balance = FnTool::new(
        ToolSpec::new(
            "budget.get_balance",
            "Returns the ad account balance in USD",
            json!({"type": "object", "properties": {}}),
        ),
        |_ctx, _args| async { Ok(json!({"balance_usd": 320.0})) },
    );
    let campaign = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign_draft",
            "Creates an ad campaign draft",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "budget": {"type": "number", "minimum": 1, "maximum": 50}
                },
                "required": ["name", "budget"],
                "additionalProperties": false
            }),
        )
        .with_side_effect(SideEffect::External),
        |ctx, args| async move {
            Ok(json!({
                "campaign_id": "cmp_001",
                "status": "draft",
                "name": args["name"],
                "daily_budget_usd": args["budget"],
                "idempotency_key": ctx.idempotency_key.as_str(),
            }))
        },
    );
    vec![Arc::new(balance), Arc::new(campaign)]
}

fn agent(store: Arc<dyn StateStore>, model: ScriptedModel) -> Result<Agent> {
    Agent::builder()
        .id("marketing")
        .system_prompt("You are a marketing agent. Stay within a $50/day budget.")
        .model(Arc::new(model), "scripted-marketing-1")
        .tools(tools())
        .store(store)
        .policy(
            AllowListPolicy::new(["budget.*", "marketing.*"])
                .require_approval_for(["marketing.create_campaign_draft"])
                .into_arc(),
        )
        .build()
}

#[tokio::main]
async fn main() -> Result<()> {
    let path = std::env::var("AGENTKIT_DB")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.db").into());
    let sqlite = SqliteStore::open(&path).await.map_err(Error::from)?;
    let store: Arc<dyn StateStore> = Arc::new(sqlite);
    let tenant = TenantId::from("acme");
    let session = SessionId::generate();
    println!("agentkit quickstart — model: scripted (offline), store: SQLite at {path}\n");

    // 1. The user asks; the agent checks the balance and proposes a campaign.
    let first = ScriptedModel::new([
        ScriptedResponse::tool_call("budget.get_balance", json!({})),
        ScriptedResponse::tool_call(
            "marketing.create_campaign_draft",
            json!({"name": "Spicy Chips", "budget": 50}),
        ),
    ]);
    let outcome = agent(store.clone(), first)?
        .run(RunRequest::new(
            tenant.clone(),
            session.clone(),
            "Sell Spicy Chips",
        ))
        .await?;
    let RunOutcome::Suspended(suspension) = &outcome else {
        return Err(Error::Internal(format!(
            "expected an approval request, got {outcome:?}"
        )));
    };
    let approval = &suspension.approvals[0];
    println!("== approval required ==");
    println!(
        "  {} wants {} with {}\n  reason: {}\n  run {} is suspended; nothing has been created yet\n",
        approval.agent, approval.call.name, approval.call.arguments, approval.reason, approval.run
    );

    // 2. A human approves (from the host's approval endpoint, maybe days later).
    decide_approval(
        &*store,
        &tenant,
        &approval.id,
        &ApprovalDecision::approve("alice@acme"),
    )
    .await?;
    println!("== alice@acme approved ==\n");

    // 3. A new agent over the same store resumes exactly where the run stopped.
    let second = ScriptedModel::new([ScriptedResponse::text(
        "Draft \"Spicy Chips\" created with a $50/day budget (campaign cmp_001). Please review it before launch.",
    )]);
    let resumed = agent(store.clone(), second)?
        .resume(tenant.clone(), &approval.run)
        .await?;
    let again = agent(store.clone(), ScriptedModel::new([]))?
        .resume(tenant.clone(), &approval.run)
        .await?;
    println!(
        "a second resume does nothing: {}\n",
        matches!(again, RunOutcome::AlreadyResumed { .. })
    );

    println!("== conversation ==");
    for m in store
        .load_messages(&tenant, &session, MessageWindow::All)
        .await?
    {
        match &m.message {
            Message::Assistant {
                content,
                tool_calls,
            } if !tool_calls.is_empty() => {
                for c in tool_calls {
                    println!("  assistant → {}({})", c.name, c.arguments);
                }
                if !content.is_empty() {
                    println!("  assistant: {content}");
                }
            }
            Message::Tool {
                name,
                content,
                is_error,
                ..
            } => {
                println!(
                    "  tool {name}{}: {content}",
                    if *is_error { " (error)" } else { "" }
                )
            }
            other => println!("  {}: {}", role(other), other.text()),
        }
    }

    let report = resumed
        .report()
        .ok_or_else(|| Error::Internal("the resumed run did not complete".into()))?;
    println!("\n== usage (run {}) ==", report.run);
    println!(
        "  {} model calls, {} input tokens, {} output tokens",
        report.turns, report.usage.input_tokens, report.usage.output_tokens
    );
    for e in store
        .list_usage(&tenant, &UsageQuery::all().run(report.run.clone()))
        .await?
    {
        println!(
            "  {:<14} {:>5}  {}",
            e.kind.as_str(),
            e.quantity,
            e.resource.as_deref().unwrap_or("")
        );
    }

    println!("\n== audit trail (this run) ==");
    let audit = store.list_audit(&tenant, &AuditQuery::all()).await?;
    for e in audit
        .iter()
        .filter(|e| e.entry.run.as_ref() == Some(&report.run))
    {
        println!(
            "  #{} {:<16} {:<22} {:<32} {} {}",
            e.seq,
            e.entry.kind,
            e.entry.actor,
            e.entry.action,
            e.entry.decision.as_deref().unwrap_or("-"),
            e.entry.reason.as_deref().unwrap_or("")
        );
    }
    match verify_audit_chain(&audit) {
        Ok(()) => println!(
            "  hash chain verified ({} entries in the tenant's chain)",
            audit.len()
        ),
        Err(seq) => println!("  hash chain BROKEN at entry {seq}"),
    }
    Ok(())
}

fn role(m: &Message) -> &'static str {
    match m {
        Message::System { .. } => "system",
        Message::User { .. } => "user",
        Message::Assistant { .. } => "assistant",
        Message::Tool { .. } => "tool",
    }
}
