//! agentkit agents on [Temporal](https://temporal.io): the same agent, tools, policy and
//! approvals, with Temporal as the durability engine instead of the stores' run tables.
//!
//! An agent run is the [`AgentWorkflow`]: each model call is the
//! [`AgentActivities::model_call`] activity and each tool call the
//! [`AgentActivities::tool_call`] activity, which runs the agent's governed executor
//! (allow-list, schema validation, policy, an idempotency key derived from the workflow id and
//! the step, metering, audit — all into the agentkit store the host already has). A call the
//! policy sends to a human stores its approval request in the agentkit store (so the reviewer
//! page and the approval queue see it) and the workflow waits — holding no worker — for the
//! [`AgentWorkflow::approval_decided`] signal; [`approve`] decides the request in the store
//! (exactly once, bound to the argument hash) and signals the workflow, whose
//! [`AgentActivities::approved_call`] then runs the decided arguments once. The run's history
//! lives in Temporal; usage, audit entries, tool executions and approvals stay in agentkit's
//! store, so invoices and the audit chain are the same as with the embedded engine.
//!
//! Temporal's Rust SDK needs Rust 1.92 and `protoc` at build time, so this crate is a workspace
//! of its own (the rest of agentkit keeps its MSRV); depend on it directly.
//!
//! ```no_run
//! # async fn demo(agent: agentkit_core::agent::Agent) -> Result<(), Box<dyn std::error::Error>> {
//! use agentkit_temporal::{AgentRunInput, TemporalAgents};
//!
//! let input = AgentRunInput::for_agent(&agent, "acme", "session-1", "Sell Spicy Chips");
//! let client = agentkit_temporal::connect("http://127.0.0.1:7233", "default").await?;
//! let mut worker = TemporalAgents::new().agent(agent).worker(&client, "agents")?;
//! let shutdown = worker.shutdown_handle();
//! let host = async {
//!     agentkit_temporal::start(&client, "agents", "run-1", input).await?;
//!     // A reviewer's decision, when the policy asked for one:
//!     // agentkit_temporal::approve(&client, store, &tenant, "run-1", &approval, &decision).await?;
//!     let out = agentkit_temporal::result(&client, "run-1").await?;
//!     shutdown();
//!     Ok::<_, agentkit_temporal::TemporalError>(out.reply)
//! };
//! // The worker's future is not `Send`: drive it on this task, beside the host's work.
//! let (worked, reply) = tokio::join!(worker.run(), host);
//! worked?;
//! println!("{}", reply?);
//! # Ok(()) }
//! ```

mod activities;
mod client;
pub mod graph;
mod types;
mod workflow;

pub use activities::AgentActivities;
pub use client::{
    TemporalAgents, TemporalError, approve, connect, decide, result, resume, send_event, start,
    start_workflow, workflow_result,
};
pub use graph::{GraphRunInput, GraphRunOutput, GraphStep, GraphWorkflow};
pub use types::{
    AgentRunInput, AgentRunOutput, CallSummary, FinishInput, ModelCallInput, ModelTurn,
    PrepareInput, RunScope, ToolCallInput, ToolStep,
};
pub use workflow::AgentWorkflow;
