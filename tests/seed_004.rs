//! Seed 004 (the enterprise agent framework) acceptance: one test per requirement — blueprints,
//! the HITL queue (priority, SLA, escalation, expiry), tenant tiers and quotas, RBAC with
//! inheritance, audit queries and chain verification, persistence across a restart,
//! resilience (retry, circuit breaker, fallback) and the feedback loop (approved outcomes
//! become golden paths) — each on SQLite and on Postgres, through the scenario the example
//! `seed_004` runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../examples/seed_004/blueprints.rs"]
#[allow(dead_code)]
mod blueprints;
#[path = "../examples/seed_004/governance.rs"]
#[allow(dead_code)]
mod governance;
#[path = "../examples/seed_004/learning.rs"]
#[allow(dead_code)]
mod learning;
#[path = "../examples/seed_004/models.rs"]
#[allow(dead_code)]
mod models;
#[path = "seed_004/raw.rs"]
mod raw;
#[path = "../examples/seed_004/scenario.rs"]
#[allow(dead_code)]
mod scenario;
#[path = "../examples/seed_004/tools.rs"]
#[allow(dead_code)]
mod tools;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use agentkit::ErrorKind;
use agentkit::agent::{RunOutcome, RunReport};
use agentkit::config::ConfigStatus;
use agentkit::id::{AgentId, ApprovalId, RunId, SessionId};
use agentkit::model::LlmProvider;
use agentkit::policy::{PolicyEvaluator, PolicyRequest, Priority};
use agentkit::policy_engine::{PolicyEngine, audit};
use agentkit::resilience::CircuitState;
use agentkit::scope::Scope;
use agentkit::store::{ApprovalDecision, ApprovalStatus, AuditQuery};
use agentkit::testkit::ScriptedResponse;
use serde_json::json;

use blueprints::{ACME, SUPPORT, TINYSHOP, TRIAGE, Tenant};
use scenario::Platform;
use support::Db;
use tools::Effects;

const COOL_DOWN: Duration = Duration::from_secs(30);

async fn platform_with(db: &Db, hosted: Arc<dyn LlmProvider>, cool_down: Duration) -> Platform {
    let vectors = db.vectors(scenario::DIMENSIONS).await.unwrap();
    Platform::new(db.state(), vectors, hosted, cool_down, Effects::new()).unwrap()
}

/// The platform with the hosted LLM down (every answer comes from the rule-based fallback).
async fn platform(db: &Db) -> Platform {
    platform_with(db, models::hosted_down(), COOL_DOWN).await
}

fn finished(outcome: &RunOutcome) -> &RunReport {
    outcome
        .report()
        .unwrap_or_else(|| panic!("expected a finished run: {outcome:?}"))
}

/// Asks the support agent something that needs a person; returns the approval and the run.
async fn ask_for_approval(p: &Platform, session: &str, text: &str) -> (ApprovalId, RunId) {
    let out = p.ask(&ACME, SUPPORT, session, text).await.unwrap();
    assert_eq!(out.approvals().len(), 1, "{out:?}");
    (out.approvals()[0].id.clone(), out.run_id().clone())
}

const REFUND: &str = "Please refund $80 for order 1234, the parcel arrived damaged.";
const CREDIT: &str = "Could you add a goodwill credit of $15 for customer cust-42? Late delivery.";
const CLOSE: &str = "Please close my account cust-77, I'm moving on.";
const LATER: &str = "My parcel for order 998 arrived damaged. Can I get a refund?";

