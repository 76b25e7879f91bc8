//! Intake: everything that can start work — an email, a signed webhook, a database change, a
//! worker-queue event, an API request — normalised into one typed [`Intake`] record.
//!
//! Each source has its normaliser, one file each:
//!
//! | source | normaliser | input | kind | delivery id (deduplication) |
//! |---|---|---|---|---|
//! | [`Source::Email`] | [`EmailIntake`] | an RFC 5322 / MIME message (`mail-parser`) | `email_received` | `Message-ID`, else the SHA-256 of the message |
//! | [`Source::Webhook`] | [`WebhookIntake`] | a JSON body + headers, HMAC-SHA256 signed | the event (`form.submitted` → `form_submitted`) | the delivery header, else the body's `id`, else its SHA-256 |
//! | [`Source::DbTrigger`] | [`DbChangeIntake`] | a change record ([`DbChange`]: a Postgres trigger's `NOTIFY` payload, Prisma middleware) | `{table}_created` / `_updated` / `_deleted` | `change_id`, else table, operation, key and `txid` (or the rows' hash) |
//! | [`Source::Worker`] | [`WorkerIntake`] | a job event ([`WorkerEvent`]: BullMQ's `completed` / `failed` / `progress`) | `job_{status}` | the event's stream id, else queue, job, status and attempt |
//! | [`Source::Api`] | [`ApiIntake`] | a JSON request ([`ApiRequest`]) | its `type` | the `Idempotency-Key`, else the body's SHA-256 |
//!
//! Every normaliser checks the input's size first, never panics, and reports malformed input as
//! a typed [`IntakeError`] (a bad signature as [`SignatureError`]), which converts to
//! [`agentkit_core::Error`] (`Unauthenticated` for signatures, `InvalidInput` otherwise). A
//! webhook's signature is verified over the raw body before the body is parsed.
//!
//! An [`Intake`] carries the text a model reads ([`Intake::text`], bounded), the structured
//! data, metadata, the tenant and the delivery id. [`Intake::key`] derives one stable
//! idempotency key from the source and the delivery id, so a host derives its run ids
//! ([`Intake::run_id`]) and tool keys from it, and a redelivered input finds the work it already
//! started instead of doing it again. [`Intake::to_workflow_event`] hands an intake to waiting
//! workflows ([`crate::Workflows::send_event`] ignores an event id it has seen).
//!
//! ```
//! use agentkit_core::id::TenantId;
//! use agentkit_workflow::intake::{EmailIntake, Source, WebhookIntake, WebhookRequest, signature_header};
//! use chrono::Utc;
//!
//! let tenant = TenantId::new("astralis")?;
//! let raw = b"From: Dana <dana@northwind.example>\r\n\
//!             To: intake@astralis.example\r\n\
//!             Subject: Quote for 40 seats\r\n\
//!             Message-ID: <q-1@northwind.example>\r\n\
//!             \r\n\
//!             Could you send pricing for 40 seats?\r\n";
//! let email = EmailIntake::new().normalise(&tenant, raw, Utc::now())?;
//! assert_eq!(email.source, Source::Email);
//! assert_eq!(email.kind, "email_received");
//! assert_eq!(email.key().as_str(), "email:q-1@northwind.example");
//! assert!(email.text.contains("Quote for 40 seats"));
//!
//! // A signed form webhook: the signature covers the timestamp and the raw body.
//! let hooks = WebhookIntake::new(b"whsec_0123456789abcdef")?;
//! let body = br#"{"event":"form.submitted","id":"evt_1","form":"contact","fields":{"name":"Ada"}}"#;
//! let now = Utc::now();
//! let signed = WebhookRequest::new(body)
//!     .header("X-Signature", signature_header(b"whsec_0123456789abcdef", now.timestamp(), body));
//! let form = hooks.normalise(&tenant, &signed, now)?;
//! assert_eq!((form.kind.as_str(), form.delivery_id.as_str()), ("form_submitted", "evt_1"));
//!
//! // The same body with a forged signature is refused before it is parsed.
//! let forged = WebhookRequest::new(body).header("X-Signature", format!("t={},v1={}", now.timestamp(), "0".repeat(64)));
//! assert!(hooks.normalise(&tenant, &forged, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// A normaliser's size limits (its `max_bytes` and `max_text` fields): the two builder
/// methods, and `Default` as `new()` when `$default` is `true`.
macro_rules! size_limits {
    ($ty:ty, $what:literal, $default:tt) => {
        super::size_limits!(@default $ty, $default);

        impl $ty {
            #[doc = concat!("The largest ", $what, " accepted, in bytes.")]
            pub fn max_bytes(mut self, n: usize) -> Self {
                self.max_bytes = n;
                self
            }

            /// The longest [`Intake::text`](super::Intake::text), in characters.
            pub fn max_text(mut self, n: usize) -> Self {
                self.max_text = n;
                self
            }
        }
    };
    (@default $ty:ty, true) => {
        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }
    };
    (@default $ty:ty, false) => {};
}
use size_limits;

