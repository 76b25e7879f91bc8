//! The decision log (the seed's `AgentDecision`), read from agentkit's records: the
//! `orchestration.decision` audit entry holds what was decided; the action run, its approvals
//! and its tool results say what became of it.

use std::collections::{BTreeMap, HashMap, HashSet};

use agentkit::error::{Error, Result};
use agentkit::id::{ApprovalId, RunId, TenantId};
use agentkit::message::Message;
use agentkit::store::{
    AuditEntry, AuditQuery, MessageWindow, PendingCall, RunRecord, RunStatus, StateStore,
};
use agentkit::workflow::intake::{Intake, Source};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Config;
use super::decision::{Decision, tool_for};

/// The audit kind of a decision log entry.
pub const KIND: &str = "orchestration.decision";

/// Who made the decision that was acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The LLM.
    Model,
    /// The keyword rules, because the LLM was down.
    RulesModelDown,
    /// The keyword rules, because the LLM was unsure (capped at the approval threshold).
    RulesModelUnsure,
    /// The LLM, unsure, and no keyword rule matched.
    ModelUnsure,
}

impl DecidedBy {
    /// In words.
    pub fn describe(&self) -> &'static str {
        match self {
            DecidedBy::Model => "the model",
            DecidedBy::RulesModelDown => "keyword rules (model down)",
            DecidedBy::RulesModelUnsure => "keyword rules (model unsure)",
            DecidedBy::ModelUnsure => "the model (unsure, no rule matched)",
        }
    }
}

/// The intake part of a log entry (the audit entry's input).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedInput {
    /// The intake's key.
    pub key: String,
    /// Its source.
    pub source: Source,
    /// Its kind.
    pub kind: String,
    /// Its delivery id.
    pub delivery_id: String,
    /// Its data.
    pub data: Value,
    /// Its metadata.
    pub metadata: BTreeMap<String, String>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

impl LoggedInput {
    /// From an intake.
    pub fn of(intake: &Intake, key: &str) -> Self {
        Self {
            key: key.to_owned(),
            source: intake.source,
            kind: intake.kind.clone(),
            delivery_id: intake.delivery_id.clone(),
            data: intake.data.clone(),
            metadata: intake.metadata.clone(),
            received_at: intake.received_at,
        }
    }
}

/// The decision part of a log entry (the audit entry's output).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOutput {
    /// The decision acted on (none when deciding failed).
    pub decision: Option<Decision>,
    /// Who made it.
    pub decided_by: DecidedBy,
    /// The unsure model's own decision, when the rules replaced it.
    pub model_decision: Option<Decision>,
    /// The confidence the policy was given.
    pub effective_confidence: f64,
    /// The run of its actions.
    pub act_run: RunId,
    /// Why deciding failed.
    pub error: Option<String>,
}

/// The seed's `DecisionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DecisionStatus {
    /// Decided; its actions have not run yet.
    Pending,
    /// Every action ran.
    Executed,
    /// Deciding failed, or an action failed or was refused (rate limit, conflict).
    Failed,
    /// Below the approval threshold, or a reviewer rejected it: nothing ran.
    Rejected,
    /// Waiting for a reviewer.
    RequiresApproval,
}

impl DecisionStatus {
    /// `PENDING`, `EXECUTED`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionStatus::Pending => "PENDING",
            DecisionStatus::Executed => "EXECUTED",
            DecisionStatus::Failed => "FAILED",
            DecisionStatus::Rejected => "REJECTED",
            DecisionStatus::RequiresApproval => "REQUIRES_APPROVAL",
        }
    }
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// Not run yet.
    Pending,
    /// Waiting for this approval request.
    AwaitingApproval(ApprovalId),
    /// Ran; the tool's output.
    Executed(Value),
    /// Did not run: why (denied by the policy, rejected by a reviewer, failed, refused).
    NotExecuted(String),
}

/// One action of a decision and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    /// The action type.
    pub kind: String,
    /// The tool it ran as.
    pub tool: String,
    /// Its arguments.
    pub params: Value,
    /// What became of it.
    pub outcome: ActionOutcome,
}

