//! Resilience layers composable around any `Arc<dyn LlmProvider>` or `Arc<dyn Embedder>`.
//!
//! Each layer is itself an [`LlmProvider`], so they stack in any order. A typical stack, from the
//! outside in:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentkit_core::model::LlmProvider;
//! use agentkit_providers::resilience::{CircuitBreaker, ProviderExt, RetryPolicy};
//! # fn wrap(primary: Arc<dyn LlmProvider>, backup: Arc<dyn LlmProvider>) -> Arc<dyn LlmProvider> {
//! let primary = primary
//!     .with_timeout(Duration::from_secs(60), Duration::from_secs(20))
//!     .with_circuit_breaker(CircuitBreaker::consecutive_failures(5, Duration::from_secs(30)))
//!     .with_retry(RetryPolicy::default());
//! primary.with_fallback([backup])
//! # }
//! ```
//!
//! - [`WithTimeout`]: a deadline per call and per gap between stream events.
//! - [`WithRetry`]: exponential backoff with jitter (`backon`), only for retryable errors,
//!   honouring the server's `retry_after`, bounded by attempts and total time; a stream is retried
//!   only if it failed before delivering anything (then a malformed first event is retried too).
//! - [`WithCircuitBreaker`]: closed / open / half-open on consecutive failures or a failure rate;
//!   the state is observable and shared by clones.
//! - [`FallbackChain`]: primary, then backups in order; the response's `provider` says who
//!   answered.
//! - `WithRateLimit` (feature `rate-limit`): client-side requests-per-minute and
//!   tokens-per-minute budgets (`governor`), shared by clones of one `RateLimit`.
//!
//! ## Embedders
//!
//! The same layers wrap an `Arc<dyn Embedder>` through [`EmbedderExt`], with the same policy
//! and state types (a [`CircuitBreaker`] or `RateLimit` may even be shared by a model and an
//! embedder drawing on one account). Each layer is itself an [`Embedder`] reporting the inner
//! embedder's [`dimensions`](Embedder::dimensions). A typical stack, from the outside in:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentkit_core::error::Result;
//! use agentkit_core::retrieval::Embedder;
//! use agentkit_providers::resilience::{CircuitBreaker, EmbedderExt, RetryPolicy};
//! # fn wrap(primary: Arc<dyn Embedder>, backup: Arc<dyn Embedder>) -> Result<Arc<dyn Embedder>> {
//! let primary = primary
//!     .with_timeout(Duration::from_secs(30))
//!     .with_circuit_breaker(CircuitBreaker::consecutive_failures(5, Duration::from_secs(30)))
//!     .with_retry(RetryPolicy::default());
//! // A backup making vectors of another length is refused here (`Error::InvalidConfig`).
//! let embedder = primary.with_fallback([backup])?;
//! # Ok(embedder)
//! # }
//! ```
//!
//! - [`TimeoutEmbedder`]: a deadline per call (then `Error::Timeout`).
//! - [`RetryEmbedder`]: [`WithRetry`]'s backoff, `retry_after` handling and bounds.
//! - [`CircuitBreakerEmbedder`]: fails fast while the breaker is open.
//! - [`FallbackEmbedder`]: primary, then backups in order; built only when every member's
//!   vectors have one length.
//! - `RateLimitedEmbedder` (feature `rate-limit`): a call is one request and its texts'
//!   bytes / 4 tokens.
//!
//! Every layer checks its inner embedder's answer: one vector per text, each `dimensions()`
//! long, or the call fails with
//! [`Error::MalformedResponse`](agentkit_core::error::Error::MalformedResponse). Like a malformed
//! completion it is not retried (the same embedder would most likely answer alike), but it is
//! a failure for the circuit breaker and sends a fallback chain to its next embedder.

mod breaker;
mod embedder;
mod fallback;
#[cfg(feature = "rate-limit")]
mod rate_limit;
mod retry;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

pub use breaker::{CircuitBreaker, CircuitState, WithCircuitBreaker};
#[cfg(feature = "rate-limit")]
pub use embedder::RateLimitedEmbedder;
pub use embedder::{
    CircuitBreakerEmbedder, EmbedderExt, FallbackEmbedder, RetryEmbedder, TimeoutEmbedder,
};
pub use fallback::FallbackChain;
#[cfg(feature = "rate-limit")]
pub use rate_limit::{RateLimit, WithRateLimit};
pub use retry::{RetryPolicy, WithRetry};
pub use timeout::WithTimeout;

use agentkit_core::model::LlmProvider;
#[cfg(doc)]
use agentkit_core::retrieval::Embedder;

/// Fluent composition of the layers around an `Arc<dyn LlmProvider>`.
pub trait ProviderExt {
    /// Adds call and stream-idle timeouts.
    fn with_timeout(self, call: Duration, stream_idle: Duration) -> Arc<dyn LlmProvider>;
    /// Adds retries.
    fn with_retry(self, policy: RetryPolicy) -> Arc<dyn LlmProvider>;
    /// Adds a circuit breaker (clones of `breaker` share its state).
    fn with_circuit_breaker(self, breaker: CircuitBreaker) -> Arc<dyn LlmProvider>;
    /// Falls back to `backups` in order when this provider fails.
    fn with_fallback(
        self,
        backups: impl IntoIterator<Item = Arc<dyn LlmProvider>>,
    ) -> Arc<dyn LlmProvider>;
    /// Adds client-side rate limits (clones of `limit` share their budgets).
    #[cfg(feature = "rate-limit")]
    fn with_rate_limit(self, limit: RateLimit) -> Arc<dyn LlmProvider>;
}

impl ProviderExt for Arc<dyn LlmProvider> {
    fn with_timeout(self, call: Duration, stream_idle: Duration) -> Arc<dyn LlmProvider> {
        Arc::new(WithTimeout::new(self, call, stream_idle))
    }

    fn with_retry(self, policy: RetryPolicy) -> Arc<dyn LlmProvider> {
        Arc::new(WithRetry::new(self, policy))
    }

    fn with_circuit_breaker(self, breaker: CircuitBreaker) -> Arc<dyn LlmProvider> {
        Arc::new(WithCircuitBreaker::new(self, breaker))
    }

    fn with_fallback(
        self,
        backups: impl IntoIterator<Item = Arc<dyn LlmProvider>>,
    ) -> Arc<dyn LlmProvider> {
        Arc::new(FallbackChain::new(std::iter::once(self).chain(backups)))
    }

    #[cfg(feature = "rate-limit")]
    fn with_rate_limit(self, limit: RateLimit) -> Arc<dyn LlmProvider> {
        Arc::new(WithRateLimit::new(self, limit))
    }
}
