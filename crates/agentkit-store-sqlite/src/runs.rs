//! [`RunStore`]: run records, updated by compare-and-swap on their version.
//!
//! What runs are looked up by (agent, session, status, version, times) are columns; counters,
//! usage, pending calls, reply and error are one JSON body.

use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::Usage;
use agentkit_core::store::{PendingCall, RunRecord, RunStatus, RunStore, ensure_tenant};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::SqliteStore;
use crate::codec::{from_json, from_micros, int, micros, parse_enum, to_json, uint};
use crate::error::{db_err, is_duplicate, is_missing_parent};
use crate::sql::{col, immediate, text};

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<()> {
        ensure_tenant(tenant, &run.tenant, "the run")?;
        let run = run.clone();
        self.db().write(move |c| create_run(c, &run)).await
    }

    async fn get_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db().read(move |c| get_run(c, &tenant, &id)).await
    }

    async fn update_run(
        &self,
        tenant: &TenantId,
        run: &RunRecord,
        expected_version: u64,
    ) -> Result<()> {
        ensure_tenant(tenant, &run.tenant, "the run")?;
        let run = run.clone();
        self.db()
            .write(move |c| update_run(c, &run, expected_version))
            .await
    }
}

// The SQL, on one connection.

/// The part of a run kept as JSON.
#[derive(Serialize)]
struct RunBodyRef<'a> {
    turns: u32,
    tool_calls: u32,
    tool_errors: u32,
    usage: UsageBody,
    pending: &'a [PendingCall],
    call_fingerprints: &'a [String],
    reply: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct RunBody {
    turns: u32,
    tool_calls: u32,
    tool_errors: u32,
    usage: UsageBody,
    #[serde(default)]
    pending: Vec<PendingCall>,
    #[serde(default)]
    call_fingerprints: Vec<String>,
    reply: Option<String>,
    error: Option<String>,
}

/// [`Usage`] with the latency in nanoseconds (its own serde form keeps whole milliseconds only),
/// so a run reads back exactly as written.
#[derive(Serialize, Deserialize)]
struct UsageBody {
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    latency_nanos: u64,
}

impl From<&Usage> for UsageBody {
    fn from(u: &Usage) -> Self {
        let Usage {
            input_tokens,
            output_tokens,
            cached_input_tokens,
            latency,
        } = *u;
        UsageBody {
            input_tokens,
            output_tokens,
            cached_input_tokens,
            latency_nanos: u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl From<UsageBody> for Usage {
    fn from(u: UsageBody) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            latency: std::time::Duration::from_nanos(u.latency_nanos),
        }
    }
}

/// The columns of a run, in statement order after `tenant, id`.
struct RunColumns<'a> {
    agent: &'a str,
    session: &'a str,
    status: &'static str,
    version: i64,
    created_at: i64,
    updated_at: i64,
    body: String,
}

fn run_columns(run: &RunRecord) -> Result<RunColumns<'_>> {
    // Destructured without `..`: a new field must be stored.
    let RunRecord {
        tenant: _,
        id: _,
        agent,
        session,
        status,
        version,
        turns,
        tool_calls,
        tool_errors,
        usage,
        pending,
        call_fingerprints,
        reply,
        error,
        created_at,
        updated_at,
    } = run;
    let body = to_json(&RunBodyRef {
        turns: *turns,
        tool_calls: *tool_calls,
        tool_errors: *tool_errors,
        usage: usage.into(),
        pending,
        call_fingerprints,
        reply: reply.as_deref(),
        error: error.as_deref(),
    })?;
    Ok(RunColumns {
        agent: agent.as_str(),
        session: session.as_str(),
        status: status.as_str(),
        version: int(*version, "run version")?,
        created_at: micros(*created_at),
        updated_at: micros(*updated_at),
        body,
    })
}

pub(crate) fn create_run(conn: &Connection, run: &RunRecord) -> Result<()> {
    let c = run_columns(run)?;
    conn.prepare_cached(
        "INSERT INTO runs (tenant, id, agent, session, status, version, created_at, updated_at, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            run.tenant.as_str(),
            run.id.as_str(),
            c.agent,
            c.session,
            c.status,
            c.version,
            c.created_at,
            c.updated_at,
            c.body
        ])
    })
    .map_err(|e| {
        if is_duplicate(&e) {
            Error::Conflict(format!("run {} already exists", run.id))
        } else if is_missing_parent(&e) {
            Error::NotFound(format!("session {} (of run {})", run.session, run.id))
        } else {
            db_err(e)
        }
    })?;
    Ok(())
}

fn get_run(conn: &Connection, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>> {
    let mut st = conn
        .prepare_cached(
            "SELECT agent, session, status, version, created_at, updated_at, body \
             FROM runs WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), id.as_str()])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    let body: RunBody = from_json(text(row, 6)?, "run")?;
    Ok(Some(RunRecord {
        tenant: tenant.clone(),
        id: id.clone(),
        agent: AgentId::new(text(row, 0)?)?,
        session: SessionId::new(text(row, 1)?)?,
        status: parse_enum::<RunStatus>(text(row, 2)?, "run status")?,
        version: uint(col(row, 3)?, "run version")?,
        turns: body.turns,
        tool_calls: body.tool_calls,
        tool_errors: body.tool_errors,
        usage: body.usage.into(),
        pending: body.pending,
        call_fingerprints: body.call_fingerprints,
        reply: body.reply,
        error: body.error,
        created_at: from_micros(col(row, 4)?)?,
        updated_at: from_micros(col(row, 5)?)?,
    }))
}

fn update_run(conn: &mut Connection, run: &RunRecord, expected: u64) -> Result<()> {
    let tx = immediate(conn)?;
    update_run_in(&tx, run, expected)?;
    tx.commit().map_err(db_err)
}

/// The compare-and-swap inside the caller's IMMEDIATE transaction.
pub(crate) fn update_run_in(tx: &Connection, run: &RunRecord, expected: u64) -> Result<()> {
    let c = run_columns(run)?;
    let expected_i = int(expected, "expected run version")?;
    // Compare-and-swap in one statement.
    let changed = tx
        .prepare_cached(
            "UPDATE runs SET agent = ?3, session = ?4, status = ?5, version = ?6, \
             created_at = ?7, updated_at = ?8, body = ?9 \
             WHERE tenant = ?1 AND id = ?2 AND version = ?10",
        )
        .and_then(|mut st| {
            st.execute(params![
                run.tenant.as_str(),
                run.id.as_str(),
                c.agent,
                c.session,
                c.status,
                c.version,
                c.created_at,
                c.updated_at,
                c.body,
                expected_i
            ])
        })
        .map_err(|e| {
            if is_missing_parent(&e) {
                Error::NotFound(format!("session {} (of run {})", run.session, run.id))
            } else {
                db_err(e)
            }
        })?;
    if changed == 0 {
        let stored: Option<i64> = tx
            .prepare_cached("SELECT version FROM runs WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut st| {
                st.query_row(params![run.tenant.as_str(), run.id.as_str()], |r| r.get(0))
                    .optional()
            })
            .map_err(db_err)?;
        return Err(match stored {
            None => Error::NotFound(format!("run {}", run.id)),
            Some(v) => Error::Conflict(format!("run {} is at version {v}, not {expected}", run.id)),
        });
    }
    Ok(())
}
