//! Conversation messages, tool calls and usage.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool call proposed by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call; tool results refer to it.
    pub id: String,
    /// The tool's namespaced name, as the model wrote it.
    pub name: String,
    /// The arguments. Providers that receive arguments that are not valid JSON pass the raw text
    /// as a JSON string, which then fails schema validation and goes back to the model.
    pub arguments: Value,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions from the host (persona, rules).
    System {
        /// Text.
        content: String,
    },
    /// Input from the user or channel.
    User {
        /// Text.
        content: String,
    },
    /// A model reply: text, tool calls, or both.
    Assistant {
        /// Text (may be empty when the reply is only tool calls).
        #[serde(default)]
        content: String,
        /// Proposed tool calls, in the model's order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    Tool {
        /// The [`ToolCall::id`] this answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// What the model is shown.
        content: String,
        /// Whether this is an error (invalid arguments, denied, failed, unknown tool).
        #[serde(default)]
        is_error: bool,
    },
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::System {
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::User {
            content: content.into(),
        }
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::Assistant {
            content: content.into(),
            tool_calls: Vec::new(),
        }
    }

    /// A successful tool result.
    pub fn tool_result(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Message::Tool {
            call_id: call_id.into(),
            name: name.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A tool error result (shown to the model so it can correct itself).
    pub fn tool_error(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Message::Tool {
            call_id: call_id.into(),
            name: name.into(),
            content: content.into(),
            is_error: true,
        }
    }

    /// The text of the message (the tool result's content for tool messages).
    pub fn text(&self) -> &str {
        match self {
            Message::System { content }
            | Message::User { content }
            | Message::Assistant { content, .. }
            | Message::Tool { content, .. } => content,
        }
    }

    /// The tool calls of an assistant message (empty otherwise).
    pub fn tool_calls(&self) -> &[ToolCall] {
        match self {
            Message::Assistant { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }

    /// Whether this is a tool result.
    pub fn is_tool_result(&self) -> bool {
        matches!(self, Message::Tool { .. })
    }

    /// A rough token estimate (4 bytes a token, plus a small per-message overhead), used by the
    /// token-budget memory policy when no tokenizer is configured.
    pub fn estimated_tokens(&self) -> usize {
        let args: usize = self
            .tool_calls()
            .iter()
            .map(|c| c.name.len() + estimated_json_len(&c.arguments))
            .sum();
        4 + (self.text().len() + args).div_ceil(4)
    }
}

fn estimated_json_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(estimated_json_len).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, v)| k.len() + 4 + estimated_json_len(v))
                .sum::<usize>()
        }
    }
}

/// Token usage and latency of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (including cached ones).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_input_tokens: u64,
    /// Wall time of the call.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
}

impl Usage {
    /// Adds another call's usage to this one.
    ///
    /// Saturating: counts come from the provider, and absurd ones must not wrap or panic.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(other.cached_input_tokens);
        self.latency = self.latency.saturating_add(other.latency);
    }

    /// Input plus output tokens (saturating).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What the model is shown for a tool output.
pub(crate) fn render(value: &Value, limit: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(text, limit)
}

pub(crate) fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut cut = limit.saturating_sub(16);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …[truncated]");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_through_json() {
        let msgs = vec![
            Message::system("be brief"),
            Message::user("hi"),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall::new("c1", "crm.lookup", json!({"id": 7}))],
            },
            Message::tool_error("c1", "crm.lookup", "no such id"),
        ];
        let text = serde_json::to_string(&msgs).unwrap();
        assert!(text.contains(r#""role":"assistant""#));
        let back: Vec<Message> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, msgs);
    }
}
