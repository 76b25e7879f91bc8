//! Errors: [`OpenError`] for opening a database, and the mapping of SQLite errors onto
//! [`agentkit_core::Error`] for every store call.

use agentkit_core::Error;
use agentkit_core::error::BoxError;
use rusqlite::ffi;

/// Why [`crate::SqliteStore::open`] failed.
///
/// Converts into [`agentkit_core::Error::Storage`] (with this error as its source) for hosts that
/// propagate one error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database was written by a newer version of this crate (its schema version is higher
    /// than any this build knows); it is left untouched.
    #[error(
        "the database has schema version {found}, newer than version {supported} that this \
         build of agentkit-store-sqlite knows; upgrade agentkit-store-sqlite"
    )]
    SchemaTooNew {
        /// The database's schema version (`PRAGMA user_version`).
        found: u32,
        /// The highest version this build knows ([`crate::SCHEMA_VERSION`]).
        supported: u32,
    },
    /// A migration failed; the database stays at the version before it.
    #[error("schema migration to version {version} failed: {source}")]
    Migration {
        /// The version the migration was to bring the database to.
        version: u32,
        /// The SQLite error.
        #[source]
        source: BoxError,
    },
    /// The database could not be opened or configured (missing directory, permissions, not a
    /// database, locked by another process for longer than the busy timeout...).
    #[error("cannot open the sqlite database: {message}")]
    Database {
        /// What went wrong.
        message: String,
        /// Whether opening may succeed later (the database was busy or locked).
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl OpenError {
    pub(crate) fn database(e: rusqlite::Error) -> Self {
        OpenError::Database {
            message: e.to_string(),
            retryable: is_busy(&e),
            source: Some(Box::new(e)),
        }
    }

    /// Whether opening may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            OpenError::Database {
                retryable: true,
                ..
            }
        )
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        Error::Storage {
            message: e.to_string(),
            retryable: e.is_retryable(),
            source: Some(Box::new(e)),
        }
    }
}

/// `SQLITE_BUSY` / `SQLITE_LOCKED`: another connection holds the lock; retrying may succeed.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked)
    )
}

/// The extended result code of a constraint violation, if `e` is one.
pub(crate) fn constraint(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ffi::ErrorCode::ConstraintViolation => {
            Some(f.extended_code)
        }
        _ => None,
    }
}

/// A primary key or unique violation (a duplicate id).
pub(crate) fn is_duplicate(e: &rusqlite::Error) -> bool {
    matches!(
        constraint(e),
        Some(ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE)
    )
}

/// A foreign key violation (the referenced session or run does not exist in the tenant).
pub(crate) fn is_missing_parent(e: &rusqlite::Error) -> bool {
    constraint(e) == Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// Maps a SQLite error: busy/locked are retryable storage errors, duplicate keys and the
/// immutability triggers are conflicts, missing parents are `NotFound`, the rest are
/// non-retryable storage errors.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    match constraint(&e) {
        Some(
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            | ffi::SQLITE_CONSTRAINT_UNIQUE
            | ffi::SQLITE_CONSTRAINT_TRIGGER,
        ) => Error::Conflict(format!("sqlite: {e}")),
        Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => {
            Error::NotFound(format!("sqlite: a referenced record does not exist ({e})"))
        }
        _ => {
            let retryable = is_busy(&e);
            Error::Storage {
                message: format!("sqlite: {e}"),
                retryable,
                source: Some(Box::new(e)),
            }
        }
    }
}

/// A stored value this build cannot read back (edited by hand, or a bug).
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::storage(
        format!("sqlite: stored {what} cannot be read: {detail}"),
        false,
        None,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use agentkit_core::ErrorKind;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_locked_are_retryable_storage_errors() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_BUSY_SNAPSHOT,
        ] {
            let e = db_err(failure(code));
            assert_eq!(e.kind(), ErrorKind::Storage);
            assert!(e.is_retryable(), "{code}");
        }
        let e = db_err(failure(ffi::SQLITE_IOERR));
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(!e.is_retryable());
    }

    #[test]
    fn constraints_map_to_contract_errors() {
        assert_eq!(
            db_err(failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)).kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            db_err(failure(ffi::SQLITE_CONSTRAINT_TRIGGER)).kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            db_err(failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            db_err(failure(ffi::SQLITE_CONSTRAINT_NOTNULL)).kind(),
            ErrorKind::Storage
        );
    }

    #[test]
    fn open_errors_convert_to_storage_errors() {
        let e: Error = OpenError::SchemaTooNew {
            found: 9,
            supported: 1,
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("schema version 9"), "{e}");
    }
}
