//! OpenAI Chat Completions (`POST {base_url}/chat/completions`) and embeddings
//! (`POST {base_url}/embeddings`), for OpenAI and any OpenAI-compatible server.
//!
//! - Messages map one to one (`system`, `user`, `assistant` with `tool_calls`, `tool` with
//!   `tool_call_id`); several tool calls in one response are kept in order.
//! - Tools are sent as `function` tools; namespaced names (`crm.lookup_lead`) become
//!   `crm__lookup_lead` on the wire (OpenAI allows `[a-zA-Z0-9_-]{1,64}`) and are mapped back.
//! - `tool_choice` is sent when tools are; `output_schema` becomes
//!   `response_format: {type: "json_schema", ...}` (`strict` per
//!   [`ProviderConfig::strict_output_schema`]).
//! - The output cap is sent as `max_completion_tokens` to OpenAI (reasoning models reject
//!   `max_tokens`) and as `max_tokens` to compatible servers (most only know that one).
//! - Streams ask for `stream_options: {include_usage: true}`; tool-call argument fragments
//!   become [`StreamEvent::ToolCallDelta`]s, numbered `0, 1, 2...` in the order the wire
//!   `index`es first appear (a server's index may be sparse or huge, `2^40`, `u64::MAX`: it
//!   only groups fragments), the usage-only final chunk a
//!   [`StreamEvent::Usage`] (cached prompt tokens from
//!   `usage.prompt_tokens_details.cached_tokens`), and `data: [DONE]` the
//!   [`StreamEvent::Finish`]. A body that ends before a finish reason is a
//!   [`Error::MalformedResponse`]; so is a `data:` line that is not JSON.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
    StreamEvent, ToolChoice,
};
use agentkit_core::retrieval::Embedder;
use async_trait::async_trait;
use bytes::Buf;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::http::{
    self, Auth, Decoder, ErrorContext, Flow, Http, ToolNames, arguments_text, model_name,
    parse_arguments, wire_name,
};
use crate::sse::{self, Sse};

/// An OpenAI or OpenAI-compatible chat model.
///
/// ```no_run
/// # async fn demo() -> agentkit_core::Result<()> {
/// use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, openai::OpenAiProvider};
///
/// let local = OpenAiProvider::from_config(
///     &ProviderConfig::new(ProviderKind::OpenAiCompatible, "qwen2.5")
///         .with_base_url("http://localhost:8000/v1"),
/// )?;
/// let openai = OpenAiProvider::from_config(
///     &ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini")
///         .with_api_key(KeyRef::env("OPENAI_API_KEY")),
/// )?;
/// # let _ = (local, openai); Ok(()) }
/// ```
#[derive(Debug)]
pub struct OpenAiProvider {
    http: Http,
    default_model: String,
    compatible: bool,
    strict: bool,
    default_max_tokens: Option<u32>,
}

impl OpenAiProvider {
    /// A provider from a config of kind `openai` or `openai_compatible`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        let compatible = match config.provider {
            ProviderKind::OpenAi => false,
            ProviderKind::OpenAiCompatible => true,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "OpenAiProvider cannot speak `{other}`"
                )));
            }
        };
        let key = config.resolved_api_key()?;
        Ok(Self {
            http: Http::new(config, Auth::Bearer, key, &[])?,
            default_model: config.model.clone(),
            compatible,
            strict: config.strict_output_schema,
            default_max_tokens: config.max_tokens,
        })
    }

    fn body<'a>(
        &'a self,
        request: &'a CompletionRequest,
        names: &'a ToolNames,
        stream: bool,
    ) -> Result<ChatRequest<'a>> {
        let model = model_name(request, &self.default_model)?;
        let max_tokens = request.max_tokens.or(self.default_max_tokens);
        let tools: Vec<WireTool<'a>> = request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireFunction {
                    name: names.wire(&t.name),
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect();
        let tool_choice = (!tools.is_empty()).then(|| match &request.tool_choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => {
                json!({"type": "function", "function": {"name": names.wire(name)}})
            }
        });
        Ok(ChatRequest {
            model,
            messages: wire_messages(&request.messages, names),
            tools,
            tool_choice,
            temperature: request.temperature,
            max_tokens: if self.compatible { max_tokens } else { None },
            max_completion_tokens: if self.compatible { None } else { max_tokens },
            response_format: request.output_schema.as_ref().map(|s| {
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": wire_name(&s.name), "schema": s.schema, "strict": self.strict}
                })
            }),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        })
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.http.ctx.provider
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, true, true)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let names = ToolNames::for_request(request);
        let body = self.body(request, &names, false)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "chat completion"
        );
        let response: ChatResponse = self.http.post_json("/chat/completions", &body).await?;
        response.into_completion(&names, &self.http.ctx)
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let names = ToolNames::for_request(request);
        let body = self.body(request, &names, true)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "chat completion stream"
        );
        let response = self.http.post("/chat/completions", &body, true).await?;
        let ctx = self.http.ctx.clone();
        Ok(decode(response.bytes_stream(), Arc::new(names), ctx))
    }
}

