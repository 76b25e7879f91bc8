use agentkit_tools::{Result, Tool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "crm.create_lead", handler = create_lead)]
struct CreateLead {
    name: String,
}

async fn create_lead(lead: CreateLead) -> Result<String> {
    Ok(lead.name)
}

fn main() {}
