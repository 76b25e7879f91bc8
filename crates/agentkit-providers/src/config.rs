//! [`ProviderConfig`]: which provider to build, chosen at run time (JSON, TOML, environment),
//! and [`KeyRef`], where its API key comes from.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Which API a [`ProviderConfig`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI (`https://api.openai.com/v1`), feature `openai`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic (`https://api.anthropic.com`), feature `anthropic`.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Ollama's native API (`http://localhost:11434`), feature `ollama`.
    #[serde(rename = "ollama")]
    Ollama,
    /// Any server speaking OpenAI Chat Completions at `base_url` (required), feature `openai`.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// The configuration name (`"openai"`, `"anthropic"`, `"ollama"`, `"openai_compatible"`),
    /// also the default [`LlmProvider::name`](agentkit_core::model::LlmProvider::name).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }

    /// The cargo feature that compiles this provider in.
    pub fn feature(self) -> &'static str {
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
        }
    }

    /// The environment variable read when a config has no `api_key`, if the provider has a
    /// conventional one.
    pub fn default_key_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::Ollama | ProviderKind::OpenAiCompatible => None,
        }
    }

    fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Ollama => Some("http://localhost:11434"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an API key comes from.
///
/// In JSON or TOML: `{"env": "OPENAI_API_KEY"}` (read when the provider is built) or
/// `{"value": "sk-..."}`. `Debug` never shows a value, and serializing a config that holds an
/// explicit value fails instead of writing the secret out.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyRef {
    /// The name of an environment variable holding the key.
    Env(String),
    /// The key itself.
    Value(SecretString),
}

impl KeyRef {
    /// A key read from the environment variable `name` when the provider is built.
    pub fn env(name: impl Into<String>) -> Self {
        KeyRef::Env(name.into())
    }

    /// An explicit key.
    pub fn value(key: impl Into<String>) -> Self {
        KeyRef::Value(SecretString::from(key.into()))
    }

    /// The key: the variable's value, or the explicit one.
    pub fn resolve(&self) -> Result<SecretString> {
        match self {
            KeyRef::Value(v) => Ok(v.clone()),
            KeyRef::Env(name) => {
                // A name that is not a variable name may be a pasted key: never echo it.
                let plausible = !name.is_empty()
                    && name.len() <= 128
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit();
                if !plausible {
                    return Err(Error::InvalidConfig(
                        "api_key.env must name an environment variable (letters, digits, `_`); \
                         to give the key itself use api_key.value"
                            .into(),
                    ));
                }
                match std::env::var(name) {
                    Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_owned())),
                    _ => Err(Error::InvalidConfig(format!(
                        "the API key variable `{name}` is not set"
                    ))),
                }
            }
        }
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Env(name) => f.debug_tuple("Env").field(name).finish(),
            KeyRef::Value(_) => f.write_str("Value([REDACTED])"),
        }
    }
}

impl Serialize for KeyRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap};
        match self {
            KeyRef::Env(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("env", name)?;
                m.end()
            }
            KeyRef::Value(_) => Err(S::Error::custom(
                "an explicit API key is not serialized; use {\"env\": \"VAR\"}",
            )),
        }
    }
}

