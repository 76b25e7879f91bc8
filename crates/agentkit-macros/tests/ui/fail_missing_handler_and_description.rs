use agentkit_tools::{Result, Tool, tool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "crm.create_lead")]
struct CreateLead {
    name: String,
}

#[tool(name = "crm.lookup_lead")]
async fn lookup_lead(id: u64) -> Result<u64> {
    Ok(id)
}

fn main() {}
