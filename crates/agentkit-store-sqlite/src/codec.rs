//! Conversions between records and column values.

use agentkit_core::policy::Priority;
use agentkit_core::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::corrupt;

/// A timestamp as integer microseconds since the Unix epoch (sub-microsecond digits are cut, as
/// in Postgres).
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time a column holds.
pub(crate) fn from_micros(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt("timestamp", v))
}

/// `t` as stored (cut to microseconds).
pub(crate) fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros(t)).unwrap_or(t)
}

/// Now, as stored.
pub(crate) fn now() -> DateTime<Utc> {
    stored_time(Utc::now())
}

/// An unsigned count as an SQLite integer.
pub(crate) fn int(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::InvalidInput(format!(
            "{what} {v} is larger than the sqlite store keeps ({})",
            i64::MAX
        ))
    })
}

/// An SQLite integer as an unsigned count.
pub(crate) fn uint(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(what, v))
}

/// JSON text of a value.
pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::InvalidInput(format!("cannot serialize a record as JSON: {e}")))
}

/// A value from JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// A unit enum as its serde name (`"succeeded"`, `"final"`), the form stored in status columns.
pub(crate) fn enum_name<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(Error::Internal(format!(
            "sqlite store: expected a unit enum, got {other}"
        ))),
        Err(e) => Err(Error::Internal(format!("sqlite store: {e}"))),
    }
}

/// A unit enum from its serde name.
pub(crate) fn parse_enum<T: DeserializeOwned>(name: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| corrupt(what, format!("{name:?}: {e}")))
}

/// Priorities as integers so the queue sorts in SQL.
pub(crate) fn priority_rank(p: Priority) -> i64 {
    match p {
        Priority::Low => 0,
        Priority::Medium => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

/// The priority a rank stands for.
pub(crate) fn priority_from_rank(rank: i64) -> Result<Priority> {
    Ok(match rank {
        0 => Priority::Low,
        1 => Priority::Medium,
        2 => Priority::High,
        3 => Priority::Critical,
        other => return Err(corrupt("approval priority", other)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use agentkit_core::store::{ApprovalStatus, RunStatus, ToolExecutionStatus, UsageKind};
    use chrono::SubsecRound;

    #[test]
    fn timestamps_keep_microseconds() {
        let t = Utc::now();
        assert_eq!(from_micros(micros(t)).unwrap(), t.trunc_subsecs(6));
        assert_eq!(stored_time(t), t.trunc_subsecs(6));
        let old = DateTime::parse_from_rfc3339("1901-02-03T04:05:06.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(from_micros(micros(old)).unwrap(), old.trunc_subsecs(6));
    }

    #[test]
    fn status_names_are_the_ones_the_schema_uses() {
        assert_eq!(
            enum_name(&ToolExecutionStatus::Succeeded).unwrap(),
            "succeeded"
        );
        assert_eq!(
            enum_name(&agentkit_core::agent::ConfigStatus::Final).unwrap(),
            "final"
        );
        assert_eq!(ApprovalStatus::Pending.as_str(), "pending");
        for s in [RunStatus::Running, RunStatus::Suspended, RunStatus::Failed] {
            assert_eq!(
                parse_enum::<RunStatus>(s.as_str(), "run status").unwrap(),
                s
            );
        }
        for k in [UsageKind::InputTokens, UsageKind::AudioMillis] {
            assert_eq!(
                parse_enum::<UsageKind>(k.as_str(), "usage kind").unwrap(),
                k
            );
        }
        for p in [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Critical,
        ] {
            assert_eq!(priority_from_rank(priority_rank(p)).unwrap(), p);
        }
    }
}
