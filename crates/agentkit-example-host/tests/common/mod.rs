//! The host opened on a fresh SQLite file, with tenants and their keys.

#![allow(dead_code, clippy::unwrap_used)]

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
