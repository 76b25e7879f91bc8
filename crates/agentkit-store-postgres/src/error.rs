//! Mapping sqlx errors to agentkit errors.
//!
//! Three phases, because what a caller may conclude differs:
//! - getting a connection or starting the transaction ([`acquire_error`]) and running its
//!   statements ([`query_error`]): a lost connection means the transaction was rolled back, so
//!   nothing happened: [`Error::Unavailable`];
//! - committing ([`commit_error`]): a lost connection leaves the outcome unknown (all or
//!   nothing, but which one is not known): `Error::Storage { retryable: true, .. }`.

use agentkit_core::Error;
use sqlx::error::DatabaseError;

/// Boxed source error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error while getting a connection or starting the transaction.
pub(crate) fn acquire_error(op: &'static str, e: sqlx::Error) -> Error {
    query_error(op, e)
}

/// An error while running a statement of an uncommitted transaction (or a lone statement).
pub(crate) fn query_error(op: &'static str, e: sqlx::Error) -> Error {
    if is_connection_error(&e) {
        return Error::Unavailable {
            message: format!("postgres: {op}: {e} (nothing was written)"),
            source: Some(Box::new(e)),
        };
    }
    classify(op, e)
}

/// An error while committing.
pub(crate) fn commit_error(op: &'static str, e: sqlx::Error) -> Error {
    if is_connection_error(&e) {
        return Error::storage(
            format!("postgres: {op}: connection lost while committing, outcome unknown: {e}"),
            true,
            Some(Box::new(e) as BoxError),
        );
    }
    classify(op, e)
}

/// Errors after which the server (or the network to it) is the problem, not the request.
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // connection_exception, admin/crash shutdown, cannot connect now.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

fn classify(op: &'static str, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => database_error(op, db),
        sqlx::Error::Configuration(_) => Error::InvalidConfig(format!("postgres: {op}: {e}")),
        sqlx::Error::PoolClosed => Error::storage(
            format!("postgres: {op}: the store's connection pool was closed"),
            false,
            Some(Box::new(e) as BoxError),
        ),
        other => Error::storage(
            format!("postgres: {op}: {other}"),
            false,
            Some(Box::new(other) as BoxError),
        ),
    }
}

fn database_error(op: &'static str, db: Box<dyn DatabaseError>) -> Error {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let message = format!("postgres: {op}: {} (SQLSTATE {code})", db.message());
    let source = Some(Box::new(sqlx::Error::Database(db)) as BoxError);
    match code.as_str() {
        // unique_violation: a duplicate id.
        "23505" => Error::Conflict(message),
        // foreign_key_violation: the referenced session or run does not exist in the tenant.
        "23503" => Error::NotFound(message),
        // Other integrity violations and data exceptions (a NUL byte in text, a number out of
        // range): the input cannot be stored.
        c if c.starts_with("23") || c.starts_with("22") => Error::InvalidInput(message),
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled
        // (statement timeout), insufficient resources: the same call may succeed later.
        "40001" | "40P01" | "55P03" | "57014" => Error::storage(message, true, source),
        c if c.starts_with("53") => Error::storage(message, true, source),
        _ => Error::storage(message, false, source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_retryable_and_say_whether_anything_happened() {
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let before = query_error("append_messages", io());
        assert!(matches!(before, Error::Unavailable { .. }), "{before:?}");
        assert!(before.is_retryable());
        let during_commit = commit_error("append_messages", io());
        assert!(
            matches!(
                during_commit,
                Error::Storage {
                    retryable: true,
                    ..
                }
            ),
            "{during_commit:?}"
        );
        let timeout = acquire_error("get_run", sqlx::Error::PoolTimedOut);
        assert!(timeout.is_retryable());
        let closed = acquire_error("get_run", sqlx::Error::PoolClosed);
        assert!(!closed.is_retryable());
    }
}
