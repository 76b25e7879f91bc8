//! JSON schemas from Rust types (schemars) and compiled validators (jsonschema).

use agentkit_core::{Error, Result};
use schemars::JsonSchema;
use serde_json::Value;

/// The JSON schema of `T` as a tool sees it: `schemars::schema_for!(T)` (draft 2020-12; doc
/// comments become `description`s, `#[serde(deny_unknown_fields)]` becomes
/// `"additionalProperties": false`) without the root `$schema`, `title` and `description`
/// keys: models do not need the first two, and the tool's own description says the third.
///
/// ```
/// use schemars::JsonSchema;
/// use serde_json::json;
///
/// /// Looks up a lead.
/// #[derive(JsonSchema)]
/// #[allow(dead_code)]
/// struct Lookup {
///     /// The lead's id.
///     lead_id: u64,
/// }
///
/// let schema = agentkit_tools::schema_for::<Lookup>();
/// assert_eq!(schema["properties"]["lead_id"]["description"], json!("The lead's id."));
/// assert_eq!(schema["required"], json!(["lead_id"]));
/// assert!(schema.get("$schema").is_none());
/// ```
pub fn schema_for<T: JsonSchema>() -> Value {
    let mut value = schemars::schema_for!(T).to_value();
    if let Some(map) = value.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
        map.remove("description");
    }
    value
}

/// A compiled JSON-schema validator: compile once (when a tool is built), validate every call.
///
/// ```
/// use agentkit_tools::ArgumentValidator;
/// use serde_json::json;
///
/// let v = ArgumentValidator::compile(&json!({
///     "type": "object",
///     "properties": {"name": {"type": "string"}, "budget": {"type": "number", "maximum": 50}},
///     "required": ["name", "budget"]
/// }))?;
/// assert!(v.is_valid(&json!({"name": "Ada", "budget": 10})));
/// let problems = v.problems(&json!({"name": 3, "budget": 80}), 10);
/// assert_eq!(problems.len(), 2);
/// assert!(problems[0].starts_with("/budget: ") || problems[0].starts_with("/name: "));
/// # Ok::<(), agentkit_core::Error>(())
/// ```
pub struct ArgumentValidator {
    validator: jsonschema::Validator,
}

impl ArgumentValidator {
    /// Compiles a schema; an invalid schema is [`Error::InvalidConfig`].
    pub fn compile(schema: &Value) -> Result<Self> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::InvalidConfig(format!("invalid JSON schema: {e}")))?;
        Ok(Self { validator })
    }

    /// The validator of `T`'s schema ([`schema_for`]).
    pub fn for_type<T: JsonSchema>() -> Result<Self> {
        Self::compile(&schema_for::<T>())
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

    /// `Ok` when valid; otherwise [`Error::InvalidInput`] listing every failing field (up to 10)
    /// under `what` (e.g. ``arguments of `crm.create_lead` ``).
    pub fn check(&self, instance: &Value, what: &str) -> Result<()> {
        let problems = self.problems(instance, 10);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "invalid {what}:\n{}",
                problems.join("\n")
            )))
        }
    }
}

impl std::fmt::Debug for ArgumentValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgumentValidator")
    }
}
