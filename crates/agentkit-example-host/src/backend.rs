//! Where the host keeps its data: the SQLite file (`AGENTKIT_HOST_DB`, the default) or, with
//! feature `postgres`, the Postgres database at `AGENTKIT_HOST_DATABASE_URL`. Either way
//! agentkit's state and workflow stores, the host's own tables and (feature `knowledge`) the
//! vectors share one database.

use std::sync::Arc;

use agentkit::prelude::*;
use agentkit::sqlite::SqliteStore;
use agentkit::workflow::WorkflowStore;

use crate::app::HostConfig;
use crate::tables::{HostTables, SqliteTables};

/// The opened database.
pub(crate) struct Backend {
    /// agentkit's state store.
    pub(crate) store: Arc<dyn StateStore>,
    /// The workflow store (the same database).
    pub(crate) workflows: Arc<dyn WorkflowStore>,
    /// The host's own tables (the same database).
    pub(crate) tables: Arc<dyn HostTables>,
    /// Which database (for vectors).
    kind: Kind,
}

enum Kind {
    #[cfg_attr(not(feature = "knowledge"), allow(dead_code))]
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    #[cfg_attr(not(feature = "knowledge"), allow(dead_code))]
    Postgres(agentkit::postgres::PostgresStore),
}

impl Backend {
    /// Postgres when `config.database_url` is set, else the SQLite file.
    pub(crate) async fn open(config: &HostConfig) -> Result<Self> {
        match &config.database_url {
            Some(url) => Self::postgres(url).await,
            None => {
                let sqlite = SqliteStore::open(&config.db_path)
                    .await
                    .map_err(Error::from)?;
                let tables = SqliteTables::open(&config.db_path)?;
                Ok(Self {
                    store: Arc::new(sqlite.clone()),
                    workflows: Arc::new(sqlite.clone()),
                    tables: Arc::new(tables),
                    kind: Kind::Sqlite(sqlite),
                })
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres(url: &str) -> Result<Self> {
        let store = agentkit::postgres::PostgresStore::connect(url).await?;
        let tables = crate::tables::PostgresTables::open(store.pool().clone()).await?;
        Ok(Self {
            store: Arc::new(store.clone()),
            workflows: Arc::new(store.clone()),
            tables: Arc::new(tables),
            kind: Kind::Postgres(store),
        })
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(_url: &str) -> Result<Self> {
        Err(Error::InvalidConfig(
            "AGENTKIT_HOST_DATABASE_URL is set, but this host was built without the `postgres` \
             feature (cargo run -p agentkit-example-host --features postgres)"
                .into(),
        ))
    }

    /// `"SQLite"` or `"Postgres"`.
    pub(crate) fn name(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite(_) => "SQLite",
            #[cfg(feature = "postgres")]
            Kind::Postgres(_) => "Postgres",
        }
    }

    /// A vector store of `dimensions` in the same database.
    #[cfg(feature = "knowledge")]
    pub(crate) async fn vectors(
        &self,
        dimensions: usize,
    ) -> Result<Arc<dyn agentkit::retrieval::VectorStore>> {
        Ok(match &self.kind {
            Kind::Sqlite(s) => Arc::new(s.vectors(dimensions)),
            #[cfg(feature = "postgres")]
            Kind::Postgres(p) => Arc::new(p.vectors(dimensions).await?),
        })
    }
}
