//! [`InMemoryWorkflowStore`]: the workflow store in process memory, for tests and for hosts
//! that need no durability.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use agentkit_core::id::{RunId, TenantId, WorkflowId};
use agentkit_core::store::ensure_tenant;
use agentkit_core::{Error, Result, async_trait};
use chrono::{DateTime, Utc};

use super::WorkflowStore;
use crate::definition::WorkflowDefinition;
use crate::record::{
    ClaimRequest, CommitOutcome, Created, Delivery, Lease, RunQuery, RunState, StepCommit,
    StepRecord, WorkflowEvent, WorkflowRun, event_key,
};

type Key = (TenantId, RunId);

#[derive(Default)]
struct State {
    workflows: HashMap<(TenantId, WorkflowId), BTreeMap<u32, WorkflowDefinition>>,
    runs: HashMap<Key, WorkflowRun>,
    triggers: HashMap<(TenantId, WorkflowId, String), RunId>,
    steps: HashMap<Key, Vec<StepRecord>>,
    /// Runs waiting for an event, by (tenant, event key).
    waiting: HashMap<(TenantId, String), BTreeSet<RunId>>,
    /// Runs with a `wake_at`, by time.
    timed: BTreeSet<(DateTime<Utc>, TenantId, RunId)>,
    /// Runs that are runnable now or after their lease expires, in creation order.
    ready: BTreeSet<(DateTime<Utc>, TenantId, RunId)>,
    seen_events: HashSet<(TenantId, String)>,
    inbox: HashMap<(TenantId, String), VecDeque<WorkflowEvent>>,
}

impl State {
    fn unindex(&mut self, run: &WorkflowRun) {
        if let Some(k) = run.event_key() {
            let key = (run.tenant.clone(), k);
            if let Some(set) = self.waiting.get_mut(&key) {
                set.remove(&run.id);
                if set.is_empty() {
                    self.waiting.remove(&key);
                }
            }
        }
        if let Some(t) = run.wake_at {
            self.timed.remove(&(t, run.tenant.clone(), run.id.clone()));
        }
        self.ready
            .remove(&(run.created_at, run.tenant.clone(), run.id.clone()));
    }

    fn index(&mut self, run: &WorkflowRun) {
        if let Some(k) = run.event_key() {
            self.waiting
                .entry((run.tenant.clone(), k))
                .or_default()
                .insert(run.id.clone());
        }
        if let Some(t) = run.wake_at {
            self.timed.insert((t, run.tenant.clone(), run.id.clone()));
        } else if matches!(run.state, RunState::Pending | RunState::Running) {
            self.ready
                .insert((run.created_at, run.tenant.clone(), run.id.clone()));
        }
    }

    /// Replaces (or inserts) a run and keeps the indexes true.
    fn put_run(&mut self, run: WorkflowRun) {
        let key = (run.tenant.clone(), run.id.clone());
        if let Some(old) = self.runs.remove(&key) {
            self.unindex(&old);
        }
        self.index(&run);
        self.runs.insert(key, run);
    }
}

/// The workflow store in memory. Cloning is not supported; share it in an `Arc`.
#[derive(Default)]
pub struct InMemoryWorkflowStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for InMemoryWorkflowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryWorkflowStore")
            .finish_non_exhaustive()
    }
}

