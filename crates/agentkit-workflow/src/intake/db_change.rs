//! Database changes: one changed row, as a Postgres trigger sends it with `pg_notify` or an
//! ORM hook (Prisma middleware) reports it.
//!
//! A trigger typically sends
//! `json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'old', row_to_json(OLD), 'new', row_to_json(NEW), 'txid', txid_current())`;
//! Prisma middleware knows `model`, `action` and the result row. Both spellings are read.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use agentkit_core::id::TenantId;
use agentkit_core::redact::hash_json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Intake, IntakeError, Source, check_delivery, check_size, normalise_kind, parse_object, render,
};

/// The largest payload accepted by default: 256 KiB (Postgres limits a `NOTIFY` payload to
/// 8,000 bytes; ORM hooks may send whole rows).
const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A row was inserted (`INSERT`, Prisma `create`).
    Insert,
    /// A row was updated (`UPDATE`, Prisma `update` / `upsert`).
    Update,
    /// A row was deleted (`DELETE`, Prisma `delete`).
    Delete,
}

impl Operation {
    /// `INSERT` / `insert` / `create` / `created` ... (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "insert" | "inserted" | "create" | "created" => Some(Self::Insert),
            "update" | "updated" | "upsert" => Some(Self::Update),
            "delete" | "deleted" => Some(Self::Delete),
            _ => None,
        }
    }

    /// `created`, `updated`, `deleted` (the intake kind's suffix).
    pub fn past(&self) -> &'static str {
        match self {
            Self::Insert => "created",
            Self::Update => "updated",
            Self::Delete => "deleted",
        }
    }

    /// `insert`, `update`, `delete`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// One changed row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DbChange {
    /// The table (or ORM model).
    pub table: String,
    /// What happened.
    pub operation: Operation,
    /// The row's key (`{"id": 42}`); derived from the row's `id` when not given.
    pub key: Value,
    /// The row before (updates, deletes).
    pub before: Option<Map<String, Value>>,
    /// The row after (inserts, updates).
    pub after: Option<Map<String, Value>>,
    /// The sender's id of this change, when it has one.
    pub change_id: Option<String>,
    /// The transaction id (`txid_current()`), when sent.
    pub txid: Option<String>,
    /// The schema, when sent.
    pub schema: Option<String>,
}

impl DbChange {
    /// A change record; `key` may be `Value::Null` (then the row's `id` is used).
    pub fn new(table: impl Into<String>, operation: Operation, key: Value) -> Self {
        Self {
            table: table.into(),
            operation,
            key,
            before: None,
            after: None,
            change_id: None,
            txid: None,
            schema: None,
        }
    }

    /// Sets the row before.
    pub fn before(mut self, row: Map<String, Value>) -> Self {
        self.before = Some(row);
        self
    }

    /// Sets the row after.
    pub fn after(mut self, row: Map<String, Value>) -> Self {
        self.after = Some(row);
        self
    }

    /// Sets the change id.
    pub fn change_id(mut self, id: impl Into<String>) -> Self {
        self.change_id = Some(id.into());
        self
    }

    /// Reads a change record from JSON: `table` (or `model`, `relation`), `op` (or `operation`,
    /// `action`, `tg_op`), `key` (or `pk`), `before` (or `old`), `after` (or `new`, `record`),
    /// and optional `change_id` (`changeId`, `event_id`), `txid` (`xid`), `schema`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IntakeError> {
        let channel = Source::DbTrigger;
        let mut obj = parse_object(channel, bytes)?;
        let mut take = |names: &[&str]| names.iter().find_map(|n| obj.remove(*n));
        let text = |v: Option<Value>, field: &str| -> Result<Option<String>, IntakeError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(IntakeError::InvalidField {
                    channel,
                    field: field.into(),
                    reason: format!("is {}, not a string", render::type_name(&other)),
                }),
            }
        };
        let row =
            |v: Option<Value>, field: &str| -> Result<Option<Map<String, Value>>, IntakeError> {
                match v {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Object(m)) => Ok(Some(m)),
                    Some(other) => Err(IntakeError::InvalidField {
                        channel,
                        field: field.into(),
                        reason: format!("is {}, not a row object", render::type_name(&other)),
                    }),
                }
            };
        let name = |v: Option<Value>, field: &str| match v {
            Some(Value::Number(_)) => Err(IntakeError::InvalidField {
                channel,
                field: field.into(),
                reason: "is a number, not a name".into(),
            }),
            v => text(v, field),
        };
        let table = name(take(&["table", "model", "relation"]), "table")?.ok_or_else(|| {
            IntakeError::MissingField {
                channel,
                field: "table".into(),
            }
        })?;
        let op_text =
            name(take(&["op", "operation", "action", "tg_op"]), "op")?.ok_or_else(|| {
                IntakeError::MissingField {
                    channel,
                    field: "op".into(),
                }
            })?;
        let operation = Operation::parse(&op_text).ok_or_else(|| IntakeError::InvalidField {
            channel,
            field: "op".into(),
            reason: format!(
                "`{}` is not insert, update or delete",
                op_text.escape_debug()
            ),
        })?;
        let key = take(&["key", "pk"]).unwrap_or(Value::Null);
        let before = row(take(&["before", "old"]), "before")?;
        let after = row(take(&["after", "new", "record"]), "after")?;
        let change_id = text(take(&["change_id", "changeId", "event_id"]), "change_id")?;
        let txid = text(take(&["txid", "xid"]), "txid")?;
        let schema = text(take(&["schema"]), "schema")?;
        Ok(Self {
            table,
            operation,
            key,
            before,
            after,
            change_id,
            txid,
            schema,
        })
    }
}

