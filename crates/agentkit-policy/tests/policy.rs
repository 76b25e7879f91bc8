//! Decision tables for every constraint and the combination order, log-only mode, explain,
//! load errors, and the budget race.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::policy::{
    ActionOutcome, CallCounters, Decision, PolicyEvaluator, PolicyRequest,
};
use agentkit_core::store::{AuditQuery, AuditStore, CounterStore, InMemoryStore};
use agentkit_policy::config::Mode;
use agentkit_policy::{PolicyEngine, parse_json};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

const POLICY: &str = r#"
timezone = "UTC"

[tenants.acme]
timezone = "America/New_York"

[roles.reader]
permissions = [{ action = "crm.read_*" }, { action = "budget.get_balance" }]

[roles.marketer]
inherits = ["reader"]
permissions = [
  { action = "marketing.create_campaign", constraints = [
      { type = "argument", pointer = "/budget", op = "le", value = 50 },
      { type = "budget", period = "day", limit_usd = 50.0, cost = { argument = "/budget" } },
      { type = "tenant_scope", fields = ["/tenant_id"] },
  ] },
  { action = "marketing.send_email", constraints = [
      { type = "rate_limit", max = 2, per = "minute" },
  ] },
  { action = "ops.deploy", constraints = [
      { type = "time_window", days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "17:00" },
  ] },
  { action = "sched.*", constraints = [
      { type = "confidence", execute_at = 0.85, approve_at = 0.5 },
      { type = "max_calls_per_turn", max = 3 },
      { type = "repeated_calls", max_identical = 1 },
  ] },
  { action = "crm.delete_lead", constraints = [{ type = "require_approval", reason = "deletions need a human", priority = "high" }] },
]

[agents.marketing]
roles = ["marketer"]

[[rules]]
action = "marketing.*"
effect = "require_approval"
reason = "large campaigns need approval"
when = [{ pointer = "/budget", op = "gt", value = 40 }]

[[rules]]
action = "crm.read_secrets"
effect = "deny"
reason = "never"
"#;

fn req(action: &str, args: Value) -> PolicyRequest {
    PolicyRequest::new(
        agentkit_core::testkit::scope("acme", "marketing", "s1", "r1"),
        action,
        args,
    )
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn engine_at(now: DateTime<Utc>) -> (PolicyEngine, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let e = PolicyEngine::from_toml(POLICY, store.clone())
        .unwrap()
        .with_clock(Arc::new(move || now));
    (e, store)
}

async fn label(e: &PolicyEngine, r: &PolicyRequest) -> &'static str {
    e.evaluate(r).await.unwrap().label()
}

// Wednesday 2026-11-18 15:00 UTC = 10:00 in New York.
fn wednesday_morning() -> DateTime<Utc> {
    at(2026, 11, 18, 15, 0)
}

#[tokio::test]
async fn permissions_roles_inheritance_and_default_deny() {
    let (e, _) = engine_at(wednesday_morning());
    assert_eq!(
        label(&e, &req("crm.read_lead", json!({}))).await,
        "allow",
        "inherited from reader"
    );
    assert_eq!(
        label(&e, &req("budget.get_balance", json!({}))).await,
        "allow"
    );
    assert_eq!(
        label(&e, &req("crm.write_lead", json!({}))).await,
        "deny",
        "default deny"
    );
    let mut other = req("crm.read_lead", json!({}));
    other.scope.agent = agentkit_core::id::AgentId::from_static("intruder");
    assert_eq!(label(&e, &other).await, "deny", "unknown agent");
    assert_eq!(
        label(&e, &req("crm.read_secrets", json!({}))).await,
        "deny",
        "a deny rule beats an allow"
    );
}