/// Everything needed to build a provider at run time (from JSON, TOML, environment...).
///
/// Fields other than `provider` and `model` are optional; those that only make sense for one
/// provider say so and are ignored by the others.
///
/// Credentials stay out of `Debug` output and serialization: `Debug` shows header names with
/// their values redacted and `base_url` without userinfo or query string; serializing a config
/// that holds an explicit API key, custom headers or a `base_url` with credentials fails
/// instead of writing them out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The API.
    pub provider: ProviderKind,
    /// The model used when a request names none (the agent's model name wins).
    pub model: String,
    /// The URL the API's documented paths are appended to — each vendor's documented base URL.
    /// Defaults: `https://api.openai.com/v1` (OpenAI's paths are `/chat/completions`, so the
    /// version is part of the base), `https://api.anthropic.com` (Anthropic's paths are
    /// `/v1/messages`, so it is not), `http://localhost:11434` (Ollama's `/api/chat`). Required
    /// for `openai_compatible`, with the version path the server documents (`…/v1`). A
    /// `base_url` that breaks its provider's convention is refused by
    /// [`ProviderConfig::resolved_base_url`] with an error that says which form is expected.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "secret_free::base_url"
    )]
    pub base_url: Option<String>,
    /// The API key. Without one, OpenAI reads `OPENAI_API_KEY` and Anthropic
    /// `ANTHROPIC_API_KEY`; Ollama and OpenAI-compatible servers send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KeyRef>,
    /// The longest wait for a whole response, and for the next chunk of a streamed one
    /// (seconds as a number, or `"500ms"`, `"30s"`, `"5m"`). Default 300 s.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// The name reported by [`LlmProvider::name`](agentkit_core::model::LlmProvider::name) (traces, usage records). Default: the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extra HTTP headers (an organization or project header, a gateway's routing header).
    ///
    /// Their values often carry credentials, so they are secrets like the API key: sent as
    /// sensitive headers, redacted in `Debug`, scrubbed from error messages (values of at least
    /// 8 bytes, and each such word of them: the token of `Bearer <token>`), and never
    /// serialized (serializing a config with headers fails).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "secret_free::headers"
    )]
    pub headers: BTreeMap<String, SecretString>,
    /// Output token cap when a request sets none. Anthropic requires one and uses 4096 when
    /// this is unset too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Ollama: the context window (`options.num_ctx`). Ollama's small default silently cuts
    /// long prompts from the front, system prompt and tool schemas included: set this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Ollama: how long the model stays loaded after a request (`"5m"`, `"-1"` = forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<String>,
    /// OpenAI: send output schemas with `strict: true` (the schema must then follow OpenAI's
    /// strict-mode rules: every property required, `additionalProperties: false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_output_schema: bool,
    /// Embedders: the vector length. Required unless the model is a known OpenAI one; for
    /// `openai` it is also sent as `dimensions` (shortened `text-embedding-3` vectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// Embedders: texts per request (default 256 for OpenAI, 64 for Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
}

impl ProviderConfig {
    /// A config for `provider` and `model`, everything else default.
    pub fn new(provider: ProviderKind, model: impl Into<String>) -> Self {
        Self {
            provider,
            model: model.into(),
            base_url: None,
            api_key: None,
            timeout: None,
            name: None,
            headers: BTreeMap::new(),
            max_tokens: None,
            context_window: None,
            keep_alive: None,
            strict_output_schema: false,
            dimensions: None,
            batch_size: None,
        }
    }

