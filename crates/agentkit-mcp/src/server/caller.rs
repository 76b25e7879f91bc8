//! Who calls an agentkit MCP server: [`McpCaller`], and the [`Authenticator`] that says so for
//! HTTP requests.

use std::collections::HashMap;

use agentkit_core::id::{AgentId, SessionId, TenantId};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The authenticated caller of an MCP server: every call runs for this tenant, as this agent
/// (the principal the policy's grants and roles are keyed by), in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct McpCaller {
    /// The tenant the call acts for.
    pub tenant: TenantId,
    /// The principal the policy decides for (its `agents.<id>` grants and roles).
    pub agent: AgentId,
    /// The session the calls are recorded under (default: `mcp`).
    pub session: Option<SessionId>,
}

impl McpCaller {
    /// A caller acting for `tenant` as `agent`.
    pub fn new(tenant: TenantId, agent: AgentId) -> Self {
        Self {
            tenant,
            agent,
            session: None,
        }
    }

    /// Records calls under `session`.
    pub fn with_session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }
}

/// Why a request was not authenticated; answered with `401` and a `WWW-Authenticate`
/// challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Maps an HTTP request (its headers, a client certificate the host's TLS layer put in the
/// extensions, ...) to the caller it authenticates. The MCP HTTP service asks it for every
/// request; a failure is a `401` before anything else runs.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The caller, or why not.
    async fn authenticate(&self, request: &http::request::Parts) -> Result<McpCaller, AuthError>;
}

/// Static bearer tokens, each bound to one caller. Tokens are kept only as SHA-256 digests
/// (a leaked heap dump or `Debug` shows none), and looked up by digest.
///
/// ```
/// use agentkit_core::id::{AgentId, TenantId};
/// use agentkit_mcp::server::{BearerTokens, McpCaller};
///
/// let tokens = BearerTokens::new().with_token(
///     "s3cret-token",
///     McpCaller::new(TenantId::new("acme")?, AgentId::new("support-bot")?),
/// );
/// # let _ = tokens;
/// # Ok::<(), agentkit_core::Error>(())
/// ```
#[derive(Default)]
pub struct BearerTokens {
    callers: HashMap<[u8; 32], McpCaller>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokens")
            .field("tokens", &self.callers.len())
            .finish()
    }
}

impl BearerTokens {
    /// No tokens (every request is refused).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `token` for `caller`.
    pub fn with_token(mut self, token: impl Into<SecretString>, caller: McpCaller) -> Self {
        let token: SecretString = token.into();
        self.callers
            .insert(digest(token.expose_secret().as_bytes()), caller);
        self
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[async_trait]
impl Authenticator for BearerTokens {
    async fn authenticate(&self, request: &http::request::Parts) -> Result<McpCaller, AuthError> {
        let header = request
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| AuthError("missing bearer token".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError("the Authorization header is not a bearer token".into()))?;
        self.callers
            .get(&digest(token.as_bytes()))
            .cloned()
            .ok_or_else(|| AuthError("invalid bearer token".into()))
    }
}

/// Every request is one fixed caller: for a server behind the host's own authentication layer
/// (which already refused strangers), a loopback-only tool server, or tests.
#[derive(Debug, Clone)]
pub struct FixedCaller(pub McpCaller);

#[async_trait]
impl Authenticator for FixedCaller {
    async fn authenticate(&self, _request: &http::request::Parts) -> Result<McpCaller, AuthError> {
        Ok(self.0.clone())
    }
}