/// Decodes an OpenAI Chat Completions SSE body (`stream: true`) into stream events, exactly as
/// [`OpenAiProvider::stream`] does after the HTTP exchange (tool names pass through unmapped).
/// For custom transports, recorded streams and benchmarks.
pub fn decode_stream<S, B, E>(body: S) -> CompletionStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let ctx = Arc::new(ErrorContext::detached("openai"));
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
        ChunkDecoder {
            names,
            ctx,
            finish: None,
            calls: HashMap::new(),
        },
    )
}

struct ChunkDecoder {
    names: Arc<ToolNames>,
    ctx: Arc<ErrorContext>,
    finish: Option<String>,
    /// Wire `index` → our dense call index (`0..n`, in order of first appearance).
    calls: HashMap<u64, usize>,
}

impl ChunkDecoder {
    fn finish_event(&self) -> StreamEvent {
        StreamEvent::Finish(http::finish_reason(
            self.finish.as_deref(),
            !self.calls.is_empty(),
        ))
    }

    /// The dense index of the call a wire `index` names: whatever the server numbers its
    /// calls with, consumers see `0..n` (an index is only as large as the calls are many).
    fn call_index(&mut self, wire: u64) -> usize {
        let next = self.calls.len();
        *self.calls.entry(wire).or_insert(next)
    }
}

impl Decoder<Sse> for ChunkDecoder {
    fn item(&mut self, sse: Sse, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        // OpenAI sends unnamed events; a named one other than `error` is something this
        // decoder does not know (a gateway's keep-alive, a future event type): skip it.
        let is_error = sse.event.as_deref() == Some("error");
        if !matches!(sse.event.as_deref(), None | Some("" | "message" | "error")) {
            return Ok(Flow::Continue);
        }
        let Some(data) = sse.data else {
            return Ok(Flow::Continue);
        };
        let data = data.trim();
        if is_error {
            let body = serde_json::from_str::<Value>(data)
                .unwrap_or_else(|_| json!({ "error": { "message": data } }));
            return Err(self.ctx.error_from_value(None, &body, None));
        }
        if data == "[DONE]" {
            if self.finish.is_none() && self.calls.is_empty() {
                // Some compatible servers send no finish reason; [DONE] still ends the answer.
                self.finish = Some("stop".into());
            }
            out.push_back(self.finish_event());
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            self.ctx
                .malformed(format!("stream chunk is not valid JSON: {e}"))
        })?;
        if let Some(error) = chunk.error {
            return Err(self
                .ctx
                .error_from_value(None, &json!({ "error": error }), None));
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            let delta = choice.delta.unwrap_or_default();
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::TextDelta(text));
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::TextDelta(text));
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                // Without an index, the call's position in the chunk stands in.
                let index = self.call_index(call.index.unwrap_or(position as u64));
                let function = call.function.unwrap_or_default();
                out.push_back(StreamEvent::ToolCallDelta {
                    index,
                    id: call.id,
                    name: function.name.map(|n| self.names.original(&n)),
                    arguments_delta: function.arguments.unwrap_or_default(),
                });
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(StreamEvent::Usage(usage.into()));
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<()> {
        // No [DONE]: complete only if the model said it finished.
        if self.finish.is_some() {
            out.push_back(self.finish_event());
            Ok(())
        } else {
            Err(self.ctx.malformed("stream ended before the model finished"))
        }
    }
}

// ---- wire format -------------------------------------------------------------------------

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
pub(crate) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction<'a>,
}

#[derive(Serialize)]
pub(crate) struct WireFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a Value,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: Cow<'a, str>,
}

fn wire_messages<'a>(messages: &'a [Message], names: &'a ToolNames) -> Vec<WireMessage<'a>> {
    messages
        .iter()
        .map(|m| match m {
            Message::System { content } => WireMessage::System { content },
            Message::User { content } => WireMessage::User { content },
            Message::Assistant {
                content,
                tool_calls,
            } => WireMessage::Assistant {
                // `null` content is only valid next to tool calls.
                content: (!content.is_empty() || tool_calls.is_empty()).then_some(content.as_str()),
                tool_calls: tool_calls
                    .iter()
                    .map(|c| WireToolCall {
                        id: &c.id,
                        kind: "function",
                        function: WireCallFunction {
                            name: names.wire(&c.name),
                            arguments: arguments_text(&c.arguments),
                        },
                    })
                    .collect(),
            },
            Message::Tool {
                call_id, content, ..
            } => WireMessage::Tool {
                tool_call_id: call_id,
                content,
            },
        })
        .collect()
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Deserialize)]
struct ResponseToolCall {
    #[serde(default)]
    id: String,
    function: ResponseFunction,
}

