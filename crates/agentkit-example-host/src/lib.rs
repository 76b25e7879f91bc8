//! # agentkit-example-host
//!
//! The host a user of agentkit would write, on the embedded defaults (a SQLite file, the
//! offline rule-based model; a real provider when `OPENAI_API_KEY` or `OLLAMA_URL` is set;
//! Postgres instead of SQLite with feature `postgres` and `AGENTKIT_HOST_DATABASE_URL`):
//! an axum server with
//!
//! - companies (tenants) created by the operator (`AGENTKIT_HOST_ADMIN_TOKEN`), per-tenant API
//!   keys (SHA-256 digests at rest, rotation), tenant taken from the key only — another
//!   tenant's data is a 404;
//! - agents: blueprints and versioned configs;
//! - tools: the host's, and HTTP tools a tenant configures (JSON-schema-validated arguments,
//!   an outbound policy), attached to an agent by its config;
//! - chat per tenant and session, as JSON or the run's events over SSE;
//! - approvals: the queue (priority, SLA, escalation), decisions that resume the run, and a
//!   server-rendered reviewer's page (`/review`);
//! - usage (totals and the events themselves), the price book, invoice drafts, audit export
//!   and chain verification;
//! - knowledge (feature `knowledge`): documents uploaded per agent, cited answers;
//! - errors as RFC 9457 problem details, body size limits and timeouts, health and readiness,
//!   graceful shutdown.
//!
//! `cargo run -p agentkit-example-host` starts it and prints its URL and demo keys.

pub mod api;
mod app;
mod auth;
mod backend;
#[cfg(feature = "knowledge")]
pub mod knowledge;
mod model;
mod problem;
mod review;
mod routes;
pub mod tables;
pub mod telemetry;
mod tenant_tools;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use api::AdminToken;
pub use app::{App, HostConfig, tools};
pub use auth::KEY_COOKIE;
pub use model::HostModel;
pub use problem::{ApiJson, Problem};
pub use routes::{Route, routes};
pub use tables::HostTables;

/// The host's router over `app`: the API, the reviewer's page, limits and tracing.
pub fn router(app: App) -> Router {
    let limit = app.config().body_limit;
    let timeout = app.config().request_timeout;
    let (routes, _) = routes::table().into_parts();
    routes
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
