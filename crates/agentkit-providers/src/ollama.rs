//! Ollama's native API: `POST {base_url}/api/chat` (streams are newline-delimited JSON) and
//! `POST {base_url}/api/embed`.
//!
//! # Why the native API and not Ollama's OpenAI-compatible `/v1`
//!
//! - **The context window.** `/v1` cannot set `num_ctx`, and Ollama's default window (a few
//!   thousand tokens) silently drops the *start* of longer prompts: the system prompt and the
//!   tool schemas go first, and the agent misbehaves without any error. The native API takes
//!   `options.num_ctx` per request ([`ProviderConfig::context_window`]).
//! - **Structured output.** `format` takes the JSON schema and constrains decoding to it.
//! - **Model lifetime.** `keep_alive` per request ([`ProviderConfig::keep_alive`]).
//! - Tool-call arguments arrive as JSON objects, and token counts (`prompt_eval_count`,
//!   `eval_count`) come with every final chunk.
//! - Embeddings are native-only (`/api/embed`, batched), so one base URL serves both.
//!
//! `/v1` stays reachable when wanted: kind `openai_compatible` with
//! `base_url = "http://localhost:11434/v1"`.
//!
//! # Mapping
//!
//! - Messages: `system`, `user`, `assistant` with `tool_calls` (arguments as objects), `tool`
//!   with `tool_name` (Ollama matches results by name) and `tool_call_id` (newer servers).
//! - Ollama has no `tool_choice`: `None` sends no tools, `Tool(name)` sends only that tool,
//!   `Required` sends them all.
//! - Tool calls without an id (older servers) get a unique `call_…` id.
//! - A stream ends with the chunk that has `done: true`; a body that ends before it is an
//!   [`Error::MalformedResponse`], as is a line that is not JSON. `{"error": ...}` lines are
//!   typed errors.

use std::borrow::Cow;
use std::collections::VecDeque;
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
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use crate::config::{ProviderConfig, ProviderKind};
use crate::http::{self, Auth, Decoder, ErrorContext, Flow, Http, model_name, parse_arguments};

/// The longest stream line accepted (one chunk of JSON).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// A model served by Ollama.
///
/// ```no_run
/// # fn demo() -> agentkit_core::Result<()> {
/// use agentkit_providers::{ProviderConfig, ProviderKind, ollama::OllamaProvider};
/// let local = OllamaProvider::from_config(
///     &ProviderConfig::new(ProviderKind::Ollama, "qwen3:8b").with_context_window(32_768),
/// )?;
/// # let _ = local; Ok(()) }
/// ```
#[derive(Debug)]
pub struct OllamaProvider {
    http: Http,
    default_model: String,
    num_ctx: Option<u32>,
    keep_alive: Option<Value>,
    default_max_tokens: Option<u32>,
}

fn keep_alive(config: &ProviderConfig) -> Option<Value> {
    // Ollama takes a number of seconds or a Go duration string ("5m").
    config.keep_alive.as_deref().map(|k| {
        k.trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(k.trim()))
    })
}

impl OllamaProvider {
    /// A provider from a config of kind `ollama`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        if config.provider != ProviderKind::Ollama {
            return Err(Error::InvalidConfig(format!(
                "OllamaProvider cannot speak `{}`",
                config.provider
            )));
        }
        let key = config.resolved_api_key()?;
        Ok(Self {
            http: Http::new(config, Auth::Bearer, key, &[])?,
            default_model: config.model.clone(),
            num_ctx: config.context_window,
            keep_alive: keep_alive(config),
            default_max_tokens: config.max_tokens,
        })
    }

    fn body<'a>(&'a self, request: &'a CompletionRequest, stream: bool) -> Result<ChatRequest<'a>> {
        let model = model_name(request, &self.default_model)?;
        let tools: Vec<WireTool<'a>> = request
            .tools
            .iter()
            .filter(|t| match &request.tool_choice {
                ToolChoice::None => false,
                ToolChoice::Tool(name) => &t.name == name,
                ToolChoice::Auto | ToolChoice::Required => true,
            })
            .map(|t| WireTool {
                kind: "function",
                function: WireFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect();
        let options = Options {
            temperature: request.temperature,
            num_predict: request.max_tokens.or(self.default_max_tokens),
            num_ctx: self.num_ctx,
        };
        let has_options = options.temperature.is_some()
            || options.num_predict.is_some()
            || options.num_ctx.is_some();
        Ok(ChatRequest {
            model,
            messages: request.messages.iter().map(wire_message).collect(),
            tools,
            format: request.output_schema.as_ref().map(|s| &s.schema),
            options: has_options.then_some(options),
            stream,
            keep_alive: self.keep_alive.as_ref(),
        })
    }
}

fn wire_message(m: &Message) -> WireMessage<'_> {
    match m {
        Message::System { content } => WireMessage::new("system", content),
        Message::User { content } => WireMessage::new("user", content),
        Message::Assistant {
            content,
            tool_calls,
        } => WireMessage {
            tool_calls: tool_calls
                .iter()
                .map(|c| WireToolCall {
                    function: WireCallFunction {
                        name: &c.name,
                        arguments: match &c.arguments {
                            v @ Value::Object(_) => Cow::Borrowed(v),
                            // Ollama decodes arguments into an object; keep what the model wrote.
                            other => Cow::Owned(json!({ "_raw_arguments": other })),
                        },
                    },
                })
                .collect(),
            ..WireMessage::new("assistant", content)
        },
        Message::Tool {
            call_id,
            name,
            content,
            ..
        } => WireMessage {
            tool_name: Some(name),
            tool_call_id: Some(call_id),
            ..WireMessage::new("tool", content)
        },
    }
}

