//! The server side of the official MCP conformance suite: agentkit tools served over
//! Streamable HTTP at `http://127.0.0.1:<port>/mcp` (port from the first argument, default
//! 3937) for `@modelcontextprotocol/conformance server --url ...`. Serves the suite's tool
//! scenarios that an agentkit tool can express (text results and error results); the others are
//! listed, with why, in `.ci/mcp-conformance-baseline.yml`. Run by `.ci/mcp-conformance`.

use std::sync::Arc;

use agentkit_core::Error;
use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::store::InMemoryStore;
use agentkit_core::tool::{FnTool, Tool, ToolSpec};
use agentkit_mcp::server::{FixedCaller, McpCaller, McpHttpConfig, McpToolServer};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(3937), |p| p.parse())?;
    let simple: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "test_simple_text",
            "Returns simple text",
            json!({"type": "object"}),
        ),
        |_ctx, _args| async { Ok(json!("This is a simple text response for testing.")) },
    ));
    let failing: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "test_error_handling",
            "Always fails",
            json!({"type": "object"}),
        ),
        |_ctx, _args| async {
            Err(Error::Tool(
                "This tool intentionally returns an error for testing".into(),
            ))
        },
    ));
    let store = Arc::new(InMemoryStore::new());
    let executor = ToolExecutor::builder(ToolSet::new([simple, failing])?, store.clone()).build();
    let server = McpToolServer::new(executor, store, "agentkit-conformance");
    let caller = McpCaller::new(TenantId::new("conformance")?, AgentId::new("suite")?);
    let service = server.http_service(
        Arc::new(FixedCaller(caller)),
        McpHttpConfig::default().with_allowed_hosts(["localhost", "127.0.0.1"]),
    );
    let router = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("serving on http://127.0.0.1:{port}/mcp");
    axum::serve(listener, router).await?;
    Ok(())
}