/// Normalises database changes.
///
/// - kind `{table}_{created|updated|deleted}`, the table in snake case (`Intake` →
///   `intake_created`, `PipelineStage` → `pipeline_stage_updated`);
/// - delivery id: `change_id`, else `{table}:{op}:{key}:tx{txid}`, else
///   `{table}:{op}:{key}:{hash of the rows}` (a re-sent change has equal rows);
/// - an insert needs the row after, a delete the row before, an update the row after;
/// - data `{table, schema, operation, key, before, after, changed}`, `changed` naming the
///   columns an update changed; text: the change, the changed columns (old → new), the row.
#[derive(Debug, Clone)]
pub struct DbChangeIntake {
    max_bytes: usize,
    max_text: usize,
}

super::size_limits!(DbChangeIntake, "payload", true);

impl DbChangeIntake {
    /// Up to 256 KiB per payload, 16,000 characters of text.
    pub fn new() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_text: super::DEFAULT_MAX_TEXT,
        }
    }

    /// Normalises a JSON change record ([`DbChange::from_json`]).
    pub fn normalise(
        &self,
        tenant: &TenantId,
        payload: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        check_size(Source::DbTrigger, payload.len(), self.max_bytes)?;
        self.normalise_change(tenant, DbChange::from_json(payload)?, received_at)
    }

    /// Normalises a change record the host built itself.
    pub fn normalise_change(
        &self,
        tenant: &TenantId,
        change: DbChange,
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        let channel = Source::DbTrigger;
        let table = change.table.trim();
        if table.is_empty() || table.len() > 128 {
            return Err(IntakeError::InvalidField {
                channel,
                field: "table".into(),
                reason: "must be 1 to 128 bytes".into(),
            });
        }
        let missing = |field: &str| IntakeError::MissingField {
            channel,
            field: field.into(),
        };
        let row = match change.operation {
            Operation::Insert | Operation::Update => {
                change.after.as_ref().ok_or_else(|| missing("after"))?
            }
            Operation::Delete => change.before.as_ref().ok_or_else(|| missing("before"))?,
        };
        let key = match &change.key {
            Value::Null => row
                .get("id")
                .filter(|v| !v.is_null())
                .map(|id| json!({ "id": id }))
                .ok_or_else(|| missing("key"))?,
            Value::Object(m) if m.is_empty() => return Err(missing("key")),
            k => k.clone(),
        };
        let key_text = match &key {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", render::scalar(v)))
                .collect::<Vec<_>>()
                .join(","),
            other => render::scalar(other),
        };
        let snake = snake_case(table);
        let kind = normalise_kind(channel, &format!("{snake}_{}", change.operation.past()))?;
        let delivery = match (&change.change_id, &change.txid) {
            (Some(id), _) if !id.trim().is_empty() => id.clone(),
            (_, Some(tx)) => format!("{snake}:{}:{key_text}:tx{tx}", change.operation.as_str()),
            _ => {
                let rows = json!([change.before, change.after]);
                format!(
                    "{snake}:{}:{key_text}:{}",
                    change.operation.as_str(),
                    &hash_json(&rows)[..32]
                )
            }
        };
        let delivery_id = check_delivery(channel, delivery)?;
        let changed: Vec<String> = match (&change.before, &change.after) {
            (Some(b), Some(a)) => b
                .keys()
                .chain(a.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| b.get(*k) != a.get(*k))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };

        let mut text = String::new();
        let _ = writeln!(
            text,
            "Database change: {snake} {} ({key_text})",
            change.operation.past()
        );
        if let (Some(b), Some(a)) = (&change.before, &change.after) {
            for c in &changed {
                let show = |v: Option<&Value>| v.map_or("(none)".to_owned(), render::scalar);
                let _ = writeln!(text, "changed {c}: {} → {}", show(b.get(c)), show(a.get(c)));
            }
        }
        render::flatten(&Value::Object(row.clone()), "row", &mut text);

        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("table".to_owned(), table.to_owned());
        metadata.insert("operation".to_owned(), change.operation.as_str().to_owned());
        if let Some(s) = &change.schema {
            metadata.insert("schema".to_owned(), s.clone());
        }
        if let Some(tx) = &change.txid {
            metadata.insert("txid".to_owned(), tx.clone());
        }
        let data = json!({
            "table": table,
            "schema": change.schema,
            "operation": change.operation,
            "key": key,
            "before": change.before,
            "after": change.after,
            "changed": changed,
        });
        Ok(Intake {
            source: channel,
            kind,
            delivery_id,
            tenant: tenant.clone(),
            text: render::bound(text, self.max_text),
            data,
            metadata,
            received_at,
        })
    }
}

/// `PipelineStage` / `pipeline-stage` / `pipeline_stage` → `pipeline_stage`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    out
}
