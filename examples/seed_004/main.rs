//! Seed 004, the enterprise agent framework, as a support organisation on agentkit: Acme Corp
//! (professional plan) and Tiny Shop (free plan) get support and triage agents from blueprints;
//! the hosted LLM is down and the agents keep answering through the resilience layers; triage
//! runs into the free plan's quota; refunds, credits and account closures wait in a priority
//! queue with SLAs, escalation and expiry; an approved (edited) refund becomes a golden path a
//! later similar request retrieves — for Acme only; roles with inheritance and the audit trail
//! are queried at the end.
//!
//! ```text
//! cargo run --example seed_004 --features policy,rag,sqlite,postgres
//! AGENTKIT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example seed_004 --features policy,rag,sqlite,postgres
//! ```
//!
//! Where the seed's design is superseded by agentkit's:
//! - **Agent classes** (`BaseAgent.plan / execute_step / should_continue`) become data: a
//!   [`Blueprint`](agentkit::agent::Blueprint) is a serializable `AgentConfig` template, the
//!   turn loop is agentkit's own, and what an agent may do is decided by the policy gate on
//!   every tool call (not by code inside the agent class).
//! - **`HITLManager.request_approval`** is not called by agents: the policy document's rules
//!   send an action to a person, the run suspends durably, and `ApprovalQueue` derives
//!   priority, SLA, escalation and assignment from creation time (nothing to reschedule).
//! - **Tenant isolation scopes** (`isolator.isolation_scope`) are replaced by the tenant being a
//!   required argument of every store, vector-store and queue call.
//! - **Permission levels** (`check_permission(agent, resource, EXECUTE)`) are action patterns
//!   granted to agents through roles; `PolicyEngine::explain` answers the same question and
//!   says which role granted it.
//! - **Redis Streams, Apache AGE, Pinecone and their graceful degradation**: agentkit keeps
//!   events, audit, approvals and vectors in the one database the host already runs (SQLite or
//!   Postgres), so there is nothing to degrade to; golden paths live in the tenant's vector
//!   store beside its documents. There is no activity graph or playbook compiler (see the
//!   README's seed table).
//! - **Automatic golden paths inside `provide_response`**: the host's reviewer desk
//!   (`learning.rs`) decides through the queue and records the golden path in the same call.

#[path = "../common/backend.rs"]
mod backend;
mod blueprints;
mod governance;
mod learning;
mod models;
mod scenario;
mod tools;

use std::time::Duration;

use agentkit::agent::RunOutcome;
use agentkit::id::{AgentId, RunId, SessionId};
use agentkit::policy::PolicyRequest;
use agentkit::policy_engine::audit;
use agentkit::scope::Scope;
use agentkit::store::{ApprovalDecision, AuditQuery, UsageQuery};
use serde_json::json;

use blueprints::{ACME, SUPPORT, TINYSHOP, TRIAGE, Tenant};
use scenario::Platform;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn heading(title: &str) {
    println!("\n== {title} ==");
}

fn report(outcome: &RunOutcome) -> Result<&agentkit::agent::RunReport, BoxError> {
    outcome
        .report()
        .ok_or_else(|| format!("expected a finished run, got {outcome:?}").into())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let db = backend::Db::from_env("agentkit_seed004").await?;
    println!("Database: {}", db.name());
    let hosted = models::hosted_down();
    let platform = Platform::new(
        db.state(),
        db.vectors(scenario::DIMENSIONS).await?,
        hosted.clone(),
        Duration::from_secs(30),
        tools::Effects::new(),
    )?;
    let result = run(&platform, &hosted).await;
    db.cleanup().await;
    result
}

