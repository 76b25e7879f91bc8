//! The store operations as synchronous functions on one connection.
//!
//! Writers take `&mut Connection` (the writer) and do their whole read-check-write step in one
//! statement or one `BEGIN IMMEDIATE` transaction, so they stay atomic against other processes
//! writing the same file too. Readers take `&Connection` and run one statement (one consistent
//! snapshot). Every statement filters by tenant and is prepared through the statement cache.

use std::collections::BTreeMap;

use agentkit_core::agent::AgentConfig;
use agentkit_core::id::{
    AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId, UsageEventId,
};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::store::{
    AUDIT_GENESIS_HASH, ApprovalDecision, ApprovalRequest, ApprovalStatus, AuditEntry, AuditQuery,
    CounterOutcome, MessageWindow, NewAuditEntry, PendingCall, RunRecord, RunStatus, SessionRecord,
    StoredMessage, ToolExecution, ToolExecutionStatus, UsageEvent, UsageQuery, Usd,
    orphaned_prefix_len,
};
use agentkit_core::{Error, Result};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::{
    enum_name, from_json, from_micros, int, micros, now, parse_enum, priority_from_rank,
    priority_rank, to_json, uint,
};
use crate::error::{db_err, is_duplicate, is_missing_parent};

fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)
}

/// A text column, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, idx: usize) -> Result<&'r str> {
    row.get_ref(idx)
        .and_then(|v| v.as_str().map_err(Into::into))
        .map_err(db_err)
}

fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize) -> Result<T> {
    row.get(idx).map_err(db_err)
}

fn opt_time(v: Option<i64>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    v.map(from_micros).transpose()
}

// ---------------------------------------------------------------------------------------------
// Sessions and messages
// ---------------------------------------------------------------------------------------------

pub(crate) fn create_session(conn: &mut Connection, s: &SessionRecord) -> Result<bool> {
    let metadata = to_json(&s.metadata)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (tenant, id, agent, created_at, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                s.tenant.as_str(),
                s.id.as_str(),
                s.agent.as_str(),
                micros(s.created_at),
                metadata
            ])
        })
        .map_err(db_err)?;
    Ok(inserted == 1)
}

pub(crate) fn get_session(
    conn: &Connection,
    tenant: &TenantId,
    id: &SessionId,
) -> Result<Option<SessionRecord>> {
    let mut st = conn
        .prepare_cached(
            "SELECT agent, created_at, metadata FROM sessions WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), id.as_str()])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    let metadata: BTreeMap<String, String> = from_json(text(row, 2)?, "session metadata")?;
    Ok(Some(SessionRecord {
        tenant: tenant.clone(),
        id: id.clone(),
        agent: AgentId::from(text(row, 0)?),
        created_at: from_micros(col(row, 1)?)?,
        metadata,
    }))
}

/// Appends pre-serialized messages in one IMMEDIATE transaction; returns the last seq.
pub(crate) fn append_messages(
    conn: &mut Connection,
    tenant: &TenantId,
    session: &SessionId,
    run: Option<&RunId>,
    messages: &[String],
) -> Result<u64> {
    let tx = immediate(conn)?;
    let (exists, last): (bool, i64) = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE tenant = ?1 AND id = ?2), \
                    COALESCE((SELECT MAX(seq) FROM messages WHERE tenant = ?1 AND session = ?2), 0)",
        )
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), session.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(db_err)?;
    if !exists {
        return Err(Error::NotFound(format!("session {session}")));
    }
    let mut seq = last;
    if !messages.is_empty() {
        let created_at = micros(now());
        let run = run.map(RunId::as_str);
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO messages (tenant, session, seq, run, created_at, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db_err)?;
        for message in messages {
            seq += 1;
            insert
                .execute(params![
                    tenant.as_str(),
                    session.as_str(),
                    seq,
                    run,
                    created_at,
                    message
                ])
                .map_err(db_err)?;
        }
        drop(insert);
        tx.commit().map_err(db_err)?;
    }
    uint(seq, "message seq")
}

/// The whole session.
pub(crate) const LOAD_ALL: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 ORDER BY seq";
/// The last `?3` messages, newest first: the primary key index walked backwards, so it reads
/// `?3` rows whatever the length of the history.
pub(crate) const LOAD_LAST: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 ORDER BY seq DESC LIMIT ?3";
/// The messages after seq `?3`.
pub(crate) const LOAD_AFTER: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 AND seq > ?3 ORDER BY seq";

