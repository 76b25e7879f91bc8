//! [`InMemoryStore`]: every store contract in process memory.
//!
//! Meant for tests, examples and single-process hosts that do not need durability. Each kind of
//! record lives behind its own [`std::sync::Mutex`]; every operation takes that lock once, does
//! its whole read-check-write step inside it (so each call is atomic) and releases it before
//! returning, never across an `.await`. Every key includes the tenant.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use serde_json::Value;

use crate::config::AgentConfig;
use crate::config::ConfigStatus;
use crate::error::{Error, Result};
use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId, UsageEventId};
use crate::message::Message;
use crate::store::{
    AUDIT_GENESIS_HASH, ApprovalDecision, ApprovalRequest, ApprovalStatus, AuditEntry, AuditQuery,
    MemoryScope, MessageWindow, NewAuditEntry, RunRecord, SessionRecord, StoredMessage, ToolClaim,
    ToolExecution, ToolExecutionStatus, UsageEvent, UsageQuery, approval_queue_order,
    orphaned_prefix_len,
};

/// The store's maps hash with `foldhash` (seeded per process): ids are hashed on every
/// operation, and SipHash was a tenth of a turn's cost.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A [`super::StateStore`] kept in process memory.
///
/// Cloning is cheap and clones share the same data. Nothing survives the process; use a
/// database backend for durability.
///
/// ```
/// use agentkit_core::store::{InMemoryStore, StateStore};
/// let store = InMemoryStore::new();
/// let shared: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(store.clone());
/// # let _ = shared;
/// ```
#[derive(Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Inner>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only (and only when the lock is free): records may hold personal data.
        let sessions = self.inner.sessions.try_lock().map(|s| s.len()).ok();
        let runs = self
            .inner
            .runs
            .try_lock()
            .map(|r| r.values().map(HashMap::len).sum::<usize>())
            .ok();
        f.debug_struct("InMemoryStore")
            .field("sessions", &sessions)
            .field("runs", &runs)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    sessions: Mutex<HashMap<(TenantId, SessionId), SessionData>>,
    configs: Mutex<HashMap<(TenantId, AgentId), BTreeMap<u32, AgentConfig>>>,
    runs: Mutex<HashMap<TenantId, HashMap<RunId, RunRecord>>>,
    approvals: Mutex<HashMap<TenantId, HashMap<ApprovalId, ApprovalRequest>>>,
    tool_executions: Mutex<HashMap<TenantId, ToolExecutions>>,
    usage: Mutex<HashMap<TenantId, UsageLedger>>,
    audit: Mutex<HashMap<TenantId, Vec<AuditEntry>>>,
    /// Per tenant, then by key (looked up by `&str`, no key is allocated to read one).
    counters: Mutex<HashMap<TenantId, HashMap<Box<str>, i64>>>,
    memory: Mutex<HashMap<(TenantId, MemoryScope), BTreeMap<String, Value>>>,
}

struct SessionData {
    record: SessionRecord,
    /// `messages[i].seq == i + 1`.
    messages: Vec<StoredMessage>,
    /// `retracted[i]` for `messages[i]`; empty while nothing was retracted (the fast path).
    retracted: Vec<bool>,
}

impl SessionData {
    /// A window over the messages that are not retracted (the slow path, once a run failed).
    fn window_skipping_retracted(&self, window: MessageWindow) -> Vec<StoredMessage> {
        let live = |i: &usize| !self.retracted.get(*i).copied().unwrap_or(false);
        let indices: Vec<usize> = match window {
            MessageWindow::All => (0..self.messages.len()).filter(live).collect(),
            MessageWindow::After(seq) => {
                let start = usize::try_from(seq)
                    .unwrap_or(usize::MAX)
                    .min(self.messages.len());
                (start..self.messages.len()).filter(live).collect()
            }
            MessageWindow::Last(n) => {
                let mut newest: Vec<usize> = (0..self.messages.len())
                    .rev()
                    .filter(live)
                    .take(n)
                    .collect();
                newest.reverse();
                newest
            }
        };
        let out: Vec<StoredMessage> = indices.iter().map(|&i| self.messages[i].clone()).collect();
        let orphans = orphaned_prefix_len(&out);
        out.into_iter().skip(orphans).collect()
    }
}

