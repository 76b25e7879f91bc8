//! Qdrant and gRPC errors as typed [`agentkit_core::Error`]s.

use std::time::Duration;

use agentkit_core::Error;
use agentkit_core::error::BoxError;
use qdrant_client::QdrantError;
use tonic::{Code, Status};

/// `e`, raised by operation `op`, as an agentkit error.
pub(crate) fn qdrant_error(op: &str, e: QdrantError) -> Error {
    match e {
        QdrantError::ResponseError { status } => status_error(op, status),
        QdrantError::ResourceExhaustedError {
            status,
            retry_after_seconds,
        } => Error::RateLimited {
            message: format!("qdrant {op}: {}", status.message()),
            retry_after: Some(Duration::from_secs(retry_after_seconds)),
        },
        QdrantError::ConversionError(message) => {
            Error::InvalidInput(format!("qdrant {op}: {message}"))
        }
        QdrantError::InvalidUri(e) => Error::InvalidConfig(format!("qdrant: invalid URL: {e}")),
        QdrantError::Io(e) => Error::Unavailable {
            message: format!("qdrant {op}: {e}"),
            source: Some(Box::new(e)),
        },
        // Variants behind qdrant-client features this crate does not enable (another crate of
        // the build may).
        #[allow(unreachable_patterns)]
        other => Error::storage(format!("qdrant {op}: {other}"), false, None),
    }
}

fn boxed(status: Status) -> Option<BoxError> {
    Some(Box::new(status))
}

/// A gRPC status as an agentkit error, by its code.
pub(crate) fn status_error(op: &str, status: Status) -> Error {
    let message = format!("qdrant {op}: {}", status.message());
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            Error::InvalidInput(message)
        }
        Code::NotFound => Error::NotFound(message),
        Code::AlreadyExists => Error::Conflict(message),
        Code::PermissionDenied => Error::PermissionDenied(message),
        Code::Unauthenticated => Error::Unauthenticated(message),
        Code::ResourceExhausted => Error::RateLimited {
            message,
            retry_after: None,
        },
        Code::DeadlineExceeded => Error::Timeout(message),
        // tonic reports its own request timeout as `Cancelled` ("Timeout expired").
        Code::Cancelled if status.message().to_ascii_lowercase().contains("timeout") => {
            Error::Timeout(message)
        }
        // qdrant-client reports a connection it could not open (refused, unresolved host, TLS)
        // as `Internal` "Failed to connect to …": the server is unreachable, not failing.
        Code::Internal if status.message().starts_with("Failed to connect to") => {
            Error::Unavailable {
                message,
                source: Some(Box::new(status)),
            }
        }
        Code::Unavailable => Error::Unavailable {
            message,
            source: Some(Box::new(status)),
        },
        Code::Internal | Code::Unknown => Error::Server {
            status: None,
            message,
        },
        Code::Cancelled | Code::Aborted => Error::storage(message, true, boxed(status)),
        Code::Unimplemented | Code::DataLoss | Code::Ok => {
            Error::storage(message, false, boxed(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use agentkit_core::ErrorKind;

    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let kind = |code: Code| status_error("search", Status::new(code, "x")).kind();
        assert_eq!(kind(Code::Unavailable), ErrorKind::Unavailable);
        assert_eq!(kind(Code::InvalidArgument), ErrorKind::InvalidInput);
        assert_eq!(kind(Code::NotFound), ErrorKind::NotFound);
        assert_eq!(kind(Code::AlreadyExists), ErrorKind::Conflict);
        assert_eq!(kind(Code::PermissionDenied), ErrorKind::PermissionDenied);
        assert_eq!(kind(Code::Unauthenticated), ErrorKind::Unauthenticated);
        assert_eq!(kind(Code::ResourceExhausted), ErrorKind::RateLimited);
        assert_eq!(kind(Code::DeadlineExceeded), ErrorKind::Timeout);
        assert_eq!(kind(Code::Internal), ErrorKind::Server);
        assert_eq!(kind(Code::Aborted), ErrorKind::Storage);
        let timeout = status_error("search", Status::cancelled("Timeout expired"));
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
        assert!(timeout.is_retryable());
        let e = qdrant_error(
            "search",
            QdrantError::ResourceExhaustedError {
                status: Status::resource_exhausted("slow down"),
                retry_after_seconds: 3,
            },
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(status_error("upsert", Status::unavailable("down")).is_retryable());
        // qdrant-client's own report of a connection it could not open.
        let refused = Status::internal("Failed to connect to http://127.0.0.1:6334/: refused");
        assert_eq!(
            status_error("search", refused).kind(),
            ErrorKind::Unavailable
        );
    }
}
