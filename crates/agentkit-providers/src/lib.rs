//! # agentkit-providers
//!
//! LLM and embedding providers for agentkit, and the layers around them: every [`LlmProvider`]
//! and [`Embedder`] here implements the contracts of `agentkit-core`, which itself has no HTTP
//! client.
//!
//! - HTTP providers, chosen at compile time by feature and at run time by [`ProviderConfig`]
//!   ([`build_provider`], [`build_embedder`]).
//! - [`resilience`]: timeouts, retries, circuit breakers, fallback chains and client-side rate
//!   limits, each itself an `LlmProvider`, stacking around any `Arc<dyn LlmProvider>`; the same
//!   layers for embedders (each itself an `Embedder`) around any `Arc<dyn Embedder>`.
//! - `rules::RuleBasedModel`: a deterministic offline model.
//! - `http` and `sse`: the HTTP plumbing the providers share (the client with keys as sensitive
//!   headers, `retry-after` parsing, HTTP status to typed error, key scrubbing, tool-name
//!   mapping, the stream driver), public so other vendor crates can build on it.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `openai` | `openai`: OpenAI Chat Completions and `/v1/embeddings`; with `base_url`, any OpenAI-compatible server (vLLM, LiteLLM, OpenRouter, Ollama's `/v1`, ...) |
//! | `anthropic` | `anthropic`: the Anthropic Messages API |
//! | `ollama` | `ollama`: Ollama's native `/api/chat` and `/api/embed` |
//! | `rate-limit` | `resilience::WithRateLimit`: client-side requests and tokens per minute (`governor`) |
//! | `rules` | `rules::RuleBasedModel`: deterministic keyword/regex rules, the offline fallback model |
//!
//! `http` is compiled with any of `openai`, `anthropic` and `ollama`; `sse` with `openai` or
//! `anthropic`. Without features the crate still has [`ProviderConfig`] (a disabled provider is
//! an [`Error::InvalidConfig`] naming its feature) and the [`resilience`] layers. The `agentkit`
//! facade re-exports this crate as `agentkit::providers` (and `agentkit::resilience`,
//! `agentkit::rules`) and forwards the features.
//!
//! ## Errors
//!
//! Every provider maps HTTP and stream failures to typed [`Error`]s so the
//! [`resilience`] layers can decide what to retry:
//!
//! | what happened | error |
//! |---|---|
//! | 401, 403 | [`Error::Unauthenticated`] |
//! | 429 | [`Error::RateLimited`] with `retry-after` / `retry-after-ms` (seconds or HTTP date); OpenAI's `insufficient_quota` is [`Error::PermissionDenied`] (a billing problem no retry fixes) |
//! | 529, 503, an `overloaded` error | [`Error::Overloaded`] |
//! | the prompt does not fit | [`Error::ContextLengthExceeded`] |
//! | 404 | [`Error::InvalidConfig`] (unknown model or wrong `base_url`) |
//! | 408, a client timeout | [`Error::Timeout`] |
//! | other 4xx | [`Error::InvalidInput`] |
//! | other 5xx | [`Error::Server`] |
//! | connection refused or reset | [`Error::Unavailable`] |
//! | bad JSON, missing fields, a stream cut off or with a malformed event | [`Error::MalformedResponse`] |
//!
//! API keys and custom header values are [`SecretString`]s: they are sent as sensitive headers,
//! never appear in `Debug` output, serialized configs, error messages (a server echoing one has
//! it replaced) or traces. A `base_url` with credentials (`user:pass@`, a query string) is
//! quoted without them.
//!
//! ## Example
//!
//! A provider from configuration, wrapped in the resilience layers:
//!
//! ```
//! use std::time::Duration;
//! use agentkit_providers::resilience::{CircuitBreaker, ProviderExt, RetryPolicy};
//! use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, build_provider};
//!
//! let config: ProviderConfig = serde_json::from_str(r#"{
//!     "provider": "openai",
//!     "model": "gpt-4o-mini",
//!     "api_key": {"env": "OPENAI_API_KEY"},
//!     "timeout": "90s"
//! }"#).unwrap();
//! assert_eq!(config.provider, ProviderKind::OpenAi);
//! assert!(matches!(config.api_key, Some(KeyRef::Env(_))));
//!
//! # let config = config.with_api_key(KeyRef::value("sk-example"));
//! match build_provider(&config) {
//!     Ok(model) => {
//!         let _model = model
//!             .with_timeout(Duration::from_secs(60), Duration::from_secs(20))
//!             .with_circuit_breaker(CircuitBreaker::consecutive_failures(5, Duration::from_secs(30)))
//!             .with_retry(RetryPolicy::default());
//!     }
//!     // Built without the `openai` feature: the error names it.
//!     Err(e) => assert!(e.to_string().contains("openai")),
//! }
//! ```