#[async_trait]
impl LlmProvider for OllamaProvider {
    fn name(&self) -> &str {
        &self.http.ctx.provider
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, true, true)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let body = self.body(request, false)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = body.tools.len(),
            "ollama chat"
        );
        let chunk: ChatChunk = self.http.post_json("/api/chat", &body).await?;
        let ctx = &self.http.ctx;
        if let Some(error) = chunk.error {
            return Err(ctx.error_from_value(None, &json!({ "error": error }), None));
        }
        let Some(message) = chunk.message else {
            return Err(ctx.malformed("response has no message"));
        };
        let tool_calls: Vec<ToolCall> = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: c.id.unwrap_or_else(new_call_id),
                name: c.function.name,
                arguments: match c.function.arguments {
                    Value::Null => Value::Object(Default::default()),
                    Value::String(s) => parse_arguments(&s),
                    other => other,
                },
            })
            .collect();
        let finish = http::finish_reason(chunk.done_reason.as_deref(), !tool_calls.is_empty());
        let usage = Usage {
            input_tokens: chunk.prompt_eval_count.unwrap_or(0),
            output_tokens: chunk.eval_count.unwrap_or(0),
            ..Usage::default()
        };
        Ok(CompletionResponse::new(message.content, tool_calls, usage)
            .with_model(chunk.model)
            .with_finish_reason(finish))
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let body = self.body(request, true)?;
        tracing::debug!(
            provider = self.name(),
            model = body.model,
            messages = request.messages.len(),
            tools = body.tools.len(),
            "ollama chat stream"
        );
        let response = self.http.post("/api/chat", &body, true).await?;
        Ok(decode(response.bytes_stream(), self.http.ctx.clone()))
    }
}

/// Decodes an Ollama `/api/chat` body (`stream: true`, newline-delimited JSON) into stream
/// events, exactly as [`OllamaProvider::stream`] does after the HTTP exchange. For custom
/// transports, recorded streams and benchmarks.
///
/// ```
/// use agentkit_core::model::{FinishReason, StreamEvent};
/// use futures::StreamExt;
///
/// # futures::executor::block_on(async {
/// let body = concat!(
///     r#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#, "\n",
///     r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#, "\n",
/// );
/// let chunks = [Ok::<_, std::io::Error>(bytes::Bytes::from(body))];
/// let events: Vec<_> = agentkit_providers::ollama::decode_stream(futures::stream::iter(chunks))
///     .collect()
///     .await;
/// assert_eq!(events[0].as_ref().unwrap(), &StreamEvent::TextDelta("Hi".into()));
/// assert_eq!(
///     events.last().unwrap().as_ref().unwrap(),
///     &StreamEvent::Finish(FinishReason::Stop)
/// );
/// # });
/// ```
pub fn decode_stream<S, B, E>(body: S) -> CompletionStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    decode(body, Arc::new(ErrorContext::detached("ollama")))
}

fn decode<S, B, E>(body: S, ctx: Arc<ErrorContext>) -> CompletionStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: Buf + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    // Body errors travel through the reader as `io::Error`s of kind `Other`.
    let reader = StreamReader::new(body.map(|r| r.map_err(std::io::Error::other)).boxed());
    let line_ctx = ctx.clone();
    let lines = FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE))
        .map(move |r| r.map_err(|e| line_error(&line_ctx, e)))
        .boxed();
    http::drive(lines, LineDecoder { ctx, next_tool: 0 })
}

fn line_error(ctx: &ErrorContext, e: LinesCodecError) -> Error {
    match e {
        LinesCodecError::MaxLineLengthExceeded => {
            ctx.malformed(format!("a stream line is longer than {MAX_LINE} bytes"))
        }
        // The codec's own complaint (a line that is not UTF-8).
        LinesCodecError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            ctx.malformed(format!("invalid stream line: {io}"))
        }
        // The body failed: mapped like a transport error.
        LinesCodecError::Io(io) => ctx.body_error(Box::new(io)),
    }
}

