//! Properties of the rest of what agentkit-providers parses from outside: `retry-after`
//! headers, API error bodies, configuration files (durations, base URLs), tool names coming
//! back from a model and tool arguments. Whatever the input: a value or a typed error, never a
//! panic. (The stream decoders have their own properties in `decode_props.rs`.)
#![cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use agentkit_core::model::CompletionRequest;
use agentkit_core::tool::ToolSpec;
use agentkit_providers::http::{ErrorContext, ToolNames, parse_arguments, retry_after, wire_name};
use agentkit_providers::{ProviderConfig, ProviderKind};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            any::<String>(),
            Just("error".to_string()),
            Just("message".to_string()),
            Just("overloaded_error".to_string()),
            Just("context_length_exceeded".to_string()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("error".to_string()),
                    Just("message".to_string()),
                    Just("type".to_string()),
                    Just("code".to_string()),
                    any::<String>(),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Header text: numbers of every shape, dates, noise.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
        Just("Mon, 01 Jan 0001 00:00:00 GMT".to_string()),
        (0i64..=i64::MAX).prop_map(|s| {
            chrono::DateTime::from_timestamp(s % 253_402_300_799, 0)
                .unwrap()
                .to_rfc2822()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn retry_after_is_a_finite_wait_or_none(seconds in header_text(), millis in header_text()) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&seconds) {
            headers.insert("retry-after", v);
        }
        if let Ok(v) = HeaderValue::from_str(&millis) {
            headers.insert("retry-after-ms", v);
        }
        // A `Duration` is finite by construction: not panicking is the property.
        let _ = retry_after(&headers);
    }

    #[test]
    fn error_bodies_always_give_a_typed_error_naming_the_provider(
        body in json_value(),
        status in prop_oneof![Just(None), (100u16..1000).prop_map(Some)],
        wait in proptest::option::of(0u64..100_000),
    ) {
        let ctx = ErrorContext::detached("acme");
        let e = ctx.error_from_value(status, &body, wait.map(Duration::from_millis));
        prop_assert!(e.to_string().contains("acme"), "{}", e);
    }

    #[test]
    fn configuration_files_parse_or_fail_with_a_message(
        timeout in prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<f64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (any::<u32>(), prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("")])
                .prop_map(|(n, unit)| Value::String(format!("{n}{unit}"))),
            Just(json!("1e400s")),
            Just(json!("99999999999999999999h")),
        ],
        base_url in any::<String>(),
    ) {
        let parsed = serde_json::from_value::<ProviderConfig>(json!({
            "provider": "openai_compatible", "model": "m", "timeout": timeout, "base_url": base_url
        }));
        if let Ok(config) = parsed {
            // Every accepted config resolves (or refuses) its URL without panicking.
            let _ = config.resolved_base_url();
            let _ = config.resolved_timeout();
        }
    }

    #[test]
    fn tool_names_map_to_valid_wire_names_and_back(
        names in proptest::collection::vec(any::<String>(), 1..6),
    ) {
        let request = CompletionRequest::new("m", vec![]).with_tools(
            names
                .iter()
                .map(|n| ToolSpec::new(n.clone(), "", json!({"type": "object"})))
                .collect::<Vec<_>>(),
        );
        let map = ToolNames::for_request(&request);
        for name in &names {
            let wire = map.wire(name);
            // Names that are already valid travel as they are; the others are made valid.
            let valid = !wire.is_empty()
                && wire.len() <= 64
                && wire.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            prop_assert!(valid || wire == name.as_str(), "{:?} -> {:?}", name, wire);
            prop_assert_eq!(&map.original(wire), name);
            let one_way = wire_name(name);
            prop_assert!(!one_way.is_empty() && one_way.len() <= 64, "{:?}", one_way);
        }
    }

    #[test]
    fn tool_arguments_are_json_or_kept_as_text(text in any::<String>()) {
        let expected = if text.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        prop_assert_eq!(parse_arguments(&text), expected);
    }
}

#[test]
fn providers_of_every_kind_accept_any_parsed_config_without_panicking() {
    // Unusual but parseable values a configuration file may hold.
    for (kind, base) in [
        (ProviderKind::OpenAiCompatible, "http://[::1]:1/v1"),
        (ProviderKind::Ollama, "http://h:99999"),
        (ProviderKind::OpenAiCompatible, "http://h/v1?x=%zz"),
        (ProviderKind::Anthropic, "https://"),
    ] {
        let config = ProviderConfig::new(kind, "m")
            .with_base_url(base)
            .with_api_key(agentkit_providers::KeyRef::value("k"))
            .with_header("x-a", "b");
        let _ = agentkit_providers::build_provider(&config).map(|_| ());
    }
}
