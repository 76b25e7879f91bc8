//! Test kit (feature `testkit`): a scripted model and the store conformance suite.
//!
//! Everything here is public API meant for hosts' own tests: an agent can be tested offline with
//! [`ScriptedModel`] and an [`crate::store::InMemoryStore`], and a new store backend proves
//! itself by passing [`conformance::run_all`].

pub mod conformance;
mod scripted;

pub use scripted::{ScriptedModel, ScriptedResponse};

use crate::id::{AgentId, RunId, SessionId, TenantId};
use crate::scope::Scope;

/// A [`Scope`] from four strings, for tests.
///
/// # Panics
///
/// When a string breaks the [id rule](crate::id): in a test, that is the test's bug.
#[track_caller]
pub fn scope(
    tenant: impl AsRef<str>,
    agent: impl AsRef<str>,
    session: impl AsRef<str>,
    run: impl AsRef<str>,
) -> Scope {
    let bad = |e: crate::Error| -> ! { panic!("testkit::scope: {e}") };
    Scope::new(
        TenantId::new(tenant).unwrap_or_else(|e| bad(e)),
        AgentId::new(agent).unwrap_or_else(|e| bad(e)),
        SessionId::new(session).unwrap_or_else(|e| bad(e)),
        RunId::new(run).unwrap_or_else(|e| bad(e)),
    )
}
