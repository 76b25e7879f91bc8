use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Limiter =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// Client-side rate limits: requests per minute and tokens per minute (GCRA, `governor`).
///
/// Clones share their budgets, so one `RateLimit` can wrap every provider that draws on one
/// account. A call waits until both budgets allow it (or fails with [`Error::RateLimited`] when
/// the wait would exceed [`RateLimit::with_max_wait`]).
///
/// Tokens are charged before the call, as providers count them: the request's estimated
/// prompt tokens ([`Message::estimated_tokens`](agentkit_core::message::Message::estimated_tokens),
/// tool schemas included) plus its `max_tokens` (or
/// [`RateLimit::with_assumed_output_tokens`] when it has none). An embedding call
/// ([`RateLimitedEmbedder`](super::RateLimitedEmbedder)) is one request, whatever its
/// batching, and [`RateLimit::estimate_embedding_tokens`] tokens. A call needing more than a
/// whole minute's budget waits for the full budget.
#[derive(Clone, Default)]
pub struct RateLimit {
    requests: Option<Arc<Limiter>>,
    tokens: Option<(Arc<Limiter>, u32)>,
    max_wait: Option<Duration>,
    assumed_output: u32,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests", &self.requests.is_some())
            .field("tokens_per_minute", &self.tokens.as_ref().map(|t| t.1))
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl RateLimit {
    /// No limits yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` calls a minute (0 removes the limit).
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests = NonZeroU32::new(n).map(|n| {
            Arc::new(RateLimiter::direct_with_clock(
                Quota::per_minute(n),
                MonotonicClock,
            ))
        });
        self
    }

    /// At most `n` tokens a minute (0 removes the limit).
    pub fn tokens_per_minute(mut self, n: u32) -> Self {
        self.tokens = NonZeroU32::new(n).map(|q| {
            (
                Arc::new(RateLimiter::direct_with_clock(
                    Quota::per_minute(q),
                    MonotonicClock,
                )),
                n,
            )
        });
        self
    }

    /// Fail with [`Error::RateLimited`] instead of waiting longer than `max` (default: wait).
    pub fn with_max_wait(mut self, max: Duration) -> Self {
        self.max_wait = Some(max);
        self
    }

    /// Output tokens charged for a request without `max_tokens` (default 0).
    pub fn with_assumed_output_tokens(mut self, n: u32) -> Self {
        self.assumed_output = n;
        self
    }

    /// The tokens a request is charged.
    pub fn estimate_tokens(&self, request: &CompletionRequest) -> u64 {
        let prompt: usize = request.messages.iter().map(|m| m.estimated_tokens()).sum();
        let tools: usize = request
            .tools
            .iter()
            .map(|t| {
                (t.name.len() + t.description.len() + t.parameters.to_string().len()).div_ceil(4)
            })
            .sum();
        let output = request.max_tokens.unwrap_or(self.assumed_output);
        (prompt + tools) as u64 + u64::from(output)
    }

    /// The tokens an embedding call is charged: each text's bytes / 4, rounded up.
    pub fn estimate_embedding_tokens(&self, texts: &[String]) -> u64 {
        texts.iter().map(|t| t.len().div_ceil(4) as u64).sum()
    }

    /// Waits until the request fits both budgets, then charges it.
    pub async fn acquire(&self, request: &CompletionRequest) -> Result<()> {
        self.acquire_tokens(self.estimate_tokens(request)).await
    }

    /// Waits until one request of `tokens` fits both budgets, then charges it.
    pub(super) async fn acquire_tokens(&self, tokens: u64) -> Result<()> {
        let started = std::time::Instant::now();
        if let Some(limiter) = &self.requests {
            self.take(limiter, NonZeroU32::MIN, started, "requests")
                .await?;
        }
        if let Some((limiter, per_minute)) = &self.tokens {
            let wanted = tokens.min(u64::from(*per_minute));
            let n = NonZeroU32::new(u32::try_from(wanted).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN);
            self.take(limiter, n, started, "tokens").await?;
        }
        Ok(())
    }

    async fn take(
        &self,
        limiter: &Limiter,
        n: NonZeroU32,
        started: std::time::Instant,
        what: &str,
    ) -> Result<()> {
        loop {
            let wait = match limiter.check_n(n) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(not_until)) => not_until.wait_time_from(MonotonicClock.now()),
                // Cannot happen: `n` is capped at the burst size.
                Err(_) => {
                    return Err(Error::Internal(format!(
                        "rate limit: {n} {what} exceed the budget"
                    )));
                }
            };
            if let Some(max) = self.max_wait
                && started.elapsed() + wait > max
            {
                return Err(Error::RateLimited {
                    message: format!("client-side {what}-per-minute limit reached"),
                    retry_after: Some(wait),
                });
            }
            tracing::debug!(?wait, what, "waiting for the client-side rate limit");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A provider behind client-side [`RateLimit`]s.
#[derive(Clone)]
pub struct WithRateLimit {
    inner: Arc<dyn LlmProvider>,
    limit: RateLimit,
}

impl WithRateLimit {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LlmProvider>, limit: RateLimit) -> Self {
        Self { inner, limit }
    }

    /// The limits.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }
}

#[async_trait]
impl LlmProvider for WithRateLimit {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        self.limit.acquire(request).await?;
        self.inner.complete(request).await
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        self.limit.acquire(request).await?;
        self.inner.stream(request).await
    }
}
