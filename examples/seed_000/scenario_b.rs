//! Seed 000, scenario B: invoice reminders on a schedule.
//!
//! Every morning at 08:00 (Berlin) a scheduled workflow runs the invoice agent: it lists the
//! invoices more than 7 days overdue that have no reminder yet, drafts a reminder for each and
//! posts one Slack alert ("3 invoices overdue…"). A reminder above $1,000 is not sent until a
//! person approves it: the policy gate holds that one call, the workflow waits durably (no
//! process held), and the approval continues the same agent run. The seed's `Django-Q` cron and
//! `LT_Trigger(type=cron)` are agentkit's `Scheduler` (one run per slot, however many scheduler
//! processes tick, with a catch-up rule for slots missed while down) over a durable workflow.
//!
//! The agent's model here is a small deterministic stand-in that reads the conversation (list,
//! then draft, then alert), so the scenario runs offline and repeatably.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use agentkit::agent::Agent;
use agentkit::exec::{ToolExecutor, ToolSet};
use agentkit::id::{RunId, TenantId};
use agentkit::message::{Message, ToolCall, Usage};
use agentkit::model::{CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities};
use agentkit::store::{ApprovalDecision, StateStore};
use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit::{Error, Result, async_trait};
use agentkit_policy::PolicyEngine;
use agentkit_workflow::clock::{Clock, ManualClock};
use agentkit_workflow::{
    CatchUp, RunQuery, RunState, Schedule, ScheduledWorkflow, Scheduler, WorkflowDefinition,
    WorkflowStore, Workflows,
};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::{Value, json};

/// The invoice agent's permissions: read invoices, draft reminders (over $1,000 with a
/// person's approval), alert on Slack.
pub const POLICY: &str = r#"
[tenants.spicy-co]
timezone = "Europe/Berlin"

[roles.collections]
permissions = [
  { action = "billing.list_overdue_invoices" },
  { action = "billing.draft_reminder" },
  { action = "slack.send_alert" },
]

[agents.invoices]
roles = ["collections"]

[[rules]]
action = "billing.draft_reminder"
effect = "require_approval"
reason = "reminders over $1,000 go out only after finance approves them"
priority = "medium"
when = [{ pointer = "/amount", op = "gt", value = 1000 }]
"#;

/// The scheduled workflow: one agent node.
pub const WORKFLOW: &str = r#"{
  "id": "invoice_alerts", "version": 1, "name": "Overdue invoice alerts",
  "start": "check", "inputs": ["schedule"],
  "nodes": [{"id": "check", "kind": "agent", "agent": "invoices",
             "input": "Daily overdue-invoice check for ${schedule.slot}"}]
}"#;

/// One invoice in the CRM.
#[derive(Debug, Clone)]
pub struct Invoice {
    /// Its number.
    pub id: &'static str,
    /// The customer.
    pub customer: &'static str,
    /// Amount due, USD.
    pub amount: u32,
    /// Due date.
    pub due: NaiveDate,
}

/// The CRM's invoices and what the agent did with them.
#[derive(Default)]
pub struct Crm {
    invoices: Vec<Invoice>,
    /// Reminders drafted, by invoice id, in order.
    pub reminders: Mutex<Vec<String>>,
    /// Slack alerts posted.
    pub alerts: Mutex<Vec<String>>,
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

impl Crm {
    /// Four invoices: three already more than 7 days overdue on 7 December 2026, one that will
    /// be on the 9th.
    pub fn sample() -> Self {
        Self {
            invoices: vec![
                Invoice {
                    id: "INV-101",
                    customer: "Chip Shack",
                    amount: 250,
                    due: date(2026, 11, 20),
                },
                Invoice {
                    id: "INV-102",
                    customer: "Snack Palace",
                    amount: 1800,
                    due: date(2026, 11, 24),
                },
                Invoice {
                    id: "INV-103",
                    customer: "Corner Deli",
                    amount: 90,
                    due: date(2026, 11, 27),
                },
                Invoice {
                    id: "INV-104",
                    customer: "Movie Nights",
                    amount: 500,
                    due: date(2026, 12, 1),
                },
            ],
            ..Self::default()
        }
    }

