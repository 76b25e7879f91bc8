//! HTTP failures as typed errors whose text never carries what the tool keeps secret: response
//! snippets go through the tool's redaction rules ([`Redactor`]), and transport errors quote
//! the origin only, never a URL that may hold redacted arguments.

use std::time::Duration;

use agentkit_core::Error;
use agentkit_core::redact::{MIN_SCRUBBED_LEN, REDACTED, redact, redacted_values};
use reqwest::StatusCode;
use serde_json::Value;

use super::outbound::OutboundRefused;

/// The longest response snippet an error quotes (bytes).
const SNIPPET_BYTES: usize = 300;

/// What an error about one call must not repeat: the fields the tool's redaction rules mask,
/// the values of the call's redacted arguments and of its secret headers.
pub(super) struct Redactor<'a> {
    rules: &'a [String],
    /// Longest first, so a secret that contains another is replaced whole.
    literals: Vec<String>,
}

impl<'a> Redactor<'a> {
    /// For a call with `arguments` under `rules`, sending `secrets` (resolved header values).
    pub(super) fn new(rules: &'a [String], arguments: &Value, secrets: Vec<String>) -> Self {
        // Short literals are not scrubbed from free text (replacing `1` would mangle
        // `HTTP 401`); a redacted field inside a JSON body is masked whatever its length.
        let mut literals = secrets;
        literals.extend(redacted_values(arguments, rules));
        literals.retain(|s| s.len() >= MIN_SCRUBBED_LEN);
        literals.sort_by_key(|s| std::cmp::Reverse(s.len()));
        literals.dedup();
        Self { rules, literals }
    }

    /// `text` with every literal secret replaced.
    pub(super) fn scrub(&self, mut text: String) -> String {
        for literal in &self.literals {
            if text.contains(literal.as_str()) {
                text = text.replace(literal.as_str(), REDACTED);
            }
        }
        text
    }

    /// The start of a response body for an error message.
    ///
    /// Without redaction rules, the text as it came (secrets scrubbed). With rules, a JSON body
    /// is redacted by them first; a body that is not JSON cannot be redacted field by field,
    /// so it is withheld when it names a redacted field (`api_token=...`).
    pub(super) fn snippet(&self, body: &[u8]) -> String {
        let text = if self.rules.is_empty() {
            String::from_utf8_lossy(body).into_owned()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(value) => redact(&value, self.rules).to_string(),
                Err(_) => {
                    let text = String::from_utf8_lossy(body);
                    let lower = text.to_lowercase();
                    let names_a_field = self
                        .rules
                        .iter()
                        .filter_map(|rule| rule.rsplit('/').next())
                        .filter(|field| !field.is_empty())
                        .any(|field| lower.contains(&field.to_lowercase()));
                    if names_a_field {
                        return "[body withheld: it names a redacted field and is not JSON]"
                            .to_string();
                    }
                    text.into_owned()
                }
            }
        };
        truncate(self.scrub(text).trim(), SNIPPET_BYTES)
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_string()
}

/// The typed error of a non-2xx answer, quoting the (redacted) start of its body.
pub(super) fn status_error(
    tool: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    redactor: &Redactor<'_>,
) -> Error {
    let message = format!("`{tool}`: HTTP {status}: {}", redactor.snippet(body));
    match status {
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
            message,
            retry_after,
        },
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Error::Timeout(message),
        StatusCode::SERVICE_UNAVAILABLE => Error::Overloaded {
            message,
            retry_after,
        },
        StatusCode::UNAUTHORIZED => Error::Unauthenticated(message),
        s if s.is_server_error() => Error::Server {
            status: Some(s.as_u16()),
            message,
        },
        _ => Error::Tool(message),
    }
}

/// A reqwest error as an agentkit error; an outbound-policy refusal from the resolver becomes
/// [`Error::PermissionDenied`].
///
/// The message names the URL's origin only (the path and query may hold arguments the tool
/// redacts), then the innermost cause (`Connection refused`).
pub(super) fn map_reqwest(tool: &str, e: &reqwest::Error, redactor: &Redactor<'_>) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = None;
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<OutboundRefused>() {
            return Error::PermissionDenied(refused.0.clone());
        }
        innermost = Some(err);
        source = err.source();
    }
    let origin = e
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "the server".to_string());
    // The innermost cause never is the reqwest error itself when it has one; when it has none,
    // its text would quote the whole URL, so it is described by its kind instead.
    let cause = match innermost {
        Some(inner) if !std::ptr::addr_eq(inner, e) => inner.to_string(),
        _ if e.is_timeout() => "timed out".to_string(),
        _ if e.is_body() || e.is_decode() => "the response body failed".to_string(),
        _ => "request failed".to_string(),
    };
    let cause = redactor.scrub(cause);
    if e.is_timeout() {
        return Error::Timeout(format!("`{tool}`: {origin}: {cause}"));
    }
    if e.is_connect() {
        return Error::Unavailable {
            message: format!("`{tool}`: could not connect to {origin}: {cause}"),
            source: None,
        };
    }
    Error::Unavailable {
        message: format!("`{tool}`: request to {origin} failed: {cause}"),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacted_argument_values_and_secrets_are_scrubbed() {
        let rules = vec!["ssn".to_string()];
        let r = Redactor::new(
            &rules,
            &json!({"ssn": "123-45-6789", "name": "Ada", "pin": 7}),
            vec!["Bearer sk-secret-1".into(), "sk-secret-1".into()],
        );
        assert_eq!(
            r.scrub("no record for 123-45-6789 (Ada) with sk-secret-1".into()),
            "no record for [REDACTED] (Ada) with [REDACTED]"
        );
        // Key order depends on serde_json's `preserve_order` (unified across a workspace).
        let shown: Value =
            serde_json::from_str(&r.snippet(br#"{"ssn": "123-45-6789", "error": "not found"}"#))
                .expect("the snippet of a JSON body is JSON");
        assert_eq!(shown, json!({"error": "not found", "ssn": "[REDACTED]"}));
        assert_eq!(r.snippet(b"plain failure"), "plain failure");
        assert!(r.snippet(b"bad SSN=1").contains("withheld"));
        let none = Redactor::new(&[], &json!({}), Vec::new());
        assert_eq!(none.snippet(&[b'x'; 400]).len(), SNIPPET_BYTES);
    }
}
