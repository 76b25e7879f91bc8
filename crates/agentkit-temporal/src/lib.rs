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
//! [`AgentWorkflow::approval_decided`] signal; [`decide`] decides the request in the store
//! (exactly once, bound to the argument hash) and signals the workflow, whose
//! [`AgentActivities::approved_call`] then runs the decided arguments once. The run's history
//! lives in Temporal; usage, audit entries, tool executions and approvals stay in agentkit's
//! store, so invoices and the audit chain are the same as with the embedded engine.
//!
//! The agent's context sources and retriever are asked once per run
//! ([`AgentActivities::prepare_run`]), as in the agent's own loop.
//!
//! # Workflow definitions
//!
//! The same workflow definitions (JSON/TOML) the embedded `agentkit_workflow` engine runs run
//! as [`GraphWorkflow`]s: register them with [`TemporalAgents::workflow`] beside a
//! [`TemporalAgents::workflow_executor`] for their tool nodes, start one with
//! [`start_workflow`]. Inside, each branch of the graph is a future (parallel branches run at
//! once and meet at their join); templates, conditions and routing are the embedded engine's
//! own (`CompiledWorkflow::next_node`), so a definition goes the same way on both.
//!
//! | node | on Temporal |
//! |---|---|
//! | `tool` | the [`graph::GraphActivities::tool_node`] activity: the governed executor under the key `temporal:<run>:<node>:<visit>:<attempt>`; a policy approval waits for its signal, then runs the decided arguments; a call left in doubt waits for [`resume`] (after `ToolExecutor::resolve_in_doubt`) or is retried itself when the tool is idempotent |
//! | `agent` | a child [`AgentWorkflow`] (id `<run>.<node>.<visit>.<attempt>`) |
//! | `sub_workflow` | a child [`GraphWorkflow`] |
//! | `approval` | a request in the agentkit store, decided with [`decide`] (store, then signal) |
//! | `wait_event` | the [`GraphWorkflow::event`] signal, [`send_event`]: matched by name and correlation key, kept when it comes early, deduplicated by id; `timeout_ms` a durable timer |
//! | `timer` | a durable timer |
//! | `branch`, `transform`, `parallel`, `join` | the workflow itself |
//! | `snapshot` | a hash-chained audit entry (once) |
//!
//! Retries are durable timers with the node's backoff, each attempt its own key; a node that
//! fails past them applies its strategy: ABORT fails the run, WAIT_FOR_HUMAN opens a request
//! (approve: retry; approve with `{"action": "skip"}`: skip; reject: abort), ROLLBACK runs the
//! completed nodes' compensations in reverse order as governed activities. The step log is
//! the run's output ([`GraphRunOutput::steps`]) and its `steps` query; the agentkit run
//! record (`wf-<run>` session) is completed or failed with the reason.
//!
//! Unlike the embedded engine, an event is delivered to a run by its workflow id (Temporal
//! signals address one run); the run matches it to its waiting node by correlation key.
//! Runs of different tenant tiers can go to queues of their own: [`TaskQueues`].
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
//!     // agentkit_temporal::decide(&client, store, &tenant, &approval, &decision).await?;
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
mod queues;
mod types;
mod workflow;

pub use activities::AgentActivities;
pub use client::{
    TemporalAgents, TemporalError, connect, decide, result, resume, send_event, start,
    start_workflow, workflow_result,
};
pub use graph::{GraphRunInput, GraphRunOutput, GraphStep, GraphWorkflow};
pub use queues::TaskQueues;
pub use types::{
    AgentRunInput, AgentRunOutput, CallSummary, FinishInput, ModelCallInput, ModelTurn,
    PrepareInput, RunScope, ToolCallInput, ToolStep,
};
pub use workflow::AgentWorkflow;
