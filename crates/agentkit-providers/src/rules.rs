//! A deterministic, rule-based model (feature `rules`): keyword and regex rules map the latest
//! user message to a reply, an intent with a confidence, or tool calls.
//!
//! It is the fallback when no LLM is reachable (put it last in a
//! [`crate::resilience::FallbackChain`]) and the offline default for examples.
//!
//! ```
//! # async fn demo() -> agentkit_core::Result<()> {
//! use agentkit_core::model::{CompletionRequest, LlmProvider};
//! use agentkit_core::message::Message;
//! use agentkit_providers::rules::{Rule, RuleBasedModel};
//! use serde_json::json;
//!
//! let model = RuleBasedModel::new("I can help with refunds and invoices.")
//!     .rule(Rule::keywords(["refund", "money back"]).reply("Refunds take 5 business days."))
//!     .rule(Rule::regex(r"invoice\s+#?(\d+)")?.tool_call("billing.get_invoice", json!({"id": "$1"})))
//!     .rule(Rule::keywords(["meeting", "schedule"]).intent("schedule_meeting", 0.9));
//! let r = model.complete(&CompletionRequest::new("rules", vec![Message::user("Where is invoice #42?")])).await?;
//! assert_eq!(r.tool_calls[0].arguments, json!({"id": "42"}));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use agentkit_core::error::{Error, Result};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use regex::{Regex, RegexBuilder};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Matcher {
    Keywords(Vec<String>),
    Regex(Regex),
    AfterTool(String),
}

#[derive(Debug, Clone)]
enum Action {
    Reply(String),
    Intent { name: String, confidence: f64 },
    ToolCalls(Vec<(String, Value)>),
}

/// One rule: a matcher and what to answer. Build with [`Rule::keywords`] or [`Rule::regex`],
/// then one of [`Rule::reply`], [`Rule::intent`], [`Rule::tool_call`].
#[derive(Debug, Clone)]
pub struct Rule {
    matcher: Matcher,
    action: Option<Action>,
}

impl Rule {
    /// Matches when the message contains any keyword (case-insensitive).
    pub fn keywords(words: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            matcher: Matcher::Keywords(
                words.into_iter().map(|w| w.into().to_lowercase()).collect(),
            ),
            action: None,
        }
    }

    /// Matches a case-insensitive regular expression; `$1`, `$name` in replies and string
    /// arguments are replaced by its captures.
    pub fn regex(pattern: &str) -> Result<Self> {
        let re = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("rule regex `{pattern}`: {e}")))?;
        Ok(Self {
            matcher: Matcher::Regex(re),
            action: None,
        })
    }

    /// Matches right after results of this tool came back (multi-step scripts: check the
    /// balance, then create the campaign).
    pub fn after_tool(tool: impl Into<String>) -> Self {
        Self {
            matcher: Matcher::AfterTool(tool.into()),
            action: None,
        }
    }

    /// Answers with text.
    pub fn reply(mut self, text: impl Into<String>) -> Self {
        self.action = Some(Action::Reply(text.into()));
        self
    }

    /// Answers with `{"intent": name, "confidence": c}` as JSON text.
    pub fn intent(mut self, name: impl Into<String>, confidence: f64) -> Self {
        self.action = Some(Action::Intent {
            name: name.into(),
            confidence: confidence.clamp(0.0, 1.0),
        });
        self
    }

    /// Answers with a tool call (more calls can be added by calling this again).
    pub fn tool_call(mut self, tool: impl Into<String>, arguments: Value) -> Self {
        match &mut self.action {
            Some(Action::ToolCalls(calls)) => calls.push((tool.into(), arguments)),
            _ => self.action = Some(Action::ToolCalls(vec![(tool.into(), arguments)])),
        }
        self
    }

    fn captures<'t>(&self, text: &'t str) -> Option<Option<regex::Captures<'t>>> {
        match &self.matcher {
            Matcher::Keywords(words) => {
                let lower = text.to_lowercase();
                words
                    .iter()
                    .any(|w| lower.contains(w.as_str()))
                    .then_some(None)
            }
            Matcher::Regex(re) => re.captures(text).map(Some),
            Matcher::AfterTool(_) => None,
        }
    }
}

