//! [`CompiledSchema`]: the one JSON-schema validator of agentkit, compiled once per tool or
//! output schema and reused for every call.

use serde_json::Value;

use crate::error::{Error, Result};

/// A compiled JSON schema (draft detected from `$schema`, 2020-12 by default).
///
/// The agent, the [governed executor](crate::exec::ToolExecutor), the tool registry and typed
/// tools all validate with this type, so a tool's arguments are judged the same way on every
/// path.
///
/// ```
/// use agentkit_core::validation::CompiledSchema;
/// use serde_json::json;
///
/// let v = CompiledSchema::compile(&json!({
///     "type": "object",
///     "properties": {"name": {"type": "string"}, "budget": {"type": "number", "maximum": 50}},
///     "required": ["name", "budget"]
/// }))?;
/// assert!(v.is_valid(&json!({"name": "Ada", "budget": 10})));
/// let problems = v.problems(&json!({"name": 3, "budget": 80}), 10);
/// assert_eq!(problems.len(), 2);
/// assert!(problems.iter().any(|p| p.starts_with("/budget: ")));
/// let err = v.check(&json!({"name": "Ada"}), "arguments of `ads.create`").unwrap_err();
/// assert!(err.to_string().contains("budget"));
/// # Ok::<(), agentkit_core::Error>(())
/// ```
pub struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl CompiledSchema {
    /// Compiles `schema`; an invalid schema is [`Error::InvalidConfig`].
    pub fn compile(schema: &Value) -> Result<Self> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::InvalidConfig(format!("invalid JSON schema: {e}")))?;
        Ok(Self { validator })
    }

    /// Compiles `schema`; the error names `what` (``tool `crm.x` argument schema``).
    pub fn compile_named(what: &str, schema: &Value) -> Result<Self> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::InvalidConfig(format!("{what}: invalid JSON schema: {e}")))?;
        Ok(Self { validator })
    }

    /// The validator of `T`'s JSON schema (schemars).
    pub fn for_type<T: schemars::JsonSchema>() -> Result<Self> {
        let schema = serde_json::to_value(schemars::schema_for!(T))?;
        Self::compile(&schema)
    }

    /// Whether `instance` is valid (the fast path: no error is built).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// One line per failing location (at most `max`), e.g. `/budget: 80 is greater than the
    /// maximum of 50`; empty when `instance` is valid.
    pub fn problems(&self, instance: &Value, max: usize) -> Vec<String> {
        if self.validator.is_valid(instance) {
            return Vec::new();
        }
        self.validator
            .iter_errors(instance)
            .take(max)
            .map(|err| {
                let path = err.instance_path().to_string();
                let path = if path.is_empty() {
                    "(root)".to_string()
                } else {
                    path
                };
                format!("{path}: {err}")
            })
            .collect()
    }

    /// `Ok` when valid; otherwise [`Error::InvalidInput`] listing every failing location (up to
    /// 10) under `what` (e.g. ``arguments of `crm.create_lead` ``).
    pub fn check(&self, instance: &Value, what: &str) -> Result<()> {
        match self.check_lines(instance, 10) {
            Ok(()) => Ok(()),
            Err(lines) => Err(Error::InvalidInput(format!("invalid {what}:\n{lines}"))),
        }
    }

    /// `Ok` when valid; otherwise the [`problems`](Self::problems) joined by newlines.
    pub fn check_lines(&self, instance: &Value, max: usize) -> std::result::Result<(), String> {
        if self.validator.is_valid(instance) {
            Ok(())
        } else {
            Err(self.problems(instance, max).join("\n"))
        }
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
        let s = CompiledSchema::compile_named(
            "t",
            &json!({"type": "object", "properties": {"name": {"type": "string"}, "budget": {"type": "number", "maximum": 50}}, "required": ["name", "budget"], "additionalProperties": false}),
        )
        .unwrap();
        assert!(
            s.check_lines(&json!({"name": "x", "budget": 10}), 10)
                .is_ok()
        );
        let err = s
            .check_lines(&json!({"name": 3, "budget": 80}), 10)
            .unwrap_err();
        assert!(err.contains("/name"), "{err}");
        assert!(err.contains("/budget"), "{err}");
        let e = CompiledSchema::compile_named("tool `x`", &json!({"type": 12})).unwrap_err();
        assert!(e.to_string().contains("tool `x`"), "{e}");
    }
}