pub(crate) fn load_messages(
    conn: &Connection,
    tenant: &TenantId,
    session: &SessionId,
    window: MessageWindow,
) -> Result<Vec<StoredMessage>> {
    let (sql, bound, newest_first) = match window {
        MessageWindow::All => (LOAD_ALL, None, false),
        MessageWindow::Last(0) => return Ok(Vec::new()),
        MessageWindow::Last(n) => (LOAD_LAST, Some(i64::try_from(n).unwrap_or(i64::MAX)), true),
        MessageWindow::After(after) => (
            LOAD_AFTER,
            Some(i64::try_from(after).unwrap_or(i64::MAX)),
            false,
        ),
    };
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = match bound {
        Some(b) => st.query(params![tenant.as_str(), session.as_str(), b]),
        None => st.query(params![tenant.as_str(), session.as_str()]),
    }
    .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let run: Option<&str> = row
            .get_ref(1)
            .and_then(|v| v.as_str_or_null().map_err(Into::into))
            .map_err(db_err)?;
        out.push(StoredMessage {
            seq: uint(col(row, 0)?, "message seq")?,
            run: run.map(RunId::from),
            created_at: from_micros(col(row, 2)?)?,
            message: from_json::<Message>(text(row, 3)?, "message")?,
        });
    }
    if newest_first {
        out.reverse();
    }
    let orphans = orphaned_prefix_len(&out);
    out.drain(..orphans);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Agent configs
// ---------------------------------------------------------------------------------------------

pub(crate) fn put_agent_config(
    conn: &mut Connection,
    tenant: &TenantId,
    config: &AgentConfig,
) -> Result<()> {
    let document = to_json(config)?;
    let status = enum_name(&config.status)?;
    // One statement: insert, or replace a draft. A final row is left alone (0 rows changed).
    let changed = conn
        .prepare_cached(
            "INSERT INTO agent_configs (tenant, agent, version, status, config) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant, agent, version) DO UPDATE \
             SET status = excluded.status, config = excluded.config \
             WHERE agent_configs.status <> 'final'",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant.as_str(),
                config.agent.as_str(),
                config.version,
                status,
                document
            ])
        })
        .map_err(db_err)?;
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "agent {} version {} is final",
            config.agent, config.version
        )));
    }
    Ok(())
}

pub(crate) fn get_agent_config(
    conn: &Connection,
    tenant: &TenantId,
    agent: &AgentId,
    version: Option<u32>,
) -> Result<Option<AgentConfig>> {
    let document: Option<String> = match version {
        Some(v) => conn
            .prepare_cached(
                "SELECT config FROM agent_configs \
                 WHERE tenant = ?1 AND agent = ?2 AND version = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), agent.as_str(), v], |r| r.get(0))
                    .optional()
            }),
        None => conn
            .prepare_cached(
                "SELECT config FROM agent_configs WHERE tenant = ?1 AND agent = ?2 \
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), agent.as_str()], |r| r.get(0))
                    .optional()
            }),
    }
    .map_err(db_err)?;
    document
        .map(|d| from_json::<AgentConfig>(&d, "agent config"))
        .transpose()
}

