//! Opening one connection: the transport (a child process or Streamable HTTP), the handshake
//! and the notification handler.

use std::process::Stdio;
use std::sync::Arc;

use agentkit_tools::http::{HeaderSource, OutboundPolicy};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use rmcp::transport::AuthClient;

use super::oauth::{self, Authorizer};
use crate::config::{McpServerConfig, McpTransport, ProtocolPreference};
use crate::error::McpError;

/// A live connection and the handler receiving its notifications.
pub(crate) type Service = RunningService<RoleClient, Notifier>;

/// Receives the server's notifications; a changed tool list wakes the client's refresher.
#[derive(Clone)]
pub(crate) struct Notifier {
    pub(crate) tools_changed: mpsc::UnboundedSender<()>,
}

impl ClientHandler for Notifier {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.tools_changed.send(());
    }

    fn get_info(&self) -> ClientConfig {
        // No sampling, elicitation or roots: a governed agent does not let a server drive its
        // model or ask its user questions behind the policy's back.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agentkit-mcp", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

/// Opens a connection to `config`'s server under `outbound` (HTTP servers only). With
/// [`ProtocolPreference::Auto`], a server whose answer to `server/discover` is neither a
/// discover result nor a JSON-RPC error (some older servers answer unknown methods with `{}`)
/// is tried again, on a fresh transport, with the `initialize` handshake.
pub(crate) async fn open(
    config: &McpServerConfig,
    outbound: &OutboundPolicy,
    auth: &OAuthSession,
    notifier: Notifier,
) -> Result<Service, McpError> {
    match open_as(config, config.protocol, outbound, auth, notifier.clone()).await {
        Err(McpError::Handshake { reason, .. }) if config.protocol == ProtocolPreference::Auto => {
            tracing::debug!(server = %config.namespace, %reason,
                "server/discover failed; retrying with the initialize handshake");
            open_as(config, ProtocolPreference::Legacy, outbound, auth, notifier).await
        }
        other => other,
    }
}

/// The OAuth side of a client: the host's authorizer, and the authorized HTTP client once a
/// flow succeeded (kept for reconnections; rmcp refreshes its token).
#[derive(Default)]
pub(crate) struct OAuthSession {
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    pub(crate) client: std::sync::Mutex<Option<AuthClient<reqwest::Client>>>,
}

impl OAuthSession {
    /// Whether the server's configuration has OAuth (so a challenge can be answered).
    pub(crate) fn configured(&self, config: &McpServerConfig) -> bool {
        matches!(&config.transport, McpTransport::Http { oauth: Some(_), .. })
    }

    fn cached(&self) -> Option<AuthClient<reqwest::Client>> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

async fn handshake<T>(
    server: &str,
    notifier: Notifier,
    transport: T,
    lifecycle: ClientLifecycleMode,
) -> Result<Service, McpError>
where
    T: rmcp::transport::Transport<RoleClient> + Send + 'static,
{
    notifier
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .map_err(|e| handshake_error(server, e))
}

async fn open_as(
    config: &McpServerConfig,
    protocol: ProtocolPreference,
    outbound: &OutboundPolicy,
    auth: &OAuthSession,
    notifier: Notifier,
) -> Result<Service, McpError> {
    let server = &config.namespace;
    let lifecycle = match protocol {
        ProtocolPreference::Auto => ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        },
        ProtocolPreference::Modern => ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
        ProtocolPreference::Legacy => ClientLifecycleMode::Initialize,
    };
    let connecting = async {
        match &config.transport {
            McpTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).kill_on_drop(true);
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| McpError::Spawn {
                        server: server.clone(),
                        command: command.clone(),
                        source,
                    })?;
                if let Some(stderr) = stderr {
                    forward_stderr(server.clone(), stderr);
                }
                handshake(server, notifier, transport, lifecycle).await
            }
            McpTransport::Http { url, .. } => {
                let client = http_client(config, outbound)?;
                let uri: Arc<str> = Arc::from(url.as_str());
                let transport_config =
                    || StreamableHttpClientTransportConfig::with_uri(uri.clone());
                if let Some(authorized) = auth.cached() {
                    let transport =
                        StreamableHttpClientTransport::with_client(authorized, transport_config());
                    return handshake(server, notifier, transport, lifecycle).await;
                }
                let transport =
                    StreamableHttpClientTransport::with_client(client, transport_config());
                match handshake(server, notifier.clone(), transport, lifecycle.clone()).await {
                    Err(McpError::Unauthorized { challenge, .. }) if auth.configured(config) => {
                        let authorized =
                            authorize(config, outbound, auth, challenge.as_deref()).await?;
                        let transport = StreamableHttpClientTransport::with_client(
                            authorized,
                            transport_config(),
                        );
                        handshake(server, notifier, transport, lifecycle).await
                    }
                    other => other,
                }
            }
        }
    };
    tokio::time::timeout(config.connect_timeout, connecting)
        .await
        .map_err(|_| McpError::Timeout {
            server: server.clone(),
            method: "initialize",
            after: config.connect_timeout,
        })?
}

