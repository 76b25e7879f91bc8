//! API requests: a host's own endpoint (`POST /api/agent/process`) taking
//! `{"type": .., "content": .., "data": {..}, "metadata": {..}}` with an `Idempotency-Key`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use agentkit_core::id::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Intake, IntakeError, Source, check_delivery, check_size, normalise_kind, parse_object, render,
    sha256_hex,
};

/// The largest body accepted by default: 1 MiB.
const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// One API request's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiRequest {
    /// What it is (`intake_created`, `reschedule_requested`).
    pub kind: String,
    /// Free text for the model, if any.
    pub content: Option<String>,
    /// Structured data.
    pub data: Map<String, Value>,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
}

impl ApiRequest {
    /// Reads `{"type", "content"?, "data"?, "metadata"?}`; `data` must be an object and
    /// `metadata` an object of strings.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IntakeError> {
        let channel = Source::Api;
        let mut obj = parse_object(channel, bytes)?;
        let invalid = |field: &str, reason: String| IntakeError::InvalidField {
            channel,
            field: field.into(),
            reason,
        };
        let kind = match obj.remove("type").or_else(|| obj.remove("kind")) {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            None | Some(Value::Null) => {
                return Err(IntakeError::MissingField {
                    channel,
                    field: "type".into(),
                });
            }
            Some(other) => {
                return Err(invalid(
                    "type",
                    format!("is {}, not a string", render::type_name(&other)),
                ));
            }
        };
        let content = match obj.remove("content") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(invalid(
                    "content",
                    format!("is {}, not a string", render::type_name(&other)),
                ));
            }
        };
        let data = match obj.remove("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(invalid(
                    "data",
                    format!("is {}, not an object", render::type_name(&other)),
                ));
            }
        };
        let mut metadata = BTreeMap::new();
        match obj.remove("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            metadata.insert(k, s);
                        }
                        other => {
                            return Err(invalid(
                                "metadata",
                                format!("`{k}` is {}, not a string", render::type_name(&other)),
                            ));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(invalid(
                    "metadata",
                    format!("is {}, not an object", render::type_name(&other)),
                ));
            }
        }
        Ok(Self {
            kind,
            content,
            data,
            metadata,
        })
    }
}

/// Normalises API requests: kind the request's `type` (snake case); delivery id the
/// `Idempotency-Key` the caller sent, else `sha256:{hex}` of the body; text the content, then
/// the data flattened.
#[derive(Debug, Clone)]
pub struct ApiIntake {
    max_bytes: usize,
    max_text: usize,
}

super::size_limits!(ApiIntake, "body", true);

impl ApiIntake {
    /// Up to 1 MiB per body, 16,000 characters of text.
    pub fn new() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_text: super::DEFAULT_MAX_TEXT,
        }
    }

    /// Normalises a JSON body and its `Idempotency-Key` header.
    pub fn normalise(
        &self,
        tenant: &TenantId,
        body: &[u8],
        idempotency_key: Option<&str>,
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        let channel = Source::Api;
        check_size(channel, body.len(), self.max_bytes)?;
        let request = ApiRequest::from_json(body)?;
        let delivery = idempotency_key
            .filter(|k| !k.trim().is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sha256:{}", sha256_hex(body)));
        let delivery_id = check_delivery(channel, delivery)?;
        let kind = normalise_kind(channel, &request.kind)?;
        let mut text = String::new();
        let _ = writeln!(text, "API request {kind}");
        if let Some(c) = &request.content {
            let _ = writeln!(text, "{}", c.trim());
        }
        let data = Value::Object(request.data);
        render::flatten(&data, "data", &mut text);
        Ok(Intake {
            source: channel,
            kind,
            delivery_id,
            tenant: tenant.clone(),
            text: render::bound(text, self.max_text),
            data,
            metadata: request.metadata,
            received_at,
        })
    }
}
