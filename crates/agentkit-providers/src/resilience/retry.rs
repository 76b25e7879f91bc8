use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::{Error, ErrorKind, Result};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;

/// When and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: usize,
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
    /// No attempt starts after this much time since the first.
    pub max_elapsed: Duration,
    /// Randomize delays (recommended, so clients do not retry in lockstep).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` attempts and the default delays.
    pub fn attempts(max_attempts: usize) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// Sets the delay range.
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Sets the total time bound.
    pub fn with_max_elapsed(mut self, max: Duration) -> Self {
        self.max_elapsed = max;
        self
    }

    /// Turns jitter off (deterministic delays, for tests).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut b = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1));
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

/// The delays of one retried call: the policy's backoff, stretched to the server's
/// `retry_after`, bounded by the policy's attempts and total time. Shared by [`WithRetry`] and
/// the embedder layer.
pub(super) struct Backoff<'a, I> {
    policy: &'a RetryPolicy,
    delays: I,
    started: tokio::time::Instant,
    target: &'a str,
}

impl<'a> Backoff<'a, ()> {
    /// Starts the clock for one call to `target` (named in logs).
    pub(super) fn start(
        policy: &'a RetryPolicy,
        target: &'a str,
    ) -> Backoff<'a, impl Iterator<Item = Duration> + use<>> {
        Backoff {
            policy,
            delays: policy.delays(),
            started: tokio::time::Instant::now(),
            target,
        }
    }
}

impl<I: Iterator<Item = Duration>> Backoff<'_, I> {
    /// The delay before the next attempt, or `None` when the error is final. `retryable` says
    /// whether the error may be retried at all (see [`WithRetry::stream`]).
    pub(super) fn next_delay(&mut self, error: &Error, retryable: bool) -> Option<Duration> {
        if !retryable {
            return None;
        }
        let mut delay = self.delays.next()?;
        if let Some(after) = error.retry_after() {
            delay = delay.max(after);
        }
        if self.started.elapsed() + delay > self.policy.max_elapsed {
            return None;
        }
        tracing::warn!(provider = self.target, error = %error, ?delay, "retrying call");
        Some(delay)
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// [`Error::is_retryable`], or `policy` gives up; then returns the last error as it was.
pub(super) async fn retry<T, Fut>(
    policy: &RetryPolicy,
    target: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::start(policy, target);
    loop {
        match attempt().await {
            Ok(r) => return Ok(r),
            Err(e) => match backoff.next_delay(&e, e.is_retryable()) {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(e),
            },
        }
    }
}

/// Retries retryable failures with exponential backoff.
#[derive(Clone)]
pub struct WithRetry {
    inner: Arc<dyn LlmProvider>,
    policy: RetryPolicy,
}

impl WithRetry {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LlmProvider>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
impl LlmProvider for WithRetry {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let inner = &self.inner;
        retry(&self.policy, inner.name(), move || inner.complete(request)).await
    }

    /// Retries opening the stream and a first event that is an error; once anything was
    /// delivered, errors pass through (the consumer already has partial content).
    ///
    /// A first event that is an [`Error::MalformedResponse`] (one bad line before any
    /// content: a proxy's garbage, a truncated first chunk) is retried like a transport error,
    /// within the same attempts and time bounds: nothing was delivered, so a fresh attempt
    /// cannot duplicate content.
    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let mut backoff = Backoff::start(&self.policy, self.inner.name());
        loop {
            let (error, retryable) = match self.inner.stream(request).await {
                Ok(mut s) => match s.next().await {
                    Some(Ok(first)) => {
                        return Ok(Box::pin(
                            futures::stream::once(async { Ok(first) }).chain(s),
                        ));
                    }
                    None => return Ok(Box::pin(futures::stream::empty())),
                    Some(Err(e)) => {
                        let retryable =
                            e.is_retryable() || e.kind() == ErrorKind::MalformedResponse;
                        (e, retryable)
                    }
                },
                Err(e) => {
                    let retryable = e.is_retryable();
                    (e, retryable)
                }
            };
            match backoff.next_delay(&error, retryable) {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(error),
            }
        }
    }
}