#[derive(Default)]
struct ToolExecutions {
    records: HashMap<IdempotencyKey, ToolExecution>,
    /// Keys per run, in the order they were first recorded.
    by_run: HashMap<RunId, Vec<IdempotencyKey>>,
}

#[derive(Default)]
struct UsageLedger {
    ids: HashSet<UsageEventId>,
    /// In insertion order.
    events: Vec<UsageEvent>,
}

impl ToolExecutions {
    /// Inserts or replaces a record (the caller checked that a success is not overwritten).
    fn record(&mut self, execution: ToolExecution) {
        let key = &execution.idempotency_key;
        match self.records.get(key) {
            Some(existing) if existing.run != execution.run => {
                // Keys are derived from the run, so this does not happen in practice; keep the
                // per-run index right anyway.
                let old_run = existing.run.clone();
                if let Some(keys) = self.by_run.get_mut(&old_run) {
                    keys.retain(|k| k != key);
                }
                self.by_run
                    .entry(execution.run.clone())
                    .or_default()
                    .push(key.clone());
            }
            Some(_) => {}
            None => self
                .by_run
                .entry(execution.run.clone())
                .or_default()
                .push(key.clone()),
        }
        self.records.insert(key.clone(), execution);
    }
}

/// Usage batches up to this size are checked for repeated ids without a set.
const SMALL_BATCH: usize = 16;

/// [`crate::error::Error::Conflict`] when an event's id is taken or repeats in the batch.
/// Batches are small (a model call writes up to three events): they are compared pairwise, and
/// only large batches use a set.
fn check_usage_batch(
    ledgers: &HashMap<TenantId, UsageLedger>,
    events: &[UsageEvent],
) -> Result<()> {
    let mut batch: HashSet<(&TenantId, &UsageEventId)> = HashSet::default();
    for (i, e) in events.iter().enumerate() {
        let taken = ledgers
            .get(&e.tenant)
            .is_some_and(|l| l.ids.contains(&e.id));
        let repeated = if events.len() <= SMALL_BATCH {
            events[..i]
                .iter()
                .any(|p| p.id == e.id && p.tenant == e.tenant)
        } else {
            !batch.insert((&e.tenant, &e.id))
        };
        if taken || repeated {
            return Err(Error::Conflict(format!(
                "usage event {} already exists",
                e.id
            )));
        }
    }
    Ok(())
}

/// Takes a lock; a poisoned lock (a panic while it was held) is an internal error.
fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    mutex
        .lock()
        .map_err(|_| Error::Internal(format!("in-memory store: the {what} lock is poisoned")))
}

impl InMemoryStore {
    fn create_session_sync(&self, session: &SessionRecord) -> Result<bool> {
        let mut sessions = lock(&self.inner.sessions, "sessions")?;
        let key = (session.tenant.clone(), session.id.clone());
        if sessions.contains_key(&key) {
            return Ok(false);
        }
        sessions.insert(
            key,
            SessionData {
                record: session.clone(),
                messages: Vec::new(),
                retracted: Vec::new(),
            },
        );
        Ok(true)
    }

    fn get_session_sync(&self, tenant: &TenantId, id: &SessionId) -> Result<Option<SessionRecord>> {
        let sessions = lock(&self.inner.sessions, "sessions")?;
        Ok(sessions
            .get(&(tenant.clone(), id.clone()))
            .map(|d| d.record.clone()))
    }

