//! [`Workflows`]: publish definitions, start and resume runs, deliver events, and drive runs
//! step by step through the store.
//!
//! Every step is one [`WorkflowStore::commit_workflow_step`]: the run's new state and the
//! step's log row together, compare-and-swapped on the version the worker claimed. A step's
//! effects happen before its commit; a crash in between leaves the run at the step, and the
//! next worker runs it again — tool nodes go through the governed [`ToolExecutor`] under a key
//! derived from (run, node, visit, attempt), so a call that completed is replayed from its
//! record, not repeated; one that may have started is [in doubt](agentkit_core::exec::CallOutcome::InDoubt)
//! (retried automatically only for idempotent tools, else the run waits for a human).

mod drive;
mod nodes;
mod recover;

pub use drive::DEFAULT_MAX_VISITS;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::id::{ApprovalId, IntoId, RunId, SessionId, TenantId, WorkflowId};
use agentkit_core::scope::Scope;
use agentkit_core::store::{
    ApprovalDecision, ApprovalRequest, RunRecord, SessionRecord, StateStore, Step,
};
use agentkit_core::{Error, Result};
use chrono::TimeDelta;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::definition::WorkflowDefinition;
use crate::record::{
    ClaimRequest, Created, Delivery, RunQuery, RunState, StepCommit, StepRecord, Wait,
    WorkflowEvent, WorkflowRun,
};
use crate::store::WorkflowStore;
use crate::validate::{Catalog, CompiledWorkflow, validate};

/// The default lease a worker takes on a run.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How often a parent run checks on a child that has not woken it.
pub const CHILD_POLL: Duration = Duration::from_secs(60);

/// A request to start a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StartRequest {
    /// The workflow.
    pub workflow: WorkflowId,
    /// Its version; the latest published when `None`.
    pub version: Option<u32>,
    /// The input: a JSON object whose keys become context keys.
    pub input: Value,
    /// Parameter overrides (`params.<name>`).
    pub params: Map<String, Value>,
    /// Starts at most one run per key and workflow (a webhook retried by its sender, a schedule
    /// slot, a parent's sub-workflow step).
    pub trigger_key: Option<String>,
    /// Use this run id.
    pub run_id: Option<RunId>,
    pub(crate) parent: Option<RunId>,
}

impl StartRequest {
    /// A start of the latest version of `workflow` with `input`.
    pub fn new(workflow: impl IntoId<WorkflowId>, input: Value) -> Result<Self> {
        Ok(Self {
            workflow: workflow.into_id()?,
            version: None,
            input,
            params: Map::new(),
            trigger_key: None,
            run_id: None,
            parent: None,
        })
    }

    /// Pins a version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the trigger's idempotency key.
    pub fn trigger_key(mut self, key: impl Into<String>) -> Self {
        self.trigger_key = Some(key.into());
        self
    }

    /// Overrides a parameter.
    pub fn param(mut self, name: impl Into<String>, value: Value) -> Self {
        self.params.insert(name.into(), value);
        self
    }

    /// Uses a given run id.
    pub fn run_id(mut self, id: RunId) -> Self {
        self.run_id = Some(id);
        self
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn WorkflowStore>,
    pub(crate) executor: ToolExecutor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lease: Duration,
    pub(crate) agents: HashMap<agentkit_core::id::AgentId, agentkit_core::agent::Agent>,
    compiled: Mutex<HashMap<(TenantId, WorkflowId, u32), Arc<CompiledWorkflow>>>,
    pub(crate) wake: Notify,
}

/// The workflow engine: cheap to clone, share it with workers and request handlers.
///
/// ```
/// # async fn demo() -> agentkit_core::Result<()> {
/// use std::sync::Arc;
/// use agentkit_core::exec::{ToolExecutor, ToolSet};
/// use agentkit_core::store::InMemoryStore;
/// use agentkit_workflow::{InMemoryWorkflowStore, RunState, StartRequest, Workflows, WorkflowDefinition};
/// use serde_json::json;
///
/// let state = Arc::new(InMemoryStore::new());
/// let engine = Workflows::builder(Arc::new(InMemoryWorkflowStore::new()))
///     .executor(ToolExecutor::builder(ToolSet::new([])?, state).build())
///     .build();
/// let def: WorkflowDefinition = serde_json::from_value(json!({
///     "id": "greet", "version": 1, "start": "hello", "inputs": ["name"],
///     "nodes": [{"id": "hello", "kind": "transform", "set": {"greeting": "Hello ${name}"}}]
/// })).map_err(|e| agentkit_core::Error::InvalidConfig(e.to_string()))?;
/// engine.publish("acme", &def).await?;
/// let run = engine.start("acme", StartRequest::new("greet", json!({"name": "Ada"}))?).await?;
/// engine.run_due("worker-1").await?;
/// let done = engine.get_run("acme", &run.run().id).await?.expect("stored");
/// assert_eq!(done.state, RunState::Done);
/// assert_eq!(done.context["greeting"], "Hello Ada");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Workflows {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Workflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflows")
            .field("lease", &self.inner.lease)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Builds [`Workflows`].
pub struct WorkflowsBuilder {
    store: Arc<dyn WorkflowStore>,
    executor: Option<ToolExecutor>,
    clock: Arc<dyn Clock>,
    lease: Duration,
    agents: HashMap<agentkit_core::id::AgentId, agentkit_core::agent::Agent>,
}

impl std::fmt::Debug for WorkflowsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowsBuilder").finish_non_exhaustive()
    }
}

