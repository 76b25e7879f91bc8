//! Connections: one writer behind an async mutex, a small pool of readers, and every SQLite call
//! off the async scheduler: on a multi-thread runtime with `block_in_place` (the calling worker
//! hands its other tasks to another thread, so no thread hop is paid per call), elsewhere on
//! tokio's blocking pool.
//!
//! Waiting for a connection happens on the async side (a `tokio::sync` mutex or semaphore), so a
//! queue of callers holds no threads; only the caller that owns a connection occupies a blocking
//! thread, for exactly the duration of its SQL. In WAL mode readers never wait for the writer and
//! see every transaction committed before their statement started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use agentkit_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};

use crate::error::db_err;
use crate::schema;

/// Reader connections per file database.
pub(crate) const READERS: usize = 4;

/// How SQLite files are opened: read-write, no URI interpretation of the path, and no SQLite
/// mutex (each connection is used by one thread at a time).
pub(crate) fn open_flags(create: bool) -> OpenFlags {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    flags
}

pub(crate) struct Db {
    writer: Arc<AsyncMutex<Connection>>,
    /// `None` for in-memory databases, which exist only on the writer connection.
    readers: Option<Arc<ReaderPool>>,
}

pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Db {
    pub(crate) fn new(writer: Connection, readers_of: Option<&Path>) -> Self {
        Db {
            writer: Arc::new(AsyncMutex::new(writer)),
            readers: readers_of.map(|path| {
                Arc::new(ReaderPool {
                    path: path.to_path_buf(),
                    idle: Mutex::new(Vec::with_capacity(READERS)),
                    permits: Arc::new(Semaphore::new(READERS)),
                })
            }),
        }
    }

    pub(crate) fn readers(&self) -> usize {
        if self.readers.is_some() { READERS } else { 0 }
    }

    /// Runs `f` on the writer connection, off the scheduler ([`off_scheduler`]). Writes are
    /// serialized here; each `f` does its whole read-check-write step in one transaction.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut conn = Arc::clone(&self.writer).lock_owned().await;
        // If `f` panics inside a transaction, the transaction's drop rolls it back while
        // unwinding and the lock is released with it.
        off_scheduler(move || f(&mut conn)).await
    }

    /// Runs `f` on a reader connection (the writer's, for in-memory databases).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(pool) = &self.readers else {
            return self.write(move |conn| f(conn)).await;
        };
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("sqlite store: the reader pool is closed".into()))?;
        let pool = Arc::clone(pool);
        off_scheduler(move || {
            let _permit = permit;
            let conn = pool.checkout()?;
            let result = f(&conn);
            pool.checkin(conn);
            result
        })
        .await
    }
}

impl ReaderPool {
    /// An idle reader, or a new one (readers are opened on first use, and again if one was lost
    /// to a panic). The semaphore bounds how many exist.
    fn checkout(&self) -> Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn =
                    Connection::open_with_flags(&self.path, open_flags(false)).map_err(db_err)?;
                schema::configure_reader(&conn).map_err(db_err)?;
                Ok(conn)
            }
        }
    }

    /// Returns a reader to the pool. (A reader whose user panicked is dropped instead, by the
    /// unwinding.)
    fn checkin(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }
}

/// Runs blocking SQLite work without blocking other tasks: `block_in_place` on a multi-thread
/// runtime (no hop to another thread), the blocking pool otherwise (current-thread runtimes,
/// where `block_in_place` is not allowed). A panic in `f` becomes [`Error::Internal`] either way.
async fn off_scheduler<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread = Handle::try_current()
        .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if multi_thread {
        tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
                Err(Error::Internal(
                    "sqlite store: a database call panicked".into(),
                ))
            })
        })
    } else {
        tokio::task::spawn_blocking(f).await.map_err(join_error)?
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    if e.is_panic() {
        Error::Internal("sqlite store: a database task panicked".into())
    } else {
        Error::Internal("sqlite store: a database task was cancelled".into())
    }
}
