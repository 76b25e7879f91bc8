//! Run with: `cargo bench --bench tool_validation --features tools`
//!
//! Tool argument validation per call: a JSON-schema validator compiled once per tool
//! (`jsonschema::validator_for` at build time, as the agent and `ToolRegistry` do) and then run
//! on every call (`is_valid` for the valid fast path, `iter_errors` to list every failing field),
//! against deserializing the same arguments into the typed struct with serde alone. Target:
//! at most 2 µs per validation.
#![allow(missing_docs, clippy::unwrap_used, dead_code)]

use std::hint::black_box;

use agentkit::tools::{CompiledSchema, schema_for};
use criterion::{Criterion, criterion_group, criterion_main};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Creates a lead in the CRM.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateLead {
    /// Full name.
    name: String,
    /// Email address.
    email: String,
    /// Expected deal size in dollars.
    #[schemars(range(min = 0, max = 1000000))]
    budget: u32,
    /// Where the lead came from.
    source: Source,
    /// Free-form tags.
    #[serde(default)]
    tags: Vec<String>,
    /// Company details.
    company: Option<Company>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Source {
    Website,
    Referral,
    Event,
}

#[derive(Deserialize, JsonSchema)]
struct Company {
    /// Company name.
    name: String,
    /// Employees.
    size: Option<u32>,
}

fn valid() -> Value {
    json!({
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "budget": 5000,
        "source": "referral",
        "tags": ["vip", "q3"],
        "company": {"name": "Analytical Engines", "size": 12}
    })
}

fn invalid() -> Value {
    json!({
        "name": 7,
        "budget": 2000000,
        "source": "billboard",
        "nickname": "Ada"
    })
}

fn bench(c: &mut Criterion) {
    let validator = CompiledSchema::compile(&schema_for::<CreateLead>()).unwrap();
    let ok = valid();
    let bad = invalid();
    assert!(validator.is_valid(&ok));
    assert_eq!(validator.problems(&bad, 10).len(), 5);

    let mut g = c.benchmark_group("tool_arguments");
    g.bench_function("schema_is_valid (cached validator, valid args)", |b| {
        b.iter(|| black_box(validator.is_valid(black_box(&ok))))
    });
    g.bench_function("schema_check (is_valid + iter_errors, valid args)", |b| {
        b.iter(|| black_box(validator.problems(black_box(&ok), 10)))
    });
    g.bench_function(
        "schema_check (iter_errors, invalid args, 5 problems)",
        |b| b.iter(|| black_box(validator.problems(black_box(&bad), 10))),
    );
    g.bench_function(
        "serde_json::from_value::<Args> (clone + deserialize)",
        |b| {
            b.iter(|| {
                black_box(serde_json::from_value::<CreateLead>(black_box(&ok).clone()).is_ok())
            })
        },
    );
    g.bench_function("Args::deserialize(&Value) (no clone)", |b| {
        b.iter(|| black_box(CreateLead::deserialize(black_box(&ok)).is_ok()))
    });
    g.bench_function(
        "schema_is_valid + from_value (what a direct call does)",
        |b| {
            b.iter(|| {
                let v = black_box(&ok);
                black_box(validator.is_valid(v) && CreateLead::deserialize(v).is_ok())
            })
        },
    );
    g.bench_function("compile validator (once per tool, for scale)", |b| {
        let schema = schema_for::<CreateLead>();
        b.iter(|| black_box(CompiledSchema::compile(black_box(&schema)).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
