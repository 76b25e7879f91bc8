//! [`ApprovalStore`]: human approval requests, decided exactly once.
//!
//! A decision locks the request row (`SELECT ... FOR UPDATE`), applies the decision with
//! [`ApprovalDecision::apply_to`] (the one definition of what a decision does) and writes the
//! result back in the same transaction. Concurrent deciders wait on the lock and then see the
//! decided row, so `apply_to` refuses them with [`agentkit_core::Error::Conflict`].

use agentkit_core::id::{ApprovalId, TenantId};
use agentkit_core::message::ToolCall;
use agentkit_core::policy::Priority;
use agentkit_core::store::{
    ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalStore, NewAuditEntry, ensure_tenant,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::codec::{from_json, from_name, json, micros, name};
use crate::error::query_error;
use crate::{PostgresStore, commit};

/// `SELECT <approval columns> FROM approvals <rest>`, as one string literal.
macro_rules! select_approvals {
    ($rest:literal) => {
        concat!(
            "SELECT id, agent, session_id, run_id, call::text AS call, arguments_hash, reason, \
             priority, status, assignee, deadline, created_at, decided_at, reviewer, comment, \
             edited_arguments::text AS edited_arguments, decided_automatically FROM approvals ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: String,
    agent: String,
    session_id: String,
    run_id: String,
    call: String,
    arguments_hash: String,
    reason: String,
    priority: String,
    status: String,
    assignee: Option<String>,
    deadline: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    reviewer: Option<String>,
    comment: Option<String>,
    edited_arguments: Option<String>,
    decided_automatically: bool,
}

impl ApprovalRow {
    fn into_request(self, tenant: &TenantId) -> Result<ApprovalRequest> {
        Ok(ApprovalRequest {
            id: self.id.try_into()?,
            tenant: tenant.clone(),
            agent: self.agent.try_into()?,
            session: self.session_id.try_into()?,
            run: self.run_id.try_into()?,
            call: from_json::<ToolCall>(&self.call, "approval call")?,
            arguments_hash: self.arguments_hash,
            reason: self.reason,
            priority: from_name::<Priority>(&self.priority, "approval priority")?,
            status: from_name::<ApprovalStatus>(&self.status, "approval status")?,
            assignee: self.assignee,
            deadline: self.deadline,
            created_at: self.created_at,
            decided_at: self.decided_at,
            reviewer: self.reviewer,
            comment: self.comment,
            edited_arguments: self
                .edited_arguments
                .map(|t| from_json::<Value>(&t, "approval edited arguments"))
                .transpose()?,
            decided_automatically: self.decided_automatically,
        })
    }
}

#[async_trait]
impl ApprovalStore for PostgresStore {
    async fn create_approval(&self, tenant: &TenantId, request: &ApprovalRequest) -> Result<()> {
        const OP: &str = "create_approval";
        ensure_tenant(tenant, &request.tenant, "the approval request")?;
        let mut tx = self.begin(OP, &request.tenant).await?;
        create_approval_in(&mut tx, OP, request).await?;
        commit(tx, OP).await
    }

    async fn get_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>> {
        const OP: &str = "get_approval";
        let mut tx = self.begin(OP, tenant).await?;
        let row: Option<ApprovalRow> =
            sqlx::query_as(select_approvals!("WHERE tenant = $1 AND id = $2"))
                .bind(tenant.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        row.map(|r| r.into_request(tenant)).transpose()
    }

    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        const OP: &str = "decide_approval";
        decision.validate()?;
        let mut tx = self.begin(OP, tenant).await?;
        let row: Option<ApprovalRow> = sqlx::query_as(select_approvals!(
            "WHERE tenant = $1 AND id = $2 FOR UPDATE"
        ))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("approval {id}")));
        };
        let mut request = row.into_request(tenant)?;
        decision.apply_to(&mut request, micros(Utc::now()))?;
        let edited = request.edited_arguments.as_ref().map(json).transpose()?;
        sqlx::query(
            "UPDATE approvals SET status = $3, reviewer = $4, comment = $5, \
             edited_arguments = $6::json, decided_at = $7, decided_automatically = $8 \
             WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(request.status.as_str())
        .bind(request.reviewer.as_deref())
        .bind(request.comment.as_deref())
        .bind(edited)
        .bind(request.decided_at)
        .bind(request.decided_automatically)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        // The decision and its audit record commit together or not at all.
        crate::audit::append_in(&mut tx, OP, NewAuditEntry::approval_decided(&request)).await?;
        commit(tx, OP).await?;
        Ok(request)
    }

    async fn list_pending_approvals(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        const OP: &str = "list_pending_approvals";
        let mut tx = self.begin(OP, tenant).await?;
        // The order of `records::approval_queue_order`, read from the partial queue index.
        let rows: Vec<ApprovalRow> = sqlx::query_as(select_approvals!(
            "WHERE tenant = $1 AND status = 'pending' \
             ORDER BY priority_rank DESC, deadline ASC NULLS LAST, created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter().map(|r| r.into_request(tenant)).collect()
    }
}

/// Inserts an approval request inside the caller's transaction.
pub(crate) async fn create_approval_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    request: &ApprovalRequest,
) -> Result<()> {
    let edited = request.edited_arguments.as_ref().map(json).transpose()?;
    let inserted = sqlx::query(
        "INSERT INTO approvals (tenant, id, agent, session_id, run_id, call, arguments_hash, \
             reason, priority, status, assignee, deadline, created_at, decided_at, reviewer, \
             comment, edited_arguments, decided_automatically) \
             VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17::json, $18) \
             ON CONFLICT (tenant, id) DO NOTHING",
    )
    .bind(request.tenant.as_str())
    .bind(request.id.as_str())
    .bind(request.agent.as_str())
    .bind(request.session.as_str())
    .bind(request.run.as_str())
    .bind(json(&request.call)?)
    .bind(request.arguments_hash.as_str())
    .bind(request.reason.as_str())
    .bind(name(&request.priority)?)
    .bind(request.status.as_str())
    .bind(request.assignee.as_deref())
    .bind(request.deadline.map(micros))
    .bind(micros(request.created_at))
    .bind(request.decided_at.map(micros))
    .bind(request.reviewer.as_deref())
    .bind(request.comment.as_deref())
    .bind(edited)
    .bind(request.decided_automatically)
    .execute(&mut *tx)
    .await
    .map_err(|e| query_error(op, e))?
    .rows_affected();
    if inserted == 0 {
        return Err(Error::Conflict(format!(
            "approval {} already exists",
            request.id
        )));
    }
    Ok(())
}
