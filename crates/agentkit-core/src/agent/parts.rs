//! What an external durability engine (a Temporal workflow, say) reads of an agent to drive its
//! turn itself: the persona, the model request, the limits. The turn loop here uses the same
//! values, so both drive the same agent.

use std::sync::Arc;

use super::Agent;
use crate::config::Limits;
use crate::message::Message;
use crate::model::{CompletionRequest, LlmProvider};

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
    /// retriever are not consulted: its own turn loop adds those.)
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
}
