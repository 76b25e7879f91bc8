//! The LLM provider contract.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::message::{Message, ToolCall, Usage};
use crate::tool::ToolSpec;

/// How the model may use tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool must be called.
    Tool(String),
}

/// A JSON schema the final answer must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// A name for the schema (providers require one).
    pub name: String,
    /// The JSON schema.
    pub schema: Value,
}

/// One model call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// Model name as the provider knows it.
    pub model: String,
    /// The conversation, system prompt first. Shared: the agent hands each call its running
    /// conversation without copying it (`Arc::make_mut` to change a request's own copy).
    pub messages: Arc<Vec<Message>>,
    /// Tools the model may call (only the agent's allowed tools).
    pub tools: Arc<[ToolSpec]>,
    /// Tool choice.
    pub tool_choice: ToolChoice,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Output token cap.
    pub max_tokens: Option<u32>,
    /// Structured output schema.
    pub output_schema: Option<OutputSchema>,
    /// Free-form metadata (tenant, agent, run ids) for tracing and providers that accept it.
    pub metadata: BTreeMap<String, String>,
}

impl CompletionRequest {
    /// A request for `model` over `messages`, with defaults for everything else.
    pub fn new(model: impl Into<String>, messages: impl Into<Arc<Vec<Message>>>) -> Self {
        Self {
            model: model.into(),
            messages: messages.into(),
            ..Self::default()
        }
    }

    /// Sets the tools.
    pub fn with_tools(mut self, tools: impl Into<Arc<[ToolSpec]>>) -> Self {
        self.tools = tools.into();
        self
    }

    /// Sets the tool choice.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = choice;
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Sets the output token cap.
    pub fn with_max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets a structured output schema.
    pub fn with_output_schema(mut self, schema: OutputSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A complete answer.
    Stop,
    /// The model wants tool results.
    ToolCalls,
    /// The output token cap was reached.
    Length,
    /// The provider filtered the content.
    ContentFilter,
    /// Anything else the provider reported.
    Other(String),
}

/// The result of one model call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompletionResponse {
    /// The assistant's text.
    pub content: String,
    /// Proposed tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Tokens and latency.
    pub usage: Usage,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// The provider that answered (set by fallback chains; empty means the one called).
    pub provider: String,
}

impl CompletionResponse {
    /// A response with text and tool calls; `finish_reason` is derived from whether there are
    /// tool calls.
    pub fn new(content: impl Into<String>, tool_calls: Vec<ToolCall>, usage: Usage) -> Self {
        let finish_reason = if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        };
        Self {
            content: content.into(),
            tool_calls,
            finish_reason,
            usage,
            model: String::new(),
            provider: String::new(),
        }
    }

    /// Sets the model name.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the finish reason.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = reason;
        self
    }

    /// The response as an assistant message.
    pub fn to_message(&self) -> Message {
        Message::Assistant {
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}

/// One event of a streamed model call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// More assistant text.
    TextDelta(String),
    /// A fragment of a tool call. The first fragment of a call carries its id and name; argument
    /// text arrives in pieces and is parsed once the stream finishes.
    ToolCallDelta {
        /// Position of the call in the response.
        index: usize,
        /// Call id (first fragment).
        id: Option<String>,
        /// Tool name (first fragment).
        name: Option<String>,
        /// A piece of the JSON arguments text.
        arguments_delta: String,
    },
    /// Token usage (usually near the end).
    Usage(Usage),
    /// The stream is complete.
    Finish(FinishReason),
}

/// What a provider can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProviderCapabilities {
    /// Real token streaming (otherwise `stream` replays a complete response).
    pub streaming: bool,
    /// Several tool calls in one response.
    pub parallel_tool_calls: bool,
    /// Native JSON-schema constrained output.
    pub structured_output: bool,
}

impl ProviderCapabilities {
    /// Capabilities from flags.
    pub fn new(streaming: bool, parallel_tool_calls: bool, structured_output: bool) -> Self {
        Self {
            streaming,
            parallel_tool_calls,
            structured_output,
        }
    }
}

/// A stream of model events.
pub type CompletionStream = BoxStream<'static, Result<StreamEvent>>;

/// A large language model behind any API.
///
/// Implementations must be cheap to share (`Arc<dyn LlmProvider>`) and must never panic on bad
/// server output: they return [`Error::MalformedResponse`] or pass malformed tool arguments through
/// as a JSON string.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// A short name for traces and usage records (`"openai"`, `"scripted"`).
    fn name(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> ProviderCapabilities;

    /// One complete model call.
    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse>;

    /// A streamed model call. The default replays [`LlmProvider::complete`] as events.
    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let response = self.complete(request).await?;
        Ok(Box::pin(futures::stream::iter(
            response_to_events(response).into_iter().map(Ok),
        )))
    }
}

/// Splits a complete response into stream events (text, one delta per tool call, usage, finish).
pub fn response_to_events(response: CompletionResponse) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(response.tool_calls.len() + 3);
    if !response.content.is_empty() {
        events.push(StreamEvent::TextDelta(response.content));
    }
    for (index, call) in response.tool_calls.into_iter().enumerate() {
        events.push(StreamEvent::ToolCallDelta {
            index,
            id: Some(call.id),
            name: Some(call.name),
            arguments_delta: call.arguments.to_string(),
        });
    }
    events.push(StreamEvent::Usage(response.usage));
    events.push(StreamEvent::Finish(response.finish_reason));
    events
}

