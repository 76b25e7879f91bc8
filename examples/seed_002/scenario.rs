//! Seed 002: a scheduled CRM agent — five agent types on their schedules, each run assembling the
//! customer's context before the model is called, every run logged.
//!
//! | agent | when (Europe/Berlin) | who |
//! |---|---|---|
//! | REMINDER | 09:00 daily | users with open tasks |
//! | FOLLOW_UP | 13:00 daily | every active user |
//! | CLOSURE | 16:00 daily | users with a deal in negotiation |
//! | NURTURE | 11:00 every 2 days | leads |
//! | UPSELL | 10:00 Mondays | customers on the basic plan |
//!
//! The seed's APScheduler jobs are agentkit's [`Scheduler`]: each slot starts one durable
//! workflow run by trigger key, however many scheduler processes tick (two do here), and slots
//! missed while the service was down are caught up by each schedule's rule. The run's one step
//! (`agents.run_scheduled`, a governed tool) finds the eligible users and runs the agent for each
//! with the user in the run's metadata; the agent's [`ContextSource`] assembles that user's
//! business profile, open tasks and recent communications (the seed's "fetch business profile,
//! get recent context") into the prompt before the model is called; the agent records the
//! communication with a governed tool. Each user's agent run has an id derived from the slot
//! and the user, so a replayed step never messages anyone twice. The seed's `AgentRun` log is the
//! workflow's run and step log plus each agent run's record (see [`run_log`]).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use agentkit::agent::{Agent, ContextRequest, FnContext, RunOutcome, RunRequest};
use agentkit::exec::{ToolExecutor, ToolSet};
use agentkit::id::{RunId, TenantId};
use agentkit::message::{Message, ToolCall, Usage};
use agentkit::model::{CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities};
use agentkit::policy::AllowListPolicy;
use agentkit::store::StateStore;
use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit::{Error, Result, async_trait};
use agentkit_workflow::clock::{Clock, ManualClock};
use agentkit_workflow::{
    CatchUp, RunQuery, RunState, Schedule, ScheduledWorkflow, Scheduler, WorkflowDefinition,
    WorkflowStore, Workflows,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::{Value, json};

/// The tenant.
pub const TENANT: &str = "acme-crm";

/// The five agent types: id, schedule, catch-up rule.
pub const KINDS: [&str; 5] = ["reminder", "follow_up", "closure", "nurture", "upsell"];

/// A user's business profile and pipeline (the seed's `BusinessProfile` and `Task`).
#[derive(Debug, Clone)]
pub struct Customer {
    /// User id.
    pub id: &'static str,
    /// Business.
    pub business: &'static str,
    /// Products.
    pub products: &'static [&'static str],
    /// Tone of voice.
    pub tone: &'static str,
    /// Daily goal.
    pub daily_goal: &'static str,
    /// `lead` or `customer`.
    pub stage: &'static str,
    /// `basic` or `pro` for customers.
    pub plan: &'static str,
    /// A deal in negotiation.
    pub negotiating: bool,
    /// Opted out of messages.
    pub opted_out: bool,
    /// Open tasks.
    pub tasks: &'static [&'static str],
}

/// One communication sent (the seed's `Communications`).
#[derive(Debug, Clone, PartialEq)]
pub struct Communication {
    /// To whom.
    pub user: String,
    /// Which agent.
    pub kind: String,
    /// The message.
    pub message: String,
}

/// The CRM the agents read and write.
#[derive(Default)]
pub struct Crm {
    /// Users.
    pub customers: Vec<Customer>,
    /// Messages sent, in order.
    pub sent: Mutex<Vec<Communication>>,
}