#[tokio::test]
async fn argument_tenant_scope_and_combination_order() {
    let (e, _) = engine_at(wednesday_morning());
    let ok = json!({"name": "Chips", "budget": 20});
    assert_eq!(
        label(&e, &req("marketing.create_campaign", ok)).await,
        "allow"
    );
    // Argument constraint fails: deny, even though a rule would also ask for approval.
    let too_big = json!({"name": "Chips", "budget": 80});
    let d = e
        .evaluate(&req("marketing.create_campaign", too_big))
        .await
        .unwrap();
    assert_eq!(d.label(), "deny", "Deny > RequireApproval");
    assert!(d.reason().unwrap().contains("/budget <= 50"), "{d:?}");
    // Rule asks for approval on budget > 40; the permission allows: RequireApproval > Allow.
    let medium = json!({"name": "Chips", "budget": 45});
    assert_eq!(
        label(&e, &req("marketing.create_campaign", medium.clone())).await,
        "require_approval"
    );
    // Approved by a human: allowed.
    // Approved by a human: allowed (a fresh day's budget: the $20 above plus $45 would not fit).
    let (fresh, _) = engine_at(wednesday_morning());
    let mut approved = req("marketing.create_campaign", medium);
    approved.approved_by_human = true;
    assert_eq!(label(&fresh, &approved).await, "allow");
    // Another tenant's resource.
    let cross = json!({"name": "Chips", "budget": 5, "tenant_id": "globex"});
    let d = e
        .evaluate(&req("marketing.create_campaign", cross))
        .await
        .unwrap();
    assert!(d.reason().unwrap().contains("another tenant"));
    let same = json!({"name": "Chips", "budget": 5, "tenant_id": "acme"});
    assert_eq!(
        label(&e, &req("marketing.create_campaign", same)).await,
        "allow"
    );
    // Missing cost argument.
    assert_eq!(
        label(&e, &req("marketing.create_campaign", json!({"name": "x"}))).await,
        "deny"
    );
}

#[tokio::test]
async fn budgets_reserve_release_and_reset_at_the_tenants_midnight() {
    // 2026-11-19 04:30 UTC is 23:30 on the 18th in New York.
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(std::sync::Mutex::new(at(2026, 11, 19, 4, 30)));
    let c = clock.clone();
    let e = PolicyEngine::from_toml(POLICY, store.clone())
        .unwrap()
        .with_clock(Arc::new(move || *c.lock().unwrap()));
    let spend = |b: u32| {
        req(
            "marketing.create_campaign",
            json!({"name": "x", "budget": b, "n": rand_id()}),
        )
    };
    assert_eq!(label(&e, &spend(30)).await, "allow");
    assert_eq!(label(&e, &spend(20)).await, "allow");
    let over = spend(1);
    let d = e.evaluate(&over).await.unwrap();
    assert_eq!(d.label(), "deny");
    assert!(
        d.reason()
            .unwrap()
            .contains("daily budget of $50.00 exhausted"),
        "{d:?}"
    );
    // A failed action releases its reservation.
    let failing = spend(0);
    e.evaluate(&failing).await.unwrap();
    let r10 = req(
        "marketing.create_campaign",
        json!({"name": "y", "budget": 10}),
    );
    let before = store
        .counter_get(
            &agentkit_core::id::TenantId::from_static("acme"),
            "budget:agent:marketing:2026-11-18",
        )
        .await
        .unwrap();
    assert_eq!(before, 50_000_000_000);
    *clock.lock().unwrap() = at(2026, 11, 19, 5, 30); // 00:30 on the 19th in New York: a new day.
    assert_eq!(label(&e, &r10).await, "allow");
    e.record_outcome(&r10, &ActionOutcome::Failed)
        .await
        .unwrap();
    let today = || async {
        store
            .counter_get(
                &agentkit_core::id::TenantId::from_static("acme"),
                "budget:agent:marketing:2026-11-19",
            )
            .await
            .unwrap()
    };
    assert_eq!(
        today().await,
        10_000_000_000,
        "a failure may come after the effect: the $10 stays spent"
    );
    assert_eq!(label(&e, &r10).await, "allow");
    e.record_outcome(&r10, &ActionOutcome::NotRun)
        .await
        .unwrap();
    assert_eq!(
        today().await,
        10_000_000_000,
        "an action that did not run releases its own $10"
    );
}

