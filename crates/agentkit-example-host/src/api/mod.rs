//! The JSON API under `/v1`, and health.

mod admin;
mod agents;
mod approvals;
mod audit;
mod chat;
mod knowledge;
mod tools;
mod usage;
mod workflows;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::routes::RouteTable;

pub use admin::AdminToken;
pub(crate) use approvals::{Decision, decide_and_resume, pending_view};
pub(crate) use usage::spend_by_agent;

/// The API routes.
pub(crate) fn routes() -> RouteTable {
    RouteTable::new()
        .get("/healthz", health)
        .get("/readyz", ready)
        .post("/admin/v1/companies", admin::create_company)
        .post("/v1/keys/rotate", rotate_key)
        .get("/v1/blueprints", agents::blueprints)
        .get("/v1/agents", agents::list)
        .post("/v1/agents", agents::create)
        .get("/v1/agents/{agent}", agents::versions)
        .get("/v1/agents/{agent}/versions/{version}", agents::version)
        .post("/v1/agents/{agent}/knowledge", knowledge::upload)
        .get("/v1/tools", tools::list)
        .post("/v1/tools", tools::put)
        .post("/v1/sessions/{session}/messages", chat::send)
        .get("/v1/sessions/{session}/messages", chat::history)
        .post("/v1/sessions/{session}/stream", chat::stream)
        .get("/v1/approvals", approvals::list)
        .post("/v1/approvals/{id}", approvals::decide)
        .post("/v1/workflows", workflows::publish)
        .post("/v1/workflows/{workflow}/runs", workflows::start)
        .get("/v1/workflow-runs/{run}", workflows::get)
        .get("/v1/usage", usage::usage)
        .get("/v1/usage/events", usage::events)
        .get("/v1/prices", usage::prices)
        .get("/v1/invoices/{period}", usage::invoice)
        .get("/v1/audit", audit::export)
        .get("/v1/audit/verify", audit::verify)
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
        .tables()
        .rotate(&caller.key)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::unauthorized("the API key is not valid"))?;
    Ok(Json(
        json!({"tenant": caller.tenant.as_str(), "api_key": fresh}),
    ))
}