#[derive(Deserialize)]
struct ResponseFunction {
    name: String,
    /// A JSON string per the spec; some compatible servers send an object.
    #[serde(default)]
    arguments: Value,
}

impl ChatResponse {
    fn into_completion(self, names: &ToolNames, ctx: &ErrorContext) -> Result<CompletionResponse> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(ctx.malformed("response has no choices"));
        };
        let tool_calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: names.original(&c.function.name),
                arguments: match c.function.arguments {
                    Value::String(text) => parse_arguments(&text),
                    Value::Null => Value::Object(Default::default()),
                    other => other,
                },
            })
            .collect();
        let finish_reason =
            http::finish_reason(choice.finish_reason.as_deref(), !tool_calls.is_empty());
        let content = choice
            .message
            .content
            .or(choice.message.refusal)
            .unwrap_or_default();
        let usage = self.usage.map(Usage::from).unwrap_or_default();
        Ok(CompletionResponse::new(content, tool_calls, usage)
            .with_model(self.model)
            .with_finish_reason(finish_reason))
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize, Default)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            ..Usage::default()
        }
    }
}

// ---- embeddings --------------------------------------------------------------------------

/// OpenAI embeddings (`POST {base_url}/embeddings`), batched; also OpenAI-compatible servers.
///
/// The vector length is [`ProviderConfig::dimensions`], or the native size of a known OpenAI
/// model (`text-embedding-3-small` 1536, `text-embedding-3-large` 3072,
/// `text-embedding-ada-002` 1536). For kind `openai` a configured length is also sent as
/// `dimensions` (OpenAI shortens `text-embedding-3` vectors); compatible servers are not sent
/// it. Every returned vector is checked against the length.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    http: Http,
    model: String,
    dimensions: usize,
    send_dimensions: bool,
    batch_size: usize,
}

impl OpenAiEmbedder {
    /// An embedder from a config of kind `openai` or `openai_compatible`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        let compatible = match config.provider {
            ProviderKind::OpenAi => false,
            ProviderKind::OpenAiCompatible => true,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "OpenAiEmbedder cannot speak `{other}`"
                )));
            }
        };
        let native = match config.model.as_str() {
            "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
            "text-embedding-3-large" => Some(3072),
            _ => None,
        };
        let dimensions = config.dimensions.or(native).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "embedding model `{}`: set `dimensions` (the vector length)",
                config.model
            ))
        })?;
        if dimensions == 0 || config.batch_size == Some(0) {
            return Err(Error::InvalidConfig(
                "embedding dimensions and batch size must be positive".into(),
            ));
        }
        let key = config.resolved_api_key()?;
        Ok(Self {
            http: Http::new(config, Auth::Bearer, key, &[])?,
            model: config.model.clone(),
            dimensions,
            send_dimensions: !compatible && config.dimensions.is_some(),
            batch_size: config.batch_size.unwrap_or(256),
        })
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            let body = EmbeddingRequest {
                model: &self.model,
                input: batch,
                encoding_format: "float",
                dimensions: self.send_dimensions.then_some(self.dimensions),
            };
            let response: EmbeddingResponse = self.http.post_json("/embeddings", &body).await?;
            let mut data = response.data;
            if data.len() != batch.len() {
                return Err(self.http.ctx.malformed(format!(
                    "{} embeddings for {} inputs",
                    data.len(),
                    batch.len()
                )));
            }
            data.sort_by_key(|d| d.index.unwrap_or(usize::MAX));
            for d in data {
                crate::http::check_dimensions(
                    &self.http.ctx.provider,
                    self.dimensions,
                    &d.embedding,
                )?;
                out.push(d.embedding);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use agentkit_core::model::FinishReason;
    use futures::StreamExt;

    fn chunks(lines: &[&str]) -> Vec<std::result::Result<bytes::Bytes, std::io::Error>> {
        lines
            .iter()
            .map(|l| Ok(bytes::Bytes::from(format!("{l}\n\n"))))
            .collect()
    }

    async fn collect(lines: &[&str]) -> Vec<Result<StreamEvent>> {
        decode_stream(futures::stream::iter(chunks(lines)))
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_stream_without_done_or_finish_is_malformed() {
        let events =
            collect(&[r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#]).await;
        assert!(matches!(events[0], Ok(StreamEvent::TextDelta(_))));
        assert_eq!(
            events[1].as_ref().unwrap_err().kind(),
            agentkit_core::ErrorKind::MalformedResponse
        );
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn done_without_a_finish_reason_is_a_stop() {
        let events = collect(&[
            r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            "data: [DONE]",
        ])
        .await;
        assert_eq!(
            events.last().unwrap().as_ref().unwrap(),
            &StreamEvent::Finish(FinishReason::Stop)
        );
    }
}