/// Two identical calls in one turn keep separate reservations: the first one, refused by the
/// remote system before it did anything, releases only its own; a timeout after the effect
/// releases nothing.
#[tokio::test]
async fn reservations_are_per_call_and_released_only_when_nothing_was_done() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use agentkit_core::prelude::*;
    use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};

    let store = Arc::new(InMemoryStore::new());
    let engine = PolicyEngine::from_toml(POLICY, store.clone())
        .unwrap()
        .with_clock(Arc::new(|| at(2026, 11, 19, 15, 0)));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let tool = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign",
            "Creates a campaign",
            json!({"type": "object"}),
        ),
        move |_ctx, _args| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(Error::NotExecuted(
                        "the ad platform refused the request".into(),
                    ))
                } else {
                    Ok(json!({"campaign": "cmp_1"}))
                }
            }
        },
    );
    let args = json!({"name": "Chips", "budget": 10, "tenant_id": "acme"});
    let model = ScriptedModel::new([
        ScriptedResponse::tool_calls([
            ToolCall::new("c1", "marketing.create_campaign", args.clone()),
            ToolCall::new("c2", "marketing.create_campaign", args.clone()),
        ]),
        ScriptedResponse::text("one campaign created"),
    ]);
    let store_dyn: Arc<dyn StateStore> = store.clone();
    let agent = Agent::builder()
        .id("marketing")
        .model(Arc::new(model), "m")
        .tool(Arc::new(tool))
        .store(store_dyn)
        .policy(Arc::new(engine))
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "two campaigns"))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let spent = store
        .counter_get(
            &agentkit_core::id::TenantId::from_static("acme"),
            "budget:agent:marketing:2026-11-19",
        )
        .await
        .unwrap();
    assert_eq!(
        spent, 10_000_000_000,
        "the call that ran keeps its $10; the refused one released only its own"
    );
}

fn rand_id() -> String {
    agentkit_core::id::RunId::generate().to_string()
}

#[tokio::test]
async fn rate_limits_per_minute() {
    let (e, _) = engine_at(wednesday_morning());
    let mail = || req("marketing.send_email", json!({"to": rand_id()}));
    assert_eq!(label(&e, &mail()).await, "allow");
    assert_eq!(label(&e, &mail()).await, "allow");
    let d = e.evaluate(&mail()).await.unwrap();
    assert!(
        d.reason().unwrap().contains("rate limit of 2 per minute"),
        "{d:?}"
    );
    let (later, _) = engine_at(wednesday_morning() + chrono::Duration::minutes(1));
    // A fresh store and the next minute: allowed again (window keys differ).
    assert_eq!(label(&later, &mail()).await, "allow");
}

#[tokio::test]
async fn time_windows_in_the_tenants_timezone() {
    let (e, _) = engine_at(wednesday_morning());
    assert_eq!(label(&e, &req("ops.deploy", json!({}))).await, "allow");
    // 23:00 UTC on Wednesday = 18:00 in New York: closed.
    let (late, _) = engine_at(at(2026, 11, 18, 23, 0));
    let d = late.evaluate(&req("ops.deploy", json!({}))).await.unwrap();
    assert!(d.reason().unwrap().contains("time window"), "{d:?}");
    // Saturday morning: closed.
    let (weekend, _) = engine_at(at(2026, 11, 21, 15, 0));
    assert_eq!(label(&weekend, &req("ops.deploy", json!({}))).await, "deny");
}

