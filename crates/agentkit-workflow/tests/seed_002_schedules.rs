//! Seed 002: five scheduled agents (REMINDER 09:00 daily, FOLLOW_UP 13:00 daily, CLOSURE 16:00
//! daily, NURTURE 11:00 every 2 days, UPSELL 10:00 Mondays), in the tenant's time zone, driven
//! by a controllable clock over two simulated weeks that cross a daylight-saving change and a
//! two-day outage: every run at its time, none twice, missed slots by each catch-up policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::agent::Agent;
use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{InMemoryStore, StateStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_workflow::clock::{Clock, ManualClock};
use agentkit_workflow::schedule::Fired;
use agentkit_workflow::{
    CatchUp, InMemoryWorkflowStore, RunQuery, RunState, Schedule, ScheduledWorkflow, Scheduler,
    WorkflowDefinition, Workflows,
};
use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::json;
use std::sync::Mutex;

const KINDS: [(&str, &str); 5] = [
    ("reminder", "Daily reminder"),
    ("follow_up", "Follow-up"),
    ("closure", "Deal closure"),
    ("nurture", "Lead nurturing"),
    ("upsell", "Upsell"),
];

/// An agent of one kind: its scripted model records a communication through a tool, then
/// answers.
fn agent(kind: &str, state: Arc<dyn StateStore>, sent: Arc<Mutex<Vec<String>>>) -> Agent {
    let record: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "comms.record",
            "records a communication",
            json!({"type": "object"}),
        )
        .with_side_effect(SideEffect::Write),
        move |_ctx, args| {
            let sent = sent.clone();
            async move {
                sent.lock()
                    .unwrap()
                    .push(args["kind"].as_str().unwrap_or("?").to_owned());
                Ok(json!({"recorded": true}))
            }
        },
    ));
    let model = Arc::new(ScriptedModel::repeating([
        ScriptedResponse::tool_call("comms.record", json!({"kind": kind})),
        ScriptedResponse::text(format!("{kind} sent")),
    ]));
    Agent::builder()
        .id(kind)
        .system_prompt(format!("You are the {kind} agent."))
        .model(model, "scripted")
        .tool(record)
        .policy(AllowListPolicy::allow_all().into_arc())
        .store(state)
        .build()
        .unwrap()
}

fn workflow(kind: &str) -> WorkflowDefinition {
    serde_json::from_value(json!({
        "id": kind, "version": 1, "start": "run_agent", "inputs": ["schedule"],
        "nodes": [{"id": "run_agent", "kind": "agent", "agent": kind,
                   "input": "Scheduled run for ${schedule.slot}"}]
    }))
    .unwrap()
}

fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn five_scheduled_agents_over_two_weeks() {
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let sent = Arc::new(Mutex::new(Vec::new()));
    // Monday 23 March 2026, 00:00 in Berlin; DST starts on Sunday 29 March.
    let start = berlin(2026, 3, 23, 0, 0);
    let end = berlin(2026, 4, 6, 0, 0);
    let clock = Arc::new(ManualClock::new(start));
    let store = Arc::new(InMemoryWorkflowStore::new());
    let mut builder = Workflows::builder(store.clone())
        .executor(ToolExecutor::builder(ToolSet::default(), state.clone()).build())
        .clock(clock.clone());
    for (kind, _) in KINDS {
        builder = builder.agent(agent(kind, state.clone(), sent.clone()));
    }
    let engine = builder.build();
    for (kind, _) in KINDS {
        engine.publish("acme", &workflow(kind)).await.unwrap();
    }
    let tz = "Europe/Berlin";
    // A second scheduler process: the same workflow store, its own memory of where the
    // schedules got to.
    let other_state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let mut other = Workflows::builder(store.clone())
        .executor(ToolExecutor::builder(ToolSet::default(), other_state.clone()).build())
        .clock(clock.clone());
    for (kind, _) in KINDS {
        other = other.agent(agent(kind, other_state.clone(), sent.clone()));
    }
    let other = other.build();
    let schedules = |engine: &Workflows| {
        let mut s = Scheduler::new(engine.clone());
        s.add(
            ScheduledWorkflow::new(
                "reminder",
                "acme",
                "reminder",
                Schedule::cron("0 9 * * *", tz).unwrap(),
            )
            .unwrap()
            .catch_up(CatchUp::RunOnce),
        )
        .unwrap()
        .add(
            ScheduledWorkflow::new(
                "follow_up",
                "acme",
                "follow_up",
                Schedule::cron("0 13 * * *", tz).unwrap(),
            )
            .unwrap()
            .catch_up(CatchUp::Skip),
        )
        .unwrap()
        .add(
            ScheduledWorkflow::new(
                "closure",
                "acme",
                "closure",
                Schedule::cron("0 16 * * *", tz).unwrap(),
            )
            .unwrap()
            .catch_up(CatchUp::RunAll),
        )
        .unwrap()
        .add(
            ScheduledWorkflow::new(
                "nurture",
                "acme",
                "nurture",
                Schedule::every_days(2, "11:00", tz, "2026-03-23").unwrap(),
            )
            .unwrap()
            .catch_up(CatchUp::RunOnce),
        )
        .unwrap()
        .add(
            ScheduledWorkflow::new(
                "upsell",
                "acme",
                "upsell",
                Schedule::cron("0 10 * * MON", tz).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        s
    };
    // Two scheduler processes tick the same schedules.
    let (a, b) = (schedules(&engine), schedules(&other));
    let outage = (berlin(2026, 3, 31, 8, 0), berlin(2026, 4, 2, 8, 0));
    let mut fired: Vec<Fired> = Vec::new();
    let mut duplicates = 0;
    while clock.now() < end {
        let now = clock.now();
        if now <= outage.0 || now >= outage.1 {
            for f in a
                .tick()
                .await
                .unwrap()
                .into_iter()
                .chain(b.tick().await.unwrap())
            {
                if f.created.is_new() {
                    fired.push(f);
                } else {
                    duplicates += 1;
                }
            }
            engine.run_due("worker").await.unwrap();
        }
        clock.advance(TimeDelta::minutes(5));
    }

    let mut per_kind: BTreeMap<&str, Vec<&Fired>> = BTreeMap::new();
    for f in &fired {
        per_kind.entry(f.schedule.as_str()).or_default().push(f);
    }
    let count = |k: &str| per_kind.get(k).map_or(0, Vec::len);
    // 14 daily slots each; the outage missed 31 Mar and 1 Apr of each daily schedule and the
    // nurture slot of 31 Mar.
    assert_eq!(
        count("reminder"),
        13,
        "14 − 2 missed + 1 caught up (run once)"
    );
    assert_eq!(count("follow_up"), 12, "14 − 2 missed, skipped");
    assert_eq!(count("closure"), 14, "14, the 2 missed run late (run all)");
    assert_eq!(count("nurture"), 7, "23, 25, 27, 29, 31 (late), 2, 4");
    assert_eq!(count("upsell"), 2, "Mondays 23 and 30 March");
    assert_eq!(
        duplicates,
        fired.len(),
        "the second scheduler tried every slot and started nothing"
    );

    for f in &fired {
        let local = f.slot.with_timezone(&Berlin);
        let hour = match f.schedule.as_str() {
            "reminder" => 9,
            "follow_up" => 13,
            "closure" => 16,
            "nurture" => 11,
            _ => 10,
        };
        assert_eq!(
            (local.hour(), local.minute()),
            (hour, 0),
            "{} at {local}",
            f.schedule
        );
        let created = f.created.run().created_at;
        let late = created - f.slot;
        if f.caught_up {
            assert!(f.slot < outage.1 && created >= outage.1, "{f:?}");
        } else {
            assert!(
                late >= TimeDelta::zero() && late <= TimeDelta::minutes(5),
                "{} late by {late}",
                f.schedule
            );
        }
    }
    let caught: Vec<String> = fired
        .iter()
        .filter(|f| f.caught_up)
        .map(|f| {
            format!(
                "{}@{}",
                f.schedule,
                f.slot.with_timezone(&Berlin).format("%m-%d %H:%M")
            )
        })
        .collect();
    assert_eq!(
        caught,
        vec![
            "reminder@04-01 09:00",
            "closure@03-31 16:00",
            "closure@04-01 16:00",
            "nurture@03-31 11:00"
        ]
    );

    // Every run finished, ran its agent, and recorded one communication.
    let runs = engine.list_runs("acme", &RunQuery::all()).await.unwrap();
    assert_eq!(runs.len(), fired.len());
    assert!(
        runs.iter().all(|r| r.state == RunState::Done),
        "{:?}",
        runs.iter().map(|r| r.state).collect::<Vec<_>>()
    );
    assert!(runs.iter().all(|r| {
        r.context["run_agent"]["reply"]
            .as_str()
            .unwrap()
            .ends_with("sent")
    }));
    assert_eq!(
        sent.lock().unwrap().len(),
        fired.len(),
        "one communication per run"
    );
}
