//! What the workflow store keeps: runs (one row each, updated per step), the step log (one row
//! per step, append-only) and undelivered events.

use std::collections::BTreeMap;

use agentkit_core::id::{ApprovalId, IdempotencyKey, RunId, TenantId, WorkflowId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, no step taken yet.
    Pending,
    /// Has runnable work (possibly not before `wake_at`, for a retry backoff).
    Running,
    /// Waiting for a human, an event, a timer or a child run; holds no process.
    Waiting,
    /// Finished.
    Done,
    /// Failed (after its failure strategy ran).
    Failed,
    /// Cancelled by the host.
    Cancelled,
}

impl RunState {
    /// `pending`, `running`, `waiting`, `done`, `failed`, `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RunState::Pending,
            "running" => RunState::Running,
            "waiting" => RunState::Waiting,
            "done" => RunState::Done,
            "failed" => RunState::Failed,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }

    /// Done, failed or cancelled: nothing more happens to the run.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RunState::Done | RunState::Failed | RunState::Cancelled
        )
    }
}

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Wait {
    /// A decision on an approval request in the agentkit approval store.
    Approval {
        /// The request.
        approval: ApprovalId,
        /// Why the request exists.
        purpose: ApprovalPurpose,
    },
    /// An event with this name and correlation key.
    Event {
        /// The event name.
        name: String,
        /// The correlation key.
        correlation: String,
    },
    /// A point in time (the run's `wake_at`).
    Timer,
    /// A child run to finish.
    Child {
        /// The child run.
        run: RunId,
    },
    /// An agent run suspended on its own approvals.
    Agent {
        /// The agent's run.
        run: RunId,
    },
    /// A tool call whose outcome is unknown after a crash: a human resolves the execution record
    /// (`ToolExecutor::resolve_in_doubt`) and resumes the run.
    InDoubt {
        /// The execution's key.
        key: IdempotencyKey,
    },
}

impl Wait {
    /// The key an event delivery looks runs up by: `Some` for event waits.
    pub fn event_key(&self) -> Option<String> {
        match self {
            Wait::Event { name, correlation } => Some(event_key(name, correlation)),
            _ => None,
        }
    }
}

/// The lookup key of an event name and correlation.
pub fn event_key(name: &str, correlation: &str) -> String {
    format!("{name}\u{1f}{correlation}")
}

/// Why a workflow asked for an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPurpose {
    /// An approval node.
    Node,
    /// The policy requires approval of a tool node's call.
    Tool,
    /// A failed node under `wait_for_human`: approve to retry, approve with `{"action": "skip"}`
    /// to skip, reject to abort.
    Failure,
}

/// One thread of execution in a run: the node it is at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Unique within the run.
    pub id: u32,
    /// The node to run next.
    pub node: String,
    /// The attempt of that node (1 on first entry).
    pub attempt: u32,
    /// Which entry into the node this is (1 the first time; loops count up).
    pub visit: u32,
}

/// A completed node whose compensation may run on rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    /// The node.
    pub node: String,
    /// Its entry count.
    pub visit: u32,
}

/// Where a run is in its graph; changes with every step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Active tokens, lowest id first; the run is done when none is left.
    pub tokens: Vec<Token>,
    /// The next token id.
    pub next_token: u32,
    /// Arrivals per join node.
    #[serde(default)]
    pub joins: BTreeMap<String, u32>,
    /// Entries per node.
    #[serde(default)]
    pub visits: BTreeMap<String, u32>,
    /// Completed nodes with a compensation, in completion order.
    #[serde(default)]
    pub compensable: Vec<Completed>,
    /// The token the run's wait belongs to.
    #[serde(default)]
    pub waiting: Option<u32>,
    /// Set while compensations run: the error that started the rollback.
    #[serde(default)]
    pub rolling_back: Option<String>,
}

