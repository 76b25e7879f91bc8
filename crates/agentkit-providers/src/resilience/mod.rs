//! Resilience layers composable around any `Arc<dyn LlmProvider>`.
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

mod breaker;
mod fallback;
#[cfg(feature = "rate-limit")]
mod rate_limit;
mod retry;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

pub use breaker::{CircuitBreaker, CircuitState, WithCircuitBreaker};
pub use fallback::FallbackChain;
#[cfg(feature = "rate-limit")]
pub use rate_limit::{RateLimit, WithRateLimit};
pub use retry::{RetryPolicy, WithRetry};
pub use timeout::WithTimeout;

use agentkit_core::model::LlmProvider;

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
