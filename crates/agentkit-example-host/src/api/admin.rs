//! The operator's API: companies (tenants) are created here, each with its first API key.
//! Off unless `AGENTKIT_HOST_ADMIN_TOKEN` is set; a tenant's API key is not the operator's
//! token (403).

use agentkit::id::TenantId;
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::problem::{ApiJson, ApiResult, Problem};

/// The operator's token (`AGENTKIT_HOST_ADMIN_TOKEN`); kept as a digest, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl AdminToken {
    /// The token `token` (refused when shorter than 16 characters).
    pub fn new(token: &str) -> agentkit::Result<Self> {
        if token.trim().chars().count() < 16 {
            return Err(agentkit::Error::InvalidConfig(
                "the admin token must be at least 16 characters".into(),
            ));
        }
        Ok(Self {
            digest: Sha256::digest(token.trim().as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token (digests compared in full, without an early exit).
    pub fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        self.digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([REDACTED])")
    }
}

/// The operator, authenticated by the admin token.
pub(super) struct Operator;

impl axum::extract::FromRequestParts<App> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        let token = app.config().admin_token.as_ref().ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "the admin API is off (set AGENTKIT_HOST_ADMIN_TOKEN)",
            )
        })?;
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Problem::unauthorized("the admin token is required"))?;
        if token.matches(presented) {
            Ok(Operator)
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "that is not the admin token",
            ))
        }
    }
}

/// A new company.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCompany {
    /// Its id (the tenant id every record of it carries).
    company: String,
}

/// Creates a company: its default agent and its first API key (returned once; 409 if the
/// company exists).
pub(super) async fn create_company(
    State(app): State<App>,
    _operator: Operator,
    ApiJson(body): ApiJson<NewCompany>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = TenantId::new(&body.company).map_err(|e| Problem::bad_request(e.to_string()))?;
    if app
        .tables()
        .has_tenant(&tenant)
        .await
        .map_err(Problem::from)?
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("company `{tenant}` exists"),
        ));
    }
    let key = app.create_tenant(&tenant).await.map_err(Problem::from)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"company": tenant, "api_key": key})),
    ))
}
