//! Seed 000, scenario C: end-to-end growth, marketing → voice sales, as one durable workflow.
//!
//! 1. a marketing agent proposes a campaign plan;
//! 2. a human approves the plan (and may edit the budget);
//! 3. the ads tool launches the campaign (compensated by pausing it on rollback);
//! 4. the run WAITS, holding no process, for a lead from the campaign's landing page (an
//!    endpoint trigger: the host's webhook handler sends a `lead.submitted` event correlated by
//!    campaign id);
//! 5. the sales manager's rule qualifies the lead (high intent: score ≥ 70);
//! 6. a human confirms the voice call;
//! 7. the call step: a real `agentkit-voice` session (`call.rs`): the sales agent greets the
//!    lead, hears the answer through VAD → speech-to-text → endpointing, offers the discount,
//!    rates the lead's interest with a governed tool; the call is a governed external tool, so a
//!    replayed step never dials twice;
//! 8. the CRM tool records the qualified lead;
//! 9. the run is archived as an immutable snapshot in the hash-chained audit trail.
//!
//! The seed's split (React Flow + Django-Q for orchestration, LangFlow for reasoning, Django
//! services for effects, a Django security layer for policy) is one durable agentkit workflow
//! here: agent nodes reason, tool nodes act through the governed executor (policy, idempotency,
//! audit), approval and wait-event nodes hold no process, and `on_failure: ROLLBACK` runs the
//! compensations.
//!
//! Used by `examples/seed_000` and by the test `tests/seed_000_scenario_c.rs`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentkit::agent::Agent;
use agentkit::exec::{ToolExecutor, ToolSet};
use agentkit::policy::AllowListPolicy;
use agentkit::store::StateStore;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit::{Error, Result};
use agentkit_workflow::{WorkflowDefinition, WorkflowStore, Workflows};
use serde_json::{Value, json};

/// The workflow, as a host would keep it in a JSON file.
pub const DEFINITION: &str = r#"{
  "id": "growth", "version": 1, "name": "Marketing to voice sales",
  "agent": "growth-ops",
  "start": "propose",
  "inputs": ["campaign_id", "product", "audience", "budget"],
  "on_failure": "ROLLBACK",
  "nodes": [
    {"id": "propose", "kind": "agent", "agent": "marketing",
     "input": "Plan a campaign for ${product} aimed at ${audience}."},
    {"id": "review_plan", "kind": "approval", "reason": "Approve the campaign plan and budget",
     "payload": {"plan": "${propose.reply}", "budget": "${budget}"}},
    {"id": "launch_ads", "kind": "tool", "tool": "ads.create",
     "args": {"campaign": "${campaign_id}", "plan": "${review_plan.payload.plan}",
              "budget": "${review_plan.payload.budget}"},
     "retry": {"max_attempts": 3, "backoff_ms": 1000},
     "compensate": {"tool": "ads.pause", "args": {"ad_id": "${launch_ads.ad_id}"}}},
    {"id": "wait_lead", "kind": "wait_event", "event": "lead.submitted",
     "correlation": "${campaign_id}", "timeout_ms": 604800000, "on_timeout": "archive"},
    {"id": "qualify", "kind": "transform",
     "set": {"high_intent": "${wait_lead.score >= 70}"}},
    {"id": "review_call", "kind": "approval", "reason": "Start a voice call with ${wait_lead.name}?",
     "payload": {"phone": "${wait_lead.phone}", "name": "${wait_lead.name}"}, "priority": "high"},
    {"id": "call", "kind": "tool", "tool": "voice.call",
     "args": {"phone": "${review_call.payload.phone}", "name": "${review_call.payload.name}"}},
    {"id": "crm", "kind": "tool", "tool": "crm.create_lead",
     "args": {"name": "${wait_lead.name}", "phone": "${wait_lead.phone}",
              "interest": "${call.interest}", "campaign": "${campaign_id}"},
     "retry": {"max_attempts": 2, "backoff_ms": 1000}},
    {"id": "archive", "kind": "snapshot", "label": "campaign closed"}
  ],
  "edges": [
    {"from": "propose", "to": "review_plan"},
    {"from": "review_plan", "to": "launch_ads"},
    {"from": "launch_ads", "to": "wait_lead"},
    {"from": "wait_lead", "to": "qualify"},
    {"from": "qualify", "to": "review_call", "when": "high_intent"},
    {"from": "qualify", "to": "archive"},
    {"from": "review_call", "to": "call"},
    {"from": "call", "to": "crm"},
    {"from": "crm", "to": "archive"}
  ]
}"#;

