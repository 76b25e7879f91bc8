//! Budgets and token quotas limit model spend: each model call's estimate is reserved before
//! the call and settled with the actual usage after it; an exhausted limit refuses the call.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::message::Usage;
use agentkit_core::prelude::*;
use agentkit_core::store::{CounterStore, UsageQuery, UsageStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_policy::metering::ModelPrice;
use agentkit_policy::{Meter, PolicyEngine, PriceBook, PriceTable};
use chrono::{TimeZone, Utc};

fn book() -> Arc<PriceBook> {
    Arc::new(
        PriceBook::new(vec![PriceTable {
            version: "v1".into(),
            effective_from: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
            models: [(
                "m".to_string(),
                ModelPrice {
                    input_per_mtok: 1.0,
                    output_per_mtok: 2.0,
                    cached_input_per_mtok: None,
                },
            )]
            .into_iter()
            .collect(),
            tool_call_usd: 0.0,
            tools: Default::default(),
            knowledge_query_usd: 0.0,
            audio_per_minute_usd: 0.0,
        }])
        .unwrap(),
    )
}

/// A model that reports 10M input and 10M output tokens per reply ($30 at these prices).
fn greedy_model() -> ScriptedModel {
    ScriptedModel::repeating([
        ScriptedResponse::text("a very long answer").with_usage(Usage {
            input_tokens: 10_000_000,
            output_tokens: 10_000_000,
            ..Usage::default()
        }),
    ])
}

fn agent(policy: &str, model: &ScriptedModel) -> (Agent, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let engine = PolicyEngine::from_toml(policy, store.clone()).unwrap();
    let state: Arc<dyn StateStore> = store.clone();
    let agent = Agent::builder()
        .id("chat")
        .model(Arc::new(model.clone()), "m")
        .store(state)
        .policy(Arc::new(engine.clone()))
        .meter(Arc::new(Meter::new(book(), engine)))
        .build()
        .unwrap();
    (agent, store)
}

async fn day_spend(store: &InMemoryStore) -> i64 {
    let day = Utc::now().date_naive();
    store
        .counter_get(
            &TenantId::from_static("acme"),
            &format!("budget:agent:chat:{day}"),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_daily_budget_stops_an_agent_that_only_chats() {
    let model = greedy_model();
    let (agent, store) = agent(
        r#"
        [agents.chat]
        spend = { day_usd = 1.0 }
        "#,
        &model,
    );
    // The first call fits the estimate and is made; its actual $30 is recorded.
    agent
        .run(RunRequest::new("acme", "s1", "hello"))
        .await
        .unwrap();
    assert_eq!(day_spend(&store).await, 30_000_000_000);

    let err = agent
        .run(RunRequest::new("acme", "s2", "hello again"))
        .await
        .unwrap_err();
    match &err {
        Error::LimitExceeded { limit, detail } => {
            assert_eq!(*limit, "spend_limit");
            assert!(
                detail.contains("daily spend limit of $1.00 for agent `chat`"),
                "{detail}"
            );
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(model.calls(), 1, "the refused run never called the model");
    assert_eq!(
        day_spend(&store).await,
        30_000_000_000,
        "a refused admission leaves nothing reserved"
    );
    let usage = store
        .list_usage(&TenantId::from_static("acme"), &UsageQuery::default())
        .await
        .unwrap();
    assert_eq!(
        usage.len(),
        2,
        "only the call that was made is in the ledger"
    );
}

#[tokio::test]
async fn a_tiers_token_quota_refuses_the_next_model_call() {
    let model = greedy_model();
    let (agent, _store) = agent(
        r#"
        [tenants.acme]
        tier = "free"
        "#,
        &model,
    );
    agent
        .run(RunRequest::new("acme", "s1", "hello"))
        .await
        .unwrap();
    let err = agent
        .run(RunRequest::new("acme", "s2", "hello again"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::LimitExceeded { limit, detail }
            if *limit == "token_quota" && detail.contains("100000 model tokens")),
        "{err:?}"
    );
    assert_eq!(model.calls(), 1);
}

#[tokio::test]
async fn a_call_within_budget_settles_its_estimate_to_the_actual_cost() {
    let model = ScriptedModel::repeating([ScriptedResponse::text("short").with_usage(Usage {
        input_tokens: 1_000,
        output_tokens: 500,
        ..Usage::default()
    })]);
    let (agent, store) = agent(
        r#"
        [agents.chat]
        spend = { day_usd = 1.0 }
        "#,
        &model,
    );
    for i in 0..3 {
        agent
            .run(RunRequest::new("acme", format!("s{i}"), "hello"))
            .await
            .unwrap();
    }
    // 3 × (1,000 × $1/M + 500 × $2/M) = 3 × $0.002: the estimates were replaced by the actuals.
    assert_eq!(day_spend(&store).await, 6_000_000);
}

#[test]
fn spend_limits_are_validated_at_load_with_their_path() {
    let store = Arc::new(InMemoryStore::new());
    for (doc, path) in [
        (
            "[agents.chat]\nspend = { day_usd = -1.0 }",
            "agents.chat.spend.day_usd",
        ),
        (
            "[tenants.acme]\nspend = { month_usd = inf }",
            "tenants.acme.spend.month_usd",
        ),
        (
            "[tenants.acme]\nspend = { month_usd = nan }",
            "tenants.acme.spend.month_usd",
        ),
    ] {
        let err = PolicyEngine::from_toml(doc, store.clone()).unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
    }
}

/// Numbers from configs and providers never panic or wrap (issue 10, item 7).
mod arithmetic {
    use std::time::Duration;

    use agentkit_core::message::Usage;
    use agentkit_core::store::{UsageEvent, UsageKind};
    use agentkit_policy::approvals::{ApprovalQueue, QueueConfig, Sla};

    use super::*;

    fn table_with_input_price(price: f64) -> PriceTable {
        let mut t = Arc::try_unwrap(book())
            .unwrap()
            .table_at(Utc::now())
            .unwrap()
            .clone();
        t.models.get_mut("m").unwrap().input_per_mtok = price;
        t
    }

    #[test]
    fn bad_prices_are_refused_at_load_with_their_path() {
        for bad in [-1.0, f64::INFINITY, f64::NAN, 1e300] {
            let err = PriceBook::new(vec![table_with_input_price(bad)]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("prices[v1].models.m.input_per_mtok"),
                "{bad}: {err}"
            );
        }
        let json = r#"{"tables": [{"version": "v1", "effective_from": "2020-01-01T00:00:00Z",
            "models": {"m": {"input_per_mtok": -5.0, "output_per_mtok": 1.0}}}]}"#;
        let err = serde_json::from_str::<PriceBook>(json).unwrap_err();
        assert!(err.to_string().contains("input_per_mtok"), "{err}");
    }

    #[test]
    fn the_largest_counts_at_the_largest_prices_saturate() {
        let book = PriceBook::new(vec![table_with_input_price(
            agentkit_policy::metering::MAX_UNIT_PRICE_USD,
        )])
        .unwrap();
        let mut e = UsageEvent::scoped(
            &agentkit_core::testkit::scope("acme", "chat", "s", "r"),
            UsageKind::InputTokens,
            u64::MAX,
        );
        e.resource = Some("m".into());
        let (cost, _) = book.price(&e).unwrap();
        assert_eq!(cost.nanos(), i64::MAX);
    }

    #[tokio::test]
    async fn a_provider_reporting_u64_max_tokens_does_not_break_the_run() {
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cached_input_tokens: u64::MAX,
            ..Usage::default()
        };
        let model = ScriptedModel::new([
            ScriptedResponse::text("one").with_usage(huge),
            ScriptedResponse::text("two").with_usage(huge),
        ]);
        let (agent, _store) = agent("", &model);
        for session in ["s1", "s2"] {
            let out = agent
                .run(RunRequest::new("acme", session, "hello"))
                .await
                .unwrap();
            assert_eq!(
                out.reply(),
                Some(if session == "s1" { "one" } else { "two" })
            );
        }
        let mut total = Usage::default();
        total.add(&huge);
        total.add(&huge);
        assert_eq!(total.input_tokens, u64::MAX);
        assert_eq!(total.total_tokens(), u64::MAX);
    }

    #[test]
    fn queue_durations_are_bounded_at_load_and_saturate_in_use() {
        let err = toml::from_str::<QueueConfig>(
            "[sla]\ncritical = 60\nhigh = 60\nmedium = 60\nlow = 8000000000000\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("100-year"), "{err}");
        assert!(
            err.to_string().contains("low"),
            "the error names the setting: {err}"
        );
    }

    #[tokio::test]
    async fn an_sla_of_any_length_does_not_panic_the_queue() {
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let scope = agentkit_core::testkit::scope("acme", "ops", "s", "r");
        store
            .create_session(
                &scope.tenant,
                &agentkit_core::store::SessionRecord::new(
                    scope.tenant.clone(),
                    scope.session.clone(),
                    scope.agent.clone(),
                ),
            )
            .await
            .unwrap();
        store
            .create_run(&scope.tenant, &agentkit_core::store::RunRecord::new(&scope))
            .await
            .unwrap();
        for priority in [
            agentkit_core::policy::Priority::Low,
            agentkit_core::policy::Priority::Critical,
        ] {
            let request = agentkit_core::store::ApprovalRequest::new(
                &scope,
                agentkit_core::message::ToolCall::new("c", "x.y", serde_json::json!({})),
                "why",
                priority,
            );
            store
                .create_approval(&request.tenant, &request)
                .await
                .unwrap();
        }
        let config = QueueConfig {
            sla: Sla {
                critical: Duration::MAX,
                high: Duration::MAX,
                medium: Duration::MAX,
                low: Duration::from_secs(9_000_000_000_000),
            },
            ..QueueConfig::default()
        };
        let queue = ApprovalQueue::new(store, config, Vec::new());
        let items = queue.pending(&TenantId::from_static("acme")).await.unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| !i.breached));
    }
}
