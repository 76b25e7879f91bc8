//! What the HTTP providers share: the client, error mapping, retry hints, tool-name mapping and
//! the stream driver.

// Each provider uses part of this; with only some providers compiled in, the rest is unused.
#![cfg_attr(
    not(all(feature = "openai", feature = "anthropic", feature = "ollama")),
    allow(dead_code)
)]

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ProviderConfig;
use crate::error::{Error, Result};
use crate::model::{CompletionRequest, CompletionStream, FinishReason, StreamEvent};

/// How the API key is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header.
    Header(&'static str),
}

/// What error messages need: who, where, how long, and the secret to scrub.
pub(crate) struct Ctx {
    pub provider: String,
    pub base_url: String,
    pub timeout: Duration,
    secret: Option<SecretString>,
}

impl Ctx {
    /// A context with no HTTP behind it (decoding recorded or custom-transport streams).
    pub fn detached(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            base_url: String::new(),
            timeout: Duration::ZERO,
            secret: None,
        }
    }

    /// `text` with the API key replaced, in case a server (or a proxy) echoed it.
    pub fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(s) if !s.expose_secret().is_empty() && text.contains(s.expose_secret()) => {
                text.replace(s.expose_secret(), "[REDACTED]")
            }
            _ => text,
        }
    }

    /// A [`Error::MalformedResponse`] about this provider.
    pub fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::MalformedResponse(self.scrub(format!("{}: {what}", self.provider)))
    }

    /// Maps a transport failure (no HTTP status to go by).
    pub fn transport(&self, e: reqwest::Error) -> Error {
        let provider = &self.provider;
        if e.is_timeout() {
            Error::Timeout(format!(
                "{provider}: no response from {} within {:?}",
                self.base_url, self.timeout
            ))
        } else if e.is_builder() {
            Error::InvalidConfig(self.scrub(format!("{provider}: {e}")))
        } else if e.is_connect() {
            Error::Unavailable {
                message: format!("{provider}: cannot connect to {}", self.base_url),
                source: Some(Box::new(e)),
            }
        } else {
            Error::Unavailable {
                message: self.scrub(format!("{provider}: connection failed: {e}")),
                source: Some(Box::new(e)),
            }
        }
    }

    /// Maps an error from a body stream: a boxed `reqwest::Error` when it is one.
    pub fn body_error(&self, e: Box<dyn std::error::Error + Send + Sync>) -> Error {
        match e.downcast::<reqwest::Error>() {
            Ok(e) => self.transport(*e),
            Err(e) => match e.downcast::<std::io::Error>() {
                Ok(io) => match io
                    .into_inner()
                    .map(|inner| inner.downcast::<reqwest::Error>())
                {
                    Some(Ok(e)) => self.transport(*e),
                    Some(Err(other)) => self.unavailable(other.to_string()),
                    None => self.unavailable("connection failed".to_string()),
                },
                Err(other) => self.unavailable(other.to_string()),
            },
        }
    }

    fn unavailable(&self, what: String) -> Error {
        Error::Unavailable {
            message: self.scrub(format!("{}: {what}", self.provider)),
            source: None,
        }
    }

    /// Classifies an error the API reported, in an HTTP response (`status`) or inside a stream.
    pub fn api_error(&self, e: ApiError) -> Error {
        let ApiError {
            status,
            kind,
            code,
            message,
            retry_after,
        } = e;
        let kind = kind.as_deref().unwrap_or("");
        let code = code.as_deref().unwrap_or("");
        let detail = match (kind, code) {
            ("", "") => String::new(),
            (k, "") | ("", k) => format!(" ({k})"),
            (k, c) => format!(" ({k}, {c})"),
        };
        let text = self.scrub(format!("{}: {message}{detail}", self.provider));
        let lower = message.to_ascii_lowercase();
        let context = code == "context_length_exceeded"
            || kind == "context_length_exceeded"
            || lower.contains("prompt is too long")
            || lower.contains("maximum context length")
            || lower.contains("context length exceeded")
            || lower.contains("context window");
        let overloaded = kind == "overloaded_error"
            || code == "overloaded"
            || code == "server_overloaded"
            || lower.contains("overloaded");
        match status {
            Some(400 | 413) if context => Error::ContextLengthExceeded(text),
            Some(401) => Error::Unauthenticated(text),
            Some(403) => Error::Unauthenticated(text),
            Some(404) => Error::InvalidConfig(text),
            Some(408) => Error::Timeout(text),
            Some(429) if code == "insufficient_quota" || kind == "insufficient_quota" => {
                Error::PermissionDenied(text)
            }
            Some(429) => Error::RateLimited {
                message: text,
                retry_after,
            },
            Some(503 | 529) => Error::Overloaded {
                message: text,
                retry_after,
            },
            Some(500..=599) if overloaded => Error::Overloaded {
                message: text,
                retry_after,
            },
            Some(s @ 500..=599) => Error::Server {
                status: Some(s),
                message: text,
            },
            Some(400..=499) => Error::InvalidInput(text),
            Some(s) => Error::Server {
                status: Some(s),
                message: text,
            },
            // Reported inside a stream: go by the error type.
            None if overloaded => Error::Overloaded {
                message: text,
                retry_after,
            },
            None if context => Error::ContextLengthExceeded(text),
            None => match kind {
                "rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests" => {
                    Error::RateLimited {
                        message: text,
                        retry_after,
                    }
                }
                "authentication_error" => Error::Unauthenticated(text),
                "permission_error" => Error::Unauthenticated(text),
                "invalid_request_error" => Error::InvalidInput(text),
                "timeout_error" => Error::Timeout(text),
                _ => Error::Server {
                    status: None,
                    message: text,
                },
            },
        }
    }

    /// An error from an error body: OpenAI `{"error": {"message", "type", "code"}}`, Anthropic
    /// `{"type": "error", "error": {"type", "message"}}`, Ollama `{"error": "..."}`.
    pub fn error_from_value(
        &self,
        status: Option<u16>,
        body: &Value,
        retry_after: Option<Duration>,
    ) -> Error {
        let err = body.get("error").unwrap_or(body);
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let message = match err {
            Value::String(s) => s.clone(),
            _ => text(err.get("message")).unwrap_or_else(|| truncate(&body.to_string(), 500)),
        };
        self.api_error(ApiError {
            status,
            kind: text(err.get("type")),
            code: text(err.get("code")),
            message,
            retry_after,
        })
    }
}