    fn overdue(&self, today: NaiveDate, days: i64) -> Result<Vec<Value>> {
        let reminded = self
            .reminders
            .lock()
            .map_err(|_| Error::Internal("poisoned".into()))?;
        Ok(self
            .invoices
            .iter()
            .filter(|i| (today - i.due).num_days() > days && !reminded.iter().any(|r| r == i.id))
            .map(|i| {
                json!({"invoice": i.id, "customer": i.customer, "amount": i.amount,
                            "days_overdue": (today - i.due).num_days()})
            })
            .collect())
    }
}

fn tools(crm: Arc<Crm>, clock: Arc<ManualClock>) -> Vec<Arc<dyn Tool>> {
    let list = {
        let crm = crm.clone();
        FnTool::new(
            ToolSpec::new(
                "billing.list_overdue_invoices",
                "Invoices more than `days` days overdue without a reminder",
                json!({"type": "object", "properties": {"days": {"type": "integer", "minimum": 1}},
                       "required": ["days"]}),
            ),
            move |_c, args| {
                let (crm, clock) = (crm.clone(), clock.clone());
                async move {
                    let today = clock.now().with_timezone(&Berlin).date_naive();
                    let days = args["days"].as_i64().unwrap_or(7);
                    Ok(json!({"invoices": crm.overdue(today, days)?}))
                }
            },
        )
    };
    let draft = {
        let crm = crm.clone();
        FnTool::new(
            ToolSpec::new(
                "billing.draft_reminder",
                "Drafts a payment reminder for an invoice",
                json!({"type": "object", "properties": {
                    "invoice": {"type": "string"}, "customer": {"type": "string"},
                    "amount": {"type": "number"}}, "required": ["invoice", "customer", "amount"]}),
            )
            .with_side_effect(SideEffect::Write),
            move |_c, args| {
                let crm = crm.clone();
                async move {
                    let invoice = args["invoice"].as_str().unwrap_or_default().to_owned();
                    crm.reminders
                        .lock()
                        .map_err(|_| Error::Internal("poisoned".into()))?
                        .push(invoice.clone());
                    Ok(json!({"reminder": format!("rem-{invoice}"), "status": "queued"}))
                }
            },
        )
    };
    let alert = FnTool::new(
        ToolSpec::new(
            "slack.send_alert",
            "Posts an alert to the finance channel",
            json!({"type": "object", "properties": {"msg": {"type": "string"}}, "required": ["msg"]}),
        )
        .with_side_effect(SideEffect::External),
        move |_c, args| {
            let crm = crm.clone();
            async move {
                crm.alerts
                    .lock()
                    .map_err(|_| Error::Internal("poisoned".into()))?
                    .push(args["msg"].as_str().unwrap_or_default().to_owned());
                Ok(json!({"posted": true}))
            }
        },
    );
    vec![Arc::new(list), Arc::new(draft), Arc::new(alert)]
}

/// A deterministic model for the invoice agent: list → draft one reminder per invoice → one
/// alert → a summary.
pub struct InvoiceModel;

fn result_of(messages: &[Message], tool: &str) -> Option<Value> {
    messages.iter().rev().find_map(|m| match m {
        Message::Tool { name, content, .. } if name == tool => {
            Some(serde_json::from_str(content).unwrap_or(Value::Null))
        }
        _ => None,
    })
}

#[async_trait]
impl LlmProvider for InvoiceModel {
    fn name(&self) -> &str {
        "invoice-rules"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(false, true, false)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let m = &request.messages;
        let usage = Usage {
            input_tokens: 120,
            output_tokens: 30,
            ..Usage::default()
        };
        let Some(list) = result_of(m, "billing.list_overdue_invoices") else {
            let call = ToolCall::new(
                "c-list",
                "billing.list_overdue_invoices",
                json!({"days": 7}),
            );
            return Ok(CompletionResponse::new("", vec![call], usage));
        };
        let invoices = list["invoices"].as_array().cloned().unwrap_or_default();
        if invoices.is_empty() {
            return Ok(CompletionResponse::new(
                "No invoices are newly overdue.",
                vec![],
                usage,
            ));
        }
        if result_of(m, "billing.draft_reminder").is_none() {
            let calls = invoices
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    ToolCall::new(
                        format!("c-draft-{n}"),
                        "billing.draft_reminder",
                        json!({"invoice": i["invoice"], "customer": i["customer"], "amount": i["amount"]}),
                    )
                })
                .collect();
            return Ok(CompletionResponse::new("", calls, usage));
        }
        if result_of(m, "slack.send_alert").is_none() {
            let total: f64 = invoices.iter().filter_map(|i| i["amount"].as_f64()).sum();
            let msg = format!(
                "{} invoice(s) more than 7 days overdue (${total:.0}); reminders drafted.",
                invoices.len()
            );
            let call = ToolCall::new("c-alert", "slack.send_alert", json!({"msg": msg}));
            return Ok(CompletionResponse::new("", vec![call], usage));
        }
        Ok(CompletionResponse::new(
            format!(
                "Found {} overdue invoice(s); reminders drafted and finance alerted.",
                invoices.len()
            ),
            vec![],
            usage,
        ))
    }
}

/// What happened, for the narrative and the acceptance test.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Runs started by the schedule, with their local start time and final state.
    pub runs: Vec<(String, RunState)>,
    /// The approval requests (invoice ids) and their reasons.
    pub approvals: Vec<(String, String)>,
    /// Reminders drafted, in order.
    pub reminders: Vec<String>,
    /// Slack alerts.
    pub alerts: Vec<String>,
    /// Slots a second scheduler process tried and found already started.
    pub duplicate_slots: usize,
    /// The agent runs the checks made (the run log: each has its messages, tool executions,
    /// usage and audit entries in the state store).
    pub agent_runs: Vec<RunId>,
}

