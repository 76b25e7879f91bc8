//! Shared support for the seed acceptance tests: every scenario runs on SQLite and, when
//! `AGENTKIT_TEST_POSTGRES_URL` is set, on Postgres too. Without the variable the Postgres run
//! is skipped with a printed reason — except with `CI=true`, where that is a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../examples/common/backend.rs"]
pub mod backend;

pub use backend::Db;

/// The variable naming the Postgres test server.
pub const POSTGRES_URL_VAR: &str = "AGENTKIT_TEST_POSTGRES_URL";

/// The databases `test` runs on: SQLite, then Postgres when configured.
pub async fn databases(test: &str) -> Vec<Db> {
    let mut dbs = vec![Db::sqlite().await.expect("opening SQLite")];
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => dbs.push(
            Db::postgres(&url, "agentkit_seed")
                .await
                .unwrap_or_else(|e| panic!("{test}: opening Postgres at {POSTGRES_URL_VAR}: {e}")),
        ),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "{test}: {POSTGRES_URL_VAR} is not set. CI=true, so a missing Postgres is a \
                 failure, not a skip."
            );
            eprintln!(
                "SKIPPED {test} on Postgres: {POSTGRES_URL_VAR} is not set \
                 (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            );
        }
    }
    dbs
}
