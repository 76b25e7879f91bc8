//! Properties of the loaders of outside input: policy documents (TOML and JSON), price books and
//! approval-queue configs. Arbitrary input loads or fails with a typed error, never a panic.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::store::InMemoryStore;
use agentkit_policy::approvals::QueueConfig;
use agentkit_policy::{PolicyEngine, PriceBook};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z*._/ ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("agents".to_string()),
                    Just("roles".to_string()),
                    Just("tenants".to_string()),
                    Just("rules".to_string()),
                    Just("permissions".to_string()),
                    Just("constraints".to_string()),
                    Just("action".to_string()),
                    Just("type".to_string()),
                    Just("spend".to_string()),
                    Just("tables".to_string()),
                    Just("models".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A policy document built from valid pieces with arbitrary values in them.
fn policy_toml() -> impl Strategy<Value = String> {
    (
        "[a-z*._]{0,10}",
        prop_oneof![Just("le"), Just("gt"), Just("in"), Just("bogus")],
        any::<f64>(),
        any::<i64>(),
        prop_oneof![Just("day"), Just("month"), Just("week")],
        "[A-Za-z/_]{0,20}",
    )
        .prop_map(|(action, op, num, max, period, tz)| {
            format!(
                "timezone = \"{tz}\"\n\
                 [agents.a]\n\
                 spend = {{ day_usd = {num:?} }}\n\
                 permissions = [{{ action = \"{action}\", constraints = [\n\
                   {{ type = \"argument\", pointer = \"/x\", op = \"{op}\", value = {num:?} }},\n\
                   {{ type = \"rate_limit\", max = {max}, per = \"minute\" }},\n\
                   {{ type = \"budget\", period = \"{period}\", limit_usd = {num:?}, cost = {{ fixed_usd = {num:?} }} }},\n\
                 ] }}]\n"
            )
            .replace("NaN", "nan")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn policy_documents_load_or_fail_typed(text in ".{0,300}", value in json_value(), doc in policy_toml()) {
        let store = Arc::new(InMemoryStore::new());
        for toml_text in [&text, &doc] {
            if let Err(e) = PolicyEngine::from_toml(toml_text, store.clone()) {
                prop_assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
            }
        }
        for json_text in [&text, &value.to_string()] {
            if let Err(e) = PolicyEngine::from_json(json_text, store.clone()) {
                prop_assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
            }
        }
    }

    #[test]
    fn price_books_and_queue_configs_load_or_fail(value in json_value(), text in ".{0,200}") {
        let _ = serde_json::from_value::<PriceBook>(value.clone());
        let _ = serde_json::from_str::<PriceBook>(&text);
        let _ = serde_json::from_value::<QueueConfig>(value);
        let _ = toml::from_str::<QueueConfig>(&text);
    }
}