impl Crm {
    /// Four users: a bakery lead, a gym customer on basic, a florist in negotiation, and one who
    /// opted out.
    pub fn sample() -> Self {
        let c = |id, business, products, tone, goal, stage, plan, negotiating, opted_out, tasks| {
            Customer {
                id,
                business,
                products,
                tone,
                daily_goal: goal,
                stage,
                plan,
                negotiating,
                opted_out,
                tasks,
            }
        };
        Self {
            customers: vec![
                c(
                    "u-bella",
                    "Bella's Bakery",
                    &["sourdough", "croissants"],
                    "warm",
                    "10 new orders",
                    "lead",
                    "",
                    false,
                    false,
                    &["send price list"],
                ),
                c(
                    "u-iron",
                    "Iron Gym",
                    &["memberships"],
                    "energetic",
                    "5 sign-ups",
                    "customer",
                    "basic",
                    false,
                    false,
                    &[],
                ),
                c(
                    "u-flora",
                    "Flora Flowers",
                    &["bouquets"],
                    "elegant",
                    "3 weddings",
                    "customer",
                    "pro",
                    true,
                    false,
                    &["confirm wedding quote"],
                ),
                c(
                    "u-gone",
                    "Gone Corp",
                    &["widgets"],
                    "plain",
                    "-",
                    "lead",
                    "",
                    false,
                    true,
                    &["call back"],
                ),
            ],
            ..Self::default()
        }
    }

    fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.id == id)
    }

    /// Who a kind of agent writes to.
    pub fn eligible(&self, kind: &str) -> Vec<&Customer> {
        self.customers
            .iter()
            .filter(|c| !c.opted_out)
            .filter(|c| match kind {
                "reminder" => !c.tasks.is_empty(),
                "closure" => c.negotiating,
                "nurture" => c.stage == "lead",
                "upsell" => c.stage == "customer" && c.plan == "basic",
                _ => true,
            })
            .collect()
    }

    fn sent(&self) -> Result<std::sync::MutexGuard<'_, Vec<Communication>>> {
        self.sent
            .lock()
            .map_err(|_| Error::Internal("poisoned".into()))
    }
}

/// The context a run needs, assembled before the model call: the profile, open tasks and the
/// last three communications to this user.
fn crm_context(crm: Arc<Crm>) -> FnContext {
    FnContext::new("crm_context", move |req: ContextRequest| {
        let crm = crm.clone();
        async move {
            let Some(user) = req.metadata.get("user") else {
                return Ok(None);
            };
            let c = crm
                .customer(user)
                .ok_or_else(|| Error::NotFound(format!("user {user}")))?;
            let recent: Vec<String> = crm
                .sent()?
                .iter()
                .rev()
                .filter(|m| &m.user == user)
                .take(3)
                .map(|m| format!("{}: {}", m.kind, m.message))
                .collect();
            Ok(Some(json!({
                "user": c.id, "business": c.business, "products": c.products, "tone": c.tone,
                "daily_goal": c.daily_goal, "stage": c.stage, "plan": c.plan,
                "open_tasks": c.tasks, "recent_communications": recent,
            })))
        }
    })
}

/// A deterministic copywriter standing in for GPT-4: it writes from the assembled context (so
/// the message changes with each user's data), records it, then confirms.
pub struct Copywriter;

fn context_of(messages: &[Message]) -> Option<Value> {
    messages.iter().find_map(|m| match m {
        Message::System { content } if content.starts_with("<host_context") => content
            .lines()
            .nth(2)
            .and_then(|l| serde_json::from_str(l).ok()),
        _ => None,
    })
}

