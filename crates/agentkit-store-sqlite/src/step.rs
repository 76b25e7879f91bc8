//! [`StepStore`]: a whole turn step in one `BEGIN IMMEDIATE` transaction.
//!
//! The step's parts run the same SQL as their single-record methods (`sessions.rs`, `runs.rs`,
//! `tools.rs`, `approvals.rs`, `usage.rs`, `audit.rs`), inside one transaction that commits
//! only when every part succeeded: a failing part rolls the whole step back, and a crash (even
//! `SIGKILL`) leaves either the whole step or none of it (SQLite's WAL commit is atomic).

use agentkit_core::id::TenantId;
use agentkit_core::store::{Step, StepReceipt, StepStore};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::codec::to_json;
use crate::error::db_err;
use crate::sql::immediate;

#[async_trait]
impl StepStore for SqliteStore {
    async fn commit_step(&self, tenant: &TenantId, step: Step) -> Result<StepReceipt> {
        step.ensure_tenant(tenant)?;
        if step.is_empty() {
            return Ok(StepReceipt::default());
        }
        // Serialized before the writer is taken.
        let messages = step
            .messages
            .as_ref()
            .map(|m| {
                m.messages
                    .iter()
                    .map(to_json)
                    .collect::<Result<Vec<String>>>()
            })
            .transpose()?;
        let tenant = tenant.clone();
        self.db()
            .write(move |c| commit_step(c, &tenant, step, messages.as_deref()))
            .await
    }
}

fn commit_step(
    conn: &mut Connection,
    tenant: &TenantId,
    step: Step,
    messages: Option<&[String]>,
) -> Result<StepReceipt> {
    let tx = immediate(conn)?;
    let mut receipt = StepReceipt::default();
    if let Some(session) = &step.session {
        receipt.session_created = crate::sessions::create_session(&tx, session)?;
        if !receipt.session_created {
            let owner: Option<String> = tx
                .prepare_cached("SELECT agent FROM sessions WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut st| {
                    st.query_row(params![tenant.as_str(), session.id.as_str()], |r| r.get(0))
                        .optional()
                })
                .map_err(db_err)?;
            if let Some(owner) = owner
                && owner != session.agent.as_str()
            {
                return Err(Error::PermissionDenied(format!(
                    "session `{}` belongs to agent `{owner}`, not `{}`",
                    session.id, session.agent
                )));
            }
        }
    }
    if let Some(run) = &step.new_run {
        crate::runs::create_run(&tx, run)?;
    }
    if let Some((run, expected)) = &step.run_update {
        crate::runs::update_run_in(&tx, run, *expected)?;
    }
    if let (Some(m), Some(rows)) = (&step.messages, messages)
        && !rows.is_empty()
    {
        let seq =
            crate::sessions::append_messages_in(&tx, tenant, &m.session, m.run.as_ref(), rows)?;
        receipt.last_seq = Some(seq);
    }
    for e in &step.executions {
        crate::tools::record_tool_execution(&tx, e)?;
    }
    for a in &step.approvals {
        crate::approvals::create_approval(&tx, a)?;
    }
    if !step.usage.is_empty() {
        crate::usage::append_usage_in(&tx, &step.usage)?;
    }
    for entry in step.audit {
        receipt.last_audit_seq = Some(crate::audit::append_in(&tx, entry)?.seq);
    }
    tx.commit().map_err(db_err)?;
    Ok(receipt)
}
