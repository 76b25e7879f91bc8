//! The Anthropic Messages API (`POST {base_url}/v1/messages`, `anthropic-version: 2023-06-01`).
//!
//! - System messages (the prompt, retrieved context) are joined into the top-level `system`.
//! - Assistant tool calls become `tool_use` blocks; tool results become `tool_result` blocks
//!   (with `is_error`), and consecutive results share one `user` message as the API requires.
//! - `max_tokens` is always sent: the request's, else [`ProviderConfig::max_tokens`], else 4096.
//! - Tool names are mapped like OpenAI's (`crm.lookup_lead` ⇄ `crm__lookup_lead`);
//!   `tool_choice` is `auto` / `none` / `any` / `{type: "tool", name}`.
//! - The Messages API has no JSON-schema output mode in its stable version: an
//!   `output_schema` is stated in the system prompt, and the agent validates the answer (with
//!   its correction loop) as for any provider.
//! - Streams: `message_start` (input usage, cache reads counted as cached input),
//!   `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`) /
//!   `content_block_stop`, `message_delta` (output usage, stop reason), `message_stop`; `ping`
//!   and unknown events are ignored, an `error` event is a typed error. A stream that ends
//!   without a stop reason is an [`Error::MalformedResponse`].

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
    StreamEvent, ToolChoice,
};
use async_trait::async_trait;
use bytes::Buf;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::http::{
    self, Auth, Decoder, ErrorContext, Flow, Http, ToolNames, model_name, parse_arguments,
};
use crate::sse::{self, Sse};

/// The `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// The output cap sent when neither the request nor the config sets one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// An Anthropic model.
///
/// ```no_run
/// # fn demo() -> agentkit_core::Result<()> {
/// use agentkit_providers::{ProviderConfig, ProviderKind, anthropic::AnthropicProvider};
/// // Reads ANTHROPIC_API_KEY.
/// let claude = AnthropicProvider::from_config(
///     &ProviderConfig::new(ProviderKind::Anthropic, "claude-sonnet-4-5"),
/// )?;
/// # let _ = claude; Ok(()) }
/// ```
#[derive(Debug)]
pub struct AnthropicProvider {
    http: Http,
    default_model: String,
    default_max_tokens: u32,
}

impl AnthropicProvider {
    /// A provider from a config of kind `anthropic`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        if config.provider != ProviderKind::Anthropic {
            return Err(Error::InvalidConfig(format!(
                "AnthropicProvider cannot speak `{}`",
                config.provider
            )));
        }
        let key = config.resolved_api_key()?;
        Ok(Self {
            http: Http::new(
                config,
                Auth::Header("x-api-key"),
                key,
                &[("anthropic-version", API_VERSION)],
            )?,
            default_model: config.model.clone(),
            default_max_tokens: config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }

    fn body<'a>(
        &'a self,
        request: &'a CompletionRequest,
        names: &'a ToolNames,
        stream: bool,
    ) -> Result<MessagesRequest<'a>> {
        let model = model_name(request, &self.default_model)?;
        let mut system: Vec<Cow<'a, str>> = Vec::new();
        let mut messages: Vec<WireMessage<'a>> = Vec::new();
        for m in request.messages.iter() {
            match m {
                Message::System { content } => system.push(Cow::Borrowed(content)),
                Message::User { content } => {
                    if !content.is_empty() {
                        push(&mut messages, "user", Block::Text { text: content });
                    }
                }
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    if !content.is_empty() {
                        push(&mut messages, "assistant", Block::Text { text: content });
                    }
                    for call in tool_calls {
                        let input = match &call.arguments {
                            v @ Value::Object(_) => Cow::Borrowed(v),
                            // `input` must be an object; keep what the model wrote.
                            other => Cow::Owned(json!({ "_raw_arguments": other })),
                        };
                        push(
                            &mut messages,
                            "assistant",
                            Block::ToolUse {
                                id: &call.id,
                                name: names.wire(&call.name),
                                input,
                            },
                        );
                    }
                }
                Message::Tool {
                    call_id,
                    content,
                    is_error,
                    ..
                } => push(
                    &mut messages,
                    "user",
                    Block::ToolResult {
                        tool_use_id: call_id,
                        content,
                        is_error: *is_error,
                    },
                ),
            }
        }
        if let Some(schema) = &request.output_schema {
            system.push(Cow::Owned(format!(
                "When you give your final answer, reply with only a JSON value (no prose, no code \
                 fence) that satisfies this JSON schema named `{}`:\n{}",
                schema.name, schema.schema
            )));
        }
        let tools: Vec<WireTool<'a>> = request
            .tools
            .iter()
            .map(|t| WireTool {
                name: names.wire(&t.name),
                description: &t.description,
                input_schema: &t.parameters,
            })
            .collect();
        let tool_choice = (!tools.is_empty()).then(|| match &request.tool_choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": names.wire(name)}),
        });
        Ok(MessagesRequest {
            model,
            max_tokens: request.max_tokens.unwrap_or(self.default_max_tokens),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
            tools,
            tool_choice,
            temperature: request.temperature,
            stream,
        })
    }
}

/// Appends a block to the last message when it has the same role (consecutive tool results
/// become one user message), else starts a message.
fn push<'a>(messages: &mut Vec<WireMessage<'a>>, role: &'static str, block: Block<'a>) {
    if let Some(last) = messages.last_mut()
        && last.role == role
    {
        last.content.push(block);
    } else {
        messages.push(WireMessage {
            role,
            content: vec![block],
        });
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.http.ctx.provider
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, true, false)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let names = ToolNames::for_request(request);
        let body = self.body(request, &names, false)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "messages request"
        );
        let response: MessagesResponse = self.http.post_json("/v1/messages", &body).await?;
        Ok(response.into_completion(&names))
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let names = ToolNames::for_request(request);
        let body = self.body(request, &names, true)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "messages stream"
        );
        let response = self.http.post("/v1/messages", &body, true).await?;
        Ok(decode(
            response.bytes_stream(),
            Arc::new(names),
            self.http.ctx.clone(),
        ))
    }
}

