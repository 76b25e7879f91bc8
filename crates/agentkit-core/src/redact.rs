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
    let mut hasher = Sha256::new();
    write_canonical(value, &mut hasher);
    hex::encode(hasher.finalize())
}

fn write_canonical(value: &Value, h: &mut Sha256) {
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
                write_canonical(&map[k], h);
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                write_canonical(v, h);
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
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
}
