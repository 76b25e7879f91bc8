//! The database a seed example or acceptance test runs on: SQLite (the embedded default, a file
//! in a temporary directory) or Postgres (a schema of its own on the server named by a URL).
//!
//! Examples pick Postgres when `AGENTKIT_DATABASE_URL` is set; the acceptance tests run on SQLite
//! and, when `AGENTKIT_TEST_POSTGRES_URL` is set (always in CI), on Postgres too.
#![allow(dead_code)]

use std::sync::Arc;

use agentkit::postgres::PostgresStore;
use agentkit::retrieval::VectorStore;
use agentkit::sqlite::SqliteStore;
use agentkit::store::StateStore;
use agentkit_workflow::WorkflowStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One opened database: the agentkit state store and workflow store are the same object.
pub enum Db {
    /// A SQLite file (the directory is removed when this is dropped).
    Sqlite(SqliteStore, Option<tempfile::TempDir>),
    /// A schema on a Postgres server, dropped by [`Db::cleanup`].
    Postgres {
        /// The store, its pool's `search_path` set to the schema.
        store: PostgresStore,
        /// The server's URL (to drop the schema).
        url: String,
        /// The schema.
        schema: String,
    },
}

impl Db {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> Result<Db, BoxError> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("agentkit.db")).await?;
        Ok(Db::Sqlite(store, Some(dir)))
    }

    /// A fresh schema `prefix_<unique>` on the Postgres server at `url`.
    pub async fn postgres(url: &str, prefix: &str) -> Result<Db, BoxError> {
        let options: PgConnectOptions = url.parse()?;
        let schema = format!(
            "{prefix}_{}",
            agentkit::id::RunId::generate().as_str().replace('-', "")
        );
        let mut admin = PgConnection::connect_with(&options).await?;
        admin
            .execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await?;
        admin.close().await?;
        let pool = PostgresStore::pool_options()
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await?;
        let store = PostgresStore::from_pool(pool).await?;
        Ok(Db::Postgres {
            store,
            url: url.to_owned(),
            schema,
        })
    }

    /// Postgres when `AGENTKIT_DATABASE_URL` is set, else SQLite.
    pub async fn from_env(prefix: &str) -> Result<Db, BoxError> {
        match std::env::var("AGENTKIT_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Db::postgres(&url, prefix).await,
            _ => Db::sqlite().await,
        }
    }

    /// The same database opened again with new connections, as a restarted process would
    /// (SQLite: the same file; Postgres: the same schema). The original keeps ownership: drop
    /// or [`Db::cleanup`] it last.
    pub async fn reopen(&self) -> Result<Db, BoxError> {
        match self {
            Db::Sqlite(_, dir) => {
                let dir = dir
                    .as_ref()
                    .ok_or("a reopened SQLite database cannot be reopened")?;
                Ok(Db::Sqlite(
                    SqliteStore::open(dir.path().join("agentkit.db")).await?,
                    None,
                ))
            }
            Db::Postgres { url, schema, .. } => {
                let options: PgConnectOptions = url.parse()?;
                let pool = PostgresStore::pool_options()
                    .connect_with(options.options([("search_path", schema.as_str())]))
                    .await?;
                Ok(Db::Postgres {
                    store: PostgresStore::from_pool(pool).await?,
                    url: url.clone(),
                    schema: schema.clone(),
                })
            }
        }
    }

    /// `"SQLite"` or `"Postgres"`.
    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "SQLite",
            Db::Postgres { .. } => "Postgres",
        }
    }

    /// The agentkit state store.
    pub fn state(&self) -> Arc<dyn StateStore> {
        match self {
            Db::Sqlite(s, _) => Arc::new(s.clone()),
            Db::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// The workflow store (the same database).
    pub fn workflows(&self) -> Arc<dyn WorkflowStore> {
        match self {
            Db::Sqlite(s, _) => Arc::new(s.clone()),
            Db::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// A vector store of `dimensions` in the same database.
    pub async fn vectors(&self, dimensions: usize) -> Result<Arc<dyn VectorStore>, BoxError> {
        Ok(match self {
            Db::Sqlite(s, _) => Arc::new(s.vectors(dimensions)),
            Db::Postgres { store, .. } => Arc::new(store.vectors(dimensions).await?),
        })
    }

    /// Drops the Postgres schema (SQLite's directory goes with the value).
    pub async fn cleanup(self) {
        if let Db::Postgres { store, url, schema } = self {
            store.pool().close().await;
            let Ok(options) = url.parse::<PgConnectOptions>() else {
                return;
            };
            if let Ok(mut admin) = PgConnection::connect_with(&options).await {
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                if let Err(e) = admin.execute(sql.as_str()).await {
                    eprintln!("dropping schema {schema}: {e}");
                }
                admin.close().await.ok();
            }
        }
    }
}
