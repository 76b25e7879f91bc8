use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};

/// A deadline per call and per gap between stream events.
#[derive(Clone)]
pub struct WithTimeout {
    inner: Arc<dyn LlmProvider>,
    call: Duration,
    stream_idle: Duration,
}

impl WithTimeout {
    /// Wraps `inner`: `call` bounds a whole `complete` (and the start of a stream), `stream_idle`
    /// the wait for each next stream event.
    pub fn new(inner: Arc<dyn LlmProvider>, call: Duration, stream_idle: Duration) -> Self {
        Self {
            inner,
            call,
            stream_idle,
        }
    }
}

#[async_trait]
impl LlmProvider for WithTimeout {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        tokio::time::timeout(self.call, self.inner.complete(request))
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "{}: no response within {:?}",
                    self.inner.name(),
                    self.call
                ))
            })?
    }

    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let inner = tokio::time::timeout(self.call, self.inner.stream(request))
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "{}: stream did not start within {:?}",
                    self.inner.name(),
                    self.call
                ))
            })??;
        let idle = self.stream_idle;
        let name: Arc<str> = Arc::from(self.inner.name());
        Ok(Box::pin(futures::stream::unfold(
            Some(inner),
            move |state| {
                let name = name.clone();
                async move {
                    let mut s = state?;
                    // An event that is already there needs no timer (no clock read, no timer
                    // registration): the common case when chunks arrive together.
                    if let Some(ready) = s.next().now_or_never() {
                        return ready.map(|item| (item, Some(s)));
                    }
                    match tokio::time::timeout(idle, s.next()).await {
                        Ok(Some(item)) => Some((item, Some(s))),
                        Ok(None) => None,
                        // Report the stall once, then end the stream.
                        Err(_) => Some((
                            Err(Error::Timeout(format!(
                                "{name}: no stream event for {idle:?}"
                            ))),
                            None,
                        )),
                    }
                }
            },
        )))
    }
}