async fn run(p: &Platform, hosted: &agentkit::testkit::ScriptedModel) -> Result<(), BoxError> {
    onboarding(p).await?;

    heading("The hosted LLM is down");
    let out = p
        .triage(&ACME, "T-100", "I was charged twice for my subscription")
        .await?;
    let r = report(&out)?;
    println!(
        "Acme's ticket T-100 was still triaged: \"{}\"\n  answered by {} after {} failed calls to the hosted LLM; circuit breaker: {:?} (no calls to it for 30 s)",
        r.reply,
        r.answered_by,
        hosted.calls(),
        p.breaker.state()
    );

    quotas(p).await?;
    hitl_queue(p).await?;
    feedback_loop(p).await?;
    governance(p).await?;
    println!(
        "\nWhile the circuit was open the hosted LLM was called {} times in all: every other answer came straight from the fallback.",
        hosted.calls()
    );
    Ok(())
}

async fn onboarding(p: &Platform) -> Result<(), BoxError> {
    heading("Onboarding from blueprints");
    for tenant in [ACME, TINYSHOP] {
        let configs = p.onboard(&tenant).await?;
        let agents: Vec<String> = configs
            .iter()
            .map(|c| format!("{} ({} v{})", c.name, c.agent, c.version))
            .collect();
        println!(
            "{} ({} plan): {}",
            tenant.name,
            tenant.tier,
            agents.join(", ")
        );
    }
    let acme = ACME.tenant_id()?;
    let support = AgentId::new(SUPPORT)?;
    let v2 = blueprints::publish_edit(&*p.state, &acme, &support, |c| {
        c.system_prompt
            .push_str(" Sign every answer as 'The Acme Care Team'.");
    })
    .await?;
    let versions = p.state.list_agent_config_versions(&acme, &support).await?;
    println!(
        "Acme customised its support agent: versions {versions:?}, v{} in force; Tiny Shop's stays at {:?}",
        v2.version,
        p.state
            .list_agent_config_versions(&TINYSHOP.tenant_id()?, &support)
            .await?
    );
    Ok(())
}

async fn quotas(p: &Platform) -> Result<(), BoxError> {
    heading("Triage and plan quotas");
    let tickets = [
        ("I can't log in since yesterday", "password"),
        ("Where is my invoice for March?", "invoice"),
        ("Do you ship to Canada?", "general"),
        ("My payment failed twice", "payment"),
    ];
    for tenant in [TINYSHOP, ACME] {
        for (i, (text, _)) in tickets.iter().enumerate() {
            let ticket = format!("T-{}{}", if tenant == ACME { 3 } else { 2 }, i + 1);
            let out = p.triage(&tenant, &ticket, text).await?;
            let r = report(&out)?;
            let call = r.tool_calls.first().ok_or("triage made no call")?;
            let outcome = if call.is_error {
                format!("REFUSED — {}", call.result)
            } else {
                format!("routed to {}", call.call.arguments["queue"])
            };
            println!("{} {ticket} \"{text}\": {outcome}", tenant.name);
        }
    }
    Ok(())
}

