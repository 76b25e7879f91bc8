//! Failures as typed errors: [`ErrorContext`] maps transport failures, HTTP statuses and API
//! error bodies ([`ApiError`]) onto [`Error`], scrubbing the API key; [`retry_after`] reads the
//! wait a response asks for.

use std::time::Duration;

use agentkit_core::error::Error;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What error messages need: who, where, how long, and the secrets to scrub.
///
/// Every [`Error`] it makes names the provider, and its text never holds the API key, the
/// config's custom header values or the credentials of `base_url` (see
/// [`ErrorContext::scrub`]); the server is quoted without userinfo or query string. An [`Http`](super::Http) client has one
/// ([`Http::ctx`](super::Http::ctx)); decoders of recorded streams use
/// [`ErrorContext::detached`].
///
/// ```
/// use std::time::Duration;
/// use agentkit_core::ErrorKind;
/// use agentkit_providers::http::{ApiError, ErrorContext};
///
/// let ctx = ErrorContext::detached("acme-speech");
/// let e = ctx.api_error(ApiError {
///     status: Some(429),
///     kind: None,
///     code: None,
///     message: "slow down".into(),
///     retry_after: Some(Duration::from_secs(2)),
/// });
/// assert_eq!(e.kind(), ErrorKind::RateLimited);
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
///
/// // An error body as OpenAI, Anthropic or Ollama write it.
/// let body = serde_json::json!({"error": {"message": "no such model", "type": "invalid_request_error"}});
/// let e = ctx.error_from_value(Some(404), &body, None);
/// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
/// assert!(e.to_string().contains("acme-speech: no such model"));
/// ```
pub struct ErrorContext {
    /// The provider's name, the prefix of every message.
    pub provider: String,
    /// The server (empty when detached). Messages quote it through
    /// [`ErrorContext::shown_url`].
    pub base_url: String,
    /// The client's timeout, quoted by timeout errors.
    pub timeout: Duration,
    pub(super) secret: Option<SecretString>,
    /// Other credentials to scrub: header values, `base_url`'s userinfo and query values.
    pub(super) others: Vec<SecretString>,
}

impl ErrorContext {
    /// A context with no HTTP behind it (decoding recorded or custom-transport streams).
    pub fn detached(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            base_url: String::new(),
            timeout: Duration::ZERO,
            secret: None,
            others: Vec::new(),
        }
    }

    /// Sets the secrets to scrub besides the API key (longest first, so a secret that
    /// contains another is replaced whole).
    pub(super) fn with_other_secrets(mut self, mut others: Vec<String>) -> Self {
        others.sort_by_key(|s| std::cmp::Reverse(s.len()));
        others.dedup();
        self.others = others.into_iter().map(SecretString::from).collect();
        self
    }

    /// `text` with the API key and the other secrets (custom header values, `base_url`
    /// credentials) replaced, in case a server (or a proxy) echoed them.
    pub fn scrub(&self, mut text: String) -> String {
        for s in self.secret.iter().chain(&self.others) {
            let s = s.expose_secret();
            if !s.is_empty() && text.contains(s) {
                text = text.replace(s, crate::redact::REDACTED);
            }
        }
        text
    }

    /// The server as messages quote it: without userinfo or query string.
    pub fn shown_url(&self) -> std::borrow::Cow<'_, str> {
        crate::redact::url(&self.base_url)
    }

    /// A [`Error::MalformedResponse`] about this provider.
    pub fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::MalformedResponse(self.scrub(format!("{}: {what}", self.provider)))
    }

    /// Maps a transport failure (no HTTP status to go by). The URL the reqwest error carries
    /// (shown by its `Display` and `Debug`, and kept as the error's source) loses its userinfo,
    /// query string and fragment first.
    pub fn transport(&self, mut e: reqwest::Error) -> Error {
        if let Some(url) = e.url_mut() {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
        }
        let provider = &self.provider;
        if e.is_timeout() {
            Error::Timeout(self.scrub(format!(
                "{provider}: no response from {} within {:?}",
                self.shown_url(),
                self.timeout
            )))
        } else if e.is_builder() {
            Error::InvalidConfig(self.scrub(format!("{provider}: {e}")))
        } else if e.is_connect() {
            Error::Unavailable {
                message: self.scrub(format!(
                    "{provider}: cannot connect to {}",
                    self.shown_url()
                )),
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

    /// Classifies an error the API reported, in an HTTP response (`status`) or inside a stream
    /// (`status: None`, by its type), as the table in the crate docs says.
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

/// An error as the API described it, for [`ErrorContext::api_error`].
#[derive(Debug, Clone, Default)]
pub struct ApiError {
    /// The HTTP status; `None` for an error reported inside a stream.
    pub status: Option<u16>,
    /// The error's type (`"rate_limit_error"`, `"overloaded_error"`, `"insufficient_quota"`...).
    pub kind: Option<String>,
    /// The error's code (`"context_length_exceeded"`, `"insufficient_quota"`...).
    pub code: Option<String>,
    /// The human-readable message.
    pub message: String,
    /// The wait the server asked for ([`retry_after`]).
    pub retry_after: Option<Duration>,
}

pub(super) fn truncate(s: &str, max: usize) -> String {
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
/// as an HTTP date (a date in the past is no wait). `None` when neither header is readable.
///
/// ```
/// use std::time::Duration;
/// use agentkit_providers::http::retry_after;
/// use reqwest::header::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("7"));
/// assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
/// headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
/// assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
/// ```
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use reqwest::header::HeaderValue;

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
}
