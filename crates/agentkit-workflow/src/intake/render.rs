//! Rendering intakes as text for a model: JSON flattened to `path: value` lines, bounded.

use std::fmt::Write as _;

use serde_json::Value;

/// The most `path: value` lines one rendering holds.
const MAX_LINES: usize = 200;

/// The longest single value rendered, in characters.
const MAX_VALUE: usize = 2_000;

/// `text` cut to at most `max` characters (at a character boundary), saying how much was cut.
pub(crate) fn bound(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((cut, _)) => {
            let rest = text[cut..].chars().count();
            let mut out = text[..cut].to_owned();
            let _ = write!(out, "\n[… {rest} more characters cut]");
            out
        }
    }
}

/// `null`, `a boolean`, ... for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as text (strings unquoted); containers as compact JSON.
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Appends `value` flattened: one `path: value` line per scalar (`booking.guest.email: ..`,
/// `items[0]: ..`), at most [`MAX_LINES`] lines in all, each value at most [`MAX_VALUE`]
/// characters.
pub(crate) fn flatten(value: &Value, prefix: &str, out: &mut String) {
    let mut lines = 0;
    flatten_into(value, prefix, out, &mut lines);
    if lines > MAX_LINES {
        let _ = writeln!(out, "[… {} more fields]", lines - MAX_LINES);
    }
}

fn flatten_into(value: &Value, prefix: &str, out: &mut String, lines: &mut usize) {
    match value {
        Value::Object(map) => {
            if map.is_empty() && !prefix.is_empty() {
                line(out, lines, prefix, "{}");
            }
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(v, &path, out, lines);
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                line(out, lines, prefix, "[]");
            }
            for (i, v) in items.iter().enumerate() {
                flatten_into(v, &format!("{prefix}[{i}]"), out, lines);
            }
        }
        scalar_value => line(out, lines, prefix, &scalar(scalar_value)),
    }
}

fn line(out: &mut String, lines: &mut usize, path: &str, value: &str) {
    *lines += 1;
    if *lines > MAX_LINES {
        return;
    }
    let value = bound(value.to_owned(), MAX_VALUE);
    let _ = writeln!(
        out,
        "{}: {value}",
        if path.is_empty() { "value" } else { path }
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flattening_and_bounds() {
        let mut out = String::new();
        flatten(
            &json!({"booking": {"date": "2025-03-14", "guests": ["a@x", "b@x"], "n": 2}}),
            "",
            &mut out,
        );
        assert_eq!(
            out,
            "booking.date: 2025-03-14\nbooking.guests[0]: a@x\nbooking.guests[1]: b@x\nbooking.n: 2\n"
        );
        assert_eq!(bound("héllo".into(), 10), "héllo");
        assert_eq!(bound("héllo".into(), 2), "hé\n[… 3 more characters cut]");
        let many: Vec<u32> = (0..300).collect();
        let mut out = String::new();
        flatten(&json!({ "xs": many }), "", &mut out);
        assert_eq!(out.lines().count(), MAX_LINES + 1);
        assert!(out.ends_with("[… 100 more fields]\n"));
    }
}
