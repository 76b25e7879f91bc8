//! What the HTTP providers share, public so other vendor crates (embeddings, speech) can build
//! on it instead of copying it. Compiled with any of the features `openai`, `anthropic` and
//! `ollama`.
//!
//! - [`Http`]: a `reqwest` client for one [`ProviderConfig`](crate::ProviderConfig): the API key ([`Auth`]) and custom
//!   headers are sent as sensitive headers, timeouts come from the config, and
//!   [`Http::post`] turns a non-2xx answer into its typed [`Error`](agentkit_core::Error).
//! - [`ErrorContext`]: the mapping of transport failures, HTTP statuses and API error bodies
//!   ([`ApiError`]) onto [`Error`](agentkit_core::Error), with the API key scrubbed from every message.
//! - [`retry_after`]: the wait a `retry-after` / `retry-after-ms` header asks for.
//! - [`ToolNames`] and [`wire_name`]: namespaced tool names (`crm.lookup_lead`) as the APIs
//!   accept them, and back.
//! - [`drive`] with a [`Decoder`]: a provider's stream items to a [`CompletionStream`](agentkit_core::model::CompletionStream) that ends
//!   with at most one error.
//! - Small mappings every chat API needs: [`model_name`], [`finish_reason`],
//!   [`parse_arguments`], [`arguments_text`]; and [`check_dimensions`] for embedders.

mod client;
mod errors;
mod stream;
mod wire;

pub use client::{Auth, Http};
pub use errors::{ApiError, ErrorContext, retry_after};
pub use stream::{Decoder, Flow, drive};
pub use wire::{
    ToolNames, arguments_text, check_dimensions, finish_reason, model_name, parse_arguments,
    wire_name,
};