    /// Sets the server.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: KeyRef) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the provider name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds an HTTP header (its value is kept as a secret).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into(), SecretString::from(value.into()));
        self
    }

    /// Sets the default output token cap.
    pub fn with_max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets Ollama's context window.
    pub fn with_context_window(mut self, n: u32) -> Self {
        self.context_window = Some(n);
        self
    }

    /// Sets Ollama's keep-alive.
    pub fn with_keep_alive(mut self, keep_alive: impl Into<String>) -> Self {
        self.keep_alive = Some(keep_alive.into());
        self
    }

    /// Sends OpenAI output schemas in strict mode.
    pub fn with_strict_output_schema(mut self, strict: bool) -> Self {
        self.strict_output_schema = strict;
        self
    }

    /// Sets the embedding vector length.
    pub fn with_dimensions(mut self, n: usize) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// Sets the embedding batch size.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// The name providers report.
    pub fn provider_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.provider.as_str())
    }

    /// The server URL without a trailing slash.
    pub fn resolved_base_url(&self) -> Result<String> {
        let url = match (&self.base_url, self.provider.default_base_url()) {
            (Some(u), _) => u.as_str(),
            (None, Some(d)) => d,
            (None, None) => {
                return Err(Error::InvalidConfig(format!(
                    "provider `{}` needs a base_url",
                    self.provider
                )));
            }
        };
        let url = url.trim().trim_end_matches('/');
        // Messages quote the URL without userinfo or query string.
        let shown = crate::redact::url(url);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::InvalidConfig(format!(
                "base_url `{shown}` must start with http:// or https://"
            )));
        }
        let convention = match self.provider {
            ProviderKind::OpenAi if !url.ends_with("/v1") => Some(
                "an `openai` base_url includes the API version, like `https://api.openai.com/v1` \
                 (agentkit appends `/chat/completions`)",
            ),
            ProviderKind::Anthropic if url.ends_with("/v1") => Some(
                "an `anthropic` base_url is the server root without `/v1`, like \
                 `https://api.anthropic.com` (agentkit appends `/v1/messages`)",
            ),
            ProviderKind::Ollama if url.ends_with("/v1") || url.ends_with("/api") => Some(
                "an `ollama` base_url is the server root, like `http://localhost:11434` \
                 (agentkit appends `/api/chat`); for Ollama's OpenAI-compatible `/v1`, use \
                 provider `openai_compatible`",
            ),
            _ => None,
        };
        if let Some(expected) = convention {
            return Err(Error::InvalidConfig(format!(
                "base_url `{shown}` for provider `{}`: {expected}",
                self.provider
            )));
        }
        Ok(url.to_owned())
    }

    /// The API key: `api_key`, else the provider's conventional variable (required for OpenAI
    /// and Anthropic), else none.
    pub fn resolved_api_key(&self) -> Result<Option<SecretString>> {
        match (&self.api_key, self.provider.default_key_env()) {
            (Some(k), _) => k.resolve().map(Some),
            (None, Some(var)) => KeyRef::env(var).resolve().map(Some).map_err(|_| {
                Error::InvalidConfig(format!(
                    "provider `{}` needs an API key: set {var} or api_key",
                    self.provider
                ))
            }),
            (None, None) => Ok(None),
        }
    }

    /// The timeout, default 300 s.
    pub fn resolved_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(300))
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a BTreeMap<String, SecretString>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.keys().map(|k| (k, crate::redact::REDACTED)))
                    .finish()
            }
        }
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field(
                "base_url",
                &self.base_url.as_deref().map(crate::redact::url),
            )
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("name", &self.name)
            .field("headers", &Redacted(&self.headers))
            .field("max_tokens", &self.max_tokens)
            .field("context_window", &self.context_window)
            .field("keep_alive", &self.keep_alive)
            .field("strict_output_schema", &self.strict_output_schema)
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Serializers that refuse to write credentials out, as [`KeyRef`] does for explicit keys.
mod secret_free {
    use std::collections::BTreeMap;

    use secrecy::SecretString;
    use serde::Serializer;
    use serde::ser::Error as _;

