//! [`StepStore`] on [`InMemoryStore`]: a whole step under the locks it needs.
//!
//! The locks are taken in one fixed order — sessions, runs, approvals, tool executions, usage,
//! audit — which is also the order of every other operation that holds two of them
//! (`decide_approval`: approvals, then audit), so steps cannot deadlock with anything. Every
//! part is checked first; only when all checks pass is anything changed, and the changes cannot
//! fail, so a step is applied whole or not at all.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::Utc;

use super::{InMemoryStore, SessionData, lock};
use crate::error::{Error, Result};
use crate::id::{ApprovalId, IdempotencyKey, TenantId};
use crate::store::{
    AUDIT_GENESIS_HASH, Step, StepReceipt, StepStore, StoredMessage, ToolExecutionStatus,
};

#[async_trait]
impl StepStore for InMemoryStore {
    async fn commit_step(&self, tenant: &TenantId, step: Step) -> Result<StepReceipt> {
        step.ensure_tenant(tenant)?;
        self.commit_step_sync(tenant, step)
    }
}

impl InMemoryStore {
    fn commit_step_sync(&self, tenant: &TenantId, step: Step) -> Result<StepReceipt> {
        let Step {
            session,
            new_run,
            run_update,
            messages,
            executions,
            approvals,
            usage,
            audit,
        } = step;
        let inner = &*self.inner;
        let touches_sessions = session.is_some() || new_run.is_some() || messages.is_some();
        let touches_runs = new_run.is_some() || run_update.is_some() || !approvals.is_empty();

        // Locks, in the fixed order; only the ones this step needs.
        let mut sessions = touches_sessions
            .then(|| lock(&inner.sessions, "sessions"))
            .transpose()?;
        let mut runs = touches_runs
            .then(|| lock(&inner.runs, "runs"))
            .transpose()?;
        let mut approvals_map = (!approvals.is_empty())
            .then(|| lock(&inner.approvals, "approvals"))
            .transpose()?;
        let mut tool_executions = (!executions.is_empty())
            .then(|| lock(&inner.tool_executions, "tool executions"))
            .transpose()?;
        let mut ledgers = (!usage.is_empty())
            .then(|| lock(&inner.usage, "usage"))
            .transpose()?;
        let mut chains = (!audit.is_empty())
            .then(|| lock(&inner.audit, "audit"))
            .transpose()?;

        // 1. Check every part.
        let session_exists = |id: &crate::id::SessionId| {
            session.as_ref().is_some_and(|s| &s.id == id)
                || sessions
                    .as_ref()
                    .is_some_and(|m| m.contains_key(&(tenant.clone(), id.clone())))
        };
        let mut create_session = false;
        if let (Some(s), Some(map)) = (&session, &sessions) {
            match map.get(&(tenant.clone(), s.id.clone())) {
                Some(existing) if existing.record.agent != s.agent => {
                    return Err(Error::PermissionDenied(format!(
                        "session `{}` belongs to agent `{}`, not `{}`",
                        s.id, existing.record.agent, s.agent
                    )));
                }
                Some(_) => {}
                None => create_session = true,
            }
        }
        let tenant_runs = runs.as_ref().and_then(|r| r.get(tenant));
        if let Some(run) = &new_run {
            if !session_exists(&run.session) {
                return Err(Error::NotFound(format!("session {}", run.session)));
            }
            if tenant_runs.is_some_and(|r| r.contains_key(&run.id)) {
                return Err(Error::Conflict(format!("run {} already exists", run.id)));
            }
        }
        if let Some((run, expected)) = &run_update {
            let stored_version = match &new_run {
                Some(new) if new.id == run.id => Some(new.version),
                _ => tenant_runs.and_then(|r| r.get(&run.id)).map(|r| r.version),
            };
            match stored_version {
                None => return Err(Error::NotFound(format!("run {}", run.id))),
                Some(v) if v != *expected => {
                    return Err(Error::Conflict(format!(
                        "run {} is at version {v}, not {expected}",
                        run.id
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(m) = &messages
            && !session_exists(&m.session)
        {
            return Err(Error::NotFound(format!("session {}", m.session)));
        }
        if let Some(all) = &tool_executions {
            let stored = all.get(tenant);
            let mut succeeded_here: HashSet<&IdempotencyKey> = HashSet::new();
            for e in &executions {
                let key = &e.idempotency_key;
                let done_before = stored
                    .and_then(|t| t.records.get(key))
                    .is_some_and(|r| r.status == ToolExecutionStatus::Succeeded);
                if done_before || succeeded_here.contains(key) {
                    return Err(Error::Conflict(format!(
                        "tool execution {key} already succeeded"
                    )));
                }
                if e.status == ToolExecutionStatus::Succeeded {
                    succeeded_here.insert(key);
                }
            }
        }
        if let Some(map) = &approvals_map {
            let stored = map.get(tenant);
            let mut here: HashSet<&ApprovalId> = HashSet::new();
            for a in &approvals {
                let run_exists = new_run.as_ref().is_some_and(|r| r.id == a.run)
                    || tenant_runs.is_some_and(|r| r.contains_key(&a.run));
                if !run_exists {
                    return Err(Error::NotFound(format!("run {}", a.run)));
                }
                if stored.is_some_and(|s| s.contains_key(&a.id)) || !here.insert(&a.id) {
                    return Err(Error::Conflict(format!("approval {} already exists", a.id)));
                }
            }
        }
        if let Some(l) = &ledgers {
            super::check_usage_batch(l, &usage)?;
        }

        // 2. Apply: nothing below can fail.
        let mut receipt = StepReceipt::default();
        if let (Some(map), Some(s)) = (&mut sessions, session)
            && create_session
        {
            map.insert(
                (tenant.clone(), s.id.clone()),
                SessionData {
                    record: s,
                    messages: Vec::new(),
                    retracted: Vec::new(),
                },
            );
            receipt.session_created = true;
        }
        if let Some(runs) = &mut runs {
            let tenant_runs = runs.entry(tenant.clone()).or_default();
            if let Some(run) = new_run {
                tenant_runs.insert(run.id.clone(), run);
            }
            if let Some((run, _)) = run_update {
                tenant_runs.insert(run.id.clone(), run);
            }
        }
        if let (Some(map), Some(m)) = (&mut sessions, messages)
            && let Some(data) = map.get_mut(&(tenant.clone(), m.session))
        {
            let now = Utc::now();
            data.messages.reserve(m.messages.len());
            for message in m.messages {
                let seq = data.messages.len() as u64 + 1;
                data.messages.push(StoredMessage {
                    seq,
                    run: m.run.clone(),
                    message,
                    created_at: now,
                });
            }
            receipt.last_seq = Some(data.messages.len() as u64);
        }
        if let Some(all) = &mut tool_executions {
            let records = all.entry(tenant.clone()).or_default();
            for e in executions {
                records.record(e);
            }
        }
        if let Some(map) = &mut approvals_map {
            let stored = map.entry(tenant.clone()).or_default();
            for a in approvals {
                stored.insert(a.id.clone(), a);
            }
        }
        if let Some(l) = &mut ledgers {
            let ledger = l.entry(tenant.clone()).or_default();
            for e in usage {
                ledger.ids.insert(e.id.clone());
                ledger.events.push(e);
            }
        }
        if let Some(c) = &mut chains {
            let chain = c.entry(tenant.clone()).or_default();
            for entry in audit {
                let seq = chain.len() as u64 + 1;
                let prev_hash = chain
                    .last()
                    .map_or_else(|| AUDIT_GENESIS_HASH.to_string(), |e| e.hash.clone());
                chain.push(entry.chain(seq, prev_hash));
                receipt.last_audit_seq = Some(seq);
            }
        }
        Ok(receipt)
    }
}
