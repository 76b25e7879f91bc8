//! Shared test support: the skip rule, and a private schema + application role per test.
//!
//! Tests read `AGENTKIT_TEST_POSTGRES_URL` (a superuser URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Unset: the test prints why and passes, unless
//! `CI=true`, where it fails. Each test creates its own schema and its own `NOSUPERUSER
//! NOBYPASSRLS` login role (row-level security does not apply to superusers), connects the store
//! as that role with `search_path` set to the schema, and drops both at the end (also when the
//! test panics: [`TestDb`]'s `Drop`).
#![allow(dead_code, clippy::unwrap_used)]

use std::str::FromStr;

use agentkit_core::id::RunId;
use agentkit_store_postgres::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// The variable naming the test server.
pub const URL_VAR: &str = "AGENTKIT_TEST_POSTGRES_URL";

/// Whether this is a CI run (`CI=true`), where a missing prerequisite fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips `test` with `reason` (printed), or panics when running in CI.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !in_ci(),
        "{test}: {reason}. CI=true, so a missing prerequisite is a failure, not a skip."
    );
    eprintln!("SKIPPED {test}: {reason}");
}

/// The superuser URL of the test server, or `None` (after [`skip`]) when it is not set.
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            skip(
                test,
                &format!(
                    "{URL_VAR} is not set (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                ),
            );
            None
        }
    }
}

/// The variable naming a server with the `pgvector` extension available (`.ci/run` starts
/// one from PyPI's `pgserver`: PostgreSQL 16 with pgvector).
pub const PGVECTOR_URL_VAR: &str = "AGENTKIT_TEST_PGVECTOR_URL";

/// The superuser URL of the pgvector test server, or `None` (after [`skip`]).
pub fn pgvector_url(test: &str) -> Option<String> {
    match std::env::var(PGVECTOR_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            skip(
                test,
                &format!(
                    "{PGVECTOR_URL_VAR} is not set (a server with the pgvector extension;                      .ci/run starts one)"
                ),
            );
            None
        }
    }
}

/// A fresh name suffix (32 hex digits).
pub fn unique() -> String {
    RunId::generate().as_str().replace('-', "")
}

/// A schema and an application role of one test, on some server.
pub struct TestDb {
    /// Superuser connect options.
    pub admin: PgConnectOptions,
    /// The test's schema.
    pub schema: String,
    /// The application role (NOSUPERUSER NOBYPASSRLS), with USAGE and CREATE on the schema.
    pub role: String,
    /// The role's password.
    pub password: String,
    cleaned: bool,
}

impl TestDb {
    /// For tests against `AGENTKIT_TEST_POSTGRES_URL`; `None` when skipping.
    pub async fn from_env(test: &str) -> Option<TestDb> {
        let url = admin_url(test)?;
        Some(TestDb::create(&url).await)
    }

    /// Creates the schema and the role as the superuser of `admin_url`.
    pub async fn create(admin_url: &str) -> TestDb {
        let admin = PgConnectOptions::from_str(admin_url)
            .unwrap_or_else(|e| panic!("{URL_VAR} does not parse: {e}"));
        let suffix = unique();
        let db = TestDb {
            admin,
            schema: format!("agentkit_test_{suffix}"),
            role: format!("agentkit_app_{suffix}"),
            password: format!("pw-{}", unique()),
            cleaned: false,
        };
        let mut conn = db.admin_conn().await;
        conn.execute(
            format!(
                "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
                 PASSWORD '{password}';
                 CREATE SCHEMA \"{schema}\";
                 GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{role}\";",
                role = db.role,
                schema = db.schema,
                password = db.password,
            )
            .as_str(),
        )
        .await
        .unwrap_or_else(|e| panic!("creating the test role and schema: {e}"));
        conn.close().await.ok();
        db
    }

    /// A superuser connection.
    pub async fn admin_conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("connecting as the test superuser: {e}"))
    }

    /// Connect options for the application role, `search_path` = the test schema.
    pub fn app_options(&self) -> PgConnectOptions {
        self.admin
            .clone()
            .username(&self.role)
            .password(&self.password)
            .options([("search_path", self.schema.as_str())])
    }

    /// Superuser connect options with `search_path` = the test schema.
    pub fn admin_schema_options(&self) -> PgConnectOptions {
        self.admin
            .clone()
            .options([("search_path", self.schema.as_str())])
    }

    /// A pool of the application role, with the store's recommended settings.
    pub async fn app_pool(&self) -> PgPool {
        self.app_pool_with(PostgresStore::pool_options()).await
    }

    /// A pool of the application role with the given settings.
    pub async fn app_pool_with(&self, options: PgPoolOptions) -> PgPool {
        options
            .connect_with(self.app_options())
            .await
            .unwrap_or_else(|e| panic!("connecting as the application role: {e}"))
    }

    /// The store, connected as the application role (runs the migrations).
    pub async fn app_store(&self) -> PostgresStore {
        PostgresStore::from_pool(self.app_pool().await)
            .await
            .unwrap_or_else(|e| panic!("PostgresStore::from_pool as the application role: {e}"))
    }

    /// Leaves the schema and the role in place (for a throwaway server).
    pub fn forget(mut self) {
        self.cleaned = true;
    }

    /// Drops the schema and the role.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        drop_schema_and_role(&self.admin, &self.schema, &self.role).await;
    }
}

async fn drop_schema_and_role(admin: &PgConnectOptions, schema: &str, role: &str) {
    let Ok(mut conn) = PgConnection::connect_with(admin).await else {
        eprintln!("cleanup: cannot connect to drop schema {schema} and role {role}");
        return;
    };
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';
         DROP SCHEMA IF EXISTS \"{schema}\" CASCADE;
         DROP OWNED BY \"{role}\";
         DROP ROLE IF EXISTS \"{role}\";"
    );
    if let Err(e) = conn.execute(sql.as_str()).await {
        eprintln!("cleanup of schema {schema} and role {role} failed: {e}");
    }
    conn.close().await.ok();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A test panicked before `cleanup`: clean up on a runtime of our own (the test's
        // runtime may be shutting down).
        let (admin, schema, role) = (self.admin.clone(), self.schema.clone(), self.role.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(drop_schema_and_role(&admin, &schema, &role));
        });
        let _ = cleanup.join();
    }
}
