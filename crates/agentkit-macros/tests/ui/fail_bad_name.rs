use agentkit_tools::{Result, Tool, ToolContext, tool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "crm.create lead", handler = create_lead)]
struct CreateLead {
    name: String,
}

async fn create_lead(_ctx: ToolContext, lead: CreateLead) -> Result<String> {
    Ok(lead.name)
}

/// Searches.
#[tool(name = "web..search")]
async fn search(query: String) -> Result<String> {
    Ok(query)
}

fn main() {}