/// One decision, as the host's decision log shows it (the seed's `AgentDecision`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// The intake's key (the decision's id).
    pub id: String,
    /// `EMAIL`, `WEBHOOK`, `DB_TRIGGER`, `WORKER`, `API`.
    pub input_source: Source,
    /// `email_received`, `form_submitted`, `intake_request_created`...
    pub input_type: String,
    /// The intake's data.
    pub input_data: Value,
    /// The decision acted on.
    pub decision: Option<Decision>,
    /// `ASSIGN_PIPELINE`, ..., `NO_ACTION`.
    pub decision_type: String,
    /// Who decided.
    pub decided_by: DecidedBy,
    /// The unsure model's decision, when the rules replaced it.
    pub model_decision: Option<Decision>,
    /// The decision's confidence.
    pub confidence: f64,
    /// The confidence the policy was given.
    pub effective_confidence: f64,
    /// The actions and their outcomes.
    pub actions: Vec<ActionRecord>,
    /// The status.
    pub status: DecisionStatus,
    /// Why it failed or was rejected.
    pub error_message: Option<String>,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
    /// When its actions finished.
    pub executed_at: Option<DateTime<Utc>>,
    /// The decision run.
    pub decide_run: RunId,
    /// The action run.
    pub act_run: RunId,
    /// The log entry's position in the tenant's audit chain.
    pub audit_seq: u64,
}

impl DecisionRecord {
    /// The intent, or `-` when deciding failed.
    pub fn intent(&self) -> &str {
        self.decision.as_ref().map_or("-", |d| d.intent.as_str())
    }

    /// The approval requests this decision waits for.
    pub fn awaiting(&self) -> Vec<&ApprovalId> {
        self.actions
            .iter()
            .filter_map(|a| match &a.outcome {
                ActionOutcome::AwaitingApproval(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// How many actions ran.
    pub fn executed(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a.outcome, ActionOutcome::Executed(_)))
            .count()
    }
}

/// The decision whose decision run is `run`.
pub async fn find(
    store: &dyn StateStore,
    tenant: &TenantId,
    config: &Config,
    run: &RunId,
) -> Result<Option<DecisionRecord>> {
    let entries = store
        .list_audit(tenant, &AuditQuery::all().kind(KIND).run(run.clone()))
        .await?;
    match entries.into_iter().next() {
        Some(e) => Ok(Some(derive(store, tenant, config, e).await?)),
        None => Ok(None),
    }
}

/// Every decision of `tenant`, oldest first (one per intake: a second entry for one intake,
/// written by a delivery racing an interrupted one, is skipped).
pub async fn list(
    store: &dyn StateStore,
    tenant: &TenantId,
    config: &Config,
) -> Result<Vec<DecisionRecord>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in store
        .list_audit(tenant, &AuditQuery::all().kind(KIND))
        .await?
    {
        if seen.insert(e.entry.run.clone()) {
            out.push(derive(store, tenant, config, e).await?);
        }
    }
    Ok(out)
}

async fn derive(
    store: &dyn StateStore,
    tenant: &TenantId,
    config: &Config,
    entry: AuditEntry,
) -> Result<DecisionRecord> {
    let bad = |e: serde_json::Error| Error::Internal(format!("decision log entry: {e}"));
    // Read in place from the shared values (no copy of the entry's JSON).
    let input = LoggedInput::deserialize(entry.entry.input.as_value()).map_err(bad)?;
    let output = LoggedOutput::deserialize(entry.entry.output.as_value()).map_err(bad)?;
    let decide_run = entry
        .entry
        .run
        .clone()
        .ok_or_else(|| Error::Internal("decision log entry without a run".into()))?;
    let act = store.get_run(tenant, &output.act_run).await?;
    let (results, awaiting) = match &act {
        Some(run) => call_results(store, tenant, run).await?,
        None => (HashMap::new(), HashMap::new()),
    };
    let planned = output
        .decision
        .as_ref()
        .map(|d| d.actions.clone())
        .unwrap_or_default();
    let actions: Vec<ActionRecord> = planned
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let id = format!("action_{i}");
            let outcome = if let Some(approval) = awaiting.get(&id) {
                ActionOutcome::AwaitingApproval(approval.clone())
            } else if let Some((ok, content)) = results.get(&id) {
                if *ok {
                    ActionOutcome::Executed(
                        serde_json::from_str(content)
                            .unwrap_or_else(|_| Value::String(content.clone())),
                    )
                } else {
                    ActionOutcome::NotExecuted(content.clone())
                }
            } else {
                ActionOutcome::Pending
            };
            ActionRecord {
                tool: tool_for(&a.kind).unwrap_or("unsupported").to_owned(),
                kind: a.kind,
                params: a.params,
                outcome,
            }
        })
        .collect();
    let approve_at = config.require_approval_threshold;
    let first_error = actions.iter().find_map(|a| match &a.outcome {
        ActionOutcome::NotExecuted(why) => Some(why.clone()),
        _ => None,
    });
    let executed = actions
        .iter()
        .filter(|a| matches!(a.outcome, ActionOutcome::Executed(_)))
        .count();
    let (status, error_message) = match (&output.error, &act) {
        (Some(e), _) => (DecisionStatus::Failed, Some(e.clone())),
        (None, None) => (DecisionStatus::Pending, None),
        (None, Some(run)) => match run.status {
            RunStatus::Running => (DecisionStatus::Pending, None),
            RunStatus::Suspended => (DecisionStatus::RequiresApproval, None),
            RunStatus::Failed => (DecisionStatus::Failed, run.error.clone()),
            RunStatus::Completed => {
                let below = output.effective_confidence < approve_at;
                if executed == actions.len() && !(actions.is_empty() && below) {
                    (DecisionStatus::Executed, None)
                } else if executed == 0 && (below || reviewer_rejected(store, tenant, run).await?) {
                    let why = first_error.unwrap_or_else(|| {
                        format!(
                            "NO_ACTION: confidence {:.2} is below {approve_at:.2}",
                            output.effective_confidence
                        )
                    });
                    (DecisionStatus::Rejected, Some(why))
                } else {
                    (DecisionStatus::Failed, first_error)
                }
            }
        },
    };
    let executed_at = act
        .as_ref()
        .filter(|r| r.status == RunStatus::Completed && executed > 0)
        .map(|r| r.updated_at);
    let decision_type = output
        .decision
        .as_ref()
        .map_or("NO_ACTION", Decision::decision_type)
        .to_owned();
    Ok(DecisionRecord {
        id: input.key,
        input_source: input.source,
        input_type: input.kind,
        input_data: input.data,
        confidence: output.decision.as_ref().map_or(0.0, |d| d.confidence),
        decision: output.decision,
        decision_type,
        decided_by: output.decided_by,
        model_decision: output.model_decision,
        effective_confidence: output.effective_confidence,
        actions,
        status,
        error_message,
        created_at: entry.entry.at,
        executed_at,
        decide_run,
        act_run: output.act_run,
        audit_seq: entry.seq,
    })
}

