use agentkit_tools::{Result, Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(handler = create_lead)]
struct CreateLead {
    name: String,
}

async fn create_lead(_ctx: ToolContext, lead: CreateLead) -> Result<String> {
    Ok(lead.name)
}

fn main() {}
