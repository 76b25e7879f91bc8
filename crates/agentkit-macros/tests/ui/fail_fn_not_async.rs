use agentkit_tools::{Result, tool};

/// Looks up a lead.
#[tool(name = "crm.lookup_lead")]
fn lookup_lead(id: u64) -> Result<u64> {
    Ok(id)
}

fn main() {}
