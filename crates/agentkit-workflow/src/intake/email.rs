//! Emails: RFC 5322 / MIME messages (parsed by `mail-parser`: encoded words, quoted-printable
//! and base64 bodies, multipart alternatives, HTML-only bodies turned to text, attachments).

use std::fmt::Write as _;

use agentkit_core::id::TenantId;
use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Value, json};

use super::{Intake, IntakeError, Source, check_delivery, check_size, render, sha256_hex};

/// The largest message accepted by default: 25 MiB (attachments included).
const DEFAULT_MAX_BYTES: usize = 25 * 1024 * 1024;

/// Normalises raw email messages (as an inbound mail webhook or an IMAP fetch delivers them).
///
/// - kind `email_received`; delivery id the `Message-ID` (without angle brackets), or the
///   SHA-256 of the raw message when it has none;
/// - data `{messageId, from: {name, address}, to, cc, replyTo, subject, date, inReplyTo,
///   references, body, attachments: [{name, contentType, size}]}` (attachment contents are not
///   copied);
/// - metadata `from`, `subject`, and `auto_submitted` / `in_reply_to` when present (an
///   auto-reply says `Auto-Submitted: auto-replied`);
/// - a message without a `From` address is [`IntakeError::MissingField`]; bytes that hold no
///   message at all are [`IntakeError::Malformed`].
#[derive(Debug, Clone)]
pub struct EmailIntake {
    max_bytes: usize,
    max_text: usize,
}

super::size_limits!(EmailIntake, "message", true);

impl EmailIntake {
    /// Up to 25 MiB per message, 16,000 characters of text.
    pub fn new() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_text: super::DEFAULT_MAX_TEXT,
        }
    }

    /// Normalises one raw message.
    pub fn normalise(
        &self,
        tenant: &TenantId,
        raw: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Intake, IntakeError> {
        let channel = Source::Email;
        check_size(channel, raw.len(), self.max_bytes)?;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(IntakeError::Malformed {
                channel,
                reason: "the message is empty".into(),
            });
        }
        let msg = MessageParser::default()
            .parse(raw)
            .ok_or_else(|| IntakeError::Malformed {
                channel,
                reason: "not an RFC 5322 message".into(),
            })?;
        if msg.headers().is_empty() {
            return Err(IntakeError::Malformed {
                channel,
                reason: "the message has no header section".into(),
            });
        }
        let from = msg
            .from()
            .and_then(Address::first)
            .and_then(|a| a.address().map(|addr| (a.name().map(str::to_owned), addr)))
            .filter(|(_, addr)| !addr.trim().is_empty())
            .ok_or_else(|| IntakeError::MissingField {
                channel,
                field: "From".into(),
            })?;
        let message_id = msg
            .message_id()
            .map(|id| {
                id.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim()
            })
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let delivery_id = check_delivery(
            channel,
            message_id
                .clone()
                .unwrap_or_else(|| format!("sha256:{}", sha256_hex(raw))),
        )?;
        let subject = msg.subject().map(str::trim).unwrap_or_default().to_owned();
        let date = msg
            .date()
            .filter(|d| d.is_valid())
            .map(mail_parser::DateTime::to_rfc3339);
        let body = msg
            .body_text(0)
            .map(|b| b.trim().to_owned())
            .unwrap_or_default();
        let attachments: Vec<Value> = msg
            .attachments()
            .map(|part| {
                json!({
                    "name": part.attachment_name(),
                    "contentType": part.content_type().map(|c| match c.subtype() {
                        Some(sub) => format!("{}/{sub}", c.ctype()),
                        None => c.ctype().to_owned(),
                    }),
                    "size": part.len(),
                })
            })
            .collect();
        let in_reply_to = text_list(msg.in_reply_to()).into_iter().next();
        let references = text_list(msg.references());
        let auto_submitted = msg
            .header_raw("Auto-Submitted")
            .map(str::trim)
            .filter(|v| !v.eq_ignore_ascii_case("no") && !v.is_empty())
            .map(str::to_owned);

        let (from_name, from_address) = (from.0, from.1.trim().to_owned());
        let to = addresses(msg.to());
        let cc = addresses(msg.cc());
        let reply_to = addresses(msg.reply_to());

        let mut text = String::from("Email received\n");
        let _ = writeln!(
            text,
            "From: {}",
            display_addr(from_name.as_deref(), &from_address)
        );
        if !to.is_empty() {
            let _ = writeln!(text, "To: {}", joined(&to));
        }
        if !cc.is_empty() {
            let _ = writeln!(text, "Cc: {}", joined(&cc));
        }
        let _ = writeln!(text, "Subject: {subject}");
        if let Some(d) = &date {
            let _ = writeln!(text, "Date: {d}");
        }
        if let Some(auto) = &auto_submitted {
            let _ = writeln!(text, "Auto-Submitted: {auto}");
        }
        if !attachments.is_empty() {
            let names: Vec<String> = attachments
                .iter()
                .map(|a| {
                    format!(
                        "{} ({}, {} bytes)",
                        a["name"].as_str().unwrap_or("unnamed"),
                        a["contentType"].as_str().unwrap_or("unknown type"),
                        a["size"]
                    )
                })
                .collect();
            let _ = writeln!(text, "Attachments: {}", names.join(", "));
        }
        text.push('\n');
        text.push_str(&body);

        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("from".to_owned(), from_address.clone());
        metadata.insert("subject".to_owned(), subject.clone());
        if let Some(auto) = &auto_submitted {
            metadata.insert("auto_submitted".to_owned(), auto.clone());
        }
        if let Some(r) = &in_reply_to {
            metadata.insert("in_reply_to".to_owned(), r.clone());
        }
        let data = json!({
            "messageId": message_id,
            "from": {"name": from_name, "address": from_address},
            "to": to,
            "cc": cc,
            "replyTo": reply_to,
            "subject": subject,
            "date": date,
            "inReplyTo": in_reply_to,
            "references": references,
            "body": render::bound(body, self.max_text),
            "attachments": attachments,
        });
        Ok(Intake {
            source: channel,
            kind: "email_received".into(),
            delivery_id,
            tenant: tenant.clone(),
            text: render::bound(text, self.max_text),
            data,
            metadata,
            received_at,
        })
    }
}

/// `[{name, address}]` of an address header (groups flattened).
fn addresses(a: Option<&Address<'_>>) -> Vec<Value> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                x.address()
                    .map(|addr| json!({"name": x.name(), "address": addr.trim()}))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The ids of a message-id list header (`In-Reply-To`, `References`).
fn text_list(h: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match h.as_text_list() {
        Some(list) => list.iter().map(|r| r.to_string()).collect(),
        None => h.as_text().map(|r| vec![r.to_owned()]).unwrap_or_default(),
    }
}

fn display_addr(name: Option<&str>, address: &str) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} <{address}>"),
        None => address.to_owned(),
    }
}

fn joined(list: &[Value]) -> String {
    list.iter()
        .map(|v| {
            display_addr(
                v["name"].as_str(),
                v["address"].as_str().unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
