//! [`SharedJson`]: a JSON value that records share instead of copying.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON value behind an [`Arc`]: cloning it copies a pointer, not the value.
///
/// A tool call's redacted arguments and output are kept twice — in its execution record
/// ([`crate::store::ToolExecution`]) and in its audit entry ([`crate::store::NewAuditEntry`]) —
/// and an in-memory store keeps both for the life of the process. With `SharedJson` both
/// records hold the same value: a small JSON object costs several allocations and over 600
/// bytes to copy and keep, a second holder of a shared one a reference count.
///
/// It reads like the [`Value`] inside (it derefs to it), compares equal to a `Value` with the
/// same content, and serializes exactly as that `Value` does, so stored and sent forms are
/// unchanged.
///
/// ```
/// use agentkit_core::SharedJson;
/// use serde_json::json;
///
/// let input: SharedJson = json!({"lead_id": 42}).into();
/// let shared = input.clone(); // a pointer copy
/// assert!(SharedJson::ptr_eq(&input, &shared));
/// assert_eq!(input["lead_id"], 42); // reads like a `Value`
/// assert_eq!(input, json!({"lead_id": 42}));
/// assert_eq!(serde_json::to_string(&input)?, r#"{"lead_id":42}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SharedJson(Arc<Value>);

/// One `null` for every record without an input or output (no allocation per record).
static NULL: LazyLock<SharedJson> = LazyLock::new(|| SharedJson(Arc::new(Value::Null)));

impl SharedJson {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        if value.is_null() {
            return Self::null();
        }
        Self(Arc::new(value))
    }

    /// JSON `null` (one value shared process-wide).
    pub fn null() -> Self {
        NULL.clone()
    }

    /// The value inside.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The value, moved out when this is its only holder, else copied.
    pub fn into_value(self) -> Value {
        Arc::unwrap_or_clone(self.0)
    }

    /// Whether `a` and `b` are the same shared value (not only equal ones).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for SharedJson {
    /// JSON `null`.
    fn default() -> Self {
        Self::null()
    }
}

impl Deref for SharedJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl AsRef<Value> for SharedJson {
    fn as_ref(&self) -> &Value {
        &self.0
    }
}

impl From<Value> for SharedJson {
    fn from(value: Value) -> Self {
        Self::new(value)
    }
}

impl From<SharedJson> for Value {
    fn from(shared: SharedJson) -> Self {
        shared.into_value()
    }
}

impl PartialEq<Value> for SharedJson {
    fn eq(&self, other: &Value) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<SharedJson> for Value {
    fn eq(&self, other: &SharedJson) -> bool {
        *self == *other.0
    }
}

impl fmt::Debug for SharedJson {
    /// As the `Value` inside.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedJson {
    /// Compact JSON, as `Value`'s `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn null_is_shared_and_values_round_trip_unchanged() {
        assert!(SharedJson::ptr_eq(
            &SharedJson::null(),
            &SharedJson::default()
        ));
        assert!(SharedJson::ptr_eq(
            &SharedJson::null(),
            &SharedJson::from(Value::Null)
        ));
        let v = json!({"b": [1, 2.5, "x"], "a": {"nested": null}});
        let s = SharedJson::from(v.clone());
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        let back: SharedJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(back, v);
        assert_eq!(v, back);
        assert_eq!(format!("{s}"), v.to_string());
        assert_eq!(format!("{s:?}"), format!("{v:?}"));
        assert_eq!(s.clone().into_value(), v);
    }
}