    fn append_messages_sync(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64> {
        let mut sessions = lock(&self.inner.sessions, "sessions")?;
        let data = sessions
            .get_mut(&(tenant.clone(), session.clone()))
            .ok_or_else(|| Error::NotFound(format!("session {session}")))?;
        let now = Utc::now();
        data.messages.reserve(messages.len());
        for message in messages {
            let seq = data.messages.len() as u64 + 1;
            data.messages.push(StoredMessage {
                seq,
                run: run.cloned(),
                message: message.clone(),
                created_at: now,
            });
        }
        Ok(data.messages.len() as u64)
    }

    fn load_messages_sync(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        let sessions = lock(&self.inner.sessions, "sessions")?;
        let Some(data) = sessions.get(&(tenant.clone(), session.clone())) else {
            return Ok(Vec::new());
        };
        let all = data.messages.as_slice();
        if !data.retracted.is_empty() {
            return Ok(data.window_skipping_retracted(window));
        }
        // Sequence numbers are the index plus one, so every window is a slice: O(window).
        let slice = match window {
            MessageWindow::All => all,
            MessageWindow::Last(n) => &all[all.len().saturating_sub(n)..],
            MessageWindow::After(seq) => {
                let start = usize::try_from(seq).unwrap_or(usize::MAX).min(all.len());
                &all[start..]
            }
        };
        let slice = &slice[orphaned_prefix_len(slice)..];
        Ok(slice.to_vec())
    }

    fn retract_messages_sync(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: &RunId,
    ) -> Result<u64> {
        let mut sessions = lock(&self.inner.sessions, "sessions")?;
        let data = sessions
            .get_mut(&(tenant.clone(), session.clone()))
            .ok_or_else(|| Error::NotFound(format!("session {session}")))?;
        let SessionData {
            messages,
            retracted,
            ..
        } = data;
        let mut count = 0;
        for (i, m) in messages.iter().enumerate() {
            if m.run.as_ref() == Some(run) && !retracted.get(i).copied().unwrap_or(false) {
                if retracted.len() < messages.len() {
                    retracted.resize(messages.len(), false);
                }
                retracted[i] = true;
                count += 1;
            }
        }
        Ok(count)
    }

    fn put_agent_config_sync(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
        let mut configs = lock(&self.inner.configs, "agent configs")?;
        let versions = configs
            .entry((tenant.clone(), config.agent.clone()))
            .or_default();
        if let Some(existing) = versions.get(&config.version)
            && existing.status == ConfigStatus::Final
        {
            return Err(Error::Conflict(format!(
                "agent {} version {} is final",
                config.agent, config.version
            )));
        }
        versions.insert(config.version, config.clone());
        Ok(())
    }

    fn get_agent_config_sync(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>> {
        let configs = lock(&self.inner.configs, "agent configs")?;
        let Some(versions) = configs.get(&(tenant.clone(), agent.clone())) else {
            return Ok(None);
        };
        Ok(match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        })
    }

    fn list_agent_config_versions_sync(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>> {
        let configs = lock(&self.inner.configs, "agent configs")?;
        Ok(configs
            .get(&(tenant.clone(), agent.clone()))
            .map(|versions| versions.keys().copied().collect())
            .unwrap_or_default())
    }

    fn create_run_sync(&self, run: &RunRecord) -> Result<()> {
        // Sessions are never removed, so checking before taking the runs lock is enough.
        if !lock(&self.inner.sessions, "sessions")?
            .contains_key(&(run.tenant.clone(), run.session.clone()))
        {
            return Err(Error::NotFound(format!("session {}", run.session)));
        }
        let mut runs = lock(&self.inner.runs, "runs")?;
        let tenant_runs = runs.entry(run.tenant.clone()).or_default();
        if tenant_runs.contains_key(&run.id) {
            return Err(Error::Conflict(format!("run {} already exists", run.id)));
        }
        tenant_runs.insert(run.id.clone(), run.clone());
        Ok(())
    }

    fn get_run_sync(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
        let runs = lock(&self.inner.runs, "runs")?;
        Ok(runs.get(tenant).and_then(|r| r.get(id)).cloned())
    }

    fn update_run_sync(&self, run: &RunRecord, expected_version: u64) -> Result<()> {
        let mut runs = lock(&self.inner.runs, "runs")?;
        let stored = runs
            .get_mut(&run.tenant)
            .and_then(|r| r.get_mut(&run.id))
            .ok_or_else(|| Error::NotFound(format!("run {}", run.id)))?;
        if stored.version != expected_version {
            return Err(Error::Conflict(format!(
                "run {} is at version {}, not {expected_version}",
                run.id, stored.version
            )));
        }
        *stored = run.clone();
        Ok(())
    }

    fn create_approval_sync(&self, request: &ApprovalRequest) -> Result<()> {
        // Runs are never removed, so checking before taking the approvals lock is enough.
        if !lock(&self.inner.runs, "runs")?
            .get(&request.tenant)
            .is_some_and(|r| r.contains_key(&request.run))
        {
            return Err(Error::NotFound(format!("run {}", request.run)));
        }
        let mut approvals = lock(&self.inner.approvals, "approvals")?;
        let tenant_approvals = approvals.entry(request.tenant.clone()).or_default();
        if tenant_approvals.contains_key(&request.id) {
            return Err(Error::Conflict(format!(
                "approval {} already exists",
                request.id
            )));
        }
        tenant_approvals.insert(request.id.clone(), request.clone());
        Ok(())
    }

    fn get_approval_sync(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>> {
        let approvals = lock(&self.inner.approvals, "approvals")?;
        Ok(approvals.get(tenant).and_then(|a| a.get(id)).cloned())
    }

    fn decide_approval_sync(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        decision.validate()?;
        let mut approvals = lock(&self.inner.approvals, "approvals")?;
        let stored = approvals
            .get_mut(tenant)
            .and_then(|a| a.get_mut(id))
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))?;
        // Apply to a copy so a refused decision leaves the stored request untouched; the audit
        // entry is appended while the approvals lock is held, so both happen or neither.
        let mut decided = stored.clone();
        decision.apply_to(&mut decided, Utc::now())?;
        self.append_audit_sync(NewAuditEntry::approval_decided(&decided))?;
        *stored = decided.clone();
        Ok(decided)
    }

    fn list_pending_approvals_sync(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        let approvals = lock(&self.inner.approvals, "approvals")?;
        let mut pending: Vec<ApprovalRequest> = approvals
            .get(tenant)
            .map(|a| {
                a.values()
                    .filter(|r| r.status == ApprovalStatus::Pending)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(approvals);
        pending.sort_by(approval_queue_order);
        Ok(pending)
    }

    fn record_tool_execution_sync(&self, execution: &ToolExecution) -> Result<()> {
        let mut all = lock(&self.inner.tool_executions, "tool executions")?;
        let tenant = all.entry(execution.tenant.clone()).or_default();
        let key = &execution.idempotency_key;
        if tenant
            .records
            .get(key)
            .is_some_and(|e| e.status == ToolExecutionStatus::Succeeded)
        {
            return Err(Error::Conflict(format!(
                "tool execution {key} already succeeded"
            )));
        }
        tenant.record(execution.clone());
        Ok(())
    }

    fn claim_tool_execution_sync(&self, execution: &ToolExecution) -> Result<ToolClaim> {
        let mut all = lock(&self.inner.tool_executions, "tool executions")?;
        let tenant = all.entry(execution.tenant.clone()).or_default();
        let key = &execution.idempotency_key;
        match tenant.records.get_mut(key) {
            None => {
                let mut claimed = execution.clone();
                claimed.status = ToolExecutionStatus::Started;
                claimed.attempt = 1;
                tenant
                    .by_run
                    .entry(execution.run.clone())
                    .or_default()
                    .push(key.clone());
                tenant.records.insert(key.clone(), claimed);
                Ok(ToolClaim::Claimed { attempt: 1 })
            }
            Some(existing)
                if existing.status == ToolExecutionStatus::Failed
                    && existing.tool == execution.tool
                    && existing.arguments_hash == execution.arguments_hash =>
            {
                let attempt = existing.attempt.saturating_add(1);
                existing.status = ToolExecutionStatus::Started;
                existing.attempt = attempt;
                existing.call_id.clone_from(&execution.call_id);
                existing.input = execution.input.clone();
                existing.output = None;
                existing.error = None;
                existing.started_at = execution.started_at;
                existing.finished_at = None;
                Ok(ToolClaim::Claimed { attempt })
            }
            Some(existing) => Ok(ToolClaim::Existing(Box::new(existing.clone()))),
        }
    }

    fn get_tool_execution_sync(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>> {
        let all = lock(&self.inner.tool_executions, "tool executions")?;
        Ok(all.get(tenant).and_then(|t| t.records.get(key)).cloned())
    }

    fn list_tool_executions_sync(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>> {
        let all = lock(&self.inner.tool_executions, "tool executions")?;
        let Some(tenant) = all.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(tenant
            .by_run
            .get(run)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| tenant.records.get(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn append_usage_sync(&self, events: &[UsageEvent]) -> Result<()> {
        let mut ledgers = lock(&self.inner.usage, "usage")?;
        // Check the whole batch first so that nothing is written when any id is taken.
        check_usage_batch(&ledgers, events)?;
        for e in events {
            let ledger = ledgers.entry(e.tenant.clone()).or_default();
            ledger.ids.insert(e.id.clone());
            ledger.events.push(e.clone());
        }
        Ok(())
    }

    fn list_usage_sync(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        let ledgers = lock(&self.inner.usage, "usage")?;
        let mut events: Vec<UsageEvent> = ledgers
            .get(tenant)
            .map(|l| {
                l.events
                    .iter()
                    .filter(|e| query.matches(e))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(ledgers);
        // Stable: events with the same time stay in insertion order.
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

    fn append_audit_sync(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let mut chains = lock(&self.inner.audit, "audit")?;
        let chain = chains.entry(entry.tenant.clone()).or_default();
        let seq = chain.len() as u64 + 1;
        let prev_hash = chain
            .last()
            .map_or_else(|| AUDIT_GENESIS_HASH.to_string(), |e| e.hash.clone());
        let chained = entry.chain(seq, prev_hash);
        chain.push(chained.clone());
        Ok(chained)
    }

    fn list_audit_sync(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let chains = lock(&self.inner.audit, "audit")?;
        Ok(chains
            .get(tenant)
            .map(|c| {
                c.iter()
                    .filter(|e| query.matches(e))
                    .take(query.limit.unwrap_or(usize::MAX))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn put_memory_sync(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let mut memory = lock(&self.inner.memory, "memory")?;
        memory
            .entry((tenant.clone(), scope.clone()))
            .or_default()
            .insert(key.to_string(), value.clone());
        Ok(())
    }

    fn get_memory_sync(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>> {
        let memory = lock(&self.inner.memory, "memory")?;
        Ok(memory
            .get(&(tenant.clone(), scope.clone()))
            .and_then(|m| m.get(key))
            .cloned())
    }

    fn list_memory_sync(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>> {
        let memory = lock(&self.inner.memory, "memory")?;
        Ok(memory
            .get(&(tenant.clone(), scope.clone()))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn delete_memory_sync(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool> {
        let mut memory = lock(&self.inner.memory, "memory")?;
        let slot = (tenant.clone(), scope.clone());
        let Some(values) = memory.get_mut(&slot) else {
            return Ok(false);
        };
        let existed = values.remove(key).is_some();
        if values.is_empty() {
            memory.remove(&slot);
        }
        Ok(existed)
    }
}

mod contracts;
mod counters;
mod step;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn poisoned_lock_is_an_internal_error() {
        let store = InMemoryStore::new();
        let inner = Arc::clone(&store.inner);
        let _ = std::thread::spawn(move || {
            let _guard = inner.counters.lock();
            panic!("poison the counters lock");
        })
        .join();
        let err = store
            .counter_get_sync(&TenantId::from_static("t"), "k")
            .expect_err("a poisoned lock must not panic");
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
    }
}
