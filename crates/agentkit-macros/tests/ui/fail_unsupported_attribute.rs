use agentkit_tools::{Result, Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "crm.create_lead", handler = create_lead, timeout = "5s")]
struct CreateLead {
    name: String,
}

async fn create_lead(_ctx: ToolContext, lead: CreateLead) -> Result<String> {
    Ok(lead.name)
}

fn main() {}
