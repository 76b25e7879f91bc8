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
    notifier: Notifier,
) -> Result<Service, McpError> {
    match open_as(config, config.protocol, outbound, notifier.clone()).await {
        Err(McpError::Handshake { reason, .. }) if config.protocol == ProtocolPreference::Auto => {
            tracing::debug!(server = %config.namespace, %reason,
                "server/discover failed; retrying with the initialize handshake");
            open_as(config, ProtocolPreference::Legacy, outbound, notifier).await
        }
        other => other,
    }
}

async fn open_as(
    config: &McpServerConfig,
    protocol: ProtocolPreference,
    outbound: &OutboundPolicy,
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
    let handshake = async {
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
                notifier
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| handshake_error(server, e))
            }
            McpTransport::Http { url, headers } => {
                let parsed = url::Url::parse(url).map_err(|e| McpError::Config {
                    server: server.clone(),
                    reason: format!("URL `{url}`: {e}"),
                })?;
                outbound.check_url(&parsed).map_err(|e| McpError::Refused {
                    server: server.clone(),
                    reason: e.to_string(),
                })?;
                let client = outbound
                    .guard_client(reqwest::Client::builder())
                    .default_headers(header_map(server, headers)?)
                    .connect_timeout(config.connect_timeout)
                    .user_agent(concat!("agentkit-mcp/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| McpError::Config {
                        server: server.clone(),
                        reason: format!("HTTP client: {e}"),
                    })?;
                let transport = StreamableHttpClientTransport::with_client(
                    client,
                    StreamableHttpClientTransportConfig::with_uri(Arc::<str>::from(url.as_str())),
                );
                notifier
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
                    .map_err(|e| handshake_error(server, e))
            }
        }
    };
    tokio::time::timeout(config.connect_timeout, handshake)
        .await
        .map_err(|_| McpError::Timeout {
            server: server.clone(),
            method: "initialize",
            after: config.connect_timeout,
        })?
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