/// Decodes an Anthropic Messages SSE body (`stream: true`) into stream events, exactly as
/// [`AnthropicProvider::stream`] does after the HTTP exchange (tool names pass through
/// unmapped). For custom transports, recorded streams and benchmarks.
pub fn decode_stream<S, B, E>(body: S) -> CompletionStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let ctx = Arc::new(ErrorContext::detached("anthropic"));
    decode(body, Arc::new(ToolNames::default()), ctx)
}

fn decode<S, B, E>(body: S, names: Arc<ToolNames>, ctx: Arc<ErrorContext>) -> CompletionStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let events = sse::events(body, ctx.clone());
    http::drive(
        events,
        EventDecoder {
            names,
            ctx,
            tools: HashMap::new(),
            stop_reason: None,
        },
    )
}

struct EventDecoder {
    names: Arc<ToolNames>,
    ctx: Arc<ErrorContext>,
    /// Content block index → tool call index.
    tools: HashMap<usize, usize>,
    stop_reason: Option<String>,
}

impl EventDecoder {
    fn tool_index(&mut self, block: usize) -> usize {
        let next = self.tools.len();
        *self.tools.entry(block).or_insert(next)
    }

    fn finish(&self) -> StreamEvent {
        StreamEvent::Finish(http::finish_reason(
            self.stop_reason.as_deref(),
            !self.tools.is_empty(),
        ))
    }
}

impl Decoder<Sse> for EventDecoder {
    fn item(&mut self, sse: Sse, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        let Some(data) = sse.data.as_deref().map(str::trim).filter(|d| !d.is_empty()) else {
            return Ok(Flow::Continue);
        };
        let event: StreamWire = serde_json::from_str(data).map_err(|e| {
            self.ctx
                .malformed(format!("stream event is not valid JSON: {e}"))
        })?;
        let kind = event.kind.as_deref().or(sse.event.as_deref()).unwrap_or("");
        match kind {
            "message_start" => {
                if let Some(usage) = event.message.and_then(|m| m.usage) {
                    out.push_back(StreamEvent::Usage(usage.into()));
                }
            }
            "content_block_start" => {
                let index = event.index.unwrap_or(0);
                let block = event.content_block.unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let text = |k: &str| block.get(k).and_then(Value::as_str);
                        let id = text("id").map(str::to_owned);
                        let name = text("name").map(|n| self.names.original(n));
                        // Streams start tool input as `{}` and send it in deltas.
                        let arguments_delta = match block.get("input") {
                            Some(Value::Object(o)) if !o.is_empty() => block["input"].to_string(),
                            _ => String::new(),
                        };
                        out.push_back(StreamEvent::ToolCallDelta {
                            index: self.tool_index(index),
                            id,
                            name,
                            arguments_delta,
                        });
                    }
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str)
                            && !t.is_empty()
                        {
                            out.push_back(StreamEvent::TextDelta(t.to_owned()));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = event.index.unwrap_or(0);
                let delta = event.delta.unwrap_or(Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str);
                match text("type") {
                    Some("text_delta") => {
                        if let Some(t) = text("text").filter(|t| !t.is_empty()) {
                            out.push_back(StreamEvent::TextDelta(t.to_owned()));
                        }
                    }
                    Some("input_json_delta") => {
                        let fragment = text("partial_json").unwrap_or("").to_owned();
                        out.push_back(StreamEvent::ToolCallDelta {
                            index: self.tool_index(index),
                            id: None,
                            name: None,
                            arguments_delta: fragment,
                        });
                    }
                    // thinking_delta, signature_delta, citations_delta, ...
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = event.usage {
                    out.push_back(StreamEvent::Usage(usage.into()));
                }
            }
            "message_stop" => {
                out.push_back(self.finish());
                return Ok(Flow::Done);
            }
            "error" => {
                let body = serde_json::from_str::<Value>(data).unwrap_or(Value::Null);
                return Err(self.ctx.error_from_value(None, &body, None));
            }
            // ping, content_block_stop, and event types added after this was written.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<()> {
        if self.stop_reason.is_some() {
            out.push_back(self.finish());
            Ok(())
        } else {
            Err(self.ctx.malformed("stream ended before the model finished"))
        }
    }
}

// ---- wire format -------------------------------------------------------------------------

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Cow<'a, Value>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    model: String,
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

impl MessagesResponse {
    fn into_completion(self, names: &ToolNames) -> CompletionResponse {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                ResponseBlock::Text { text: t } => text.push_str(&t),
                ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                    id,
                    name: names.original(&name),
                    arguments: match input {
                        Value::Null => Value::Object(Default::default()),
                        Value::String(s) => parse_arguments(&s),
                        other => other,
                    },
                }),
                ResponseBlock::Other => {}
            }
        }
        let finish = http::finish_reason(self.stop_reason.as_deref(), !tool_calls.is_empty());
        let usage = self.usage.map(Usage::from).unwrap_or_default();
        CompletionResponse::new(text, tool_calls, usage)
            .with_model(self.model)
            .with_finish_reason(finish)
    }
}

#[derive(Deserialize)]
struct StreamWire {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// Anthropic counts cache reads and writes apart from `input_tokens`; ours includes them.
    fn from(u: WireUsage) -> Self {
        let cached = u.cache_read_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens.unwrap_or(0)
                + cached
                + u.cache_creation_input_tokens.unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
            cached_input_tokens: cached,
            ..Usage::default()
        }
    }
}
