//! The JSON API under `/v1`, and health.

mod agents;
mod approvals;
mod audit;
mod chat;
mod knowledge;
mod usage;
mod workflows;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};

pub(crate) use approvals::{Decision, decide_and_resume, pending_view};
pub(crate) use usage::spend_by_agent;

/// The API routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/v1/keys/rotate", post(rotate_key))
        .route("/v1/blueprints", get(agents::blueprints))
        .route("/v1/agents", get(agents::list).post(agents::create))
        .route("/v1/agents/{agent}", get(agents::versions))
        .route("/v1/agents/{agent}/knowledge", post(knowledge::upload))
        .route(
            "/v1/sessions/{session}/messages",
            post(chat::send).get(chat::history),
        )
        .route("/v1/sessions/{session}/stream", post(chat::stream))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", post(approvals::decide))
        .route("/v1/workflows", post(workflows::publish))
        .route("/v1/workflows/{workflow}/runs", post(workflows::start))
        .route("/v1/workflow-runs/{run}", get(workflows::get))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/invoices/{period}", get(usage::invoice))
        .route("/v1/audit", get(audit::export))
        .route("/v1/audit/verify", get(audit::verify))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers.
async fn ready(State(app): State<App>) -> ApiResult<Json<Value>> {
    let probe = agentkit::id::TenantId::new("readiness-probe").map_err(Problem::from)?;
    app.inner
        .store
        .list_pending_approvals(&probe)
        .await
        .map_err(|e| Problem::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({"status": "ready"})))
}

/// A new key for the caller's tenant; the presented one stops working.
async fn rotate_key(State(app): State<App>, caller: Caller) -> ApiResult<Json<Value>> {
    let fresh = app
        .keys()
        .rotate(&caller.key)
        .map_err(|e| Problem::from(crate::app::storage(e)))?
        .ok_or_else(|| Problem::unauthorized("the API key is not valid"))?;
    Ok(Json(
        json!({"tenant": caller.tenant.as_str(), "api_key": fresh}),
    ))
}
