//! Arbitrary bytes as tool arguments (and as a schema): parsing and validation give a value or
//! a typed error; never a panic.
#![no_main]

use agentkit_core::validation::CompiledSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|input: (&[u8], &[u8])| {
    let (arguments, schema) = input;
    let fixed = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40, "pattern": "^[a-z ]+$"},
            "budget": {"type": "number", "minimum": 1, "maximum": 50},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}
        },
        "required": ["name", "budget"],
        "additionalProperties": false
    }))
    .expect("the fixed schema compiles");
    if let Ok(value) = serde_json::from_slice::<Value>(arguments) {
        let _ = fixed.check(&value, "arguments");
        let _ = fixed.check_lines(&value, 10);
        if let Ok(schema) = serde_json::from_slice::<Value>(schema)
            && let Ok(compiled) = CompiledSchema::compile(&schema)
        {
            let _ = compiled.check(&value, "arguments");
        }
    }
});