/// What the integrations did, in order ("tool args").
#[derive(Clone, Default)]
pub struct Effects(pub Arc<Mutex<Vec<(String, Value)>>>);

impl Effects {
    pub fn of(&self, tool: &str) -> Vec<Value> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|(t, _)| t == tool)
            .map(|(_, a)| a.clone())
            .collect()
    }

    pub fn tools(&self) -> Vec<String> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().map(|(t, _)| t.clone()).collect()
    }
}

fn integration(
    name: &str,
    side_effect: SideEffect,
    effects: &Effects,
    answer: impl Fn(&Value) -> Result<Value> + Send + Sync + 'static,
) -> Arc<dyn Tool> {
    let effects = effects.clone();
    let tool = name.to_owned();
    let answer = Arc::new(answer);
    Arc::new(FnTool::new(
        ToolSpec::new(
            name,
            format!("{name} (scripted integration)"),
            json!({"type": "object"}),
        )
        .with_side_effect(side_effect),
        move |_ctx, args| {
            let (effects, tool, answer) = (effects.clone(), tool.clone(), answer.clone());
            async move {
                let out = answer(&args)?;
                effects
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((tool, args));
                Ok(out)
            }
        },
    ))
}

/// The `voice.call` tool: a voice session with the lead (see `call.rs`).
fn voice_call(state: Arc<dyn StateStore>, effects: &Effects) -> Arc<dyn Tool> {
    let effects = effects.clone();
    Arc::new(FnTool::new(
        ToolSpec::new(
            "voice.call",
            "Calls a lead and talks with them; returns the transcript and their interest",
            json!({"type": "object", "properties": {"phone": {"type": "string"},
                   "name": {"type": "string"}}, "required": ["phone"]}),
        )
        .with_side_effect(SideEffect::External),
        move |ctx, args| {
            let (effects, state) = (effects.clone(), state.clone());
            async move {
                let out =
                    super::call::phone_call(state, ctx.scope.tenant.clone(), args.clone()).await?;
                effects
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(("voice.call".into(), args));
                Ok(out)
            }
        },
    ))
}

/// The engine with the scenario's integrations and the marketing agent. `crm_failures` makes
/// the CRM fail that many times (enough of them trigger the ROLLBACK variant).
pub fn engine(
    store: Arc<dyn WorkflowStore>,
    state: Arc<dyn StateStore>,
    effects: &Effects,
    crm_failures: usize,
) -> Result<Workflows> {
    let (executor, marketing) = parts(state, effects, crm_failures)?;
    Ok(Workflows::builder(store)
        .executor(executor)
        .agent(marketing)
        .build())
}

/// The scenario's governed executor (its integrations) and its marketing agent, for any
/// engine: the embedded one above, or Temporal (`crates/agentkit-temporal/tests/scenario_c.rs`).
pub fn parts(
    state: Arc<dyn StateStore>,
    effects: &Effects,
    crm_failures: usize,
) -> Result<(ToolExecutor, Agent)> {
    let crm_calls = Arc::new(AtomicUsize::new(0));
    let tools = vec![
        integration("ads.create", SideEffect::External, effects, |args| {
            Ok(json!({"ad_id": format!("ad-{}", args["campaign"].as_str().unwrap_or("?"))}))
        }),
        integration("ads.pause", SideEffect::External, effects, |_| {
            Ok(json!({"paused": true}))
        }),
        voice_call(state.clone(), effects),
        integration("crm.create_lead", SideEffect::Write, effects, move |_| {
            if crm_calls.fetch_add(1, Ordering::SeqCst) < crm_failures {
                return Err(Error::Timeout("the CRM did not answer".into()));
            }
            Ok(json!({"lead_id": "crm-1"}))
        }),
    ];
    let executor = ToolExecutor::builder(ToolSet::new(tools)?, state.clone())
        .policy(AllowListPolicy::allow_all().into_arc())
        .build();
    let marketing = Agent::builder()
        .id("marketing")
        .system_prompt("You plan ad campaigns: headlines and target audience.")
        .model(
            Arc::new(ScriptedModel::repeating([ScriptedResponse::text(
                "Headline: 'Spicy Chips, 20% off your first bag'. Audience: 18-34, snack lovers.",
            )])),
            "scripted",
        )
        .store(state)
        .build()?;
    Ok((executor, marketing))
}

/// The definition.
pub fn definition() -> WorkflowDefinition {
    serde_json::from_str(DEFINITION).unwrap_or_else(|e| panic!("the scenario's definition: {e}"))
}
