//! [`McpServerConfig`]: one MCP server, how to reach it and how its tools are governed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use agentkit_core::tool::{SideEffect, validate_tool_name};
use agentkit_tools::http::HeaderSource;
use agentkit_tools::{RateLimit, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::error::McpError;

/// Default limit of one MCP request (a tool call included).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit of the connection and handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One MCP server: its namespace, its transport, and how its tools are governed. Serde-ready
/// (TOML, JSON, YAML), so servers can live in a host's configuration file.
///
/// ```
/// use agentkit_mcp::McpServerConfig;
///
/// let config: McpServerConfig = serde_json::from_value(serde_json::json!({
///     "namespace": "crm",
///     "transport": {
///         "type": "http",
///         "url": "https://mcp.crm.example/mcp",
///         "headers": {"Authorization": {"secret_env": "CRM_MCP_TOKEN", "prefix": "Bearer "}}
///     },
///     "timeout_ms": 20000,
///     "tools": {
///         "search_contacts": {"side_effect": "read"},
///         "delete_contact": {"side_effect": "write", "redact": ["reason"]}
///     }
/// }))?;
/// assert_eq!(config.namespace, "crm");
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct McpServerConfig {
    /// The namespace its tools are registered under: the server's `search_contacts` becomes
    /// `crm.search_contacts`. Letters, digits, `_` and `-`.
    pub namespace: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Limit of one request, a tool call included (default 60 s). A tool call that runs over
    /// is cancelled on the server (`notifications/cancelled`).
    #[serde(default = "default_timeout", rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// Limit of the connection and handshake (default 30 s).
    #[serde(
        default = "default_connect_timeout",
        rename = "connect_timeout_ms",
        with = "millis"
    )]
    pub connect_timeout: Duration,
    /// The side-effect class of a tool without an override (default `external`). Never taken
    /// from the server's annotations: a server that says `readOnlyHint` is not believed.
    #[serde(default = "default_side_effect")]
    pub default_side_effect: SideEffect,
    /// Per-tool governance by the tool's MCP name (its name on the server, without the
    /// namespace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, McpToolOverride>,
    /// Which protocol era to speak (default: the 2026-07-28 stateless protocol, falling back to
    /// 2025-11-25 for a server that does not know it).
    #[serde(default)]
    pub protocol: ProtocolPreference,
}

fn default_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

fn default_side_effect() -> SideEffect {
    SideEffect::External
}

impl McpServerConfig {
    /// A server reached over `transport`, its tools under `namespace`, with the defaults.
    pub fn new(namespace: impl Into<String>, transport: McpTransport) -> Self {
        Self {
            namespace: namespace.into(),
            transport,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            default_side_effect: SideEffect::External,
            tools: BTreeMap::new(),
            protocol: ProtocolPreference::default(),
        }
    }

    /// A child process speaking MCP on its stdin and stdout.
    pub fn stdio(
        namespace: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::new(
            namespace,
            McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
                cwd: None,
            },
        )
    }

    /// A Streamable HTTP endpoint.
    pub fn http(namespace: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(
            namespace,
            McpTransport::Http {
                url: url.into(),
                headers: BTreeMap::new(),
                oauth: None,
            },
        )
    }

    /// Adds an HTTP header (a literal, or a secret from an environment variable: see
    /// [`HeaderSource`]). Ignored by stdio servers.
    pub fn with_header(mut self, name: impl Into<String>, value: HeaderSource) -> Self {
        if let McpTransport::Http { headers, .. } = &mut self.transport {
            headers.insert(name.into(), value);
        }
        self
    }

    /// Authorizes with OAuth 2.1 when the server asks for it (a `401` with a challenge). The
    /// client needs an [`Authorizer`](crate::Authorizer) (`McpClientBuilder::authorizer`).
    /// Ignored by stdio servers.
    pub fn with_oauth(mut self, oauth: McpOAuthConfig) -> Self {
        if let McpTransport::Http { oauth: slot, .. } = &mut self.transport {
            *slot = Some(oauth);
        }
        self
    }

    /// Sets an environment variable of the child process. Ignored by HTTP servers.
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let McpTransport::Stdio { env, .. } = &mut self.transport {
            env.insert(name.into(), value.into());
        }
        self
    }

    /// Sets the request limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connection limit.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the side-effect class of tools without an override.
    pub fn with_default_side_effect(mut self, side_effect: SideEffect) -> Self {
        self.default_side_effect = side_effect;
        self
    }

    /// Governs one tool (by its MCP name).
    pub fn with_tool(mut self, mcp_name: impl Into<String>, tool: McpToolOverride) -> Self {
        self.tools.insert(mcp_name.into(), tool);
        self
    }

    /// Sets the protocol preference.
    pub fn with_protocol(mut self, protocol: ProtocolPreference) -> Self {
        self.protocol = protocol;
        self
    }

    /// Checks the configuration is usable; the error says what to fix.
    pub fn validate(&self) -> Result<(), McpError> {
        let bad = |reason: String| McpError::Config {
            server: self.namespace.clone(),
            reason,
        };
        if self.namespace.contains('.') || validate_tool_name(&self.namespace).is_err() {
            return Err(bad(format!(
                "namespace `{}` must be one segment of letters, digits, `_` or `-`",
                self.namespace
            )));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(bad("timeouts must be greater than zero".into()));
        }
        match &self.transport {
            McpTransport::Stdio { command, .. } if command.trim().is_empty() => {
                return Err(bad("the stdio command is empty".into()));
            }
            McpTransport::Http { url, headers, .. } => {
                let parsed = url::Url::parse(url).map_err(|e| bad(format!("URL `{url}`: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(bad(format!("URL `{url}`: http or https only")));
                }
                for name in headers.keys() {
                    http::HeaderName::try_from(name.as_str())
                        .map_err(|_| bad(format!("header name `{name}` is invalid")))?;
                }
            }
            McpTransport::Stdio { .. } => {}
        }
        for (name, tool) in &self.tools {
            let idempotent = tool.idempotent
                || tool.side_effect.unwrap_or(self.default_side_effect) == SideEffect::Read;
            if tool.retry.is_some() && !idempotent {
                return Err(bad(format!(
                    "tool `{name}` declares retries but is not idempotent: retrying it could \
                     repeat its effect (declare `idempotent` or `side_effect = \"read\"`)"
                )));
            }
        }
        Ok(())
    }
}

/// How to reach an MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum McpTransport {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout. It is shut down
    /// cleanly on close (stdin closed, then SIGTERM, then SIGKILL) and always reaped; its
    /// stderr goes to `tracing` at debug level.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Its working directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP. The URL passes the client's outbound (SSRF) policy, checked again
    /// after DNS resolution; header values marked secret are never logged.
    Http {
        /// The endpoint (`https://mcp.example/mcp`).
        url: String,
        /// Headers sent with every request (an `Authorization` bearer token, say).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, HeaderSource>,
        /// OAuth 2.1, run when the server answers `401` with a challenge.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oauth: Option<McpOAuthConfig>,
    },
}

