//! # agentkit-store-sqlite
//!
//! [`SqliteStore`]: every agentkit store contract ([`agentkit_core::store::StateStore`], and
//! `agentkit_workflow::WorkflowStore`) in one SQLite file — the embedded, durable default. It passes the same conformance suite as the
//! in-memory and Postgres stores (`agentkit_core::testkit::conformance`).
//!
//! ```
//! use std::sync::Arc;
//! use agentkit_core::prelude::*;
//! use agentkit_core::store::{MessageWindow, SessionStore};
//! use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
//! use agentkit_store_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("agentkit.db");
//! // Creates the file (its directory must exist) and the schema, or opens and migrates it.
//! let store = SqliteStore::open(&path).await?;
//!
//! let model = Arc::new(ScriptedModel::new([ScriptedResponse::text("Hello!")]));
//! let agent = Agent::builder()
//!     .id("greeter")
//!     .system_prompt("You greet people.")
//!     .model(model, "scripted-1")
//!     .store(Arc::new(store.clone()))
//!     .build()?;
//! let outcome = agent.run(RunRequest::new("acme", "session-1", "hi")).await?;
//! assert_eq!(outcome.reply(), Some("Hello!"));
//! drop((agent, store));
//!
//! // Everything the run wrote is in the file.
//! let store = SqliteStore::open(&path).await?;
//! let history = store
//!     .load_messages(&TenantId::new("acme")?, &SessionId::new("session-1")?, MessageWindow::Last(20))
//!     .await?;
//! assert_eq!(history.len(), 2);
//! assert_eq!(history[1].message.text(), "Hello!");
//! # Ok(()) }
//! ```
//!
//! [`SqliteStore::open_in_memory`] gives the same store without a file (tests, examples);
//! [`SqliteStore::open_with`] takes [`SqliteOptions`] (the page size of a new file).
//!
//! ## Durability
//!
//! - Journal mode WAL with `synchronous=NORMAL`: a committed call survives the process being
//!   killed at any point; an OS crash or power loss may lose the last few commits but never
//!   leaves a partial one. Every store call is one transaction: a message batch, a usage batch,
//!   an approval decision or an audit append is stored whole or not at all.
//! - `foreign_keys=ON`, a 5 s `busy_timeout`, and `BEGIN IMMEDIATE` for every read-check-write
//!   step, so the store stays correct when several processes share the file. Busy or locked
//!   databases give retryable [`agentkit_core::Error::Storage`] errors.
//! - The schema is versioned (`PRAGMA user_version`, now [`SCHEMA_VERSION`]); pending
//!   migrations run in one transaction when the database is opened. A database written by a
//!   newer build is refused with [`OpenError::SchemaTooNew`] and left untouched.
//!
//! ## Connections and threads
//!
//! One writer connection behind an async mutex and up to four reader connections (WAL lets
//! them read while the writer writes). SQLite calls never block the runtime's other tasks: on a
//! multi-thread runtime each runs under `block_in_place` (the worker hands its other tasks to
//! another thread, so no thread hop is paid per call), on a current-thread runtime on tokio's
//! blocking pool (`spawn_blocking`), while it holds its connection; callers waiting for a
//! connection wait asynchronously. Statements are prepared once per connection
//! (`prepare_cached`). The store therefore needs a tokio runtime.
//!
//! ## Schema
//!
//! One table per record kind: `sessions`, `messages`, `agent_configs`, `runs`, `approvals`,
//! `tool_executions`, `usage_events`, `audit_entries`, `counters`, `memories`. Every table
//! starts with a `tenant` column, every key includes it and every statement filters by it
//! (tenant isolation). What queries filter or sort on is a column (ids, `seq`, status, kind,
//! agent, run, priority, deadline, times); the rest of a record is JSON text. Notable parts:
//!
//! - `messages` is keyed by `(tenant, session, seq)`: a `Last(n)` window reads that index
//!   backwards with `LIMIT n`, so its cost does not grow with the session's history, and an
//!   append writes only its new rows.
//! - `usage_events` and `audit_entries` are append-only in the database itself: triggers abort
//!   any `UPDATE`, `DELETE` or `INSERT OR REPLACE`, and an audit row must be the tenant's next
//!   sequence number carrying the previous entry's hash.
//! - Final agent config versions and succeeded tool executions are immutable (triggers too).
//! - Timestamps are integer microseconds since the Unix epoch; finer digits are cut when
//!   written (audit entries are cut before they are hashed, so the chain verifies).
//!
//! ## Knowledge vectors
//!
//! [`SqliteStore::vectors`] gives a [`SqliteVectorStore`], the core
//! [`agentkit_core::retrieval::VectorStore`] on the same file (`rag_vectors`, `rag_vector_meta`,
//! `rag_documents`, keyed by tenant and agent): vectors as little-endian `f32` BLOBs beside
//! their norms, searched by an exact scan of the tenant and agent's vectors (metadata filters
//! narrow it in SQL) scored with the cosine. It also keeps a keyword index (schema v5): an
//! external-content FTS5 table over the chunks' texts (`rag_vector_text`, tokenizer `porter
//! unicode61 remove_diacritics 2`), so `VectorStore::search_text` answers with BM25-ranked hits
//! (score `-bm25`, higher is better), tenant, agent and metadata filters applied in the same
//! SQL, the user's text read as plain words. Every write, a document replacement included, is
//! one transaction that updates the rows and the index together. It passes
//! `agentkit_rag::testkit::vectors` (text search checks included), like every vector store.

