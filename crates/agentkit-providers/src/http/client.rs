//! [`Http`]: the client of one provider, with the API key sent as [`Auth`] says.

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::{ApiError, ErrorContext, retry_after, truncate};
use crate::config::ProviderConfig;

/// How [`Http`] sends the API key (always as a sensitive header, never logged).
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key as the value of this header.
    Header(&'static str),
}

/// The HTTP client of one provider.
///
/// The API key and the config's custom headers are sensitive headers (never shown by `Debug`
/// or traces), and any error text a server echoes them in is scrubbed, as are the userinfo and
/// query values of `base_url`.
///
/// ```
/// use agentkit_providers::http::{Auth, Http};
/// use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind};
///
/// let config = ProviderConfig::new(ProviderKind::OpenAiCompatible, "whisper-1")
///     .with_base_url("http://127.0.0.1:8000/v1");
/// let key = KeyRef::value("sk-secret-1").resolve()?;
/// let http = Http::new(&config, Auth::Bearer, Some(key), &[("x-api-version", "2")])?;
/// assert!(!format!("{http:?}").contains("sk-secret-1"));
/// assert_eq!(http.ctx.scrub("the key sk-secret-1 is invalid".into()), "the key [REDACTED] is invalid");
/// // let answer: serde_json::Value = http.post_json("/audio/transcriptions", &body).await?;
/// # Ok::<(), agentkit_core::Error>(())
/// ```
pub struct Http {
    client: reqwest::Client,
    /// Names the provider in errors and scrubs the key from them.
    pub ctx: Arc<ErrorContext>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base_url", &self.ctx.shown_url())
            .field("timeout", &self.ctx.timeout)
            .field("api_key", &self.ctx.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Http {
    /// A client for `config`, sending `key` as `auth` and `fixed` headers with every request.
    ///
    /// An invalid `base_url`, header or key is an [`Error::InvalidConfig`].
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
        // Everything besides the key that error messages must not repeat.
        let mut others = crate::redact::url_secrets(&base_url);
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::InvalidConfig(format!("`{k}` is not an HTTP header name")))?;
            let v = v.expose_secret();
            others.extend(crate::redact::value_secrets(v));
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
            ctx: Arc::new(
                ErrorContext {
                    provider: config.provider_name().to_owned(),
                    base_url,
                    timeout,
                    secret: key,
                    others: Vec::new(),
                }
                .with_other_secrets(others),
            ),
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
        self.checked(response).await
    }

    /// POSTs `form` as `multipart/form-data` to `path` (file uploads: audio to transcribe); a
    /// non-2xx answer becomes its typed error, as for [`Http::post`]. The whole exchange is
    /// bounded by the timeout.
    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Result<reqwest::Response> {
        let response = self
            .client
            .post(format!("{}{path}", self.ctx.base_url))
            .multipart(form)
            .timeout(self.ctx.timeout)
            .send()
            .await
            .map_err(|e| self.ctx.transport(e))?;
        self.checked(response).await
    }

    /// `response` when it is a 2xx answer, else its typed error (the vendor's JSON error
    /// object when there is one, else the body's text or the status's reason).
    async fn checked(&self, response: reqwest::Response) -> Result<reqwest::Response> {
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
