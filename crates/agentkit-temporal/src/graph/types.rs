//! What a workflow-definition run and its activities exchange (serialised into Temporal's
//! history).

use std::collections::BTreeMap;

use agentkit_core::policy::Priority;
use agentkit_core::store::ApprovalStatus;
use agentkit_workflow::{StepStatus, WorkflowDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::types::{AgentRunInput, RunScope};

/// A run of a workflow definition registered with the worker
/// ([`crate::TemporalAgents::workflow`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GraphRunInput {
    /// The tenant the run belongs to.
    pub tenant: String,
    /// The workflow id.
    pub workflow: String,
    /// Its version; the latest the worker has when `None` (resolved once, when the run starts,
    /// and kept in the run's history).
    pub version: Option<u32>,
    /// The input: a JSON object whose keys become context keys.
    pub input: Value,
    /// Parameter overrides (`params.<name>`).
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl GraphRunInput {
    /// A run of the latest version of `workflow` for `tenant` with `input`.
    pub fn new(tenant: impl Into<String>, workflow: impl Into<String>, input: Value) -> Self {
        Self {
            tenant: tenant.into(),
            workflow: workflow.into(),
            version: None,
            input,
            params: Map::new(),
        }
    }

    /// Pins a version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// Overrides parameter `name`.
    pub fn param(mut self, name: impl Into<String>, value: Value) -> Self {
        self.params.insert(name.into(), value);
        self
    }
}

/// One step of a run, as the embedded engine's step log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphStep {
    /// Its position in the run (1, 2, ...).
    pub seq: u64,
    /// The node.
    pub node: String,
    /// The node's kind (`tool`, `wait_event`, ...).
    pub kind: String,
    /// The attempt (a retried node's later attempts count up).
    pub attempt: u32,
    /// How often the run had entered the node.
    pub visit: u32,
    /// How it ended.
    pub status: StepStatus,
    /// What it was given (redacted tool arguments, an event's correlation, ...).
    pub input: Value,
    /// What it produced.
    pub output: Value,
    /// Why it failed.
    pub error: Option<String>,
}

/// A finished run: its final context and its step log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphRunOutput {
    /// The run id (the workflow id).
    pub run: String,
    /// The context at the end: the input, parameters and every node's output.
    pub context: Value,
    /// The steps, in order.
    pub steps: Vec<GraphStep>,
}

/// The `load` activity's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadInput {
    /// The workflow id.
    pub workflow: String,
    /// Its version, or the latest.
    pub version: Option<u32>,
}

/// The `load` activity's output: the definition (kept in the run's history, so a replay
/// runs the same graph whatever the worker has since), and per agent node's agent, the
/// limits its child run gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    /// The definition.
    pub definition: WorkflowDefinition,
    /// Agent id → a template of its child run's input (limits and timeouts).
    pub agents: BTreeMap<String, AgentRunInput>,
}

/// A governed tool call of a tool node, or a compensation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCall {
    /// The run's scope.
    pub scope: RunScope,
    /// The call id the records show (`<node>.<visit>.<attempt>`).
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The rendered arguments.
    pub args: Value,
    /// The idempotency key (from the run id, node, visit and attempt).
    pub key: String,
    /// The decided approval request to run it under, after the policy asked for one.
    pub approval: Option<String>,
    /// The node's timeout for one attempt.
    pub timeout_ms: Option<u64>,
    /// A compensation (audited as `tool.compensate`).
    pub compensation: bool,
}

/// What a tool node's call came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeStep {
    /// The tool ran (now or, under the same key, before): its output.
    Done {
        /// The arguments as the log shows them (redacted).
        shown: Value,
        /// The tool's output.
        output: Value,
    },
    /// It failed; `retryable` when another attempt may succeed.
    Failed {
        /// The arguments as the log shows them (redacted).
        shown: Value,
        /// Why.
        error: String,
        /// Whether the node's retry policy applies.
        retryable: bool,
    },
    /// The policy asked a human: the request is in the agentkit store.
    NeedsApproval {
        /// The arguments as the log shows them (redacted).
        shown: Value,
        /// The approval request's id.
        approval: String,
    },
    /// A call under this key started before and its end is unknown: an idempotent tool is
    /// retried after `retry_after_ms`; others wait for a human to resolve it
    /// (`ToolExecutor::resolve_in_doubt`) and [`crate::resume`] the run.
    InDoubt {
        /// The arguments as the log shows them (redacted).
        shown: Value,
        /// When to look again by itself.
        retry_after_ms: Option<u64>,
    },
}

/// An approval request a node opens (an approval node, or a failure left to a human).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenApproval {
    /// The run's scope.
    pub scope: RunScope,
    /// The request's id.
    pub id: String,
    /// The call id the request shows.
    pub call_id: String,
    /// `workflow.approval` or `workflow.failure`.
    pub tool: String,
    /// What the reviewer sees (and may edit).
    pub payload: Value,
    /// Why.
    pub reason: String,
    /// How urgent.
    pub priority: Priority,
}

/// The `read_approval` activity's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadApproval {
    /// The run's scope.
    pub scope: RunScope,
    /// The request's id.
    pub id: String,
}

/// An approval request as decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// Its status.
    pub status: ApprovalStatus,
    /// Who decided.
    pub reviewer: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
    /// The arguments or payload as approved (edited, if they were).
    pub payload: Value,
    /// The edited arguments, when the reviewer edited them.
    pub edited: Option<Value>,
}

/// The `snapshot` activity's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInput {
    /// The run's scope.
    pub scope: RunScope,
    /// The step's position.
    pub seq: u64,
    /// What the snapshot is.
    pub label: String,
    /// The run so far (workflow, version, context, steps).
    pub content: Value,
}

/// The `finish_graph` activity's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishGraph {
    /// The run's scope.
    pub scope: RunScope,
    /// Why it failed; `None` when it is done.
    pub error: Option<String>,
}
