//! Resilience layers around `Arc<dyn LlmProvider>`, tested with the scripted model and paused time.
#![cfg(feature = "rules")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::model::{
    CompletionRequest, CompletionStream, ProviderCapabilities, StreamEvent,
};
use agentkit_core::prelude::*;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_providers::resilience::{
    CircuitBreaker, CircuitState, FallbackChain, ProviderExt, RetryPolicy, WithCircuitBreaker,
};
use agentkit_providers::rules::{Rule, RuleBasedModel};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::time::Instant;

fn req() -> CompletionRequest {
    CompletionRequest::new("m", vec![Message::user("hi")])
}

fn overloaded() -> Error {
    Error::Overloaded {
        message: "busy".into(),
        retry_after: None,
    }
}

fn dynp(m: &ScriptedModel) -> Arc<dyn LlmProvider> {
    Arc::new(m.clone())
}

#[tokio::test(start_paused = true)]
async fn call_timeout() {
    let m = ScriptedModel::new([ScriptedResponse::text("late").with_delay(Duration::from_secs(5))]);
    let p = dynp(&m).with_timeout(Duration::from_secs(1), Duration::from_secs(1));
    let start = Instant::now();
    let err = p.complete(&req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

/// Streams one text delta, then stalls forever.
struct Stalling;

#[async_trait]
impl LlmProvider for Stalling {
    fn name(&self) -> &str {
        "stalling"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, false, false)
    }
    async fn complete(
        &self,
        _r: &CompletionRequest,
    ) -> Result<agentkit_core::model::CompletionResponse> {
        futures::future::pending().await
    }
    async fn stream(&self, _r: &CompletionRequest) -> Result<CompletionStream> {
        Ok(Box::pin(
            futures::stream::once(async { Ok(StreamEvent::TextDelta("hel".into())) })
                .chain(futures::stream::pending()),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn stream_idle_timeout_ends_the_stream_with_an_error() {
    let p = (Arc::new(Stalling) as Arc<dyn LlmProvider>)
        .with_timeout(Duration::from_secs(60), Duration::from_secs(2));
    let items: Vec<_> = p.stream(&req()).await.unwrap().collect().await;
    assert_eq!(items.len(), 2);
    assert!(matches!(items[0], Ok(StreamEvent::TextDelta(_))));
    assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn retries_retryable_errors_with_backoff_then_succeeds() {
    let m = ScriptedModel::new([
        ScriptedResponse::error(overloaded),
        ScriptedResponse::error(|| Error::Server {
            status: Some(502),
            message: "bad gateway".into(),
        }),
        ScriptedResponse::text("ok"),
    ]);
    let policy = RetryPolicy::attempts(4)
        .with_delays(Duration::from_millis(100), Duration::from_secs(1))
        .without_jitter();
    let p = dynp(&m).with_retry(policy);
    let start = Instant::now();
    assert_eq!(p.complete(&req()).await.unwrap().content, "ok");
    assert_eq!(m.calls(), 3);
    // 100 ms then 200 ms of backoff (Tokio timers round up to the next millisecond).
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(310),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn honours_retry_after_and_never_retries_caller_errors() {
    let m = ScriptedModel::new([
        ScriptedResponse::error(|| Error::RateLimited {
            message: "429".into(),
            retry_after: Some(Duration::from_secs(7)),
        }),
        ScriptedResponse::text("ok"),
    ]);
    let policy =
        RetryPolicy::attempts(3).with_delays(Duration::from_millis(10), Duration::from_millis(50));
    let start = Instant::now();
    dynp(&m).with_retry(policy).complete(&req()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );

    let m = ScriptedModel::new([
        ScriptedResponse::error(|| Error::InvalidInput("bad".into())),
        ScriptedResponse::text("no"),
    ]);
    let err = dynp(&m)
        .with_retry(policy)
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(m.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_by_attempts_and_total_time() {
    let m = ScriptedModel::repeating([ScriptedResponse::error(overloaded)]);
    let policy = RetryPolicy::attempts(3)
        .with_delays(Duration::from_millis(10), Duration::from_millis(10))
        .without_jitter();
    assert!(dynp(&m).with_retry(policy).complete(&req()).await.is_err());
    assert_eq!(m.calls(), 3);

    let m = ScriptedModel::repeating([ScriptedResponse::error(overloaded)]);
    let policy = RetryPolicy::attempts(100)
        .with_delays(Duration::from_secs(1), Duration::from_secs(1))
        .with_max_elapsed(Duration::from_millis(3500))
        .without_jitter();
    assert!(dynp(&m).with_retry(policy).complete(&req()).await.is_err());
    assert_eq!(
        m.calls(),
        4,
        "attempts at 0s, 1s, 2s, 3s; a 4s attempt would pass the bound"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_delivered_content_is_not_retried() {
    let m = ScriptedModel::new([
        ScriptedResponse::events_then_error([StreamEvent::TextDelta("partial".into())], overloaded),
        ScriptedResponse::text("second"),
    ]);
    let p = dynp(&m).with_retry(RetryPolicy::attempts(3).without_jitter());
    let items: Vec<_> = p.stream(&req()).await.unwrap().collect().await;
    assert!(matches!(items[0], Ok(StreamEvent::TextDelta(ref t)) if t == "partial"));
    assert!(items.last().unwrap().is_err());
    assert_eq!(m.calls(), 1);

    // A stream failing before its first event is retried.
    let m = ScriptedModel::new([
        ScriptedResponse::error(overloaded),
        ScriptedResponse::text("fresh"),
    ]);
    let p = dynp(&m).with_retry(RetryPolicy::attempts(3).without_jitter());
    let items: Vec<_> = p.stream(&req()).await.unwrap().collect().await;
    assert!(matches!(items[0], Ok(StreamEvent::TextDelta(_))));
    assert_eq!(m.calls(), 2);
}

fn malformed() -> Error {
    Error::MalformedResponse("openai: stream chunk is not valid JSON".into())
}

#[tokio::test(start_paused = true)]
async fn a_malformed_first_stream_item_is_retried_while_nothing_was_delivered() {
    let policy = RetryPolicy::attempts(3)
        .with_delays(Duration::from_millis(10), Duration::from_millis(10))
        .without_jitter();
    // One bad line before any content: nothing was delivered, so another attempt is safe.
    let m = ScriptedModel::new([
        ScriptedResponse::events_then_error([], malformed),
        ScriptedResponse::text("fresh"),
    ]);
    let items: Vec<_> = dynp(&m)
        .with_retry(policy)
        .stream(&req())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    let text: String = items
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "fresh");
    assert_eq!(m.calls(), 2);

    // Still bounded by the policy's attempts: the last error is returned as it was.
    let m = ScriptedModel::repeating([ScriptedResponse::events_then_error([], malformed)]);
    let e = dynp(&m)
        .with_retry(policy)
        .stream(&req())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert_eq!(m.calls(), 3);

    // After content, a malformed event passes through (no second answer is spliced in).
    let m = ScriptedModel::new([
        ScriptedResponse::events_then_error([StreamEvent::TextDelta("par".into())], malformed),
        ScriptedResponse::text("second"),
    ]);
    let items: Vec<_> = dynp(&m)
        .with_retry(policy)
        .stream(&req())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1].as_ref().unwrap_err().kind(),
        ErrorKind::MalformedResponse
    );
    assert_eq!(m.calls(), 1);

    // `complete` is unchanged: a malformed whole response is final.
    let m = ScriptedModel::new([
        ScriptedResponse::error(malformed),
        ScriptedResponse::text("no"),
    ]);
    let e = dynp(&m)
        .with_retry(policy)
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert_eq!(m.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_opens_fails_fast_and_recovers_through_half_open() {
    let m = ScriptedModel::new([
        ScriptedResponse::error(overloaded),
        ScriptedResponse::error(overloaded),
        ScriptedResponse::error(overloaded),
        ScriptedResponse::text("probe ok"),
        ScriptedResponse::text("normal"),
    ]);
    let breaker = CircuitBreaker::consecutive_failures(3, Duration::from_secs(30));
    let p = WithCircuitBreaker::new(dynp(&m), breaker.clone());
    let shared = WithCircuitBreaker::new(dynp(&m), breaker.clone());
    for _ in 0..3 {
        assert!(p.complete(&req()).await.is_err());
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    // Open: fails fast, the model is not called — also through a clone sharing the breaker.
    let err = shared.complete(&req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(m.calls(), 3);
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    assert_eq!(p.complete(&req()).await.unwrap().content, "probe ok");
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(p.complete(&req()).await.unwrap().content, "normal");
}

#[tokio::test(start_paused = true)]
async fn half_open_failure_reopens_and_caller_errors_do_not_trip() {
    let m = ScriptedModel::new([
        ScriptedResponse::error(overloaded),
        ScriptedResponse::error(overloaded),
        ScriptedResponse::error(|| Error::InvalidInput("bad request".into())),
        ScriptedResponse::error(|| Error::InvalidInput("bad request".into())),
        ScriptedResponse::error(|| Error::InvalidInput("bad request".into())),
    ]);
    let breaker = CircuitBreaker::consecutive_failures(1, Duration::from_secs(10));
    let p = WithCircuitBreaker::new(dynp(&m), breaker.clone());
    p.complete(&req()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    p.complete(&req()).await.unwrap_err(); // the half-open probe fails
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        assert_eq!(
            p.complete(&req()).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "caller errors are not provider failures"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_half_open_trial_gives_its_slot_back() {
    let m = ScriptedModel::new([
        ScriptedResponse::error(overloaded),
        ScriptedResponse::text("late").with_delay(Duration::from_secs(60)),
        ScriptedResponse::text("ok"),
    ]);
    let breaker = CircuitBreaker::consecutive_failures(1, Duration::from_secs(10));
    // The timeout outside the breaker cancels the trial call.
    let p = dynp(&m)
        .with_circuit_breaker(breaker.clone())
        .with_timeout(Duration::from_secs(1), Duration::from_secs(1));
    p.complete(&req()).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(10)).await;
    let err = p.complete(&req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(p.complete(&req()).await.unwrap().content, "ok");
    assert_eq!(m.calls(), 3);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_breaker() {
    let m = ScriptedModel::new([true, false, true, false, false, true].map(|fail| {
        if fail {
            ScriptedResponse::error(overloaded)
        } else {
            ScriptedResponse::text("ok")
        }
    }));
    let breaker = CircuitBreaker::failure_rate(0.5, 5, 10, Duration::from_secs(5));
    let p = WithCircuitBreaker::new(dynp(&m), breaker.clone());
    for _ in 0..5 {
        let _ = p.complete(&req()).await;
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "2 of 5 failed: below the 0.5 rate"
    );
    let _ = p.complete(&req()).await;
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "3 of 6 failed: the rate is reached"
    );
}

#[tokio::test]
async fn fallback_chain_records_who_answered_and_ends_with_rules() {
    let primary = ScriptedModel::new([ScriptedResponse::error(overloaded)]).with_name("primary");
    let backup = ScriptedModel::new([ScriptedResponse::error(|| Error::Timeout("slow".into()))])
        .with_name("backup");
    let rules = RuleBasedModel::new("The assistant is offline; a human will follow up.")
        .rule(Rule::keywords(["hi"]).reply("Hello from the rules."));
    let chain = FallbackChain::new([
        dynp(&primary),
        dynp(&backup),
        Arc::new(rules) as Arc<dyn LlmProvider>,
    ]);
    let r = chain.complete(&req()).await.unwrap();
    assert_eq!(r.content, "Hello from the rules.");
    assert_eq!(r.provider, "rules");
    assert_eq!((primary.calls(), backup.calls()), (1, 1));

    // Caller errors stop the chain.
    let primary = ScriptedModel::new([ScriptedResponse::error(|| {
        Error::InvalidInput("bad".into())
    })]);
    let backup = ScriptedModel::new([ScriptedResponse::text("never")]);
    let err = dynp(&primary)
        .with_fallback([dynp(&backup)])
        .complete(&req())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(backup.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_agent_keeps_answering_through_the_full_stack() {
    let flaky = ScriptedModel::repeating([ScriptedResponse::error(overloaded)]).with_name("llm");
    let breaker = CircuitBreaker::consecutive_failures(2, Duration::from_secs(60));
    let rules = RuleBasedModel::new("Sorry, I can only take messages right now.");
    let provider = dynp(&flaky)
        .with_timeout(Duration::from_secs(30), Duration::from_secs(10))
        .with_circuit_breaker(breaker.clone())
        .with_retry(
            RetryPolicy::attempts(2)
                .with_delays(Duration::from_millis(10), Duration::from_millis(10)),
        )
        .with_fallback([Arc::new(rules) as Arc<dyn LlmProvider>]);
    let agent = Agent::builder()
        .id("a")
        .model(provider, "m")
        .build()
        .unwrap();
    for i in 0..3 {
        let out = agent
            .run(RunRequest::new("acme", format!("s{i}"), "hello"))
            .await
            .unwrap();
        assert_eq!(
            out.reply(),
            Some("Sorry, I can only take messages right now.")
        );
        assert!(out.report().unwrap().answered_by.starts_with("rules/"));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        flaky.calls(),
        2,
        "the open breaker spared the failing provider"
    );
}
