//! Webhooks: JSON payloads (forms, bookings, automation callbacks) signed with HMAC-SHA256.
//!
//! The signature header is `t=<unix seconds>,v1=<hex HMAC-SHA256>` over `{t}.{raw body}` (the
//! timestamp text exactly as sent, a dot, then the body bytes), the scheme Stripe and others
//! use: the timestamp is signed too, so an old delivery cannot be replayed with a fresh one.
//! Several `v1` values may be given (a sender rotating secrets); the receiver may hold several
//! secrets too ([`WebhookIntake::also_accept`]). Signatures are compared in constant time
//! (`hmac`'s `verify_slice`).

use std::fmt::Write as _;
use std::time::Duration;

use agentkit_core::id::TenantId;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{
    Intake, IntakeError, SignatureError, Source, check_delivery, check_size, normalise_kind,
    parse_object, render, sha256_hex,
};

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now by default: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The largest body accepted by default: 1 MiB.
const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// The longest signature header read.
const MAX_HEADER: usize = 2048;

/// The most `v1` signatures one header may carry.
const MAX_SIGNATURES: usize = 8;

/// The shortest secret accepted, in bytes.
const MIN_SECRET: usize = 16;

/// One delivery as the host's HTTP handler received it: the raw body (exactly the bytes that
/// were signed) and the headers (names case-insensitive).
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    body: &'a [u8],
    headers: Vec<(String, String)>,
}

impl<'a> WebhookRequest<'a> {
    /// A request with `body` and no headers yet.
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        self.body
    }

    /// A header's value (the first of that name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The signature header value for `body` signed at `timestamp` (unix seconds) with `secret`:
/// what a sender (or a test) puts in the signature header.
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = mac(secret, &t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(mac))
}

fn mac(secret: &[u8], t: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Verifies a signature header against `body` under any of `secrets`: the header must parse,
/// its timestamp be within `tolerance` of `now` (either way), and one of its `v1` values match
/// (constant-time comparison).
pub fn verify_signature(
    secrets: &[&[u8]],
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    if header.len() > MAX_HEADER {
        return Err(SignatureError::Malformed(format!(
            "{} bytes long; the limit is {MAX_HEADER}",
            header.len()
        )));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed(format!(
                "`{}` is not key=value",
                part.trim().escape_debug()
            )));
        };
        match k.trim() {
            "t" => {
                let v = v.trim();
                if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed(
                        "the timestamp `t` is not unix seconds".into(),
                    ));
                }
                timestamp = Some(v);
            }
            "v1" => {
                let bytes = hex::decode(v.trim())
                    .map_err(|_| SignatureError::Malformed("a `v1` signature is not hex".into()))?;
                if bytes.len() != 32 {
                    return Err(SignatureError::Malformed(format!(
                        "a `v1` signature is {} bytes; HMAC-SHA256 gives 32",
                        bytes.len()
                    )));
                }
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed(format!(
                        "more than {MAX_SIGNATURES} signatures"
                    )));
                }
                signatures.push(bytes);
            }
            // Other schemes (a sender's future `v2`) are not ours to check.
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| SignatureError::Malformed("no timestamp `t`".into()))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no `v1` signature".into()));
    }
    let signed: i64 = t
        .parse()
        .map_err(|_| SignatureError::Malformed("the timestamp `t` is out of range".into()))?;
    let tolerance_secs = tolerance.as_secs();
    let limit = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    let age = now.timestamp().saturating_sub(signed);
    if age > limit {
        return Err(SignatureError::Expired {
            age_secs: age,
            tolerance_secs,
        });
    }
    if -age > limit {
        return Err(SignatureError::Ahead {
            ahead_secs: -age,
            tolerance_secs,
        });
    }
    let matched = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|sig| mac(secret, t, body).verify_slice(sig).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies and normalises signed JSON webhooks.
///
/// - The body size is checked, then the signature (before the body is parsed), then the body
///   must be a JSON object.
/// - kind: the event header (default `X-Event-Type`), else the body's `event` or `type`, else
///   `webhook_received`; normalised to snake case (`form.submitted` → `form_submitted`).
/// - delivery id: the delivery header (default `X-Delivery-Id`), else the body's `id`,
///   `deliveryId` or `delivery_id`, else `sha256:{hex}` of the body (a retried delivery carries
///   the same bytes).
/// - data: the body; text: `Webhook {kind}` and the body flattened to `path: value` lines.
#[derive(Clone)]
pub struct WebhookIntake {
    secrets: Vec<Vec<u8>>,
    tolerance: Duration,
    signature_header: String,
    delivery_header: String,
    event_header: String,
    max_bytes: usize,
    max_text: usize,
}

