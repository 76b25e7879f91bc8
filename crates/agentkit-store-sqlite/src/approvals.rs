//! [`ApprovalStore`]: approval requests and their one decision.
//!
//! A decision reads, decides with [`ApprovalDecision::apply_to`] and writes back in one
//! `BEGIN IMMEDIATE` transaction, so exactly one decision wins. The review queue reads the
//! partial index `approvals_pending_queue` in order.

use agentkit_core::id::{AgentId, ApprovalId, RunId, SessionId, TenantId};
use agentkit_core::message::ToolCall;
use agentkit_core::store::{
    ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalStore, NewAuditEntry, ensure_tenant,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SqliteStore;
use crate::codec::{
    from_json, from_micros, micros, now, parse_enum, priority_from_rank, priority_rank, to_json,
};
use crate::error::{db_err, is_duplicate, is_missing_parent};
use crate::sql::{col, immediate, opt_time, text};

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn create_approval(&self, tenant: &TenantId, request: &ApprovalRequest) -> Result<()> {
        ensure_tenant(tenant, &request.tenant, "the approval request")?;
        let request = request.clone();
        self.db().write(move |c| create_approval(c, &request)).await
    }

    async fn get_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db().read(move |c| get_approval(c, &tenant, &id)).await
    }

    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        decision.validate()?;
        let (tenant, id, decision) = (tenant.clone(), id.clone(), decision.clone());
        self.db()
            .write(move |c| decide_approval(c, &tenant, &id, &decision))
            .await
    }

    async fn list_pending_approvals(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        let tenant = tenant.clone();
        self.db()
            .read(move |c| list_pending_approvals(c, &tenant))
            .await
    }
}

// The SQL, on one connection.

#[derive(Serialize)]
struct ApprovalBodyRef<'a> {
    call: &'a ToolCall,
    arguments_hash: &'a str,
    reason: &'a str,
    assignee: Option<&'a str>,
    reviewer: Option<&'a str>,
    comment: Option<&'a str>,
    edited_arguments: Option<&'a Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    decided_automatically: bool,
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
    #[serde(default)]
    decided_automatically: bool,
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
        decided_automatically,
    } = a;
    let body = to_json(&ApprovalBodyRef {
        call,
        arguments_hash,
        reason,
        assignee: assignee.as_deref(),
        reviewer: reviewer.as_deref(),
        comment: comment.as_deref(),
        edited_arguments: edited_arguments.as_ref(),
        decided_automatically: *decided_automatically,
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
const PENDING_QUEUE: &str = "SELECT id, agent, session, run, status, priority, \
     deadline, created_at, decided_at, body FROM approvals \
     WHERE tenant = ?1 AND status = 'pending' \
     ORDER BY priority DESC, deadline IS NULL, deadline, created_at, id";

fn approval_from_row(tenant: &TenantId, row: &Row<'_>) -> Result<ApprovalRequest> {
    let body: ApprovalBody = from_json(text(row, 9)?, "approval")?;
    Ok(ApprovalRequest {
        id: ApprovalId::new(text(row, 0)?)?,
        tenant: tenant.clone(),
        agent: AgentId::new(text(row, 1)?)?,
        session: SessionId::new(text(row, 2)?)?,
        run: RunId::new(text(row, 3)?)?,
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
        decided_automatically: body.decided_automatically,
    })
}

pub(crate) fn create_approval(conn: &Connection, a: &ApprovalRequest) -> Result<()> {
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

fn get_approval(
    conn: &Connection,
    tenant: &TenantId,
    id: &ApprovalId,
) -> Result<Option<ApprovalRequest>> {
    select_approval(conn, tenant, id)
}

/// Reads, decides with [`ApprovalDecision::apply_to`] and writes back in one IMMEDIATE
/// transaction: exactly one decision wins.
fn decide_approval(
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
    // The decision and its audit record commit together or not at all.
    crate::audit::append_in(&tx, NewAuditEntry::approval_decided(&request))?;
    tx.commit().map_err(db_err)?;
    Ok(request)
}

fn list_pending_approvals(conn: &Connection, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
    let mut st = conn.prepare_cached(PENDING_QUEUE).map_err(db_err)?;
    let mut rows = st.query(params![tenant.as_str()]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(approval_from_row(tenant, row)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::testing::{assert_reads_index_in_order, db};

    #[test]
    fn the_queue_reads_its_index_without_sorting() {
        assert_reads_index_in_order(&db(), PENDING_QUEUE, "approvals_pending_queue");
    }
}
