//! The orchestrator: one intake → one decision (logged) → its actions as governed tool calls;
//! reviewers' decisions through the approval queue.

use std::sync::Arc;
use std::time::Duration;

use agentkit::agent::{Agent, RunOutcome, RunRequest};
use agentkit::config::Limits;
use agentkit::error::{Error, ErrorKind, Result};
use agentkit::id::{AgentId, ApprovalId, RunId, SessionId, TenantId};
use agentkit::model::LlmProvider;
use agentkit::policy::PolicyEvaluator;
use agentkit::policy_engine::approvals::{ApprovalQueue, QueueConfig, Reviewer};
use agentkit::policy_engine::{Clock, PolicyEngine};
use agentkit::resilience::{CircuitBreaker, ProviderExt};
use agentkit::scope::Scope;
use agentkit::store::{
    ApprovalDecision, NewAuditEntry, RunStatus, StateStore, UsageKind, UsageQuery,
};
use agentkit::workflow::intake::Intake;

use super::Config;
use super::actions::{Ops, tools};
use super::decision::{self, ActionPlayer, Decision, KeywordRules, Play, RULES_MODEL};
use super::log::{self, DecidedBy, DecisionRecord, LoggedInput, LoggedOutput};

/// The decision agent.
pub const DECIDER: &str = "astralis-decider";
/// The keyword rules asked for a second opinion.
pub const RULES: &str = "astralis-rules";
/// The agent that runs a decision's actions.
pub const ACTOR: &str = "astralis-actions";

/// What the orchestrator is built from.
pub struct Setup {
    /// The database.
    pub store: Arc<dyn StateStore>,
    /// The organisation.
    pub tenant: TenantId,
    /// Its configuration.
    pub config: Config,
    /// The LLM (any provider; offline, a scripted one).
    pub primary: Arc<dyn LlmProvider>,
    /// AstralisOps' services the actions act on.
    pub ops: Ops,
    /// Opens after consecutive model failures, so an outage costs no waiting per input.
    pub breaker: CircuitBreaker,
    /// The policy's clock (tests pin the minute the rate limit counts in).
    pub policy_clock: Option<Clock>,
}

impl Setup {
    /// Defaults: the seed's configuration, a breaker opening after 3 consecutive failures for
    /// 60 s, the system clock.
    pub fn new(
        store: Arc<dyn StateStore>,
        tenant: TenantId,
        primary: Arc<dyn LlmProvider>,
        ops: Ops,
    ) -> Self {
        Self {
            store,
            tenant,
            config: Config::default(),
            primary,
            ops,
            breaker: CircuitBreaker::consecutive_failures(3, Duration::from_secs(60)),
            policy_clock: None,
        }
    }
}

/// How processing one delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// Decided now (and its actions run, queued for approval or rejected).
    Decided(DecisionRecord),
    /// This input was handled before (a redelivery): nothing new happened.
    Duplicate(DecisionRecord),
    /// Another delivery of this input is being decided right now: nothing happened here.
    InFlight {
        /// The intake's key.
        key: String,
    },
}

impl Processed {
    /// The decision, when there is one yet.
    pub fn record(&self) -> Option<&DecisionRecord> {
        match self {
            Processed::Decided(r) | Processed::Duplicate(r) => Some(r),
            Processed::InFlight { .. } => None,
        }
    }
}

/// The orchestration agent of one organisation.
#[derive(Clone)]
pub struct Orchestrator {
    tenant: TenantId,
    config: Config,
    store: Arc<dyn StateStore>,
    decider: Agent,
    rules: Agent,
    actions: Agent,
    queue: ApprovalQueue,
    breaker: CircuitBreaker,
}

/// The ids one intake's work lives under, all derived from its key.
struct Ids {
    key: String,
    decide: RunId,
    rules: RunId,
    act: RunId,
}

impl Ids {
    fn of(intake: &Intake) -> Result<Self> {
        Ok(Self {
            key: intake.key().to_string(),
            decide: intake.run_id("decide")?,
            rules: intake.run_id("rules")?,
            act: intake.run_id("act")?,
        })
    }
}

/// A run id's session: the run's own conversation.
fn session(run: &RunId) -> Result<SessionId> {
    SessionId::new(run.as_str())
}

/// What asking a deciding agent gave.
enum Asked {
    Answer { decision: Decision, by_rules: bool },
    InFlight,
    Failed(String),
}