impl InMemoryWorkflowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every method
        // checks before it mutates. Keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl WorkflowStore for InMemoryWorkflowStore {
    async fn put_workflow(&self, tenant: &TenantId, definition: &WorkflowDefinition) -> Result<()> {
        let mut st = self.lock();
        let versions = st
            .workflows
            .entry((tenant.clone(), definition.id.clone()))
            .or_default();
        match versions.get(&definition.version) {
            Some(existing) if existing == definition => Ok(()),
            Some(_) => Err(Error::Conflict(format!(
                "workflow `{}` version {} is published with other content; publish a new version",
                definition.id, definition.version
            ))),
            None => {
                versions.insert(definition.version, definition.clone());
                Ok(())
            }
        }
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<Option<WorkflowDefinition>> {
        let st = self.lock();
        let Some(versions) = st.workflows.get(&(tenant.clone(), id.clone())) else {
            return Ok(None);
        };
        Ok(match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        })
    }

    async fn create_workflow_run(&self, tenant: &TenantId, run: &WorkflowRun) -> Result<Created> {
        ensure_tenant(tenant, &run.tenant, "workflow run")?;
        let mut st = self.lock();
        let trigger = run
            .trigger_key
            .as_ref()
            .map(|k| (tenant.clone(), run.workflow.clone(), k.clone()));
        if let Some(t) = &trigger
            && let Some(existing) = st.triggers.get(t)
        {
            let existing = (tenant.clone(), existing.clone());
            return match st.runs.get(&existing) {
                Some(r) => Ok(Created::Existing(r.clone())),
                None => Err(Error::Conflict(format!(
                    "trigger key `{}` points at a missing run",
                    run.trigger_key.as_deref().unwrap_or_default()
                ))),
            };
        }
        if st.runs.contains_key(&(tenant.clone(), run.id.clone())) {
            return Err(Error::Conflict(format!("workflow run `{}` exists", run.id)));
        }
        if let Some(t) = trigger {
            st.triggers.insert(t, run.id.clone());
        }
        st.put_run(run.clone());
        Ok(Created::New(run.clone()))
    }

    async fn get_workflow_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>> {
        Ok(self.lock().runs.get(&(tenant.clone(), id.clone())).cloned())
    }

    async fn list_workflow_runs(
        &self,
        tenant: &TenantId,
        query: &RunQuery,
    ) -> Result<Vec<WorkflowRun>> {
        let st = self.lock();
        let mut runs: Vec<WorkflowRun> = st
            .runs
            .iter()
            .filter(|((t, _), r)| t == tenant && query.matches(r))
            .map(|(_, r)| r.clone())
            .collect();
        runs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        if let Some(n) = query.limit {
            runs.truncate(n);
        }
        Ok(runs)
    }

    async fn list_workflow_steps(&self, tenant: &TenantId, run: &RunId) -> Result<Vec<StepRecord>> {
        Ok(self
            .lock()
            .steps
            .get(&(tenant.clone(), run.clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn claim_workflow_runs(&self, request: &ClaimRequest) -> Result<Vec<WorkflowRun>> {
        let mut st = self.lock();
        let mut candidates: Vec<(DateTime<Utc>, TenantId, RunId)> = st
            .timed
            .iter()
            .take_while(|(t, _, _)| *t <= request.now)
            .cloned()
            .collect();
        candidates.extend(st.ready.iter().cloned());
        candidates.sort();
        let due: Vec<WorkflowRun> = candidates
            .into_iter()
            .filter_map(|(_, tenant, id)| st.runs.get(&(tenant, id)))
            .filter(|run| request.is_claimable(run))
            .take(request.window())
            .cloned()
            .collect();
        let claimed = request.take(due);
        for run in &claimed {
            st.put_run(run.clone());
        }
        Ok(claimed)
    }

    async fn renew_workflow_lease(
        &self,
        tenant: &TenantId,
        run: &RunId,
        version: u64,
        lease: &Lease,
    ) -> Result<bool> {
        let mut st = self.lock();
        let Some(stored) = st.runs.get_mut(&(tenant.clone(), run.clone())) else {
            return Ok(false);
        };
        let holds = stored.held_by(version, &lease.owner);
        if holds {
            stored.lease = Some(lease.clone());
        }
        Ok(holds)
    }

    async fn commit_workflow_step(
        &self,
        tenant: &TenantId,
        commit: &StepCommit,
    ) -> Result<CommitOutcome> {
        commit.check(tenant)?;
        let mut st = self.lock();
        let key = (tenant.clone(), commit.run.id.clone());
        match st.runs.get(&key) {
            None => return Err(Error::NotFound(format!("workflow run `{}`", commit.run.id))),
            Some(stored) if stored.version != commit.expected_version => {
                return Err(Error::Conflict(format!(
                    "workflow run `{}` is at version {}, not {}",
                    commit.run.id, stored.version, commit.expected_version
                )));
            }
            Some(_) => {}
        }
        if let Some(step) = &commit.step
            && st
                .steps
                .get(&key)
                .is_some_and(|log| log.iter().any(|s| s.seq == step.seq))
        {
            return Err(Error::Conflict(format!(
                "step {} of workflow run `{}` exists",
                step.seq, commit.run.id
            )));
        }
        // Checked: apply.
        let mut run = commit.run.clone();
        let mut outcome = CommitOutcome::default();
        if let Some(k) = run.event_key() {
            let inbox_key = (tenant.clone(), k);
            if let Some(event) = st.inbox.get_mut(&inbox_key).and_then(VecDeque::pop_front) {
                if st.inbox.get(&inbox_key).is_some_and(VecDeque::is_empty) {
                    st.inbox.remove(&inbox_key);
                }
                let at = run.updated_at;
                run.wake(event.payload, at);
                outcome.woken = Some(run.clone());
            }
        }
        if let Some(step) = &commit.step {
            st.steps.entry(key).or_default().push(step.clone());
        }
        st.put_run(run);
        Ok(outcome)
    }

    async fn deliver_workflow_event(
        &self,
        tenant: &TenantId,
        event: &WorkflowEvent,
    ) -> Result<Delivery> {
        let mut st = self.lock();
        if !st.seen_events.insert((tenant.clone(), event.id.clone())) {
            return Ok(Delivery::Duplicate);
        }
        let key = (tenant.clone(), event_key(&event.name, &event.correlation));
        let waiting: Vec<RunId> = st
            .waiting
            .get(&key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if waiting.is_empty() {
            st.inbox.entry(key).or_default().push_back(event.clone());
            return Ok(Delivery::Kept);
        }
        for id in &waiting {
            if let Some(run) = st.runs.get(&(tenant.clone(), id.clone())) {
                let mut run = run.clone();
                run.wake(event.payload.clone(), event.at);
                st.put_run(run);
            }
        }
        Ok(Delivery::Woke(waiting))
    }

    async fn next_workflow_wake(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.lock().timed.iter().next().map(|(t, _, _)| *t))
    }
}