fn new_call_id() -> String {
    format!("call_{}", uuid::Uuid::now_v7().simple())
}

struct LineDecoder {
    ctx: Arc<ErrorContext>,
    next_tool: usize,
}

impl Decoder<String> for LineDecoder {
    fn item(&mut self, line: String, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk: ChatChunk = serde_json::from_str(line).map_err(|e| {
            self.ctx
                .malformed(format!("stream line is not valid JSON: {e}"))
        })?;
        if let Some(error) = chunk.error {
            return Err(self
                .ctx
                .error_from_value(None, &json!({ "error": error }), None));
        }
        if let Some(message) = chunk.message {
            if !message.content.is_empty() {
                out.push_back(StreamEvent::TextDelta(message.content));
            }
            for call in message.tool_calls.unwrap_or_default() {
                let arguments_delta = match call.function.arguments {
                    Value::Null => String::new(),
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push_back(StreamEvent::ToolCallDelta {
                    index: self.next_tool,
                    id: Some(call.id.unwrap_or_else(new_call_id)),
                    name: Some(call.function.name),
                    arguments_delta,
                });
                self.next_tool += 1;
            }
        }
        if chunk.done {
            out.push_back(StreamEvent::Usage(Usage {
                input_tokens: chunk.prompt_eval_count.unwrap_or(0),
                output_tokens: chunk.eval_count.unwrap_or(0),
                ..Usage::default()
            }));
            out.push_back(StreamEvent::Finish(http::finish_reason(
                chunk.done_reason.as_deref(),
                self.next_tool > 0,
            )));
            return Ok(Flow::Done);
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<()> {
        Err(self.ctx.malformed("stream ended before the model finished"))
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
    format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<Options>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<&'a Value>,
}

#[derive(Serialize)]
struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_ctx: Option<u32>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> WireMessage<'a> {
    fn new(role: &'static str, content: &'a str) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_name: None,
            tool_call_id: None,
        }
    }
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    function: WireCallFunction<'a>,
}

#[derive(Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: Cow<'a, Value>,
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: Option<ResponseMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Deserialize)]
struct ResponseToolCall {
    #[serde(default)]
    id: Option<String>,
    function: ResponseFunction,
}

#[derive(Deserialize)]
struct ResponseFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

// ---- embeddings --------------------------------------------------------------------------

/// Ollama embeddings (`POST {base_url}/api/embed`), batched.
///
/// [`ProviderConfig::dimensions`] is required (the model's vector length; every returned
/// vector is checked against it). Ollama truncates inputs longer than the model's context.
#[derive(Debug)]
pub struct OllamaEmbedder {
    http: Http,
    model: String,
    dimensions: usize,
    batch_size: usize,
    keep_alive: Option<Value>,
}

impl OllamaEmbedder {
    /// An embedder from a config of kind `ollama`.
    pub fn from_config(config: &ProviderConfig) -> Result<Self> {
        if config.provider != ProviderKind::Ollama {
            return Err(Error::InvalidConfig(format!(
                "OllamaEmbedder cannot speak `{}`",
                config.provider
            )));
        }
        let dimensions = config.dimensions.filter(|d| *d > 0).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "embedding model `{}`: set `dimensions` (the vector length)",
                config.model
            ))
        })?;
        if config.batch_size == Some(0) {
            return Err(Error::InvalidConfig("batch size must be positive".into()));
        }
        let key = config.resolved_api_key()?;
        Ok(Self {
            http: Http::new(config, Auth::Bearer, key, &[])?,
            model: config.model.clone(),
            dimensions,
            batch_size: config.batch_size.unwrap_or(64),
            keep_alive: keep_alive(config),
        })
    }
}

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<&'a Value>,
}

#[derive(Deserialize)]
struct EmbedResponse {
    embeddings: Vec<Vec<f32>>,
}

#[async_trait]
impl Embedder for OllamaEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            let body = EmbedRequest {
                model: &self.model,
                input: batch,
                keep_alive: self.keep_alive.as_ref(),
            };
            let response: EmbedResponse = self.http.post_json("/api/embed", &body).await?;
            if response.embeddings.len() != batch.len() {
                return Err(self.http.ctx.malformed(format!(
                    "{} embeddings for {} inputs",
                    response.embeddings.len(),
                    batch.len()
                )));
            }
            for v in response.embeddings {
                crate::http::check_dimensions(&self.http.ctx.provider, self.dimensions, &v)?;
                out.push(v);
            }
        }
        Ok(out)
    }
}
