//! The caller: the tenant of the API key in `Authorization: Bearer …` (or, for the reviewer's
//! page, in its session cookie).

use agentkit::id::TenantId;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::app::App;
use crate::problem::Problem;

/// The cookie the reviewer's page keeps the key in (HttpOnly, SameSite=Strict).
pub const KEY_COOKIE: &str = "agentkit_key";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their tenant: every request reads and writes this tenant's data only.
    pub tenant: TenantId,
    /// The key they used (to rotate it).
    pub key: String,
}

/// The key a request carries, if any.
pub fn presented_key(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string());
    bearer.or_else(|| {
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == KEY_COOKIE)
            .map(|(_, value)| value.to_string())
    })
}

impl FromRequestParts<App> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        let key = presented_key(parts)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("an API key is required (Authorization: Bearer)")
            })?;
        let tenant = app
            .tables()
            .tenant_of(&key)
            .await
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::unauthorized("the API key is not valid"))?;
        Ok(Caller { tenant, key })
    }
}