#[cfg(feature = "anthropic")]
pub mod anthropic;
mod config;
#[cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
pub mod http;
#[cfg(feature = "ollama")]
pub mod ollama;
#[cfg(feature = "openai")]
pub mod openai;
mod redact;
pub mod resilience;
#[cfg(feature = "rules")]
pub mod rules;
#[cfg(any(feature = "openai", feature = "anthropic"))]
pub mod sse;

use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::LlmProvider;
use agentkit_core::retrieval::Embedder;

pub use config::{KeyRef, ProviderConfig, ProviderKind};
pub use secrecy::{ExposeSecret, SecretString};

/// The modules the `agentkit` facade re-exports at its root (`agentkit::resilience`, and
/// `agentkit::rules` when the `rules` feature is on), whichever crate enabled the features.
/// Not an API of its own: use the crate root.
#[doc(hidden)]
pub mod __facade {
    pub use crate::resilience;
    #[cfg(feature = "rules")]
    pub use crate::rules;
}

fn feature_off(kind: ProviderKind) -> Error {
    Error::InvalidConfig(format!(
        "provider `{kind}` is not compiled in: enable the `{}` feature of agentkit (or agentkit-providers)",
        kind.feature()
    ))
}

/// Builds the provider a config describes.
///
/// A provider whose feature is off is an [`Error::InvalidConfig`] naming the feature; so is a
/// missing key or `base_url`.
pub fn build_provider(config: &ProviderConfig) -> Result<Arc<dyn LlmProvider>> {
    match config.provider {
        #[cfg(feature = "openai")]
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            Ok(Arc::new(openai::OpenAiProvider::from_config(config)?))
        }
        #[cfg(feature = "anthropic")]
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::AnthropicProvider::from_config(config)?)),
        #[cfg(feature = "ollama")]
        ProviderKind::Ollama => Ok(Arc::new(ollama::OllamaProvider::from_config(config)?)),
        #[allow(unreachable_patterns)]
        kind => Err(feature_off(kind)),
    }
}

/// Builds the embedder a config describes (OpenAI, OpenAI-compatible or Ollama; Anthropic has
/// no embeddings API).
pub fn build_embedder(config: &ProviderConfig) -> Result<Arc<dyn Embedder>> {
    match config.provider {
        ProviderKind::Anthropic => Err(Error::InvalidConfig(
            "Anthropic has no embeddings API: use openai, openai_compatible or ollama".into(),
        )),
        #[cfg(feature = "openai")]
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            Ok(Arc::new(openai::OpenAiEmbedder::from_config(config)?))
        }
        #[cfg(feature = "ollama")]
        ProviderKind::Ollama => Ok(Arc::new(ollama::OllamaEmbedder::from_config(config)?)),
        #[allow(unreachable_patterns)]
        kind => Err(feature_off(kind)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn disabled_providers_name_their_feature() {
        #[allow(unused_variables)]
        let check = |kind: ProviderKind, enabled: bool| {
            let base = match kind {
                ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "http://127.0.0.1:9/v1",
                _ => "http://127.0.0.1:9",
            };
            let r = build_provider(
                &ProviderConfig::new(kind, "m")
                    .with_api_key(KeyRef::value("k"))
                    .with_base_url(base),
            );
            match r {
                Ok(_) => assert!(enabled),
                Err(e) => {
                    assert!(!enabled);
                    assert_eq!(e.kind(), agentkit_core::ErrorKind::InvalidConfig);
                    assert!(e.to_string().contains(kind.feature()), "{e}");
                }
            }
        };
        check(ProviderKind::OpenAi, cfg!(feature = "openai"));
        check(ProviderKind::OpenAiCompatible, cfg!(feature = "openai"));
        check(ProviderKind::Anthropic, cfg!(feature = "anthropic"));
        check(ProviderKind::Ollama, cfg!(feature = "ollama"));
        assert!(
            build_embedder(&ProviderConfig::new(ProviderKind::Anthropic, "m")).is_err(),
            "no embeddings at Anthropic"
        );
    }
}
