//! Identifier newtypes.
//!
//! Every id is a cheap-to-clone string newtype (`Arc<str>` inside), serialized as a plain string.
//! Host-chosen ids (tenants, agents, sessions) are taken as given; ids agentkit mints itself
//! (runs, approvals, usage events, audit entries) are UUID v7, so they sort by creation time.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps an existing id.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                Self(id.into())
            }

            /// A fresh, time-ordered (UUID v7) id.
            pub fn generate() -> Self {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
                Self(Arc::from(&*text))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s.into())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A tenant (company, organization). Every stored record is scoped by one.
    TenantId
);
string_id!(
    /// An agent identity (its configs are versioned separately).
    AgentId
);
string_id!(
    /// A conversation between a user (or channel) and an agent.
    SessionId
);
string_id!(
    /// One `Agent::run` invocation: a user input and every model/tool step it caused.
    RunId
);
string_id!(
    /// A human approval request.
    ApprovalId
);
string_id!(
    /// A usage event (append-only).
    UsageEventId
);
string_id!(
    /// The key that makes a tool execution happen at most once; derived from (run, step, call).
    IdempotencyKey
);