/// A workflow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowRun {
    /// Owner.
    pub tenant: TenantId,
    /// Id (also the agentkit run id of its governed calls, approvals and audit entries).
    pub id: RunId,
    /// The workflow.
    pub workflow: WorkflowId,
    /// The version it runs.
    pub workflow_version: u32,
    /// State.
    pub state: RunState,
    /// The JSON context: inputs, `params`, and each completed node's output.
    pub context: Value,
    /// Position in the graph.
    pub cursor: Cursor,
    /// What it waits for, when waiting.
    pub wait: Option<Wait>,
    /// The input a resume, event or decision delivered, for the waiting node to take.
    pub resume_input: Option<Value>,
    /// Not runnable before this time (timers, wait timeouts, retry backoff).
    pub wake_at: Option<DateTime<Utc>>,
    /// The next step sequence number (steps start at 1).
    pub next_seq: u64,
    /// Optimistic-concurrency version; every change (claims included) increments it.
    pub version: u64,
    /// The worker holding the run, and until when.
    pub lease: Option<Lease>,
    /// The idempotency key of the trigger that started it (one run per key and workflow).
    pub trigger_key: Option<String>,
    /// The parent run, for a sub-workflow.
    pub parent: Option<RunId>,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl WorkflowRun {
    /// A pending run at the workflow's start node.
    pub fn new(
        tenant: TenantId,
        id: RunId,
        workflow: WorkflowId,
        workflow_version: u32,
        start: &str,
        context: Value,
        now: DateTime<Utc>,
    ) -> Self {
        let mut cursor = Cursor {
            tokens: vec![Token {
                id: 1,
                node: start.to_owned(),
                attempt: 1,
                visit: 1,
            }],
            next_token: 2,
            ..Cursor::default()
        };
        cursor.visits.insert(start.to_owned(), 1);
        Self {
            tenant,
            id,
            workflow,
            workflow_version,
            state: RunState::Pending,
            context,
            cursor,
            wait: None,
            resume_input: None,
            wake_at: None,
            next_seq: 1,
            version: 1,
            lease: None,
            trigger_key: None,
            parent: None,
            error: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// When the run becomes claimable, `None` when it never does by itself: pending and
    /// running runs at their `wake_at` (or at once), waiting runs at their `wake_at` (a timer
    /// or a timeout) if they have one; never before a live lease expires. Stores index this.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        let base = match self.state {
            RunState::Pending | RunState::Running => self.wake_at.unwrap_or(self.created_at),
            RunState::Waiting => self.wake_at?,
            RunState::Done | RunState::Failed | RunState::Cancelled => return None,
        };
        Some(match &self.lease {
            Some(l) => base.max(l.until),
            None => base,
        })
    }

    /// Makes a waiting run runnable with `input` for its waiting node to take (an event's
    /// payload, a resume, a decision), as of `at`; increments the version. Its `wait` stays,
    /// so the node knows what woke it.
    pub fn wake(&mut self, input: Value, at: DateTime<Utc>) {
        self.state = RunState::Running;
        self.resume_input = Some(input);
        self.wake_at = None;
        self.version += 1;
        self.updated_at = at.max(self.updated_at);
    }

    /// Whether `owner` still holds the run at `version` (what a lease renewal requires).
    pub fn held_by(&self, version: u64, owner: &str) -> bool {
        self.version == version && self.lease.as_ref().is_some_and(|l| l.owner == owner)
    }

    /// The event lookup key while waiting for an event.
    pub fn event_key(&self) -> Option<String> {
        match (self.state, &self.wait) {
            (RunState::Waiting, Some(w)) => w.event_key(),
            _ => None,
        }
    }
}

/// A worker's hold on a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker.
    pub owner: String,
    /// When it expires unless renewed.
    pub until: DateTime<Utc>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Completed with an output.
    Succeeded,
    /// Failed this attempt.
    Failed,
    /// Started waiting.
    Waiting,
    /// Skipped by a human's decision.
    Skipped,
    /// A compensation ran.
    Compensated,
}

