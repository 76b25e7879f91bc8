//! The resilience layers around an `Arc<dyn Embedder>` (documented, with an example stack, in
//! the [`resilience`](super) module).
//!
//! Every layer calls its inner embedder through `embed_checked`, which refuses an answer of
//! the wrong shape with [`Error::MalformedResponse`].

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use agentkit_core::retrieval::Embedder;
use async_trait::async_trait;

use super::breaker::CircuitBreaker;
use super::fallback::gives_up;
#[cfg(feature = "rate-limit")]
use super::rate_limit::RateLimit;
use super::retry::{RetryPolicy, retry};

/// How embedders are named in errors and logs (the trait has no name).
const EMBEDDER: &str = "embedder";

/// Fluent composition of the layers around an `Arc<dyn Embedder>`.
pub trait EmbedderExt {
    /// Adds a deadline per call.
    fn with_timeout(self, call: Duration) -> Arc<dyn Embedder>;
    /// Adds retries.
    fn with_retry(self, policy: RetryPolicy) -> Arc<dyn Embedder>;
    /// Adds a circuit breaker (clones of `breaker` share its state).
    fn with_circuit_breaker(self, breaker: CircuitBreaker) -> Arc<dyn Embedder>;
    /// Falls back to `backups` in order when this embedder fails.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when a backup's vectors have another length than this
    /// embedder's (their vectors could not share one index).
    fn with_fallback(
        self,
        backups: impl IntoIterator<Item = Arc<dyn Embedder>>,
    ) -> Result<Arc<dyn Embedder>>;
    /// Adds client-side rate limits (clones of `limit` share their budgets).
    #[cfg(feature = "rate-limit")]
    fn with_rate_limit(self, limit: RateLimit) -> Arc<dyn Embedder>;
}

impl EmbedderExt for Arc<dyn Embedder> {
    fn with_timeout(self, call: Duration) -> Arc<dyn Embedder> {
        Arc::new(TimeoutEmbedder::new(self, call))
    }

    fn with_retry(self, policy: RetryPolicy) -> Arc<dyn Embedder> {
        Arc::new(RetryEmbedder::new(self, policy))
    }

    fn with_circuit_breaker(self, breaker: CircuitBreaker) -> Arc<dyn Embedder> {
        Arc::new(CircuitBreakerEmbedder::new(self, breaker))
    }

    fn with_fallback(
        self,
        backups: impl IntoIterator<Item = Arc<dyn Embedder>>,
    ) -> Result<Arc<dyn Embedder>> {
        Ok(Arc::new(FallbackEmbedder::new(
            std::iter::once(self).chain(backups),
        )?))
    }

    #[cfg(feature = "rate-limit")]
    fn with_rate_limit(self, limit: RateLimit) -> Arc<dyn Embedder> {
        Arc::new(RateLimitedEmbedder::new(self, limit))
    }
}

/// Calls `inner` and checks the shape of its answer: one vector per text, each
/// `inner.dimensions()` long.
async fn embed_checked(inner: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let vectors = inner.embed(texts).await?;
    if vectors.len() != texts.len() {
        return Err(Error::MalformedResponse(format!(
            "{EMBEDDER}: {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    let dimensions = inner.dimensions();
    if let Some((i, v)) = vectors
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != dimensions)
    {
        return Err(Error::MalformedResponse(format!(
            "{EMBEDDER}: vector {i} has {} dimensions, expected {dimensions}",
            v.len()
        )));
    }
    Ok(vectors)
}

/// An embedder with a deadline per call.
#[derive(Clone)]
pub struct TimeoutEmbedder {
    inner: Arc<dyn Embedder>,
    call: Duration,
}

impl TimeoutEmbedder {
    /// Wraps `inner`: `call` bounds a whole [`embed`](Embedder::embed), every batch of it.
    pub fn new(inner: Arc<dyn Embedder>, call: Duration) -> Self {
        Self { inner, call }
    }
}

#[async_trait]
impl Embedder for TimeoutEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// Fails with [`Error::Timeout`] when the inner embedder has not answered in time.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        tokio::time::timeout(self.call, embed_checked(&*self.inner, texts))
            .await
            .map_err(|_| {
                Error::Timeout(format!("{EMBEDDER}: no embeddings within {:?}", self.call))
            })?
    }
}

/// An embedder retrying retryable failures with exponential backoff, honouring the server's
/// `retry_after` (the model layer's [`WithRetry`](super::WithRetry) logic).
#[derive(Clone)]
pub struct RetryEmbedder {
    inner: Arc<dyn Embedder>,
    policy: RetryPolicy,
}

impl RetryEmbedder {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
impl Embedder for RetryEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// Retries only [`Error::is_retryable`] errors; the last error is returned as it was.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let inner = &*self.inner;
        retry(&self.policy, EMBEDDER, move || embed_checked(inner, texts)).await
    }
}

