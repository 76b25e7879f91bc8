//! [`StepStore`]: a whole turn step in one transaction.
//!
//! The step's parts run the same SQL as their single-record methods (`sessions.rs`, `runs.rs`,
//! `tools.rs`, `approvals.rs`, `usage.rs`, `audit.rs`) inside one transaction scoped to the
//! tenant (row-level security), which commits only when every part succeeded. A failing part
//! drops the transaction (rolled back); a server crash before the commit is durable loses the
//! whole step, never part of it.

use agentkit_core::id::TenantId;
use agentkit_core::store::{Step, StepReceipt, StepStore};
use agentkit_core::{Error, Result};
use async_trait::async_trait;

use crate::codec::{json, to_u64};
use crate::error::query_error;
use crate::runs::RunValues;
use crate::{PostgresStore, commit};

#[async_trait]
impl StepStore for PostgresStore {
    async fn commit_step(&self, tenant: &TenantId, step: Step) -> Result<StepReceipt> {
        const OP: &str = "commit_step";
        step.ensure_tenant(tenant)?;
        if step.is_empty() {
            return Ok(StepReceipt::default());
        }
        // Everything that can fail without the database is done before the transaction.
        let bodies = step
            .messages
            .as_ref()
            .map(|m| m.messages.iter().map(json).collect::<Result<Vec<String>>>())
            .transpose()?;
        let new_run = step.new_run.as_ref().map(RunValues::new).transpose()?;
        let run_update = step
            .run_update
            .as_ref()
            .map(|(run, expected)| RunValues::new(run).map(|v| (v, run, *expected)))
            .transpose()?;

        let mut tx = self.begin(OP, tenant).await?;
        let mut receipt = StepReceipt::default();
        if let Some(session) = &step.session {
            receipt.session_created =
                crate::sessions::create_session_in(&mut tx, OP, session).await?;
            if !receipt.session_created {
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT agent FROM sessions WHERE tenant = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(session.id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| query_error(OP, e))?;
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
        if let (Some(values), Some(run)) = (&new_run, &step.new_run) {
            crate::runs::create_run_in(&mut tx, OP, values, run).await?;
        }
        if let Some((values, run, expected)) = &run_update {
            crate::runs::update_run_in(&mut tx, OP, values, run, *expected).await?;
        }
        if let (Some(m), Some(bodies)) = (&step.messages, bodies)
            && !bodies.is_empty()
        {
            let last = crate::sessions::append_messages_in(
                &mut tx,
                OP,
                tenant,
                &m.session,
                m.run.as_ref(),
                bodies,
            )
            .await?;
            receipt.last_seq = Some(to_u64(last, "session last_seq")?);
        }
        for e in &step.executions {
            crate::tools::record_tool_execution_in(&mut tx, OP, e).await?;
        }
        for a in &step.approvals {
            crate::approvals::create_approval_in(&mut tx, OP, a).await?;
        }
        if !step.usage.is_empty() {
            crate::usage::append_usage_in(&mut tx, OP, tenant, &step.usage).await?;
        }
        receipt.last_audit_seq =
            crate::audit::append_many_in(&mut tx, OP, tenant, step.audit).await?;
        commit(tx, OP).await?;
        Ok(receipt)
    }
}
