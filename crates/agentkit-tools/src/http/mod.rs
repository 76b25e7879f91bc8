//! HTTP tools from configuration (feature `http`).
//!
//! An [`HttpToolConfig`] (serde: TOML, JSON, YAML...) describes one endpoint: method, URL
//! template with `{argument}` placeholders (percent-encoded), headers whose values may come from
//! environment variables resolved at call time (never logged, marked sensitive, dropped on a
//! redirect to another origin), a JSON body built from the arguments, a response mapping (JSON
//! pointers), a timeout and a response size cap enforced while the body streams in. Every
//! request goes through an [`OutboundPolicy`] checked after DNS resolution and on every redirect.
//!
//! Error text never carries what the tool keeps secret: the response snippet of an HTTP error
//! goes through the tool's `redact` rules (a JSON body is redacted; a body that is not JSON is
//! withheld when it names a redacted field), the values of redacted arguments and of secret
//! headers are scrubbed from it, and transport errors name the server's origin only (the path
//! and query may hold redacted arguments).
//!
//! ```
//! use agentkit_tools::http::{HttpTool, HttpToolConfig, OutboundPolicy};
//!
//! let config: HttpToolConfig = serde_json::from_value(serde_json::json!({
//!     "name": "crm.get_contact",
//!     "description": "Fetches a contact by id",
//!     "method": "GET",
//!     "url": "https://api.crm.example/contacts/{contact_id}",
//!     "headers": {
//!         "Authorization": {"secret_env": "CRM_TOKEN", "prefix": "Bearer "},
//!         "Accept": "application/json"
//!     },
//!     "response": {"fields": {"name": "/data/name", "email": "/data/email"}},
//!     "timeout_ms": 5000,
//!     "max_response_bytes": 65536,
//!     "rate_limit": "60/min"
//! }))?;
//! let outbound = OutboundPolicy::new().allow_domains(["api.crm.example"]);
//! let tool = HttpTool::new(config, outbound)?;
//! # let _ = tool;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod errors;
mod outbound;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::tool::{SideEffect, Tool, ToolContext, ToolSpec};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use errors::{Redactor, map_reqwest, status_error};
use outbound::GuardedResolver;
pub use outbound::OutboundPolicy;
use template::UrlTemplate;

use crate::compensation::Compensation;
use crate::governed::GovernedTool;
use crate::metadata::{RateLimit, RetryPolicy, ToolMetadata};
use crate::registry::RegisteredTool;

/// Default time limit of one HTTP call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default response size cap.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// The HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    #[default]
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl HttpMethod {
    fn as_reqwest(self) -> Method {
        match self {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
        }
    }
}

/// A header value: literal text, or a secret read from an environment variable at call time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderSource {
    /// Sent as written.
    Value(String),
    /// `prefix` + the value of the environment variable `secret_env`, read on every call (so
    /// rotated secrets apply without a restart). Never logged; dropped on a redirect to
    /// another origin.
    Secret {
        /// The environment variable's name.
        secret_env: String,
        /// Text before the secret (`"Bearer "`).
        #[serde(default)]
        prefix: String,
    },
}

/// What the request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// No body.
    None,
    /// The arguments as a JSON object, without those used in the URL.
    Json,
}

/// How the tool output is taken from a JSON response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseMapping {
    /// A JSON pointer selecting part of the response (`/data`); missing → an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Output fields from JSON pointers into the (selected) response; missing → `null`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// One HTTP endpoint as a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpToolConfig {
    /// Namespaced tool name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Method (default GET).
    #[serde(default)]
    pub method: HttpMethod,
    /// URL template; `{name}` placeholders (path or query only) take the argument `name`.
    pub url: String,
    /// JSON schema of the arguments. Default: every placeholder a required string or integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderSource>,
    /// Request body (default: JSON for POST, PUT and PATCH; none otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyMode>,
    /// Response mapping (default: the whole response).
    #[serde(default)]
    pub response: ResponseMapping,
    /// Send the call's idempotency key in this header (e.g. `Idempotency-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
    /// Time limit of one attempt, redirects and body included (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Response size cap (default 1 MiB), enforced while streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Side-effect class (default: read for GET, external otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_effect: Option<SideEffect>,
    /// Safe to repeat with the same arguments (GET is, by default).
    #[serde(default)]
    pub idempotent: bool,
    /// Retries (idempotent tools only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Calls per tenant per period (`"60/min"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Fields masked in logs, traces, audit entries and execution records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// The compensating action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<Compensation>,
    /// JSON schema of the (mapped) output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

