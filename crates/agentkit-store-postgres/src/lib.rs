//! # agentkit-store-postgres
//!
//! [`PostgresStore`]: every agentkit store contract ([`StateStore`]) on PostgreSQL, for hosts
//! that run several processes against one database.
//!
//! - Every operation is one transaction: multi-row writes (a turn's messages, a batch of usage
//!   events) are all-or-nothing.
//! - Runs are updated by compare-and-swap on their version, approvals are decided exactly once
//!   (the row is locked, then [`ApprovalDecision::apply_to`] decides), and concurrent audit
//!   appends of a tenant are serialized by a transaction-scoped advisory lock so they form one
//!   hash chain.
//! - Counters are one conditional UPSERT; message windows are index range scans (`Last(n)` reads
//!   n index entries backwards) and never start with orphaned tool results.
//! - Usage events and audit entries are append-only in the database too: the schema revokes
//!   `UPDATE`, `DELETE` and `TRUNCATE` on them and statement triggers refuse those commands.
//! - Retrieval: [`PostgresStore::vectors`] gives a [`PgVectorStore`], the core `VectorStore`
//!   contract in the same database (pgvector's HNSW index where the extension is installed,
//!   else an exact cosine scan in SQL), with keyword search over a GIN-indexed `tsvector` of
//!   each chunk's text.
//! - The schema is created by embedded migrations ([`MIGRATOR`]) when the store connects.
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use agentkit_core::id::{AgentId, SessionId, TenantId};
//! use agentkit_core::store::{SessionRecord, SessionStore, StateStore};
//! use agentkit_store_postgres::PostgresStore;
//!
//! # async fn demo() -> agentkit_core::Result<()> {
//! // Connect as the application role (not a superuser: see "Row-level security").
//! let store = PostgresStore::connect("postgres://agentkit_app:secret@db.internal/agentkit").await?;
//! let session = SessionRecord::new(
//!     TenantId::new("acme")?, SessionId::new("session-1")?, AgentId::new("support")?,
//! );
//! store.create_session(&session.tenant, &session).await?;
//!
//! // Agents take the store as `Arc<dyn StateStore>`; clones share one connection pool.
//! let shared: Arc<dyn StateStore> = Arc::new(store.clone());
//! # let _ = shared;
//! # Ok(()) }
//! ```
//!
//! A host that tunes the pool (size, timeouts) or the session (schema via `search_path`,
//! `application_name`) builds it with [`PostgresStore::pool_options`] and passes it to
//! [`PostgresStore::from_pool`].
//!
//! ## Row-level security and the application role
//!
//! Tenant isolation is enforced twice. Every query filters by the tenant it was given, and every
//! table has row-level security (`ENABLE` + `FORCE ROW LEVEL SECURITY`) with a policy that admits
//! only rows whose `tenant` equals the setting `agentkit.tenant`. Each operation runs in a
//! transaction that first does `SELECT set_config('agentkit.tenant', $tenant, true)`, so the
//! setting lasts exactly as long as the operation and never leaks to the next user of the pooled
//! connection. A bug that forgot a tenant filter would still read and write nothing of another
//! tenant.
//!
//! PostgreSQL does not apply row-level security to **superusers** and to roles with
//! **`BYPASSRLS`**. The host must connect as an ordinary role, for example:
//!
//! ```sql
//! CREATE ROLE agentkit_app LOGIN PASSWORD '...' NOSUPERUSER NOBYPASSRLS;
//! CREATE SCHEMA agentkit AUTHORIZATION agentkit_app;   -- owner: may run the migrations
//! ALTER ROLE agentkit_app SET search_path = agentkit;
//! ```
//!
//! [`PostgresStore::enforces_row_level_security`] tells whether the connected role is subject to
//! row-level security, and connecting logs a warning when it is not. When the application role
//! owns the tables it runs the migrations itself; the migration revokes its own `UPDATE`/`DELETE`
//! on the append-only tables, and the triggers refuse them regardless. For a stricter setup,
//! migrate as an owner role ([`PostgresStore::migrate`]), grant the application role only
//! `SELECT, INSERT` on `usage_events` and `audit_entries`, `SELECT, INSERT, UPDATE, DELETE` on the
//! other tables, `USAGE` on the sequences, and connect it with
//! [`PostgresStore::from_pool_unmigrated`].
//!
//! ## Connection loss
//!
//! The store holds a [`PgPool`]. When the server goes away, operations fail with retryable
//! errors ([`Error::is_retryable`]) instead of hanging: [`Error::Unavailable`] when no connection
//! could be had within the pool's acquire timeout or the connection dropped before the
//! transaction was committed (nothing was written), and `Error::Storage { retryable: true, .. }`
//! when the connection dropped while committing (the write may or may not have happened; every
//! write is one transaction, so it happened completely or not at all). sqlx tests a connection
//! when it goes back to the pool, and [`PostgresStore::pool_options`] tests one idle for
//! [`TEST_IDLE_AFTER`] or longer before use (one round trip), so once the server is back the
//! same store works again; the host does not rebuild it. A host that builds its own pool should
//! keep such a test (sqlx's default `test_before_acquire` tests every time) and set an acquire
//! timeout it is willing to wait while the server is away (sqlx's default is 30 s).
//! Serialization failures and deadlocks are retryable too; unique violations that the
//! contracts define as conflicts are [`Error::Conflict`].
//!
//! ## Precision
//!
//! Timestamps are stored with microsecond precision (`timestamptz`); finer digits are truncated
//! on write (audit entries are truncated before they are hashed, so the chain verifies after a
//! round trip). Unsigned counts (`u64`) must fit in a signed 64-bit integer.

