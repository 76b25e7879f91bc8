//! The records stores keep.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SharedJson;
use crate::error::{Error, Result};
use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
use crate::message::{Message, ToolCall, Usage};
use crate::policy::Priority;
use crate::redact::hash_json;
use crate::scope::Scope;

/// Now, truncated to microseconds: the precision every backend keeps (Postgres `timestamptz`,
/// SQLite integer microseconds). Records are created with it so what a store returns equals what
/// was written, and hashes over timestamps verify after a round trip.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Owner.
    pub tenant: TenantId,
    /// Id (unique within the tenant).
    pub id: SessionId,
    /// The agent the session talks to.
    pub agent: AgentId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Host metadata (channel, user's external id, locale...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl SessionRecord {
    /// A new session created now.
    pub fn new(tenant: TenantId, id: SessionId, agent: AgentId) -> Self {
        Self {
            tenant,
            id,
            agent,
            created_at: now(),
            metadata: BTreeMap::new(),
        }
    }
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in the session, from 1, without gaps.
    pub seq: u64,
    /// The run that added it.
    pub run: Option<RunId>,
    /// The message.
    pub message: Message,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

/// Which messages to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageWindow {
    /// The whole session.
    All,
    /// The last `n` messages (fewer if that would start with orphaned tool results).
    Last(usize),
    /// Messages with a sequence number greater than this.
    After(u64),
}

/// How many messages at the front of `messages` are tool results without their assistant call
/// (they are cut from a window). Backends call this on the window they loaded.
pub fn orphaned_prefix_len(messages: &[StoredMessage]) -> usize {
    messages
        .iter()
        .take_while(|m| m.message.is_tool_result())
        .count()
}

/// Status of an agent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Being executed by some process.
    Running,
    /// Waiting for human decisions; holds no process.
    Suspended,
    /// Finished with an answer.
    Completed,
    /// Finished with an error.
    Failed,
}

impl RunStatus {
    /// `"running"`, `"suspended"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Suspended => "suspended",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }
}

/// One tool call of a suspended turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PendingCall {
    /// Already answered (executed, denied, invalid); `result` is the tool message.
    Resolved {
        /// The call.
        call: ToolCall,
        /// The tool result message.
        result: Message,
    },
    /// Waiting for a human decision on these exact arguments.
    AwaitingApproval {
        /// The call.
        call: ToolCall,
        /// The approval request.
        approval: ApprovalId,
        /// Hash of the arguments submitted for approval.
        arguments_hash: String,
    },
}

impl PendingCall {
    /// The call.
    pub fn call(&self) -> &ToolCall {
        match self {
            PendingCall::Resolved { call, .. } | PendingCall::AwaitingApproval { call, .. } => call,
        }
    }
}

/// An agent run and, when suspended, exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Owner.
    pub tenant: TenantId,
    /// Id.
    pub id: RunId,
    /// The agent.
    pub agent: AgentId,
    /// The session.
    pub session: SessionId,
    /// Status.
    pub status: RunStatus,
    /// Optimistic-concurrency version; see [`super::RunStore::update_run`].
    pub version: u64,
    /// Model calls made.
    pub turns: u32,
    /// Tool calls proposed.
    pub tool_calls: u32,
    /// Tool results that were errors.
    pub tool_errors: u32,
    /// Token usage so far.
    pub usage: Usage,
    /// Tool calls of the suspended turn, in the model's order.
    #[serde(default)]
    pub pending: Vec<PendingCall>,
    /// Hashes of every (tool, arguments) proposed, for repeated-call detection.
    #[serde(default)]
    pub call_fingerprints: Vec<String>,
    /// The final answer, once completed.
    pub reply: Option<String>,
    /// The error, once failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl RunRecord {
    /// A new running run for `scope` (its tenant, agent, session and run id).
    pub fn new(scope: &Scope) -> Self {
        let now = now();
        Self {
            tenant: scope.tenant.clone(),
            id: scope.run.clone(),
            agent: scope.agent.clone(),
            session: scope.session.clone(),
            status: RunStatus::Running,
            version: 1,
            turns: 0,
            tool_calls: 0,
            tool_errors: 0,
            usage: Usage::default(),
            pending: Vec::new(),
            call_fingerprints: Vec::new(),
            reply: None,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Status of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a human.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Nobody decided in time.
    Expired,
}

impl ApprovalStatus {
    /// `"pending"`, `"approved"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }
}

/// A request for a human to approve one action with exact arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Id.
    pub id: ApprovalId,
    /// Owner.
    pub tenant: TenantId,
    /// The requesting agent.
    pub agent: AgentId,
    /// The session.
    pub session: SessionId,
    /// The suspended run.
    pub run: RunId,
    /// The tool call (name, arguments, call id).
    pub call: ToolCall,
    /// Hash of `call.arguments` ([`crate::redact::hash_json`]): the approval binds to it.
    pub arguments_hash: String,
    /// Why approval is needed.
    pub reason: String,
    /// Urgency.
    pub priority: Priority,
    /// Status.
    pub status: ApprovalStatus,
    /// Who should decide.
    pub assignee: Option<String>,
    /// Decide before this.
    pub deadline: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Decided.
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// The reviewer's comment (the model is told on rejection).
    pub comment: Option<String>,
    /// Arguments the reviewer changed before approving.
    pub edited_arguments: Option<Value>,
    /// The decision was made by the system (expiry), not by a person: an approval decided
    /// this way does not count as a human's ([`crate::policy::PolicyRequest::approved_by_human`]).
    #[serde(default)]
    pub decided_automatically: bool,
}