impl HttpToolConfig {
    /// A GET tool for `url`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        url: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            method: HttpMethod::Get,
            url: url.into(),
            parameters: None,
            headers: BTreeMap::new(),
            body: None,
            response: ResponseMapping::default(),
            idempotency_header: None,
            timeout_ms: None,
            max_response_bytes: None,
            side_effect: None,
            idempotent: false,
            retry: None,
            rate_limit: None,
            redact: Vec::new(),
            compensation: None,
            output_schema: None,
        }
    }

    /// Sets the method.
    pub fn with_method(mut self, method: HttpMethod) -> Self {
        self.method = method;
        self
    }

    /// Adds a literal header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into(), HeaderSource::Value(value.into()));
        self
    }

    /// Adds a header whose value is `prefix` + the environment variable `env`, read per call.
    pub fn with_secret_header(
        mut self,
        name: impl Into<String>,
        env: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        self.headers.insert(
            name.into(),
            HeaderSource::Secret {
                secret_env: env.into(),
                prefix: prefix.into(),
            },
        );
        self
    }

    /// Sets the argument schema.
    pub fn with_parameters(mut self, schema: Value) -> Self {
        self.parameters = Some(schema);
        self
    }

    /// Sets the body mode.
    pub fn with_body(mut self, body: BodyMode) -> Self {
        self.body = Some(body);
        self
    }

    /// Sets the response mapping.
    pub fn with_response(mut self, response: ResponseMapping) -> Self {
        self.response = response;
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the response size cap.
    pub fn with_max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Sets the redaction rules.
    pub fn with_redacted(mut self, fields: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Sets the per-tenant rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sends the idempotency key in this header.
    pub fn with_idempotency_header(mut self, header: impl Into<String>) -> Self {
        self.idempotency_header = Some(header.into());
        self
    }
}

/// A configured HTTP endpoint as a [`Tool`] (a [`GovernedTool`] inside: timeout, retries, rate
/// limit and redaction apply).
#[derive(Debug, Clone)]
pub struct HttpTool {
    governed: GovernedTool,
}

struct Endpoint {
    name: String,
    method: Method,
    template: UrlTemplate,
    url_variables: Vec<String>,
    headers: Vec<(HeaderName, HeaderSource)>,
    idempotency_header: Option<HeaderName>,
    body: BodyMode,
    response: ResponseMapping,
    max_response_bytes: u64,
    /// The tool's redaction rules, applied to error text too.
    redact: Vec<String>,
    policy: Arc<OutboundPolicy>,
    client: reqwest::Client,
}

impl HttpTool {
    /// Validates the configuration and builds the tool: the URL's fixed part must pass
    /// `outbound`, headers must be valid, the schemas must compile.
    pub fn new(config: HttpToolConfig, outbound: OutboundPolicy) -> Result<Self> {
        let name = config.name.clone();
        let bad = |why: String| Error::InvalidConfig(format!("HTTP tool `{name}`: {why}"));
        let template = UrlTemplate::parse(&config.url).map_err(|e| bad(e.to_string()))?;
        let sample = template.sample().map_err(|e| bad(e.to_string()))?;
        outbound
            .check_url(&sample)
            .map_err(|e| bad(e.to_string()))?;
        let url_variables: Vec<String> = template.variables().map(String::from).collect();
        let parameters = match config.parameters {
            Some(schema) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object)
                    && let Some(missing) = url_variables.iter().find(|v| !props.contains_key(*v))
                {
                    return Err(bad(format!(
                        "URL placeholder `{{{missing}}}` is not an argument in `parameters`"
                    )));
                }
                schema
            }
            None => default_parameters(&url_variables),
        };
        let mut headers = Vec::with_capacity(config.headers.len());
        for (header, source) in config.headers {
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| bad(format!("`{header}` is not a valid header name")))?;
            if let HeaderSource::Value(v) = &source {
                HeaderValue::from_str(v)
                    .map_err(|_| bad(format!("the value of header `{header}` is not valid")))?;
            }
            headers.push((header_name, source));
        }
        let idempotency_header = config
            .idempotency_header
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| bad(format!("`{h}` is not a valid header name")))
            })
            .transpose()?;
        let method = config.method.as_reqwest();
        let body = config.body.unwrap_or(match config.method {
            HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch => BodyMode::Json,
            HttpMethod::Get | HttpMethod::Delete => BodyMode::None,
        });
        let side_effect = config.side_effect.unwrap_or(match config.method {
            HttpMethod::Get => SideEffect::Read,
            _ => SideEffect::External,
        });
        let max_response_bytes = config
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes == 0 {
            return Err(bad("max_response_bytes must be at least 1".into()));
        }
        for pointer in config
            .response
            .select
            .iter()
            .chain(config.response.fields.values())
        {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(bad(format!(
                    "response pointer `{pointer}` must start with `/` (a JSON pointer)"
                )));
            }
        }
        let policy = Arc::new(outbound);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("agentkit-tools/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;

        let mut metadata = ToolMetadata::new(config.name.clone(), config.description)
            .with_side_effect(side_effect)
            .with_idempotent(config.idempotent)
            .with_timeout(
                config
                    .timeout_ms
                    .map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            )
            .with_redacted(config.redact.iter().cloned());
        metadata.retry = config.retry;
        metadata.rate_limit = config.rate_limit;
        metadata.compensation = config.compensation;
        let endpoint = Arc::new(Endpoint {
            name: config.name,
            method,
            template,
            url_variables,
            headers,
            idempotency_header,
            body,
            response: config.response,
            max_response_bytes,
            redact: config.redact,
            policy,
            client,
        });
        let governed = GovernedTool::from_json(metadata, parameters, move |ctx, args| {
            let endpoint = endpoint.clone();
            async move { endpoint.call(ctx, args).await }
        })?;
        let governed = match config.output_schema {
            Some(schema) => governed.with_output_schema(schema)?,
            None => governed,
        };
        Ok(Self { governed })
    }

    /// The metadata.
    pub fn metadata(&self) -> &ToolMetadata {
        self.governed.metadata()
    }
}

