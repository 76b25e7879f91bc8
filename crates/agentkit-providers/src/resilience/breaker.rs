use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::time::Instant;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// A limited number of trial calls go through; success closes, failure re-opens.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive: u32,
        window: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
    },
}

#[derive(Debug, Clone, Copy)]
enum Trip {
    Consecutive(u32),
    Rate {
        threshold: f64,
        min_calls: usize,
        window: usize,
    },
}

/// A circuit breaker; clones share one state, so every wrapper of one provider sees it.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    state: Arc<Mutex<State>>,
    trip: Trip,
    cool_down: Duration,
    half_open_calls: u32,
}

impl CircuitBreaker {
    fn new(trip: Trip, cool_down: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::Closed {
                consecutive: 0,
                window: VecDeque::new(),
            })),
            trip,
            cool_down,
            half_open_calls: 1,
        }
    }

    /// Opens after `n` consecutive failures, for `cool_down`.
    pub fn consecutive_failures(n: u32, cool_down: Duration) -> Self {
        Self::new(Trip::Consecutive(n.max(1)), cool_down)
    }

    /// Opens when the failure rate over the last `window` calls reaches `threshold` (0..=1),
    /// once at least `min_calls` were seen.
    pub fn failure_rate(
        threshold: f64,
        min_calls: usize,
        window: usize,
        cool_down: Duration,
    ) -> Self {
        Self::new(
            Trip::Rate {
                threshold: threshold.clamp(0.0, 1.0),
                min_calls: min_calls.max(1),
                window: window.max(min_calls.max(1)),
            },
            cool_down,
        )
    }

    /// Trial calls allowed at once while half-open (default 1).
    pub fn with_half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n.max(1);
        self
    }

    /// The current state (an open breaker whose cool-down has passed reports half-open).
    pub fn state(&self) -> CircuitState {
        let Ok(s) = self.state.lock() else {
            return CircuitState::Open;
        };
        match &*s {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() >= *until => CircuitState::HalfOpen,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Makes `call` if the breaker admits it, recording its outcome; when the breaker is open,
    /// fails fast without calling.
    pub(super) async fn guard<T, Fut>(&self, name: &str, call: impl FnOnce() -> Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let permit = self.admit(name)?;
        let result = call().await;
        permit.record(result.as_ref().err().is_some_and(is_provider_failure));
        result
    }

    /// Asks to make a call: the permit records its outcome, or gives its half-open trial slot
    /// back when dropped unrecorded (the call was cancelled, by an outer timeout say).
    pub(super) fn admit(&self, name: &str) -> Result<Permit<'_>> {
        self.acquire(name)?;
        Ok(Permit {
            breaker: self,
            recorded: false,
        })
    }

    fn acquire(&self, name: &str) -> Result<()> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::Internal("circuit breaker lock poisoned".into()))?;
        let open = |until: Instant| Error::Unavailable {
            message: format!(
                "circuit breaker for `{name}` is open for another {:?}",
                until.saturating_duration_since(Instant::now())
            ),
            source: None,
        };
        match &mut *s {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                if Instant::now() >= *until {
                    *s = State::HalfOpen { in_flight: 1 };
                    Ok(())
                } else {
                    Err(open(*until))
                }
            }
            State::HalfOpen { in_flight } => {
                if *in_flight < self.half_open_calls {
                    *in_flight += 1;
                    Ok(())
                } else {
                    Err(open(Instant::now()))
                }
            }
        }
    }

    /// Records a call's outcome (`failure` = the provider misbehaved).
    fn record(&self, failure: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let open = State::Open {
            until: Instant::now() + self.cool_down,
        };
        match &mut *s {
            State::Closed {
                consecutive,
                window,
            } => {
                *consecutive = if failure { *consecutive + 1 } else { 0 };
                let tripped = match self.trip {
                    Trip::Consecutive(n) => *consecutive >= n,
                    Trip::Rate {
                        threshold,
                        min_calls,
                        window: size,
                    } => {
                        window.push_back(failure);
                        while window.len() > size {
                            window.pop_front();
                        }
                        let failures = window.iter().filter(|f| **f).count();
                        window.len() >= min_calls
                            && failures as f64 / window.len() as f64 >= threshold
                    }
                };
                if tripped {
                    tracing::warn!("circuit breaker opened");
                    *s = open;
                }
            }
            State::HalfOpen { .. } => {
                *s = if failure {
                    open
                } else {
                    State::Closed {
                        consecutive: 0,
                        window: VecDeque::new(),
                    }
                };
            }
            // A call admitted before the breaker opened finished late: nothing to change.
            State::Open { .. } => {}
        }
    }

    /// A cancelled call gives back its half-open trial slot (without it, the breaker would stay
    /// half-open with no slot left and fail every call).
    fn release(&self) {
        if let Ok(mut s) = self.state.lock()
            && let State::HalfOpen { in_flight } = &mut *s
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

/// Leave to make one call through a [`CircuitBreaker`].
pub(super) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    recorded: bool,
}

impl Permit<'_> {
    /// Records the call's outcome (`failure` = the provider misbehaved).
    pub(super) fn record(mut self, failure: bool) {
        self.recorded = true;
        self.breaker.record(failure);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.release();
        }
    }
}

/// A provider behind a circuit breaker.
#[derive(Clone)]
pub struct WithCircuitBreaker {
    inner: Arc<dyn LlmProvider>,
    breaker: CircuitBreaker,
}

impl WithCircuitBreaker {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LlmProvider>, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker (to observe its state).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

#[async_trait]
impl LlmProvider for WithCircuitBreaker {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        self.breaker
            .guard(self.inner.name(), || self.inner.complete(request))
            .await
    }

    /// The outcome of a stream is recorded when its first event (or error) arrives.
    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let permit = self.breaker.admit(self.inner.name())?;
        let mut s = match self.inner.stream(request).await {
            Ok(s) => s,
            Err(e) => {
                permit.record(is_provider_failure(&e));
                return Err(e);
            }
        };
        let first = s.next().await;
        permit.record(matches!(&first, Some(Err(e)) if is_provider_failure(e)));
        Ok(Box::pin(futures::stream::iter(first).chain(s)))
    }
}

/// Whether an error says something about the provider's health (and so counts for breakers and
/// fallbacks), as opposed to the caller's request.
pub(super) fn is_provider_failure(e: &Error) -> bool {
    e.is_retryable() || matches!(e, Error::MalformedResponse(_))
}
