//! Test kit (feature `testkit`): a scripted model and the store conformance suite.
//!
//! Everything here is public API meant for hosts' own tests: an agent can be tested offline with
//! [`ScriptedModel`] and an [`crate::store::InMemoryStore`], and a new store backend proves
//! itself by passing [`conformance::run_all`].

pub mod conformance;
mod scripted;

pub use scripted::{ScriptedModel, ScriptedResponse};