impl ApprovalRequest {
    /// Why the call will not run, for the model, when the request was not approved: the
    /// reviewer's rejection (with their comment) or the expiry; `None` when it was approved.
    /// Every engine resuming an agent's call tells the model the same.
    pub fn not_approved_text(&self) -> Option<String> {
        match self.status {
            ApprovalStatus::Approved => None,
            ApprovalStatus::Rejected => Some(format!(
                "A human reviewer ({}) rejected this call{}",
                self.reviewer.as_deref().unwrap_or("unknown"),
                self.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_else(|| ".".into())
            )),
            ApprovalStatus::Expired | ApprovalStatus::Pending => {
                Some("Not executed: the approval request expired without a decision.".into())
            }
        }
    }

    /// A pending request for `call` in `scope`, created now.
    pub fn new(
        scope: &Scope,
        call: ToolCall,
        reason: impl Into<String>,
        priority: Priority,
    ) -> Self {
        let arguments_hash = hash_json(&call.arguments);
        Self {
            id: ApprovalId::generate(),
            tenant: scope.tenant.clone(),
            agent: scope.agent.clone(),
            session: scope.session.clone(),
            run: scope.run.clone(),
            call,
            arguments_hash,
            reason: reason.into(),
            priority,
            status: ApprovalStatus::Pending,
            assignee: None,
            deadline: None,
            created_at: now(),
            decided_at: None,
            reviewer: None,
            comment: None,
            edited_arguments: None,
            decided_automatically: false,
        }
    }

    /// The arguments the approved action must run with: the edited ones if any.
    pub fn approved_arguments(&self) -> &Value {
        self.edited_arguments
            .as_ref()
            .unwrap_or(&self.call.arguments)
    }
}

/// A human's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    /// `Approved`, `Rejected` or `Expired` (`Pending` is refused).
    pub status: ApprovalStatus,
    /// Who decided.
    pub reviewer: String,
    /// A comment.
    pub comment: Option<String>,
    /// Changed arguments (approval only); they are validated and evaluated again on resume.
    pub edited_arguments: Option<Value>,
    /// Decided by the system (expiry), not a person; see
    /// [`ApprovalRequest::decided_automatically`].
    #[serde(default)]
    pub automatic: bool,
}

impl ApprovalDecision {
    /// A decision the system makes on its own (for example on expiry); `reviewer` names the
    /// mechanism (`"expiry"`). It is recorded as automatic and never counts as a human's.
    pub fn automatic(
        status: ApprovalStatus,
        reviewer: impl Into<String>,
        comment: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reviewer: reviewer.into(),
            comment: Some(comment.into()),
            edited_arguments: None,
            automatic: true,
        }
    }

    /// Approve as given.
    pub fn approve(reviewer: impl Into<String>) -> Self {
        Self {
            status: ApprovalStatus::Approved,
            reviewer: reviewer.into(),
            comment: None,
            edited_arguments: None,
            automatic: false,
        }
    }

    /// Reject with a comment the model will see.
    pub fn reject(reviewer: impl Into<String>, comment: impl Into<String>) -> Self {
        Self {
            status: ApprovalStatus::Rejected,
            reviewer: reviewer.into(),
            comment: Some(comment.into()),
            edited_arguments: None,
            automatic: false,
        }
    }

    /// Approve with edited arguments.
    pub fn approve_with_arguments(reviewer: impl Into<String>, arguments: Value) -> Self {
        Self {
            edited_arguments: Some(arguments),
            ..Self::approve(reviewer)
        }
    }

    /// Checks the decision is one a store may apply.
    pub fn validate(&self) -> Result<()> {
        if self.status == ApprovalStatus::Pending {
            return Err(Error::InvalidInput(
                "an approval decision cannot set the status back to pending".into(),
            ));
        }
        if self.edited_arguments.is_some() && self.status != ApprovalStatus::Approved {
            return Err(Error::InvalidInput(
                "edited arguments only go with an approval".into(),
            ));
        }
        Ok(())
    }

    /// Applies the decision to a pending request (what every backend does inside its atomic
    /// step). [`Error::Conflict`] when the request is not pending.
    pub fn apply_to(&self, request: &mut ApprovalRequest, now: DateTime<Utc>) -> Result<()> {
        self.validate()?;
        if request.status != ApprovalStatus::Pending {
            return Err(Error::Conflict(format!(
                "approval {} is already {}",
                request.id,
                request.status.as_str()
            )));
        }
        request.status = self.status;
        request.reviewer = Some(self.reviewer.clone());
        request.comment.clone_from(&self.comment);
        request.edited_arguments.clone_from(&self.edited_arguments);
        request.decided_automatically = self.automatic;
        request.decided_at = Some(now);
        Ok(())
    }
}