/// Raises three requests, lets the queue's time pass, and decides them.
async fn hitl_queue(p: &Platform) -> Result<(), BoxError> {
    heading("Human-in-the-loop queue");
    let acme = ACME.tenant_id()?;
    let asks = [
        (
            "close-77",
            "Please close my account cust-77, I'm moving on.",
        ),
        (
            "refund-1234",
            "Please refund $80 for order 1234, the parcel arrived damaged.",
        ),
        (
            "credit-42",
            "Could you add a goodwill credit of $15 for customer cust-42? Their delivery was late.",
        ),
    ];
    let mut runs = Vec::new();
    for (session, text) in asks {
        let out = p.ask(&ACME, SUPPORT, session, text).await?;
        let approval = out.approvals().first().ok_or("expected an approval")?;
        println!(
            "\"{text}\"\n  → {} {} waits for a person ({:?} priority: {})",
            approval.call.name, approval.call.arguments, approval.priority, approval.reason
        );
        runs.push((approval.id.clone(), out.run_id().clone()));
    }
    print_queue(p, &acme, "Queue now").await?;

    p.clock.advance(Duration::from_secs(20 * 60));
    for item in p.queue.breached(&acme).await? {
        println!(
            "20 minutes later: SLA breached for {} ({:?} priority, 15-minute SLA)",
            item.request.call.name, item.priority,
        );
    }
    let close = p.queue.pending(&acme).await?;
    let close = close
        .iter()
        .find(|i| i.request.id == runs[0].0)
        .ok_or("the closure request")?;
    let reviewer = close.assignee.clone().ok_or("unassigned")?;
    let decided = p
        .desk
        .decide(&acme, &runs[0].0, &ApprovalDecision::approve(&reviewer))
        .await?;
    let out = p.resume(&ACME, SUPPORT, &runs[0].1).await?;
    println!(
        "{reviewer} approves {} {} → \"{}\"",
        decided.request.call.name,
        decided.request.call.arguments,
        report(&out)?.reply
    );

    p.clock.advance(Duration::from_secs(20 * 60));
    print_queue(p, &acme, "40 minutes in (first escalation: raised to high)").await?;
    p.clock.advance(Duration::from_secs(90 * 60));
    print_queue(p, &acme, "2 h 10 min in (second escalation: team leads)").await?;

    let refused = p
        .desk
        .decide(&acme, &runs[1].0, &ApprovalDecision::approve("bob"))
        .await;
    if let Err(e) = refused {
        println!("bob tries to approve the refund: {e}");
    }
    let mut edit = ApprovalDecision::approve_with_arguments(
        "lena",
        json!({"order": "1234", "amount_usd": "60.00"}),
    );
    edit.comment = Some("Partial refund: the customer keeps the item.".into());
    let decided = p.desk.decide(&acme, &runs[1].0, &edit).await?;
    let out = p.resume(&ACME, SUPPORT, &runs[1].1).await?;
    println!(
        "lena approves the refund edited to $60 → \"{}\"; payments made: {}",
        report(&out)?.reply,
        serde_json::Value::Array(p.effects.of(ACME.id, "billing.refund"))
    );
    if let Some(path) = decided.learned {
        println!("  learned as a golden path: {}", path.action);
    }

    p.clock.advance(Duration::from_secs(6 * 3600));
    for expired in p.queue.expire_overdue(&acme).await? {
        let out = p.resume(&ACME, SUPPORT, &expired.run).await?;
        println!(
            "8 h 10 min in: nobody decided the {} — {} by {} → \"{}\"",
            expired.call.name,
            expired.status.as_str(),
            expired.reviewer.as_deref().unwrap_or("?"),
            report(&out)?.reply
        );
    }
    println!(
        "Expiring again decides nothing more: {} requests",
        p.queue.expire_overdue(&acme).await?.len()
    );
    Ok(())
}

async fn print_queue(
    p: &Platform,
    tenant: &agentkit::id::TenantId,
    title: &str,
) -> Result<(), BoxError> {
    println!("{title}:");
    let now = (p.clock.clock())();
    for item in p.queue.pending(tenant).await? {
        let left = item.due - now;
        let (sign, left) = if left < chrono::Duration::zero() {
            ("overdue by", -left)
        } else {
            ("due in", left)
        };
        println!(
            "  {:<9} {:<24} {sign} {}h{:02}m  escalation level {}  → {}",
            format!("{:?}", item.priority),
            item.request.call.name,
            left.num_hours(),
            left.num_minutes() % 60,
            item.escalation_level,
            item.assignee.as_deref().unwrap_or("nobody available"),
        );
    }
    Ok(())
}