mod api;
mod db_change;
mod email;
mod render;
mod webhook;
mod worker;

use std::collections::BTreeMap;
use std::fmt;

use agentkit_core::id::{IdempotencyKey, RunId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::record::WorkflowEvent;

pub use api::{ApiIntake, ApiRequest};
pub use db_change::{DbChange, DbChangeIntake, Operation};
pub use email::EmailIntake;
pub use webhook::{
    DEFAULT_TOLERANCE, WebhookIntake, WebhookRequest, signature_header, verify_signature,
};
pub use worker::{JobStatus, WorkerEvent, WorkerIntake};

/// The longest [`Intake::text`] by default, in characters (longer renderings are cut and say
/// so).
pub const DEFAULT_MAX_TEXT: usize = 16_000;

/// The longest delivery id kept as it is in [`Intake::key`] (longer ones, and ids with
/// characters ids may not hold, are hashed).
const MAX_PLAIN_DELIVERY: usize = 200;

/// Where an intake came from (the seed's `AgentInputSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    /// An email.
    Email,
    /// A webhook (forms, bookings, automation callbacks).
    Webhook,
    /// A database change.
    DbTrigger,
    /// A worker-queue job event.
    Worker,
    /// A direct API request.
    Api,
    /// A schedule (reminders, cron).
    Schedule,
}

impl Source {
    /// `EMAIL`, `WEBHOOK`, `DB_TRIGGER`, `WORKER`, `API`, `SCHEDULE`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Email => "EMAIL",
            Source::Webhook => "WEBHOOK",
            Source::DbTrigger => "DB_TRIGGER",
            Source::Worker => "WORKER",
            Source::Api => "API",
            Source::Schedule => "SCHEDULE",
        }
    }

    /// The prefix of [`Intake::key`]: `email`, `webhook`, `db`, `worker`, `api`, `schedule`.
    pub fn slug(&self) -> &'static str {
        match self {
            Source::Email => "email",
            Source::Webhook => "webhook",
            Source::DbTrigger => "db",
            Source::Worker => "worker",
            Source::Api => "api",
            Source::Schedule => "schedule",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Email => "email",
            Source::Webhook => "webhook",
            Source::DbTrigger => "database change",
            Source::Worker => "worker event",
            Source::Api => "API request",
            Source::Schedule => "schedule",
        })
    }
}

/// One normalised input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Intake {
    /// Where it came from.
    pub source: Source,
    /// What happened, in snake case (`email_received`, `form_submitted`, `intake_created`,
    /// `job_failed`).
    pub kind: String,
    /// The source's id of this delivery; a redelivery carries the same one.
    pub delivery_id: String,
    /// The tenant it is for.
    pub tenant: TenantId,
    /// The input rendered for a model (bounded; it is untrusted text).
    pub text: String,
    /// The structured data.
    pub data: Value,
    /// Source details (sender, headers, queue, table...).
    pub metadata: BTreeMap<String, String>,
    /// When the host received it.
    pub received_at: DateTime<Utc>,
}

impl Intake {
    /// An intake from any other source (a schedule, a host's own trigger). The kind is
    /// normalised to snake case; an empty kind or delivery id, or a delivery id over 1,000
    /// bytes, is refused.
    pub fn new(
        source: Source,
        kind: &str,
        delivery_id: impl Into<String>,
        tenant: TenantId,
        text: impl Into<String>,
        data: Value,
        received_at: DateTime<Utc>,
    ) -> Result<Self, IntakeError> {
        let delivery_id = check_delivery(source, delivery_id.into())?;
        Ok(Self {
            source,
            kind: normalise_kind(source, kind)?,
            delivery_id,
            tenant,
            text: render::bound(text.into(), DEFAULT_MAX_TEXT),
            data,
            metadata: BTreeMap::new(),
            received_at,
        })
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The deduplication key: `{source slug}:{delivery id}` (`email:q-1@northwind.example`),
    /// the delivery id replaced by `sha256-{hex}` of itself when it is longer than 200 bytes or
    /// holds characters ids may not. Equal for every delivery of one input.
    pub fn key(&self) -> IdempotencyKey {
        let id = &self.delivery_id;
        let plain = id.len() <= MAX_PLAIN_DELIVERY
            && id.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'/' | b'+' | b'=')
            });
        let part = if plain {
            id.clone()
        } else {
            format!("sha256-{}", sha256_hex(id.as_bytes()))
        };
        // At most 9 + 1 + 200 (or 71) bytes of id characters: always a valid key.
        IdempotencyKey::new(format!("{}:{part}", self.source.slug()))
            .unwrap_or_else(|_| IdempotencyKey::from_static("intake:invalid"))
    }

    /// A run id derived from [`Intake::key`]: `{key}:{purpose}` (`purpose` such as `decide`).
    /// The same intake always gets the same run id, so a redelivery finds its run.
    pub fn run_id(&self, purpose: &str) -> Result<RunId, IntakeError> {
        RunId::new(format!("{}:{purpose}", self.key())).map_err(|e| IntakeError::InvalidField {
            channel: self.source,
            field: "purpose".into(),
            reason: e.to_string(),
        })
    }

    /// This intake as a workflow event named after its kind, with [`Intake::key`] as the event
    /// id (so a redelivery is a [`crate::Delivery::Duplicate`]) and `{source, kind, delivery_id,
    /// text, data, metadata}` as the payload.
    pub fn to_workflow_event(&self, correlation: impl Into<String>) -> WorkflowEvent {
        WorkflowEvent::new(
            self.key().as_str(),
            self.kind.clone(),
            correlation,
            json!({
                "source": self.source,
                "kind": self.kind,
                "delivery_id": self.delivery_id,
                "text": self.text,
                "data": self.data,
                "metadata": self.metadata,
            }),
            self.received_at,
        )
    }
}