impl WorkflowsBuilder {
    /// The governed executor tool nodes and compensations run through (its tools, policy,
    /// meter and state store). Without one, the engine has no tools and keeps approvals and
    /// audit entries in an in-memory state store.
    pub fn executor(mut self, executor: ToolExecutor) -> Self {
        self.executor = Some(executor);
        self
    }

    /// The clock (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long a worker's claim on a run lasts without a heartbeat (default 30 s). A worker
    /// renews it every third of this for as long as it drives the run; a worker that stops
    /// (a crash) loses it after this long, and another worker continues the run.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(10));
        self
    }

    /// Registers an agent for agent nodes.
    pub fn agent(mut self, agent: agentkit_core::agent::Agent) -> Self {
        self.agents.insert(agent.id().clone(), agent);
        self
    }

    /// The engine.
    pub fn build(self) -> Workflows {
        let executor = self.executor.unwrap_or_else(|| {
            let tools = ToolSet::default();
            ToolExecutor::builder(tools, Arc::new(agentkit_core::store::InMemoryStore::new()))
                .build()
        });
        Workflows {
            inner: Arc::new(Inner {
                store: self.store,
                executor,
                clock: self.clock,
                lease: self.lease,
                agents: self.agents,
                compiled: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        }
    }
}

impl Workflows {
    /// A builder over a workflow store.
    pub fn builder(store: Arc<dyn WorkflowStore>) -> WorkflowsBuilder {
        WorkflowsBuilder {
            store,
            executor: None,
            clock: Arc::new(SystemClock),
            lease: DEFAULT_LEASE,
            agents: HashMap::new(),
        }
    }

    /// The workflow store.
    pub fn store(&self) -> &Arc<dyn WorkflowStore> {
        &self.inner.store
    }

    /// The agentkit state store (approvals, audit, usage, tool executions).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        self.inner.executor.store()
    }

    /// The governed executor.
    pub fn executor(&self) -> &ToolExecutor {
        &self.inner.executor
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// What definitions may refer to: the executor's tools and the registered agents.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            tools: Some(
                self.inner
                    .executor
                    .tools()
                    .specs()
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
            ),
            agents: Some(self.inner.agents.keys().cloned().collect()),
        }
    }

    /// Validates a definition against this engine's tools and agents and publishes it.
    /// [`Error::InvalidConfig`] lists every problem (see [`validate`]); publishing other
    /// content under a published version is [`Error::Conflict`].
    pub async fn publish(
        &self,
        tenant: impl IntoId<TenantId>,
        definition: &WorkflowDefinition,
    ) -> Result<()> {
        let tenant = tenant.into_id()?;
        let compiled = validate(definition, &self.catalog())?;
        self.inner.store.put_workflow(&tenant, definition).await?;
        self.cache(&tenant, Arc::new(compiled));
        Ok(())
    }

    fn cache(&self, tenant: &TenantId, compiled: Arc<CompiledWorkflow>) {
        let key = (
            tenant.clone(),
            compiled.def.id.clone(),
            compiled.def.version,
        );
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, compiled);
    }

    pub(crate) async fn compiled(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<Arc<CompiledWorkflow>> {
        if let Some(v) = version {
            let key = (tenant.clone(), id.clone(), v);
            if let Some(c) = self
                .inner
                .compiled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
            {
                return Ok(c.clone());
            }
        }
        let def = self
            .inner
            .store
            .get_workflow(tenant, id, version)
            .await?
            .ok_or_else(|| match version {
                Some(v) => Error::NotFound(format!("workflow `{id}` version {v}")),
                None => Error::NotFound(format!("workflow `{id}`")),
            })?;
        let compiled = Arc::new(validate(&def, &self.catalog())?);
        self.cache(tenant, compiled.clone());
        Ok(compiled)
    }

    /// Starts a run (or, with a trigger key that started one before, returns that run:
    /// [`Created::Existing`]). The run is pending until a worker claims it.
    pub async fn start(
        &self,
        tenant: impl IntoId<TenantId>,
        request: StartRequest,
    ) -> Result<Created> {
        let tenant = tenant.into_id()?;
        let wf = self
            .compiled(&tenant, &request.workflow, request.version)
            .await?;
        let def = &wf.def;
        let Value::Object(mut context) = request.input else {
            return Err(Error::InvalidInput(format!(
                "the input of workflow `{}` must be a JSON object",
                def.id
            )));
        };
        let missing: Vec<&str> = def
            .inputs
            .iter()
            .filter(|k| !context.contains_key(k.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::InvalidInput(format!(
                "workflow `{}` needs the input keys {}",
                def.id,
                missing.join(", ")
            )));
        }
        let mut params: Map<String, Value> = def
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in request.params {
            if !def.params.contains_key(&k) {
                return Err(Error::InvalidInput(format!(
                    "workflow `{}` has no parameter `{k}`",
                    def.id
                )));
            }
            params.insert(k, v);
        }
        context.insert("params".into(), Value::Object(params));
        let now = self.inner.clock.now();
        let mut run = WorkflowRun::new(
            tenant.clone(),
            request.run_id.unwrap_or_else(RunId::generate),
            def.id.clone(),
            def.version,
            &def.start,
            Value::Object(context),
            now,
        );
        run.trigger_key = request.trigger_key;
        run.parent = request.parent;
        let created = self.inner.store.create_workflow_run(&tenant, &run).await?;
        if created.is_new() {
            // The agentkit run its approvals, executions and audit entries belong to. (A crash
            // right here leaves it missing; the steps that need it create it then.)
            self.ensure_core_run(&self.scope(&run, &wf)?).await?;
            tracing::debug!(tenant = %tenant, run = %run.id, workflow = %def.id, "workflow run started");
            self.inner.wake.notify_waiters();
        }
        Ok(created)
    }

    /// The agentkit scope of a run's governed calls, approvals and audit entries.
    pub(crate) fn scope(&self, run: &WorkflowRun, wf: &CompiledWorkflow) -> Result<Scope> {
        Ok(Scope::new(
            run.tenant.clone(),
            wf.def.agent.clone(),
            SessionId::new(format!("wf-{}", run.id))?,
            run.id.clone(),
        ))
    }

    /// Creates the agentkit session and run a workflow run's approvals and records hang on.
    pub(crate) async fn ensure_core_run(&self, scope: &Scope) -> Result<()> {
        let state = self.state();
        if state.get_run(&scope.tenant, &scope.run).await?.is_some() {
            return Ok(());
        }
        let step = Step {
            session: Some(SessionRecord::new(
                scope.tenant.clone(),
                scope.session.clone(),
                scope.agent.clone(),
            )),
            new_run: Some(RunRecord::new(scope)),
            ..Step::default()
        };
        match state.commit_step(&scope.tenant, step).await {
            Ok(_) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A run.
    pub async fn get_run(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
    ) -> Result<Option<WorkflowRun>> {
        self.inner
            .store
            .get_workflow_run(&tenant.into_id()?, run)
            .await
    }

    /// Runs matching a query, oldest first.
    pub async fn list_runs(
        &self,
        tenant: impl IntoId<TenantId>,
        query: &RunQuery,
    ) -> Result<Vec<WorkflowRun>> {
        self.inner
            .store
            .list_workflow_runs(&tenant.into_id()?, query)
            .await
    }

    /// A run's step log.
    pub async fn steps(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
    ) -> Result<Vec<StepRecord>> {
        self.inner
            .store
            .list_workflow_steps(&tenant.into_id()?, run)
            .await
    }

    /// The archived snapshots of a run (its `snapshot` nodes' audit entries), oldest first.
    /// Each entry's `output` holds `{"sha256": .., "snapshot": {context, steps, ..}}`; the
    /// audit chain makes them tamper-evident.
    pub async fn snapshots(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
    ) -> Result<Vec<agentkit_core::store::AuditEntry>> {
        let query = agentkit_core::store::AuditQuery::all()
            .kind("workflow.snapshot")
            .run(run.clone());
        self.state().list_audit(&tenant.into_id()?, &query).await
    }

    /// Delivers an event to the runs waiting for it (or keeps it for the first that waits).
    pub async fn send_event(
        &self,
        tenant: impl IntoId<TenantId>,
        event: &WorkflowEvent,
    ) -> Result<Delivery> {
        let delivery = self
            .inner
            .store
            .deliver_workflow_event(&tenant.into_id()?, event)
            .await?;
        if matches!(delivery, Delivery::Woke(_)) {
            self.inner.wake.notify_waiters();
        }
        Ok(delivery)
    }

    /// Continues a waiting run with `input` (a host endpoint's answer, a manual nudge): the
    /// waiting node takes it. `false` when the run is not waiting. An approval wait re-checks
    /// its request and keeps waiting while it is pending.
    pub async fn resume(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
        input: Value,
    ) -> Result<bool> {
        self.wake(&tenant.into_id()?, run, |_| true, input).await
    }

    /// Decides an approval request a run waits for (exactly once: a second decision is
    /// [`Error::Conflict`]) and continues the run.
    pub async fn decide_approval(
        &self,
        tenant: impl IntoId<TenantId>,
        approval: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        let tenant = tenant.into_id()?;
        let decided = self
            .state()
            .decide_approval(&tenant, approval, decision)
            .await?;
        self.approval_decided(&tenant, &decided).await?;
        Ok(decided)
    }

    /// Continues the run waiting for `request` after it was decided elsewhere (a host that
    /// decides through the agentkit approval store). `false` when no run waits for it.
    pub async fn approval_decided(
        &self,
        tenant: &TenantId,
        request: &ApprovalRequest,
    ) -> Result<bool> {
        let id = request.id.clone();
        let input = json!({
            "approval": request.id,
            "status": request.status,
        });
        let woke = self
            .wake(
                tenant,
                &request.run,
                move |w| matches!(w, Wait::Approval { approval, .. } if *approval == id),
                input.clone(),
            )
            .await?;
        if woke {
            return Ok(true);
        }
        // An agent node's own approval: its run is `<workflow run>.<step>`.
        let Some((parent, _)) = request.run.as_str().rsplit_once('.') else {
            return Ok(false);
        };
        let agent_run = request.run.clone();
        self.wake(
            tenant,
            &RunId::new(parent)?,
            move |w| matches!(w, Wait::Agent { run } if *run == agent_run),
            input,
        )
        .await
    }

    /// Cancels a run that has not finished; `false` when it had. A step running elsewhere
    /// finishes its effect but cannot commit.
    pub async fn cancel(
        &self,
        tenant: impl IntoId<TenantId>,
        run: &RunId,
        reason: &str,
    ) -> Result<bool> {
        let tenant = tenant.into_id()?;
        for _ in 0..8 {
            let Some(stored) = self.inner.store.get_workflow_run(&tenant, run).await? else {
                return Err(Error::NotFound(format!("workflow run `{run}`")));
            };
            if stored.state.is_final() {
                return Ok(false);
            }
            let mut next = stored.clone();
            next.state = RunState::Cancelled;
            next.error = Some(format!("cancelled: {reason}"));
            next.cursor.tokens.clear();
            next.wait = None;
            next.wake_at = None;
            next.lease = None;
            next.version += 1;
            next.updated_at = self.inner.clock.now();
            let commit = StepCommit::new(next, stored.version, None);
            match self
                .inner
                .store
                .commit_workflow_step(&tenant, &commit)
                .await
            {
                Ok(_) => return Ok(true),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "workflow run `{run}` kept changing; cancel again"
        )))
    }

    /// Makes a waiting run whose wait satisfies `matches` runnable with `input`.
    pub(crate) async fn wake(
        &self,
        tenant: &TenantId,
        run: &RunId,
        matches: impl Fn(&Wait) -> bool,
        input: Value,
    ) -> Result<bool> {
        for _ in 0..8 {
            let Some(stored) = self.inner.store.get_workflow_run(tenant, run).await? else {
                return Ok(false);
            };
            if stored.state != RunState::Waiting || !stored.wait.as_ref().is_some_and(&matches) {
                return Ok(false);
            }
            let mut next = stored.clone();
            next.wake(input.clone(), self.inner.clock.now());
            next.lease = None;
            let commit = StepCommit::new(next, stored.version, None);
            match self.inner.store.commit_workflow_step(tenant, &commit).await {
                Ok(_) => {
                    self.inner.wake.notify_waiters();
                    return Ok(true);
                }
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "workflow run `{run}` kept changing; resume again"
        )))
    }

    /// Claims and drives every run that is due now, one after another, until none is left;
    /// returns the steps taken. A test (with a [`ManualClock`](crate::clock::ManualClock)) or a
    /// cron-style host calls this; long-lived processes run a [`Worker`](crate::Worker).
    pub async fn run_due(&self, worker: &str) -> Result<usize> {
        let mut steps = 0;
        loop {
            let now = self.inner.clock.now();
            let until = now + lease_delta(self.inner.lease);
            let claimed = self
                .inner
                .store
                .claim_workflow_runs(&ClaimRequest::new(worker, now, until, 16))
                .await?;
            if claimed.is_empty() {
                return Ok(steps);
            }
            for run in claimed {
                steps += self
                    .drive(run, worker, &tokio_util::sync::CancellationToken::new())
                    .await?;
            }
        }
    }
}

pub(crate) fn lease_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::seconds(30))
}