impl StepStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Waiting => "waiting",
            StepStatus::Skipped => "skipped",
            StepStatus::Compensated => "compensated",
        }
    }
}

/// One row of a run's step log (append-only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepRecord {
    /// Owner.
    pub tenant: TenantId,
    /// The run.
    pub run: RunId,
    /// Position in the run's log (1, 2, ...).
    pub seq: u64,
    /// The node.
    pub node: String,
    /// The node's kind.
    pub kind: String,
    /// The attempt.
    pub attempt: u32,
    /// The entry count of the node.
    pub visit: u32,
    /// How it ended.
    pub status: StepStatus,
    /// What it was given (rendered arguments, for example).
    pub input: Value,
    /// What it produced.
    pub output: Value,
    /// The error, when failed.
    pub error: Option<String>,
    /// The worker that ran it.
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
}

/// An event for waiting runs (`Workflows::send_event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowEvent {
    /// Deduplicates deliveries: an id seen before is ignored (a retried webhook).
    pub id: String,
    /// The event name.
    pub name: String,
    /// The correlation key.
    pub correlation: String,
    /// The payload, the waiting node's output.
    pub payload: Value,
    /// When it was sent.
    pub at: DateTime<Utc>,
}

impl WorkflowEvent {
    /// An event created at `at`.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        correlation: impl Into<String>,
        payload: Value,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            correlation: correlation.into(),
            payload,
            at,
        }
    }
}

/// What became of a delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Waiting runs took it (made runnable with the payload).
    Woke(Vec<RunId>),
    /// No run waits for it yet: it is kept for the first run that does.
    Kept,
    /// An event with this id was delivered before; nothing changed.
    Duplicate,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunQuery {
    /// Only this workflow.
    pub workflow: Option<WorkflowId>,
    /// Only these states (any when empty).
    pub states: Vec<RunState>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// At most this many (oldest first).
    pub limit: Option<usize>,
}

impl RunQuery {
    /// Every run.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only one workflow.
    pub fn workflow(mut self, id: WorkflowId) -> Self {
        self.workflow = Some(id);
        self
    }

    /// Only some states.
    pub fn states(mut self, states: impl IntoIterator<Item = RunState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Created in `[from, to)`.
    pub fn created_between(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.created_from = Some(from);
        self.created_to = Some(to);
        self
    }

    /// At most `n`.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether a run matches (for stores that filter in memory).
    pub fn matches(&self, run: &WorkflowRun) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == run.workflow)
            && (self.states.is_empty() || self.states.contains(&run.state))
            && self.created_from.is_none_or(|t| run.created_at >= t)
            && self.created_to.is_none_or(|t| run.created_at < t)
    }
}

/// A worker's request for runnable work.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The worker's id (the lease owner).
    pub worker: String,
    /// The current time (runs with `wake_at` after it are not runnable).
    pub now: DateTime<Utc>,
    /// The lease's expiry.
    pub lease_until: DateTime<Utc>,
    /// At most this many runs.
    pub limit: usize,
    /// At most this many runs of one tenant held by the worker, counting [`ClaimRequest::busy`].
    pub per_tenant: Option<usize>,
    /// Runs of each tenant the worker holds already (for `per_tenant`).
    pub busy: std::collections::HashMap<TenantId, usize>,
}

