//! What chat APIs put on the wire differently from the contracts: tool names
//! ([`ToolNames`], [`wire_name`]), tool arguments ([`parse_arguments`], [`arguments_text`]),
//! finish reasons and the model name; and the length check of embeddings.

use std::borrow::Cow;
use std::collections::HashMap;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{CompletionRequest, FinishReason};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Maps our namespaced tool names (`crm.lookup_lead`, up to 128 bytes) to what OpenAI and
/// Anthropic accept (`^[a-zA-Z0-9_-]{1,64}$`) and back. Dots become `__`; names still too long
/// (or clashing) are cut and suffixed with a hash. Names already valid are sent unchanged, and
/// the common case (no name needs mapping) allocates nothing.
///
/// ```
/// use agentkit_core::model::CompletionRequest;
/// use agentkit_core::tool::ToolSpec;
/// use agentkit_providers::http::ToolNames;
///
/// let request = CompletionRequest::new("m", vec![]).with_tools(vec![
///     ToolSpec::new("crm.lookup_lead", "", serde_json::json!({"type": "object"})),
/// ]);
/// let names = ToolNames::for_request(&request);
/// assert_eq!(names.wire("crm.lookup_lead"), "crm__lookup_lead");
/// assert_eq!(names.original("crm__lookup_lead"), "crm.lookup_lead");
/// ```
#[derive(Debug, Default)]
pub struct ToolNames {
    to_wire: HashMap<String, String>,
    from_wire: HashMap<String, String>,
}

const WIRE_NAME_MAX: usize = 64;

fn valid_wire(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= WIRE_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn hashed(base: &str, original: &str) -> String {
    let digest = Sha256::digest(original.as_bytes());
    let mut cut = WIRE_NAME_MAX - 9;
    cut = cut.min(base.len());
    format!("{}_{}", &base[..cut], &hex::encode(digest)[..8])
}

/// A name as OpenAI and Anthropic accept it (for schema names too): dots become `__`, other
/// characters outside `[a-zA-Z0-9_-]` `_`, and a name over 64 bytes is cut and suffixed with a
/// hash. Unlike [`ToolNames`] this is one-way.
pub fn wire_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_string()
            } else if c == '.' {
                "__".to_string()
            } else {
                "_".to_string()
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > WIRE_NAME_MAX {
        s = hashed(&s, name);
    }
    s
}

impl ToolNames {
    /// The mapping for every tool name a request mentions (offered tools and history).
    pub fn for_request(request: &CompletionRequest) -> Self {
        let mut names = Self::default();
        let history = request.messages.iter().flat_map(|m| match m {
            agentkit_core::message::Message::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            agentkit_core::message::Message::Tool { name, .. } => vec![name.as_str()],
            _ => Vec::new(),
        });
        for name in request.tools.iter().map(|t| t.name.as_str()).chain(history) {
            if !valid_wire(name) && !names.to_wire.contains_key(name) {
                let mut wire = wire_name(name);
                if names.from_wire.contains_key(&wire)
                    || request.tools.iter().any(|t| t.name == wire)
                {
                    wire = hashed(&wire, name);
                }
                names.from_wire.insert(wire.clone(), name.to_owned());
                names.to_wire.insert(name.to_owned(), wire);
            }
        }
        names
    }

    /// The name to send.
    pub fn wire<'a>(&'a self, name: &'a str) -> &'a str {
        self.to_wire.get(name).map_or(name, String::as_str)
    }

    /// Our name for a name the model sent.
    pub fn original(&self, wire: &str) -> String {
        self.from_wire
            .get(wire)
            .cloned()
            .unwrap_or_else(|| wire.to_owned())
    }
}

/// The request's model, else the provider's default; [`Error::InvalidInput`] when neither names
/// one.
pub fn model_name<'a>(request: &'a CompletionRequest, default: &'a str) -> Result<&'a str> {
    match (request.model.as_str(), default) {
        ("", "") => Err(Error::InvalidInput(
            "the request names no model and the provider has no default".into(),
        )),
        ("", d) => Ok(d),
        (m, _) => Ok(m),
    }
}