pub(crate) fn list_agent_config_versions(
    conn: &Connection,
    tenant: &TenantId,
    agent: &AgentId,
) -> Result<Vec<u32>> {
    let mut st = conn
        .prepare_cached(
            "SELECT version FROM agent_configs WHERE tenant = ?1 AND agent = ?2 ORDER BY version",
        )
        .map_err(db_err)?;
    let versions = st
        .query_map(params![tenant.as_str(), agent.as_str()], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(db_err)?;
    Ok(versions)
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

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

pub(crate) fn create_run(conn: &mut Connection, run: &RunRecord) -> Result<()> {
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

pub(crate) fn get_run(
    conn: &Connection,
    tenant: &TenantId,
    id: &RunId,
) -> Result<Option<RunRecord>> {
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
        agent: AgentId::from(text(row, 0)?),
        session: SessionId::from(text(row, 1)?),
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

pub(crate) fn update_run(conn: &mut Connection, run: &RunRecord, expected: u64) -> Result<()> {
    let c = run_columns(run)?;
    let expected_i = int(expected, "expected run version")?;
    let tx = immediate(conn)?;
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
    tx.commit().map_err(db_err)
}

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct ApprovalBodyRef<'a> {
    call: &'a ToolCall,
    arguments_hash: &'a str,
    reason: &'a str,
    assignee: Option<&'a str>,
    reviewer: Option<&'a str>,
    comment: Option<&'a str>,
    edited_arguments: Option<&'a Value>,
}

#[derive(Deserialize)]
struct ApprovalBody {
    call: ToolCall,
    arguments_hash: String,
    reason: String,
    assignee: Option<String>,
    reviewer: Option<String>,
    comment: Option<String>,
    edited_arguments: Option<Value>,
}

struct ApprovalColumns<'a> {
    agent: &'a str,
    session: &'a str,
    run: &'a str,
    status: &'static str,
    priority: i64,
    deadline: Option<i64>,
    created_at: i64,
    decided_at: Option<i64>,
    body: String,
}

fn approval_columns(a: &ApprovalRequest) -> Result<ApprovalColumns<'_>> {
    let ApprovalRequest {
        id: _,
        tenant: _,
        agent,
        session,
        run,
        call,
        arguments_hash,
        reason,
        priority,
        status,
        assignee,
        deadline,
        created_at,
        decided_at,
        reviewer,
        comment,
        edited_arguments,
    } = a;
    let body = to_json(&ApprovalBodyRef {
        call,
        arguments_hash,
        reason,
        assignee: assignee.as_deref(),
        reviewer: reviewer.as_deref(),
        comment: comment.as_deref(),
        edited_arguments: edited_arguments.as_ref(),
    })?;
    Ok(ApprovalColumns {
        agent: agent.as_str(),
        session: session.as_str(),
        run: run.as_str(),
        status: status.as_str(),
        priority: priority_rank(*priority),
        deadline: deadline.map(micros),
        created_at: micros(*created_at),
        decided_at: decided_at.map(micros),
        body,
    })
}

const APPROVAL_COLUMNS: &str =
    "id, agent, session, run, status, priority, deadline, created_at, decided_at, body";

/// The review queue; reads the partial index `approvals_pending_queue` in order (no sort).
pub(crate) const PENDING_QUEUE: &str = "SELECT id, agent, session, run, status, priority, \
     deadline, created_at, decided_at, body FROM approvals \
     WHERE tenant = ?1 AND status = 'pending' \
     ORDER BY priority DESC, deadline IS NULL, deadline, created_at, id";

fn approval_from_row(tenant: &TenantId, row: &Row<'_>) -> Result<ApprovalRequest> {
    let body: ApprovalBody = from_json(text(row, 9)?, "approval")?;
    Ok(ApprovalRequest {
        id: ApprovalId::from(text(row, 0)?),
        tenant: tenant.clone(),
        agent: AgentId::from(text(row, 1)?),
        session: SessionId::from(text(row, 2)?),
        run: RunId::from(text(row, 3)?),
        call: body.call,
        arguments_hash: body.arguments_hash,
        reason: body.reason,
        priority: priority_from_rank(col(row, 5)?)?,
        status: parse_enum::<ApprovalStatus>(text(row, 4)?, "approval status")?,
        assignee: body.assignee,
        deadline: opt_time(col(row, 6)?)?,
        created_at: from_micros(col(row, 7)?)?,
        decided_at: opt_time(col(row, 8)?)?,
        reviewer: body.reviewer,
        comment: body.comment,
        edited_arguments: body.edited_arguments,
    })
}

pub(crate) fn create_approval(conn: &mut Connection, a: &ApprovalRequest) -> Result<()> {
    let c = approval_columns(a)?;
    conn.prepare_cached(
        "INSERT INTO approvals (tenant, id, agent, session, run, status, priority, deadline, \
         created_at, decided_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut st| {
        st.execute(params![
            a.tenant.as_str(),
            a.id.as_str(),
            c.agent,
            c.session,
            c.run,
            c.status,
            c.priority,
            c.deadline,
            c.created_at,
            c.decided_at,
            c.body
        ])
    })
    .map_err(|e| {
        if is_duplicate(&e) {
            Error::Conflict(format!("approval {} already exists", a.id))
        } else if is_missing_parent(&e) {
            Error::NotFound(format!("run {} (of approval {})", a.run, a.id))
        } else {
            db_err(e)
        }
    })?;
    Ok(())
}

