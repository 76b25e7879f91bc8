//! # agentkit
//!
//! Governed AI agents for Rust hosts: agents call tools under a deterministic policy gate, ask
//! humans for approval and resume days later, keep every tenant's data apart, and meter every
//! token and tool call.
//!
//! This facade re-exports the family of crates behind features: `agentkit-core` at its root,
//! `agentkit-providers` as [`providers`] (with [`resilience`] and `rules` at the root too), and
//! `agentkit-tools` as `tools`, `agentkit-policy` as `policy_engine`, and the stores as
//! `sqlite` and `postgres`; see the README's feature table.
//! Start with [`agent::Agent`] and the `quickstart` example:
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `testkit` | `testkit::ScriptedModel` and the store conformance suite |
//! | `tools` | `tools`: typed and derived tools, the tool registry with allow-lists, compensation and rollback, agents as tools |
//! | `tools-http` | `tools::http`: HTTP tools from configuration with outbound (SSRF) protection |
//! | `rules` | `rules::RuleBasedModel`, the deterministic offline model |
//! | `openai` | `providers::openai`: OpenAI and OpenAI-compatible chat and embeddings |
//! | `anthropic` | `providers::anthropic`: the Anthropic Messages API |
//! | `ollama` | `providers::ollama`: Ollama's native chat and embeddings |
//! | `rate-limit` | `resilience::WithRateLimit`: client-side requests and tokens per minute |
//! | `policy` | `policy_engine`: the RBAC policy engine, budgets, approval queue, metering, invoices, audit verification |
//! | `cedar` | `policy_engine::cedar`: the Cedar policy backend |
//! | `sqlite` | `sqlite`: the embedded SQLite store |
//! | `postgres` | `postgres`: the Postgres store |
//! | `workflow` | `workflow`: durable workflows, triggers and workers |
//! | `rag`, `qdrant`, `rag-local` | `rag`: knowledge bases, vector stores, retrieval with citations; Qdrant; a local embedding model |
//! | `voice` | `voice`: voice sessions (VAD, endpointing, barge-in, latency), audio, transports |
//! | `voice-openai`, `voice-deepgram`, `voice-elevenlabs`, `voice-espeak` | `voice::providers::*`: OpenAI audio, Deepgram, ElevenLabs, espeak-ng |
//! | `mcp` | `mcp`: MCP servers' tools under the policy gate; the host's tools served over MCP |
//!
//! `#[async_trait]` is re-exported at the root ([`async_trait`]) for hosts implementing
//! agentkit's traits, and `#[derive(Tool)]` / `#[tool]` find `agentkit::tools` on their own when
//! a host depends on the facade alone.

pub use agentkit_core::*;

/// LLM and embedding providers, chosen by feature and at run time by `ProviderConfig`
/// (`agentkit-providers`).
pub use agentkit_providers as providers;
// `resilience`, and `rules` when some crate in the build enables `agentkit-providers/rules`
// (the examples enable it through their dev-dependencies).
#[doc(inline)]
pub use agentkit_providers::__facade::*;

/// Typed and derived tools, the tool registry, compensation, agents as tools (feature `tools`).
#[cfg(feature = "tools")]
pub use agentkit_tools as tools;

/// The policy engine (RBAC, constraints, budgets, rate limits, tiers), the approval queue,
/// pricing and metering, invoice drafts and audit verification (feature `policy`;
/// `agentkit-policy`). The contracts it implements are in [`policy`].
#[cfg(feature = "policy")]
pub use agentkit_policy as policy_engine;

/// The embedded SQLite store (feature `sqlite`; `agentkit-store-sqlite`).
#[cfg(feature = "sqlite")]
pub use agentkit_store_sqlite as sqlite;

/// The Postgres store (feature `postgres`; `agentkit-store-postgres`).
#[cfg(feature = "postgres")]
pub use agentkit_store_postgres as postgres;

/// Durable workflows: graphs of agent, tool, approval, event and timer nodes that survive any
/// crash, with schedules and leased workers (`agentkit-workflow`).
#[cfg(feature = "workflow")]
pub use agentkit_workflow as workflow;

/// Knowledge: loaders, chunking, incremental ingestion with progress, vector stores (exact and
/// HNSW in memory; SQLite and Postgres in their stores), retrieval with citations, golden paths
/// (`agentkit-rag`).
#[cfg(feature = "rag")]
pub use agentkit_rag as rag;

/// Voice: speech-to-text → agent → text-to-speech sessions with VAD, endpointing, barge-in and
/// latency metrics; speech providers behind `voice-*` features; WAV, resampling, µ-law and
/// host transports (`agentkit-voice`).
#[cfg(feature = "voice")]
pub use agentkit_voice as voice;

/// The Model Context Protocol: MCP servers' tools as governed agentkit tools (namespaced,
/// schema-checked, under the policy gate, pinned to their definitions), and the host's tools
/// served over stdio or Streamable HTTP with per-caller tenancy (`agentkit-mcp`).
#[cfg(feature = "mcp")]
pub use agentkit_mcp as mcp;
