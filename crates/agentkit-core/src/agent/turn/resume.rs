//! Resuming a suspended run after its approvals were decided, and deciding approvals.

use std::collections::HashMap;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{EventSink, RunCtx, Stored};
use crate::agent::{Agent, RunOutcome, Suspension, apply_memory_policy, window};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{RunId, TenantId};
use crate::message::Message;
use crate::message::truncate;
use crate::policy::CallCounters;
use crate::scope::Scope;
use crate::store::{ApprovalRequest, ApprovalStatus, NewAuditEntry, PendingCall, RunStatus, Step};

pub(crate) async fn resume(
    agent: &Agent,
    tenant: &TenantId,
    run_id: &RunId,
    sink: Option<EventSink>,
) -> Result<RunOutcome> {
    let a = &*agent.inner;
    let stored = a
        .store
        .get_run(tenant, run_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
    let span = tracing::info_span!(
        "agent.turn",
        tenant = %tenant,
        agent = %a.id,
        session = %stored.session,
        run = %run_id,
        resume = true,
    );
    async move {
        if stored.agent != a.id {
            return Err(Error::InvalidInput(format!(
                "run {run_id} belongs to agent `{}`, not `{}`",
                stored.agent, a.id
            )));
        }
        if stored.status != RunStatus::Suspended {
            return Ok(RunOutcome::AlreadyResumed {
                run: run_id.clone(),
                status: stored.status,
            });
        }
        let mut decided = HashMap::new();
        let mut pending = Vec::new();
        for p in &stored.pending {
            if let PendingCall::AwaitingApproval { approval, .. } = p {
                let request = a
                    .store
                    .get_approval(tenant, approval)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("approval {approval}")))?;
                if request.status == ApprovalStatus::Pending {
                    pending.push(request);
                } else {
                    decided.insert(approval.clone(), request);
                }
            }
        }
        if !pending.is_empty() {
            return Ok(RunOutcome::Suspended(Suspension {
                run: run_id.clone(),
                session: stored.session.clone(),
                approvals: pending,
                tool_calls: Vec::new(),
            }));
        }

        // Claim the run: exactly one resumer wins the compare-and-swap.
        let expected = stored.version;
        let mut run = stored;
        run.status = RunStatus::Running;
        run.version += 1;
        run.updated_at = Utc::now();
        if let Err(e) = a.store.update_run(tenant, &run, expected).await {
            if e.kind() == ErrorKind::Conflict {
                let status = a
                    .store
                    .get_run(tenant, run_id)
                    .await?
                    .map_or(RunStatus::Running, |r| r.status);
                return Ok(RunOutcome::AlreadyResumed {
                    run: run_id.clone(),
                    status,
                });
            }
            return Err(e);
        }

        let window = a
            .store
            .load_messages(tenant, &run.session, a.memory.store_window())
            .await?;
        let history = apply_memory_policy(&a.memory, window::repair(window, &run.id, false));
        let query = history
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::User { content } => Some(content.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let pending_calls = std::mem::take(&mut run.pending);
        // The session's metadata (what its first run was given), read only when context
        // sources need it.
        let metadata = if a.context.is_empty() {
            Default::default()
        } else {
            a.store
                .get_session(tenant, &run.session)
                .await?
                .map(|s| s.metadata)
                .unwrap_or_default()
        };
        let mut ctx = RunCtx {
            a,
            scope: Scope::new(
                tenant.clone(),
                a.id.clone(),
                run.session.clone(),
                run.id.clone(),
            ),
            run,
            cancel: CancellationToken::new(),
            confidence: None,
            metadata,
            sink,
            history: std::sync::Arc::new(history),
            summaries: Vec::new(),
            answered_by: String::new(),
            sources: Vec::new(),
            output_retries: 0,
            admission: None,
            step: Step::default(),
            stored: Stored::Yes,
        };
        let result = super::unwind_to_error(async {
            ctx.build_prefix(&query).await?;
            let results = ctx.apply_decisions(pending_calls, &decided).await?;
            ctx.persist(&results);
            std::sync::Arc::make_mut(&mut ctx.history).extend(results);
            ctx.check_error_budget()?;
            ctx.drive().await
        })
        .await;
        ctx.finish(result).await
    }
    .instrument(span)
    .await
}