impl ClaimRequest {
    /// A request for up to `limit` runs leased until `lease_until`.
    pub fn new(
        worker: impl Into<String>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Self {
        Self {
            worker: worker.into(),
            now,
            lease_until,
            limit,
            per_tenant: None,
            busy: std::collections::HashMap::new(),
        }
    }

    /// Caps the runs of one tenant.
    pub fn per_tenant(mut self, n: usize) -> Self {
        self.per_tenant = Some(n);
        self
    }

    /// What a claim takes from `candidates` (due runs, oldest due first): those that are
    /// [claimable](ClaimRequest::is_claimable), within `limit` and the tenant caps, each with
    /// this worker's lease and its version incremented — ready for the store to write.
    pub fn take(&self, candidates: impl IntoIterator<Item = WorkflowRun>) -> Vec<WorkflowRun> {
        let mut per_tenant: std::collections::HashMap<TenantId, usize> = Default::default();
        let mut claimed = Vec::new();
        for mut run in candidates {
            if claimed.len() >= self.limit {
                break;
            }
            if !self.is_claimable(&run) {
                continue;
            }
            let n = per_tenant
                .entry(run.tenant.clone())
                .or_insert_with(|| self.busy_for(&run.tenant));
            if self.per_tenant.is_some_and(|cap| *n >= cap) {
                continue;
            }
            *n += 1;
            run.lease = Some(Lease {
                owner: self.worker.clone(),
                until: self.lease_until,
            });
            run.version += 1;
            claimed.push(run);
        }
        claimed
    }

    /// How many due runs a store should look at to fill a claim: more than `limit` when tenant
    /// caps may pass some over.
    pub fn window(&self) -> usize {
        if self.per_tenant.is_some() {
            self.limit.saturating_mul(8)
        } else {
            self.limit
        }
    }

    /// How many runs of `tenant` the worker holds before this claim.
    pub fn busy_for(&self, tenant: &TenantId) -> usize {
        self.busy.get(tenant).copied().unwrap_or(0)
    }

    /// Whether the store may hand `run` to this worker now: pending or running and due, or
    /// waiting with a due `wake_at` (a timer or a timeout), and not leased by a live lease.
    pub fn is_claimable(&self, run: &WorkflowRun) -> bool {
        run.due_at().is_some_and(|t| t <= self.now)
    }
}

/// One step's commit: the run's new state and the step's log row, written together.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepCommit {
    /// The run as it is after the step; `version` is the new version.
    pub run: WorkflowRun,
    /// The version the store must still hold (the one the worker claimed or last committed).
    pub expected_version: u64,
    /// The step's row (none for a commit that only moves the run, e.g. a release).
    pub step: Option<StepRecord>,
}

impl StepCommit {
    /// A commit of `run` (its version already incremented) replacing `expected_version`.
    pub fn new(run: WorkflowRun, expected_version: u64, step: Option<StepRecord>) -> Self {
        Self {
            run,
            expected_version,
            step,
        }
    }

    /// What every store checks before writing: the run and the step belong to `tenant`, and
    /// the step to the run. [`agentkit_core::Error::InvalidInput`] otherwise.
    pub fn check(&self, tenant: &TenantId) -> agentkit_core::Result<()> {
        agentkit_core::store::ensure_tenant(tenant, &self.run.tenant, "workflow run")?;
        if let Some(step) = &self.step {
            agentkit_core::store::ensure_tenant(tenant, &step.tenant, "workflow step")?;
            if step.run != self.run.id {
                return Err(agentkit_core::Error::InvalidInput(format!(
                    "step of run `{}` committed with run `{}`",
                    step.run, self.run.id
                )));
            }
        }
        Ok(())
    }
}

/// What a commit did beyond writing.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct CommitOutcome {
    /// The run entered an event wait and a kept event matched: the store consumed it and made
    /// the run runnable again; this is the run as stored.
    pub woken: Option<WorkflowRun>,
}

/// How a run was created.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Created {
    /// A new run.
    New(WorkflowRun),
    /// A run with the same workflow and trigger key exists: that one.
    Existing(WorkflowRun),
}

impl Created {
    /// The run, new or existing.
    pub fn run(&self) -> &WorkflowRun {
        match self {
            Created::New(r) | Created::Existing(r) => r,
        }
    }

    /// Whether the run is new.
    pub fn is_new(&self) -> bool {
        matches!(self, Created::New(_))
    }
}
