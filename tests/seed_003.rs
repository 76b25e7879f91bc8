//! Seed 003 (the AstralisOps orchestration agent) acceptance, each test on SQLite and on
//! Postgres through the scenario the example `seed_003` runs: every source normalised and
//! logged; confidence routing (auto-execute once, approval then exactly once, reject → nothing);
//! redelivery does nothing new; the rate limit refuses the 61st action in a minute; the keyword
//! rules decide when the model is down and propose (for a person) when it is unsure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "seed_003/inputs.rs"]
mod inputs;
#[path = "../examples/seed_003/scenario.rs"]
mod scenario;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use agentkit::agent::RunOutcome;
use agentkit::error::ErrorKind;
use agentkit::id::TenantId;
use agentkit::resilience::CircuitState;
use agentkit::store::ApprovalDecision;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use agentkit::workflow::intake::{
    DbChangeIntake, EmailIntake, IntakeError, SignatureError, Source, WebhookIntake,
    WebhookRequest, WorkerIntake, signature_header,
};
use chrono::{TimeZone, Utc};
use serde_json::json;

use scenario::log::DecidedBy;
use scenario::{ActionOutcome, Config, Decision, DecisionStatus, Processed};

use inputs::*;

#[tokio::test]
async fn every_source_is_normalised_and_logged_and_a_forged_webhook_is_refused() {
    for db in support::databases("seed_003 sources").await {
        let e = env(
            &db,
            vec![
                answer(
                    "SUPPORT_REQUEST",
                    0.92,
                    vec![assign("r", "Support Requests")],
                ),
                answer("SCHEDULING_REQUEST", 0.9, vec![]),
                answer("SALES_INQUIRY", 0.9, vec![]),
                answer("JOB_FAILURE", 0.9, vec![]),
            ],
        );
        // Email.
        let mail = email(
            "CAH7-urgent-500@mail.acme.example",
            "=?UTF-8?Q?URGENT:_booking_page_returns_500_=E2=80=93_help?=",
            "Since 08:50 none of our clients can book. We have 40 appointments to=\r\nday.",
        );
        assert_eq!(mail.source, Source::Email);
        assert_eq!(mail.delivery_id, "CAH7-urgent-500@mail.acme.example");
        assert_eq!(
            mail.data["subject"],
            "URGENT: booking page returns 500 – help"
        );
        assert!(
            mail.text.contains("We have 40 appointments today."),
            "{}",
            mail.text
        );
        assert!(
            mail.text
                .contains("From: Dana Whitfield <dana@acme.example>")
        );
        // Webhook, good signature.
        let body = serde_json::to_vec(&json!({"event": "booking.created", "id": "bk_7781",
            "booking": {"date": "2025-03-21", "time": "15:00",
                        "guest": {"name": "Ada Lovelace", "email": "ada@analytical.example"}}}))
        .unwrap();
        let hooks = WebhookIntake::new(SECRET).unwrap();
        let good = WebhookRequest::new(&body).header(
            "X-Signature",
            signature_header(SECRET, now().timestamp(), &body),
        );
        let booking = hooks.normalise(&tenant(), &good, now()).unwrap();
        assert_eq!(
            (booking.kind.as_str(), booking.delivery_id.as_str()),
            ("booking_created", "bk_7781")
        );
        assert!(
            booking
                .text
                .contains("booking.guest.email: ada@analytical.example")
        );
        // Webhook, bad signature: refused before it is parsed, never reaches the agent.
        let forged = WebhookRequest::new(&body).header(
            "X-Signature",
            signature_header(b"guessed-secret-123456", now().timestamp(), &body),
        );
        assert_eq!(
            hooks.normalise(&tenant(), &forged, now()).unwrap_err(),
            IntakeError::Signature(SignatureError::Mismatch)
        );
        let replayed = WebhookRequest::new(&body).header(
            "X-Signature",
            signature_header(SECRET, now().timestamp() - 3600, &body),
        );
        assert!(matches!(
            hooks.normalise(&tenant(), &replayed, now()),
            Err(IntakeError::Signature(SignatureError::Expired { .. }))
        ));
        // Database change (a Postgres trigger's NOTIFY payload).
        let change = json!({"table": "intake_request", "op": "INSERT", "txid": 90211,
            "new": {"id": "ir_481", "title": "Website redesign quote", "source": "FORM"}});
        let row = DbChangeIntake::new()
            .normalise(&tenant(), &serde_json::to_vec(&change).unwrap(), now())
            .unwrap();
        assert_eq!(row.kind, "intake_request_created");
        // Worker event (BullMQ `failed`).
        let job = json!({"queue": "calendar-sync", "jobId": "sync-9", "status": "failed",
                         "attemptsMade": 3, "failedReason": "quota exceeded"});
        let failed = WorkerIntake::new()
            .normalise(&tenant(), &serde_json::to_vec(&job).unwrap(), now())
            .unwrap();
        assert_eq!(
            (failed.kind.as_str(), failed.delivery_id.as_str()),
            ("job_failed", "calendar-sync:sync-9:failed:3")
        );

        for intake in [&mail, &booking, &row, &failed] {
            decided(e.orch.process(intake).await.unwrap());
        }
        // The decision log, read back from the database, names each input.
        let log = e.orch.decisions().await.unwrap();
        let seen: Vec<(Source, String, String)> = log
            .iter()
            .map(|r| (r.input_source, r.input_type.clone(), r.id.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    Source::Email,
                    "email_received".into(),
                    mail.key().to_string()
                ),
                (
                    Source::Webhook,
                    "booking_created".into(),
                    "webhook:bk_7781".into()
                ),
                (
                    Source::DbTrigger,
                    "intake_request_created".into(),
                    "db:intake_request:insert:id=ir_481:tx90211".into()
                ),
                (
                    Source::Worker,
                    "job_failed".into(),
                    "worker:calendar-sync:sync-9:failed:3".into()
                ),
            ]
        );
        assert_eq!(
            log[1].input_data["booking"]["guest"]["name"],
            "Ada Lovelace"
        );
        assert_eq!(
            log[2].input_data["after"]["title"],
            "Website redesign quote"
        );
        // An intake of another organisation is refused by this one's orchestrator.
        let other = EmailIntake::new()
            .normalise(
                &TenantId::new("globex").unwrap(),
                raw_email("x@globex.example", "a@globex.example", "Hi", "hello").as_bytes(),
                now(),
            )
            .unwrap();
        assert_eq!(
            e.orch.process(&other).await.unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        // The decision agent read the intake (its reference first, then the text).
        let first = &e.llm.requests()[0];
        let user = first.messages.last().unwrap().text().to_owned();
        assert!(user.starts_with(&format!("Reference: {}\nEmail received\n", mail.key())));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_confident_decision_runs_its_actions_once_and_redeliveries_do_nothing_new() {
    for db in support::databases("seed_003 auto-execute").await {
        let r1 = "email:urgent-1@acme.example";
        let three = || {
            answer(
                "SUPPORT_REQUEST",
                0.92,
                vec![
                    assign(r1, "Support Requests"),
                    notify(r1, "OPERATOR"),
                    trigger(r1),
                ],
            )
        };
        let r2 = "api:req-2";
        let e = env(
            &db,
            vec![
                three(),
                // Two concurrent deliveries of another input may both ask the model.
                answer("SALES_INQUIRY", 0.95, vec![assign(r2, "Sales Inquiries")]),
                answer("SALES_INQUIRY", 0.95, vec![assign(r2, "Sales Inquiries")]),
            ],
        );
        let mail = email(
            "urgent-1@acme.example",
            "Site down",
            "Our booking page is broken.",
        );
        let r = decided(e.orch.process(&mail).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Executed, "{r:?}");
        assert_eq!(r.decided_by, DecidedBy::Model);
        assert_eq!(r.executed(), 3);
        let effects = e.ops.for_reference(r1);
        assert_eq!(
            effects.iter().map(|x| x.tool.as_str()).collect::<Vec<_>>(),
            ["pipeline.assign", "notify.send", "automation.trigger"]
        );
        let keys: BTreeSet<String> = effects.iter().map(|x| x.key.clone()).collect();
        assert_eq!(keys.len(), 3);
        assert!(
            keys.iter()
                .all(|k| k.starts_with(&format!("{}:", r.act_run)))
        );
        let executions = db
            .state()
            .list_tool_executions(e.orch.tenant(), &r.act_run)
            .await
            .unwrap();
        assert_eq!(executions.len(), 3);

        // Redelivered twice: the same decision, no model call, no effect.
        for _ in 0..2 {
            match e.orch.process(&mail).await.unwrap() {
                Processed::Duplicate(again) => assert_eq!(again.act_run, r.act_run),
                other => panic!("a redelivery must be a duplicate: {other:?}"),
            }
        }
        assert_eq!(e.llm.calls(), 1, "a redelivery never asks the model again");
        assert_eq!(e.ops.count(), 3);
        assert_eq!(e.orch.decisions().await.unwrap().len(), 1);

        // Two deliveries of one input at the same time: one decision, one set of effects.
        let request = api("req-2", "Pricing for 40 seats, please");
        let (a, b) = tokio::join!(e.orch.process(&request), e.orch.process(&request));
        let outcomes = [a.unwrap(), b.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|p| matches!(p, Processed::Decided(_)))
                .count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(e.ops.for_reference(r2).len(), 1);
        assert_eq!(e.orch.decisions().await.unwrap().len(), 2);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_medium_confidence_decision_waits_for_approval_then_runs_exactly_once() {
    for db in support::databases("seed_003 approval").await {
        let reference = "db:intake_request:insert:id=ir_9:tx5";
        let e = env(
            &db,
            vec![answer(
                "PARTNERSHIP",
                0.72,
                vec![
                    assign(reference, "General Intake"),
                    notify(reference, "ADMIN"),
                ],
            )],
        );
        let change = json!({"table": "intake_request", "op": "INSERT", "txid": 5,
            "new": {"id": "ir_9", "title": "Reseller partnership for the Nordics"}});
        let intake = DbChangeIntake::new()
            .normalise(&tenant(), &serde_json::to_vec(&change).unwrap(), now())
            .unwrap();
        let r = decided(e.orch.process(&intake).await.unwrap());
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        assert_eq!(e.ops.count(), 0, "nothing runs before a person approves");
        let waiting = r.awaiting();
        assert_eq!(waiting.len(), 2);
        // The policy routed both calls to a person, and said why.
        let routed = act_audit(&e.orch, &db, &r, "policy.decision").await;
        assert_eq!(routed.len(), 2);
        assert!(routed.iter().all(|x| x["decision"] == "require_approval"
            && x["reason"].as_str().unwrap().contains("0.72 is below 0.85")));
        // They are in the reviewers' queue.
        let queued = e.orch.queue().pending(e.orch.tenant()).await.unwrap();
        assert_eq!(queued.len(), 2);

        // The reviewer page: decide through the queue, resume. One of two: nothing runs yet.
        let maria = ApprovalDecision::approve("maria@northwind-studio.example");
        let first = e.orch.review(waiting[0], &maria).await.unwrap();
        assert!(matches!(first, RunOutcome::Suspended(_)), "{first:?}");
        assert_eq!(e.ops.count(), 0);
        let second = e.orch.review(waiting[1], &maria).await.unwrap();
        assert!(matches!(second, RunOutcome::Completed(_)), "{second:?}");
        assert_eq!(e.ops.count(), 2);
        // Deciding again is refused; nothing runs twice.
        assert!(e.orch.review(waiting[1], &maria).await.is_err());
        match e.orch.process(&intake).await.unwrap() {
            Processed::Duplicate(done) => {
                assert_eq!(done.status, DecisionStatus::Executed);
                assert_eq!(done.executed(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.ops.count(), 2);
        assert_eq!(e.ops.for_reference(reference).len(), 2);
        assert_eq!(e.llm.calls(), 1);
        let calls = act_audit(&e.orch, &db, &r, "tool.call").await;
        assert_eq!(calls.len(), 2, "{calls:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_rejected_decision_runs_nothing() {
    for db in support::databases("seed_003 reject").await {
        let reference = "api:req-8812";
        let e = env(
            &db,
            vec![answer(
                "SALES_INQUIRY",
                0.6,
                vec![
                    assign(reference, "Sales Inquiries"),
                    notify(reference, "SALES"),
                ],
            )],
        );
        let intake = api("req-8812", "Contact: Grace wants to talk");
        let r = decided(e.orch.process(&intake).await.unwrap());
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        let done = e
            .orch
            .review_decision(&r.id, false, "tom@northwind-studio.example", "spam")
            .await
            .unwrap();
        assert_eq!(done.status, DecisionStatus::Rejected, "{done:?}");
        assert!(done.error_message.unwrap().contains("rejected"));
        assert!(
            done.actions
                .iter()
                .all(|a| matches!(a.outcome, ActionOutcome::NotExecuted(_)))
        );
        assert_eq!(e.ops.count(), 0);
        assert!(
            db.state()
                .list_tool_executions(e.orch.tenant(), &r.act_run)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            e.orch
                .queue()
                .pending(e.orch.tenant())
                .await
                .unwrap()
                .is_empty()
        );
        // Deciding it again changes nothing.
        assert!(
            e.orch
                .review_decision(&r.id, true, "maria@northwind-studio.example", "")
                .await
                .is_err()
        );
        assert_eq!(e.ops.count(), 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn low_confidence_is_rejected_by_the_policy_and_nothing_runs() {
    for db in support::databases("seed_003 low confidence").await {
        let reference = "worker:calendar-sync:sync-9:failed:3";
        let e = env(
            &db,
            vec![answer(
                "JOB_FAILURE",
                0.3,
                vec![trigger(reference), notify(reference, "OPERATOR")],
            )],
        );
        let job = json!({"queue": "calendar-sync", "jobId": "sync-9", "status": "failed",
                         "attemptsMade": 3, "failedReason": "quota exceeded"});
        let intake = WorkerIntake::new()
            .normalise(&tenant(), &serde_json::to_vec(&job).unwrap(), now())
            .unwrap();
        let r = decided(e.orch.process(&intake).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Rejected, "{r:?}");
        // The rules were asked (no keyword matched), so the model's decision stood.
        assert_eq!(r.decided_by, DecidedBy::ModelUnsure);
        assert_eq!(r.effective_confidence, 0.3);
        assert_eq!(e.ops.count(), 0);
        assert!(
            e.orch
                .queue()
                .pending(e.orch.tenant())
                .await
                .unwrap()
                .is_empty()
        );
        let denied = act_audit(&e.orch, &db, &r, "policy.decision").await;
        assert_eq!(denied.len(), 2, "{denied:?}");
        assert!(denied.iter().all(|x| x["decision"] == "deny"
            && x["reason"].as_str().unwrap().contains("0.30 is below 0.50")));
        assert!(act_audit(&e.orch, &db, &r, "tool.call").await.is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_rate_limit_refuses_the_61st_action_in_a_minute() {
    for db in support::databases("seed_003 rate limit").await {
        // The policy's clock is pinned inside one minute (then moved to the next).
        let base = Utc.with_ymd_and_hms(2025, 3, 17, 10, 0, 5).unwrap();
        let offset = Arc::new(AtomicI64::new(0));
        let clock_offset = offset.clone();
        let mut script: Vec<ScriptedResponse> = (0..20)
            .map(|i| {
                let r = format!("api:burst-{i}");
                answer(
                    "SUPPORT_REQUEST",
                    0.95,
                    vec![
                        assign(&r, "Support Requests"),
                        notify(&r, "OPERATOR"),
                        trigger(&r),
                    ],
                )
            })
            .collect();
        script.push(answer(
            "SUPPORT_REQUEST",
            0.95,
            vec![notify("api:burst-20", "OPERATOR")],
        ));
        script.push(answer(
            "SUPPORT_REQUEST",
            0.95,
            vec![notify("api:burst-21", "OPERATOR")],
        ));
        let e = env_with(&db, ScriptedModel::new(script), |s| {
            s.policy_clock = Some(Arc::new(move || {
                base + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst))
            }));
        });
        assert_eq!(e.orch.config().max_actions_per_minute, 60);
        for i in 0..20 {
            let r = decided(
                e.orch
                    .process(&api(&format!("burst-{i}"), "help"))
                    .await
                    .unwrap(),
            );
            assert_eq!(r.status, DecisionStatus::Executed, "intake {i}: {r:?}");
        }
        assert_eq!(e.ops.count(), 60);
        // The 61st action in this minute is refused by the policy; nothing runs.
        let r = decided(e.orch.process(&api("burst-20", "help")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Failed, "{r:?}");
        assert!(
            r.error_message
                .as_deref()
                .unwrap()
                .contains("60 actions per minute"),
            "{r:?}"
        );
        assert_eq!(e.ops.count(), 60);
        // The next minute has room again.
        offset.store(60, Ordering::SeqCst);
        let r = decided(e.orch.process(&api("burst-21", "help")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Executed, "{r:?}");
        assert_eq!(e.ops.count(), 61);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_hourly_cap_counts_every_action_type() {
    for db in support::databases("seed_003 hourly cap").await {
        let base = Utc.with_ymd_and_hms(2025, 3, 17, 10, 0, 5).unwrap();
        let offset = Arc::new(AtomicI64::new(0));
        let clock_offset = offset.clone();
        let script: Vec<ScriptedResponse> = ["hour-0", "hour-1", "hour-2"]
            .iter()
            .map(|id| {
                let r = format!("api:{id}");
                answer(
                    "SUPPORT_REQUEST",
                    0.95,
                    vec![
                        assign(&r, "Support Requests"),
                        notify(&r, "OPERATOR"),
                        trigger(&r),
                    ],
                )
            })
            .collect();
        let e = env_with(&db, ScriptedModel::new(script), |s| {
            s.config.max_actions_per_hour = 4;
            s.policy_clock = Some(Arc::new(move || {
                base + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst))
            }));
        });
        let r = decided(e.orch.process(&api("hour-0", "help")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Executed, "{r:?}");
        // Ten minutes later, three actions of three types: only one fits the hour's four.
        offset.store(600, Ordering::SeqCst);
        let r = decided(e.orch.process(&api("hour-1", "help")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Failed, "{r:?}");
        assert!(
            r.error_message
                .as_deref()
                .unwrap()
                .contains("4 actions per hour"),
            "{r:?}"
        );
        assert_eq!(e.ops.count(), 4);
        // The next clock hour has room again.
        offset.store(3600, Ordering::SeqCst);
        let r = decided(e.orch.process(&api("hour-2", "help")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::Executed, "{r:?}");
        assert_eq!(e.ops.count(), 7);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn when_the_model_is_down_the_keyword_rules_decide() {
    for db in support::databases("seed_003 model down").await {
        // Three failures open the breaker; the fourth input does not even try the model.
        let e = env(&db, vec![outage(), outage(), outage()]);
        let urgent = email(
            "down-1@acme.example",
            "URGENT: booking page down",
            "Nobody can book.",
        );
        let r = decided(e.orch.process(&urgent).await.unwrap());
        assert_eq!(r.decided_by, DecidedBy::RulesModelDown);
        assert_eq!(r.intent(), "SUPPORT_REQUEST");
        assert_eq!(r.status, DecisionStatus::Executed, "{r:?}");
        let effects = e.ops.for_reference(urgent.key().as_str());
        assert_eq!(effects.len(), 2);
        assert_eq!(effects[0].output["pipeline"], "Support Requests");
        assert_eq!(effects[0].params["priority"], 5);
        assert_eq!(
            effects[1].output["deliveredTo"].as_array().unwrap().len(),
            2
        );

        let billing = email(
            "down-2@globex.example",
            "Invoice #2291",
            "We were charged twice.",
        );
        let r = decided(e.orch.process(&billing).await.unwrap());
        assert_eq!(
            (r.decided_by, r.intent()),
            (DecidedBy::RulesModelDown, "BILLING_QUESTION")
        );
        assert_eq!(r.status, DecisionStatus::Executed);
        // Nothing the rules know: NO_ACTION, rejected.
        let vague = email("down-3@initech.example", "Hello", "Just saying hi.");
        let r = decided(e.orch.process(&vague).await.unwrap());
        assert_eq!(
            (r.decided_by, r.decision_type.as_str()),
            (DecidedBy::RulesModelDown, "NO_ACTION")
        );
        assert_eq!(r.status, DecisionStatus::Rejected);
        assert_eq!(e.orch.breaker().state(), CircuitState::Open);
        let partner = email(
            "down-4@acme.example",
            "Partnership",
            "Could we become a reseller partner?",
        );
        let r = decided(e.orch.process(&partner).await.unwrap());
        assert_eq!(
            (r.decided_by, r.intent()),
            (DecidedBy::RulesModelDown, "PARTNERSHIP")
        );
        // The rules' own confidence (0.7) still goes through the policy: a person decides.
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        assert_eq!(
            e.llm.calls(),
            3,
            "the open breaker spared the model the fourth call"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn when_the_model_is_unsure_the_rules_propose_and_a_person_decides() {
    for db in support::databases("seed_003 unsure").await {
        let e = env(
            &db,
            vec![
                answer(
                    "GENERAL",
                    0.35,
                    vec![trigger("email:unsure-1@globex.example")],
                ),
                // Confident, but the model itself asks for a person.
                ScriptedResponse::text(
                    Decision {
                        intent: "SALES_INQUIRY".into(),
                        confidence: 0.97,
                        reasoning: "Large deal; a person should confirm.".into(),
                        actions: vec![assign("api:big-1", "Sales Inquiries")],
                        requires_approval: true,
                    }
                    .to_json(),
                ),
            ],
        );
        let mail = email(
            "unsure-1@globex.example",
            "Question",
            "Something about last month's invoice looks odd, maybe?",
        );
        let r = decided(e.orch.process(&mail).await.unwrap());
        assert_eq!(r.decided_by, DecidedBy::RulesModelUnsure);
        assert_eq!(r.intent(), "BILLING_QUESTION");
        assert_eq!(r.model_decision.as_ref().unwrap().confidence, 0.35);
        assert_eq!(r.confidence, 0.9);
        assert_eq!(
            r.effective_confidence, 0.5,
            "capped at the approval threshold"
        );
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        assert_eq!(r.actions.len(), 1);
        assert_eq!(r.actions[0].tool, "notify.send");
        assert_eq!(e.ops.count(), 0);
        let done = e
            .orch
            .review_decision(&r.id, true, "maria@northwind-studio.example", "")
            .await
            .unwrap();
        assert_eq!(done.status, DecisionStatus::Executed);
        let sent = e.ops.for_reference(mail.key().as_str());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].params["to"], "ADMIN");
        assert!(
            e.ops.of("automation.trigger").is_empty(),
            "the unsure model's own action never ran"
        );

        let big = api("big-1", "We want 400 seats");
        let r = decided(e.orch.process(&big).await.unwrap());
        assert_eq!((r.confidence, r.effective_confidence), (0.97, 0.5));
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        assert_eq!(e.ops.count(), 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_thresholds_come_from_the_seeds_environment_variables() {
    let vars: HashMap<&str, &str> = [
        ("AGENT_AUTO_EXECUTE_THRESHOLD", "0.9"),
        ("AGENT_REQUIRE_APPROVAL_THRESHOLD", "0.6"),
    ]
    .into();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    assert_eq!(
        (
            config.auto_execute_threshold,
            config.require_approval_threshold
        ),
        (0.9, 0.6)
    );
    let bad = Config::from_lookup(|k| {
        (k == "AGENT_REQUIRE_APPROVAL_THRESHOLD").then(|| "0.95".to_owned())
    });
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidConfig);
    assert!(Config::from_lookup(|_| Some("high".into())).is_err());
    for db in support::databases("seed_003 thresholds").await {
        let llm = ScriptedModel::new([
            answer(
                "SALES_INQUIRY",
                0.87,
                vec![assign("api:t-1", "Sales Inquiries")],
            ),
            answer(
                "SALES_INQUIRY",
                0.55,
                vec![assign("api:t-2", "Sales Inquiries")],
            ),
        ]);
        let c = config.clone();
        let e = env_with(&db, llm, move |s| s.config = c);
        // 0.87 would run alone under the defaults; here it needs a person.
        let r = decided(e.orch.process(&api("t-1", "pricing")).await.unwrap());
        assert_eq!(r.status, DecisionStatus::RequiresApproval);
        // 0.55 would need a person under the defaults; here it is rejected (and no keyword
        // rule offers another decision).
        let r = decided(
            e.orch
                .process(&api("t-2", "Grace would like a call"))
                .await
                .unwrap(),
        );
        assert_eq!(r.status, DecisionStatus::Rejected);
        assert_eq!(e.ops.count(), 0);
        db.cleanup().await;
    }
}
