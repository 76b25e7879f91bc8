//! What an external durability engine (a Temporal workflow, say) reads of an agent to drive its
//! turn itself: the persona, the model request, the limits. The turn loop here uses the same
//! values, so both drive the same agent.

use std::sync::Arc;

use tracing::Instrument;

use super::context::{ContextRequest, format_block};
use super::{Agent, AgentInner};
use crate::config::Limits;
use crate::error::Result;
use crate::message::Message;
use crate::model::{CompletionRequest, LlmProvider};
use crate::retrieval::{ScoredChunk, format_context_block};

/// What an agent puts between its system prompt and the conversation of a run
/// ([`Agent::context_prefix`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ContextPrefix {
    /// System messages: each context source's block, then the retrieved knowledge's block.
    pub messages: Vec<Message>,
    /// The chunks the retriever gave (the knowledge block's order), for citations.
    pub sources: Vec<ScoredChunk>,
    /// Whether the retriever was asked (one `knowledge_query` usage event is owed).
    pub retrieved: bool,
}

impl Agent {
    /// The system prompt.
    pub fn system_prompt(&self) -> &str {
        &self.inner.system_prompt
    }

    /// The agent's model provider (its backup, if any, is not included).
    pub fn provider(&self) -> &Arc<dyn LlmProvider> {
        &self.inner.model.provider
    }

    /// The limits (turns, tool calls per turn, timeouts).
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The model request the agent would send for the conversation `messages` (without a
    /// system message): its system prompt first, then the messages; its model name,
    /// temperature, token cap, tool specs and output schema. (The agent's context sources and
    /// retriever are not consulted here: put [`Agent::context_prefix`]'s messages first in
    /// `messages`.)
    pub fn completion_request(&self, messages: Vec<Message>) -> CompletionRequest {
        let a = &self.inner;
        let mut all = Vec::with_capacity(messages.len() + 1);
        if !a.system_prompt.is_empty() {
            all.push(Message::system(a.system_prompt.clone()));
        }
        all.extend(messages);
        let mut request = CompletionRequest::new(a.model.model.clone(), Arc::new(all))
            .with_tools(a.tool_specs.clone());
        request.temperature = a.model.temperature;
        request.max_tokens = a.model.max_tokens;
        request.output_schema = a.output.as_ref().map(|(s, _)| s.clone());
        request
    }

    /// The context a run starts with, after the system prompt: the host's context sources
    /// asked in order (a source with nothing to say adds nothing), then the retriever with
    /// the run's input. The agent's own turn loop uses this; an external engine calls it
    /// once per run and keeps the messages (and meters the knowledge query when
    /// [`ContextPrefix::retrieved`]).
    pub async fn context_prefix(&self, request: &ContextRequest) -> Result<ContextPrefix> {
        self.inner.context_prefix(request).await
    }
}

impl AgentInner {
    pub(crate) async fn context_prefix(&self, request: &ContextRequest) -> Result<ContextPrefix> {
        let a = self;
        let scope = &request.scope;
        let mut prefix = ContextPrefix::default();
        for source in &a.context {
            let span = tracing::info_span!("agent.context", tenant = %scope.tenant, agent = %a.id, source = source.name());
            if let Some(data) = source.assemble(request).instrument(span).await? {
                prefix
                    .messages
                    .push(Message::system(format_block(source.name(), &data)));
            }
        }
        if let Some((retriever, top_k)) = &a.retriever {
            let span =
                tracing::info_span!("agent.retrieve", tenant = %scope.tenant, agent = %a.id, top_k);
            let chunks = retriever
                .retrieve(&scope.tenant, &a.id, &request.input, *top_k)
                .instrument(span)
                .await?;
            if !chunks.is_empty() {
                prefix
                    .messages
                    .push(Message::system(format_context_block(&chunks)));
            }
            prefix.sources = chunks;
            prefix.retrieved = true;
        }
        Ok(prefix)
    }
}
