use agentkit_tools::{Result, Tool, ToolContext, ToolRegistry, tool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Creates a lead.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "crm.create_lead", handler = create_lead, side_effect = "write", idempotent, retries = 1)]
struct CreateLead {
    /// Full name.
    name: String,
}

async fn create_lead(_ctx: ToolContext, lead: CreateLead) -> Result<String> {
    Ok(lead.name)
}

/// Looks up a lead.
#[tool(name = "crm.lookup_lead", timeout_ms = 2000, rate_limit = "5/s", redact = "email")]
async fn lookup_lead(
    /// The lead's id.
    id: u64,
) -> Result<u64> {
    Ok(id)
}

fn main() {
    let registry = ToolRegistry::builder()
        .register(CreateLeadTool::new())
        .register(LookupLeadTool::default())
        .build();
    assert!(registry.is_ok());
}
