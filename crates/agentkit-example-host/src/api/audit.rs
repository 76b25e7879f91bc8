//! The tenant's audit trail: export (JSON Lines) and verification of its hash chain.

use agentkit::store::{AuditQuery, verify_audit_chain};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};

/// The whole chain as JSON Lines (one entry per line, in sequence order: the format of
/// `policy_engine::audit::export_jsonl`, which `audit verify` tools read).
pub(super) async fn export(State(app): State<App>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let entries = app
        .inner
        .store
        .list_audit(&caller.tenant, &AuditQuery::all())
        .await
        .map_err(Problem::from)?;
    let mut out = Vec::new();
    for entry in &entries {
        serde_json::to_writer(&mut out, entry)
            .map_err(|e| Problem::from(agentkit::Error::Internal(format!("audit export: {e}"))))?;
        out.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out))
}

pub(super) async fn verify(State(app): State<App>, caller: Caller) -> ApiResult<Json<Value>> {
    let entries = app
        .inner
        .store
        .list_audit(&caller.tenant, &AuditQuery::all())
        .await
        .map_err(Problem::from)?;
    Ok(Json(match verify_audit_chain(&entries) {
        Ok(()) => json!({"verified": true, "entries": entries.len()}),
        Err(seq) => json!({"verified": false, "entries": entries.len(), "broken_at": seq}),
    }))
}