/// Assembles [`StreamEvent`]s into a [`CompletionResponse`].
///
/// Tool-call argument fragments are concatenated per call index and parsed at
/// [`StreamAccumulator::finish`]; text that is not valid JSON is kept as a JSON string so the
/// agent can return the problem to the model instead of failing.
///
/// The accumulator holds what a server sends, so it is bounded by [`StreamLimits`]: a tool-call
/// index above the call limit is [`Error::MalformedResponse`], more text or argument bytes than
/// the limits allow is [`Error::LimitExceeded`]; the caller ends the stream with that error.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    content: String,
    calls: Vec<PartialCall>,
    usage: Usage,
    finish: Option<FinishReason>,
    limits: StreamLimits,
    argument_bytes: usize,
}

/// Bounds on what one streamed response may hold (see [`StreamAccumulator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamLimits {
    /// Tool calls in one response (a call's `index` must be below this). Default 128.
    pub max_tool_calls: usize,
    /// Bytes of argument text across all the calls of one response. Default 4 MiB.
    pub max_argument_bytes: usize,
    /// Bytes of assistant text in one response. Default 8 MiB.
    pub max_text_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_tool_calls: 128,
            max_argument_bytes: 4 << 20,
            max_text_bytes: 8 << 20,
        }
    }
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty accumulator with these bounds.
    pub fn with_limits(limits: StreamLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Adds one event; an event that breaks a [`StreamLimits`] bound is an error and changes
    /// nothing.
    pub fn push(&mut self, event: &StreamEvent) -> Result<()> {
        match event {
            StreamEvent::TextDelta(t) => {
                if self.content.len().saturating_add(t.len()) > self.limits.max_text_bytes {
                    return Err(Error::LimitExceeded {
                        limit: "max_text_bytes",
                        detail: format!(
                            "the streamed answer is longer than {} bytes",
                            self.limits.max_text_bytes
                        ),
                    });
                }
                self.content.push_str(t);
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments_delta,
            } => {
                let index = *index;
                if index >= self.limits.max_tool_calls {
                    return Err(Error::MalformedResponse(format!(
                        "tool-call index {index} is not below the limit of {} calls",
                        self.limits.max_tool_calls
                    )));
                }
                let added = arguments_delta
                    .len()
                    .saturating_add(name.as_ref().map_or(0, String::len));
                let total = self.argument_bytes.saturating_add(added);
                if total > self.limits.max_argument_bytes {
                    return Err(Error::LimitExceeded {
                        limit: "max_argument_bytes",
                        detail: format!(
                            "the streamed tool calls are longer than {} bytes",
                            self.limits.max_argument_bytes
                        ),
                    });
                }
                self.argument_bytes = total;
                if self.calls.len() <= index {
                    self.calls.resize_with(index + 1, PartialCall::default);
                }
                let call = &mut self.calls[index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.push_str(name);
                }
                call.arguments.push_str(arguments_delta);
            }
            StreamEvent::Usage(u) => {
                // Providers may report usage in parts (input at start, output at end).
                self.usage.input_tokens = self.usage.input_tokens.max(u.input_tokens);
                self.usage.output_tokens = self.usage.output_tokens.max(u.output_tokens);
                self.usage.cached_input_tokens =
                    self.usage.cached_input_tokens.max(u.cached_input_tokens);
                self.usage.latency = self.usage.latency.max(u.latency);
            }
            StreamEvent::Finish(r) => self.finish = Some(r.clone()),
        }
        Ok(())
    }

    /// Whether a `Finish` event has been seen.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The assembled response. A stream that ended without a `Finish` event is truncated and
    /// yields [`Error::MalformedResponse`].
    pub fn finish(self) -> Result<CompletionResponse> {
        let Some(finish_reason) = self.finish else {
            return Err(Error::MalformedResponse(
                "stream ended before the model finished".into(),
            ));
        };
        let tool_calls = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty() || !c.arguments.is_empty())
            .map(|c| {
                let arguments = if c.arguments.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments))
                };
                ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments,
                }
            })
            .collect();
        Ok(CompletionResponse {
            content: self.content,
            tool_calls,
            finish_reason,
            usage: self.usage,
            model: String::new(),
            provider: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn accumulator_assembles_fragmented_tool_arguments() {
        let mut acc = StreamAccumulator::new();
        for e in [
            StreamEvent::TextDelta("Let me ".into()),
            StreamEvent::TextDelta("check.".into()),
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("c1".into()),
                name: Some("crm.lookup".into()),
                arguments_delta: "{\"id\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments_delta: " 7}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                id: Some("c2".into()),
                name: Some("crm.note".into()),
                arguments_delta: "{not json".into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
        ] {
            acc.push(&e).unwrap();
        }
        let r = acc.finish().unwrap();
        assert_eq!(r.content, "Let me check.");
        assert_eq!(r.tool_calls[0].arguments, json!({"id": 7}));
        assert_eq!(r.tool_calls[1].arguments, json!("{not json"));
    }

    #[test]
    fn truncated_stream_is_an_error_not_a_panic() {
        let mut acc = StreamAccumulator::new();
        acc.push(&StreamEvent::TextDelta("half".into())).unwrap();
        assert_eq!(
            acc.finish().unwrap_err().kind(),
            crate::error::ErrorKind::MalformedResponse
        );
    }
}
