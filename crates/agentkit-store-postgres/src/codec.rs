//! Conversions between records and column values.

use agentkit_core::id::TenantId;
use agentkit_core::{Error, Result};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Tenants must be named: the empty string is what an unset `agentkit.tenant` reads as after a
/// transaction, so it is refused rather than risk matching it.
pub(crate) fn check_tenant(tenant: &TenantId) -> Result<()> {
    if tenant.as_str().is_empty() {
        return Err(Error::InvalidInput(
            "the tenant id must not be empty".into(),
        ));
    }
    Ok(())
}

/// The stored (microsecond) precision of a timestamp.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// A query bound compared with stored (microsecond) timestamps: the smallest microsecond at or
/// after `t`, so that `stored >= bound` and `stored < bound` mean the same as with `t` itself.
pub(crate) fn micros_bound(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = t.trunc_subsecs(6);
    if floor == t {
        t
    } else {
        floor + chrono::Duration::microseconds(1)
    }
}

/// An unsigned count as a `bigint`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::InvalidInput(format!(
            "{what} {value} does not fit in a 64-bit signed integer"
        ))
    })
}

/// A stored `bigint` as an unsigned count.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} is negative ({value})")))
}

/// A stored `bigint` as a `u32`.
pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(format!("{what} is out of range ({value})")))
}

/// A value as JSON text (for a `json` column).
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Internal(format!("postgres store: cannot serialize a record: {e}")))
}

/// JSON text from a `json` column.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what} does not parse: {e}")))
}

/// The serde name of a unit enum variant (`"suspended"`, `"high"`), as stored in text columns.
pub(crate) fn name<T: Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::Internal(
            "postgres store: an enum did not serialize as a string".into(),
        )),
    }
}

/// An enum from its stored serde name.
pub(crate) fn from_name<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| corrupt(format!("unknown {what} {text:?}")))
}

/// A stored value that cannot be read back (a schema or data problem, not the caller's).
pub(crate) fn corrupt(detail: String) -> Error {
    Error::storage(format!("postgres store: {detail}"), false, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use agentkit_core::agent::ConfigStatus;
    use agentkit_core::policy::Priority;
    use agentkit_core::store::{ApprovalStatus, RunStatus, ToolExecutionStatus, UsageKind};

    use super::*;

    /// Every enum stored by name, every variant: the `CHECK` constraints of the schema must
    /// admit its name, and the name must read back. (The matches make a new variant a compile
    /// error here, and a reminder to add a migration.)
    #[test]
    fn stored_enum_names_match_the_schema() {
        let schema = include_str!("../migrations/0001_agentkit_store.sql");
        let mut names: Vec<String> = Vec::new();
        for s in [ConfigStatus::Draft, ConfigStatus::Final] {
            match s {
                ConfigStatus::Draft | ConfigStatus::Final => names.push(name(&s).unwrap()),
            }
            assert_eq!(
                from_name::<ConfigStatus>(&name(&s).unwrap(), "x").unwrap(),
                s
            );
        }
        for s in [
            RunStatus::Running,
            RunStatus::Suspended,
            RunStatus::Completed,
            RunStatus::Failed,
        ] {
            match s {
                RunStatus::Running
                | RunStatus::Suspended
                | RunStatus::Completed
                | RunStatus::Failed => names.push(name(&s).unwrap()),
            }
            assert_eq!(name(&s).unwrap(), s.as_str());
            assert_eq!(from_name::<RunStatus>(s.as_str(), "x").unwrap(), s);
        }
        for s in [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::Expired,
        ] {
            match s {
                ApprovalStatus::Pending
                | ApprovalStatus::Approved
                | ApprovalStatus::Rejected
                | ApprovalStatus::Expired => names.push(name(&s).unwrap()),
            }
            assert_eq!(name(&s).unwrap(), s.as_str());
            assert_eq!(from_name::<ApprovalStatus>(s.as_str(), "x").unwrap(), s);
        }
        for p in [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Critical,
        ] {
            match p {
                Priority::Low | Priority::Medium | Priority::High | Priority::Critical => {
                    names.push(name(&p).unwrap());
                }
            }
            assert_eq!(from_name::<Priority>(&name(&p).unwrap(), "x").unwrap(), p);
        }
        for s in [
            ToolExecutionStatus::Started,
            ToolExecutionStatus::Succeeded,
            ToolExecutionStatus::Failed,
        ] {
            match s {
                ToolExecutionStatus::Started
                | ToolExecutionStatus::Succeeded
                | ToolExecutionStatus::Failed => names.push(name(&s).unwrap()),
            }
            assert_eq!(
                from_name::<ToolExecutionStatus>(&name(&s).unwrap(), "x").unwrap(),
                s
            );
        }
        for k in [
            UsageKind::InputTokens,
            UsageKind::OutputTokens,
            UsageKind::CachedInputTokens,
            UsageKind::ToolCall,
            UsageKind::KnowledgeQuery,
            UsageKind::AudioMillis,
        ] {
            match k {
                UsageKind::InputTokens
                | UsageKind::OutputTokens
                | UsageKind::CachedInputTokens
                | UsageKind::ToolCall
                | UsageKind::KnowledgeQuery
                | UsageKind::AudioMillis => names.push(name(&k).unwrap()),
            }
            assert_eq!(name(&k).unwrap(), k.as_str());
            assert_eq!(from_name::<UsageKind>(k.as_str(), "x").unwrap(), k);
        }
        for n in names {
            assert!(
                schema.contains(&format!("'{n}'")),
                "the schema's CHECK constraints do not admit {n:?}"
            );
        }
        assert!(from_name::<RunStatus>("paused", "run status").is_err());
    }

    #[test]
    fn query_bounds_round_up_to_the_stored_microsecond() {
        let t = DateTime::parse_from_rfc3339("2025-01-01T00:00:00.000001500Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(micros(t).to_rfc3339(), "2025-01-01T00:00:00.000001+00:00");
        assert_eq!(
            micros_bound(t).to_rfc3339(),
            "2025-01-01T00:00:00.000002+00:00"
        );
        assert_eq!(micros_bound(micros(t)), micros(t));
    }
}
