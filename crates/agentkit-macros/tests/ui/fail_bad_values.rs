use agentkit_tools::{Result, tool};

/// Looks up.
#[tool(name = "billing.lookup", side_effect = "sometimes")]
async fn lookup(id: u64) -> Result<u64> {
    Ok(id)
}

/// Refunds.
#[tool(name = "billing.refund", rate_limit = "10/fortnight")]
async fn refund(id: u64) -> Result<u64> {
    Ok(id)
}

/// Notes.
#[tool(name = "billing.note", redact = [42])]
async fn note(
    /// The text.
    text: String,
) -> Result<u64> {
    Ok(text.len() as u64)
}

/// Tags.
#[tool(name = "billing.tag")]
async fn tag(
    /// The tag.
    tag: &str,
) -> Result<u64> {
    Ok(tag.len() as u64)
}

fn main() {}
