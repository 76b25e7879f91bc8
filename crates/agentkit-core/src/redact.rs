//! Redaction of sensitive fields and stable hashing of arguments.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The text that replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Returns a copy of `value` with every field named in `rules` replaced by [`REDACTED`].
///
/// A rule is either a JSON pointer (`/card/number`) or a bare field name, which is masked at any
/// depth (`password` masks `{"password": ..}` and `{"user": {"password": ..}}`).
pub fn redact(value: &Value, rules: &[String]) -> Value {
    if rules.is_empty() {
        return value.clone();
    }
    let mut out = value.clone();
    for rule in rules {
        if rule.starts_with('/') {
            if let Some(v) = out.pointer_mut(rule) {
                *v = Value::String(REDACTED.into());
            }
        } else {
            mask_key(&mut out, rule);
        }
    }
    out
}

/// Values shorter than this are not scrubbed from free text: replacing `7` would mangle
/// `HTTP 407` and every other number in the message.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// The textual forms of every value of `arguments` that [`redact`] would mask under `rules`
/// (a string raw and as JSON, a number, a container as JSON and leaf by leaf), at least
/// [`MIN_SCRUBBED_LEN`] bytes long, longest first and without repeats: what a message quoting
/// the arguments must not repeat.
pub fn redacted_values(arguments: &Value, rules: &[String]) -> Vec<String> {
    let mut secrets = Vec::new();
    for rule in rules {
        if rule.starts_with('/') {
            if let Some(v) = arguments.pointer(rule) {
                collect_text_forms(v, &mut secrets);
            }
        } else {
            collect_key(arguments, rule, &mut secrets);
        }
    }
    secrets.retain(|s| s.len() >= MIN_SCRUBBED_LEN);
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// Replaces, in `text`, every value of `arguments` that [`redact`] would mask by [`REDACTED`]
/// (see [`redacted_values`]): a policy's reason or a tool's error message that quotes an
/// argument must not carry a value the tool's redaction rules keep out of the records.
///
/// ```
/// use agentkit_core::redact::scrub_text;
/// use serde_json::json;
///
/// let args = json!({"card": "4111111111111111", "amount": 5});
/// let reason = "card 4111111111111111 is blocked for amount 5";
/// assert_eq!(
///     scrub_text(reason, &args, &["card".to_string()]),
///     "card [REDACTED] is blocked for amount 5"
/// );
/// // A value too short to scrub safely is left alone rather than mangle the message.
/// let pin = json!({"pin": 7});
/// assert_eq!(scrub_text("HTTP 407 for pin 7", &pin, &["pin".to_string()]), "HTTP 407 for pin 7");
/// ```
pub fn scrub_text(text: &str, arguments: &Value, rules: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in redacted_values(arguments, rules) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

fn collect_key(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    collect_text_forms(v, out);
                } else {
                    collect_key(v, key, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_key(v, key, out)),
        _ => {}
    }
}

/// How a masked value may appear in a message: its JSON text, and for a string its raw text;
/// for containers, each leaf too.
fn collect_text_forms(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            out.push(s.clone());
            out.push(value.to_string());
        }
        Value::Object(map) => {
            out.push(value.to_string());
            map.values().for_each(|v| collect_text_forms(v, out));
        }
        Value::Array(items) => {
            out.push(value.to_string());
            items.iter().for_each(|v| collect_text_forms(v, out));
        }
        other => out.push(other.to_string()),
    }
}

fn mask_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == key {
                    *v = Value::String(REDACTED.into());
                } else {
                    mask_key(v, key);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_key(v, key)),
        _ => {}
    }
}

/// SHA-256 (hex) of the canonical JSON form of `value` (object keys sorted), so equal arguments
/// always hash equal whatever order the model wrote them in.
pub fn hash_json(value: &Value) -> String {
    let mut h = CanonicalHasher::new();
    h.value(value);
    h.finish()
}

/// [`hash_json`] of the JSON array `[name, arguments]` (the fingerprint of a tool call), without
/// building that array: the bytes hashed, and so the hash, are the same.
pub(crate) fn hash_call(name: &str, arguments: &Value) -> String {
    let mut h = CanonicalHasher::new();
    h.raw(b"[");
    h.str(name);
    h.raw(b",");
    h.value(arguments);
    h.raw(b"]");
    h.finish()
}

/// Streams canonical JSON (compact, object keys sorted by bytes, strings escaped as
/// `serde_json` escapes them) into SHA-256 without building an intermediate value or string.
pub(crate) struct CanonicalHasher(Sha256);

/// `io::Write` into the hasher, for `serde_json`'s scalar encoders. Never fails.
struct Sink<'a>(&'a mut Sha256);

