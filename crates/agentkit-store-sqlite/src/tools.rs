//! [`ToolExecutionStore`]: tool execution records under their idempotency keys.
//!
//! A record is upserted in one statement; a succeeded execution is final (the upsert leaves it
//! alone and a trigger freezes it). A run's executions are listed in the order first recorded.

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::store::{
    ToolClaim, ToolExecution, ToolExecutionStatus, ToolExecutionStore, ensure_tenant,
};
use agentkit_core::{Error, Result, SharedJson};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::SqliteStore;
use crate::codec::{enum_name, from_json, from_micros, micros, parse_enum, to_json};
use crate::error::db_err;
use crate::sql::{col, immediate, opt_time, text};

#[async_trait]
impl ToolExecutionStore for SqliteStore {
    async fn claim_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<ToolClaim> {
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        let execution = execution.clone();
        self.db()
            .write(move |c| claim_tool_execution(c, &execution))
            .await
    }

    async fn record_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<()> {
        ensure_tenant(tenant, &execution.tenant, "the tool execution")?;
        let execution = execution.clone();
        self.db()
            .write(move |c| record_tool_execution(c, &execution))
            .await
    }

    async fn get_tool_execution(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.db()
            .read(move |c| get_tool_execution(c, &tenant, &key))
            .await
    }

    async fn list_tool_executions(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>> {
        let (tenant, run) = (tenant.clone(), run.clone());
        self.db()
            .read(move |c| list_tool_executions(c, &tenant, &run))
            .await
    }
}

// The SQL, on one connection.

#[derive(Serialize)]
struct ExecutionBodyRef<'a> {
    call_id: &'a str,
    tool: &'a str,
    arguments_hash: &'a str,
    attempt: u32,
    input: &'a SharedJson,
    output: Option<&'a SharedJson>,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct ExecutionBody {
    call_id: String,
    tool: String,
    #[serde(default)]
    arguments_hash: String,
    #[serde(default = "first_attempt")]
    attempt: u32,
    input: SharedJson,
    output: Option<SharedJson>,
    error: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// Insert if absent, or re-claim a failed record of the same tool and arguments, in one
/// `BEGIN IMMEDIATE` transaction (the write lock is held from the read to the write).
fn claim_tool_execution(conn: &mut Connection, e: &ToolExecution) -> Result<ToolClaim> {
    let tx = immediate(conn)?;
    let existing = tx
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM tool_executions \
             WHERE tenant = ?1 AND idempotency_key = ?2"
        ))
        .and_then(|mut st| {
            st.query_row(
                params![e.tenant.as_str(), e.idempotency_key.as_str()],
                |row| Ok(execution_from_row(&e.tenant, row)),
            )
            .optional()
        })
        .map_err(db_err)?
        .transpose()?;
    let claim = match existing {
        None => {
            let mut claimed = e.clone();
            claimed.status = ToolExecutionStatus::Started;
            claimed.attempt = 1;
            record_tool_execution(&tx, &claimed)?;
            ToolClaim::Claimed { attempt: 1 }
        }
        Some(prev)
            if prev.status == ToolExecutionStatus::Failed
                && prev.tool == e.tool
                && prev.arguments_hash == e.arguments_hash =>
        {
            let mut claimed = e.clone();
            claimed.status = ToolExecutionStatus::Started;
            claimed.attempt = prev.attempt.saturating_add(1);
            claimed.output = None;
            claimed.error = None;
            claimed.finished_at = None;
            record_tool_execution(&tx, &claimed)?;
            ToolClaim::Claimed {
                attempt: claimed.attempt,
            }
        }
        Some(prev) => ToolClaim::Existing(Box::new(prev)),
    };
    tx.commit().map_err(db_err)?;
    Ok(claim)
}

pub(crate) fn record_tool_execution(conn: &Connection, e: &ToolExecution) -> Result<()> {
    let ToolExecution {
        tenant,
        idempotency_key,
        agent,
        session,
        run,
        call_id,
        tool,
        arguments_hash,
        attempt,
        input,
        output,
        error,
        status,
        started_at,
        finished_at,
    } = e;
    let body = to_json(&ExecutionBodyRef {
        call_id,
        tool,
        arguments_hash,
        attempt: *attempt,
        input,
        output: output.as_ref(),
        error: error.as_deref(),
    })?;
    let status = enum_name(status)?;
    // Upsert in one statement; a succeeded row is final (0 rows changed).
    let changed = conn
        .prepare_cached(
            "INSERT INTO tool_executions (tenant, idempotency_key, agent, session, run, status, \
             started_at, finished_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (tenant, idempotency_key) DO UPDATE SET agent = excluded.agent, \
             session = excluded.session, run = excluded.run, status = excluded.status, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             body = excluded.body \
             WHERE tool_executions.status <> 'succeeded'",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant.as_str(),
                idempotency_key.as_str(),
                agent.as_str(),
                session.as_str(),
                run.as_str(),
                status,
                micros(*started_at),
                finished_at.map(micros),
                body
            ])
        })
        .map_err(db_err)?;
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "tool execution {idempotency_key} already succeeded"
        )));
    }
    Ok(())
}

const EXECUTION_COLUMNS: &str =
    "idempotency_key, agent, session, run, status, started_at, finished_at, body";

fn execution_from_row(tenant: &TenantId, row: &Row<'_>) -> Result<ToolExecution> {
    let body: ExecutionBody = from_json(text(row, 7)?, "tool execution")?;
    Ok(ToolExecution {
        tenant: tenant.clone(),
        idempotency_key: IdempotencyKey::new(text(row, 0)?)?,
        agent: AgentId::new(text(row, 1)?)?,
        session: SessionId::new(text(row, 2)?)?,
        run: RunId::new(text(row, 3)?)?,
        call_id: body.call_id,
        tool: body.tool,
        arguments_hash: body.arguments_hash,
        attempt: body.attempt,
        input: body.input,
        output: body.output,
        error: body.error,
        status: parse_enum::<ToolExecutionStatus>(text(row, 4)?, "tool execution status")?,
        started_at: from_micros(col(row, 5)?)?,
        finished_at: opt_time(col(row, 6)?)?,
    })
}

fn get_tool_execution(
    conn: &Connection,
    tenant: &TenantId,
    key: &IdempotencyKey,
) -> Result<Option<ToolExecution>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM tool_executions \
             WHERE tenant = ?1 AND idempotency_key = ?2"
        ))
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), key.as_str()])
        .map_err(db_err)?;
    rows.next()
        .map_err(db_err)?
        .map(|row| execution_from_row(tenant, row))
        .transpose()
}

fn list_tool_executions(
    conn: &Connection,
    tenant: &TenantId,
    run: &RunId,
) -> Result<Vec<ToolExecution>> {
    // The rowid is assigned at the first insert and kept by the upsert: the order first recorded.
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM tool_executions \
             WHERE tenant = ?1 AND run = ?2 ORDER BY rowid"
        ))
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), run.as_str()])
        .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(execution_from_row(tenant, row)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::sql::testing::{db, plan};

    #[test]
    fn a_runs_executions_read_their_index_without_sorting() {
        let executions = plan(
            &db(),
            "SELECT idempotency_key FROM tool_executions WHERE tenant = ?1 AND run = ?2 \
             ORDER BY rowid",
        );
        assert!(
            executions.contains("tool_executions_by_run"),
            "{executions}"
        );
        assert!(!executions.contains("TEMP B-TREE"), "{executions}");
    }
}