fn expand(template: &str, caps: &Option<regex::Captures<'_>>) -> String {
    match caps {
        Some(c) => {
            let mut out = String::new();
            c.expand(template, &mut out);
            out
        }
        None => template.to_string(),
    }
}

fn expand_value(v: &Value, caps: &Option<regex::Captures<'_>>) -> Value {
    match v {
        Value::String(s) => Value::String(expand(s, caps)),
        Value::Array(a) => Value::Array(a.iter().map(|x| expand_value(x, caps)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), expand_value(x, caps)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The rule-based model. Rules are tried in order; the first match answers. After tool results
/// come back it answers with the `after_tools` text (default: the tool results, summarized).
#[derive(Debug, Clone)]
pub struct RuleBasedModel {
    rules: Vec<Rule>,
    default_reply: String,
    after_tools: Option<String>,
    name: String,
}

impl RuleBasedModel {
    /// A model that answers `default_reply` when no rule matches.
    pub fn new(default_reply: impl Into<String>) -> Self {
        Self {
            rules: Vec::new(),
            default_reply: default_reply.into(),
            after_tools: None,
            name: "rules".into(),
        }
    }

    /// Adds a rule (rules without an action are ignored).
    pub fn rule(mut self, rule: Rule) -> Self {
        if rule.action.is_some() {
            self.rules.push(rule);
        }
        self
    }

    /// The reply after tool results; `{results}` is replaced by the results' text.
    pub fn after_tools(mut self, template: impl Into<String>) -> Self {
        self.after_tools = Some(template.into());
        self
    }

    fn answer(&self, messages: &[Message]) -> (String, Vec<ToolCall>) {
        // After tool results: summarize them instead of calling tools again.
        let trailing_results: Vec<&Message> = messages
            .iter()
            .rev()
            .take_while(|m| m.is_tool_result())
            .collect();
        if !trailing_results.is_empty() {
            let came_back = |tool: &str| {
                trailing_results.iter().any(
                    |m| matches!(m, Message::Tool { name, is_error: false, .. } if name == tool),
                )
            };
            for rule in &self.rules {
                if let Matcher::AfterTool(tool) = &rule.matcher
                    && came_back(tool)
                    && let Some(answer) = Self::act(rule, &None)
                {
                    return answer;
                }
            }
            let results = trailing_results
                .iter()
                .rev()
                .map(|m| match m {
                    Message::Tool { name, content, .. } => format!("{name}: {content}"),
                    other => other.text().to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let template = self.after_tools.as_deref().unwrap_or("Done.\n{results}");
            return (template.replace("{results}", &results), Vec::new());
        }
        let input = messages
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::User { content } => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        for rule in &self.rules {
            let Some(caps) = rule.captures(input) else {
                continue;
            };
            if let Some(answer) = Self::act(rule, &caps) {
                return answer;
            }
        }
        (self.default_reply.clone(), Vec::new())
    }

    fn act(rule: &Rule, caps: &Option<regex::Captures<'_>>) -> Option<(String, Vec<ToolCall>)> {
        Some(match rule.action.as_ref()? {
            Action::Reply(t) => (expand(t, caps), Vec::new()),
            Action::Intent { name, confidence } => (
                json!({"intent": name, "confidence": confidence}).to_string(),
                Vec::new(),
            ),
            Action::ToolCalls(calls) => (
                String::new(),
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, (tool, args))| {
                        ToolCall::new(
                            format!("rule_call_{i}"),
                            tool.clone(),
                            expand_value(args, caps),
                        )
                    })
                    .collect(),
            ),
        })
    }
}

#[async_trait]
impl LlmProvider for RuleBasedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(false, true, false)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let (text, calls) = self.answer(&request.messages);
        let input: usize = request.messages.iter().map(Message::estimated_tokens).sum();
        let usage = Usage {
            input_tokens: input as u64,
            output_tokens: (text.len() as u64).div_ceil(4),
            ..Usage::default()
        };
        Ok(CompletionResponse::new(text, calls, usage).with_model(request.model.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ask(m: &RuleBasedModel, text: &str) -> CompletionResponse {
        let req = CompletionRequest::new("rules", vec![Message::user(text)]);
        futures::executor::block_on(m.complete(&req)).unwrap()
    }

    #[test]
    fn first_matching_rule_answers() {
        let m = RuleBasedModel::new("default")
            .rule(Rule::keywords(["REFUND"]).reply("refund rule"))
            .rule(Rule::regex(r"lead (?P<id>\d+)").unwrap().reply("lead $id"))
            .rule(Rule::keywords(["meet"]).intent("schedule", 0.87));
        assert_eq!(ask(&m, "I want a Refund").content, "refund rule");
        assert_eq!(ask(&m, "show lead 77").content, "lead 77");
        let intent: Value = serde_json::from_str(&ask(&m, "let's meet").content).unwrap();
        assert_eq!(intent, json!({"intent": "schedule", "confidence": 0.87}));
        assert_eq!(ask(&m, "hello").content, "default");
        assert!(Rule::regex("(").is_err());
    }

    #[test]
    fn tool_rule_then_summary() {
        let m = RuleBasedModel::new("?")
            .rule(
                Rule::regex(r"invoices? over (\d+) days")
                    .unwrap()
                    .tool_call("billing.list_overdue", json!({"days": "$1"})),
            )
            .after_tools("Found: {results}");
        let r = ask(&m, "list invoices over 7 days");
        assert_eq!(r.tool_calls[0].arguments, json!({"days": "7"}));
        let req = CompletionRequest::new(
            "rules",
            vec![
                Message::user("list invoices over 7 days"),
                Message::Assistant {
                    content: String::new(),
                    tool_calls: r.tool_calls.clone(),
                },
                Message::tool_result("rule_call_0", "billing.list_overdue", "3 invoices"),
            ],
        );
        let r2 = futures::executor::block_on(m.complete(&req)).unwrap();
        assert_eq!(r2.content, "Found: billing.list_overdue: 3 invoices");
        assert!(r2.tool_calls.is_empty());
    }

    #[test]
    fn after_tool_rules_chain_steps() {
        let m = RuleBasedModel::new("?")
            .rule(Rule::keywords(["sell"]).tool_call("budget.get_balance", json!({})))
            .rule(
                Rule::after_tool("budget.get_balance")
                    .tool_call("ads.create", json!({"budget": 50})),
            )
            .rule(Rule::after_tool("ads.create").reply("Created."));
        let step = |messages: Vec<Message>| {
            futures::executor::block_on(m.complete(&CompletionRequest::new("rules", messages)))
                .unwrap()
        };
        let r1 = step(vec![Message::user("sell chips")]);
        assert_eq!(r1.tool_calls[0].name, "budget.get_balance");
        let r2 = step(vec![
            Message::user("sell chips"),
            r1.to_message(),
            Message::tool_result("rule_call_0", "budget.get_balance", "120"),
        ]);
        assert_eq!(r2.tool_calls[0].name, "ads.create");
        let r3 = step(vec![
            Message::user("sell chips"),
            r2.to_message(),
            Message::tool_result("rule_call_0", "ads.create", "ok"),
        ]);
        assert_eq!(r3.content, "Created.");
        // A failed tool does not trigger its follow-up rule: the results are summarized.
        let r4 = step(vec![
            Message::user("sell chips"),
            Message::tool_error("rule_call_0", "budget.get_balance", "down"),
        ]);
        assert!(r4.tool_calls.is_empty());
    }
}
