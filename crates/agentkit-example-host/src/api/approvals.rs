//! Approvals: the tenant's pending queue (priority, SLA, escalation) and decisions, which
//! resume the suspended run.

use agentkit::id::{ApprovalId, TenantId};
use agentkit::redact::redact;
use agentkit::store::{ApprovalDecision, ApprovalRequest};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiJson, ApiResult, Problem};

use super::chat::outcome_json;

/// What a reviewer sees of a request: the exact tool, its arguments redacted by the tool's
/// rules, the reason, the requester and the deadline.
pub(crate) fn approval_view(app: &App, a: &ApprovalRequest) -> Value {
    json!({
        "id": a.id,
        "tool": a.call.name,
        "arguments": redact(&a.call.arguments, &app.redaction_of(&a.call.name)),
        "reason": a.reason,
        "priority": a.priority,
        "agent": a.agent,
        "session": a.session,
        "run_id": a.run,
        "status": a.status,
        "created_at": a.created_at,
        "deadline": a.deadline,
    })
}

/// The tenant's pending requests as the queue orders them (priority, then due time).
pub(crate) async fn pending_view(app: &App, tenant: &TenantId) -> agentkit::Result<Vec<Value>> {
    let pending = app.inner.queue.pending(tenant).await?;
    app.inner
        .metrics
        .approvals_pending(tenant.as_str(), pending.len() as u64);
    Ok(pending
        .into_iter()
        .map(|item| {
            let mut view = approval_view(app, &item.request);
            if let Value::Object(map) = &mut view {
                map.insert("priority".into(), json!(item.priority));
                map.insert("due".into(), json!(item.due));
                map.insert("breached".into(), json!(item.breached));
                map.insert("escalation_level".into(), json!(item.escalation_level));
                map.insert("assignee".into(), json!(item.assignee));
            }
            view
        })
        .collect())
}

pub(super) async fn list(State(app): State<App>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        pending_view(&app, &caller.tenant)
            .await
            .map_err(Problem::from)?
    )))
}

/// A reviewer's decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// `approve` or `reject`.
    pub decision: String,
    /// Who decides (must be in the host's reviewer pool).
    pub reviewer: String,
    /// Why (required to reject).
    #[serde(default)]
    pub comment: Option<String>,
    /// Edited arguments (approve only): re-validated against the tool's schema and re-checked
    /// by the policy before the call runs.
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// Decides request `id` of `tenant` (exactly once) and resumes its run.
pub(crate) async fn decide_and_resume(
    app: &App,
    tenant: &TenantId,
    id: &str,
    decision: Decision,
) -> ApiResult<Value> {
    let id = ApprovalId::new(id).map_err(|_| Problem::not_found(format!("no approval `{id}`")))?;
    let request = app
        .inner
        .store
        .get_approval(tenant, &id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no approval `{id}`")))?;
    let decision = match (decision.decision.as_str(), decision.arguments) {
        ("approve", None) => ApprovalDecision::approve(decision.reviewer),
        ("approve", Some(args)) => {
            ApprovalDecision::approve_with_arguments(decision.reviewer, args)
        }
        ("reject", _) => ApprovalDecision::reject(
            decision.reviewer,
            decision
                .comment
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| Problem::bad_request("a rejection needs a `comment`"))?,
        ),
        (other, _) => {
            return Err(Problem::bad_request(format!(
                "`decision` is `approve` or `reject`, not `{other}`"
            )));
        }
    };
    let decided = app
        .inner
        .queue
        .decide(tenant, &id, &decision)
        .await
        .map_err(Problem::from)?;
    // A workflow run's approval (a tool node's, or an agent node's whose run is
    // `<workflow run>.<step>`): the run continues on the host's worker, which may already have
    // seen the decision.
    let workflows = &app.inner.workflows;
    let workflow_run = match decided.run.as_str().rsplit_once('.') {
        Some((parent, _)) => agentkit::id::RunId::new(parent).ok(),
        None => Some(decided.run.clone()),
    };
    if let Some(run) = workflow_run
        && workflows
            .get_run(tenant, &run)
            .await
            .map_err(Problem::from)?
            .is_some()
    {
        workflows
            .approval_decided(tenant, &decided)
            .await
            .map_err(Problem::from)?;
        return Ok(json!({"workflow_run": run, "status": "resumed"}));
    }
    let agent = app
        .agent(tenant, &request.agent)
        .await
        .map_err(Problem::from)?;
    let outcome = agent
        .resume_approval(tenant, &id)
        .await
        .map_err(Problem::from)?;
    app.record_run(tenant, &outcome).await;
    Ok(outcome_json(app, &outcome))
}

pub(super) async fn decide(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        decide_and_resume(&app, &caller.tenant, &id, body).await?,
    ))
}