/// The action run's tool results by call id (`(ok, content)`) and its pending approvals.
async fn call_results(
    store: &dyn StateStore,
    tenant: &TenantId,
    run: &RunRecord,
) -> Result<(HashMap<String, (bool, String)>, HashMap<String, ApprovalId>)> {
    let mut results = HashMap::new();
    let mut awaiting = HashMap::new();
    let mut note = |m: &Message| {
        if let Message::Tool {
            call_id,
            content,
            is_error,
            ..
        } = m
        {
            results.insert(call_id.clone(), (!*is_error, content.clone()));
        }
    };
    if run.status == RunStatus::Suspended {
        for p in &run.pending {
            match p {
                PendingCall::Resolved { result, .. } => note(result),
                PendingCall::AwaitingApproval { call, approval, .. } => {
                    awaiting.insert(call.id.clone(), approval.clone());
                }
            }
        }
    } else {
        for m in store
            .load_messages(tenant, &run.session, MessageWindow::All)
            .await?
        {
            if m.run.as_ref() == Some(&run.id) {
                note(&m.message);
            }
        }
    }
    Ok((results, awaiting))
}

/// Whether a reviewer rejected (or let expire) one of the run's approval requests.
async fn reviewer_rejected(
    store: &dyn StateStore,
    tenant: &TenantId,
    run: &RunRecord,
) -> Result<bool> {
    let decided = store
        .list_audit(
            tenant,
            &AuditQuery::all()
                .kind("approval.decided")
                .run(run.id.clone()),
        )
        .await?;
    Ok(decided
        .iter()
        .any(|e| matches!(e.entry.decision.as_deref(), Some("rejected" | "expired"))))
}
