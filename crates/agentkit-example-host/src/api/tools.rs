//! Tools per tenant: the host's, and the HTTP tools a tenant configures. An agent of the
//! tenant calls one when its config lists it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiJson, ApiResult, Problem};

pub(super) async fn list(State(app): State<App>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.tool_views(&caller.tenant)
            .await
            .map_err(Problem::from)?
    )))
}

/// Creates (201) or replaces (200) one of the tenant's HTTP tools; refused with what is wrong
/// (422), or 409 for a host tool's name.
pub(super) async fn put(
    State(app): State<App>,
    caller: Caller,
    ApiJson(config): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (view, replaced) = app
        .put_tenant_tool(&caller.tenant, &config)
        .await
        .map_err(Problem::from)?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view)))
}