/// OAuth 2.1 for a Streamable HTTP server (authorization code with PKCE, through rmcp's
/// `auth`): the authorization server is discovered from the MCP server's challenge and
/// protected-resource metadata; the client registers itself dynamically (or by a client
/// metadata document URL), or uses a pre-registered client id. Tokens are kept in memory and
/// refreshed; the user's consent goes through the host's [`Authorizer`](crate::Authorizer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct McpOAuthConfig {
    /// Where the authorization server sends the user back (the host's callback URL).
    pub redirect_uri: String,
    /// Scopes to ask for (empty: what the server's challenge or metadata says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The client's name for dynamic registration (default `agentkit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// A pre-registered client id (no dynamic registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The environment variable holding a pre-registered confidential client's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The URL of a client ID metadata document (used as the client id where the
    /// authorization server supports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
}

impl McpOAuthConfig {
    /// Dynamic registration, redirecting to `redirect_uri`.
    pub fn new(redirect_uri: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            client_name: None,
            client_id: None,
            client_secret_env: None,
            client_metadata_url: None,
        }
    }

    /// Asks for these scopes.
    pub fn with_scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Uses a pre-registered client (its secret, if any, from `secret_env`).
    pub fn with_client(mut self, client_id: impl Into<String>, secret_env: Option<String>) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret_env = secret_env;
        self
    }

    /// Identifies the client by a client ID metadata document.
    pub fn with_client_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.client_metadata_url = Some(url.into());
        self
    }
}

/// Which protocol era the client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProtocolPreference {
    /// Probe with `server/discover` (2026-07-28); fall back to the `initialize` handshake at
    /// 2025-11-25 when the server is older.
    #[default]
    Auto,
    /// 2026-07-28 only; an older server is an error.
    Modern,
    /// The `initialize` handshake at 2025-11-25 only.
    Legacy,
}

/// How one MCP tool is governed: what the host, not the server, says about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct McpToolOverride {
    /// Side-effect class (default: the server's `default_side_effect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_effect: Option<SideEffect>,
    /// Safe to repeat with the same arguments (read tools are, whatever this says).
    #[serde(default)]
    pub idempotent: bool,
    /// Retries of retryable failures (a server that died mid-call, a timeout): idempotent
    /// tools only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Calls allowed per tenant (`"60/min"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Argument and output fields masked in audit entries, records and traces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// A description for the model instead of the server's (server descriptions are
    /// untrusted text shown to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl McpToolOverride {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the side-effect class.
    pub fn side_effect(mut self, side_effect: SideEffect) -> Self {
        self.side_effect = Some(side_effect);
        self
    }

    /// Declares the tool idempotent.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sets the retry policy (idempotent tools only).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the per-tenant rate limit.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Adds fields to redact.
    pub fn redact(mut self, fields: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Replaces the server's description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn validation_names_what_to_fix() {
        let ok = McpServerConfig::stdio("crm", "node", ["server.js"]);
        assert!(ok.validate().is_ok());
        let dotted = McpServerConfig::stdio("crm.x", "node", ["server.js"]);
        assert!(
            dotted
                .validate()
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
        let ftp = McpServerConfig::http("crm", "ftp://x.example/mcp");
        assert!(
            ftp.validate()
                .unwrap_err()
                .to_string()
                .contains("http or https")
        );
        let retry_write = McpServerConfig::stdio("crm", "node", ["s.js"]).with_tool(
            "delete",
            McpToolOverride::new()
                .side_effect(SideEffect::Write)
                .retry(RetryPolicy::retries(2)),
        );
        assert!(
            retry_write
                .validate()
                .unwrap_err()
                .to_string()
                .contains("not idempotent")
        );
        let bad_header = McpServerConfig::http("crm", "https://x.example/mcp")
            .with_header("bad header", HeaderSource::Value("x".into()));
        assert!(
            bad_header
                .validate()
                .unwrap_err()
                .to_string()
                .contains("header name")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let typo = serde_json::json!({
            "namespace": "crm",
            "transport": {"type": "stdio", "command": "node"},
            "timeout": 5
        });
        assert!(serde_json::from_value::<McpServerConfig>(typo).is_err());
    }
}