mod approvals;
mod audit;
mod codec;
mod config;
mod counters;
mod error;
mod memory;
mod runs;
mod sessions;
mod step;
mod tools;
mod usage;
mod vectors;
mod workflow;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use agentkit_core::id::TenantId;
use agentkit_core::{Error, Result};
use sqlx::{PgConnection, Postgres, Transaction};

#[doc(no_inline)]
pub use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[doc(no_inline)]
pub use agentkit_core::store::StateStore;
/// The sqlx version this crate is built with (for [`PgPoolOptions`] and [`PgConnectOptions`]).
pub use sqlx;
#[doc(no_inline)]
pub use sqlx::PgPool;

#[cfg(doc)]
use agentkit_core::store::ApprovalDecision;

use crate::error::{acquire_error, commit_error, query_error};

pub use vectors::{PgVectorExtension, PgVectorStore, VectorBackend};

/// The embedded schema migrations (the `migrations/` directory of this crate).
///
/// [`PostgresStore::connect`] and [`PostgresStore::from_pool`] run them; hosts that migrate
/// separately run `MIGRATOR.run(&pool)` (or [`PostgresStore::migrate`]) as the schema owner.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The session setting the row-level security policies compare `tenant` with.
pub const TENANT_SETTING: &str = "agentkit.tenant";

/// How long [`PostgresStore::pool_options`] lets an operation wait for a connection before it
/// fails with [`Error::Unavailable`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a pooled connection may sit idle before [`PostgresStore::pool_options`] tests it
/// (one round trip) before use.
pub const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Every store contract on PostgreSQL. Cheap to clone; clones share one connection pool.
///
/// See the [crate documentation](crate) for the role it must connect as and how it behaves
/// when the connection is lost.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The `LISTEN` connection workers wait on (opened on first use).
    listener: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::postgres::PgListener>>>,
}

