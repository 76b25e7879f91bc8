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
