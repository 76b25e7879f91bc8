//! Knowledge for agentkit agents.

pub mod loaders;