#[tokio::test]
async fn confidence_thresholds_calls_per_turn_and_repeats() {
    let (e, _) = engine_at(wednesday_morning());
    let with = |c: Option<f64>, counters: CallCounters| {
        let mut r = req("sched.create_event", json!({}));
        r.confidence = c;
        r.counters = counters;
        r
    };
    let one = CallCounters {
        calls_this_turn: 1,
        calls_this_run: 1,
        identical_calls_this_run: 0,
    };
    assert_eq!(label(&e, &with(Some(0.9), one)).await, "allow");
    assert_eq!(label(&e, &with(Some(0.85), one)).await, "allow");
    assert_eq!(label(&e, &with(Some(0.7), one)).await, "require_approval");
    assert_eq!(label(&e, &with(Some(0.3), one)).await, "deny");
    assert_eq!(label(&e, &with(None, one)).await, "require_approval");
    let busy = CallCounters {
        calls_this_turn: 4,
        ..one
    };
    assert_eq!(label(&e, &with(Some(0.9), busy)).await, "deny");
    let repeated = CallCounters {
        identical_calls_this_run: 2,
        ..one
    };
    assert_eq!(label(&e, &with(Some(0.9), repeated)).await, "deny");
    let d = e
        .evaluate(&req("crm.delete_lead", json!({})))
        .await
        .unwrap();
    assert_eq!(
        d,
        Decision::RequireApproval {
            reason: "deletions need a human".into(),
            priority: agentkit_core::policy::Priority::High
        }
    );
}

#[tokio::test]
async fn log_only_mode_allows_and_records_what_it_would_have_decided() {
    let store = Arc::new(InMemoryStore::new());
    let doc = POLICY.replacen(
        "timezone = \"UTC\"",
        "timezone = \"UTC\"\nmode = \"log_only\"",
        1,
    );
    let e = PolicyEngine::from_toml(&doc, store.clone())
        .unwrap()
        .with_audit(store.clone());
    assert_eq!(e.mode(), Mode::LogOnly);
    let r = req("crm.write_lead", json!({}));
    let ex = e.evaluate_explained(&r).await.unwrap();
    assert_eq!(ex.decision, Decision::Allow);
    assert_eq!(ex.would_decide.label(), "deny");
    let audit = store
        .list_audit(
            &agentkit_core::id::TenantId::from_static("acme"),
            &AuditQuery::all().kind("policy.evaluation"),
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.output["would_decide"], "deny");
    assert_eq!(audit[0].entry.output["mode"], "log_only");
}

#[tokio::test]
async fn explain_names_the_rules() {
    let (e, store) = engine_at(wednesday_morning());
    let ex = e
        .explain(&req(
            "marketing.create_campaign",
            json!({"name": "x", "budget": 45}),
        ))
        .await
        .unwrap();
    assert_eq!(ex.decision.label(), "require_approval");
    let sources: Vec<_> = ex
        .trace
        .iter()
        .map(|t| (t.source.as_str(), t.outcome))
        .collect();
    assert!(
        sources.contains(&(
            "role marketer / permission marketing.create_campaign",
            "allow"
        )),
        "{sources:?}"
    );
    assert!(
        sources
            .iter()
            .any(|(s, o)| s.starts_with("rule 0") && *o == "require_approval"),
        "{sources:?}"
    );
    // explain reserves nothing.
    assert_eq!(
        store
            .counter_get(
                &agentkit_core::id::TenantId::from_static("acme"),
                "budget:agent:marketing:2026-11-18"
            )
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn load_errors_name_the_bad_rule() {
    let store = Arc::new(InMemoryStore::new());
    let bad_type = r#"{"agents": {"m": {"permissions": [{"action": "x", "constraints": [{"type": "budget", "period": "week", "limit_usd": 5, "cost": {"fixed_usd": 1}}]}]}}}"#;
    let err = parse_json(bad_type).unwrap_err().to_string();
    assert!(
        err.contains("agents.m.permissions[0].constraints[0]"),
        "{err}"
    );
    let bad_tz = r#"{"agents": {"m": {"permissions": [{"action": "x", "constraints": [{"type": "time_window", "start": "09:00", "end": "25:00"}]}]}}}"#;
    let err = PolicyEngine::from_json(bad_tz, store.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agents.m.permissions[0].constraints[0].end"),
        "{err}"
    );
    let cycle = r#"{"roles": {"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}}"#;
    assert!(
        PolicyEngine::from_json(cycle, store.clone())
            .unwrap_err()
            .to_string()
            .contains("cycle")
    );
    let unknown = r#"{"agents": {"m": {"roles": ["ghost"]}}}"#;
    assert!(
        PolicyEngine::from_json(unknown, store.clone())
            .unwrap_err()
            .to_string()
            .contains("agents.m.roles[0]")
    );
    let typo = r#"{"agents": {"m": {"permisions": []}}}"#;
    assert!(
        parse_json(typo)
            .unwrap_err()
            .to_string()
            .contains("agents.m")
    );
    let pattern = r#"{"agents": {"m": {"permissions": [{"action": "crm.*.x"}]}}}"#;
    assert!(
        PolicyEngine::from_json(pattern, store)
            .unwrap_err()
            .to_string()
            .contains("agents.m.permissions[0].action")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_race_100_concurrent_reservations_never_exceed_50_dollars() {
    let store = Arc::new(InMemoryStore::new());
    let policy = r#"{"agents": {"marketing": {"permissions": [{"action": "ads.spend", "constraints": [
        {"type": "budget", "period": "day", "limit_usd": 50, "cost": {"argument": "/usd"}}]}]}}}"#;
    let now = Utc::now();
    let e = Arc::new(
        PolicyEngine::from_json(policy, store.clone())
            .unwrap()
            .with_clock(Arc::new(move || now)),
    );
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move {
                let r = PolicyRequest::new(
                    agentkit_core::testkit::scope("acme", "marketing", "s", format!("r{i}")),
                    "ads.spend",
                    json!({"usd": 1.5}),
                );
                e.evaluate(&r).await.unwrap()
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == Decision::Allow {
            allowed += 1;
        }
    }
    let day = now.date_naive().to_string();
    let spent = store
        .counter_get(
            &agentkit_core::id::TenantId::from_static("acme"),
            &format!("budget:agent:marketing:{day}"),
        )
        .await
        .unwrap();
    assert_eq!(allowed, 33, "33 × $1.50 = $49.50 fits, a 34th would not");
    assert_eq!(spent, 49_500_000_000);
    assert!(spent <= 50_000_000_000);
}