impl std::fmt::Debug for WebhookIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookIntake")
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .field("tolerance", &self.tolerance)
            .field("signature_header", &self.signature_header)
            .field("delivery_header", &self.delivery_header)
            .field("event_header", &self.event_header)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

super::size_limits!(WebhookIntake, "body", false);

impl WebhookIntake {
    /// Deliveries signed with `secret` (at least 16 bytes), within [`DEFAULT_TOLERANCE`], up to
    /// 1 MiB, with the headers `X-Signature`, `X-Delivery-Id` and `X-Event-Type`.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, IntakeError> {
        Ok(Self {
            secrets: vec![check_secret(secret.as_ref())?],
            tolerance: DEFAULT_TOLERANCE,
            signature_header: "x-signature".into(),
            delivery_header: "x-delivery-id".into(),
            event_header: "x-event-type".into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_text: super::DEFAULT_MAX_TEXT,
        })
    }

    /// Accepts deliveries signed with another secret too (while a sender rotates).
    pub fn also_accept(mut self, secret: impl AsRef<[u8]>) -> Result<Self, IntakeError> {
        self.secrets.push(check_secret(secret.as_ref())?);
        Ok(self)
    }

    /// How far a signed timestamp may be from now (older: [`SignatureError::Expired`]).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The signature header's name.
    pub fn signature_header(mut self, name: impl Into<String>) -> Self {
        self.signature_header = name.into();
        self
    }

    /// The delivery-id header's name.
    pub fn delivery_header(mut self, name: impl Into<String>) -> Self {
        self.delivery_header = name.into();
        self
    }

    /// The event-type header's name.
    pub fn event_header(mut self, name: impl Into<String>) -> Self {
        self.event_header = name.into();
        self
    }

    /// Checks the request's signature only.
    pub fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let header =
            request
                .get(&self.signature_header)
                .ok_or_else(|| SignatureError::Missing {
                    header: self.signature_header.clone(),
                })?;
        let secrets: Vec<&[u8]> = self.secrets.iter().map(Vec::as_slice).collect();
        verify_signature(&secrets, header, request.body, now, self.tolerance)
    }

    /// Verifies and normalises one delivery received `now`.
    pub fn normalise(
        &self,
        tenant: &TenantId,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        let channel = Source::Webhook;
        check_size(channel, request.body.len(), self.max_bytes)?;
        self.verify(request, now)?;
        let body = parse_object(channel, request.body)?;
        let text_field = |names: &[&str]| {
            names.iter().find_map(|n| match body.get(*n) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                Some(Value::Number(x)) => Some(x.to_string()),
                _ => None,
            })
        };
        let event = request
            .get(&self.event_header)
            .filter(|e| !e.trim().is_empty())
            .map(str::to_owned)
            .or_else(|| text_field(&["event", "type"]))
            .unwrap_or_else(|| "webhook_received".into());
        let kind = normalise_kind(channel, &event)?;
        let delivery = request
            .get(&self.delivery_header)
            .filter(|d| !d.trim().is_empty())
            .map(str::to_owned)
            .or_else(|| text_field(&["id", "deliveryId", "delivery_id"]))
            .unwrap_or_else(|| format!("sha256:{}", sha256_hex(request.body)));
        let delivery_id = check_delivery(channel, delivery)?;
        let data = Value::Object(body);
        let mut text = String::new();
        let _ = writeln!(text, "Webhook {kind}");
        render::flatten(&data, "", &mut text);
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("event".to_owned(), event);
        if let Some(ct) = request.get("content-type") {
            metadata.insert("content_type".to_owned(), ct.to_owned());
        }
        Ok(Intake {
            source: channel,
            kind,
            delivery_id,
            tenant: tenant.clone(),
            text: render::bound(text, self.max_text),
            data,
            metadata,
            received_at: now,
        })
    }
}

fn check_secret(secret: &[u8]) -> Result<Vec<u8>, IntakeError> {
    if secret.len() < MIN_SECRET {
        return Err(IntakeError::InvalidConfig(format!(
            "a webhook secret must be at least {MIN_SECRET} bytes (got {})",
            secret.len()
        )));
    }
    Ok(secret.to_vec())
}