    pub fn base_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match url {
            Some(u) if crate::redact::url_has_secrets(u) => Err(S::Error::custom(
                "a base_url with credentials (user:password@ or a query string) is not \
                 serialized",
            )),
            Some(u) => s.serialize_str(u),
            None => s.serialize_none(),
        }
    }

    pub fn headers<S: Serializer>(
        headers: &BTreeMap<String, SecretString>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if headers.is_empty() {
            return s.collect_map(headers.keys().map(|k| (k, "")));
        }
        Err(S::Error::custom(format!(
            "custom header values are not serialized (they often carry credentials): {}",
            headers.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// `Option<Duration>` as seconds (a number) or a string with a unit (`ms`, `s`, `m`, `h`).
mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) if d.subsec_millis() == 0 => s.serialize_str(&format!("{}s", d.as_secs())),
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs = match Option::<Raw>::deserialize(d)? {
            None => return Ok(None),
            Some(Raw::Seconds(s)) => s,
            Some(Raw::Text(t)) => parse(&t).ok_or_else(|| {
                D::Error::custom(format!(
                    "invalid duration `{t}`: use seconds or a number with ms, s, m or h"
                ))
            })?,
        };
        Duration::try_from_secs_f64(secs)
            .map(Some)
            .map_err(|_| D::Error::custom("a duration must be a non-negative number"))
    }

    fn parse(t: &str) -> Option<f64> {
        let t = t.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().ok()?;
        let factor = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        Some(n * factor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn one_base_url_convention_per_provider_with_an_error_that_says_which() {
        let url = |kind: ProviderKind, base: &str| {
            ProviderConfig::new(kind, "m")
                .with_base_url(base)
                .resolved_base_url()
        };
        assert_eq!(
            url(ProviderKind::OpenAi, "https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1"
        );
        let e = url(ProviderKind::OpenAi, "https://api.openai.com").unwrap_err();
        assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("includes the API version"), "{e}");
        assert!(url(ProviderKind::Anthropic, "https://api.anthropic.com").is_ok());
        let e = url(ProviderKind::Anthropic, "https://api.anthropic.com/v1").unwrap_err();
        assert!(e.to_string().contains("without `/v1`"), "{e}");
        assert!(url(ProviderKind::Ollama, "http://localhost:11434").is_ok());
        let e = url(ProviderKind::Ollama, "http://localhost:11434/v1").unwrap_err();
        assert!(e.to_string().contains("openai_compatible"), "{e}");
        assert!(url(ProviderKind::OpenAiCompatible, "http://h:8000/v1").is_ok());
        // The defaults follow the convention.
        for kind in [
            ProviderKind::OpenAi,
            ProviderKind::Anthropic,
            ProviderKind::Ollama,
        ] {
            assert!(
                ProviderConfig::new(kind, "m").resolved_base_url().is_ok(),
                "{kind}"
            );
        }
    }

    #[test]
    fn config_parses_from_json_and_toml() {
        let c: ProviderConfig = serde_json::from_str(
            r#"{"provider": "openai_compatible", "model": "llama3", "base_url": "http://h:8000/v1/",
                "api_key": {"value": "sk-secret-1"}, "timeout": 2.5, "headers": {"x-a": "b"}}"#,
        )
        .unwrap();
        assert_eq!(c.provider, ProviderKind::OpenAiCompatible);
        assert_eq!(c.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(c.resolved_base_url().unwrap(), "http://h:8000/v1");
        assert!(!format!("{c:?}").contains("sk-secret-1"));
        assert!(
            serde_json::to_string(&c).is_err(),
            "explicit keys are not serialized"
        );

        let t: ProviderConfig = toml::from_str(
            "provider = \"ollama\"\nmodel = \"qwen3\"\ntimeout = \"2m\"\ncontext_window = 32768\n",
        )
        .unwrap();
        assert_eq!(t.timeout, Some(Duration::from_secs(120)));
        assert_eq!(t.resolved_base_url().unwrap(), "http://localhost:11434");
        assert!(t.resolved_api_key().unwrap().is_none());
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["timeout"], "120s");

        assert!(
            serde_json::from_str::<ProviderConfig>(r#"{"provider": "x", "model": "m"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<ProviderConfig>(
                r#"{"provider": "openai", "model": "m", "tmeout": 1}"#
            )
            .is_err(),
            "unknown fields are rejected"
        );
    }

    #[test]
    fn keys_resolve_without_echoing_values() {
        let e = KeyRef::env("sk-this-is-a-pasted-key")
            .resolve()
            .unwrap_err();
        assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
        assert!(!e.to_string().contains("sk-this"));
        let e = KeyRef::env("AGENTKIT_TEST_SURELY_UNSET_VAR")
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("AGENTKIT_TEST_SURELY_UNSET_VAR"));
        let k = KeyRef::value("abc").resolve().unwrap();
        assert_eq!(k.expose_secret(), "abc");
        let c = ProviderConfig::new(ProviderKind::OpenAiCompatible, "m");
        assert_eq!(
            c.resolved_base_url().unwrap_err().kind(),
            agentkit_core::ErrorKind::InvalidConfig
        );
    }
}