fn berlin(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Runs scenario B on `state` and `workflows` over three simulated mornings.
pub async fn run(
    state: Arc<dyn StateStore>,
    workflows: Arc<dyn WorkflowStore>,
    say: &dyn Fn(String),
) -> Result<Outcome> {
    let tenant = TenantId::new(super::scenario_a::TENANT)?;
    let clock = Arc::new(ManualClock::new(berlin(2026, 12, 7, 7)));
    let crm = Arc::new(Crm::sample());
    let policy = PolicyEngine::from_toml(POLICY, state.clone())?.with_audit(state.clone());
    let agent = Agent::builder()
        .id("invoices")
        .system_prompt("You chase overdue invoices politely. Alert finance once per check.")
        .model(Arc::new(InvoiceModel), "invoice-rules-1")
        .tools(tools(crm.clone(), clock.clone()))
        .policy(Arc::new(policy))
        .store(state.clone())
        .build()?;
    let engine = Workflows::builder(workflows)
        .executor(ToolExecutor::builder(ToolSet::default(), state.clone()).build())
        .agent(agent)
        .clock(clock.clone())
        .build();
    let definition: WorkflowDefinition = serde_json::from_str(WORKFLOW)?;
    engine.publish(&tenant, &definition).await?;
    let schedule = || -> Result<Scheduler> {
        let mut s = Scheduler::new(engine.clone());
        s.add(
            ScheduledWorkflow::new(
                "invoice-alerts",
                tenant.clone(),
                "invoice_alerts",
                Schedule::cron("0 8 * * *", "Europe/Berlin")?,
            )?
            .catch_up(CatchUp::RunOnce),
        )?;
        Ok(s)
    };
    // Two scheduler processes tick the same schedule: each slot still starts one run.
    let (first, second) = (schedule()?, schedule()?);
    let mut outcome = Outcome::default();
    say("A cron schedule runs the invoice agent every morning at 08:00 (Berlin).".into());
    let end = berlin(2026, 12, 9, 12);
    while clock.now() < end {
        let (a, b) = tokio::join!(first.tick(), second.tick());
        for fired in a?.into_iter().chain(b?) {
            if !fired.created.is_new() {
                outcome.duplicate_slots += 1;
                continue;
            }
            let local = fired.slot.with_timezone(&Berlin).format("%a %d %b %H:%M");
            say(format!("{local}: the schedule started a check."));
            if fired.caught_up {
                say("  (a slot missed while no scheduler ran, caught up)".into());
            }
        }
        engine.run_due("worker-1").await?;
        for pending in state.list_pending_approvals(&tenant).await? {
            let invoice = pending.call.arguments["invoice"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            say(format!(
                "  the reminder for {invoice} (${}) waits for finance: {}",
                pending.call.arguments["amount"], pending.reason
            ));
            outcome.approvals.push((invoice, pending.reason.clone()));
            engine
                .decide_approval(
                    &tenant,
                    &pending.id,
                    &ApprovalDecision::approve("finance@spicy.co"),
                )
                .await?;
            say("  finance approved it; the same run continued.".into());
            engine.run_due("worker-1").await?;
        }
        let alerts = crm
            .alerts
            .lock()
            .map_err(|_| Error::Internal("poisoned".into()))?
            .clone();
        for alert in &alerts[outcome.alerts.len()..] {
            say(format!("  Slack: \"{alert}\""));
        }
        outcome.alerts = alerts;
        clock.advance(TimeDelta::minutes(30));
    }
    for run in engine.list_runs(&tenant, &RunQuery::default()).await? {
        let local = run
            .created_at
            .with_timezone(&Berlin)
            .format("%a %d %b %H:%M")
            .to_string();
        outcome.runs.push((local, run.state));
        for step in engine.steps(&tenant, &run.id).await? {
            if let Some(agent_run) = step.input["run"].as_str() {
                let agent_run: RunId = agent_run.parse()?;
                if !outcome.agent_runs.contains(&agent_run) {
                    outcome.agent_runs.push(agent_run);
                }
            }
        }
    }
    outcome.runs.sort_by(|a, b| a.0.cmp(&b.0));
    outcome.reminders = crm
        .reminders
        .lock()
        .map_err(|_| Error::Internal("poisoned".into()))?
        .clone();
    say(format!(
        "{} checks ran ({} done), one per slot although two scheduler processes ticked ({} duplicate starts refused); reminders drafted for {}.",
        outcome.runs.len(),
        outcome
            .runs
            .iter()
            .filter(|r| r.1 == RunState::Done)
            .count(),
        outcome.duplicate_slots,
        outcome.reminders.join(", ")
    ));
    Ok(outcome)
}
