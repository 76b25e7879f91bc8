//! What the WebSocket speech providers share: URLs from a configurable base, the handshake with
//! the API key as a sensitive header, and the mapping of handshake statuses, close frames,
//! transport failures and HTTP answers onto typed [`Error`]s with the key scrubbed.

use std::sync::OnceLock;
use std::time::Duration;

use agentkit_core::{Error, Result};
use futures::SinkExt;
use secrecy::{ExposeSecret, SecretString};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

/// A connected vendor socket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What replaces the key in text.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Who is talking to whom, for error messages: the provider's name and its key (scrubbed from
/// every message).
#[derive(Clone)]
pub(crate) struct Ctx {
    pub provider: &'static str,
    pub key: SecretString,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("provider", &self.provider)
            .field("key", &REDACTED)
            .finish()
    }
}

impl Ctx {
    pub(crate) fn new(provider: &'static str, key: SecretString) -> Self {
        Self { provider, key }
    }

    /// `text` prefixed with the provider's name, the key replaced wherever it appears.
    pub(crate) fn msg(&self, text: impl std::fmt::Display) -> String {
        let text = format!("{}: {text}", self.provider);
        let key = self.key.expose_secret();
        if key.len() >= 4 && text.contains(key) {
            text.replace(key, REDACTED)
        } else {
            text
        }
    }

    /// The key after `prefix` as a header value, marked sensitive (never shown in `Debug`).
    pub(crate) fn key_header(&self, prefix: &str) -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.key.expose_secret()))
            .map_err(|_| {
                Error::InvalidConfig(self.msg("the API key is not a valid HTTP header value"))
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    pub(crate) fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::MalformedResponse(self.msg(what))
    }

    pub(crate) fn unavailable(&self, what: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            message: self.msg(what),
            source: None,
        }
    }

    /// The error an HTTP status (a refused handshake or a REST answer) stands for; `body` is
    /// the answer's text (its vendor message is quoted).
    pub(crate) fn status_error(
        &self,
        status: u16,
        body: &str,
        retry_after: Option<Duration>,
    ) -> Error {
        let detail = body_message(body);
        let text = match detail {
            Some(d) => self.msg(format!("HTTP {status}: {d}")),
            None => self.msg(format!("HTTP {status}")),
        };
        match status {
            401 | 403 => Error::Unauthenticated(text),
            402 => Error::PermissionDenied(text),
            404 => Error::InvalidConfig(text),
            408 => Error::Timeout(text),
            429 => Error::RateLimited {
                message: text,
                retry_after,
            },
            503 | 529 => Error::Overloaded {
                message: text,
                retry_after,
            },
            500..=599 => Error::Server {
                status: Some(status),
                message: text,
            },
            400..=499 => Error::InvalidInput(text),
            _ => Error::Server {
                status: Some(status),
                message: text,
            },
        }
    }

    /// The error a close frame the host did not ask for stands for.
    pub(crate) fn close_error(&self, frame: Option<&CloseFrame>) -> Error {
        let Some(frame) = frame else {
            return self.unavailable("the server closed the connection");
        };
        let code = u16::from(frame.code);
        let reason = frame.reason.as_str();
        let text = if reason.is_empty() {
            self.msg(format!("the server closed the connection ({code})"))
        } else {
            self.msg(format!(
                "the server closed the connection ({code}): {reason}"
            ))
        };
        let lower = reason.to_ascii_lowercase();
        let timed_out = lower.contains("timeout") || lower.contains("net-0001");
        match frame.code {
            _ if lower.contains("api key")
                || lower.contains("api_key")
                || lower.contains("unauthori")
                || lower.contains("authenticat")
                || lower.contains("credential") =>
            {
                Error::Unauthenticated(text)
            }
            _ if lower.contains("quota") || lower.contains("credit") => {
                Error::PermissionDenied(text)
            }
            CloseCode::Policy | CloseCode::Size | CloseCode::Invalid | CloseCode::Unsupported
                if timed_out =>
            {
                Error::Timeout(text)
            }
            CloseCode::Policy | CloseCode::Size | CloseCode::Invalid | CloseCode::Unsupported => {
                Error::InvalidInput(text)
            }
            CloseCode::Error if timed_out => Error::Timeout(text),
            CloseCode::Error => Error::Server {
                status: None,
                message: text,
            },
            CloseCode::Again => Error::Overloaded {
                message: text,
                retry_after: None,
            },
            _ => Error::Unavailable {
                message: text,
                source: None,
            },
        }
    }

    /// The error a failed read or write on an open socket stands for.
    pub(crate) fn transport_error(&self, e: tungstenite::Error) -> Error {
        match e {
            tungstenite::Error::Io(io) => Error::Unavailable {
                message: self.msg(format!("the connection failed: {io}")),
                source: Some(Box::new(io)),
            },
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )
            | tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed => {
                self.unavailable("the connection was cut before the session ended")
            }
            other => self.unavailable(format!("the connection failed: {other}")),
        }
    }

    /// The error an HTTP client failure stands for.
    pub(crate) fn http_transport_error(&self, mut e: reqwest::Error, url: &Url) -> Error {
        if let Some(u) = e.url_mut() {
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
        }
        if e.is_timeout() {
            Error::Timeout(self.msg(format!("no answer from {}", shown_url(url))))
        } else if e.is_connect() {
            Error::Unavailable {
                message: self.msg(format!("cannot connect to {}", shown_url(url))),
                source: Some(Box::new(e)),
            }
        } else {
            Error::Unavailable {
                message: self.msg(format!("the request failed: {e}")),
                source: Some(Box::new(e)),
            }
        }
    }

    /// Reads a non-2xx answer into its error.
    pub(crate) async fn http_error(&self, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        self.status_error(status, &body, retry_after)
    }

    /// The HTTP client for batch calls in `cell`, built on first use with `connect_timeout`.
    pub(crate) fn http_client<'a>(
        &self,
        cell: &'a OnceLock<reqwest::Client>,
        connect_timeout: Duration,
    ) -> Result<&'a reqwest::Client> {
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| Error::InvalidConfig(self.msg(format!("HTTP client: {e}"))))?;
        Ok(cell.get_or_init(|| client))
    }

    /// Sends a batch `request` to `url` and reads the answer's body; a failure to send or
    /// read, and a non-2xx answer, are typed errors.
    pub(crate) async fn http_body(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Vec<u8>> {
        let response = request
            .send()
            .await
            .map_err(|e| self.http_transport_error(e, url))?;
        if !response.status().is_success() {
            return Err(self.http_error(response).await);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.http_transport_error(e, url))?;
        Ok(bytes.into())
    }
}

