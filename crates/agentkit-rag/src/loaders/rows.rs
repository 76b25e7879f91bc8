//! JSON and CSV: records rendered as `key: value` lines, one section (`row N`) per record,
//! records separated by a blank line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Extracted, Format, LoadError, SectionStart};

/// A top-level array gives one row per element, any other value one row; when the input is
/// not one JSON value, JSON Lines (one value per non-blank line) gives one row per line.
///
/// Keys keep their order in the document (rendering does not depend on serde_json's
/// `preserve_order` feature being on somewhere in the build).
pub(super) fn extract_json(text: &str) -> Result<Extracted, LoadError> {
    let rows = match serde_json::from_str::<Node>(text) {
        Ok(Node::Array(items)) => items,
        Ok(value) => vec![value],
        Err(whole) => json_lines(text, &whole)?,
    };
    let mut out = RowWriter::default();
    for (i, row) in rows.iter().enumerate() {
        out.row(i + 1, &render_row(row)?);
    }
    Ok(out.finish())
}

/// Each non-blank line as a JSON value. If the first one does not parse, the input was
/// not JSON Lines either and the error for the whole document is the one reported.
fn json_lines(text: &str, whole: &serde_json::Error) -> Result<Vec<Node>, LoadError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Node>(line) {
            Ok(value) => rows.push(value),
            Err(_) if rows.is_empty() => return Err(parse_error(Format::Json, whole)),
            Err(e) => {
                return Err(LoadError::Parse {
                    format: Format::Json,
                    message: format!("JSON Lines, line {}: {e}", i + 1),
                });
            }
        }
    }
    if rows.is_empty() {
        return Err(parse_error(Format::Json, whole));
    }
    Ok(rows)
}

/// An object as `key: value` lines, anything else as its value.
fn render_row(row: &Node) -> Result<String, LoadError> {
    match row {
        Node::Object(fields) => {
            let mut text = String::new();
            for (key, value) in fields {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(key);
                text.push_str(": ");
                text.push_str(&render_value(value)?);
            }
            Ok(text)
        }
        other => render_value(other),
    }
}

/// A string unquoted, anything else as compact JSON.
fn render_value(value: &Node) -> Result<String, LoadError> {
    match value {
        Node::String(s) => Ok(s.clone()),
        other => serde_json::to_string(other).map_err(|e| parse_error(Format::Json, &e)),
    }
}

/// The header row gives the keys (`column K` for a blank header or a cell past the
/// header's end); each record becomes `key: value` lines, blank cells left out. Fields
/// are trimmed; rows may be ragged.
pub(super) fn extract_csv(text: &str) -> Result<Extracted, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let keys: Vec<String> = reader
        .headers()
        .map_err(|e| parse_error(Format::Csv, &e))?
        .iter()
        .enumerate()
        .map(|(i, h)| column_key(i, h))
        .collect();
    let mut out = RowWriter::default();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| parse_error(Format::Csv, &e))?;
        let mut row = String::new();
        for (k, value) in record.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            if !row.is_empty() {
                row.push('\n');
            }
            match keys.get(k) {
                Some(key) => row.push_str(key),
                None => row.push_str(&column_key(k, "")),
            }
            row.push_str(": ");
            row.push_str(value);
        }
        out.row(i + 1, &row);
    }
    Ok(out.finish())
}

fn column_key(index: usize, header: &str) -> String {
    if header.is_empty() {
        format!("column {}", index + 1)
    } else {
        header.to_owned()
    }
}

fn parse_error(format: Format, e: &impl fmt::Display) -> LoadError {
    LoadError::Parse {
        format,
        message: e.to_string(),
    }
}

/// Joins rows with a blank line and records a `row N` section at each.
#[derive(Default)]
struct RowWriter {
    text: String,
    sections: Vec<SectionStart>,
}

impl RowWriter {
    /// Adds row `number` (1-based); a row without text is left out, its number kept free.
    fn row(&mut self, number: usize, row: &str) {
        if row.trim().is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.sections.push(SectionStart {
            offset: self.text.len(),
            path: format!("row {number}"),
        });
        self.text.push_str(row);
    }

    fn finish(self) -> Extracted {
        Extracted {
            text: self.text,
            pages: Vec::new(),
            sections: self.sections,
        }
    }
}

/// A JSON value whose objects keep their keys in document order (duplicates included).
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            fields.push((key, value));
        }
        Ok(Node::Object(fields))
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::String(s) => serializer.serialize_str(s),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}