/// Orders pending approvals: priority (highest first), deadline (earliest first, none last),
/// creation time.
pub fn approval_queue_order(a: &ApprovalRequest, b: &ApprovalRequest) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (a.deadline, b.deadline) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
        .then_with(|| a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// Status of a tool execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolExecutionStatus {
    /// Claimed and started, not finished. A crash leaves this: the outcome is unknown (in
    /// doubt) until the executor or a human resolves it
    /// ([`crate::exec::ToolExecutor::resolve_in_doubt`]).
    Started,
    /// Finished successfully; final.
    Succeeded,
    /// Finished with an error.
    Failed,
}

impl ToolExecutionStatus {
    /// `"started"`, `"succeeded"` or `"failed"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ToolExecutionStatus::Started => "started",
            ToolExecutionStatus::Succeeded => "succeeded",
            ToolExecutionStatus::Failed => "failed",
        }
    }
}

/// The record of one tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolExecution {
    /// Owner.
    pub tenant: TenantId,
    /// Unique per (tenant, key).
    pub idempotency_key: IdempotencyKey,
    /// The agent.
    pub agent: AgentId,
    /// The session.
    pub session: SessionId,
    /// The run.
    pub run: RunId,
    /// The model's call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// SHA-256 of the unredacted arguments ([`crate::redact::hash_json`]): a replay under the
    /// same key must present the same hash. Empty in records written before it existed.
    #[serde(default)]
    pub arguments_hash: String,
    /// Which attempt this is: 1 for the first claim, +1 each time a failed execution is
    /// claimed again.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Arguments, redacted by the tool's rules (shared with the call's audit entry).
    pub input: SharedJson,
    /// Output, redacted by the tool's rules (replayed for a repeated idempotency key; shared
    /// with the call's audit entry).
    pub output: Option<SharedJson>,
    /// Error text.
    pub error: Option<String>,
    /// Status.
    pub status: ToolExecutionStatus,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

fn first_attempt() -> u32 {
    1
}

impl ToolExecution {
    /// A `started` record for a call about to run in `scope` under `key`; `input` is the
    /// redacted arguments and `arguments_hash` the hash of the unredacted ones.
    pub fn started(
        scope: &Scope,
        key: IdempotencyKey,
        call_id: impl Into<String>,
        tool: impl Into<String>,
        input: impl Into<SharedJson>,
        arguments_hash: String,
    ) -> Self {
        Self {
            tenant: scope.tenant.clone(),
            idempotency_key: key,
            agent: scope.agent.clone(),
            session: scope.session.clone(),
            run: scope.run.clone(),
            call_id: call_id.into(),
            tool: tool.into(),
            arguments_hash,
            attempt: 1,
            input: input.into(),
            output: None,
            error: None,
            status: ToolExecutionStatus::Started,
            started_at: now(),
            finished_at: None,
        }
    }
}

/// What [`super::ToolExecutionStore::claim_tool_execution`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToolClaim {
    /// This caller holds the key now and may run the tool; `attempt` is the claimed attempt.
    Claimed {
        /// 1 for a new key; higher when a failed execution was claimed again.
        attempt: u32,
    },
    /// Someone else holds or finished the key: a `succeeded` record (replay it), a `started`
    /// one (running elsewhere, or in doubt after a crash), or a `failed` one for another tool or
    /// other arguments (a mismatch). The caller must not run the tool.
    Existing(Box<ToolExecution>),
}

/// The result of [`super::CounterStore::counter_add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterOutcome {
    /// Whether the delta was applied.
    pub applied: bool,
    /// The value after the call.
    pub value: i64,
}

/// Where a long-term memory lives (always inside one tenant).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", content = "id", rename_all = "snake_case")]
pub enum MemoryScope {
    /// Shared by all of the tenant's agents.
    Tenant,
    /// One agent's own learned preferences (the seeds' "global" scope).
    Agent(AgentId),
    /// About one entity (`lead:42`, `customer:acme`).
    Entity(String),
}

impl MemoryScope {
    /// A stable text form (`tenant`, `agent:support`, `entity:lead:42`) for storage keys.
    pub fn storage_key(&self) -> String {
        match self {
            MemoryScope::Tenant => "tenant".into(),
            MemoryScope::Agent(a) => format!("agent:{a}"),
            MemoryScope::Entity(e) => format!("entity:{e}"),
        }
    }
}
