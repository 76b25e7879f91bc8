//! Worker events: a queue job finished, failed, stalled or reported progress (BullMQ's
//! `QueueEvents`: `{jobId, returnvalue}`, `{jobId, failedReason}`, `{jobId, data}`, each with
//! the Redis stream id of the event).

use std::fmt::Write as _;

use agentkit_core::id::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Intake, IntakeError, Source, check_delivery, check_size, normalise_kind, parse_object, render,
};

/// The largest payload accepted by default: 256 KiB.
const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// A job's state in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Finished with a result.
    Completed,
    /// Failed (an attempt or for good).
    Failed,
    /// Reported progress.
    Progress,
    /// Lost its worker.
    Stalled,
    /// Started.
    Active,
    /// Queued.
    Waiting,
    /// Scheduled for later.
    Delayed,
}

impl JobStatus {
    /// `completed`, `failed`, ... (case-insensitive; `succeeded` reads as completed).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "completed" | "complete" | "succeeded" | "success" => Self::Completed,
            "failed" | "failure" | "error" => Self::Failed,
            "progress" => Self::Progress,
            "stalled" => Self::Stalled,
            "active" | "started" => Self::Active,
            "waiting" | "queued" => Self::Waiting,
            "delayed" => Self::Delayed,
            _ => return None,
        })
    }

    /// `completed`, `failed`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Progress => "progress",
            Self::Stalled => "stalled",
            Self::Active => "active",
            Self::Waiting => "waiting",
            Self::Delayed => "delayed",
        }
    }
}

/// One job event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerEvent {
    /// The queue.
    pub queue: String,
    /// The job's id.
    pub job_id: String,
    /// The job's name, when sent.
    pub name: Option<String>,
    /// What happened.
    pub status: JobStatus,
    /// The attempt (1 for the first), when sent.
    pub attempt: Option<u64>,
    /// The job's result (completed) or progress data.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The event's own id (a Redis stream id), when sent.
    pub event_id: Option<String>,
}

impl WorkerEvent {
    /// Reads an event from JSON: `queue` (or `queueName`), `jobId` (or `job_id`, `id`; a string
    /// or a number), `status` (or `event`), `name`, `attempt` (or `attemptsMade`), `result` (or
    /// `returnvalue`, `data`), `error` (or `failedReason`), `eventId` (or `event_id`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, IntakeError> {
        let channel = Source::Worker;
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
        let required = |v: Option<String>, field: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| IntakeError::MissingField {
                    channel,
                    field: field.into(),
                })
        };
        let queue = required(text(take(&["queue", "queueName"]), "queue")?, "queue")?;
        let job_id = required(text(take(&["jobId", "job_id", "id"]), "jobId")?, "jobId")?;
        let status_text = required(text(take(&["status", "event"]), "status")?, "status")?;
        let status = JobStatus::parse(&status_text).ok_or_else(|| IntakeError::InvalidField {
            channel,
            field: "status".into(),
            reason: format!("`{}` is not a job status", status_text.escape_debug()),
        })?;
        let attempt = match take(&["attempt", "attemptsMade"]) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => {
                return Err(IntakeError::InvalidField {
                    channel,
                    field: "attempt".into(),
                    reason: format!("is {}, not a count", render::type_name(&other)),
                });
            }
        };
        Ok(Self {
            queue,
            job_id,
            name: text(take(&["name"]), "name")?,
            status,
            attempt,
            result: take(&["result", "returnvalue", "data"]).filter(|v| !v.is_null()),
            error: text(take(&["error", "failedReason"]), "error")?,
            event_id: text(take(&["eventId", "event_id"]), "eventId")?,
        })
    }
}

/// Normalises worker-queue job events.
///
/// - kind `job_{status}` (`job_completed`, `job_failed`);
/// - delivery id: the event's id, else `{queue}:{job}:{status}:{attempt}` (progress events
///   without an id add the hash of their data);
/// - data `{queue, jobId, name, status, attempt, result, error}`; text: the job, its status,
///   the error and the result flattened.
#[derive(Debug, Clone)]
pub struct WorkerIntake {
    max_bytes: usize,
    max_text: usize,
}

super::size_limits!(WorkerIntake, "payload", true);

impl WorkerIntake {
    /// Up to 256 KiB per payload, 16,000 characters of text.
    pub fn new() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_text: super::DEFAULT_MAX_TEXT,
        }
    }

    /// Normalises a JSON job event ([`WorkerEvent::from_json`]).
    pub fn normalise(
        &self,
        tenant: &TenantId,
        payload: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        check_size(Source::Worker, payload.len(), self.max_bytes)?;
        self.normalise_event(tenant, WorkerEvent::from_json(payload)?, received_at)
    }

    /// Normalises an event the host built itself.
    pub fn normalise_event(
        &self,
        tenant: &TenantId,
        event: WorkerEvent,
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        let channel = Source::Worker;
        let kind = normalise_kind(channel, &format!("job_{}", event.status.as_str()))?;
        let delivery = match &event.event_id {
            Some(id) if !id.trim().is_empty() => id.clone(),
            _ => {
                let mut id = format!(
                    "{}:{}:{}:{}",
                    event.queue,
                    event.job_id,
                    event.status.as_str(),
                    event.attempt.unwrap_or(0)
                );
                if event.status == JobStatus::Progress {
                    let data = event.result.clone().unwrap_or(Value::Null);
                    id.push(':');
                    id.push_str(&agentkit_core::redact::hash_json(&data)[..16]);
                }
                id
            }
        };
        let delivery_id = check_delivery(channel, delivery)?;
        let mut text = String::new();
        let _ = write!(
            text,
            "Worker event: job {} on queue {}",
            event.job_id, event.queue
        );
        if let Some(name) = &event.name {
            let _ = write!(text, " ({name})");
        }
        let _ = writeln!(text, " {}", event.status.as_str());
        if let Some(a) = event.attempt {
            let _ = writeln!(text, "attempt: {a}");
        }
        if let Some(e) = &event.error {
            let _ = writeln!(text, "error: {e}");
        }
        if let Some(r) = &event.result {
            render::flatten(r, "result", &mut text);
        }
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("queue".to_owned(), event.queue.clone());
        metadata.insert("job_id".to_owned(), event.job_id.clone());
        metadata.insert("status".to_owned(), event.status.as_str().to_owned());
        let data = json!({
            "queue": event.queue,
            "jobId": event.job_id,
            "name": event.name,
            "status": event.status,
            "attempt": event.attempt,
            "result": event.result,
            "error": event.error,
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
