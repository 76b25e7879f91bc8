use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, CompletionStream, LlmProvider, ProviderCapabilities,
};
use async_trait::async_trait;
use futures::StreamExt;

/// Tries providers in order until one answers. The response's `provider` field names the one
/// that did. Caller errors (invalid input, cancellation) are returned at once: another provider
/// would refuse them too.
#[derive(Clone)]
pub struct FallbackChain {
    providers: Vec<Arc<dyn LlmProvider>>,
}

impl FallbackChain {
    /// A chain over `providers` (primary first).
    pub fn new(providers: impl IntoIterator<Item = Arc<dyn LlmProvider>>) -> Self {
        Self {
            providers: providers.into_iter().collect(),
        }
    }

    fn empty() -> Error {
        Error::InvalidConfig("fallback chain has no providers".into())
    }
}

#[async_trait]
impl LlmProvider for FallbackChain {
    fn name(&self) -> &str {
        self.providers.first().map_or("fallback", |p| p.name())
    }

    /// What the primary can do.
    fn capabilities(&self) -> ProviderCapabilities {
        self.providers
            .first()
            .map(|p| p.capabilities())
            .unwrap_or_default()
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let mut last = Self::empty();
        for (i, p) in self.providers.iter().enumerate() {
            match p.complete(request).await {
                Ok(mut r) => {
                    if r.provider.is_empty() {
                        r.provider = p.name().to_string();
                    }
                    return Ok(r);
                }
                Err(e) if gives_up(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(provider = p.name(), position = i, error = %e, "provider failed; falling back");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Falls back while nothing has been delivered (the stream failed to open or its first
    /// event is an error).
    async fn stream(&self, request: &CompletionRequest) -> Result<CompletionStream> {
        let mut last = Self::empty();
        for p in &self.providers {
            let error = match p.stream(request).await {
                Ok(mut s) => match s.next().await {
                    Some(Err(e)) => e,
                    first => return Ok(Box::pin(futures::stream::iter(first).chain(s))),
                },
                Err(e) => e,
            };
            if gives_up(&error) {
                return Err(error);
            }
            tracing::warn!(provider = p.name(), error = %error, "provider stream failed; falling back");
            last = error;
        }
        Err(last)
    }
}

/// Whether a chain stops at this error instead of trying the next member: a caller error
/// (invalid input, cancellation) that another provider would refuse too.
pub(super) fn gives_up(e: &Error) -> bool {
    matches!(e, Error::InvalidInput(_) | Error::Cancelled)
}