async fn feedback_loop(p: &Platform) -> Result<(), BoxError> {
    heading("Feedback loop: approved outcomes become golden paths");
    let later = "My parcel for order 998 arrived damaged. Can I get a refund?";
    for tenant in [ACME, TINYSHOP] {
        let out = p.ask(&tenant, SUPPORT, "later-998", later).await?;
        let r = report(&out)?;
        println!(
            "{} customer: \"{later}\"\n  agent: \"{}\"",
            tenant.name, r.reply
        );
        for (i, source) in r.sources.iter().enumerate() {
            let title = source.source.title.as_deref().unwrap_or("?");
            println!(
                "  [{}] {title} (score {:.2}): {}",
                i + 1,
                source.score,
                source.text.replace('\n', " | ")
            );
        }
    }
    let acme = ACME.tenant_id()?;
    let similar = p
        .golden
        .similar(&acme, &AgentId::new(SUPPORT)?, later, 3)
        .await?;
    if let Some((path, score)) = similar.first() {
        println!(
            "Acme's closest proven resolution for that request (score {score:.2}): {} by {}: {}",
            path.outcome, path.reviewer, path.action
        );
    }
    Ok(())
}

async fn governance(p: &Platform) -> Result<(), BoxError> {
    heading("Roles and permissions (inherited roles included)");
    let actions = [
        "tickets.reply",
        "tickets.escalate_to_human",
        "tickets.route",
        "billing.refund",
        "account.close",
    ];
    for agent in [TRIAGE, SUPPORT] {
        let mut row = Vec::new();
        for action in actions {
            let scope = Scope::new(
                ACME.tenant_id()?,
                AgentId::new(agent)?,
                SessionId::new("permission-check")?,
                RunId::generate(),
            );
            let explained = p
                .policy
                .explain(&PolicyRequest::new(scope, action, json!({})))
                .await?;
            row.push(format!("{action}={}", explained.decision.label()));
        }
        println!("{agent}: {}", row.join("  "));
    }

    heading("Usage per tenant");
    for tenant in [ACME, TINYSHOP] {
        let mut totals = std::collections::BTreeMap::<&str, u64>::new();
        for event in p
            .state
            .list_usage(&tenant.tenant_id()?, &UsageQuery::all())
            .await?
        {
            *totals.entry(event.kind.as_str()).or_default() += event.quantity;
        }
        let totals: Vec<String> = totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{} ({} plan): {}",
            tenant.name,
            tenant.tier,
            totals.join("  ")
        );
    }

    heading("Audit trail");
    for tenant in [ACME, TINYSHOP] {
        audit_summary(p, &tenant).await?;
    }
    Ok(())
}

async fn audit_summary(p: &Platform, tenant: &Tenant) -> Result<(), BoxError> {
    let id = tenant.tenant_id()?;
    let decided = p
        .state
        .list_audit(&id, &AuditQuery::all().kind("approval.decided"))
        .await?;
    let denied = p
        .state
        .list_audit(
            &id,
            &AuditQuery::all()
                .kind("policy.decision")
                .agent(AgentId::new(TRIAGE)?),
        )
        .await?;
    let hour = chrono::Utc::now();
    let recent = p
        .state
        .list_audit(
            &id,
            &AuditQuery::all().between(hour - chrono::Duration::hours(1), hour),
        )
        .await?;
    let verified = audit::verify(&*p.state, &id).await?;
    let mut export = Vec::new();
    let exported = audit::export_jsonl(&*p.state, &id, &AuditQuery::all(), &mut export).await?;
    let reread = audit::verify_jsonl(export.as_slice())?;
    println!(
        "{}: {} entries in the last hour; chain of {} entries {}; export of {exported} lines {}",
        tenant.name,
        recent.len(),
        verified.entries,
        if verified.is_intact() {
            "verifies"
        } else {
            "is BROKEN"
        },
        if reread.is_intact() {
            "verifies"
        } else {
            "is BROKEN"
        },
    );
    for e in decided {
        println!(
            "  {} {} {} {}",
            e.entry.at.format("%H:%M:%S"),
            e.entry.actor,
            e.entry.decision.as_deref().unwrap_or("?"),
            e.entry.action
        );
    }
    for e in denied
        .iter()
        .filter(|e| e.entry.decision.as_deref() == Some("deny"))
    {
        println!(
            "  triage refused {}: {}",
            e.entry.action,
            e.entry.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
