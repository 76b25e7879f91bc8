//! `cargo run -p agentkit-example-host`: the example host on the embedded defaults.
//!
//! Environment: `AGENTKIT_HOST_DB` (SQLite file, default `agentkit-host.db`),
//! `AGENTKIT_HOST_DATABASE_URL` (Postgres instead, feature `postgres`),
//! `AGENTKIT_HOST_ADDR` (default `127.0.0.1:8080`), `AGENTKIT_HOST_BODY_LIMIT`,
//! `AGENTKIT_HOST_TIMEOUT_SECS`, `AGENTKIT_HOST_REVIEWERS`, `AGENTKIT_HOST_TOOL_OUTBOUND`
//! (where tenants' HTTP tools may connect); `OPENAI_API_KEY` or `OLLAMA_URL` for a real model;
//! `RUST_LOG` for logs.

use agentkit::id::TenantId;
use agentkit_example_host::{App, HostConfig, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[allow(clippy::let_unit_value)] // `()` without feature `otel`
    let pipeline = init_tracing()?;
    let config = HostConfig::from_env()?;
    let app = App::open(config.clone()).await?;
    if app.tables().is_empty().await? {
        println!("A new database: demo tenants and their API keys (shown once):");
        for tenant in ["acme", "globex"] {
            let key = app.create_tenant(&TenantId::new(tenant)?).await?;
            println!("  {tenant}: {key}");
        }
    }
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "agentkit host listening on http://{addr} (model: {}; data in {})",
        app.model_label(),
        app.database()
    );
    println!("  reviewer's page: http://{addr}/review");
    println!(
        "  chat: curl -H 'Authorization: Bearer <key>' -H 'Content-Type: application/json' \
         -d '{{\"message\":\"Sell Spicy Chips\"}}' http://{addr}/v1/sessions/s1/messages"
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown())
        .await?;
    println!("stopped");
    #[cfg(feature = "otel")]
    if let Some(pipeline) = pipeline {
        pipeline.shutdown();
    }
    #[cfg(not(feature = "otel"))]
    let () = pipeline;
    Ok(())
}

/// Logs to stderr (`RUST_LOG`), and with feature `otel` and `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// spans and metrics over OTLP/HTTP.
#[cfg(feature = "otel")]
fn init_tracing()
-> Result<Option<agentkit_example_host::telemetry::otlp::Pipeline>, Box<dyn std::error::Error>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=info".into());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer());
    match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let (pipeline, layer) = agentkit_example_host::telemetry::otlp::install(&endpoint)?;
            registry.with(layer).init();
            println!("exporting spans and metrics to {endpoint} (OTLP/HTTP)");
            Ok(Some(pipeline))
        }
        _ => {
            registry.init();
            Ok(None)
        }
    }
}

/// Logs to stderr (`RUST_LOG`).
#[cfg(not(feature = "otel"))]
fn init_tracing() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
