//! Workflows: publish a definition, start runs (idempotent per trigger key), read a run and its
//! step log. Runs are driven by the host's worker; their approvals are in the same queue as
//! agents' and decided the same way.

use agentkit::id::RunId;
use agentkit::workflow::{StartRequest, WorkflowDefinition};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiJson, ApiResult, Problem};

pub(super) async fn publish(
    State(app): State<App>,
    caller: Caller,
    ApiJson(definition): ApiJson<WorkflowDefinition>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    app.inner
        .workflows
        .publish(&caller.tenant, &definition)
        .await
        .map_err(Problem::from)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"workflow": definition.id, "version": definition.version})),
    ))
}

/// A run's start: its input, and optionally a trigger key (a repeat returns the first run) and
/// a version (default: the latest).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Start {
    #[serde(default)]
    input: Map<String, Value>,
    #[serde(default)]
    trigger_key: Option<String>,
    #[serde(default)]
    version: Option<u32>,
}

pub(super) async fn start(
    State(app): State<App>,
    caller: Caller,
    Path(workflow): Path<String>,
    ApiJson(body): ApiJson<Start>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut request = StartRequest::new(workflow.as_str(), Value::Object(body.input))
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    if let Some(key) = body.trigger_key {
        request = request.trigger_key(key);
    }
    if let Some(version) = body.version {
        request = request.version(version);
    }
    let created = app
        .inner
        .workflows
        .start(&caller.tenant, request)
        .await
        .map_err(Problem::from)?;
    let existing = matches!(created, agentkit::workflow::Created::Existing(_));
    let run = created.run();
    Ok((
        if existing {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        },
        Json(json!({"run_id": run.id, "state": run.state, "existing": existing})),
    ))
}

pub(super) async fn get(
    State(app): State<App>,
    caller: Caller,
    Path(run): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = RunId::new(&run).map_err(|_| Problem::not_found(format!("no run `{run}`")))?;
    let workflows = &app.inner.workflows;
    let run = workflows
        .get_run(&caller.tenant, &id)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no run `{id}`")))?;
    let steps = workflows
        .steps(&caller.tenant, &id)
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!({
        "run_id": run.id,
        "workflow": run.workflow,
        "version": run.workflow_version,
        "state": run.state,
        "wait": run.wait,
        "context": run.context,
        "steps": steps.iter().map(|s| json!({
            "seq": s.seq, "node": s.node, "kind": s.kind, "attempt": s.attempt,
            "status": s.status,
        })).collect::<Vec<_>>(),
    })))
}
