//! The host's own tables, beside agentkit's: per-tenant API keys (SHA-256 digests only, with
//! rotation), the tenant's agent list, and the HTTP tools a tenant configured. One contract,
//! [`HostTables`], on SQLite (the host's file; [`SqliteTables`]) or on Postgres (feature
//! `postgres`; `PostgresTables`).

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use agentkit::id::TenantId;
use agentkit::{Error, Result, async_trait};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(feature = "postgres")]
pub use postgres::PostgresTables;
pub use sqlite::SqliteTables;

/// The host's tables. Every method but [`HostTables::tenant_of`] (which finds the tenant of a
/// key) reads or writes one tenant's rows only.
#[async_trait]
pub trait HostTables: Send + Sync + std::fmt::Debug {
    /// Issues a key for `tenant`; the key itself is returned once and never stored.
    async fn create_key(&self, tenant: &TenantId) -> Result<String>;

    /// The tenant of a live (not rotated) key.
    async fn tenant_of(&self, key: &str) -> Result<Option<TenantId>>;

    /// Replaces `key` by a new key of the same tenant; the old one stops working at once.
    /// `None` when `key` is not live.
    async fn rotate(&self, key: &str) -> Result<Option<String>>;

    /// Whether `tenant` was ever issued a key (it exists).
    async fn has_tenant(&self, tenant: &TenantId) -> Result<bool>;

    /// Whether no key exists at all (a fresh database gets demo keys).
    async fn is_empty(&self) -> Result<bool>;

    /// Records that `tenant` has an agent `agent` (the store lists versions per agent).
    async fn add_agent(&self, tenant: &TenantId, agent: &str) -> Result<()>;

    /// The agents of `tenant`, sorted.
    async fn agents(&self, tenant: &TenantId) -> Result<Vec<String>>;

    /// Stores `tenant`'s HTTP tool `name` (its `HttpToolConfig` as JSON), replacing one of the
    /// same name; `true` when it replaced one.
    async fn put_tool(&self, tenant: &TenantId, name: &str, config: &Value) -> Result<bool>;

    /// `tenant`'s HTTP tools (name and config), sorted by name.
    async fn tools(&self, tenant: &TenantId) -> Result<Vec<(String, Value)>>;
}

/// A key's digest: what is stored and looked up.
pub(crate) fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (`ak_` and 32 random bytes in hex).
pub(crate) fn new_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("ak_{}", hex::encode(bytes)))
}

/// A host-table error as a storage error.
pub(crate) fn storage<E: std::error::Error + Send + Sync + 'static>(e: E) -> Error {
    Error::Storage {
        message: format!("host tables: {e}"),
        retryable: false,
        source: Some(Box::new(e)),
    }
}
