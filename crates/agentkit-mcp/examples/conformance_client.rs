//! The client side of the official MCP conformance suite (`@modelcontextprotocol/conformance
//! client --command <this binary>`): the suite starts a test server per scenario and runs this
//! program with the server's URL as the last argument and the scenario in
//! `MCP_CONFORMANCE_SCENARIO`. Run by `.ci/mcp-conformance`.

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::tool::ToolContext;
use agentkit_mcp::{McpClient, McpServerConfig};
use agentkit_tools::http::OutboundPolicy;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .next_back()
        .ok_or("usage: conformance_client <server-url>")?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    eprintln!("scenario `{scenario}` against {url}");
    // The suite's servers listen on localhost.
    let outbound = OutboundPolicy::new().allow_network("127.0.0.0/8".parse()?);
    let client = McpClient::builder(McpServerConfig::http("conformance", &url))
        .outbound(outbound)
        .skip_invalid_tools(true)
        .connect()
        .await?;
    eprintln!("tools: {:?}", client.tool_names());
    for tool in client.tools() {
        let name = tool.spec().name.clone();
        let arguments = match name.as_str() {
            "conformance.add_numbers" => json!({"a": 5, "b": 3}),
            "conformance.test_reconnection" => json!({}),
            _ => continue,
        };
        let scope = Scope::new(
            TenantId::new("conformance")?,
            AgentId::new("client")?,
            SessionId::new("s")?,
            RunId::generate(),
        );
        let ctx = ToolContext::new(scope, "c1", IdempotencyKey::new("conformance-1")?);
        match tool.call(ctx, arguments).await {
            Ok(out) => eprintln!("{name}: {out}"),
            Err(e) => eprintln!("{name} failed: {e}"),
        }
    }
    client.close().await;
    Ok(())
}