#[async_trait]
impl LlmProvider for Copywriter {
    fn name(&self) -> &str {
        "copywriter"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(false, false, false)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let usage = Usage {
            input_tokens: 300,
            output_tokens: 60,
            ..Usage::default()
        };
        // This run's part of the session: after the last user message.
        let this_run = request
            .messages
            .iter()
            .rposition(|m| matches!(m, Message::User { .. }))
            .map_or(&request.messages[..], |i| &request.messages[i..]);
        let done = this_run.iter().any(|m| matches!(m, Message::Tool { .. }));
        if done {
            return Ok(CompletionResponse::new("Sent.", vec![], usage));
        }
        let ctx = context_of(&request.messages)
            .ok_or_else(|| Error::InvalidInput("no CRM context was assembled".into()))?;
        let kind = request
            .messages
            .iter()
            .find_map(|m| match m {
                Message::User { content } => content.split_whitespace().next().map(str::to_owned),
                _ => None,
            })
            .unwrap_or_default();
        let business = ctx["business"].as_str().unwrap_or("there");
        let product = ctx["products"][0].as_str().unwrap_or("our service");
        let message = match kind.as_str() {
            "reminder" => format!(
                "Hi {business}, a reminder: {}.",
                ctx["open_tasks"][0].as_str().unwrap_or("your tasks")
            ),
            "follow_up" => format!(
                "Hi {business}, how is \"{}\" going today?",
                ctx["daily_goal"].as_str().unwrap_or("")
            ),
            "closure" => format!(
                "Hi {business}, shall we finalise today? ({})",
                ctx["open_tasks"][0].as_str().unwrap_or("")
            ),
            "nurture" => format!("Hi {business}, three ideas to sell more {product} this week."),
            _ => format!("Hi {business}, the pro plan would help with {product}."),
        };
        let message = format!("[{}] {message}", ctx["tone"].as_str().unwrap_or("plain"));
        let call = ToolCall::new(
            "c-1",
            "comms.record",
            json!({"user": ctx["user"], "kind": kind, "message": message}),
        );
        Ok(CompletionResponse::new("", vec![call], usage))
    }
}

fn record_tool(crm: Arc<Crm>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "comms.record",
            "Sends and records a communication to a user",
            json!({"type": "object", "properties": {"user": {"type": "string"},
                   "kind": {"type": "string"}, "message": {"type": "string"}},
                   "required": ["user", "kind", "message"], "additionalProperties": false}),
        )
        .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let crm = crm.clone();
            async move {
                crm.sent()?.push(Communication {
                    user: args["user"].as_str().unwrap_or_default().into(),
                    kind: args["kind"].as_str().unwrap_or_default().into(),
                    message: args["message"].as_str().unwrap_or_default().into(),
                });
                Ok(json!({"sent": true}))
            }
        },
    ))
}

fn agent(kind: &str, crm: &Arc<Crm>, state: &Arc<dyn StateStore>) -> Result<Agent> {
    Agent::builder()
        .id(kind)
        .system_prompt(format!(
            "You are the {kind} agent of a small-business CRM. Match the customer's tone."
        ))
        .model(Arc::new(Copywriter), "copywriter-1")
        .tool(record_tool(crm.clone()))
        .policy(AllowListPolicy::new(["comms.record"]).into_arc())
        .context(Arc::new(crm_context(crm.clone())))
        .store(state.clone())
        .build()
}

/// The scheduled step: run `kind`'s agent for every eligible user, once per (slot, user).
fn run_scheduled(agents: Arc<BTreeMap<String, Agent>>, crm: Arc<Crm>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "agents.run_scheduled",
            "Runs a scheduled agent for each eligible user",
            json!({"type": "object", "properties": {"kind": {"type": "string"}, "slot": {"type": "string"}},
                   "required": ["kind", "slot"]}),
        )
        .with_side_effect(SideEffect::Write),
        move |ctx, args| {
            let (agents, crm) = (agents.clone(), crm.clone());
            async move {
                let kind = args["kind"].as_str().unwrap_or_default();
                let agent = agents
                    .get(kind)
                    .ok_or_else(|| Error::InvalidInput(format!("no agent `{kind}`")))?;
                let slot: DateTime<Utc> = args["slot"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| Error::InvalidInput(format!("slot: {e}")))?;
                let mut runs = Vec::new();
                for c in crm.eligible(kind) {
                    let run = RunId::new(format!("{kind}-{}-{}", slot.format("%Y%m%dT%H%M"), c.id))?;
                    let request = RunRequest::new(
                        ctx.scope.tenant.clone(),
                        format!("{kind}-{}", c.id).as_str(),
                        format!("{kind} message for today"),
                    )
                    .with_run_id(run.clone())
                    .with_metadata("user", c.id);
                    let status = match agent.run(request).await {
                        Ok(RunOutcome::Completed(_)) => "done",
                        Ok(_) => "waiting",
                        // Already run for this slot (a replayed step): not again.
                        Err(Error::Conflict(_)) => "done",
                        Err(e) => return Err(e),
                    };
                    runs.push(json!({"user": c.id, "run": run.as_str(), "status": status}));
                }
                Ok(json!({"runs": runs}))
            }
        },
    ))
}

