//! [`ToolExecutionStore`]: tool execution records keyed by idempotency key.
//!
//! One conditional UPSERT: a new key is inserted, an existing record is replaced unless it
//! succeeded (then no row comes back: [`Error::Conflict`]). `first_recorded` keeps the order
//! of first recording for [`ToolExecutionStore::list_tool_executions`].

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::store::{
    ToolClaim, ToolExecution, ToolExecutionStatus, ToolExecutionStore, ensure_tenant,
};
use agentkit_core::{Error, Result, SharedJson};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::codec::{from_json, from_name, json, micros, name};
use crate::error::query_error;
use crate::{PostgresStore, commit};

/// `SELECT <execution columns> FROM tool_executions <rest>`, as one string literal.
macro_rules! select_executions {
    ($rest:literal) => {
        concat!(
            "SELECT idempotency_key, agent, session_id, run_id, call_id, tool, arguments_hash, \
             attempt, input::text AS input, output::text AS output, error, status, started_at, \
             finished_at FROM tool_executions ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct ExecutionRow {
    idempotency_key: String,
    agent: String,
    session_id: String,
    run_id: String,
    call_id: String,
    tool: String,
    arguments_hash: String,
    attempt: i32,
    input: String,
    output: Option<String>,
    error: Option<String>,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl ExecutionRow {
    fn into_execution(self, tenant: &TenantId) -> Result<ToolExecution> {
        Ok(ToolExecution {
            tenant: tenant.clone(),
            idempotency_key: IdempotencyKey::new(self.idempotency_key)?,
            agent: AgentId::new(self.agent)?,
            session: SessionId::new(self.session_id)?,
            run: RunId::new(self.run_id)?,
            call_id: self.call_id,
            tool: self.tool,
            arguments_hash: self.arguments_hash,
            attempt: u32::try_from(self.attempt).unwrap_or(1),
            input: from_json::<SharedJson>(&self.input, "tool execution input")?,
            output: self
                .output
                .map(|t| from_json::<SharedJson>(&t, "tool execution output"))
                .transpose()?,
            error: self.error,
            status: from_name::<ToolExecutionStatus>(&self.status, "tool execution status")?,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[async_trait]
impl ToolExecutionStore for PostgresStore {
    async fn claim_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<ToolClaim> {
        const OP: &str = "claim_tool_execution";
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        let mut tx = self.begin(OP, tenant).await?;
        // Insert, or take over a failed record of the same tool and arguments; the conflicting
        // row is locked either way, so the SELECT below sees the winner's record.
        let claimed: Option<i32> = sqlx::query_scalar(
            "INSERT INTO tool_executions (tenant, idempotency_key, agent, session_id, run_id, \
             call_id, tool, arguments_hash, attempt, input, output, error, status, started_at, \
             finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9::json, NULL, NULL, 'started', $10, NULL) \
             ON CONFLICT (tenant, idempotency_key) DO UPDATE SET \
             status = 'started', attempt = tool_executions.attempt + 1, \
             call_id = EXCLUDED.call_id, input = EXCLUDED.input, output = NULL, error = NULL, \
             started_at = EXCLUDED.started_at, finished_at = NULL \
             WHERE tool_executions.status = 'failed' AND tool_executions.tool = EXCLUDED.tool \
             AND tool_executions.arguments_hash = EXCLUDED.arguments_hash \
             RETURNING attempt",
        )
        .bind(tenant.as_str())
        .bind(execution.idempotency_key.as_str())
        .bind(execution.agent.as_str())
        .bind(execution.session.as_str())
        .bind(execution.run.as_str())
        .bind(execution.call_id.as_str())
        .bind(execution.tool.as_str())
        .bind(execution.arguments_hash.as_str())
        .bind(json(&execution.input)?)
        .bind(micros(execution.started_at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let claim = match claimed {
            Some(attempt) => ToolClaim::Claimed {
                attempt: u32::try_from(attempt).unwrap_or(1),
            },
            None => {
                let row: ExecutionRow = sqlx::query_as(select_executions!(
                    "WHERE tenant = $1 AND idempotency_key = $2"
                ))
                .bind(tenant.as_str())
                .bind(execution.idempotency_key.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| query_error(OP, e))?;
                ToolClaim::Existing(Box::new(row.into_execution(tenant)?))
            }
        };
        commit(tx, OP).await?;
        Ok(claim)
    }

    async fn record_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<()> {
        const OP: &str = "record_tool_execution";
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        let mut tx = self.begin(OP, &execution.tenant).await?;
        record_tool_execution_in(&mut tx, OP, execution).await?;
        commit(tx, OP).await
    }

    async fn get_tool_execution(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>> {
        const OP: &str = "get_tool_execution";
        let mut tx = self.begin(OP, tenant).await?;
        let row: Option<ExecutionRow> = sqlx::query_as(select_executions!(
            "WHERE tenant = $1 AND idempotency_key = $2"
        ))
        .bind(tenant.as_str())
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        row.map(|r| r.into_execution(tenant)).transpose()
    }

    async fn list_tool_executions(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>> {
        const OP: &str = "list_tool_executions";
        let mut tx = self.begin(OP, tenant).await?;
        let rows: Vec<ExecutionRow> = sqlx::query_as(select_executions!(
            "WHERE tenant = $1 AND run_id = $2 ORDER BY first_recorded"
        ))
        .bind(tenant.as_str())
        .bind(run.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter().map(|r| r.into_execution(tenant)).collect()
    }
}

/// Inserts or updates an execution record inside the caller's transaction; a succeeded record
/// is final ([`Error::Conflict`]).
pub(crate) async fn record_tool_execution_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    execution: &ToolExecution,
) -> Result<()> {
    let output = execution.output.as_ref().map(json).transpose()?;
    // A record moved to another run (keys derive from the run, so this does not happen in
    // practice) takes the new position, like a first recording in that run.
    let written: Option<i32> = sqlx::query_scalar(
        "INSERT INTO tool_executions (tenant, idempotency_key, agent, session_id, run_id, \
             call_id, tool, input, output, error, status, started_at, finished_at, \
             arguments_hash, attempt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9::json, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (tenant, idempotency_key) DO UPDATE SET \
             first_recorded = CASE WHEN tool_executions.run_id = EXCLUDED.run_id \
                 THEN tool_executions.first_recorded ELSE EXCLUDED.first_recorded END, \
             agent = EXCLUDED.agent, session_id = EXCLUDED.session_id, \
             run_id = EXCLUDED.run_id, call_id = EXCLUDED.call_id, tool = EXCLUDED.tool, \
             input = EXCLUDED.input, output = EXCLUDED.output, error = EXCLUDED.error, \
             status = EXCLUDED.status, started_at = EXCLUDED.started_at, \
             finished_at = EXCLUDED.finished_at, arguments_hash = EXCLUDED.arguments_hash, \
             attempt = EXCLUDED.attempt \
             WHERE tool_executions.status <> 'succeeded' \
             RETURNING 1",
    )
    .bind(execution.tenant.as_str())
    .bind(execution.idempotency_key.as_str())
    .bind(execution.agent.as_str())
    .bind(execution.session.as_str())
    .bind(execution.run.as_str())
    .bind(execution.call_id.as_str())
    .bind(execution.tool.as_str())
    .bind(json(&execution.input)?)
    .bind(output)
    .bind(execution.error.as_deref())
    .bind(name(&execution.status)?)
    .bind(micros(execution.started_at))
    .bind(execution.finished_at.map(micros))
    .bind(execution.arguments_hash.as_str())
    .bind(i32::try_from(execution.attempt).unwrap_or(i32::MAX))
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| query_error(op, e))?;
    if written.is_none() {
        return Err(Error::Conflict(format!(
            "tool execution {} already succeeded",
            execution.idempotency_key
        )));
    }
    Ok(())
}
