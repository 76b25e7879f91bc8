//! Durable workflows for agentkit: graphs of agent, tool, approval, wait-for-event, timer,
//! branch, parallel, sub-workflow and transform nodes, run step by step through a store so a
//! process can die at any point and the run finishes elsewhere with no completed step repeated.
//!
//! - [`WorkflowDefinition`]: the graph (serde JSON/TOML, versioned, immutable once published),
//!   checked by [`validate`] with every problem named by node.
//! - [`Workflows`]: publish, start (idempotent per trigger key), resume, deliver events, decide
//!   approvals, cancel, query runs and their step logs.
//! - [`Worker`]: claims runnable runs with a lease and a heartbeat, drives a bounded number at
//!   a time, shuts down gracefully.
//! - [`Scheduler`]: cron (in a time zone) and every-N-days triggers, one run per slot, with a
//!   catch-up policy for missed slots; events ([`Workflows::send_event`]) and host endpoints
//!   ([`Workflows::start`] with a trigger key) are the other triggers.
//! - [`WorkflowStore`]: the store contract ([`InMemoryWorkflowStore`] here; SQLite and
//!   Postgres in their crates), with one conformance suite (feature `testkit`).
//! - [`intake`]: emails, signed webhooks, database changes, worker events and API requests
//!   normalised into one [`Intake`] record with a delivery id to deduplicate on.
//!
//! Tool nodes and compensations run through agentkit's one governed executor (allow-list,
//! argument validation, policy, idempotency claim, metering, audit), so every guarantee of the
//! agent loop holds inside workflows; approval nodes and policy approvals are ordinary agentkit
//! approval requests, decided once.

pub mod clock;
pub mod definition;
mod engine;
pub mod expr;
pub mod intake;
pub mod record;
pub mod schedule;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod validate;
mod worker;

pub use definition::{
    Edge, FailureStrategy, Node, NodeKind, RetryPolicy, ToolInvocation, WorkflowDefinition,
};
pub use engine::{
    CHILD_POLL, DEFAULT_LEASE, DEFAULT_MAX_VISITS, StartRequest, Workflows, WorkflowsBuilder,
};
pub use intake::{Intake, IntakeError};
pub use record::{
    ApprovalPurpose, Created, Delivery, RunQuery, RunState, StepRecord, StepStatus, Wait,
    WorkflowEvent, WorkflowRun,
};
pub use schedule::{CatchUp, Schedule, ScheduledWorkflow, Scheduler};
pub use store::{InMemoryWorkflowStore, WorkflowStore};
pub use validate::{
    Catalog, CompiledWorkflow, MAX_NODE_ID_LEN, Problem, ValidationError, validate,
};
pub use worker::{Worker, WorkerConfig, WorkerStats};