fn default_parameters(variables: &[String]) -> Value {
    let properties: Map<String, Value> = variables
        .iter()
        .map(|v| (v.clone(), json!({"type": ["string", "integer"]})))
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": variables,
        "additionalProperties": false,
    })
}

impl Endpoint {
    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        let mut url = self.template.render(&arguments)?;
        let (mut headers, secrets) = self.headers(&ctx)?;
        // Error text must not repeat redacted fields, redacted arguments or secrets.
        let redactor = Redactor::new(&self.redact, &arguments, secrets);
        let mut body = match self.body {
            BodyMode::None => None,
            BodyMode::Json => {
                let mut map = match arguments {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                for v in &self.url_variables {
                    map.remove(v);
                }
                Some(serde_json::to_vec(&Value::Object(map)).map_err(|e| {
                    Error::Internal(format!("the request body could not be encoded: {e}"))
                })?)
            }
        };
        let mut method = self.method.clone();
        let mut redirects = 0u8;
        let response = loop {
            self.policy.check_url(&url)?;
            tracing::debug!(tool = %self.name, method = %method, host = url.host_str().unwrap_or(""), "HTTP request");
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(bytes) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| map_reqwest(&self.name, &e, &redactor))?;
            let status = response.status();
            let location = response.headers().get(LOCATION).cloned();
            let (true, Some(location)) = (status.is_redirection(), location) else {
                break response;
            };
            if redirects >= self.policy.max_redirects {
                return Err(Error::Tool(format!(
                    "`{}`: too many redirects (more than {})",
                    self.name, self.policy.max_redirects
                )));
            }
            redirects += 1;
            let next = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    Error::MalformedResponse(format!(
                        "`{}`: the redirect target is not a valid URL",
                        self.name
                    ))
                })?;
            // Checked before anything connects to it (names are checked again after DNS).
            self.policy.check_url(&next)?;
            if next.origin() != url.origin() {
                self.drop_credentials(&mut headers);
            }
            if matches!(
                status,
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER
            ) && method != Method::GET
            {
                method = Method::GET;
                body = None;
            }
            tracing::debug!(tool = %self.name, to = next.host_str().unwrap_or(""), "following a redirect");
            url = next;
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = self.read_capped(response, &redactor).await?;
        if !status.is_success() {
            return Err(status_error(
                &self.name,
                status,
                &bytes,
                retry_after,
                &redactor,
            ));
        }
        self.map_response(&bytes)
    }

    /// The configured headers, secrets resolved now (marked sensitive), and the secret values
    /// sent (for [`Redactor`]).
    fn headers(&self, ctx: &ToolContext) -> Result<(HeaderMap, Vec<String>)> {
        let mut map = HeaderMap::with_capacity(self.headers.len() + 1);
        let mut secrets = Vec::new();
        for (name, source) in &self.headers {
            let value = match source {
                HeaderSource::Value(v) => HeaderValue::from_str(v).map_err(|_| {
                    Error::InvalidConfig(format!("header `{name}` has an invalid value"))
                })?,
                HeaderSource::Secret { secret_env, prefix } => {
                    let secret = std::env::var(secret_env).map_err(|_| {
                        Error::InvalidConfig(format!(
                            "`{}`: header `{name}` needs the environment variable `{secret_env}`, \
                             which is not set",
                            self.name
                        ))
                    })?;
                    let mut v =
                        HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
                            Error::InvalidConfig(format!(
                                "`{}`: the secret for header `{name}` is not a valid header value",
                                self.name
                            ))
                        })?;
                    v.set_sensitive(true);
                    secrets.push(format!("{prefix}{secret}"));
                    secrets.push(secret);
                    v
                }
            };
            map.insert(name.clone(), value);
        }
        if let Some(h) = &self.idempotency_header
            && let Ok(v) = HeaderValue::from_str(ctx.idempotency_key.as_str())
        {
            map.insert(h.clone(), v);
        }
        Ok((map, secrets))
    }

    /// Removes secrets and credentials before a request to another origin.
    fn drop_credentials(&self, headers: &mut HeaderMap) {
        for (name, source) in &self.headers {
            if matches!(source, HeaderSource::Secret { .. }) {
                headers.remove(name);
            }
        }
        for h in [
            reqwest::header::AUTHORIZATION,
            reqwest::header::COOKIE,
            reqwest::header::PROXY_AUTHORIZATION,
        ] {
            headers.remove(h);
        }
    }

    /// Reads the body, refusing more than the cap (checked on the announced length, then on
    /// every chunk while streaming).
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
        redactor: &Redactor<'_>,
    ) -> Result<Vec<u8>> {
        let cap = self.max_response_bytes;
        let too_big = || {
            Error::Tool(format!(
                "`{}`: the response is larger than the {cap}-byte limit",
                self.name
            ))
        };
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| map_reqwest(&self.name, &e, redactor))?
        {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn map_response(&self, bytes: &[u8]) -> Result<Value> {
        let mapping = &self.response;
        let mapped = mapping.select.is_some() || !mapping.fields.is_empty();
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) if !mapped => return Ok(Value::String(String::from_utf8_lossy(bytes).into())),
            Err(e) => {
                return Err(Error::MalformedResponse(format!(
                    "`{}`: the response is not JSON: {e}",
                    self.name
                )));
            }
        };
        let selected = match &mapping.select {
            Some(p) => value.pointer(p).cloned().ok_or_else(|| {
                Error::MalformedResponse(format!(
                    "`{}`: the response has nothing at `{p}`",
                    self.name
                ))
            })?,
            None => value,
        };
        if mapping.fields.is_empty() {
            return Ok(selected);
        }
        Ok(Value::Object(
            mapping
                .fields
                .iter()
                .map(|(field, p)| {
                    (
                        field.clone(),
                        selected.pointer(p).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ))
    }
}

#[async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> &ToolSpec {
        self.governed.spec()
    }

    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        self.governed.call(ctx, arguments).await
    }
}

impl From<HttpTool> for RegisteredTool {
    fn from(tool: HttpTool) -> Self {
        tool.governed.into()
    }
}

impl From<HttpTool> for GovernedTool {
    fn from(tool: HttpTool) -> Self {
        tool.governed
    }
}
