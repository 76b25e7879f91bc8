//! JSON schemas from Rust types (schemars) and compiled validators (jsonschema).

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

/// The one validator type of agentkit, re-exported here for tool authors.
pub use agentkit_core::validation::CompiledSchema;