fn select_approval(
    conn: &Connection,
    tenant: &TenantId,
    id: &ApprovalId,
) -> Result<Option<ApprovalRequest>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant = ?1 AND id = ?2"
        ))
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), id.as_str()])
        .map_err(db_err)?;
    rows.next()
        .map_err(db_err)?
        .map(|row| approval_from_row(tenant, row))
        .transpose()
}

pub(crate) fn get_approval(
    conn: &Connection,
    tenant: &TenantId,
    id: &ApprovalId,
) -> Result<Option<ApprovalRequest>> {
    select_approval(conn, tenant, id)
}

/// Reads, decides with [`ApprovalDecision::apply_to`] and writes back in one IMMEDIATE
/// transaction: exactly one decision wins.
pub(crate) fn decide_approval(
    conn: &mut Connection,
    tenant: &TenantId,
    id: &ApprovalId,
    decision: &ApprovalDecision,
) -> Result<ApprovalRequest> {
    decision.validate()?;
    let tx = immediate(conn)?;
    let mut request = select_approval(&tx, tenant, id)?
        .ok_or_else(|| Error::NotFound(format!("approval {id}")))?;
    decision.apply_to(&mut request, now())?;
    let c = approval_columns(&request)?;
    let changed = tx
        .prepare_cached(
            "UPDATE approvals SET status = ?3, decided_at = ?4, body = ?5 \
             WHERE tenant = ?1 AND id = ?2 AND status = 'pending'",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant.as_str(),
                id.as_str(),
                c.status,
                c.decided_at,
                c.body
            ])
        })
        .map_err(db_err)?;
    if changed != 1 {
        // Unreachable inside the transaction; refuse rather than report a decision not stored.
        return Err(Error::Conflict(format!("approval {id} is already decided")));
    }
    tx.commit().map_err(db_err)?;
    Ok(request)
}

