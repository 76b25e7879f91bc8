//! # agentkit-core
//!
//! The contracts of agentkit and the agent runtime.
//!
//! - [`model::LlmProvider`]: any LLM; [`tool::Tool`]: any capability; [`policy::PolicyEvaluator`]:
//!   the deterministic gate; [`store::StateStore`]: durable, tenant-scoped state;
//!   [`retrieval::Retriever`]: knowledge.
//! - [`exec::ToolExecutor`]: the one governed execution path every tool call takes (allow-list,
//!   validation, policy, atomic idempotency claim, call, records, metered usage, audit).
//! - [`agent::Agent`]: the turn loop that ties them together: model calls, the executor, durable
//!   approvals, usage and audit records. [`scope::Scope`] carries tenant, agent, session and run.
//!
//! Core is the contract crate: it has no HTTP client. LLM and embedding providers (OpenAI,
//! Anthropic, Ollama), the resilience layers (timeouts, retries, circuit breakers, fallback
//! chains, rate limits) and the rule-based model live in `agentkit-providers`; tools in
//! `agentkit-tools`; the policy engine in `agentkit-policy`; durable stores in
//! `agentkit-store-sqlite` and `agentkit-store-postgres`.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `testkit` | [`testkit::ScriptedModel`] and the conformance suite every store backend runs |
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # async fn demo() -> agentkit_core::Result<()> {
//! use std::sync::Arc;
//! use agentkit_core::prelude::*;
//! use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
//!
//! let model = Arc::new(ScriptedModel::new([ScriptedResponse::text("Hello!")]));
//! let agent = Agent::builder()
//!     .id("greeter")
//!     .system_prompt("You greet people.")
//!     .model(model, "scripted-1")
//!     .build()?;
//! let outcome = agent.run(RunRequest::new("acme", "session-1", "hi")).await?;
//! assert_eq!(outcome.reply(), Some("Hello!"));
//! # Ok(()) }
//! # #[cfg(feature = "testkit")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod agent;
pub mod config;
pub mod error;
pub mod exec;
pub mod id;
mod json;
pub mod message;
pub mod model;
pub mod policy;
pub mod redact;
pub mod retrieval;
pub mod scope;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tool;
pub mod validation;

pub use error::{Error, ErrorKind, Result};
pub use json::SharedJson;

/// `#[async_trait]`: agentkit's traits are `async_trait` traits; hosts implementing one (a
/// custom `LlmProvider`, `Tool`, store) can use this re-export instead of a dependency.
pub use async_trait::async_trait;

/// The names most hosts need.
pub mod prelude {
    pub use crate::agent::{
        Agent, AgentBuilder, AgentConfig, AgentEvent, MemoryPolicy, RunOutcome, RunRequest,
    };
    pub use crate::error::{Error, ErrorKind, Result};
    pub use crate::id::{AgentId, ApprovalId, RunId, SessionId, TenantId};
    pub use crate::message::{Message, ToolCall, Usage};
    pub use crate::model::{CompletionRequest, CompletionResponse, LlmProvider};
    pub use crate::policy::{AllowListPolicy, Decision, PolicyEvaluator};
    pub use crate::scope::Scope;
    pub use crate::store::{ApprovalDecision, InMemoryStore, StateStore};
    pub use crate::tool::{FnTool, SideEffect, Tool, ToolContext, ToolSpec};
}
