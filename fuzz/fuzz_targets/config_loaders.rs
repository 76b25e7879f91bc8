//! Arbitrary text as a policy document (TOML and JSON), an agent config, a price book and an
//! approval-queue config: each loads or fails with a typed error; never a panic.
#![no_main]

use std::sync::Arc;

use agentkit_core::config::AgentConfig;
use agentkit_core::store::InMemoryStore;
use agentkit_policy::approvals::QueueConfig;
use agentkit_policy::{PolicyEngine, PriceBook};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let store = Arc::new(InMemoryStore::new());
    let _ = PolicyEngine::from_toml(text, store.clone());
    let _ = PolicyEngine::from_json(text, store);
    let _ = AgentConfig::from_json(text);
    let _ = toml::from_str::<AgentConfig>(text);
    let _ = serde_json::from_str::<PriceBook>(text);
    let _ = toml::from_str::<QueueConfig>(text);
});
