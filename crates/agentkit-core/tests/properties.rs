//! Properties of everything in the core that takes outside input: streamed model events, tool
//! arguments against their schema, agent configs, and stored histories. Arbitrary input gives a
//! value or a typed error, never a panic or an unbounded allocation.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use agentkit_core::config::AgentConfig;
use agentkit_core::message::{Message, ToolCall};
use agentkit_core::model::{FinishReason, StreamAccumulator, StreamEvent, StreamLimits};
use agentkit_core::validation::CompiledSchema;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn stream_event() -> impl Strategy<Value = StreamEvent> {
    prop_oneof![
        ".{0,64}".prop_map(StreamEvent::TextDelta),
        (
            prop_oneof![0usize..8, any::<usize>()],
            proptest::option::of("[a-z0-9_]{0,8}"),
            proptest::option::of("[a-z.]{0,12}"),
            ".{0,32}",
        )
            .prop_map(
                |(index, id, name, arguments_delta)| StreamEvent::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments_delta,
                }
            ),
        Just(StreamEvent::Finish(FinishReason::Stop)),
        Just(StreamEvent::Finish(FinishReason::ToolCalls)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any event sequence is accumulated or refused with a typed error; what is accepted stays
    /// within the limits.
    #[test]
    fn the_stream_accumulator_never_panics(events in prop::collection::vec(stream_event(), 0..40)) {
        let limits = StreamLimits::default();
        let mut acc = StreamAccumulator::with_limits(limits);
        let mut refused = false;
        for e in &events {
            if acc.push(e).is_err() {
                refused = true;
                break;
            }
        }
        if !refused && let Ok(response) = acc.finish() {
            prop_assert!(response.content.len() <= limits.max_text_bytes);
            prop_assert!(response.tool_calls.len() <= limits.max_tool_calls);
        }
    }

    /// Tool arguments of any shape are checked against a tool's schema without panicking;
    /// a value that passes really has the required fields.
    #[test]
    fn argument_validation_never_panics(arguments in json_value()) {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "budget": {"type": "number", "minimum": 1, "maximum": 50}
            },
            "required": ["name", "budget"],
            "additionalProperties": false
        })).unwrap();
        if schema.check(&arguments, "arguments").is_ok() {
            prop_assert!(arguments["name"].is_string());
            prop_assert!(arguments["budget"].is_number());
        }
        let _ = schema.check_lines(&arguments, 10);
    }

    /// Any JSON value given as a schema compiles or is a typed error.
    #[test]
    fn schemas_of_any_shape_compile_or_fail_typed(schema in json_value(), instance in json_value()) {
        if let Ok(compiled) = CompiledSchema::compile(&schema) {
            let _ = compiled.check(&instance, "instance");
        }
    }

    /// Agent configs from arbitrary text or arbitrary JSON load or fail with `InvalidConfig`.
    #[test]
    fn agent_config_loading_never_panics(text in ".{0,200}", value in json_value()) {
        for input in [text, value.to_string()] {
            if let Err(e) = AgentConfig::from_json(&input) {
                prop_assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
            }
            let _ = toml::from_str::<AgentConfig>(&input);
        }
    }

    /// Stored message bodies of any shape decode or fail; none panics.
    #[test]
    fn message_decoding_never_panics(value in json_value()) {
        let _ = serde_json::from_value::<Message>(value.clone());
        let _ = serde_json::from_value::<ToolCall>(value);
    }
}