/// An error as the API described it.
pub(crate) struct ApiError {
    pub status: Option<u16>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The wait a response asks for: `retry-after-ms` (OpenAI), else `retry-after` in seconds or
/// as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let secs = |s: &str| {
        s.parse::<f64>()
            .ok()
            .and_then(|f| Duration::try_from_secs_f64(f).ok())
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0)
    {
        return Some(d);
    }
    let v = get("retry-after")?;
    if let Some(d) = secs(v) {
        return Some(d);
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The HTTP client of one provider.
pub(crate) struct Http {
    client: reqwest::Client,
    pub ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base_url", &self.ctx.base_url)
            .field("timeout", &self.ctx.timeout)
            .field("api_key", &self.ctx.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Http {
    /// A client for `config`, sending `key` as `auth` and `fixed` headers with every request.
    pub fn new(
        config: &ProviderConfig,
        auth: Auth,
        key: Option<SecretString>,
        fixed: &[(&'static str, &'static str)],
    ) -> Result<Self> {
        let base_url = config.resolved_base_url()?;
        let timeout = config.resolved_timeout();
        let mut headers = HeaderMap::new();
        for (k, v) in fixed {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::InvalidConfig(format!("`{k}` is not an HTTP header name")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                Error::InvalidConfig(format!("header `{k}` has a value HTTP does not allow"))
            })?;
            // Custom headers often carry credentials too.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = &key {
            let (name, text) = match auth {
                Auth::Bearer => (
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose_secret()),
                ),
                Auth::Header(h) => (HeaderName::from_static(h), key.expose_secret().to_owned()),
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                Error::InvalidConfig(
                    "the API key has characters HTTP headers do not allow".to_string(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("agentkit/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .read_timeout(timeout)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            ctx: Arc::new(Ctx {
                provider: config.provider_name().to_owned(),
                base_url,
                timeout,
                secret: key,
            }),
        })
    }

    /// POSTs `body` as JSON to `path`; a non-2xx answer becomes its typed error. Without
    /// `stream` the whole exchange is bounded by the timeout; with it, each read is.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
        stream: bool,
    ) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::InvalidInput(format!("request body: {e}")))?;
        let mut request = self
            .client
            .post(format!("{}{path}", self.ctx.base_url))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if !stream {
            request = request.timeout(self.ctx.timeout);
        }
        let response = request.send().await.map_err(|e| self.ctx.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        let bytes = response.bytes().await.unwrap_or_default();
        tracing::debug!(provider = %self.ctx.provider, status = status.as_u16(), "provider returned an error");
        Err(match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.is_object() => self.ctx.error_from_value(Some(status.as_u16()), &v, wait),
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let message = if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    truncate(text.trim(), 500)
                };
                self.ctx.api_error(ApiError {
                    status: Some(status.as_u16()),
                    kind: None,
                    code: None,
                    message,
                    retry_after: wait,
                })
            }
        })
    }

    /// POSTs and parses the JSON answer.
    pub async fn post_json<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R> {
        let response = self.post(path, body, false).await?;
        let bytes = response.bytes().await.map_err(|e| self.ctx.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.ctx.malformed(format!("response: {e}")))
    }
}