#[tokio::test]
async fn blueprints_instantiate_versioned_configs_per_tenant() {
    for db in support::databases("seed_004 blueprints").await {
        let hosted = Arc::new(
            agentkit::testkit::ScriptedModel::new([
                ScriptedResponse::text("Hello!"),
                ScriptedResponse::text("Hello!"),
            ])
            .with_name(models::HOSTED),
        );
        let p = platform_with(&db, hosted.clone(), COOL_DOWN).await;
        let support = AgentId::new(SUPPORT).unwrap();
        for (tenant, other) in [(ACME, TINYSHOP), (TINYSHOP, ACME)] {
            let configs = p.onboard(&tenant).await.unwrap();
            let agents: BTreeSet<String> = configs.iter().map(|c| c.agent.to_string()).collect();
            assert_eq!(agents, BTreeSet::from([SUPPORT.into(), TRIAGE.into()]));
            for c in &configs {
                assert_eq!((c.version, c.status), (1, ConfigStatus::Final), "{c:?}");
                assert!(c.system_prompt.contains(tenant.name), "{}", c.system_prompt);
                assert!(!c.system_prompt.contains(other.name));
                assert!(!c.system_prompt.contains('{'), "{}", c.system_prompt);
            }
        }
        // A blueprint without the value of a placeholder is refused.
        let bp = blueprints::blueprint("support_agent").unwrap();
        let err = bp
            .instantiate(support.clone(), &HashMap::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(blueprints::blueprint("sales_agent").is_err());

        // Acme publishes version 2; Tiny Shop's agent and Acme's version 1 are untouched.
        let acme = ACME.tenant_id().unwrap();
        let tiny = TINYSHOP.tenant_id().unwrap();
        let v2 = blueprints::publish_edit(&*p.state, &acme, &support, |c| {
            c.system_prompt.push_str(" Sign as The Acme Care Team.");
        })
        .await
        .unwrap();
        assert_eq!((v2.version, v2.status), (2, ConfigStatus::Final));
        let versions = |t| p.state.list_agent_config_versions(t, &support);
        assert_eq!(versions(&acme).await.unwrap(), [1, 2]);
        assert_eq!(versions(&tiny).await.unwrap(), [1]);
        let v1 = p
            .state
            .get_agent_config(&acme, &support, Some(1))
            .await
            .unwrap()
            .unwrap();
        assert!(!v1.system_prompt.contains("Care Team"));
        let mut rewrite = v1.clone();
        rewrite.system_prompt = "rewritten".into();
        let err = p.state.put_agent_config(&acme, &rewrite).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "a final version is immutable: {err}"
        );
        // Onboarding again keeps what is in force.
        let again = p.onboard(&ACME).await.unwrap();
        assert!(again.iter().any(|c| c.agent == support && c.version == 2));
        assert_eq!(versions(&acme).await.unwrap(), [1, 2]);

        // Each tenant's agent runs its own latest config.
        for (tenant, must, must_not) in [
            (ACME, "Care Team", "Tiny Shop"),
            (TINYSHOP, "Tiny Shop", "Care Team"),
        ] {
            let before = hosted.requests().len();
            let out = p
                .ask(&tenant, SUPPORT, "hello", "Hello there")
                .await
                .unwrap();
            assert_eq!(finished(&out).reply, "Hello!");
            let prompt = hosted.requests()[before].messages[0].text().to_string();
            assert!(
                prompt.contains(must) && !prompt.contains(must_not),
                "{prompt}"
            );
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn hitl_queue_orders_by_priority_escalates_and_expires_exactly_once() {
    for db in support::databases("seed_004 hitl queue").await {
        let p = platform(&db).await;
        p.onboard(&ACME).await.unwrap();
        let acme = ACME.tenant_id().unwrap();
        let (credit, credit_run) = ask_for_approval(&p, "credit", CREDIT).await;
        let (refund, refund_run) = ask_for_approval(&p, "refund", REFUND).await;
        let (close, close_run) = ask_for_approval(&p, "close", CLOSE).await;

        // Highest priority first; one request per reviewer (least loaded first).
        let items = p.queue.pending(&acme).await.unwrap();
        let ids: Vec<_> = items.iter().map(|i| i.request.id.clone()).collect();
        assert_eq!(ids, [close.clone(), refund.clone(), credit.clone()]);
        let priorities: Vec<_> = items.iter().map(|i| i.priority).collect();
        assert_eq!(
            priorities,
            [Priority::Critical, Priority::High, Priority::Low]
        );
        let mut assignees: Vec<_> = items.iter().map(|i| i.assignee.clone().unwrap()).collect();
        assignees.sort();
        assert_eq!(assignees, ["ann", "bob", "lena"]);
        assert!(items.iter().all(|i| !i.breached && i.escalation_level == 0));
        p.queue.set_available("ann", false).unwrap();
        let items = p.queue.pending(&acme).await.unwrap();
        assert!(items.iter().all(|i| i.assignee.as_deref() != Some("ann")));
        p.queue.set_available("ann", true).unwrap();

        // 20 minutes: only the critical request (15-minute SLA) is breached.
        p.clock.advance(Duration::from_secs(20 * 60));
        let breached: Vec<_> = p.queue.breached(&acme).await.unwrap();
        assert_eq!(breached.len(), 1);
        assert_eq!(breached[0].request.id, close);

        // 40 minutes: the first escalation raises everything to at least high.
        p.clock.advance(Duration::from_secs(20 * 60));
        let items = p.queue.pending(&acme).await.unwrap();
        let credit_item = items.iter().find(|i| i.request.id == credit).unwrap();
        assert_eq!(
            (credit_item.priority, credit_item.escalation_level),
            (Priority::High, 1)
        );
        assert_eq!(
            credit_item.request.priority,
            Priority::Low,
            "stored as asked"
        );

        // 2 h 10 min: the second escalation routes everything to the team lead.
        p.clock.advance(Duration::from_secs(90 * 60));
        let items = p.queue.pending(&acme).await.unwrap();
        for item in &items {
            assert_eq!(item.escalation_level, 2);
            assert_eq!(item.required_role.as_deref(), Some("team_lead"));
            assert_eq!(item.assignee.as_deref(), Some("lena"));
        }
        let breached: BTreeSet<_> = p
            .queue
            .breached(&acme)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.request.id)
            .collect();
        assert_eq!(breached, BTreeSet::from([close.clone(), refund.clone()]));
        let err = p
            .desk
            .decide(&acme, &refund, &ApprovalDecision::approve("bob"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
        p.desk
            .decide(&acme, &close, &ApprovalDecision::approve("lena"))
            .await
            .unwrap();
        let err = p
            .desk
            .decide(
                &acme,
                &close,
                &ApprovalDecision::reject("lena", "changed my mind"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "decided once: {err}");
        let out = p.resume(&ACME, SUPPORT, &close_run).await.unwrap();
        assert_eq!(finished(&out).reply, "Your account has been closed.");
        assert_eq!(
            p.effects.of(ACME.id, "account.close"),
            [json!({"customer": "cust-77"})]
        );

        // 8 h 10 min: expiry rejects the rest, exactly once even when run twice at once.
        p.clock.advance(Duration::from_secs(6 * 3600));
        let (a, b) = tokio::join!(p.queue.expire_overdue(&acme), p.queue.expire_overdue(&acme));
        let expired: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        let ids: BTreeSet<_> = expired.iter().map(|r| r.id.clone()).collect();
        assert_eq!(expired.len(), 2, "{expired:?}");
        assert_eq!(ids, BTreeSet::from([refund.clone(), credit.clone()]));
        for r in &expired {
            assert_eq!(r.status, ApprovalStatus::Rejected);
            assert!(r.decided_automatically);
            assert_eq!(r.reviewer.as_deref(), Some("expiry"));
        }
        assert!(p.queue.expire_overdue(&acme).await.unwrap().is_empty());
        assert!(p.queue.pending(&acme).await.unwrap().is_empty());
        let late = p
            .desk
            .decide(&acme, &refund, &ApprovalDecision::approve("lena"))
            .await
            .unwrap_err();
        assert_eq!(late.kind(), ErrorKind::Conflict, "{late}");
        for run in [&refund_run, &credit_run] {
            let out = p.resume(&ACME, SUPPORT, run).await.unwrap();
            let reply = &finished(&out).reply;
            assert!(reply.starts_with("We could not do that for you"), "{reply}");
        }
        assert!(p.effects.of(ACME.id, "billing.refund").is_empty());
        assert!(p.effects.of(ACME.id, "billing.goodwill_credit").is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn free_tier_hits_its_quota_while_professional_continues() {
    for db in support::databases("seed_004 quotas").await {
        let p = platform(&db).await;
        for tenant in [ACME, TINYSHOP] {
            p.onboard(&tenant).await.unwrap();
        }
        let route = |tenant: Tenant, n: usize| {
            let p = &p;
            async move {
                let out = p
                    .triage(&tenant, &format!("T-{n}"), "My payment failed")
                    .await
                    .unwrap();
                let call = finished(&out).tool_calls[0].clone();
                assert_eq!(call.call.name, "tickets.route");
                call
            }
        };
        for n in 1..=3 {
            assert!(!route(TINYSHOP, n).await.is_error);
        }
        let refused = route(TINYSHOP, 4).await;
        assert!(refused.is_error);
        assert!(
            refused
                .result
                .contains("daily quota of 3 tool calls (tier free)"),
            "{}",
            refused.result
        );
        for n in 1..=5 {
            let call = route(ACME, n).await;
            assert!(!call.is_error, "professional continues: {}", call.result);
        }
        assert_eq!(p.effects.of(TINYSHOP.id, "tickets.route").len(), 3);
        assert_eq!(p.effects.of(ACME.id, "tickets.route").len(), 5);
        let denials = p
            .state
            .list_audit(
                &TINYSHOP.tenant_id().unwrap(),
                &AuditQuery::all().kind("policy.decision"),
            )
            .await
            .unwrap();
        assert!(
            denials
                .iter()
                .any(|e| e.entry.decision.as_deref() == Some("deny")
                    && e.entry
                        .reason
                        .as_deref()
                        .unwrap_or("")
                        .contains("tier free")),
            "{denials:?}"
        );
        db.cleanup().await;
    }
}

fn check(agent: &str, action: &str) -> PolicyRequest {
    let scope = Scope::new(
        ACME.tenant_id().unwrap(),
        AgentId::new(agent).unwrap(),
        SessionId::new("permission-check").unwrap(),
        RunId::generate(),
    );
    PolicyRequest::new(scope, action, json!({}))
}

#[tokio::test]
async fn roles_inherit_their_parents_permissions_and_no_more() {
    for db in support::databases("seed_004 rbac").await {
        let p = platform(&db).await;
        let table = [
            (TRIAGE, "tickets.reply", "allow"),
            (TRIAGE, "tickets.escalate_to_human", "allow"),
            (TRIAGE, "tickets.route", "allow"),
            (TRIAGE, "billing.refund", "deny"),
            (TRIAGE, "billing.goodwill_credit", "deny"),
            (TRIAGE, "account.close", "deny"),
            (SUPPORT, "tickets.reply", "allow"),
            (SUPPORT, "tickets.escalate_to_human", "allow"),
            (SUPPORT, "tickets.route", "deny"),
            (SUPPORT, "billing.refund", "require_approval"),
            (SUPPORT, "account.close", "require_approval"),
            (SUPPORT, "crm.export_all", "deny"),
            ("intruder", "tickets.reply", "deny"),
        ];
        for (agent, action, expected) in table {
            let explained = p.policy.explain(&check(agent, action)).await.unwrap();
            assert_eq!(
                explained.decision.label(),
                expected,
                "{agent} {action}: {:?}",
                explained.trace
            );
        }
        // The inherited permission says where it came from.
        let explained = p
            .policy
            .explain(&check(TRIAGE, "tickets.escalate_to_human"))
            .await
            .unwrap();
        assert!(
            explained
                .trace
                .iter()
                .any(|t| t.source.contains("role responder")),
            "{:?}",
            explained.trace
        );
        // Enforced decisions are audited in the tenant's trail.
        let denied = p
            .policy
            .evaluate(&check(TRIAGE, "billing.refund"))
            .await
            .unwrap();
        assert_eq!(denied.label(), "deny");
        let audited = p
            .state
            .list_audit(
                &ACME.tenant_id().unwrap(),
                &AuditQuery::all().kind("policy.evaluation"),
            )
            .await
            .unwrap();
        assert_eq!(audited.len(), 1, "{audited:?}");
        assert_eq!(audited[0].entry.action, "billing.refund");
        assert_eq!(audited[0].entry.decision.as_deref(), Some("deny"));

        // Bad inheritance is refused with the path of the problem.
        let counters = db.state();
        for (doc, needle) in [
            (
                "[roles.a]\ninherits = [\"ghost\"]\n[agents.x]\nroles = [\"a\"]\n",
                "unknown role `ghost`",
            ),
            (
                "[roles.a]\ninherits = [\"b\"]\n[roles.b]\ninherits = [\"a\"]\n\
                 [agents.x]\nroles = [\"a\"]\n",
                "inheritance cycle",
            ),
        ] {
            let err = PolicyEngine::from_toml(doc, counters.clone()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains(needle), "{err}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn audit_queries_filter_by_tenant_kind_agent_and_time_and_the_chain_verifies() {
    for db in support::databases("seed_004 audit").await {
        let p = platform(&db).await;
        for tenant in [ACME, TINYSHOP] {
            p.onboard(&tenant).await.unwrap();
        }
        let acme = ACME.tenant_id().unwrap();
        let tiny = TINYSHOP.tenant_id().unwrap();
        let start = chrono::Utc::now();
        finished(
            &p.triage(&TINYSHOP, "T-1", "I was charged twice")
                .await
                .unwrap(),
        );
        let (refund, refund_run) = ask_for_approval(&p, "refund", REFUND).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let middle = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.desk
            .decide(&acme, &refund, &ApprovalDecision::approve("ann"))
            .await
            .unwrap();
        finished(&p.resume(&ACME, SUPPORT, &refund_run).await.unwrap());
        let end = chrono::Utc::now() + chrono::Duration::seconds(1);
        let list = |t, q| {
            let p = &p;
            async move { p.state.list_audit(t, &q).await.unwrap() }
        };

        // By kind, per tenant.
        let decided = list(&acme, AuditQuery::all().kind("approval.decided")).await;
        assert_eq!(decided.len(), 1, "{decided:?}");
        let d = &decided[0].entry;
        assert_eq!(
            (d.actor.as_str(), d.action.as_str(), d.decision.as_deref()),
            ("user:ann", "billing.refund", Some("approved"))
        );
        assert!(
            list(&tiny, AuditQuery::all().kind("approval.decided"))
                .await
                .is_empty()
        );
        let routed = list(&tiny, AuditQuery::all().kind("tool.call")).await;
        assert_eq!(routed.len(), 1, "{routed:?}");
        assert_eq!(routed[0].entry.action, "tickets.route");
        let refunds = list(&acme, AuditQuery::all().kind("tool.call")).await;
        assert!(
            refunds.iter().all(|e| e.entry.action == "billing.refund"),
            "{refunds:?}"
        );
        assert!(!refunds.is_empty());

        // By agent.
        assert!(
            list(
                &acme,
                AuditQuery::all().agent(AgentId::new(TRIAGE).unwrap())
            )
            .await
            .is_empty()
        );
        let by_support = list(
            &acme,
            AuditQuery::all().agent(AgentId::new(SUPPORT).unwrap()),
        )
        .await;
        assert!(
            by_support
                .iter()
                .all(|e| e.entry.agent.as_ref().map(AgentId::as_str) == Some(SUPPORT))
        );

        // By time: the two halves partition the trail; the decision is in the second.
        let all = list(&acme, AuditQuery::all()).await;
        let first = list(&acme, AuditQuery::all().between(start, middle)).await;
        let second = list(&acme, AuditQuery::all().between(middle, end)).await;
        assert!(!first.is_empty() && !second.is_empty());
        assert_eq!(first.len() + second.len(), all.len());
        assert!(first.iter().all(|e| e.entry.kind != "approval.decided"));
        assert!(second.iter().any(|e| e.entry.kind == "approval.decided"));

        // The chain verifies; an export verifies, and an edited export does not.
        for t in [&acme, &tiny] {
            let report = audit::verify(&*p.state, t).await.unwrap();
            assert!(report.is_intact(), "{report:?}");
            assert_eq!(report.entries, list(t, AuditQuery::all()).await.len());
        }
        let mut export = Vec::new();
        let n = audit::export_jsonl(&*p.state, &acme, &AuditQuery::all(), &mut export)
            .await
            .unwrap();
        assert_eq!(n, all.len());
        assert!(audit::verify_jsonl(export.as_slice()).unwrap().is_intact());
        let text = String::from_utf8(export).unwrap();
        assert!(text.contains("\"decision\":\"approved\""));
        let forged = text.replacen("\"decision\":\"approved\"", "\"decision\":\"rejected\"", 1);
        let report = audit::verify_jsonl(forged.as_bytes()).unwrap();
        assert_eq!(report.first_bad, Some(decided[0].seq), "{report:?}");

        // The database itself refuses to rewrite history.
        let refused = raw::rewrite_audit(&db).await.unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn suspended_work_quotas_and_configs_survive_a_restart() {
    for db in support::databases("seed_004 persistence").await {
        let effects = Effects::new();
        let (refund, refund_run) = {
            let vectors = db.vectors(scenario::DIMENSIONS).await.unwrap();
            let before = Platform::new(
                db.state(),
                vectors,
                models::hosted_down(),
                COOL_DOWN,
                effects.clone(),
            )
            .unwrap();
            for tenant in [ACME, TINYSHOP] {
                before.onboard(&tenant).await.unwrap();
            }
            for n in 1..=3 {
                finished(
                    &before
                        .triage(&TINYSHOP, &format!("T-{n}"), "Hi")
                        .await
                        .unwrap(),
                );
            }
            ask_for_approval(&before, "refund", REFUND).await
        };

        // A new process: new connections, a new platform; nothing carried over in memory.
        let reopened = db.reopen().await.unwrap();
        let vectors = reopened.vectors(scenario::DIMENSIONS).await.unwrap();
        let after = Platform::new(
            reopened.state(),
            vectors,
            models::hosted_down(),
            COOL_DOWN,
            effects.clone(),
        )
        .unwrap();
        let acme = ACME.tenant_id().unwrap();
        let support = AgentId::new(SUPPORT).unwrap();
        assert_eq!(
            after
                .state
                .list_agent_config_versions(&acme, &support)
                .await
                .unwrap(),
            [1]
        );
        let pending = after.queue.pending(&acme).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].request.id, refund);
        assert_eq!(pending[0].priority, Priority::High);
        let out = after.triage(&TINYSHOP, "T-4", "Hi").await.unwrap();
        let call = &finished(&out).tool_calls[0];
        assert!(
            call.is_error && call.result.contains("daily quota"),
            "{}",
            call.result
        );

        let edited = json!({"order": "1234", "amount_usd": "60.00"});
        after
            .desk
            .decide(
                &acme,
                &refund,
                &ApprovalDecision::approve_with_arguments("ann", edited.clone()),
            )
            .await
            .unwrap();
        let out = after.resume(&ACME, SUPPORT, &refund_run).await.unwrap();
        assert_eq!(finished(&out).reply, "Your refund has been issued.");
        let again = after.resume(&ACME, SUPPORT, &refund_run).await.unwrap();
        assert!(
            matches!(again, RunOutcome::AlreadyResumed { .. }),
            "{again:?}"
        );
        assert_eq!(effects.of(ACME.id, "billing.refund"), [edited]);
        raw::close(reopened).await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_failing_primary_model_falls_back_and_opens_the_circuit() {
    for db in support::databases("seed_004 resilience").await {
        let hosted = models::hosted_flaky(3);
        let p = platform_with(&db, hosted.clone(), Duration::from_secs(2)).await;
        p.onboard(&ACME).await.unwrap();

        // Three attempts (retries) fail and open the circuit; the fallback answers.
        let out = p.triage(&ACME, "T-1", "I was charged twice").await.unwrap();
        let r = finished(&out);
        assert!(r.answered_by.starts_with("rules/"), "{}", r.answered_by);
        assert!(!r.tool_calls[0].is_error, "{:?}", r.tool_calls);
        assert_eq!(hosted.calls(), models::ATTEMPTS);
        assert_eq!(p.breaker.state(), CircuitState::Open);

        // While open, the hosted model is not called at all.
        let out = p
            .triage(&ACME, "T-2", "Where is my invoice?")
            .await
            .unwrap();
        assert!(finished(&out).answered_by.starts_with("rules/"));
        assert_eq!(hosted.calls(), models::ATTEMPTS);

        // After the cool-down one trial call goes through; its success closes the circuit.
        let waited = std::time::Instant::now();
        while p.breaker.state() == CircuitState::Open {
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the breaker stays open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(p.breaker.state(), CircuitState::HalfOpen);
        hosted.push(ScriptedResponse::text("Routed by the hosted model."));
        let out = p.triage(&ACME, "T-3", "Hello").await.unwrap();
        let r = finished(&out);
        assert_eq!(r.reply, "Routed by the hosted model.");
        assert!(
            r.answered_by.starts_with("hosted-llm/"),
            "{}",
            r.answered_by
        );
        assert_eq!(p.breaker.state(), CircuitState::Closed);
        assert_eq!(hosted.calls(), models::ATTEMPTS + 1);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn approved_outcomes_become_golden_paths_for_the_same_tenant_only() {
    for db in support::databases("seed_004 feedback loop").await {
        let p = platform(&db).await;
        for tenant in [ACME, TINYSHOP] {
            p.onboard(&tenant).await.unwrap();
        }
        let acme = ACME.tenant_id().unwrap();
        let support = AgentId::new(SUPPORT).unwrap();

        // A rejection teaches nothing; an edited approval is learned.
        let (credit, _) = ask_for_approval(&p, "credit", CREDIT).await;
        let rejected = p
            .desk
            .decide(
                &acme,
                &credit,
                &ApprovalDecision::reject("bob", "not for late deliveries"),
            )
            .await
            .unwrap();
        assert!(rejected.learned.is_none());
        let (refund, refund_run) = ask_for_approval(&p, "refund", REFUND).await;
        let mut edit = ApprovalDecision::approve_with_arguments(
            "ann",
            json!({"order": "1234", "amount_usd": "60.00"}),
        );
        edit.comment = Some("Partial refund: the customer keeps the item.".into());
        let decided = p.desk.decide(&acme, &refund, &edit).await.unwrap();
        let path = decided.learned.expect("an approval is learned");
        assert_eq!(path.request, REFUND);
        assert_eq!(path.outcome, "edited");
        assert!(path.action.starts_with("billing.refund") && path.action.contains("60.00"));
        finished(&p.resume(&ACME, SUPPORT, &refund_run).await.unwrap());

        // A later similar request retrieves it: the agent's answer carries it as a source.
        let out = p.ask(&ACME, SUPPORT, "later", LATER).await.unwrap();
        let r = finished(&out);
        let golden: Vec<_> = r
            .sources
            .iter()
            .filter(|s| s.source.document_id == "golden-paths")
            .collect();
        assert_eq!(golden.len(), 1, "{:?}", r.sources);
        assert!(
            golden[0]
                .text
                .starts_with("Approved example (edited by ann)")
        );
        assert!(
            golden[0].text.contains("\"amount_usd\":\"60.00\""),
            "{}",
            golden[0].text
        );
        assert!(golden[0].text.contains("keeps the item"));
        assert!(
            r.sources
                .iter()
                .any(|s| s.source.document_id == "returns.md")
        );
        let similar = p.golden.similar(&acme, &support, LATER, 5).await.unwrap();
        assert_eq!(similar.len(), 1);
        assert_eq!(similar[0].0, path);

        // An unrelated question does not pull it in.
        let out = p
            .ask(&ACME, SUPPORT, "password", "How do I reset my password?")
            .await
            .unwrap();
        assert!(
            finished(&out)
                .sources
                .iter()
                .all(|s| s.source.document_id != "golden-paths")
        );

        // Another tenant never sees it, though its own knowledge is found.
        let out = p.ask(&TINYSHOP, SUPPORT, "later", LATER).await.unwrap();
        let r = finished(&out);
        assert!(
            r.sources
                .iter()
                .any(|s| s.source.document_id == "returns.md")
        );
        assert!(
            r.sources
                .iter()
                .all(|s| s.source.document_id != "golden-paths")
        );
        let tiny = TINYSHOP.tenant_id().unwrap();
        assert!(
            p.golden
                .similar(&tiny, &support, LATER, 5)
                .await
                .unwrap()
                .is_empty()
        );
        db.cleanup().await;
    }
}