/// The decision to act on, who made it and the confidence the policy is given.
struct Decided {
    decision: Option<Decision>,
    by: DecidedBy,
    model_decision: Option<Decision>,
    effective: f64,
    error: Option<String>,
}

impl Orchestrator {
    /// Builds the three agents, the policy and the approval queue.
    pub fn new(setup: Setup) -> Result<Self> {
        let Setup {
            store,
            tenant,
            config,
            primary,
            ops,
            breaker,
            policy_clock,
        } = setup;
        config.validate()?;
        let rules = Arc::new(KeywordRules::new()?);
        let prompt = decision::system_prompt(&config.org);
        let model = primary
            .with_circuit_breaker(breaker.clone())
            .with_fallback([rules.clone() as Arc<dyn LlmProvider>]);
        let decider = Agent::builder()
            .id(DECIDER)
            .system_prompt(prompt.clone())
            .model(model, config.model.clone())
            .temperature(0.3)
            .max_tokens(2000)
            .output_schema(Decision::schema())
            .store(store.clone())
            .build()?;
        let second = Agent::builder()
            .id(RULES)
            .system_prompt(prompt)
            .model(rules, RULES_MODEL)
            .output_schema(Decision::schema())
            .store(store.clone())
            .build()?;
        let mut engine =
            PolicyEngine::from_json(&config.policy(tenant.as_str()).to_string(), store.clone())?;
        if let Some(clock) = policy_clock {
            engine = engine.with_clock(clock);
        }
        let policy: Arc<dyn PolicyEvaluator> = Arc::new(engine);
        let actions = Agent::builder()
            .id(ACTOR)
            .system_prompt("Execute the decision's actions, in order.")
            .model(Arc::new(ActionPlayer), "decision-player")
            .tools(tools(&ops))
            .policy(policy)
            .limits(Limits {
                max_turns: 2,
                max_tool_calls_per_turn: u32::try_from(decision::MAX_ACTIONS).unwrap_or(8),
                tool_concurrency: 1,
                max_tool_errors: u32::try_from(decision::MAX_ACTIONS).unwrap_or(8),
                ..Limits::default()
            })
            .store(store.clone())
            .build()?;
        let reviewers = decision::TEAM
            .iter()
            .filter(|m| matches!(m.role, "ADMIN" | "OPERATOR"))
            .map(|m| Reviewer {
                id: m.email.to_owned(),
                roles: vec![m.role.to_owned()],
                available: true,
                max_load: 25,
            })
            .collect();
        let queue = ApprovalQueue::new(store.clone(), QueueConfig::default(), reviewers);
        Ok(Self {
            tenant,
            config,
            store,
            decider,
            rules: second,
            actions,
            queue,
            breaker,
        })
    }

    /// The organisation.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The approval queue (what the host's reviewer page lists).
    pub fn queue(&self) -> &ApprovalQueue {
        &self.queue
    }

