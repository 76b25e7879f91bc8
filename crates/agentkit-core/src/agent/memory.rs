//! History windowing.

use crate::message::Message;
use crate::store::{MessageWindow, StoredMessage};

use super::MemoryPolicy;

impl MemoryPolicy {
    /// The store window to load for this policy.
    pub fn store_window(&self) -> MessageWindow {
        match *self {
            MemoryPolicy::LastMessages { count } => MessageWindow::Last(count),
            MemoryPolicy::TokenBudget { max_messages, .. } => MessageWindow::Last(max_messages),
        }
    }
}

/// Applies a memory policy to a loaded window: keeps the newest messages that fit, and never
/// starts with tool results whose assistant call was cut (a tool call and its results stay
/// together or go together). The newest message is always kept.
pub fn apply_memory_policy(policy: &MemoryPolicy, window: Vec<StoredMessage>) -> Vec<Message> {
    let mut start = match *policy {
        MemoryPolicy::LastMessages { count } => window.len().saturating_sub(count),
        MemoryPolicy::TokenBudget {
            tokens,
            max_messages,
        } => {
            let floor = window.len().saturating_sub(max_messages);
            let mut used = 0usize;
            let mut start = window.len();
            while start > floor {
                let cost = window[start - 1].message.estimated_tokens();
                if used + cost > tokens && start < window.len() {
                    break;
                }
                used += cost;
                start -= 1;
            }
            start
        }
    };
    while start < window.len() && window[start].message.is_tool_result() {
        start += 1;
    }
    window.into_iter().skip(start).map(|m| m.message).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::message::ToolCall;
    use chrono::Utc;
    use serde_json::json;

    fn stored(msgs: Vec<Message>) -> Vec<StoredMessage> {
        msgs.into_iter()
            .enumerate()
            .map(|(i, message)| StoredMessage {
                seq: i as u64 + 1,
                run: None,
                message,
                created_at: Utc::now(),
            })
            .collect()
    }

    fn history() -> Vec<Message> {
        vec![
            Message::user("first question"),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![
                    ToolCall::new("a", "t.x", json!({})),
                    ToolCall::new("b", "t.y", json!({})),
                ],
            },
            Message::tool_result("a", "t.x", "1"),
            Message::tool_result("b", "t.y", "2"),
            Message::assistant("answer"),
        ]
    }

    #[test]
    fn last_n_never_starts_with_orphaned_results() {
        let out = apply_memory_policy(&MemoryPolicy::LastMessages { count: 3 }, stored(history()));
        assert_eq!(out, vec![Message::assistant("answer")]);
        let out = apply_memory_policy(&MemoryPolicy::LastMessages { count: 4 }, stored(history()));
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].tool_calls().len(), 2);
    }

    #[test]
    fn token_budget_keeps_newest_that_fit() {
        let p = MemoryPolicy::TokenBudget {
            tokens: 12,
            max_messages: 100,
        };
        let out = apply_memory_policy(&p, stored(history()));
        assert!(!out.is_empty());
        assert!(!out[0].is_tool_result());
        assert_eq!(out.last(), Some(&Message::assistant("answer")));
        // A tiny budget still keeps the newest message.
        let p = MemoryPolicy::TokenBudget {
            tokens: 1,
            max_messages: 100,
        };
        assert_eq!(apply_memory_policy(&p, stored(history())).len(), 1);
    }
}
