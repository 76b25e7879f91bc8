//! [`ExtractiveModel`]: a deterministic offline model that answers from the retrieved context.

use async_trait::async_trait;

use agentkit_core::Result;
use agentkit_core::message::{Message, Usage};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities,
};

/// Answers with the first sentence of the first excerpt of the `<retrieved_context>` block and
/// cites it as `[1]`; says it found nothing when there is no block. Token usage is the words
/// of the prompt and of the reply. For tests and offline examples of retrieval with citations.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveModel;

/// The reply when no knowledge was retrieved.
pub const NOTHING_FOUND: &str = "I could not find that in the knowledge base.";

fn first_excerpt(block: &str) -> Option<(String, String)> {
    let start = block.find("\n[1] source: ")? + 1;
    let rest = &block[start..];
    let (header, body) = rest.split_once('\n')?;
    let source = header
        .trim_start_matches("[1] source: ")
        .split(" (chunk ")
        .next()
        .unwrap_or_default()
        .to_string();
    let body = body
        .split("\n[2] source: ")
        .next()
        .unwrap_or_default()
        .split("</retrieved_context>")
        .next()
        .unwrap_or_default();
    let text: String = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let sentence = match text.find(". ") {
        Some(end) => text[..=end].to_string(),
        None => text,
    };
    Some((source, sentence))
}

#[async_trait]
impl LlmProvider for ExtractiveModel {
    fn name(&self) -> &str {
        "extractive"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(false, false, false)
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<CompletionResponse> {
        let context = request.messages.iter().find_map(|m| match m {
            Message::System { .. } if m.text().starts_with("<retrieved_context") => {
                first_excerpt(m.text())
            }
            _ => None,
        });
        let reply = match context {
            Some((source, sentence)) => format!("According to {source}: {sentence} [1]"),
            None => NOTHING_FOUND.to_string(),
        };
        let words = |s: &str| s.split_whitespace().count() as u64;
        let usage = Usage {
            input_tokens: request.messages.iter().map(|m| words(m.text())).sum(),
            output_tokens: words(&reply),
            ..Usage::default()
        };
        let mut response = CompletionResponse::new(reply, Vec::new(), usage);
        response.model = request.model.clone();
        Ok(response)
    }
}
