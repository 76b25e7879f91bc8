//! A host program written from the docs alone, depending on the `agentkit` facade and nothing
//! else of agentkit's: the derive and attribute macros, a custom `LlmProvider` with the
//! re-exported `#[async_trait]`, the policy engine and the SQLite store all through
//! `agentkit::…` paths. The tests in `tests/` are the proof; this library is intentionally empty.
