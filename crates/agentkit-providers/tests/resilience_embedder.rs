//! Resilience layers around `Arc<dyn Embedder>`, tested like a host would: a scripted embedder,
//! paused time, and the real OpenAI embedder against a local server.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "openai")]
mod providers_common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::error::{Error, Result};
use agentkit_core::retrieval::Embedder;
use agentkit_providers::resilience::{
    CircuitBreaker, CircuitBreakerEmbedder, CircuitState, EmbedderExt, FallbackEmbedder,
    RetryPolicy,
};
use async_trait::async_trait;
use tokio::time::Instant;

/// What the scripted embedder does on one call.
enum Step {
    Fail(Error),
    /// Answers these vectors, whatever the texts.
    Answer(Vec<Vec<f32>>),
    /// Answers correctly after this long.
    Slow(Duration),
}

/// An embedder following a script, then answering correctly (each text as `dims` copies of its
/// length). Records when it was called.
#[derive(Clone)]
struct Scripted {
    dims: usize,
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Scripted {
    fn new(dims: usize, steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            dims,
            script: Arc::new(Mutex::new(steps.into_iter().collect())),
            calls: Arc::default(),
        }
    }

    /// Fails with `error()` `n` times, then answers.
    fn flaky(dims: usize, n: usize, error: impl Fn() -> Error) -> Self {
        Self::new(dims, (0..n).map(|_| Step::Fail(error())))
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    fn arc(&self) -> Arc<dyn Embedder> {
        Arc::new(self.clone())
    }

    fn good(&self, texts: &[String]) -> Vec<Vec<f32>> {
        texts
            .iter()
            .map(|t| vec![t.len() as f32; self.dims])
            .collect()
    }
}

#[async_trait]
impl Embedder for Scripted {
    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.calls.lock().unwrap().push(Instant::now());
        let step = self.script.lock().unwrap().pop_front();
        match step {
            None => Ok(self.good(texts)),
            Some(Step::Fail(e)) => Err(e),
            Some(Step::Answer(v)) => Ok(v),
            Some(Step::Slow(d)) => {
                tokio::time::sleep(d).await;
                Ok(self.good(texts))
            }
        }
    }
}

fn texts() -> Vec<String> {
    vec!["alpha".into(), "be".into()]
}

fn expected(dims: usize) -> Vec<Vec<f32>> {
    vec![vec![5.0; dims], vec![2.0; dims]]
}