/// Why an input could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// The input is larger than the normaliser accepts.
    #[error("{channel}: the input is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The source.
        channel: Source,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not what the source sends (not a message, not JSON, not an object).
    #[error("{channel}: {reason}")]
    Malformed {
        /// The source.
        channel: Source,
        /// What is wrong.
        reason: String,
    },
    /// A required field is missing.
    #[error("{channel}: `{field}` is missing")]
    MissingField {
        /// The source.
        channel: Source,
        /// The field.
        field: String,
    },
    /// A field has a value the source never sends.
    #[error("{channel}: `{field}` {reason}")]
    InvalidField {
        /// The source.
        channel: Source,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A webhook's signature does not verify.
    #[error("webhook signature: {0}")]
    Signature(#[from] SignatureError),
    /// A normaliser was configured wrongly (an empty webhook secret).
    #[error("invalid intake configuration: {0}")]
    InvalidConfig(String),
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("the `{header}` header is missing")]
    Missing {
        /// The header's name.
        header: String,
    },
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    #[error("the signature header is malformed: {0}")]
    Malformed(String),
    /// The signed timestamp is older than the tolerance (a replayed delivery).
    #[error("the signed timestamp is {age_secs} s old, over the tolerance of {tolerance_secs} s")]
    Expired {
        /// Its age.
        age_secs: i64,
        /// The tolerance.
        tolerance_secs: u64,
    },
    /// The signed timestamp is further in the future than the tolerance.
    #[error(
        "the signed timestamp is {ahead_secs} s ahead, over the tolerance of {tolerance_secs} s"
    )]
    Ahead {
        /// How far ahead.
        ahead_secs: i64,
        /// The tolerance.
        tolerance_secs: u64,
    },
    /// No signature in the header matches the timestamp and body under any secret.
    #[error("no signature matches the body")]
    Mismatch,
}

impl From<IntakeError> for agentkit_core::Error {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Signature(_) => agentkit_core::Error::Unauthenticated(e.to_string()),
            IntakeError::InvalidConfig(_) => agentkit_core::Error::InvalidConfig(e.to_string()),
            _ => agentkit_core::Error::InvalidInput(e.to_string()),
        }
    }
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `form.submitted`, `Form-Submitted`, `booking:created` → `form_submitted`, `booking_created`.
/// Letters and digits are kept (lower-cased), runs of anything else become one `_`; at most
/// 64 bytes.
pub(crate) fn normalise_kind(channel: Source, kind: &str) -> Result<String, IntakeError> {
    let mut out = String::with_capacity(kind.len());
    for c in kind.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        return Err(IntakeError::InvalidField {
            channel,
            field: "kind".into(),
            reason: format!("`{}` names no event", kind.escape_debug()),
        });
    }
    if out.len() > 64 {
        return Err(IntakeError::InvalidField {
            channel,
            field: "kind".into(),
            reason: format!("is {} bytes long; the limit is 64", out.len()),
        });
    }
    Ok(out)
}

/// A delivery id as given: trimmed, not empty, at most 1,000 bytes, no control characters.
pub(crate) fn check_delivery(channel: Source, id: String) -> Result<String, IntakeError> {
    let id = id.trim().to_owned();
    let bad = |reason: String| IntakeError::InvalidField {
        channel,
        field: "delivery id".into(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("is empty".into()));
    }
    if id.len() > 1000 {
        return Err(bad(format!(
            "is {} bytes long; the limit is 1000",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(bad("holds control characters".into()));
    }
    Ok(id)
}

/// Refuses input over `limit` bytes.
pub(crate) fn check_size(channel: Source, size: usize, limit: usize) -> Result<(), IntakeError> {
    if size > limit {
        return Err(IntakeError::TooLarge {
            channel,
            size,
            limit,
        });
    }
    Ok(())
}

/// Parses a JSON object (refusing other JSON values).
pub(crate) fn parse_object(
    channel: Source,
    bytes: &[u8],
) -> Result<serde_json::Map<String, Value>, IntakeError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(IntakeError::Malformed {
            channel,
            reason: format!("expected a JSON object, got {}", render::type_name(&other)),
        }),
        Err(e) => Err(IntakeError::Malformed {
            channel,
            reason: format!("not valid JSON: {e}"),
        }),
    }
}