#[tokio::test]
async fn thousands_of_permissions_stay_correct() {
    let perms: Vec<Value> = (0..10_000)
        .map(|i| json!({"action": format!("svc{i}.act")}))
        .collect();
    let mut all = perms.clone();
    all.push(json!({"action": "wild.*"}));
    let doc = json!({"agents": {"a": {"permissions": all}}}).to_string();
    let e = PolicyEngine::from_json(&doc, Arc::new(InMemoryStore::new())).unwrap();
    let r = |action: &str| {
        PolicyRequest::new(
            agentkit_core::testkit::scope("t", "a", "s", "r"),
            action,
            json!({}),
        )
    };
    assert_eq!(
        e.evaluate(&r("svc9999.act")).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        e.evaluate(&r("wild.anything")).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        e.evaluate(&r("svc10000.act")).await.unwrap().label(),
        "deny"
    );
}

#[tokio::test]
async fn engine_is_usable_as_arc_dyn_policy_evaluator_in_an_agent() {
    use agentkit_core::prelude::*;
    use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let engine: Arc<dyn PolicyEvaluator> = Arc::new(
        PolicyEngine::from_toml(POLICY, store.clone())
            .unwrap()
            .with_clock(Arc::new(wednesday_morning)),
    );
    let campaign = FnTool::new(
        ToolSpec::new(
            "marketing.create_campaign",
            "creates",
            json!({"type": "object"}),
        ),
        |_c, _a| async { Ok(json!("created")) },
    );
    let model = ScriptedModel::new([ScriptedResponse::tool_call(
        "marketing.create_campaign",
        json!({"name": "Chips", "budget": 45}),
    )]);
    let agent = Agent::builder()
        .id("marketing")
        .model(Arc::new(model), "m")
        .tool(Arc::new(campaign))
        .store(store)
        .policy(engine)
        .build()
        .unwrap();
    let out = agent
        .run(RunRequest::new("acme", "s", "Sell chips"))
        .await
        .unwrap();
    assert_eq!(out.approvals().len(), 1);
    assert_eq!(out.approvals()[0].reason, "large campaigns need approval");
}