/// The `retry-after` header, in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The vendor's message in an error body: Deepgram's `err_msg`, ElevenLabs' `detail.message`
/// (or `detail` as text), else `message` / `error`, else the text itself (shortened).
fn body_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let found = text(v.get("err_msg"))
            .or_else(|| text(v.pointer("/detail/message")))
            .or_else(|| text(v.get("detail")))
            .or_else(|| text(v.get("message")))
            .or_else(|| text(v.get("error")))
            .or_else(|| text(v.pointer("/error/message")));
        if found.is_some() {
            return found;
        }
    }
    Some(shorten(body, 300))
}

/// `s` cut to at most `max` bytes (on a character boundary).
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `url` as messages show it: scheme, host, port and path (no credentials, no query).
pub(crate) fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// `base` (any of `http`, `https`, `ws`, `wss`) with `path` appended and the scheme turned to
/// the WebSocket (`websocket = true`) or HTTP one.
pub(crate) fn endpoint(base: &str, path: &str, websocket: bool) -> Result<Url> {
    let mut url = Url::parse(base)
        .map_err(|e| Error::InvalidConfig(format!("base URL `{base}` is not a URL: {e}")))?;
    let scheme = match (url.scheme(), websocket) {
        ("http" | "ws", true) => "ws",
        ("https" | "wss", true) => "wss",
        ("http" | "ws", false) => "http",
        ("https" | "wss", false) => "https",
        (other, _) => {
            return Err(Error::InvalidConfig(format!(
                "base URL scheme `{other}`: use http(s) or ws(s)"
            )));
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| Error::InvalidConfig(format!("base URL `{base}` cannot use {scheme}")))?;
    let joined = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    Ok(url)
}

/// Opens the socket at `url`, sending the key as the value of `header` (with `prefix` before
/// it), marked sensitive. Failures are typed: a refused handshake by its status, an
/// unreachable server [`Error::Unavailable`], no answer within `timeout` [`Error::Timeout`].
pub(crate) async fn connect(
    ctx: &Ctx,
    url: &Url,
    header: &'static str,
    prefix: &str,
    timeout: Duration,
) -> Result<Socket> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidConfig(ctx.msg(format!("{}: {e}", shown_url(url)))))?;
    request
        .headers_mut()
        .insert(header, ctx.key_header(prefix)?);
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(Error::Timeout(ctx.msg(format!(
            "no WebSocket handshake with {} within {timeout:?}",
            shown_url(url)
        )))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let body = if body.trim().is_empty() {
                vendor_error_header(response.headers()).unwrap_or_default()
            } else {
                body
            };
            Err(ctx.status_error(status, &body, retry_after(response.headers())))
        }
        Ok(Err(tungstenite::Error::Io(io))) => Err(Error::Unavailable {
            message: ctx.msg(format!("cannot connect to {}: {io}", shown_url(url))),
            source: Some(Box::new(io)),
        }),
        Ok(Err(tungstenite::Error::Url(e))) => Err(Error::InvalidConfig(
            ctx.msg(format!("{}: {e}", shown_url(url))),
        )),
        Ok(Err(e)) => Err(ctx.unavailable(format!(
            "the WebSocket handshake with {} failed: {e}",
            shown_url(url)
        ))),
    }
}