    /// The circuit breaker around the LLM.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Processes one delivery: decide once, run the actions under the policy, log.
    ///
    /// Everything is keyed by the intake: the decision and rules runs, the action run (the
    /// point two concurrent deliveries race on: exactly one creates it) and its tool calls.
    /// Each step first reads what an earlier delivery left, so a delivery interrupted after
    /// any step is finished by the next one without asking a model or running a tool again.
    pub async fn process(&self, intake: &Intake) -> Result<Processed> {
        if intake.tenant != self.tenant {
            return Err(Error::PermissionDenied(format!(
                "intake for tenant `{}` sent to `{}`'s orchestrator",
                intake.tenant, self.tenant
            )));
        }
        let ids = Ids::of(intake)?;
        if let Some(record) = self.decision(&ids.key).await? {
            return Ok(Processed::Duplicate(record));
        }
        let act = self.store.get_run(&self.tenant, &ids.act).await?;
        if act.as_ref().is_some_and(|r| r.status == RunStatus::Running) {
            return Ok(Processed::InFlight { key: ids.key });
        }
        let Some(decided) = self.decide(intake, &ids).await? else {
            return Ok(Processed::InFlight { key: ids.key });
        };
        if act.is_some() {
            // An earlier delivery ran the actions and stopped before logging them.
            self.log(intake, &ids, &decided).await?;
            return Ok(Processed::Duplicate(self.logged(&ids).await?));
        }
        if let Some(decision) = &decided.decision {
            let play = Play {
                reference: ids.key.clone(),
                actions: decision.actions.clone(),
            };
            let input = serde_json::to_string(&play)
                .map_err(|e| Error::Internal(format!("decision to play: {e}")))?;
            let request = RunRequest::new(&self.tenant, session(&ids.act)?, input)
                .with_run_id(ids.act.clone())
                .with_confidence(decided.effective);
            match self.actions.run(request).await {
                Ok(_) => {}
                // Another delivery of this input created the action run first; it logs.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    return Ok(Processed::InFlight { key: ids.key });
                }
                Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
                // Any other failure is recorded on the run; the decision's status says so.
                Err(_) => {}
            }
        }
        if self.decision(&ids.key).await?.is_none() {
            self.log(intake, &ids, &decided).await?;
        }
        Ok(Processed::Decided(self.logged(&ids).await?))
    }

    async fn logged(&self, ids: &Ids) -> Result<DecisionRecord> {
        self.decision(&ids.key)
            .await?
            .ok_or_else(|| Error::Internal(format!("decision {} was not logged", ids.key)))
    }

    /// The decision to act on: the model's, the rules' when the model is down, the rules'
    /// (capped) when the model is unsure and a rule matches. `None`: another delivery is
    /// deciding right now.
    async fn decide(&self, intake: &Intake, ids: &Ids) -> Result<Option<Decided>> {
        let prompt = decision::prompt(&ids.key, &intake.text);
        let (first, by_rules) = match self
            .ask(&self.decider, intake, &ids.decide, &prompt)
            .await?
        {
            Asked::InFlight => return Ok(None),
            Asked::Failed(error) => {
                return Ok(Some(Decided {
                    decision: None,
                    by: DecidedBy::Model,
                    model_decision: None,
                    effective: 0.0,
                    error: Some(error),
                }));
            }
            Asked::Answer { decision, by_rules } => (decision, by_rules),
        };
        let approve_at = self.config.require_approval_threshold;
        let (decision, by, model_decision) = if by_rules {
            (first, DecidedBy::RulesModelDown, None)
        } else if first.confidence < approve_at {
            match self.ask(&self.rules, intake, &ids.rules, &prompt).await? {
                Asked::InFlight => return Ok(None),
                Asked::Answer { decision: r, .. } if !r.actions.is_empty() => {
                    (r, DecidedBy::RulesModelUnsure, Some(first))
                }
                Asked::Answer { .. } | Asked::Failed(_) => (first, DecidedBy::ModelUnsure, None),
            }
        } else {
            (first, DecidedBy::Model, None)
        };
        let mut effective = decision.confidence;
        if decision.requires_approval || by == DecidedBy::RulesModelUnsure {
            effective = effective.min(approve_at);
        }
        Ok(Some(Decided {
            decision: Some(decision),
            by,
            model_decision,
            effective,
            error: None,
        }))
    }

    /// Runs a deciding agent once per intake (its run id derives from the intake), or reads
    /// the answer an earlier delivery got.
    async fn ask(
        &self,
        agent: &Agent,
        intake: &Intake,
        run: &RunId,
        prompt: &str,
    ) -> Result<Asked> {
        match self.store.get_run(&self.tenant, run).await? {
            Some(r) if r.status == RunStatus::Completed => {
                let reply = r.reply.unwrap_or_default();
                return Ok(Asked::Answer {
                    decision: Decision::from_text(&reply)?,
                    by_rules: self.rules_answered(run).await?,
                });
            }
            Some(r) if r.status == RunStatus::Failed => {
                return Ok(Asked::Failed(r.error.unwrap_or_else(|| "failed".into())));
            }
            Some(_) => return Ok(Asked::InFlight),
            None => {}
        }
        let request = RunRequest::new(&self.tenant, session(run)?, prompt)
            .with_run_id(run.clone())
            .with_metadata("source", intake.source.as_str())
            .with_metadata("kind", intake.kind.clone())
            .with_metadata("delivery_id", intake.delivery_id.clone());
        match agent.run(request).await {
            Ok(RunOutcome::Completed(report)) => {
                let value = report.structured.ok_or_else(|| {
                    Error::Internal("the decision agent answered without structured output".into())
                })?;
                Ok(Asked::Answer {
                    decision: Decision::from_value(&value)?,
                    by_rules: report.answered_by.ends_with(&format!("/{RULES_MODEL}")),
                })
            }
            Ok(other) => Err(Error::Internal(format!(
                "a deciding agent stopped: {other:?}"
            ))),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(Asked::InFlight),
            Err(e) if e.kind() == ErrorKind::Storage => Err(e),
            Err(e) => Ok(Asked::Failed(e.to_string())),
        }
    }

    /// Whether the keyword rules answered a completed run's last model call (its usage events
    /// name the model that answered).
    async fn rules_answered(&self, run: &RunId) -> Result<bool> {
        let usage = self
            .store
            .list_usage(
                &self.tenant,
                &UsageQuery::all()
                    .run(run.clone())
                    .kind(UsageKind::InputTokens),
            )
            .await?;
        Ok(usage
            .last()
            .is_some_and(|e| e.resource.as_deref() == Some(RULES_MODEL)))
    }

    /// Appends the decision log entry (the seed's `AgentDecision`).
    async fn log(&self, intake: &Intake, ids: &Ids, d: &Decided) -> Result<()> {
        let scope = Scope::new(
            self.tenant.clone(),
            AgentId::new(DECIDER)?,
            session(&ids.decide)?,
            ids.decide.clone(),
        );
        let kind = d
            .decision
            .as_ref()
            .map_or("NO_ACTION", Decision::decision_type);
        let mut entry = NewAuditEntry::scoped(&scope, log::KIND, format!("agent:{DECIDER}"), kind);
        let routing = if d.error.is_some() {
            "failed"
        } else if d.effective >= self.config.auto_execute_threshold {
            "auto_execute"
        } else if d.effective >= self.config.require_approval_threshold {
            "requires_approval"
        } else {
            "reject"
        };
        entry.decision = Some(routing.into());
        entry.reason = d
            .decision
            .as_ref()
            .map(|x| x.reasoning.clone())
            .or_else(|| d.error.clone());
        entry.input = serde_json::to_value(LoggedInput::of(intake, &ids.key))
            .map_err(|e| Error::Internal(e.to_string()))?
            .into();
        entry.output = serde_json::to_value(LoggedOutput {
            decision: d.decision.clone(),
            decided_by: d.by,
            model_decision: d.model_decision.clone(),
            effective_confidence: d.effective,
            act_run: ids.act.clone(),
            error: d.error.clone(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?
        .into();
        self.store.append_audit(&self.tenant, entry).await?;
        Ok(())
    }

    /// One decision by its intake key (`email:<message id>`), as the host's decision page
    /// shows it.
    pub async fn decision(&self, key: &str) -> Result<Option<DecisionRecord>> {
        let run = RunId::new(format!("{key}:decide"))?;
        log::find(&*self.store, &self.tenant, &self.config, &run).await
    }

    /// The decision log, oldest first (`GET /api/agent/decisions`).
    pub async fn decisions(&self) -> Result<Vec<DecisionRecord>> {
        log::list(&*self.store, &self.tenant, &self.config).await
    }

    /// What the host's reviewer page does with one request: decide it through the queue
    /// (exactly once, audited), then resume its run (approved calls run once, rejected ones
    /// are reported; while other requests of the run are pending nothing runs yet).
    pub async fn review(
        &self,
        approval: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<RunOutcome> {
        self.queue.decide(&self.tenant, approval, decision).await?;
        self.actions.resume_approval(&self.tenant, approval).await
    }

    /// Approves or rejects a whole decision (`POST /api/agent/decisions/:id/approve|reject`):
    /// [`Orchestrator::review`] for each of its pending requests.
    pub async fn review_decision(
        &self,
        key: &str,
        approve: bool,
        reviewer: &str,
        comment: &str,
    ) -> Result<DecisionRecord> {
        let record = self
            .decision(key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("decision {key}")))?;
        let pending: Vec<ApprovalId> = self
            .store
            .list_pending_approvals(&self.tenant)
            .await?
            .into_iter()
            .filter(|a| a.run == record.act_run)
            .map(|a| a.id)
            .collect();
        if pending.is_empty() {
            return Err(Error::Conflict(format!(
                "decision {key} waits for no approval"
            )));
        }
        for id in pending {
            let d = if approve {
                ApprovalDecision::approve(reviewer)
            } else {
                ApprovalDecision::reject(reviewer, comment)
            };
            self.review(&id, &d).await?;
        }
        self.decision(key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("decision {key}")))
    }
}
