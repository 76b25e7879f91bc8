//! The host opened on a fresh database (a SQLite file; or a Postgres schema of its own), with
//! tenants and their keys.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod client;

use agentkit::id::TenantId;
use agentkit_example_host::{App, HostConfig};

/// The host over `dir/host.db` (the defaults otherwise).
pub async fn app(dir: &tempfile::TempDir) -> App {
    App::open(HostConfig {
        db_path: dir.path().join("host.db"),
        ..HostConfig::default()
    })
    .await
    .unwrap()
}

/// Creates `tenant` and returns its API key.
pub async fn tenant(app: &App, tenant: &str) -> String {
    app.create_tenant(&TenantId::new(tenant).unwrap())
        .await
        .unwrap()
}

/// The variable naming the Postgres test server.
pub const POSTGRES_URL_VAR: &str = "AGENTKIT_TEST_POSTGRES_URL";

/// A fresh database for one host: a SQLite file in a temporary directory, or a schema of its
/// own on the Postgres test server (dropped by [`TestDb::cleanup`]).
pub struct TestDb {
    /// `"SQLite"` or `"Postgres"`.
    pub name: &'static str,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A host config on this database (the defaults otherwise).
    pub fn config(&self) -> HostConfig {
        HostConfig {
            db_path: self.dir.path().join("host.db"),
            database_url: self.postgres.as_ref().map(|(url, schema)| {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}options[search_path]={schema}")
            }),
            ..HostConfig::default()
        }
    }

    /// Whether `text` is anywhere in the database's files or the host's key table (to check
    /// what is not stored).
    pub async fn contains(&self, text: &str) -> bool {
        match &self.postgres {
            None => std::fs::read_dir(self.dir.path()).unwrap().any(|entry| {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
                bytes.windows(text.len()).any(|w| w == text.as_bytes())
            }),
            #[cfg(feature = "postgres")]
            Some((url, schema)) => {
                use agentkit::postgres::sqlx::{self, Connection};
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM \"{schema}\".host_api_keys k \
                     WHERE k::text LIKE '%' || $1 || '%')"
                );
                let found: bool = sqlx::query_scalar(&sql)
                    .bind(text)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                c.close().await.ok();
                found
            }
            #[cfg(not(feature = "postgres"))]
            Some(_) => unreachable!("Postgres databases need feature `postgres`"),
        }
    }

    /// Drops the Postgres schema (the SQLite directory goes with the value). Call after the
    /// host is dropped; dropping the value does it too (also when a test panics).
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    pub async fn cleanup(mut self) {
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = self.postgres.take() {
            drop_schema(url, schema).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let Some((url, schema)) = self.postgres.take() {
            // On a thread of its own: this may run inside the test's runtime.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(drop_schema(url, schema)))
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop a test schema");
            }
        }
    }
}

/// Drops `schema` on the server at `url`.
#[cfg(feature = "postgres")]
async fn drop_schema(url: String, schema: String) {
    use agentkit::postgres::sqlx::{self, Connection};
    // The host's workflow worker stops when its state is dropped; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    match sqlx::PgConnection::connect(&url).await {
        Ok(mut c) => {
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            if let Err(e) = sqlx::query(&sql).execute(&mut c).await {
                eprintln!("dropping schema {schema}: {e}");
            }
            c.close().await.ok();
        }
        Err(e) => eprintln!("dropping schema {schema}: {e}"),
    }
}

/// The databases `test` runs on: SQLite, then Postgres when `AGENTKIT_TEST_POSTGRES_URL` is set
/// and the host has feature `postgres`. Otherwise the Postgres run is skipped with a printed
/// reason — except under `CI=true`, where that is a failure.
pub async fn databases(test: &str) -> Vec<TestDb> {
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut dbs = vec![TestDb {
        name: "SQLite",
        dir: tempfile::tempdir().unwrap(),
        postgres: None,
    }];
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty());
    let skip = |reason: String| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {reason}. CI=true, so a missing Postgres run is a failure, not a skip."
        );
        eprintln!("SKIPPED {test} on Postgres: {reason}");
    };
    match url {
        None => skip(format!(
            "{POSTGRES_URL_VAR} is not set (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
        )),
        Some(url) => {
            #[cfg(feature = "postgres")]
            dbs.push(postgres(test, url).await);
            #[cfg(not(feature = "postgres"))]
            {
                let _ = url;
                skip("the host is built without feature `postgres` (--all-features)".into());
            }
        }
    }
    dbs
}

/// A fresh schema on the Postgres server at `url`.
#[cfg(feature = "postgres")]
async fn postgres(test: &str, url: String) -> TestDb {
    use agentkit::postgres::sqlx::{self, Connection};
    let schema = format!(
        "host_{}",
        agentkit::id::RunId::generate().as_str().replace('-', "")
    );
    let mut c = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{test}: connecting to {POSTGRES_URL_VAR}: {e}"));
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    TestDb {
        name: "Postgres",
        dir: tempfile::tempdir().unwrap(),
        postgres: Some((url, schema)),
    }
}
