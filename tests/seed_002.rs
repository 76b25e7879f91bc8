//! Seed 002's acceptance on SQLite and Postgres: five scheduled agents over two simulated weeks
//! on a controllable clock — every slot at its local time across a daylight-saving change, each
//! slot once however many schedulers tick, missed slots by each catch-up rule — with context
//! assembled per customer before the model call and a run log of every agent run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/seed_002/scenario.rs"]
mod scenario;
mod support;

use std::collections::BTreeSet;

fn quiet(_: String) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_scheduled_agents_with_context_and_run_logs_over_two_weeks() {
    for db in support::databases("seed_002").await {
        let (setup, out) = scenario::two_weeks(db.state(), db.workflows(), &quiet)
            .await
            .unwrap();
        let count = |k: &str| out.runs_per_kind.get(k).copied().unwrap_or(0);
        // 14 daily slots each; the outage (31 Mar 08:00 – 2 Apr 08:00) missed two of each daily
        // schedule and the nurture slot of 31 March.
        assert_eq!(
            count("reminder"),
            13,
            "on {}: 14 − 2 missed + 1 caught up",
            db.name()
        );
        assert_eq!(count("follow_up"), 12, "14 − 2 missed, skipped");
        assert_eq!(count("closure"), 14, "the 2 missed run late");
        assert_eq!(count("nurture"), 7, "23, 25, 27, 29, 31 (late), 2, 4");
        assert_eq!(count("upsell"), 2, "Mondays 23 and 30 March");
        assert!(
            out.duplicates <= 48,
            "the second scheduler started no slot twice"
        );

        // Every slot at its local hour, before and after the DST change (29 March).
        for e in &out.log {
            let hour = match e.kind.as_str() {
                "reminder" => "09:00",
                "follow_up" => "13:00",
                "closure" => "16:00",
                "nurture" => "11:00",
                _ => "10:00",
            };
            assert!(e.slot.ends_with(hour), "{e:?}");
            assert_eq!(e.status, "done", "{e:?}");
        }
        // Eligibility: the opted-out user never; upsell only the basic-plan customer.
        assert!(out.log.iter().all(|e| e.user != "u-gone"));
        let upsold: BTreeSet<&str> = out
            .log
            .iter()
            .filter(|e| e.kind == "upsell")
            .map(|e| e.user.as_str())
            .collect();
        assert_eq!(upsold, BTreeSet::from(["u-iron"]));
        // One log line per (slot, user), and each message was sent once.
        let runs: BTreeSet<&str> = out.log.iter().map(|e| e.run.as_str()).collect();
        assert_eq!(runs.len(), out.log.len());
        let sent = setup.crm.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), out.log.len());
        // Context assembly: each message was written from that customer's own profile.
        let bella = out
            .log
            .iter()
            .find(|e| e.kind == "reminder" && e.user == "u-bella")
            .unwrap();
        assert_eq!(
            bella.message,
            "[warm] Hi Bella's Bakery, a reminder: send price list."
        );
        let flora = out.log.iter().find(|e| e.kind == "closure").unwrap();
        assert_eq!(
            flora.message,
            "[elegant] Hi Flora Flowers, shall we finalise today? (confirm wedding quote)"
        );
        let iron = out.log.iter().find(|e| e.kind == "upsell").unwrap();
        assert_eq!(
            iron.message,
            "[energetic] Hi Iron Gym, the pro plan would help with memberships."
        );
        db.cleanup().await;
    }
}