impl PostgresStore {
    /// Connects to `url` with [`PostgresStore::pool_options`] and runs the migrations.
    ///
    /// Fails with [`Error::InvalidConfig`] for a malformed URL and [`Error::Unavailable`] when
    /// the server cannot be reached within the acquire timeout. Error messages never contain the
    /// URL.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::InvalidConfig(format!("postgres connection URL: {e}")))?;
        Self::connect_with(options).await
    }

    /// Connects with explicit connect options and [`PostgresStore::pool_options`], and runs the
    /// migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = Self::pool_options()
            .connect_with(options)
            .await
            .map_err(|e| acquire_error("connect", e))?;
        Self::from_pool(pool).await
    }

    /// Wraps a pool and runs the migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::migrate(&pool).await?;
        let store = Self::from_pool_unmigrated(pool);
        store.warn_if_rls_bypassed().await;
        Ok(store)
    }

    /// Wraps a pool whose database already has the schema ([`PostgresStore::migrate`] ran
    /// elsewhere, for example as a separate owner role). Runs nothing.
    pub fn from_pool_unmigrated(pool: PgPool) -> Self {
        Self {
            pool,
            listener: Default::default(),
        }
    }

    /// Runs the embedded migrations ([`MIGRATOR`]) on `pool`: creates or upgrades the schema in
    /// the first schema of the connections' `search_path`. Concurrent callers are serialized by
    /// an advisory lock.
    pub async fn migrate(pool: &PgPool) -> Result<()> {
        MIGRATOR.run(pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => query_error("migrate", inner),
            other => Error::storage(
                format!("postgres: migration failed: {other}"),
                false,
                Some(Box::new(other) as error::BoxError),
            ),
        })
    }

    /// The pool settings [`PostgresStore::connect`] uses: at most 10 connections, a connection
    /// idle for [`TEST_IDLE_AFTER`] or longer tested before use (so a server restart is
    /// survived without rebuilding the store), and an operation waits at most
    /// [`DEFAULT_ACQUIRE_TIMEOUT`] for one before failing with [`Error::Unavailable`]. Adjust,
    /// connect, and pass the pool to [`PostgresStore::from_pool`].
    ///
    /// sqlx tests every connection when it goes back to the pool; a connection used within the
    /// last [`TEST_IDLE_AFTER`] is not tested again when it is taken (sqlx's
    /// `test_before_acquire` would cost every transaction one more round trip: four of a turn's
    /// ~28). If the server went away in that moment, the operation fails with a retryable
    /// error and the broken connection is dropped.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= TEST_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(300)))
    }

    /// The core `VectorStore` contract (retrieval) for `dimensions`-long vectors, in this
    /// store's database and over its pool: chunks in `rag_vectors`, document entries in
    /// `rag_documents`, with the same row-level security as every other table, and keyword
    /// search (`VectorStore::search_text`) over the chunks' `tsvector`.
    ///
    /// Where the database has the `pgvector` extension installed, makes sure its HNSW index
    /// for this dimension exists (created over the rows already there: it can take a while on
    /// a large table) and searches walk it; otherwise searches are an exact scan in SQL
    /// ([`PgVectorStore`] explains both).
    /// Fails with [`Error::InvalidConfig`] when `dimensions` is 0 or above `i32::MAX`.
    pub async fn vectors(&self, dimensions: usize) -> Result<PgVectorStore> {
        PgVectorStore::new(self.clone(), dimensions).await
    }

    /// The connection pool (for health checks, metrics or closing it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the connected role is subject to row-level security: `false` for superusers and
    /// roles with `BYPASSRLS`, for which only the queries' own tenant filters isolate tenants.
    pub async fn enforces_row_level_security(&self) -> Result<bool> {
        let bypasses: bool = sqlx::query_scalar(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| query_error("check role", e))?;
        Ok(!bypasses)
    }

    async fn warn_if_rls_bypassed(&self) {
        match self.enforces_row_level_security().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "agentkit postgres store: the connected role is a superuser or has BYPASSRLS, so \
                 row-level security does not apply; connect as an ordinary application role"
            ),
            Err(e) => tracing::debug!(error = %e, "could not check the role's attributes"),
        }
    }

    /// Starts the transaction of one operation, scoped to `tenant` for row-level security.
    pub(crate) async fn begin(
        &self,
        op: &'static str,
        tenant: &TenantId,
    ) -> Result<Transaction<'static, Postgres>> {
        codec::check_tenant(tenant)?;
        if let Some(begin) = begin_scoped(tenant) {
            // One round trip instead of two: `BEGIN` and the tenant setting as one query.
            return self
                .pool
                .begin_with(begin)
                .await
                .map_err(|e| acquire_error(op, e));
        }
        let mut tx = self.pool.begin().await.map_err(|e| acquire_error(op, e))?;
        set_tenant(&mut tx, op, tenant).await?;
        Ok(tx)
    }

    /// A read in one round trip instead of three (`BEGIN` with the tenant setting, the query,
    /// `COMMIT`): `SET LOCAL` of the tenant and `query` go as one simple query, which
    /// PostgreSQL runs as one implicit transaction, so the setting holds for the query (row-level
    /// security sees the tenant) and ends with it. `query` carries its values in its text —
    /// ids written by [`id_literal`], numbers — and is not prepared: for the short reads a turn
    /// makes, whose plans are cheap.
    pub(crate) async fn read_scoped(
        &self,
        op: &'static str,
        tenant: &TenantId,
        query: &str,
    ) -> Result<Vec<sqlx::postgres::PgRow>> {
        let sql = format!(
            "SET LOCAL agentkit.tenant = {}; {query}",
            id_literal(tenant.as_str())?
        );
        sqlx::raw_sql(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| query_error(op, e))
    }
}