/// An embedder behind a [`CircuitBreaker`] (which may be shared with other wrappers).
#[derive(Clone)]
pub struct CircuitBreakerEmbedder {
    inner: Arc<dyn Embedder>,
    breaker: CircuitBreaker,
}

impl CircuitBreakerEmbedder {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker (to observe its state).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

#[async_trait]
impl Embedder for CircuitBreakerEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// Fails fast with [`Error::Unavailable`], without calling the inner embedder, while the
    /// breaker is open.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let inner = &*self.inner;
        self.breaker
            .guard(EMBEDDER, || embed_checked(inner, texts))
            .await
    }
}

/// Tries embedders in order until one answers. Every member produces vectors of one length
/// (checked when the chain is built). Caller errors (invalid input, cancellation) are
/// returned at once: another embedder would refuse them too.
#[derive(Clone)]
pub struct FallbackEmbedder {
    embedders: Vec<Arc<dyn Embedder>>,
}

impl std::fmt::Debug for FallbackEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackEmbedder")
            .field("embedders", &self.embedders.len())
            .field("dimensions", &self.dimensions())
            .finish()
    }
}

impl FallbackEmbedder {
    /// A chain over `embedders` (primary first).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when there is no embedder, or one whose
    /// [`dimensions`](Embedder::dimensions) differ from the primary's.
    pub fn new(embedders: impl IntoIterator<Item = Arc<dyn Embedder>>) -> Result<Self> {
        let embedders: Vec<_> = embedders.into_iter().collect();
        let Some(primary) = embedders.first() else {
            return Err(Error::InvalidConfig(
                "embedder fallback chain has no embedders".into(),
            ));
        };
        let expected = primary.dimensions();
        if let Some((i, e)) = embedders
            .iter()
            .enumerate()
            .find(|(_, e)| e.dimensions() != expected)
        {
            return Err(Error::InvalidConfig(format!(
                "embedder fallback chain: embedder {i} makes vectors of {} dimensions, the \
                 primary of {expected}",
                e.dimensions()
            )));
        }
        Ok(Self { embedders })
    }
}

#[async_trait]
impl Embedder for FallbackEmbedder {
    fn dimensions(&self) -> usize {
        self.embedders.first().map_or(0, |e| e.dimensions())
    }

    /// Returns the first answer; when every embedder failed, the last error.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut last = None;
        for (i, e) in self.embedders.iter().enumerate() {
            match embed_checked(&**e, texts).await {
                Ok(v) => return Ok(v),
                Err(error) if gives_up(&error) => return Err(error),
                Err(error) => {
                    tracing::warn!(position = i, error = %error, "embedder failed; falling back");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::InvalidConfig("embedder fallback chain has no embedders".into())
        }))
    }
}

/// An embedder behind client-side [`RateLimit`]s: a call is one request, whatever the inner
/// embedder's batching, and [`RateLimit::estimate_embedding_tokens`] tokens.
#[cfg(feature = "rate-limit")]
#[derive(Clone)]
pub struct RateLimitedEmbedder {
    inner: Arc<dyn Embedder>,
    limit: RateLimit,
}

#[cfg(feature = "rate-limit")]
impl RateLimitedEmbedder {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, limit: RateLimit) -> Self {
        Self { inner, limit }
    }

    /// The limits.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }
}

#[cfg(feature = "rate-limit")]
#[async_trait]
impl Embedder for RateLimitedEmbedder {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    /// Waits for the budgets (or fails with [`Error::RateLimited`] past the limit's
    /// `max_wait`), then calls the inner embedder.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.limit
            .acquire_tokens(self.limit.estimate_embedding_tokens(texts))
            .await?;
        embed_checked(&*self.inner, texts).await
    }
}