fn unavailable() -> Error {
    Error::Unavailable {
        message: "connection refused".into(),
        source: None,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::attempts(4)
        .with_delays(Duration::from_millis(100), Duration::from_secs(1))
        .without_jitter()
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_honouring_retry_after() {
    let e = Scripted::new(
        3,
        [
            Step::Fail(unavailable()),
            Step::Fail(Error::RateLimited {
                message: "429".into(),
                retry_after: Some(Duration::from_secs(3)),
            }),
        ],
    );
    let retried = e.arc().with_retry(policy());
    assert_eq!(retried.dimensions(), 3);
    assert_eq!(retried.embed(&texts()).await.unwrap(), expected(3));
    let at = e.call_times();
    assert_eq!(at.len(), 3);
    // The policy's first delay (100 ms) after `Unavailable`; then the server's 3 s, not the
    // policy's 200 ms (Tokio timers round up to the next millisecond).
    let first = at[1] - at[0];
    let second = at[2] - at[1];
    assert!(
        first >= Duration::from_millis(100) && first < Duration::from_millis(102),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_secs(3) && second < Duration::from_millis(3002),
        "{second:?}"
    );

    // Bounded by the policy: the last error comes back as it was.
    let e = Scripted::flaky(3, 10, unavailable);
    let err = e
        .arc()
        .with_retry(policy())
        .embed(&texts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(e.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn caller_errors_are_not_retried() {
    let e = Scripted::flaky(3, 1, || Error::InvalidInput("text too long".into()));
    let err = e
        .arc()
        .with_retry(policy())
        .embed(&texts())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_embedder_times_out() {
    let e = Scripted::new(3, [Step::Slow(Duration::from_secs(5))]);
    let timed = e.arc().with_timeout(Duration::from_secs(1));
    assert_eq!(timed.dimensions(), 3);
    let start = Instant::now();
    let err = timed.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // In time, the answer passes through.
    assert_eq!(timed.embed(&texts()).await.unwrap(), expected(3));

    // A timeout is retryable: with retries outside, the next attempt answers.
    let e = Scripted::new(3, [Step::Slow(Duration::from_secs(5))]);
    let stack = e
        .arc()
        .with_timeout(Duration::from_secs(1))
        .with_retry(policy());
    assert_eq!(stack.embed(&texts()).await.unwrap(), expected(3));
    assert_eq!(e.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_and_half_opens_after_its_cool_down() {
    let e = Scripted::flaky(3, 3, unavailable);
    let breaker = CircuitBreaker::consecutive_failures(3, Duration::from_secs(30));
    let guarded = e.arc().with_circuit_breaker(breaker.clone());
    assert_eq!(guarded.dimensions(), 3);
    for _ in 0..3 {
        assert_eq!(
            guarded.embed(&texts()).await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    // Open: fails fast without calling the embedder, also through another wrapper sharing it.
    let shared = CircuitBreakerEmbedder::new(e.arc(), breaker.clone());
    let err = shared.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    assert_eq!(e.calls(), 3);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(guarded.embed(&texts()).await.is_err());
    assert_eq!(e.calls(), 3, "still open before the cool-down ends");

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The trial call goes through and closes the breaker.
    assert_eq!(guarded.embed(&texts()).await.unwrap(), expected(3));
    assert_eq!(e.calls(), 4);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_failure_reopens_and_caller_errors_do_not_trip() {
    let e = Scripted::new(
        3,
        [
            Step::Fail(unavailable()),
            Step::Fail(unavailable()),
            Step::Fail(Error::InvalidInput("empty text".into())),
            Step::Fail(Error::InvalidInput("empty text".into())),
        ],
    );
    let breaker = CircuitBreaker::consecutive_failures(1, Duration::from_secs(10));
    let guarded = e.arc().with_circuit_breaker(breaker.clone());
    guarded.embed(&texts()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    guarded.embed(&texts()).await.unwrap_err(); // the trial call fails
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..2 {
        let err = guarded.embed(&texts()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_call_gives_its_half_open_slot_back() {
    // The timeout outside the breaker cancels the trial call: the breaker must not stay
    // half-open with no trial slot left.
    let e = Scripted::new(
        3,
        [
            Step::Fail(unavailable()),
            Step::Slow(Duration::from_secs(60)),
        ],
    );
    let breaker = CircuitBreaker::consecutive_failures(1, Duration::from_secs(10));
    let stack = e
        .arc()
        .with_circuit_breaker(breaker.clone())
        .with_timeout(Duration::from_secs(1));
    stack.embed(&texts()).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(10)).await;
    let err = stack.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert_eq!(stack.embed(&texts()).await.unwrap(), expected(3));
    assert_eq!(e.calls(), 3);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test]
async fn fallback_is_used_when_the_primary_fails() {
    let primary = Scripted::flaky(3, 1, unavailable);
    let backup = Scripted::new(3, []);
    let chain = primary.arc().with_fallback([backup.arc()]).unwrap();
    assert_eq!(chain.dimensions(), 3);
    assert_eq!(chain.embed(&texts()).await.unwrap(), expected(3));
    assert_eq!((primary.calls(), backup.calls()), (1, 1));
    // The primary answers again: the backup is not asked.
    chain.embed(&texts()).await.unwrap();
    assert_eq!((primary.calls(), backup.calls()), (2, 1));

    // A wrong-shaped answer from the primary sends the chain on too.
    let primary = Scripted::new(3, [Step::Answer(vec![vec![1.0; 3]])]);
    let backup = Scripted::new(3, []);
    let chain = primary.arc().with_fallback([backup.arc()]).unwrap();
    assert_eq!(chain.embed(&texts()).await.unwrap(), expected(3));
    assert_eq!(backup.calls(), 1);

    // Caller errors stop the chain.
    let primary = Scripted::flaky(3, 1, || Error::InvalidInput("bad".into()));
    let backup = Scripted::new(3, []);
    let chain = primary.arc().with_fallback([backup.arc()]).unwrap();
    let err = chain.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(backup.calls(), 0);

    // Every member failing: the last error.
    let primary = Scripted::flaky(3, 1, unavailable);
    let backup = Scripted::flaky(3, 1, || Error::Timeout("slow".into()));
    let chain = primary.arc().with_fallback([backup.arc()]).unwrap();
    let err = chain.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[test]
fn fallback_is_refused_for_mismatched_dimensions() {
    let primary = Scripted::new(3, []);
    let other = Scripted::new(4, []);
    let err = primary
        .arc()
        .with_fallback([Scripted::new(3, []).arc(), other.arc()])
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("4 dimensions"), "{err}");

    let err = FallbackEmbedder::new([]).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(FallbackEmbedder::new([primary.arc()]).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_wrong_shaped_answer_is_malformed_in_every_layer() {
    let wrong_count = || Step::Answer(vec![vec![1.0; 3]]);
    let wrong_length = || Step::Answer(vec![vec![1.0; 3], vec![1.0; 2]]);
    type Wrap = fn(Arc<dyn Embedder>) -> Arc<dyn Embedder>;
    let layers: [(&str, Wrap); 4] = [
        ("timeout", |e| e.with_timeout(Duration::from_secs(1))),
        ("retry", |e| e.with_retry(policy())),
        ("breaker", |e| {
            e.with_circuit_breaker(CircuitBreaker::consecutive_failures(
                5,
                Duration::from_secs(1),
            ))
        }),
        ("fallback", |e| e.with_fallback([]).unwrap()),
    ];
    for (name, wrap) in layers {
        for step in [wrong_count(), wrong_length()] {
            let e = Scripted::new(3, [step]);
            let err = wrap(e.arc()).embed(&texts()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{name}: {err}");
            // Like a malformed completion, it is not retried.
            assert_eq!(e.calls(), 1, "{name}");
        }
    }

    // The breaker counts it as a failure.
    let e = Scripted::new(3, [wrong_count()]);
    let breaker = CircuitBreaker::consecutive_failures(1, Duration::from_secs(10));
    e.arc()
        .with_circuit_breaker(breaker.clone())
        .embed(&texts())
        .await
        .unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_typical_stack_rides_out_a_flaky_embedder() {
    let e = Scripted::new(
        8,
        [
            Step::Fail(unavailable()),
            Step::Slow(Duration::from_secs(60)),
            Step::Fail(Error::Overloaded {
                message: "busy".into(),
                retry_after: None,
            }),
        ],
    );
    let backup = Scripted::new(8, []);
    let stack = e
        .arc()
        .with_timeout(Duration::from_secs(5))
        .with_circuit_breaker(CircuitBreaker::consecutive_failures(
            10,
            Duration::from_secs(30),
        ))
        .with_retry(policy())
        .with_fallback([backup.arc()])
        .unwrap();
    assert_eq!(stack.dimensions(), 8);
    assert_eq!(stack.embed(&texts()).await.unwrap(), expected(8));
    assert_eq!((e.calls(), backup.calls()), (4, 0));
}

#[cfg(feature = "rate-limit")]
#[tokio::test]
async fn rate_limited_embedder_charges_one_request_and_the_texts_tokens() {
    use agentkit_providers::resilience::RateLimit;

    let limit = RateLimit::new()
        .requests_per_minute(1)
        .with_max_wait(Duration::from_millis(50));
    assert_eq!(
        limit.estimate_embedding_tokens(&["abcdefgh".into(), "abc".into()]),
        3,
        "8 bytes = 2 tokens, 3 bytes = 1"
    );
    let e = Scripted::new(3, []);
    let limited = e.arc().with_rate_limit(limit);
    assert_eq!(limited.dimensions(), 3);
    assert_eq!(limited.embed(&texts()).await.unwrap(), expected(3));
    let err = limited.embed(&texts()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().unwrap() > Duration::from_secs(50));
    assert_eq!(e.calls(), 1, "the refused call never reached the embedder");

    // 600 tokens a minute = 10 a second: 4000 bytes (1000 tokens, capped at the 600 budget) take
    // the whole budget, so the next 40-byte call (10 tokens) waits about a second.
    let limit = RateLimit::new()
        .tokens_per_minute(600)
        .with_max_wait(Duration::from_millis(200));
    let limited = Scripted::new(3, []).arc().with_rate_limit(limit);
    limited.embed(&["x".repeat(4000)]).await.unwrap();
    let err = limited.embed(&["y".repeat(40)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
}

#[cfg(feature = "openai")]
mod openai {
    use super::*;
    use crate::providers_common::bodies;
    use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, build_embedder};
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// The real OpenAI embedder gets a 429 with `retry-after: 1`, then the vectors: the retry
    /// layer waits the second and succeeds.
    #[tokio::test]
    async fn the_openai_embedder_is_retried_after_a_429() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(
                ResponseTemplate::new(429)
                    .set_body_json(json!({"error": {
                        "message": "Rate limit reached for requests", "type": "requests",
                        "param": null, "code": "rate_limit_exceeded"
                    }}))
                    .insert_header("retry-after", "1"),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/embeddings"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "model": "text-embedding-3-small",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, 0.0]},
                    {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]}
                ],
                "usage": {"prompt_tokens": 2, "total_tokens": 2}
            })))
            .mount(&server)
            .await;
        let config = ProviderConfig::new(ProviderKind::OpenAi, "text-embedding-3-small")
            .with_base_url(format!("{}/v1", server.uri()))
            .with_api_key(KeyRef::value("sk-test-openai-0123456789"))
            .with_dimensions(3);
        let policy = RetryPolicy::attempts(3)
            .with_delays(Duration::from_millis(10), Duration::from_millis(10))
            .without_jitter();
        let embedder = build_embedder(&config).unwrap().with_retry(policy);
        assert_eq!(embedder.dimensions(), 3);

        let started = std::time::Instant::now();
        let vectors = embedder.embed(&texts()).await.unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
            "the server's retry-after, not the policy's 10 ms: {waited:?}"
        );
        // The same batch, sent twice.
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1]);
        assert_eq!(sent[0]["input"], json!(["alpha", "be"]));
    }
}
