//! Seed 000, scenario C, end to end on the embedded defaults (SQLite, offline): a campaign is
//! proposed, approved, launched; the run waits (holding no process) for a lead; a reviewer
//! confirms the call; the CRM is updated; the run is archived as an immutable snapshot.
//!
//! ```sh
//! cargo run --example growth_scenario --features workflow,sqlite
//! ```

mod scenario;

use std::sync::Arc;

use agentkit::sqlite::SqliteStore;
use agentkit::store::{ApprovalDecision, ApprovalStore, UsageStore};
use agentkit_workflow::{RunState, StartRequest, WorkflowEvent};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = SqliteStore::open(dir.path().join("growth.db")).await?;
    let effects = scenario::Effects::default();
    let engine = scenario::engine(Arc::new(db.clone()), Arc::new(db.clone()), &effects, 0)?;
    let tenant = "spicy-co";
    engine.publish(tenant, &scenario::definition()).await?;

    let input = json!({"campaign_id": "C-100", "product": "Spicy Chips",
                       "audience": "snack lovers", "budget": 500});
    let run = engine
        .start(
            tenant,
            StartRequest::new("growth", input)?.trigger_key("campaign-C-100"),
        )
        .await?
        .run()
        .id
        .clone();
    println!("started run {run}");
    let show = |what: &str, state: RunState| println!("  {what:<42} → {}", state.as_str());

    engine.run_due("worker-1").await?;
    show(
        "marketing agent proposed; plan awaits review",
        engine.get_run(tenant, &run).await?.expect("run").state,
    );
    let plan = db.list_pending_approvals(&tenant.parse()?).await?.remove(0);
    println!("  reviewer sees: {}", plan.call.arguments["plan"]);
    let mut approve = ApprovalDecision::approve("maria@spicy.co");
    approve.edited_arguments = Some(json!({"plan": plan.call.arguments["plan"], "budget": 400}));
    engine.decide_approval(tenant, &plan.id, &approve).await?;

    engine.run_due("worker-1").await?;
    show(
        "ads launched; waiting for a lead",
        engine.get_run(tenant, &run).await?.expect("run").state,
    );
    // The landing page's webhook (an endpoint trigger) reports a lead.
    let lead = json!({"name": "Ada", "phone": "+49 30 1234567", "score": 86});
    engine
        .send_event(
            tenant,
            &WorkflowEvent::new(
                "form-7781",
                "lead.submitted",
                "C-100",
                lead,
                chrono::Utc::now(),
            ),
        )
        .await?;

    engine.run_due("worker-2").await?;
    show(
        "lead qualified; call awaits confirmation",
        engine.get_run(tenant, &run).await?.expect("run").state,
    );
    let call = db.list_pending_approvals(&tenant.parse()?).await?.remove(0);
    engine
        .decide_approval(tenant, &call.id, &ApprovalDecision::approve("tom@spicy.co"))
        .await?;

    engine.run_due("worker-2").await?;
    let done = engine.get_run(tenant, &run).await?.expect("run");
    show("called, CRM updated, archived", done.state);
    println!("\nstep log:");
    for s in engine.steps(tenant, &run).await? {
        println!(
            "  {:>2}. {:<12} {:<12} {}",
            s.seq,
            s.node,
            s.kind,
            s.status.as_str()
        );
    }
    println!("\nintegrations: {}", effects.tools().join(" → "));
    let snapshot = engine.snapshots(tenant, &run).await?.remove(0);
    println!(
        "archived snapshot: audit entry #{} sha256 {}",
        snapshot.seq,
        snapshot.entry.output["sha256"].as_str().unwrap_or("?")
    );
    let usage = db.list_usage(&tenant.parse()?, &Default::default()).await?;
    println!("usage events recorded: {}", usage.len());
    Ok(())
}