/// The engine, the CRM and the schedules, on the host's stores and a controllable clock.
pub struct Setup {
    /// The workflow engine.
    pub engine: Workflows,
    /// The CRM.
    pub crm: Arc<Crm>,
    /// The clock.
    pub clock: Arc<ManualClock>,
}

/// Builds everything and publishes the five workflows.
pub async fn setup(
    state: Arc<dyn StateStore>,
    workflows: Arc<dyn WorkflowStore>,
    start: DateTime<Utc>,
) -> Result<Setup> {
    let crm = Arc::new(Crm::sample());
    let mut agents = BTreeMap::new();
    for kind in KINDS {
        agents.insert(kind.to_owned(), agent(kind, &crm, &state)?);
    }
    let tools = ToolSet::new(vec![run_scheduled(Arc::new(agents), crm.clone())])?;
    let clock = Arc::new(ManualClock::new(start));
    let engine = Workflows::builder(workflows)
        .executor(
            ToolExecutor::builder(tools, state.clone())
                .policy(AllowListPolicy::new(["agents.run_scheduled"]).into_arc())
                .build(),
        )
        .clock(clock.clone())
        .build();
    let tenant = TenantId::new(TENANT)?;
    for kind in KINDS {
        let def: WorkflowDefinition = serde_json::from_value(json!({
            "id": kind, "version": 1, "name": format!("Scheduled {kind}"),
            "start": "batch", "inputs": ["schedule"],
            "nodes": [{"id": "batch", "kind": "tool", "tool": "agents.run_scheduled",
                       "args": {"kind": kind, "slot": "${schedule.slot}"}}]
        }))?;
        engine.publish(&tenant, &def).await?;
    }
    Ok(Setup { engine, crm, clock })
}

/// The five schedules (one scheduler process's view).
pub fn schedules(engine: &Workflows) -> Result<Scheduler> {
    let tz = "Europe/Berlin";
    let mut s = Scheduler::new(engine.clone());
    let add = |s: &mut Scheduler, id: &str, schedule: Schedule, catch_up: CatchUp| -> Result<()> {
        s.add(ScheduledWorkflow::new(id, TENANT, id, schedule)?.catch_up(catch_up))?;
        Ok(())
    };
    add(
        &mut s,
        "reminder",
        Schedule::cron("0 9 * * *", tz)?,
        CatchUp::RunOnce,
    )?;
    add(
        &mut s,
        "follow_up",
        Schedule::cron("0 13 * * *", tz)?,
        CatchUp::Skip,
    )?;
    add(
        &mut s,
        "closure",
        Schedule::cron("0 16 * * *", tz)?,
        CatchUp::RunAll,
    )?;
    add(
        &mut s,
        "nurture",
        Schedule::every_days(2, "11:00", tz, "2026-03-23")?,
        CatchUp::RunOnce,
    )?;
    add(
        &mut s,
        "upsell",
        Schedule::cron("0 10 * * MON", tz)?,
        CatchUp::Skip,
    )?;
    Ok(s)
}

/// A Berlin wall-clock time.
pub fn berlin(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// What two simulated weeks produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Workflow runs started, per kind.
    pub runs_per_kind: BTreeMap<String, usize>,
    /// Slots started late (caught up after the outage), per kind.
    pub caught_up: BTreeMap<String, usize>,
    /// Slots the second scheduler found already started.
    pub duplicates: usize,
    /// The run log.
    pub log: Vec<LogEntry>,
}

/// One line of the run log (the seed's `AgentRun`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The slot, Berlin time.
    pub slot: String,
    /// The agent type.
    pub kind: String,
    /// The user.
    pub user: String,
    /// The agent run.
    pub run: String,
    /// `done`, `waiting` or the workflow's state.
    pub status: String,
    /// The message the agent sent.
    pub message: String,
}