mod approvals;
mod audit;
mod codec;
mod config;
mod counters;
mod error;
mod memory;
mod options;
mod pool;
mod runs;
mod schema;
mod sessions;
mod sql;
mod step;
mod tools;
mod usage;
mod vectors;
mod workflow;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

pub use error::OpenError;
pub use options::SqliteOptions;
pub use vectors::SqliteVectorStore;

use pool::{Db, open_flags};

/// The schema version this build creates and reads (`PRAGMA user_version` of its databases).
pub const SCHEMA_VERSION: u32 = schema::MIGRATIONS.len() as u32;

/// Every agentkit store contract on one SQLite database.
///
/// Cheap to clone: clones share the connections. The connections close when the last clone is
/// dropped. Implements [`agentkit_core::store::StateStore`], so
/// `Arc::new(store) as Arc<dyn StateStore>` is what an agent takes.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
    /// Workflow step commits waiting to be written together (group commit).
    steps: workflow::CommitQueue,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it if it does not exist (its directory
    /// must), and migrates it to [`SCHEMA_VERSION`].
    ///
    /// Must be called inside a tokio runtime, like every method of the store.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// [`open`](Self::open) with [`SqliteOptions`] (for instance the page size of a new
    /// file). An option SQLite cannot take is refused with [`OpenError::Database`] before the
    /// file is touched.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, OpenError> {
        options.check()?;
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(Some(path), &options))
            .await
            .map_err(|e| OpenError::Database {
                message: format!("the opening task failed: {e}"),
                retryable: false,
                source: None,
            })?
    }

    /// A new, empty in-memory database (one connection; gone when the last clone is dropped).
    pub async fn open_in_memory() -> Result<Self, OpenError> {
        tokio::task::spawn_blocking(|| Self::open_blocking(None, &SqliteOptions::default()))
            .await
            .map_err(|e| OpenError::Database {
                message: format!("the opening task failed: {e}"),
                retryable: false,
                source: None,
            })?
    }

    fn open_blocking(path: Option<PathBuf>, options: &SqliteOptions) -> Result<Self, OpenError> {
        let mut writer = match &path {
            Some(p) => Connection::open_with_flags(p, open_flags(true)),
            None => Connection::open_in_memory(),
        }
        .map_err(OpenError::database)?;
        if let Some(bytes) = options.page_size {
            // Before WAL and the first table; SQLite ignores it on a file that has pages.
            writer
                .pragma_update(None, "page_size", bytes)
                .map_err(OpenError::database)?;
        }
        schema::configure_writer(&writer, path.is_some())?;
        schema::migrate(&mut writer)?;
        // Readers open the same file later; pin it against a change of working directory.
        let path = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                db: Db::new(writer, path.as_deref()),
                path,
                steps: workflow::CommitQueue::default(),
            }),
        })
    }

    /// The knowledge vectors of `dimensions`-long embeddings kept in this database: the core
    /// [`agentkit_core::retrieval::VectorStore`] contract, sharing this store's connections.
    /// Vectors of another length are refused with
    /// [`agentkit_core::Error::DimensionMismatch`].
    pub fn vectors(&self, dimensions: usize) -> SqliteVectorStore {
        SqliteVectorStore::new(self.clone(), dimensions)
    }

    /// The database file (`None` for an in-memory database).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn step_queue(&self) -> &workflow::CommitQueue {
        &self.inner.steps
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Where and how, never records.
        let mut d = f.debug_struct("SqliteStore");
        match &self.inner.path {
            Some(p) => d.field("path", p),
            None => d.field("path", &":memory:"),
        };
        d.field("readers", &self.inner.db.readers())
            .field("schema_version", &SCHEMA_VERSION)
            .finish()
    }
}
