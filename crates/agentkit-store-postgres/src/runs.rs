//! [`RunStore`]: runs, updated by compare-and-swap on their version.

use agentkit_core::id::{RunId, TenantId};
use agentkit_core::message::Usage;
use agentkit_core::store::{PendingCall, RunRecord, RunStatus, RunStore, ensure_tenant};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::codec::{from_json, from_name, json, micros, to_i64, to_u32, to_u64};
use crate::error::query_error;
use crate::{PostgresStore, commit};

#[derive(sqlx::FromRow)]
struct RunRow {
    agent: String,
    session_id: String,
    status: String,
    version: i64,
    turns: i64,
    tool_calls: i64,
    tool_errors: i64,
    usage: String,
    pending: String,
    call_fingerprints: String,
    reply: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl RunRow {
    fn into_record(self, tenant: &TenantId, id: &RunId) -> Result<RunRecord> {
        Ok(RunRecord {
            tenant: tenant.clone(),
            id: id.clone(),
            agent: self.agent.try_into()?,
            session: self.session_id.try_into()?,
            status: from_name::<RunStatus>(&self.status, "run status")?,
            version: to_u64(self.version, "run version")?,
            turns: to_u32(self.turns, "run turns")?,
            tool_calls: to_u32(self.tool_calls, "run tool_calls")?,
            tool_errors: to_u32(self.tool_errors, "run tool_errors")?,
            usage: from_json::<Usage>(&self.usage, "run usage")?,
            pending: from_json::<Vec<PendingCall>>(&self.pending, "run pending calls")?,
            call_fingerprints: from_json::<Vec<String>>(
                &self.call_fingerprints,
                "run call fingerprints",
            )?,
            reply: self.reply,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns a run is written with, in the order of `$3..=$15` in both statements.
pub(crate) struct RunValues<'a> {
    run: &'a RunRecord,
    usage: String,
    pending: String,
    call_fingerprints: String,
    version: i64,
}

impl<'a> RunValues<'a> {
    pub(crate) fn new(run: &'a RunRecord) -> Result<Self> {
        Ok(Self {
            run,
            usage: json(&run.usage)?,
            pending: json(&run.pending)?,
            call_fingerprints: json(&run.call_fingerprints)?,
            version: to_i64(run.version, "run version")?,
        })
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let run = self.run;
        query
            .bind(run.tenant.as_str())
            .bind(run.id.as_str())
            .bind(run.agent.as_str())
            .bind(run.session.as_str())
            .bind(run.status.as_str())
            .bind(self.version)
            .bind(i64::from(run.turns))
            .bind(i64::from(run.tool_calls))
            .bind(i64::from(run.tool_errors))
            .bind(self.usage.as_str())
            .bind(self.pending.as_str())
            .bind(self.call_fingerprints.as_str())
            .bind(run.reply.as_deref())
            .bind(run.error.as_deref())
            .bind(micros(run.created_at))
            .bind(micros(run.updated_at))
    }
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn create_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<()> {
        const OP: &str = "create_run";
        ensure_tenant(tenant, &run.tenant, "the run")?;
        let values = RunValues::new(run)?;
        let mut tx = self.begin(OP, &run.tenant).await?;
        create_run_in(&mut tx, OP, &values, run).await?;
        commit(tx, OP).await
    }

    async fn get_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
        const OP: &str = "get_run";
        let mut tx = self.begin(OP, tenant).await?;
        let row: Option<RunRow> = sqlx::query_as(
            "SELECT agent, session_id, status, version, turns, tool_calls, tool_errors, \
             usage::text AS usage, pending::text AS pending, \
             call_fingerprints::text AS call_fingerprints, reply, error, created_at, updated_at \
             FROM runs WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        row.map(|r| r.into_record(tenant, id)).transpose()
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run: &RunRecord,
        expected_version: u64,
    ) -> Result<()> {
        const OP: &str = "update_run";
        ensure_tenant(tenant, &run.tenant, "the run")?;
        let values = RunValues::new(run)?;
        let mut tx = self.begin(OP, &run.tenant).await?;
        update_run_in(&mut tx, OP, &values, run, expected_version).await?;
        commit(tx, OP).await
    }
}

/// Inserts a run inside the caller's transaction (scoped to the run's tenant).
pub(crate) async fn create_run_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    values: &RunValues<'_>,
    run: &RunRecord,
) -> Result<()> {
    let inserted = values
        .bind(sqlx::query(
            "INSERT INTO runs (tenant, id, agent, session_id, status, version, turns, \
                 tool_calls, tool_errors, usage, pending, call_fingerprints, reply, error, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11::json, $12::json, \
                 $13, $14, $15, $16) \
                 ON CONFLICT (tenant, id) DO NOTHING",
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(op, e))?
        .rows_affected();
    if inserted == 0 {
        return Err(Error::Conflict(format!("run {} already exists", run.id)));
    }
    Ok(())
}

/// The compare-and-swap inside the caller's transaction (scoped to the run's tenant).
pub(crate) async fn update_run_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    values: &RunValues<'_>,
    run: &RunRecord,
    expected: u64,
) -> Result<()> {
    let expected_i = to_i64(expected, "expected run version")?;
    // Concurrent updates from the same version queue on the row lock; after the winner
    // commits, the others re-check `version = $17` against the new row and match nothing.
    let updated = values
        .bind(sqlx::query(
            "UPDATE runs SET agent = $3, session_id = $4, status = $5, version = $6, \
                 turns = $7, tool_calls = $8, tool_errors = $9, usage = $10::json, \
                 pending = $11::json, call_fingerprints = $12::json, reply = $13, error = $14, \
                 created_at = $15, updated_at = $16 \
                 WHERE tenant = $1 AND id = $2 AND version = $17",
        ))
        .bind(expected_i)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(op, e))?
        .rows_affected();
    if updated == 1 {
        return Ok(());
    }
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT version FROM runs WHERE tenant = $1 AND id = $2")
            .bind(run.tenant.as_str())
            .bind(run.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| query_error(op, e))?;
    Err(match stored {
        None => Error::NotFound(format!("run {}", run.id)),
        Some(v) => Error::Conflict(format!("run {} is at version {v}, not {expected}", run.id)),
    })
}
