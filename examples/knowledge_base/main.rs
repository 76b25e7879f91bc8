//! Seed 001's knowledge base on the embedded defaults (SQLite, offline): upload → index with
//! progress → ask → an answer with citations; another tenant asks the same and finds nothing.
//!
//! `cargo run --example knowledge_base --features rag,sqlite`

mod scenario;

use std::sync::Arc;

use agentkit::agent::RunRequest;
use agentkit::id::{AgentId, TenantId};
use agentkit::sqlite::SqliteStore;

#[tokio::main]
async fn main() -> agentkit::Result<()> {
    let dir = std::env::temp_dir().join(format!("agentkit-kb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| agentkit::Error::InvalidInput(e.to_string()))?;
    let db = SqliteStore::open(dir.join("kb.db")).await?;
    let vectors = Arc::new(db.vectors(scenario::DIMENSIONS));
    let (acme, support) = (TenantId::new("acme")?, AgentId::new("support")?);

    println!(
        "indexing {} documents for tenant acme",
        scenario::documents().len()
    );
    let ingestor = scenario::ingestor(vectors.clone())?;
    let report = ingestor
        .ingest_with_progress(&acme, &support, scenario::documents(), |p| {
            println!("  {p}")
        })
        .await;
    for failure in &report.failed {
        println!("  failed: {} ({})", failure.document_id, failure.error);
    }
    println!("indexed {:?}", report.indexed);

    let agent = scenario::agent(Arc::new(db.clone()), vectors)?;
    for tenant in ["acme", "globex"] {
        let out = agent
            .run(RunRequest::new(tenant, "s1", "How long do refunds take?"))
            .await?;
        let report = out
            .report()
            .ok_or_else(|| agentkit::Error::Internal("no report".into()))?;
        println!("\n[{tenant}] {}", report.reply);
        for c in &report.citations {
            println!(
                "  [{}] {} (chunk {}, section {:?}, bytes {:?}+{:?})",
                c.marker,
                c.source.title.as_deref().unwrap_or(&c.source.document_id),
                c.chunk_id,
                c.source.section,
                c.source.offset,
                c.source.length
            );
        }
    }
    let again = ingestor
        .ingest(&acme, &support, scenario::documents())
        .await;
    println!(
        "\nre-indexing the same documents: {} unchanged",
        again.unchanged.len()
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