impl std::io::Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CanonicalHasher {
    pub(crate) fn new() -> Self {
        Self(Sha256::new())
    }

    /// Bytes as given (structure: braces, keys known to need no escaping, commas).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// A JSON string.
    pub(crate) fn str(&mut self, s: &str) {
        // serde_json escapes exactly `"`, `\` and control characters below 0x20.
        if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            self.serialized(s);
        } else {
            self.0.update(b"\"");
            self.0.update(s.as_bytes());
            self.0.update(b"\"");
        }
    }

    /// A JSON string or `null`.
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.0.update(b"null"),
        }
    }

    /// A value whose compact `serde_json` form is already canonical (a scalar, a timestamp).
    pub(crate) fn serialized<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        // The sink never fails and these values always serialize.
        let _ = serde_json::to_writer(Sink(&mut self.0), value);
    }

    /// A JSON value in canonical form.
    pub(crate) fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.0.update(b"null"),
            Value::Bool(true) => self.0.update(b"true"),
            Value::Bool(false) => self.0.update(b"false"),
            Value::Number(n) => self.serialized(n),
            Value::String(s) => self.str(s),
            Value::Array(items) => {
                self.0.update(b"[");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.0.update(b",");
                    }
                    self.value(v);
                }
                self.0.update(b"]");
            }
            Value::Object(map) => {
                self.0.update(b"{");
                // Maps are usually sorted already (serde_json's default map is a BTreeMap);
                // sort only when they are not (the `preserve_order` feature).
                if map.keys().is_sorted() {
                    for (i, (k, v)) in map.iter().enumerate() {
                        self.member(i, k, v);
                    }
                } else {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for (i, (k, v)) in entries.into_iter().enumerate() {
                        self.member(i, k, v);
                    }
                }
                self.0.update(b"}");
            }
        }
    }

    fn member(&mut self, i: usize, key: &str, value: &Value) {
        if i > 0 {
            self.0.update(b",");
        }
        self.str(key);
        self.0.update(b":");
        self.value(value);
    }

    /// The lowercase hex digest.
    pub(crate) fn finish(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.0.finalize();
        let mut out = String::with_capacity(digest.len() * 2);
        for b in digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_by_name_at_any_depth_and_by_pointer() {
        let v = json!({"user": {"password": "hunter2", "name": "a"}, "card": {"number": "4111"}, "password": "x"});
        let r = redact(&v, &["password".into(), "/card/number".into()]);
        assert_eq!(r["user"]["password"], REDACTED);
        assert_eq!(r["password"], REDACTED);
        assert_eq!(r["card"]["number"], REDACTED);
        assert_eq!(r["user"]["name"], "a");
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"x":[1,2],"y":"z"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"y":"z","x":[1,2]},"a":1}"#).unwrap();
        assert_eq!(hash_json(&a), hash_json(&b));
        assert_ne!(hash_json(&a), hash_json(&json!({"a": 2})));
    }

    /// The implementation before streaming, kept as the reference the hashes must match.
    fn reference_hash(value: &Value) -> String {
        fn write(value: &Value, h: &mut Sha256) {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    h.update(b"{");
                    for (i, k) in keys.into_iter().enumerate() {
                        if i > 0 {
                            h.update(b",");
                        }
                        h.update(Value::String(k.clone()).to_string().as_bytes());
                        h.update(b":");
                        write(&map[k], h);
                    }
                    h.update(b"}");
                }
                Value::Array(items) => {
                    h.update(b"[");
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            h.update(b",");
                        }
                        write(v, h);
                    }
                    h.update(b"]");
                }
                other => h.update(other.to_string().as_bytes()),
            }
        }
        let mut h = Sha256::new();
        write(value, &mut h);
        hex::encode(h.finalize())
    }

    #[test]
    fn streaming_hash_matches_the_reference_encoding() {
        let values = [
            json!(null),
            json!(true),
            json!(-12),
            json!(18446744073709551615u64),
            json!(1.5e-7),
            json!("plain"),
            json!("quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} é 🦀 </script>"),
            json!({"b": [1, {"z": null, "a": "x"}], "a": {}, "é": [], "\u{1}k": "v", "": 0}),
            json!([[], {}, [null, false], {"k\"ey": {"n": -0.0}}]),
        ];
        for v in &values {
            assert_eq!(hash_json(v), reference_hash(v), "{v}");
        }
        let args = json!({"lead_id": 42, "q": "a\"b"});
        assert_eq!(
            hash_call("crm.lookup_lead", &args),
            reference_hash(&json!(["crm.lookup_lead", args]))
        );
        assert_eq!(
            hash_call("t\u{2}\"", &json!([])),
            reference_hash(&json!(["t\u{2}\"", []]))
        );
    }
}
