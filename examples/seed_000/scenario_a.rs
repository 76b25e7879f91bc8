//! Seed 000, scenario A: the marketing agent under a $50/day budget.
//!
//! The user says "Sell Spicy Chips"; the agent reads the ad account's balance and drafts a
//! campaign. The policy engine (the seed's `LT_PolicyEvaluator` and `LT_AgentPermission` with
//! `{"max_daily_budget": 50}`) is the gate after the model reasons and before anything runs:
//! a draft over $40/day waits for a marketing lead's approval, one over $50/day is denied, and
//! the day's drafts together may not pass $50 (reserved atomically in the store, so concurrent
//! agents in many processes cannot overspend).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use agentkit::agent::{Agent, RunOutcome, RunRequest, decide_approval};
use agentkit::id::{AgentId, TenantId};
use agentkit::store::{ApprovalDecision, StateStore};
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit::{Error, Result};
use agentkit_policy::{Period, PolicyEngine, SpendOf};
use serde_json::{Value, json};

/// The agent's permissions and the budget rules (the seed's Agent Permission:
/// `marketing.write`, `budget.read`, `max_daily_budget: 50`).
pub const POLICY: &str = r#"
[tenants.spicy-co]
timezone = "Europe/Berlin"

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

/// The tenant of scenarios A and B.
pub const TENANT: &str = "spicy-co";

/// What happened, for the narrative and the acceptance test.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The approval's reason at the first draft.
    pub approval_reason: String,
    /// The agent's reply after the approval.
    pub after_approval: String,
    /// The tool result the model was shown for the $60 draft.
    pub over_limit: String,
    /// The tool result the model was shown for the $10 draft after $45 was spent.
    pub over_budget: String,
    /// Drafts the ad platform actually received.
    pub drafts_created: Vec<Value>,
    /// Today's reserved spend in USD.
    pub spent_today_usd: f64,
}

fn tools(created: Arc<Mutex<Vec<Value>>>) -> Vec<Arc<dyn Tool>> {
    let balance = FnTool::new(
        ToolSpec::new(
            "budget.get_balance",
            "The ad account's balance in USD",
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
                "required": ["name", "budget"],
                "additionalProperties": false
            }),
        )
        .with_side_effect(SideEffect::External),
        move |_c, args| {
            let created = created.clone();
            async move {
                let mut list = created.lock().map_err(|_| Error::Internal("poisoned".into()))?;
                list.push(args.clone());
                Ok(json!({"campaign_id": format!("cmp_{}", list.len()), "status": "draft",
                          "budget": args["budget"]}))
            }
        },
    );
    vec![Arc::new(balance), Arc::new(draft)]
}

fn agent(
    store: &Arc<dyn StateStore>,
    engine: &PolicyEngine,
    created: &Arc<Mutex<Vec<Value>>>,
    script: Vec<ScriptedResponse>,
) -> Result<Agent> {
    Agent::builder()
        .id("marketing")
        .system_prompt("You run ads for Spicy-Co. Daily budgets are in USD.")
        .model(Arc::new(ScriptedModel::new(script)), "scripted-marketing-1")
        .tools(tools(created.clone()))
        .store(store.clone())
        .policy(Arc::new(engine.clone()))
        .build()
}

fn draft(name: &str, budget: u32) -> ScriptedResponse {
    ScriptedResponse::tool_call(
        "marketing.create_campaign_draft",
        json!({"name": name, "budget": budget}),
    )
}

/// The model's view of the last call of a completed run.
fn last_result(out: &RunOutcome) -> String {
    out.report()
        .and_then(|r| r.tool_calls.last())
        .map(|c| c.result.clone())
        .unwrap_or_default()
}

/// Runs scenario A on `store`, telling `say` what happens.
pub async fn run(store: Arc<dyn StateStore>, say: &dyn Fn(String)) -> Result<Outcome> {
    let engine = PolicyEngine::from_toml(POLICY, store.clone())?.with_audit(store.clone());
    let tenant = TenantId::new(TENANT)?;
    let created: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut outcome = Outcome::default();

    say("The user asks the marketing agent to \"Sell Spicy Chips\".".into());
    let first = agent(
        &store,
        &engine,
        &created,
        vec![
            ScriptedResponse::tool_call("budget.get_balance", json!({})),
            draft("Spicy Chips", 45),
        ],
    )?
    .run(RunRequest::new(
        tenant.clone(),
        "chat-1",
        "Sell Spicy Chips",
    ))
    .await?;
    let RunOutcome::Suspended(suspended) = &first else {
        return Err(Error::Internal(format!(
            "expected an approval, got {first:?}"
        )));
    };
    let approval = &suspended.approvals[0];
    outcome.approval_reason = approval.reason.clone();
    say(format!(
        "It checked the balance and drafted \"Spicy Chips\" at $45/day. Nothing is created yet: {}.",
        approval.reason
    ));

    decide_approval(
        store.as_ref(),
        &tenant,
        &approval.id,
        &ApprovalDecision::approve("lead@spicy.co"),
    )
    .await?;
    let done = agent(
        &store,
        &engine,
        &created,
        vec![ScriptedResponse::text(
            "Draft created, approved by your marketing lead.",
        )],
    )?
    .resume(tenant.clone(), &approval.run)
    .await?;
    outcome.after_approval = done.reply().unwrap_or_default().to_owned();
    say(format!(
        "The marketing lead approved; the agent resumed and said: \"{}\"",
        outcome.after_approval
    ));

    let big = agent(
        &store,
        &engine,
        &created,
        vec![
            draft("Spicy Chips XL", 60),
            ScriptedResponse::text("I can't run $60/day; the limit is $50."),
        ],
    )?
    .run(RunRequest::new(
        tenant.clone(),
        "chat-2",
        "Run a $60/day campaign too",
    ))
    .await?;
    outcome.over_limit = last_result(&big);
    say(format!(
        "A $60/day draft was denied outright, and the model was told why: {}",
        outcome.over_limit
    ));

    let more = agent(
        &store,
        &engine,
        &created,
        vec![
            draft("Retargeting", 10),
            ScriptedResponse::text("Today's $50 budget is used up."),
        ],
    )?
    .run(RunRequest::new(
        tenant.clone(),
        "chat-3",
        "Add a $10/day retargeting campaign",
    ))
    .await?;
    outcome.over_budget = last_result(&more);
    say(format!(
        "A $10/day draft would take today's total past $50, so it was denied: {}",
        outcome.over_budget
    ));

    let spent = engine
        .spend(
            &tenant,
            &SpendOf::Agent(AgentId::new("marketing")?),
            Period::Day,
        )
        .await?;
    outcome.spent_today_usd = spent.nanos() as f64 / 1e9;
    outcome.drafts_created = created
        .lock()
        .map_err(|_| Error::Internal("poisoned".into()))?
        .clone();
    say(format!(
        "The ad platform received {} draft(s); today's reserved budget is ${:.2} of $50.00.",
        outcome.drafts_created.len(),
        outcome.spent_today_usd
    ));
    Ok(outcome)
}