/// Tool arguments as JSON text to send back to a provider: arguments that were not valid JSON
/// (kept as a JSON string) go back as the model wrote them.
pub fn arguments_text(arguments: &Value) -> Cow<'_, str> {
    match arguments {
        Value::String(raw) => Cow::Borrowed(raw),
        other => Cow::Owned(other.to_string()),
    }
}

/// Tool arguments from a provider's text: parsed JSON, `{}` when empty, else the raw text as a
/// JSON string (the agent returns the problem to the model).
pub fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A finish reason from the OpenAI, Anthropic or Ollama name. A response with tool calls that
/// says it simply stopped (Ollama does) finished for its tool calls; one cut by the token cap
/// stays [`FinishReason::Length`] (its last call may be incomplete).
pub fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match reason {
        Some("length" | "max_tokens") => FinishReason::Length,
        Some("content_filter" | "refusal") => FinishReason::ContentFilter,
        Some("tool_calls" | "function_call" | "tool_use") => FinishReason::ToolCalls,
        _ if has_tool_calls => FinishReason::ToolCalls,
        None | Some("stop" | "end_turn" | "stop_sequence") => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// Checks that an embedding has the configured length: an [`Error::InvalidConfig`] naming both
/// lengths otherwise (the model is not the one configured).
pub fn check_dimensions(provider: &str, expected: usize, vector: &[f32]) -> Result<()> {
    if vector.len() == expected {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{provider}: the embedding model returned {} dimensions, configured {expected}",
            vector.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use agentkit_core::message::{Message, ToolCall};
    use agentkit_core::tool::ToolSpec;
    use serde_json::json;

    #[test]
    fn tool_names_round_trip() {
        let long = format!("ns.{}", "a".repeat(120));
        let request = CompletionRequest::new(
            "m",
            vec![Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall::new("c", "old.tool", json!({}))],
            }],
        )
        .with_tools(vec![
            ToolSpec::new("crm.lookup_lead", "", json!({"type": "object"})),
            ToolSpec::new("plain_name", "", json!({"type": "object"})),
            ToolSpec::new(long.clone(), "", json!({"type": "object"})),
        ]);
        let names = ToolNames::for_request(&request);
        assert_eq!(names.wire("crm.lookup_lead"), "crm__lookup_lead");
        assert_eq!(names.wire("plain_name"), "plain_name");
        assert_eq!(names.wire("old.tool"), "old__tool");
        let w = names.wire(&long).to_owned();
        assert!(valid_wire(&w) && w.len() <= 64, "{w}");
        assert_eq!(names.original(&w), long);
        assert_eq!(names.original("crm__lookup_lead"), "crm.lookup_lead");
        assert_eq!(names.original("unknown"), "unknown");
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason(Some("stop"), true), FinishReason::ToolCalls);
        assert_eq!(finish_reason(Some("stop"), false), FinishReason::Stop);
        assert_eq!(finish_reason(Some("length"), true), FinishReason::Length);
        assert_eq!(
            finish_reason(Some("max_tokens"), false),
            FinishReason::Length
        );
        assert_eq!(finish_reason(Some("end_turn"), false), FinishReason::Stop);
        assert_eq!(
            finish_reason(Some("tool_use"), false),
            FinishReason::ToolCalls
        );
        assert_eq!(
            finish_reason(Some("refusal"), false),
            FinishReason::ContentFilter
        );
        assert_eq!(
            finish_reason(Some("pause_turn"), false),
            FinishReason::Other("pause_turn".into())
        );
    }

    #[test]
    fn arguments_parse_or_pass_through() {
        assert_eq!(parse_arguments(" "), json!({}));
        assert_eq!(parse_arguments("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_arguments("{\"a\":"), json!("{\"a\":"));
        assert_eq!(arguments_text(&json!("{\"a\":")), "{\"a\":");
        assert_eq!(arguments_text(&json!({"a": 1})), "{\"a\":1}");
    }
}
