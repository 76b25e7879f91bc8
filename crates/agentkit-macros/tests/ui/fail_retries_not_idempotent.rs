use agentkit_tools::{Result, tool};

/// Charges a card.
#[tool(name = "billing.charge", side_effect = "external", retries = 3)]
async fn charge(amount: u64) -> Result<u64> {
    Ok(amount)
}

fn main() {}