/// Deepgram names a refused handshake's reason in `dg-error`.
fn vendor_error_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("dg-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Sends `message`; a failure is the transport's typed error.
pub(crate) async fn send(ctx: &Ctx, socket: &mut Socket, message: Message) -> Result<()> {
    socket
        .send(message)
        .await
        .map_err(|e| ctx.transport_error(e))
}

/// Sends a JSON text message.
pub(crate) async fn send_json(
    ctx: &Ctx,
    socket: &mut Socket,
    value: &serde_json::Value,
) -> Result<()> {
    send(ctx, socket, Message::text(value.to_string())).await
}

/// After a failed write: the close frame the server may have sent just before (its reason is
/// better than "connection failed"), read for at most `wait`.
pub(crate) async fn close_reason(ctx: &Ctx, socket: &mut Socket, wait: Duration) -> Option<Error> {
    use futures::StreamExt;
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return Some(ctx.close_error(frame.as_ref())),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// The error a failed write stands for: the reason of the close frame the server may have
/// sent just before (read for half a second), else `e`.
pub(crate) async fn write_error(ctx: &Ctx, socket: &mut Socket, e: Error) -> Error {
    close_reason(ctx, socket, Duration::from_millis(500))
        .await
        .unwrap_or(e)
}

/// Closes the socket politely, waiting at most a second.
pub(crate) async fn shut(socket: &mut Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
}

/// Whether a close frame is a normal end (1000, 1001, or none).
pub(crate) fn is_normal_close(frame: Option<&CloseFrame>) -> bool {
    frame.is_none_or(|f| matches!(f.code, CloseCode::Normal | CloseCode::Away))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx::new("acme", SecretString::from("key-1234-secret"))
    }

    #[test]
    fn endpoints_follow_the_base() {
        let u = endpoint("https://api.example.com/", "/v1/listen", true).expect("url");
        assert_eq!(u.as_str(), "wss://api.example.com/v1/listen");
        let u = endpoint("ws://127.0.0.1:9/proxy", "/v1/listen", false).expect("url");
        assert_eq!(u.as_str(), "http://127.0.0.1:9/proxy/v1/listen");
        assert!(endpoint("ftp://x", "/a", true).is_err());
        assert!(endpoint("not a url", "/a", true).is_err());
    }

    #[test]
    fn statuses_and_bodies_are_typed_and_scrubbed() {
        let c = ctx();
        let e = c.status_error(
            401,
            r#"{"err_code":"INVALID_AUTH","err_msg":"bad key key-1234-secret"}"#,
            None,
        );
        assert_eq!(e.kind(), agentkit_core::ErrorKind::Unauthenticated);
        assert!(!e.to_string().contains("key-1234-secret"), "{e}");
        assert!(e.to_string().contains("bad key [REDACTED]"), "{e}");
        let e = c.status_error(
            429,
            r#"{"detail":{"status":"too_many","message":"slow"}}"#,
            Some(Duration::from_secs(2)),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.to_string().contains("slow"));
        assert_eq!(
            c.status_error(500, "", None).kind(),
            agentkit_core::ErrorKind::Server
        );
    }

    #[test]
    fn close_frames_are_typed() {
        let c = ctx();
        let frame = |code: CloseCode, reason: &str| CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        use agentkit_core::ErrorKind as K;
        for (code, reason, kind) in [
            (
                CloseCode::Policy,
                "DATA-0000: cannot decode",
                K::InvalidInput,
            ),
            (CloseCode::Error, "NET-0001: no audio received", K::Timeout),
            (CloseCode::Policy, "Invalid API key", K::Unauthenticated),
            (CloseCode::Policy, "quota exceeded", K::PermissionDenied),
            (CloseCode::Again, "", K::Overloaded),
        ] {
            let e = c.close_error(Some(&frame(code, reason)));
            assert_eq!(e.kind(), kind, "{reason}: {e}");
        }
        assert!(is_normal_close(None));
        assert!(is_normal_close(Some(&frame(CloseCode::Normal, ""))));
        assert!(!is_normal_close(Some(&frame(CloseCode::Error, ""))));
    }
}
