//! `cargo run -p agentkit-example-host`: the example host on the embedded defaults.
//!
//! Environment: `AGENTKIT_HOST_DB` (SQLite file, default `agentkit-host.db`),
//! `AGENTKIT_HOST_ADDR` (default `127.0.0.1:8080`), `AGENTKIT_HOST_BODY_LIMIT`,
//! `AGENTKIT_HOST_TIMEOUT_SECS`, `AGENTKIT_HOST_REVIEWERS`; `OPENAI_API_KEY` or `OLLAMA_URL`
//! for a real model; `RUST_LOG` for logs.

use agentkit::id::TenantId;
use agentkit_example_host::{App, HostConfig, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    let config = HostConfig::from_env();
    let app = App::open(config.clone()).await?;
    if app.keys().is_empty()? {
        println!("A new database: demo tenants and their API keys (shown once):");
        for tenant in ["acme", "globex"] {
            let key = app.create_tenant(&TenantId::new(tenant)?).await?;
            println!("  {tenant}: {key}");
        }
    }
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "agentkit host listening on http://{addr} (model: {})",
        app.model_label()
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