/// Abandons a suspended run: compare-and-swap to `failed`, retract its messages, audit
/// `run.abandoned`. `false` when the run is not suspended (any more).
pub(crate) async fn abandon(
    agent: &Agent,
    tenant: &TenantId,
    run_id: &RunId,
    reason: &str,
) -> Result<bool> {
    let a = &*agent.inner;
    let stored = a
        .store
        .get_run(tenant, run_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
    if stored.agent != a.id {
        return Err(Error::InvalidInput(format!(
            "run {run_id} belongs to agent `{}`, not `{}`",
            stored.agent, a.id
        )));
    }
    if stored.status != RunStatus::Suspended {
        return Ok(false);
    }
    let expected = stored.version;
    let mut run = stored;
    run.status = RunStatus::Failed;
    run.error = Some(format!("abandoned: {reason}"));
    run.version += 1;
    run.updated_at = Utc::now();
    match a.store.update_run(tenant, &run, expected).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => return Ok(false),
        Err(e) => return Err(e),
    }
    a.store
        .retract_messages(tenant, &run.session, run_id)
        .await?;
    let scope = Scope::new(
        tenant.clone(),
        a.id.clone(),
        run.session.clone(),
        run.id.clone(),
    );
    let mut entry = NewAuditEntry::scoped(&scope, "run.abandoned", "host", run_id.to_string());
    entry.reason = Some(reason.to_owned());
    a.store.append_audit(tenant, entry).await?;
    Ok(true)
}

/// Decides an approval exactly once and records it in the audit trail, in one atomic step
/// (see [`crate::store::ApprovalStore::decide_approval`]). Hosts call this from their approval
/// endpoint, then [`Agent::resume`].
pub async fn decide_approval(
    store: &dyn crate::store::StateStore,
    tenant: &TenantId,
    approval: &crate::id::ApprovalId,
    decision: &crate::store::ApprovalDecision,
) -> Result<ApprovalRequest> {
    store.decide_approval(tenant, approval, decision).await
}

impl RunCtx<'_> {
    /// Turns decided approvals into tool results (executing approved calls), in call order.
    async fn apply_decisions(
        &mut self,
        pending: Vec<PendingCall>,
        decided: &HashMap<crate::id::ApprovalId, ApprovalRequest>,
    ) -> Result<Vec<Message>> {
        let limit = self.a.limits.max_tool_result_bytes;
        let mut results = Vec::with_capacity(pending.len());
        for (index, p) in pending.into_iter().enumerate() {
            match p {
                PendingCall::Resolved { result, .. } => results.push(result),
                PendingCall::AwaitingApproval {
                    call,
                    approval,
                    arguments_hash,
                } => {
                    let request = decided
                        .get(&approval)
                        .ok_or_else(|| Error::Internal(format!("approval {approval} vanished")))?;
                    let result = match request.status {
                        ApprovalStatus::Approved if request.arguments_hash == arguments_hash => {
                            // The original counters do not matter any more: a human approved.
                            let req = self.call_request(index, &call, CallCounters::default())?;
                            let outcome = self.a.executor.execute_approved(req, request).await?;
                            self.message_for(&call, outcome, "Approved, but ")
                        }
                        ApprovalStatus::Approved => Message::tool_error(
                            &call.id,
                            &call.name,
                            "Not executed: the approval does not match the requested call.",
                        ),
                        ApprovalStatus::Rejected
                        | ApprovalStatus::Expired
                        | ApprovalStatus::Pending => Message::tool_error(
                            &call.id,
                            &call.name,
                            truncate(request.not_approved_text().unwrap_or_default(), limit),
                        ),
                    };
                    self.note_result(call, &result);
                    results.push(result);
                }
            }
        }
        Ok(results)
    }
}
