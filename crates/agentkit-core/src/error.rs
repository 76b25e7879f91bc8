//! The one error type of agentkit.

use std::time::Duration;

/// Boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across agentkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error agentkit returns.
///
/// Variants carry what a caller needs to react (for example the server's `retry_after`); use
/// [`Error::kind`] to branch without matching fields and [`Error::is_retryable`] to decide whether
/// the same call may succeed later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something invalid (arguments, ids, a request).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A configuration (agent config, builder, policy file) is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The record does not exist (in this tenant).
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation conflicts with the current state (already decided, immutable, duplicate id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Credentials were missing or rejected.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Too many requests; try again after `retry_after` when the server said so.
    #[error("rate limited: {message}")]
    RateLimited {
        /// What the server said.
        message: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The provider is overloaded (HTTP 529/503 style).
    #[error("overloaded: {message}")]
    Overloaded {
        /// What the server said.
        message: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The operation took too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The prompt does not fit in the model's context window.
    #[error("context length exceeded: {0}")]
    ContextLengthExceeded(String),
    /// The remote server failed (5xx).
    #[error("server error{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
    Server {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// What the server said.
        message: String,
    },
    /// A response could not be understood (bad JSON, truncated stream, unexpected shape).
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// A backend (database, network) could not be reached; the operation did not happen.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A storage backend failed.
    #[error("storage error: {message}")]
    Storage {
        /// What went wrong.
        message: String,
        /// Whether the same call may succeed later (lost connection, lock timeout).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A run limit was reached (`max_turns`, tool error budget, structured output retries).
    #[error("limit exceeded: {limit} ({detail})")]
    LimitExceeded {
        /// Which limit.
        limit: &'static str,
        /// Details for humans.
        detail: String,
    },
    /// The model's final answer did not satisfy the output schema after the allowed retries.
    #[error("invalid model output: {0}")]
    InvalidOutput(String),
    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// A tool failed; the message is what the model is told.
    #[error("tool error: {0}")]
    Tool(String),
    /// A tool reports that it failed **before doing anything** (no side effect happened, for
    /// example the remote system refused the request). Unlike [`Error::Tool`], budget
    /// reservations made for the call are released; the message is what the model is told.
    #[error("tool error (nothing was done): {0}")]
    NotExecuted(String),
    /// An idempotency key was reused for another tool or other arguments: the recorded
    /// execution is not replayed and nothing runs.
    #[error("idempotency key `{key}` conflicts: {detail}")]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// What differs.
        detail: String,
    },
    /// The session has a run waiting for approvals, so it takes no new run: its tool calls
    /// have no results yet, and a new exchange would break the conversation. Resume that run
    /// (after its approvals are decided) or abandon it (`Agent::abandon_run`).
    #[error("session `{session}` has a suspended run `{run}`; resume or abandon it first")]
    SessionSuspended {
        /// The session.
        session: String,
        /// The suspended run (a `RunId`).
        run: String,
    },
    /// A vector's length is not the store's or embedder's (`expected`).
    #[error("vector dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The length the store or embedder works with.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A bug or broken invariant inside agentkit or a plug-in.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Field-less discriminant of [`Error`], for branching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ErrorKind {
    InvalidInput,
    InvalidConfig,
    NotFound,
    Conflict,
    Unauthenticated,
    PermissionDenied,
    RateLimited,
    Overloaded,
    Timeout,
    ContextLengthExceeded,
    Server,
    MalformedResponse,
    Unavailable,
    Storage,
    LimitExceeded,
    InvalidOutput,
    Cancelled,
    Tool,
    NotExecuted,
    IdempotencyConflict,
    SessionSuspended,
    DimensionMismatch,
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Overloaded { .. } => ErrorKind::Overloaded,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::ContextLengthExceeded(_) => ErrorKind::ContextLengthExceeded,
            Error::Server { .. } => ErrorKind::Server,
            Error::MalformedResponse(_) => ErrorKind::MalformedResponse,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Storage { .. } => ErrorKind::Storage,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::InvalidOutput(_) => ErrorKind::InvalidOutput,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Tool(_) => ErrorKind::Tool,
            Error::NotExecuted(_) => ErrorKind::NotExecuted,
            Error::IdempotencyConflict { .. } => ErrorKind::IdempotencyConflict,
            Error::SessionSuspended { .. } => ErrorKind::SessionSuspended,
            Error::DimensionMismatch { .. } => ErrorKind::DimensionMismatch,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. }
            | Error::Overloaded { .. }
            | Error::Timeout(_)
            | Error::Server { .. }
            | Error::Unavailable { .. } => true,
            Error::Storage { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// How long the server asked to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Overloaded { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// A storage error.
    pub fn storage(
        message: impl Into<String>,
        retryable: bool,
        source: impl Into<Option<BoxError>>,
    ) -> Self {
        Error::Storage {
            message: message.into(),
            retryable,
            source: source.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidInput(format!("JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn kinds_and_retryability() {
        let e = Error::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(!Error::InvalidInput("x".into()).is_retryable());
        assert!(Error::storage("lost connection", true, None).is_retryable());
        assert!(!Error::Conflict("decided".into()).is_retryable());
        assert_eq!(
            Error::Server {
                status: Some(502),
                message: "bad gateway".into()
            }
            .to_string(),
            "server error 502: bad gateway"
        );
    }
}