/// The run log: every scheduled workflow run, each user's agent run in it, and what was sent.
pub async fn run_log(setup: &Setup, state: &Arc<dyn StateStore>) -> Result<Vec<LogEntry>> {
    let tenant = TenantId::new(TENANT)?;
    let mut log = Vec::new();
    for run in setup
        .engine
        .list_runs(&tenant, &RunQuery::default())
        .await?
    {
        let slot = run.context["schedule"]["slot"].as_str().unwrap_or_default();
        let slot = slot
            .parse::<DateTime<Utc>>()
            .map(|t| {
                t.with_timezone(&Berlin)
                    .format("%a %d %b %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        let kind = run.workflow.to_string();
        let per_user = run.context["batch"]["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if run.state != RunState::Done {
            log.push(LogEntry {
                slot,
                kind,
                user: "-".into(),
                run: run.id.to_string(),
                status: run.state.as_str().into(),
                message: String::new(),
            });
            continue;
        }
        for r in per_user {
            let agent_run: RunId = r["run"].as_str().unwrap_or_default().parse()?;
            let record = state.get_run(&tenant, &agent_run).await?;
            let window = match &record {
                Some(rec) => {
                    state
                        .load_messages(&tenant, &rec.session, agentkit::store::MessageWindow::All)
                        .await?
                }
                None => Vec::new(),
            };
            let message = window
                .iter()
                .filter(|m| m.run.as_ref() == Some(&agent_run))
                .find_map(|m| match &m.message {
                    Message::Assistant { tool_calls, .. } => tool_calls.first().map(|c| {
                        c.arguments["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    }),
                    _ => None,
                })
                .unwrap_or_default();
            log.push(LogEntry {
                slot: slot.clone(),
                kind: kind.clone(),
                user: r["user"].as_str().unwrap_or_default().into(),
                run: agent_run.to_string(),
                status: r["status"].as_str().unwrap_or_default().into(),
                message,
            });
        }
    }
    Ok(log)
}

/// Two simulated weeks from Monday 23 March 2026 (daylight saving starts on the 29th), with
/// the service down from 31 March 08:00 to 2 April 08:00, ticked every 15 minutes by two
/// scheduler processes.
pub async fn two_weeks(
    state: Arc<dyn StateStore>,
    workflows: Arc<dyn WorkflowStore>,
    say: &dyn Fn(String),
) -> Result<(Setup, Outcome)> {
    let setup = setup(state.clone(), workflows, berlin(2026, 3, 23, 0)).await?;
    let (a, b) = (schedules(&setup.engine)?, schedules(&setup.engine)?);
    let end = berlin(2026, 4, 6, 0);
    let outage = (berlin(2026, 3, 31, 8), berlin(2026, 4, 2, 8));
    let mut outcome = Outcome::default();
    let mut announced_outage = false;
    while setup.clock.now() < end {
        let now = setup.clock.now();
        if now > outage.0 && now < outage.1 {
            if !announced_outage {
                say("Tue 31 Mar 08:00: the service goes down for two days.".into());
                announced_outage = true;
            }
        } else {
            // Both processes tick at once; the trigger key lets only one start each slot.
            let (fa, fb) = tokio::join!(a.tick(), b.tick());
            for fired in fa?.into_iter().chain(fb?) {
                if !fired.created.is_new() {
                    outcome.duplicates += 1;
                    continue;
                }
                *outcome
                    .runs_per_kind
                    .entry(fired.schedule.clone())
                    .or_default() += 1;
                if fired.caught_up {
                    *outcome.caught_up.entry(fired.schedule.clone()).or_default() += 1;
                    say(format!(
                        "{}: caught up the missed {} slot of {}.",
                        now.with_timezone(&Berlin).format("%a %d %b %H:%M"),
                        fired.schedule,
                        fired.slot.with_timezone(&Berlin).format("%a %d %b %H:%M")
                    ));
                }
            }
            setup.engine.run_due("worker-1").await?;
        }
        setup.clock.advance(TimeDelta::minutes(15));
    }
    outcome.log = run_log(&setup, &state).await?;
    Ok((setup, outcome))
}
