//! Compiled JSON-schema validators (compiled once per tool or output schema, reused per call).

use serde_json::Value;

use crate::error::{Error, Result};

/// A compiled schema.
pub(crate) struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    /// Compiles `schema`; an invalid schema is a configuration error naming `what`.
    pub(crate) fn compile(what: &str, schema: &Value) -> Result<Self> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::InvalidConfig(format!("{what}: invalid JSON schema: {e}")))?;
        Ok(Self { validator })
    }

    /// `Ok` when `instance` is valid; otherwise one line per failing location, e.g.
    /// `/budget: 80 is greater than the maximum of 50`, at most `max` lines.
    pub(crate) fn check(&self, instance: &Value, max: usize) -> std::result::Result<(), String> {
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        let mut lines = Vec::new();
        for err in self.validator.iter_errors(instance).take(max) {
            let path = err.instance_path().to_string();
            let path = if path.is_empty() {
                "(root)".to_string()
            } else {
                path
            };
            lines.push(format!("{path}: {err}"));
        }
        Err(lines.join("\n"))
    }
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledSchema")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_failing_field() {
        let s = CompiledSchema::compile(
            "t",
            &json!({"type": "object", "properties": {"name": {"type": "string"}, "budget": {"type": "number", "maximum": 50}}, "required": ["name", "budget"], "additionalProperties": false}),
        )
        .unwrap();
        assert!(s.check(&json!({"name": "x", "budget": 10}), 10).is_ok());
        let err = s.check(&json!({"name": 3, "budget": 80}), 10).unwrap_err();
        assert!(err.contains("/name"), "{err}");
        assert!(err.contains("/budget"), "{err}");
        assert!(CompiledSchema::compile("t", &json!({"type": 12})).is_err());
    }
}