/// Maps our namespaced tool names (`crm.lookup_lead`, up to 128 bytes) to what OpenAI and
/// Anthropic accept (`^[a-zA-Z0-9_-]{1,64}$`) and back. Dots become `__`; names still too long
/// (or clashing) are cut and suffixed with a hash. Names already valid are sent unchanged, and
/// the common case (no name needs mapping) allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct ToolNames {
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

/// A name as OpenAI and Anthropic accept it (for schema names too).
pub(crate) fn wire_name(name: &str) -> String {
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
            crate::message::Message::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            crate::message::Message::Tool { name, .. } => vec![name.as_str()],
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

/// The request's model, else the provider's default.
pub(crate) fn model_name<'a>(request: &'a CompletionRequest, default: &'a str) -> Result<&'a str> {
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
pub(crate) fn arguments_text(arguments: &Value) -> Cow<'_, str> {
    match arguments {
        Value::String(raw) => Cow::Borrowed(raw),
        other => Cow::Owned(other.to_string()),
    }
}

/// Tool arguments from a provider's text: parsed JSON, `{}` when empty, else the raw text as a
/// JSON string (the agent returns the problem to the model).
pub(crate) fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A finish reason from the OpenAI, Anthropic or Ollama name. A response with tool calls that
/// says it simply stopped (Ollama does) finished for its tool calls; one cut by the token cap
/// stays [`FinishReason::Length`] (its last call may be incomplete).
pub(crate) fn finish_reason(reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match reason {
        Some("length" | "max_tokens") => FinishReason::Length,
        Some("content_filter" | "refusal") => FinishReason::ContentFilter,
        Some("tool_calls" | "function_call" | "tool_use") => FinishReason::ToolCalls,
        _ if has_tool_calls => FinishReason::ToolCalls,
        None | Some("stop" | "end_turn" | "stop_sequence") => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

/// Whether to keep reading a stream.
pub(crate) enum Flow {
    Continue,
    /// The provider said the response is complete; the rest of the body is not read.
    Done,
}

/// Turns one provider's stream items into [`StreamEvent`]s.
pub(crate) trait Decoder<T>: Send + 'static {
    /// Handles one item, pushing events.
    fn item(&mut self, item: T, out: &mut VecDeque<StreamEvent>) -> Result<Flow>;
    /// The body ended without [`Flow::Done`]: push the last events or report truncation.
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<()>;
}

struct Drive<S, D> {
    source: S,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    error: Option<Error>,
    finished: bool,
}

/// Runs `decoder` over `source`: events in order, then at most one error, then the end.
pub(crate) fn drive<T, S, D>(source: S, decoder: D) -> CompletionStream
where
    T: Send + 'static,
    S: Stream<Item = Result<T>> + Send + Unpin + 'static,
    D: Decoder<T>,
{
    let state = Drive {
        source,
        decoder,
        pending: VecDeque::new(),
        error: None,
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if let Some(e) = st.error.take() {
                st.finished = true;
                return Some((Err(e), st));
            }
            if st.finished {
                return None;
            }
            let step = match st.source.next().await {
                Some(Ok(item)) => st.decoder.item(item, &mut st.pending),
                Some(Err(e)) => Err(e),
                None => {
                    st.finished = true;
                    st.decoder.end(&mut st.pending).map(|()| Flow::Done)
                }
            };
            match step {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => st.finished = true,
                Err(e) => {
                    st.finished = true;
                    st.error = Some(e);
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::message::{Message, ToolCall};
    use crate::tool::ToolSpec;
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
    fn retry_after_reads_seconds_ms_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
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
