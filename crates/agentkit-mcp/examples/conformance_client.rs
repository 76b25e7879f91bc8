//! The client side of the official MCP conformance suite (`@modelcontextprotocol/conformance
//! client --command <this binary>`): the suite starts a test server per scenario and runs this
//! program with the server's URL as the last argument and the scenario in
//! `MCP_CONFORMANCE_SCENARIO`. Run by `.ci/mcp-conformance`.

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::tool::ToolContext;
use std::sync::Arc;

use agentkit_mcp::{McpClient, McpOAuthConfig, McpServerConfig, RedirectAuthorizer};
use agentkit_tools::http::OutboundPolicy;
use serde_json::json;

/// Placeholder values for a schema's required properties.
fn arguments_for(schema: &serde_json::Value) -> serde_json::Value {
    let mut args = serde_json::Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let value = match schema["properties"][name]["type"].as_str() {
            Some("string") => json!("test"),
            Some("number" | "integer") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            _ => json!({}),
        };
        args.insert(name.to_string(), value);
    }
    serde_json::Value::Object(args)
}

const SECRET_ENV: &str = "CONFORMANCE_OAUTH_CLIENT_SECRET";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .next_back()
        .ok_or("usage: conformance_client <server-url>")?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    eprintln!("scenario `{scenario}` against {url}");
    // The suite's servers listen on localhost.
    let outbound = OutboundPolicy::new().allow_network("127.0.0.0/8".parse()?);
    // The auth scenarios: OAuth with a client ID metadata document, or a pre-registered client
    // from the suite's context; the suite's authorization server approves without a person.
    let mut oauth = McpOAuthConfig::new("http://localhost:3000/callback")
        .with_client_metadata_url("https://conformance-test.local/client-metadata.json");
    let context: serde_json::Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    if let Some(id) = context["client_id"].as_str() {
        if let Some(secret) = context["client_secret"].as_str()
            && std::env::var_os(SECRET_ENV).is_none()
        {
            // The secret reaches the client through the environment, as a host's would.
            let status = std::process::Command::new(std::env::current_exe()?)
                .args(std::env::args().skip(1))
                .env(SECRET_ENV, secret)
                .status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        let secret_env = std::env::var_os(SECRET_ENV).map(|_| SECRET_ENV.to_string());
        oauth = McpOAuthConfig::new("http://localhost:3000/callback").with_client(id, secret_env);
    }
    let config = McpServerConfig::http("conformance", &url).with_oauth(oauth);
    let client = McpClient::builder(config)
        .authorizer(Arc::new(RedirectAuthorizer::new()))
        .outbound(outbound)
        .skip_invalid_tools(true)
        .connect()
        .await?;
    eprintln!("tools: {:?}", client.tool_names());
    for rejected in client.rejected_tools() {
        eprintln!("left out: {rejected}");
    }
    for tool in client.tools() {
        let name = tool.spec().name.clone();
        let arguments = match name.as_str() {
            "conformance.add_numbers" => json!({"a": 5, "b": 3}),
            _ => arguments_for(&tool.spec().parameters),
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
