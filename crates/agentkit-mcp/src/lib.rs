//! # agentkit-mcp
//!
//! The Model Context Protocol for agentkit, on the official Rust SDK (`rmcp` 3.x, one major
//! pinned and wrapped here):
//!
//! - **Client** ([`McpClient`]): connect to an MCP server over stdio (a child process, shut
//!   down cleanly and reaped) or Streamable HTTP (the outbound SSRF policy of the HTTP tools
//!   applies to its URL); negotiate the 2026-07-28 protocol and fall back to 2025-11-25; list
//!   its tools and use them as agentkit tools under a namespace (`crm.search_contacts`), with
//!   their schemas compiled for validation like any tool. Every call goes through the one
//!   governed executor: per-agent allow-lists, the policy (RBAC, budgets, approvals that
//!   suspend durably and resume exactly once), metering and audit. The server's tool
//!   annotations reach the policy as untrusted [hints](agentkit_core::tool::ToolHints), never as
//!   permission; a tool whose definition changes on the server is refused until registered
//!   again. OAuth 2.1 runs when an HTTP server asks for it ([`McpOAuthConfig`], the host's
//!   [`Authorizer`] for the user's consent), scope step-up included.
//! - **Server** ([`server::McpToolServer`]): serve a host's governed tools over stdio or as a
//!   Streamable HTTP tower service behind an [`server::Authenticator`]: the caller's tenant and
//!   principal come from the transport, and calls pass the same gate and audit.
//!
//! ## Example: an MCP server's tools in an agent, one of them behind approval
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn agentkit_core::store::StateStore>,
//! #               model: std::sync::Arc<dyn agentkit_core::model::LlmProvider>)
//! #               -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use agentkit_core::prelude::*;
//! use agentkit_core::policy::AllowListPolicy;
//! use agentkit_mcp::{McpClient, McpServerConfig, McpToolOverride};
//! use agentkit_tools::{Allowlist, ToolRegistry};
//!
//! let crm = McpClient::connect(
//!     McpServerConfig::stdio("crm", "crm-mcp-server", ["--stdio"])
//!         .with_tool("search_contacts", McpToolOverride::new().side_effect(SideEffect::Read))
//!         .with_tool("delete_contact", McpToolOverride::new().side_effect(SideEffect::Write)),
//! )
//! .await?;
//! let registry = ToolRegistry::builder().register_all(crm.tools()).build()?;
//! let agent = Agent::builder()
//!     .id("support")
//!     .model(model, "gpt-4.1")
//!     .tools(registry.for_agent(&Allowlist::new(["crm.search_*", "crm.delete_contact"])))
//!     .policy(
//!         AllowListPolicy::new(["crm.*"])
//!             .require_approval_for(["crm.delete_contact"])
//!             .into_arc(),
//!     )
//!     .store(store)
//!     .build()?;
//! let outcome = agent.run(RunRequest::new("acme", "s1", "Remove Bob's duplicate contact")).await?;
//! # let _ = outcome;
//! # Ok(()) }
//! ```

mod client;
mod config;
mod error;
pub mod server;

pub use client::{Authorizer, McpClient, McpClientBuilder, RedirectAuthorizer};
pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, McpOAuthConfig, McpServerConfig,
    McpToolOverride, McpTransport, ProtocolPreference,
};
pub use error::McpError;
