//! The history sent to a model is always well-formed, whatever happened to earlier runs.
//!
//! A run that fails has its messages retracted (`SessionStore::retract_messages`), and a session
//! with a suspended run takes no new run ([`crate::Error::SessionSuspended`]). What is left is a
//! process that died mid-run (its record stays `running`, its retraction never happened), or a
//! retraction that failed because the store was down. [`repair`] covers those: before a window
//! goes to a model it drops
//!
//! - an assistant message whose tool calls are not all answered by the tool results right after
//!   it (and those results), unless it is the current run's last message (a resumed run's
//!   results are appended after loading);
//! - a tool result that does not follow its call;
//! - a user message directly followed by another user message (a question that was never
//!   answered: its run died, failed before retraction, or was interleaved with another run).

use std::collections::HashSet;

use crate::id::RunId;
use crate::message::Message;
use crate::store::StoredMessage;

/// The window without the broken exchanges described in the module docs; `then_user` says the
/// current run's input (a user message) comes after it. Returns `window` unchanged (no copy)
/// when it is well-formed.
pub(crate) fn repair(
    window: Vec<StoredMessage>,
    current: &RunId,
    then_user: bool,
) -> Vec<StoredMessage> {
    let keep = kept(&window, current, then_user);
    if keep.iter().all(|k| *k) {
        return window;
    }
    let dropped = keep.iter().filter(|k| !**k).count();
    tracing::warn!(
        dropped,
        "the session history held unfinished exchanges of earlier runs; they are left out"
    );
    window
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect()
}

/// The run whose tool calls end the window unanswered (a suspended or interrupted run), if any.
pub(crate) fn unanswered_tail(window: &[StoredMessage]) -> Option<&RunId> {
    let last = window.last()?;
    match &last.message {
        Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => last.run.as_ref(),
        _ => None,
    }
}

fn kept(window: &[StoredMessage], current: &RunId, then_user: bool) -> Vec<bool> {
    let n = window.len();
    let mut keep = vec![true; n];
    let mut i = 0;
    while i < n {
        let m = &window[i];
        match &m.message {
            Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => {
                let mut end = i + 1;
                while end < n && window[end].message.is_tool_result() {
                    end += 1;
                }
                let calls: HashSet<&str> = tool_calls.iter().map(|c| c.id.as_str()).collect();
                let answered: HashSet<&str> = window[i + 1..end]
                    .iter()
                    .filter_map(|r| result_id(&r.message))
                    .filter(|id| calls.contains(id))
                    .collect();
                let in_flight = end == n && m.run.as_ref() == Some(current);
                if answered.len() == calls.len() || in_flight {
                    // Results for other calls, and a second result for a call, are strays.
                    let mut seen: HashSet<&str> = HashSet::with_capacity(calls.len());
                    for (k, r) in window[i + 1..end].iter().enumerate() {
                        let first_for_a_call = result_id(&r.message)
                            .is_some_and(|id| calls.contains(id) && seen.insert(id));
                        if !first_for_a_call {
                            keep[i + 1 + k] = false;
                        }
                    }
                } else {
                    keep[i..end].iter_mut().for_each(|k| *k = false);
                }
                i = end;
                continue;
            }
            Message::Tool { .. } => keep[i] = false,
            _ => {}
        }
        i += 1;
    }
    // Unanswered questions, judged on what is kept, newest first (so chains of them go); the
    // current run's new input follows the window when `then_user`.
    let mut next_is_user = then_user;
    for i in (0..n).rev() {
        if !keep[i] {
            continue;
        }
        let m = &window[i];
        let is_user = matches!(m.message, Message::User { .. });
        if is_user && next_is_user && m.run.as_ref() != Some(current) {
            keep[i] = false;
        } else {
            next_is_user = is_user;
        }
    }
    keep
}

fn result_id(message: &Message) -> Option<&str> {
    match message {
        Message::Tool { call_id, .. } => Some(call_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::message::ToolCall;

    fn at(run: &str, messages: Vec<Message>) -> Vec<(String, Message)> {
        messages.into_iter().map(|m| (run.to_owned(), m)).collect()
    }

    fn stored(parts: Vec<Vec<(String, Message)>>) -> Vec<StoredMessage> {
        parts
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, (run, message))| StoredMessage {
                seq: i as u64 + 1,
                run: Some(RunId::new(run).unwrap()),
                message,
                created_at: Utc::now(),
            })
            .collect()
    }

    fn call(ids: &[&str]) -> Message {
        Message::Assistant {
            content: String::new(),
            tool_calls: ids
                .iter()
                .map(|id| ToolCall::new(*id, "t", json!({})))
                .collect(),
        }
    }

    fn texts(window: &[StoredMessage]) -> Vec<String> {
        window
            .iter()
            .map(|m| match &m.message {
                Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => {
                    format!("call:{}", tool_calls.len())
                }
                Message::Tool { call_id, .. } => format!("result:{call_id}"),
                other => other.text().to_owned(),
            })
            .collect()
    }

    fn current() -> RunId {
        RunId::new("now").unwrap()
    }

    #[test]
    fn a_well_formed_window_is_returned_as_is() {
        let w = stored(vec![
            at(
                "r1",
                vec![
                    Message::user("q"),
                    call(&["a", "b"]),
                    Message::tool_result("b", "t", "2"),
                    Message::tool_result("a", "t", "1"),
                    Message::assistant("done"),
                ],
            ),
            at("now", vec![Message::user("next")]),
        ]);
        let before = texts(&w);
        assert_eq!(texts(&repair(w, &current(), false)), before);
    }

    #[test]
    fn an_interrupted_run_leaves_nothing_broken() {
        // r1 died after its tool call; r2 died before answering; then the current run.
        let w = stored(vec![
            at("r1", vec![Message::user("q1"), call(&["a", "b"])]),
            at("r1", vec![Message::tool_result("a", "t", "1")]),
            at("r2", vec![Message::user("q2")]),
        ]);
        assert!(repair(w, &current(), true).is_empty());
    }

    #[test]
    fn stray_and_orphan_results_are_dropped() {
        let w = stored(vec![at(
            "r1",
            vec![
                Message::tool_result("z", "t", "orphan"),
                Message::user("q"),
                call(&["a"]),
                Message::tool_result("a", "t", "1"),
                Message::tool_result("x", "t", "stray"),
                Message::tool_result("a", "t", "again"),
                Message::assistant("done"),
            ],
        )]);
        assert_eq!(
            texts(&repair(w, &current(), false)),
            vec!["q", "call:1", "result:a", "done"]
        );
    }

    #[test]
    fn the_current_runs_pending_call_is_kept_for_its_results() {
        let w = stored(vec![at("now", vec![Message::user("q"), call(&["a"])])]);
        assert_eq!(texts(&repair(w, &current(), false)), vec!["q", "call:1"]);
    }
}
