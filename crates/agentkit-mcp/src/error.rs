//! [`McpError`]: what can go wrong talking to an MCP server, typed.

use std::time::Duration;

use agentkit_core::Error;

/// An MCP client error. Every variant names the server (its namespace) and converts into the
/// matching [`agentkit_core::Error`] kind, so a run fails or retries per the usual rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server's configuration is unusable (bad namespace, URL, header or override).
    #[error("MCP server `{server}`: invalid configuration: {reason}")]
    Config {
        /// The server's namespace.
        server: String,
        /// What to fix.
        reason: String,
    },
    /// The outbound policy refused the server's URL (SSRF protection).
    #[error("MCP server `{server}`: the outbound policy refuses its URL: {reason}")]
    Refused {
        /// The server's namespace.
        server: String,
        /// Why.
        reason: String,
    },
    /// The child process could not be started.
    #[error("MCP server `{server}`: could not start `{command}`: {source}")]
    Spawn {
        /// The server's namespace.
        server: String,
        /// The program.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server asked for authorization the client does not have (HTTP 401/403).
    #[error("MCP server `{server}` requires authorization{}", challenge.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Unauthorized {
        /// The server's namespace.
        server: String,
        /// The `WWW-Authenticate` challenge, when it sent one.
        challenge: Option<String>,
    },
    /// The handshake (`server/discover` or `initialize`) failed.
    #[error("MCP server `{server}`: handshake failed: {reason}")]
    Handshake {
        /// The server's namespace.
        server: String,
        /// What happened.
        reason: String,
    },
    /// A tool the server lists cannot be used: its name is not a valid agentkit tool name or
    /// its input schema is not a valid JSON Schema. Reported at registration, not at call time.
    #[error("MCP server `{server}`: tool `{tool}` cannot be registered: {reason}")]
    InvalidTool {
        /// The server's namespace.
        server: String,
        /// The tool's MCP name.
        tool: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with something that is not valid MCP (malformed JSON-RPC, an
    /// unexpected result) or a JSON-RPC error.
    #[error("MCP server `{server}`: `{method}` failed: {reason}")]
    Protocol {
        /// The server's namespace.
        server: String,
        /// The MCP method.
        method: &'static str,
        /// What happened.
        reason: String,
    },
    /// The connection is closed (the server exited or the stream ended), possibly mid-call.
    #[error("MCP server `{server}`: the connection is closed ({context})")]
    Closed {
        /// The server's namespace.
        server: String,
        /// What was under way.
        context: String,
    },
    /// A request took longer than the configured limit; it was cancelled on the server.
    #[error("MCP server `{server}`: `{method}` did not finish within {} ms", after.as_millis())]
    Timeout {
        /// The server's namespace.
        server: String,
        /// The MCP method.
        method: &'static str,
        /// The limit.
        after: Duration,
    },
}

impl From<McpError> for Error {
    fn from(e: McpError) -> Self {
        let message = e.to_string();
        match e {
            McpError::Config { .. } | McpError::InvalidTool { .. } => Error::InvalidConfig(message),
            McpError::Refused { .. } => Error::PermissionDenied(message),
            McpError::Unauthorized { .. } => Error::Unauthenticated(message),
            McpError::Protocol { .. } => Error::MalformedResponse(message),
            McpError::Timeout { .. } => Error::Timeout(message),
            McpError::Spawn { source, .. } => Error::Unavailable {
                message,
                source: Some(Box::new(source)),
            },
            McpError::Handshake { .. } | McpError::Closed { .. } => Error::Unavailable {
                message,
                source: None,
            },
        }
    }
}