pub(crate) fn list_pending_approvals(
    conn: &Connection,
    tenant: &TenantId,
) -> Result<Vec<ApprovalRequest>> {
    let mut st = conn.prepare_cached(PENDING_QUEUE).map_err(db_err)?;
    let mut rows = st.query(params![tenant.as_str()]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(approval_from_row(tenant, row)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Tool executions
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct ExecutionBodyRef<'a> {
    call_id: &'a str,
    tool: &'a str,
    input: &'a Value,
    output: Option<&'a Value>,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct ExecutionBody {
    call_id: String,
    tool: String,
    input: Value,
    output: Option<Value>,
    error: Option<String>,
}

pub(crate) fn record_tool_execution(conn: &mut Connection, e: &ToolExecution) -> Result<()> {
    let ToolExecution {
        tenant,
        idempotency_key,
        agent,
        session,
        run,
        call_id,
        tool,
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
        idempotency_key: IdempotencyKey::from(text(row, 0)?),
        agent: AgentId::from(text(row, 1)?),
        session: SessionId::from(text(row, 2)?),
        run: RunId::from(text(row, 3)?),
        call_id: body.call_id,
        tool: body.tool,
        input: body.input,
        output: body.output,
        error: body.error,
        status: parse_enum::<ToolExecutionStatus>(text(row, 4)?, "tool execution status")?,
        started_at: from_micros(col(row, 5)?)?,
        finished_at: opt_time(col(row, 6)?)?,
    })
}

pub(crate) fn get_tool_execution(
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

pub(crate) fn list_tool_executions(
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

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

pub(crate) fn append_usage(conn: &mut Connection, events: &[UsageEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let tx = immediate(conn)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO usage_events (tenant, id, agent, session, run, kind, resource, \
                 quantity, cost_nanos, price_version, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(db_err)?;
        for e in events {
            let UsageEvent {
                id,
                tenant,
                agent,
                session,
                run,
                kind,
                resource,
                quantity,
                cost,
                price_version,
                at,
            } = e;
            insert
                .execute(params![
                    tenant.as_str(),
                    id.as_str(),
                    agent.as_str(),
                    session.as_ref().map(SessionId::as_str),
                    run.as_ref().map(RunId::as_str),
                    kind.as_str(),
                    resource.as_deref(),
                    int(*quantity, "usage quantity")?,
                    cost.map(Usd::nanos),
                    price_version.as_deref(),
                    micros(*at)
                ])
                .map_err(|err| {
                    // A duplicate trips the no-replace trigger (or the primary key). Nothing of
                    // the batch is written: the transaction rolls back on drop.
                    if is_duplicate(&err)
                        || crate::error::constraint(&err)
                            == Some(rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER)
                    {
                        Error::Conflict(format!("usage event {id} already exists"))
                    } else {
                        db_err(err)
                    }
                })?;
        }
    }
    tx.commit().map_err(db_err)
}

pub(crate) fn list_usage(
    conn: &Connection,
    tenant: &TenantId,
    query: &UsageQuery,
) -> Result<Vec<UsageEvent>> {
    let mut sql = String::from(
        "SELECT id, agent, session, run, kind, resource, quantity, cost_nanos, price_version, at \
         FROM usage_events WHERE tenant = ?1",
    );
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(tenant.as_str().to_owned())];
    let mut filter = |clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(from) = query.from {
        filter("at >=", SqlValue::Integer(micros(from)));
    }
    if let Some(to) = query.to {
        filter("at <", SqlValue::Integer(micros(to)));
    }
    if let Some(agent) = &query.agent {
        filter("agent =", SqlValue::Text(agent.as_str().to_owned()));
    }
    if let Some(kind) = query.kind {
        filter("kind =", SqlValue::Text(kind.as_str().to_owned()));
    }
    if let Some(run) = &query.run {
        filter("run =", SqlValue::Text(run.as_str().to_owned()));
    }
    // Time order; events with the same time in insertion order.
    sql.push_str(" ORDER BY at, rowid");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let opt = |idx| -> Result<Option<&str>> {
            row.get_ref(idx)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(db_err)
        };
        let event = UsageEvent {
            id: UsageEventId::from(text(row, 0)?),
            tenant: tenant.clone(),
            agent: AgentId::from(text(row, 1)?),
            session: opt(2)?.map(SessionId::from),
            run: opt(3)?.map(RunId::from),
            kind: parse_enum(text(row, 4)?, "usage kind")?,
            resource: opt(5)?.map(str::to_owned),
            quantity: uint(col(row, 6)?, "usage quantity")?,
            cost: col::<Option<i64>>(row, 7)?.map(Usd::from_nanos),
            price_version: opt(8)?.map(str::to_owned),
            at: from_micros(col(row, 9)?)?,
        };
        // The SQL applied every filter the query had when this was written; a filter added to
        // `UsageQuery` later still applies here.
        if query.matches(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct AuditBodyRef<'a> {
    actor: &'a str,
    action: &'a str,
    decision: Option<&'a str>,
    reason: Option<&'a str>,
    input: &'a Value,
    output: &'a Value,
}

#[derive(Deserialize)]
struct AuditBody {
    actor: String,
    action: String,
    decision: Option<String>,
    reason: Option<String>,
    input: Value,
    output: Value,
}

/// Chains the entry after the tenant's last one and inserts it, in one IMMEDIATE transaction.
/// `entry.at` must already be cut to microseconds (the hash covers it).
pub(crate) fn append_audit(conn: &mut Connection, entry: NewAuditEntry) -> Result<AuditEntry> {
    let tx = immediate(conn)?;
    let last: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT seq, hash FROM audit_entries WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row(params![entry.tenant.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(db_err)?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (uint(seq, "audit seq")? + 1, hash),
        None => (1, AUDIT_GENESIS_HASH.to_string()),
    };
    let chained = entry.chain(seq, prev_hash);
    let AuditEntry {
        seq,
        entry: e,
        prev_hash,
        hash,
    } = &chained;
    let NewAuditEntry {
        tenant,
        kind,
        actor,
        action,
        decision,
        reason,
        agent,
        session,
        run,
        input,
        output,
        at,
    } = e;
    let seq = int(*seq, "audit seq")?;
    let body = to_json(&AuditBodyRef {
        actor,
        action,
        decision: decision.as_deref(),
        reason: reason.as_deref(),
        input,
        output,
    })?;
    tx.prepare_cached(
        "INSERT INTO audit_entries (tenant, seq, kind, agent, session, run, at, prev_hash, hash, \
         body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant.as_str(),
            seq,
            kind,
            agent.as_ref().map(AgentId::as_str),
            session.as_ref().map(SessionId::as_str),
            run.as_ref().map(RunId::as_str),
            micros(*at),
            prev_hash,
            hash,
            body
        ])
    })
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(chained)
}

pub(crate) fn list_audit(
    conn: &Connection,
    tenant: &TenantId,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>> {
    let mut sql = String::from(
        "SELECT seq, kind, agent, session, run, at, prev_hash, hash, body \
         FROM audit_entries WHERE tenant = ?1",
    );
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(tenant.as_str().to_owned())];
    let mut filter = |clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(from) = query.from {
        filter("at >=", SqlValue::Integer(micros(from)));
    }
    if let Some(to) = query.to {
        filter("at <", SqlValue::Integer(micros(to)));
    }
    if let Some(agent) = &query.agent {
        filter("agent =", SqlValue::Text(agent.as_str().to_owned()));
    }
    if let Some(kind) = &query.kind {
        filter("kind =", SqlValue::Text(kind.clone()));
    }
    if let Some(run) = &query.run {
        filter("run =", SqlValue::Text(run.as_str().to_owned()));
    }
    sql.push_str(" ORDER BY seq");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let opt = |idx| -> Result<Option<&str>> {
            row.get_ref(idx)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(db_err)
        };
        let body: AuditBody = from_json(text(row, 8)?, "audit entry")?;
        let entry = AuditEntry {
            seq: uint(col(row, 0)?, "audit seq")?,
            entry: NewAuditEntry {
                tenant: tenant.clone(),
                kind: text(row, 1)?.to_owned(),
                actor: body.actor,
                action: body.action,
                decision: body.decision,
                reason: body.reason,
                agent: opt(2)?.map(AgentId::from),
                session: opt(3)?.map(SessionId::from),
                run: opt(4)?.map(RunId::from),
                input: body.input,
                output: body.output,
                at: from_micros(col(row, 5)?)?,
            },
            prev_hash: text(row, 6)?.to_owned(),
            hash: text(row, 7)?.to_owned(),
        };
        if query.matches(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// Read, check and write in one IMMEDIATE transaction (the arithmetic is checked in Rust:
/// SQLite would turn an overflowing integer into a float).
pub(crate) fn counter_add(
    conn: &mut Connection,
    tenant: &TenantId,
    key: &str,
    delta: i64,
    limit: Option<i64>,
) -> Result<CounterOutcome> {
    let tx = immediate(conn)?;
    let current: i64 = tx
        .prepare_cached("SELECT value FROM counters WHERE tenant = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), key], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?
        .unwrap_or(0);
    let refused = CounterOutcome {
        applied: false,
        value: current,
    };
    let Some(next) = current.checked_add(delta) else {
        if delta > 0 && limit.is_some() {
            // Past i64::MAX is certainly past the limit.
            return Ok(refused);
        }
        return Err(Error::InvalidInput(format!(
            "counter {key}: {current} + {delta} overflows"
        )));
    };
    if delta > 0
        && let Some(limit) = limit
        && next > limit
    {
        return Ok(refused);
    }
    tx.prepare_cached(
        "INSERT INTO counters (tenant, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut st| st.execute(params![tenant.as_str(), key, next]))
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(CounterOutcome {
        applied: true,
        value: next,
    })
}

pub(crate) fn counter_get(conn: &Connection, tenant: &TenantId, key: &str) -> Result<i64> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM counters WHERE tenant = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), key], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    Ok(value.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

pub(crate) fn put_memory(
    conn: &mut Connection,
    tenant: &TenantId,
    scope: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO memories (tenant, scope, key, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant, scope, key) DO UPDATE \
         SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .and_then(|mut st| st.execute(params![tenant.as_str(), scope, key, value, micros(now())]))
    .map_err(db_err)?;
    Ok(())
}

pub(crate) fn get_memory(
    conn: &Connection,
    tenant: &TenantId,
    scope: &str,
    key: &str,
) -> Result<Option<Value>> {
    let mut st = conn
        .prepare_cached("SELECT value FROM memories WHERE tenant = ?1 AND scope = ?2 AND key = ?3")
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), scope, key])
        .map_err(db_err)?;
    rows.next()
        .map_err(db_err)?
        .map(|row| from_json(text(row, 0)?, "memory value"))
        .transpose()
}

pub(crate) fn list_memory(
    conn: &Connection,
    tenant: &TenantId,
    scope: &str,
) -> Result<Vec<(String, Value)>> {
    // BINARY collation: byte order of UTF-8, the same as Rust's `str` order.
    let mut st = conn
        .prepare_cached(
            "SELECT key, value FROM memories WHERE tenant = ?1 AND scope = ?2 ORDER BY key",
        )
        .map_err(db_err)?;
    let mut rows = st.query(params![tenant.as_str(), scope]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push((
            text(row, 0)?.to_owned(),
            from_json(text(row, 1)?, "memory value")?,
        ));
    }
    Ok(out)
}

pub(crate) fn delete_memory(
    conn: &mut Connection,
    tenant: &TenantId,
    scope: &str,
    key: &str,
) -> Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM memories WHERE tenant = ?1 AND scope = ?2 AND key = ?3")
        .and_then(|mut st| st.execute(params![tenant.as_str(), scope, key]))
        .map_err(db_err)?;
    Ok(deleted > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::StatementStatus;

    use super::*;
    use crate::schema;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::configure_writer(&conn, false).unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![SqlValue::Null; st.parameter_count()];
        let details: Vec<String> = st
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        details.join(" | ")
    }

    #[test]
    fn windows_and_queue_read_indexes_without_sorting() {
        let conn = db();
        for (sql, index) in [
            (LOAD_LAST, "sqlite_autoindex_messages_1"),
            (LOAD_ALL, "sqlite_autoindex_messages_1"),
            (LOAD_AFTER, "sqlite_autoindex_messages_1"),
            (PENDING_QUEUE, "approvals_pending_queue"),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql} sorts: {plan}");
            assert!(!plan.starts_with("SCAN"), "{sql} scans: {plan}");
        }
        let executions = plan(
            &conn,
            "SELECT idempotency_key FROM tool_executions WHERE tenant = ?1 AND run = ?2 \
             ORDER BY rowid",
        );
        assert!(
            executions.contains("tool_executions_by_run"),
            "{executions}"
        );
        assert!(!executions.contains("TEMP B-TREE"), "{executions}");
        let usage = plan(
            &conn,
            "SELECT id FROM usage_events WHERE tenant = ?1 ORDER BY at, rowid",
        );
        assert!(!usage.contains("TEMP B-TREE"), "{usage}");
    }

    /// `Last(n)` does the same work on a long history as on a short one.
    #[test]
    fn last_n_work_does_not_grow_with_history() {
        let mut conn = db();
        let tenant = TenantId::from("t");
        let session = SessionId::from("s");
        let record = SessionRecord::new(tenant.clone(), session.clone(), AgentId::from("a"));
        assert!(create_session(&mut conn, &record).unwrap());
        let message = to_json(&Message::user("a message of some length")).unwrap();
        let steps = |conn: &mut Connection, total: usize| {
            let have = load_messages(conn, &tenant, &session, MessageWindow::All)
                .unwrap()
                .len();
            let more = vec![message.clone(); total - have];
            append_messages(conn, &tenant, &session, None, &more).unwrap();
            let st = conn.prepare_cached(LOAD_LAST).unwrap();
            st.reset_status(StatementStatus::VmStep);
            drop(st);
            let window = load_messages(conn, &tenant, &session, MessageWindow::Last(20)).unwrap();
            assert_eq!(window.len(), 20);
            assert_eq!(window[19].seq, total as u64);
            let st = conn.prepare_cached(LOAD_LAST).unwrap();
            let fullscan = st.get_status(StatementStatus::FullscanStep);
            assert_eq!(fullscan, 0, "Last(n) must not scan");
            st.get_status(StatementStatus::VmStep)
        };
        let short = steps(&mut conn, 100);
        let long = steps(&mut conn, 5_000);
        assert_eq!(
            short, long,
            "VM steps of Last(20): {short} at 100, {long} at 5000"
        );
    }
}