/// An id as an SQL string literal (`'acme'`), for an id made only of the id alphabet (letters,
/// digits, `- _ . : @ / + =`: nothing that can end or escape a literal, whatever
/// `standard_conforming_strings` says). Every checked id is; anything else is
/// [`Error::InvalidInput`] and never reaches the SQL text.
pub(crate) fn id_literal(id: &str) -> Result<String> {
    let literal_safe = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/+=".contains(&b));
    if !literal_safe {
        return Err(Error::InvalidInput(format!(
            "`{}` is not an id (ids use ASCII letters, digits and - _ . : @ / + =)",
            id.escape_debug()
        )));
    }
    Ok(format!("'{id}'"))
}

/// `BEGIN` and the tenant setting as one simple query, for a tenant id made only of the id
/// alphabet ([`id_literal`]); `None` for any other id, which then goes as a bound parameter.
fn begin_scoped(tenant: &TenantId) -> Option<String> {
    let t = id_literal(tenant.as_str()).ok()?;
    Some(format!(
        "BEGIN; SELECT set_config('agentkit.tenant', {t}, true)"
    ))
}

/// Points row-level security at `tenant` for the rest of the transaction.
async fn set_tenant(conn: &mut PgConnection, op: &'static str, tenant: &TenantId) -> Result<()> {
    codec::check_tenant(tenant)?;
    sqlx::query("SELECT set_config('agentkit.tenant', $1, true)")
        .bind(tenant.as_str())
        .execute(conn)
        .await
        .map_err(|e| query_error(op, e))?;
    Ok(())
}

/// Commits; a failure here leaves the outcome unknown (see [`error::commit_error`]).
pub(crate) async fn commit(tx: Transaction<'static, Postgres>, op: &'static str) -> Result<()> {
    tx.commit().await.map_err(|e| commit_error(op, e))
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL or the connect options: they may hold a password.
        let options = self.pool.connect_options();
        f.debug_struct("PostgresStore")
            .field("host", &options.get_host())
            .field("port", &options.get_port())
            .field("database", &options.get_database())
            .field("username", &options.get_username())
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .field("closed", &self.pool.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_ids_of_the_id_alphabet_become_sql_literals() {
        assert_eq!(
            id_literal("acme-eu_1.a:b@c/d+e=f").unwrap(),
            "'acme-eu_1.a:b@c/d+e=f'"
        );
        for bad in ["", "a'b", "a\\b", "a b", "a;b", "a\"b", "a\0b", "é"] {
            assert_eq!(
                id_literal(bad).unwrap_err().kind(),
                agentkit_core::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        let tenant = TenantId::from_static("acme");
        assert_eq!(
            begin_scoped(&tenant).unwrap(),
            "BEGIN; SELECT set_config('agentkit.tenant', 'acme', true)"
        );
    }
}
