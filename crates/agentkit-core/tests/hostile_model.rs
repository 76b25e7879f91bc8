//! A model server that sends hostile or broken streams: every case ends the run with a typed
//! error and a `failed` run record, never a panic, an unbounded allocation or a silent end.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::agent::AgentEvent;
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, ProviderCapabilities, StreamEvent,
};
use agentkit_core::prelude::*;
use agentkit_core::store::RunStatus;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use async_trait::async_trait;
use futures::StreamExt;

/// Runs one streamed request and returns the items and the run's stored status.
async fn streamed(provider: Arc<dyn LlmProvider>) -> (Vec<Result<AgentEvent>>, RunStatus) {
    let agent = Agent::builder()
        .id("a")
        .model(provider, "m")
        .build()
        .unwrap();
    let items: Vec<_> = agent
        .run_stream(RunRequest::new("acme", "s1", "hi"))
        .collect()
        .await;
    let run = items
        .iter()
        .find_map(|i| match i {
            Ok(AgentEvent::RunStarted { run }) => Some(run.clone()),
            _ => None,
        })
        .expect("the run started");
    let record = agent
        .store()
        .get_run(&TenantId::from_static("acme"), &run)
        .await
        .unwrap()
        .unwrap();
    (items, record.status)
}

fn call_delta(index: usize) -> StreamEvent {
    StreamEvent::ToolCallDelta {
        index,
        id: Some("c1".into()),
        name: Some("search".into()),
        arguments_delta: "{}".into(),
    }
}

fn scripted(events: Vec<StreamEvent>) -> Arc<dyn LlmProvider> {
    Arc::new(ScriptedModel::new([ScriptedResponse::events(events)]))
}

#[tokio::test]
async fn a_tool_call_index_at_usize_max_is_a_malformed_response() {
    let (items, status) = streamed(scripted(vec![call_delta(usize::MAX)])).await;
    assert!(
        matches!(items.last(), Some(Err(Error::MalformedResponse(m))) if m.contains("index")),
        "{:?}",
        items.last()
    );
    assert_eq!(status, RunStatus::Failed);
}

#[tokio::test]
async fn a_huge_sparse_tool_call_index_allocates_nothing() {
    let (items, status) = streamed(scripted(vec![call_delta(1 << 40)])).await;
    assert!(matches!(
        items.last(),
        Some(Err(Error::MalformedResponse(_)))
    ));
    assert_eq!(status, RunStatus::Failed);
}

#[tokio::test]
async fn streamed_text_and_arguments_are_bounded() {
    let chunk = "x".repeat(1 << 20);
    let text = (0..9)
        .map(|_| StreamEvent::TextDelta(chunk.clone()))
        .collect();
    let (items, status) = streamed(scripted(text)).await;
    assert!(
        matches!(items.last(), Some(Err(Error::LimitExceeded { limit, .. })) if *limit == "max_text_bytes")
    );
    assert_eq!(status, RunStatus::Failed);

    let args = (0..5)
        .map(|_| StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments_delta: chunk.clone(),
        })
        .collect();
    let (items, status) = streamed(scripted(args)).await;
    assert!(
        matches!(items.last(), Some(Err(Error::LimitExceeded { limit, .. })) if *limit == "max_argument_bytes")
    );
    assert_eq!(status, RunStatus::Failed);
}

/// A provider whose stream panics when polled (a bug in a third-party provider).
struct Panicking;

#[async_trait]
impl LlmProvider for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }
    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(true, false, false)
    }
    async fn complete(&self, _request: &CompletionRequest) -> Result<CompletionResponse> {
        panic!("provider bug")
    }
    async fn stream(&self, _request: &CompletionRequest) -> Result<CompletionStream> {
        Ok(Box::pin(futures::stream::poll_fn(
            |_| -> std::task::Poll<Option<Result<StreamEvent>>> {
                panic!("provider bug in the stream")
            },
        )))
    }
}

#[tokio::test]
async fn a_panicking_stream_ends_with_an_error_and_a_failed_run() {
    let (items, status) = streamed(Arc::new(Panicking)).await;
    assert!(
        matches!(items.last(), Some(Err(Error::Internal(m))) if m.contains("provider bug in the stream")),
        "the stream must end with the error, got {:?}",
        items.last()
    );
    assert_eq!(status, RunStatus::Failed);
}

#[tokio::test]
async fn a_panicking_model_call_fails_the_run_instead_of_unwinding_into_the_host() {
    let agent = Agent::builder()
        .id("a")
        .model(Arc::new(Panicking), "m")
        .build()
        .unwrap();
    let err = agent
        .run(RunRequest::new("acme", "s1", "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Internal(ref m) if m.contains("provider bug")),
        "{err}"
    );
}
