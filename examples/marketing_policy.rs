//! Run with: `cargo run --example marketing_policy`
//!
//! Seed 000, scenario A, governed by the policy engine: the marketing agent may read the ad
//! balance and create campaign drafts within a $50/day budget (reserved atomically in the
//! store); drafts over $40 need a human's approval; a draft over $50 is denied outright. The
//! model is scripted and the store is in memory, so this runs offline.

use std::sync::Arc;

use agentkit::agent::decide_approval;
use agentkit::prelude::*;
use agentkit::store::{AuditQuery, verify_audit_chain};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_policy::{Period, PolicyEngine, SpendOf};
use serde_json::json;

const POLICY: &str = r#"
[tenants.acme]
timezone = "America/New_York"

[roles.marketer]
permissions = [
  { action = "budget.get_balance" },
  { action = "marketing.create_campaign_draft", constraints = [
      { type = "argument", pointer = "/budget", op = "le", value = 50 },
      { type = "budget", period = "day", limit_usd = 50.0, cost = { argument = "/budget" } },
  ] },
]

[agents.marketing]
roles = ["marketer"]

[[rules]]
action = "marketing.create_campaign_draft"
effect = "require_approval"
reason = "campaigns over $40/day need a marketing lead's approval"
priority = "high"
when = [{ pointer = "/budget", op = "gt", value = 40 }]
"#;

fn tools() -> Vec<Arc<dyn Tool>> {
    let balance = FnTool::new(
        ToolSpec::new(
            "budget.get_balance",
            "Ad account balance in USD",
            json!({"type": "object"}),
        ),
        |_c, _a| async { Ok(json!({"balance_usd": 320.0})) },
    );
    let draft = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign_draft",
            "Creates a campaign draft with a daily budget in USD",
            json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "budget": {"type": "number", "minimum": 1}},
                "required": ["name", "budget"]
            }),
        )
        .with_side_effect(SideEffect::External),
        |_c, args| async move { Ok(json!({"campaign_id": "cmp_001", "status": "draft", "budget": args["budget"]})) },
    );
    vec![Arc::new(balance), Arc::new(draft)]
}

fn agent(
    store: &Arc<dyn StateStore>,
    engine: &PolicyEngine,
    script: Vec<ScriptedResponse>,
) -> Result<Agent> {
    Agent::builder()
        .id("marketing")
        .system_prompt("You run ads. Daily budgets are in USD.")
        .model(Arc::new(ScriptedModel::new(script)), "scripted-marketing-1")
        .tools(tools())
        .store(store.clone())
        .policy(Arc::new(engine.clone()))
        .build()
}

#[tokio::main]
async fn main() -> Result<()> {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let engine = PolicyEngine::from_toml(POLICY, store.clone())?.with_audit(store.clone());
    let tenant = TenantId::from_static("acme");

    println!("1. The user asks for a $80/day campaign: the policy denies it; the model lowers it.");
    let out = agent(
        &store,
        &engine,
        vec![
            ScriptedResponse::tool_call("budget.get_balance", json!({})),
            ScriptedResponse::tool_call(
                "marketing.create_campaign_draft",
                json!({"name": "Spicy Chips", "budget": 80}),
            ),
            ScriptedResponse::tool_call(
                "marketing.create_campaign_draft",
                json!({"name": "Spicy Chips", "budget": 50}),
            ),
        ],
    )?
    .run(RunRequest::new(
        tenant.clone(),
        "session-1",
        "Sell Spicy Chips at $80/day",
    ))
    .await?;
    let RunOutcome::Suspended(s) = &out else {
        return Err(Error::Internal(format!(
            "expected an approval, got {out:?}"
        )));
    };
    for call in &s.tool_calls {
        println!(
            "   {} {} -> {}",
            call.call.name, call.call.arguments, call.result
        );
    }
    let approval = &s.approvals[0];
    println!(
        "2. $50/day needs approval ({:?} priority): {}",
        approval.priority, approval.reason
    );

    decide_approval(
        &*store,
        &tenant,
        &approval.id,
        &ApprovalDecision::approve("lead@acme"),
    )
    .await?;
    let done = agent(
        &store,
        &engine,
        vec![ScriptedResponse::text(
            "Draft created at $50/day, approved by your lead.",
        )],
    )?
    .resume(tenant.clone(), &approval.run)
    .await?;
    println!(
        "3. Approved and resumed: {}",
        done.reply().unwrap_or_default()
    );

    let spent = engine
        .spend(
            &tenant,
            &SpendOf::Agent(AgentId::from_static("marketing")),
            Period::Day,
        )
        .await?;
    println!(
        "4. Today's reserved budget: ${:.2} of $50.00",
        spent.nanos() as f64 / 1e9
    );

    let more = agent(
        &store,
        &engine,
        vec![
            ScriptedResponse::tool_call(
                "marketing.create_campaign_draft",
                json!({"name": "Extra", "budget": 5}),
            ),
            ScriptedResponse::text("The daily budget is used up."),
        ],
    )?
    .run(RunRequest::new(
        tenant.clone(),
        "session-2",
        "One more $5 campaign",
    ))
    .await?;
    if let Some(r) = more.report() {
        for call in &r.tool_calls {
            println!("5. Another $5 draft: {}", call.result);
        }
    }

    let audit = store.list_audit(&tenant, &AuditQuery::all()).await?;
    println!(
        "\naudit trail ({} entries, chain {}):",
        audit.len(),
        if verify_audit_chain(&audit).is_ok() {
            "verified"
        } else {
            "BROKEN"
        }
    );
    for e in &audit {
        println!(
            "  #{:<2} {:<18} {:<34} {:<17} {}",
            e.seq,
            e.entry.kind,
            e.entry.action,
            e.entry.decision.as_deref().unwrap_or("-"),
            e.entry.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
