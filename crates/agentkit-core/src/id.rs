//! Identifier newtypes, validated once at construction.
//!
//! Every id is a cheap-to-clone string newtype (`Arc<str>` inside), serialized as a plain string.
//! Host-chosen ids (tenants, agents, sessions) are checked when they are made — by
//! [`TenantId::new`], `TryFrom<&str>`, `FromStr` or deserialization — so a value of an id type
//! is always valid, and every store can rely on it. Ids agentkit mints itself (runs, approvals,
//! usage events) are UUID v7, so they sort by creation time.
//!
//! # The rule
//!
//! An id is 1 to [`MAX_ID_LEN`] bytes (an [`IdempotencyKey`] up to [`MAX_KEY_LEN`], since keys are
//! derived from other ids) of ASCII letters, digits and `- _ . : @ / + =`. No spaces, no control
//! characters, nothing a log line, a URL path segment or a SQL `LIKE` would need to escape
//! beyond `/`.
//!
//! ```
//! use agentkit_core::id::TenantId;
//!
//! let acme = TenantId::new("acme")?;
//! assert_eq!(acme.as_str(), "acme");
//! assert!(TenantId::new("").is_err());
//! assert!(TenantId::new("a b").is_err());
//! assert!(TenantId::new("x".repeat(200)).is_err());
//! let parsed: TenantId = "acme-eu".parse()?;
//! # let _ = parsed;
//! # Ok::<(), agentkit_core::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest id, in bytes (tenants, agents, sessions, runs, approvals, usage events).
pub const MAX_ID_LEN: usize = 128;

/// The longest idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 512;

fn id_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'/' | b'+' | b'=')
}

/// Checks `value` against the id rule for the id type named `what` with at most `max` bytes.
pub(crate) fn check_id(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if value.len() > max {
        return Err(Error::InvalidInput(format!(
            "{what} is {} bytes long; the limit is {max}",
            value.len()
        )));
    }
    if let Some(bad) = value.bytes().find(|b| !id_byte_ok(*b)) {
        let shown = if bad.is_ascii_graphic() {
            format!("`{}`", bad as char)
        } else {
            format!("byte 0x{bad:02x}")
        };
        return Err(Error::InvalidInput(format!(
            "{what} `{}` contains {shown}; ids use ASCII letters, digits and - _ . : @ / + =",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// Anything an id can be made from: the id itself (or a reference to it, cloned), or a string
/// (checked). APIs that take ids from hosts accept `impl IntoId<TenantId>`, so both
/// `RunRequest::new("acme", ...)` and `RunRequest::new(&tenant, ...)` work, and a bad string is
/// a typed error where the id is used, never a panic.
pub trait IntoId<T> {
    /// The id, or [`Error::InvalidInput`] when a string breaks the [id rule](self).
    fn into_id(self) -> Result<T>;
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks and wraps an id; [`Error::InvalidInput`] when it breaks the
            /// [id rule](self).
            pub fn new(id: impl AsRef<str>) -> Result<Self> {
                let id = id.as_ref();
                check_id($what, id, $max)?;
                Ok(Self(Arc::from(id)))
            }

            /// An id from a literal, for tests and fixed names.
            ///
            /// # Panics
            ///
            /// When the literal breaks the [id rule](self) — a programming error, like
            /// `http::HeaderName::from_static`. Use [`Self::new`] for anything not written in
            /// the source.
            #[track_caller]
            pub fn from_static(id: &'static str) -> Self {
                match check_id($what, id, $max) {
                    Ok(()) => Self(Arc::from(id)),
                    #[allow(clippy::panic)]
                    Err(e) => panic!("{e}"),
                }
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

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&String> for $name {
            type Error = Error;
            fn try_from(s: &String) -> Result<Self> {
                Self::new(s)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl IntoId<$name> for $name {
            fn into_id(self) -> Result<$name> {
                Ok(self)
            }
        }

        impl IntoId<$name> for &$name {
            fn into_id(self) -> Result<$name> {
                Ok(self.clone())
            }
        }

        impl IntoId<$name> for &str {
            fn into_id(self) -> Result<$name> {
                $name::new(self)
            }
        }

        impl IntoId<$name> for String {
            fn into_id(self) -> Result<$name> {
                $name::new(self)
            }
        }

        impl IntoId<$name> for &String {
            fn into_id(self) -> Result<$name> {
                $name::new(self)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

string_id!(
    /// A tenant (company, organization). Every stored record is scoped by one.
    TenantId,
    "tenant id",
    MAX_ID_LEN
);
string_id!(
    /// An agent identity (its configs are versioned separately).
    AgentId,
    "agent id",
    MAX_ID_LEN
);
string_id!(
    /// A conversation between a user (or channel) and an agent.
    SessionId,
    "session id",
    MAX_KEY_LEN
);
string_id!(
    /// One `Agent::run` invocation: a user input and every model/tool step it caused.
    RunId,
    "run id",
    MAX_KEY_LEN
);
string_id!(
    /// A human approval request.
    ApprovalId,
    "approval id",
    MAX_ID_LEN
);
string_id!(
    /// A usage event (append-only).
    UsageEventId,
    "usage event id",
    MAX_ID_LEN
);
string_id!(
    /// A workflow definition (its versions are published separately; see `agentkit-workflow`).
    WorkflowId,
    "workflow id",
    MAX_ID_LEN
);
string_id!(
    /// The key that makes a tool execution happen at most once; derived from (run, step, call).
    IdempotencyKey,
    "idempotency key",
    MAX_KEY_LEN
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_id_rule() {
        for good in [
            "acme",
            "a",
            "tenant-1_eu.west:2@x/y+z=",
            &"t".repeat(MAX_ID_LEN),
        ] {
            assert!(TenantId::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " ",
            "a b",
            "a\nb",
            "ä",
            "a\0",
            "<x>",
            "a'b",
            &"t".repeat(MAX_ID_LEN + 1),
        ] {
            let e = TenantId::new(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(IdempotencyKey::new("k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(IdempotencyKey::new("k".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn deserializing_validates() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok, "acme");
        assert!(serde_json::from_str::<TenantId>("\"\"").is_err());
        assert!(serde_json::from_str::<TenantId>("\"a b\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"acme\"");
    }

    #[test]
    fn generated_ids_are_valid_and_ordered() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert!(RunId::new(a.as_str()).is_ok());
        assert!(a < b);
    }

    #[test]
    #[should_panic(expected = "tenant id is empty")]
    fn from_static_refuses_bad_literals() {
        let _ = TenantId::from_static("");
    }
}
