//! Seed 000's acceptance on SQLite and Postgres: the agent registry (blueprint, immutable
//! versioned configs, backup agent, evaluation agent), scenario A (budget, approval, denial) and
//! scenario B (cron invoice reminders with approval above a threshold). Scenario C is
//! `tests/seed_000_scenario_c.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/seed_000/registry.rs"]
mod registry;
#[path = "../examples/seed_000/scenario_a.rs"]
mod scenario_a;
#[path = "../examples/seed_000/scenario_b.rs"]
mod scenario_b;
mod support;

use agentkit::id::TenantId;
use agentkit::store::{AuditQuery, StateStore, ToolExecutionStatus, verify_audit_chain};
use agentkit_workflow::RunState;

fn quiet(_: String) {}

async fn audit_verifies(state: &std::sync::Arc<dyn StateStore>, tenant: &str) {
    let tenant = TenantId::new(tenant).unwrap();
    let audit = state.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    assert!(!audit.is_empty());
    assert_eq!(verify_audit_chain(&audit), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_versions_are_immutable_the_backup_answers_and_the_judge_scores() {
    for db in support::databases("registry").await {
        let out = registry::run(db.state(), "spicy-co", &quiet).await.unwrap();
        assert_eq!(out.versions, vec![1, 2], "on {}", db.name());
        assert!(
            out.overwrite_refused.to_lowercase().contains("final"),
            "{}",
            out.overwrite_refused
        );
        assert!(out.active_prompt.contains("first-timer discount"));
        assert_eq!(
            out.first_prompt, "You run ads for Spicy-Co. Never exceed the daily budget.",
            "v1 unchanged and the blueprint's placeholder filled"
        );
        assert!(
            out.answered_by.contains("llama-3.1-8b"),
            "the backup's model: {}",
            out.answered_by
        );
        assert!(out.reply.contains("20% off"));
        assert!((out.score - 0.82).abs() < 1e-9);
        assert!(out.feedback.contains("On brand"));
        assert_eq!(out.evaluations, 1);
        // The same scenario for another tenant: its own versions and scores only.
        let other = registry::run(db.state(), "globex", &quiet).await.unwrap();
        assert_eq!(other.versions, vec![1, 2]);
        assert_eq!(other.evaluations, 1);
        audit_verifies(&db.state(), "spicy-co").await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_approval_over_40_denial_over_50_and_the_daily_budget() {
    for db in support::databases("scenario_a").await {
        let out = scenario_a::run(db.state(), &quiet).await.unwrap();
        assert!(
            out.approval_reason.contains("over $40"),
            "{}",
            out.approval_reason
        );
        assert!(out.after_approval.contains("Draft created"));
        assert!(
            out.over_limit.to_lowercase().contains("denied"),
            "{}",
            out.over_limit
        );
        assert!(
            out.over_budget.to_lowercase().contains("denied"),
            "{}",
            out.over_budget
        );
        assert!(
            out.over_budget.to_lowercase().contains("budget"),
            "{}",
            out.over_budget
        );
        // Only the approved $45 draft reached the ad platform, once.
        assert_eq!(
            out.drafts_created.len(),
            1,
            "on {}: {:?}",
            db.name(),
            out.drafts_created
        );
        assert_eq!(out.drafts_created[0]["budget"], 45);
        assert!(
            (out.spent_today_usd - 45.0).abs() < 1e-9,
            "{}",
            out.spent_today_usd
        );
        audit_verifies(&db.state(), scenario_a::TENANT).await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_cron_reminders_with_approval_above_the_threshold() {
    for db in support::databases("scenario_b").await {
        let out = scenario_b::run(db.state(), db.workflows(), &quiet)
            .await
            .unwrap();
        // One run per 08:00 slot (7, 8, 9 December), however many schedulers ticked.
        let times: Vec<&str> = out.runs.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            times,
            ["Mon 07 Dec 08:00", "Tue 08 Dec 08:00", "Wed 09 Dec 08:00"],
            "on {}",
            db.name()
        );
        assert!(
            out.runs.iter().all(|r| r.1 == RunState::Done),
            "{:?}",
            out.runs
        );
        // Day 1: three overdue; only the $1,800 reminder needed finance; day 2: the fourth
        // invoice crossed 7 days; day 3: nothing new, no alert.
        assert_eq!(out.approvals.len(), 1, "{:?}", out.approvals);
        assert_eq!(out.approvals[0].0, "INV-102");
        assert!(out.approvals[0].1.contains("over $1,000"));
        let mut first_day = out.reminders[..3].to_vec();
        first_day.sort();
        assert_eq!(first_day, ["INV-101", "INV-102", "INV-103"]);
        assert_eq!(out.reminders[3..], ["INV-104"]);
        assert_eq!(out.alerts.len(), 2, "{:?}", out.alerts);
        assert!(
            out.alerts[0].starts_with("3 invoice(s)"),
            "{}",
            out.alerts[0]
        );
        assert!(
            out.alerts[1].starts_with("1 invoice(s)"),
            "{}",
            out.alerts[1]
        );
        // The approved reminder ran once, through the governed executor.
        let tenant = TenantId::new(scenario_a::TENANT).unwrap();
        let state = db.state();
        let mut drafted = 0;
        assert_eq!(out.agent_runs.len(), 3);
        for run in &out.agent_runs {
            for e in state.list_tool_executions(&tenant, run).await.unwrap() {
                if e.tool == "billing.draft_reminder" {
                    assert_eq!(e.status, ToolExecutionStatus::Succeeded);
                    drafted += 1;
                }
            }
        }
        assert_eq!(drafted, 4);
        audit_verifies(&state, scenario_a::TENANT).await;
        db.cleanup().await;
    }
}
