//! Seed 000 — an agentic layer over a CRM — end to end on agentkit, offline.
//!
//! ```sh
//! cargo run --example seed_000 --features workflow,sqlite,postgres,policy,voice
//! AGENTKIT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example seed_000 --features workflow,sqlite,postgres,policy,voice
//! ```
//!
//! 1. the agent registry: a blueprint, versioned immutable configs, a backup agent that answers
//!    when the primary model is down, an evaluation agent that scores the answer
//!    (`registry.rs`);
//! 2. scenario A: the marketing agent under a $50/day budget, approval over $40, denial over
//!    $50 (`scenario_a.rs`);
//! 3. scenario B: a cron-scheduled invoice agent drafting reminders, the big one approved
//!    first (`scenario_b.rs`);
//! 4. scenario C: campaign plan → approval → ads → wait for a lead → approval → voice call → CRM
//!    → archived snapshot, as one durable workflow (`scenario_c.rs`, `call.rs`); the ROLLBACK
//!    path is in `tests/seed_000_scenario_c.rs`.
//!
//! Models are scripted (no API key); the database is SQLite in a temporary directory, or
//! Postgres when `AGENTKIT_DATABASE_URL` is set.

#[path = "../common/backend.rs"]
mod backend;
mod call;
mod registry;
mod scenario_a;
mod scenario_b;
mod scenario_c;

use agentkit::store::{ApprovalDecision, AuditQuery, UsageQuery, verify_audit_chain};
use agentkit::{Error, Result};
use agentkit_workflow::{StartRequest, WorkflowEvent};
use serde_json::json;

fn section(title: &str) {
    println!("\n== {title}");
}

fn say(line: String) {
    println!("  {line}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = backend::Db::from_env("seed_000").await?;
    println!("Seed 000 on {} (scripted models, no network).", db.name());
    let state = db.state();

    section("The agent registry");
    registry::run(state.clone(), scenario_a::TENANT, &say).await?;

    section("Scenario A — the marketing agent under a $50/day budget");
    scenario_a::run(state.clone(), &say).await?;

    section("Scenario B — invoice reminders every morning");
    scenario_b::run(state.clone(), db.workflows(), &say).await?;

    section("Scenario C — from an ad to a voice call to the CRM");
    scenario_c(&db).await?;

    let tenant = scenario_a::TENANT.parse()?;
    let audit = state.list_audit(&tenant, &AuditQuery::all()).await?;
    let usage = state.list_usage(&tenant, &UsageQuery::all()).await?;
    section("Records");
    say(format!(
        "{} usage events and {} audit entries for {}; the audit hash chain {}.",
        usage.len(),
        audit.len(),
        scenario_a::TENANT,
        if verify_audit_chain(&audit).is_ok() {
            "verifies"
        } else {
            "is BROKEN"
        }
    ));
    db.cleanup().await;
    Ok(())
}

async fn scenario_c(db: &backend::Db) -> Result<()> {
    let effects = scenario_c::Effects::default();
    let engine = scenario_c::engine(db.workflows(), db.state(), &effects, 0)?;
    let tenant = scenario_a::TENANT;
    engine.publish(tenant, &scenario_c::definition()).await?;
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
    let state_of = |what: &'static str| {
        let engine = engine.clone();
        let run = run.clone();
        async move {
            let r = engine
                .get_run(tenant, &run)
                .await?
                .ok_or_else(|| Error::NotFound(run.to_string()))?;
            say(format!("{what:<46} → run is {}", r.state.as_str()));
            Ok::<_, Error>(())
        }
    };
    let pending = || async {
        db.state()
            .list_pending_approvals(&tenant.parse()?)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound("a pending approval".into()))
    };

    engine.run_due("worker-1").await?;
    state_of("The marketing agent proposed a plan").await?;
    let plan = pending().await?;
    say(format!(
        "The reviewer sees: {}",
        plan.call.arguments["plan"]
    ));
    let mut approve = ApprovalDecision::approve("maria@spicy.co");
    approve.edited_arguments = Some(json!({"plan": plan.call.arguments["plan"], "budget": 400}));
    engine.decide_approval(tenant, &plan.id, &approve).await?;
    say("Maria approved the plan, lowering the budget to $400.".into());

    engine.run_due("worker-1").await?;
    state_of("Ads launched; waiting for a lead (no process held)").await?;
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
    say("Ada submitted the landing-page form (the webhook sent `lead.submitted`).".into());
    engine.run_due("worker-2").await?;
    state_of("High intent (score 86); the call awaits a person").await?;
    let call = pending().await?;
    engine
        .decide_approval(tenant, &call.id, &ApprovalDecision::approve("tom@spicy.co"))
        .await?;
    say("Tom confirmed: start the voice call.".into());

    engine.run_due("worker-2").await?;
    state_of("Called, CRM updated, archived").await?;
    let done = engine
        .get_run(tenant, &run)
        .await?
        .ok_or_else(|| Error::NotFound(run.to_string()))?;
    if let Some(lines) = done.context["call"]["transcript"].as_array() {
        say("The call:".into());
        for line in lines {
            say(format!(
                "  {:>5}: {}",
                line["role"].as_str().unwrap_or("?"),
                line["text"].as_str().unwrap_or("")
            ));
        }
    }
    say(format!(
        "The CRM has lead {} with interest \"{}\".",
        done.context["crm"]["lead_id"],
        done.context["call"]["interest"].as_str().unwrap_or("?")
    ));
    say("Step log:".into());
    for s in engine.steps(tenant, &run).await? {
        say(format!(
            "  {:>2}. {:<12} {:<12} {}",
            s.seq,
            s.node,
            s.kind,
            s.status.as_str()
        ));
    }
    say(format!(
        "Integrations, in order: {}",
        effects.tools().join(" → ")
    ));
    if let Some(snapshot) = engine.snapshots(tenant, &run).await?.first() {
        say(format!(
            "Archived as an immutable snapshot: audit entry #{} (sha256 {}).",
            snapshot.seq,
            snapshot.entry.output["sha256"].as_str().unwrap_or("?")
        ));
    }
    Ok(())
}
