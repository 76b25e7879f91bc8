//! [`McpHttpService`]: the Streamable HTTP transport as a tower service, behind an
//! [`Authenticator`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::McpToolServer;
use super::caller::Authenticator;

/// What an [`McpHttpService`] accepts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct McpHttpConfig {
    /// `Host` header values accepted (DNS-rebinding protection). Default: loopback only
    /// (`localhost`, `127.0.0.1`, `::1`); a public deployment lists its own host names.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted (`https://app.example:443`); empty: no `Origin` check.
    pub allowed_origins: Vec<String>,
    /// Keep a session per client for legacy (2025-11-25) clients (default `true`); the
    /// 2026-07-28 protocol is stateless whatever this says.
    pub legacy_sessions: bool,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        let rmcp = StreamableHttpServerConfig::default();
        Self {
            allowed_hosts: rmcp.allowed_hosts,
            allowed_origins: rmcp.allowed_origins,
            legacy_sessions: true,
        }
    }
}

impl McpHttpConfig {
    /// Accepts these `Host` values.
    pub fn with_allowed_hosts(
        mut self,
        hosts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts these browser origins.
    pub fn with_allowed_origins(
        mut self,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }
}

/// The response body type of [`McpHttpService`].
pub type McpBody = BoxBody<Bytes, Infallible>;

/// Streamable HTTP for an [`McpToolServer`]: a tower `Service<http::Request<B>>` to mount at
/// a path (`axum::Router::new().route_service("/mcp", service)`). Each request is
/// authenticated first: a failure is `401` with a `WWW-Authenticate: Bearer` challenge and
/// nothing else runs; a success puts the [`McpCaller`](super::McpCaller) in the request, and
/// every tool call of it acts as that caller.
#[derive(Clone)]
pub struct McpHttpService {
    inner: StreamableHttpService<McpToolServer, LocalSessionManager>,
    authenticator: Arc<dyn Authenticator>,
}

impl std::fmt::Debug for McpHttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttpService").finish_non_exhaustive()
    }
}

impl McpHttpService {
    pub(super) fn new(
        server: McpToolServer,
        authenticator: Arc<dyn Authenticator>,
        config: McpHttpConfig,
    ) -> Self {
        let mut rmcp_config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(config.allowed_hosts)
            .with_allowed_origins(config.allowed_origins);
        rmcp_config.legacy_session_mode = config.legacy_sessions;
        let inner = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            rmcp_config,
        );
        Self {
            inner,
            authenticator,
        }
    }
}

fn unauthorized(reason: &str) -> http::Response<McpBody> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "error": {"code": -32001, "message": format!("unauthorized: {reason}")},
        "id": null
    })
    .to_string();
    let mut response = http::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"agentkit-mcp\""),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl<B> tower_service::Service<http::Request<B>> for McpHttpService
where
    B: http_body::Body + Send + 'static,
    B::Error: std::fmt::Display,
    B::Data: Send + 'static,
{
    type Response = http::Response<McpBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match authenticator.authenticate(&parts).await {
                Ok(caller) => {
                    parts.extensions.insert(caller);
                    inner.call(http::Request::from_parts(parts, body)).await
                }
                Err(e) => {
                    tracing::debug!(reason = %e, "MCP request refused: not authenticated");
                    Ok(unauthorized(&e.0))
                }
            }
        })
    }
}
