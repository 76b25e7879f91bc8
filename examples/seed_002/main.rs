//! Seed 002 — a scheduled CRM agent — on agentkit, offline: five agent types on their
//! schedules over two simulated weeks (a daylight-saving change and a two-day outage included),
//! each run assembling its customer's context before the model call, every run logged.
//!
//! ```sh
//! cargo run --example seed_002 --features workflow,sqlite,postgres
//! ```
//!
//! The database is SQLite in a temporary directory, or Postgres when `AGENTKIT_DATABASE_URL`
//! is set. The seed's design notes and how agentkit supersedes them are in `scenario.rs`.

#[path = "../common/backend.rs"]
mod backend;
mod scenario;

fn say(line: String) {
    println!("  {line}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = backend::Db::from_env("seed_002").await?;
    println!(
        "Seed 002 on {}: two simulated weeks, 23 March – 5 April 2026 (Berlin).",
        db.name()
    );
    let (setup, outcome) = scenario::two_weeks(db.state(), db.workflows(), &say).await?;

    println!(
        "\nScheduled runs per agent, one per slot although two scheduler processes ticked together ({} duplicate starts refused):",
        outcome.duplicates
    );
    for (kind, n) in &outcome.runs_per_kind {
        let late = outcome.caught_up.get(kind).copied().unwrap_or(0);
        println!("  {kind:<10} {n:>3} runs ({late} caught up after the outage)");
    }
    println!("\nThe first day's run log:");
    for e in outcome
        .log
        .iter()
        .filter(|e| e.slot.starts_with("Mon 23 Mar"))
    {
        println!(
            "  {:<16} {:<10} {:<8} {:<5} {}",
            e.slot, e.kind, e.user, e.status, e.message
        );
    }
    let sent = setup.crm.sent.lock().map(|s| s.len()).unwrap_or(0);
    println!(
        "\n{} agent runs logged, {} messages sent; nobody who opted out was written to.",
        outcome.log.len(),
        sent
    );
    db.cleanup().await;
    Ok(())
}
