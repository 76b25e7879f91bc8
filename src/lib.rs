//! # agentkit
//!
//! Governed AI agents for Rust hosts: agents call tools under a deterministic policy gate, ask
//! humans for approval and resume days later, keep every tenant's data apart, and meter every
//! token and tool call.
//!
//! This facade re-exports the family of crates behind features; see the README's feature table.
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

pub use agentkit_core::*;