/// The HTTP client of a Streamable HTTP server: the outbound policy checked on its URL and
/// installed (resolver, no redirects, no proxy), the configured headers as defaults.
fn http_client(
    config: &McpServerConfig,
    outbound: &OutboundPolicy,
) -> Result<reqwest::Client, McpError> {
    let server = &config.namespace;
    let McpTransport::Http { url, headers, .. } = &config.transport else {
        return Err(McpError::Config {
            server: server.clone(),
            reason: "not an HTTP server".into(),
        });
    };
    let parsed = url::Url::parse(url).map_err(|e| McpError::Config {
        server: server.clone(),
        reason: format!("URL `{url}`: {e}"),
    })?;
    outbound.check_url(&parsed).map_err(|e| McpError::Refused {
        server: server.clone(),
        reason: e.to_string(),
    })?;
    outbound
        .guard_client(reqwest::Client::builder())
        .default_headers(header_map(server, headers)?)
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("agentkit-mcp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| McpError::Config {
            server: server.clone(),
            reason: format!("HTTP client: {e}"),
        })
}

/// Runs the OAuth flow for `config`'s server answering `challenge` (a `401`, or a `403` asking
/// for more scope), and keeps the authorized client for this and later connections.
pub(crate) async fn authorize(
    config: &McpServerConfig,
    outbound: &OutboundPolicy,
    auth: &OAuthSession,
    challenge: Option<&str>,
) -> Result<AuthClient<reqwest::Client>, McpError> {
    let server = &config.namespace;
    let McpTransport::Http {
        url,
        oauth: Some(oauth),
        ..
    } = &config.transport
    else {
        return Err(McpError::Unauthorized {
            server: server.clone(),
            challenge: challenge.map(str::to_string),
        });
    };
    let Some(authorizer) = auth.authorizer.as_ref() else {
        return Err(McpError::Config {
            server: server.clone(),
            reason: "the server asks for OAuth, and the client has no authorizer \
                     (McpClientBuilder::authorizer)"
                .into(),
        });
    };
    let authorized = oauth::authorize(
        server,
        url,
        oauth,
        challenge,
        authorizer.as_ref(),
        !outbound.allow_networks.is_empty(),
        http_client(config, outbound)?,
    )
    .await?;
    *auth
        .client
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(authorized.clone());
    Ok(authorized)
}

/// The configured headers, secrets marked sensitive (never printed by `Debug`, never logged).
fn header_map(
    server: &str,
    headers: &std::collections::BTreeMap<String, HeaderSource>,
) -> Result<HeaderMap, McpError> {
    let bad = |reason: String| McpError::Config {
        server: server.to_string(),
        reason,
    };
    let mut map = HeaderMap::new();
    for (name, source) in headers {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| bad(format!("header name `{name}` is invalid")))?;
        let value = match source {
            HeaderSource::Value(v) => HeaderValue::from_str(v)
                .map_err(|_| bad(format!("header `{name}` has an invalid value")))?,
            HeaderSource::Secret { secret_env, prefix } => {
                let secret = std::env::var(secret_env).map_err(|_| {
                    bad(format!(
                        "header `{name}` needs the environment variable `{secret_env}`, which is \
                         not set"
                    ))
                })?;
                let mut v = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
                    bad(format!(
                        "header `{name}`: the value of `{secret_env}` is not a valid header value"
                    ))
                })?;
                v.set_sensitive(true);
                v
            }
        };
        map.insert(header, value);
    }
    Ok(map)
}

fn handshake_error(server: &str, e: rmcp::service::ClientInitializeError) -> McpError {
    if e.is_authorization_required() {
        return McpError::Unauthorized {
            server: server.to_string(),
            challenge: e.auth_challenge().map(str::to_string),
        };
    }
    match e {
        rmcp::service::ClientInitializeError::ConnectionClosed(context) => McpError::Closed {
            server: server.to_string(),
            context: format!("during the handshake: {context}"),
        },
        other => McpError::Handshake {
            server: server.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The child's stderr, line by line, to `tracing` (servers log there; it must not fill a pipe).
fn forward_stderr(server: String, stderr: tokio::process::ChildStderr) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "agentkit_mcp::server_stderr", server = %server, "{line}");
        }
    });
}
