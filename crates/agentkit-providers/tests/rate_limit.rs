//! Client-side rate limits (`WithRateLimit`). Real time: governor keeps its own clock.
#![cfg(feature = "rate-limit")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkit_core::ErrorKind;
use agentkit_core::message::Message;
use agentkit_core::model::{CompletionRequest, LlmProvider};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_providers::resilience::{ProviderExt, RateLimit};

fn model() -> Arc<dyn LlmProvider> {
    Arc::new(ScriptedModel::repeating([ScriptedResponse::text("ok")]))
}

fn request(max_tokens: u32) -> CompletionRequest {
    CompletionRequest::new("m", vec![Message::user("hello")]).with_max_tokens(max_tokens)
}

#[tokio::test]
async fn requests_per_minute_are_shared_by_clones_and_fail_past_max_wait() {
    let limit = RateLimit::new()
        .requests_per_minute(2)
        .with_max_wait(Duration::from_millis(50));
    let a = model().with_rate_limit(limit.clone());
    let b = model().with_rate_limit(limit);
    a.complete(&request(1)).await.unwrap();
    let mut s = b.stream(&request(1)).await.unwrap();
    while futures::StreamExt::next(&mut s).await.is_some() {}
    let e = a.complete(&request(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert_eq!(
        b.stream(&request(1)).await.err().unwrap().kind(),
        ErrorKind::RateLimited
    );
}

#[tokio::test]
async fn tokens_are_charged_before_the_call_and_waited_for() {
    // 6000 a minute = 100 a second; the first call takes the whole budget.
    let limit = RateLimit::new().tokens_per_minute(6000);
    let est = limit.estimate_tokens(&request(50));
    assert!(
        est > 50 && est < 70,
        "prompt estimate plus max_tokens: {est}"
    );
    let m = model().with_rate_limit(limit.clone());
    let started = Instant::now();
    m.complete(&request(100_000)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a full budget does not wait"
    );
    let started = Instant::now();
    m.complete(&request(50)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "about {est} tokens at 100/s: {waited:?}"
    );

    let strict = model().with_rate_limit(limit.with_max_wait(Duration::from_millis(10)));
    strict.complete(&request(100_000)).await.unwrap_err();
}
