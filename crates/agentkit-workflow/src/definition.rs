//! The workflow graph: what a host writes (in JSON, TOML or Rust) and publishes.
//!
//! A [`WorkflowDefinition`] is a directed graph of [`Node`]s joined by [`Edge`]s. A run starts
//! at `start`; when a node completes, its output is stored in the run context under the node's
//! output key, and the run follows the **first** outgoing edge (in definition order) whose
//! `when` condition holds (an edge without one always holds — put it last as the "else"). A
//! node without outgoing edges ends its branch; a run whose branches have all ended is done.
//! Parallel work is explicit: a [`NodeKind::Parallel`] node starts every branch at once and its
//! [`NodeKind::Join`] node continues once all of them have arrived.
//!
//! Values in node arguments are [templates](crate::expr): a string `"${lead.email}"` is replaced
//! by the value at that context path (any JSON type), `"Hello ${lead.name}"` interpolates, and
//! `"${score * 2}"` evaluates an expression. Conditions are expressions (`lead.score >= 50`).
//!
//! ```
//! use agentkit_workflow::WorkflowDefinition;
//!
//! let def: WorkflowDefinition = serde_json::from_value(serde_json::json!({
//!     "id": "welcome",
//!     "version": 1,
//!     "start": "send",
//!     "inputs": ["user"],
//!     "nodes": [
//!         {"id": "send", "kind": "tool", "tool": "mail.send",
//!          "args": {"to": "${user.email}", "subject": "Welcome, ${user.name}"},
//!          "retry": {"max_attempts": 3, "backoff_ms": 1000}},
//!         {"id": "wait_reply", "kind": "wait_event", "event": "mail.reply",
//!          "correlation": "${user.email}", "timeout_ms": 86400000}
//!     ],
//!     "edges": [{"from": "send", "to": "wait_reply"}]
//! }))?;
//! assert_eq!(def.node("send").map(|n| n.kind.name()), Some("tool"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use agentkit_core::id::{AgentId, WorkflowId};
use agentkit_core::policy::Priority;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A versioned workflow graph. Immutable once published: publishing the same id and version
/// with other content is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkflowDefinition {
    /// The workflow's id (unique within a tenant).
    pub id: WorkflowId,
    /// The version (1, 2, ...). Runs keep the version they started with.
    pub version: u32,
    /// A human name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The agent identity governed tool calls of this workflow act as (what policies see).
    #[serde(default = "default_agent")]
    pub agent: AgentId,
    /// The node a run starts at.
    pub start: String,
    /// The context keys a run's input provides (conditions and templates may read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Blueprint parameters and their defaults, readable as `params.<name>`; an instantiation
    /// ([`WorkflowDefinition::instantiate`]) or a run may override them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The edges, in priority order per source node.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// What happens when a node fails after its retries (a node may override it).
    #[serde(default)]
    pub on_failure: FailureStrategy,
}

fn default_agent() -> AgentId {
    AgentId::from_static("workflow")
}

impl WorkflowDefinition {
    /// A definition with no nodes yet; add them with [`WorkflowDefinition::node`]-building
    /// helpers or deserialize one instead.
    pub fn new(id: WorkflowId, version: u32, start: impl Into<String>) -> Self {
        Self {
            id,
            version,
            name: String::new(),
            agent: default_agent(),
            start: start.into(),
            inputs: Vec::new(),
            params: BTreeMap::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            on_failure: FailureStrategy::default(),
        }
    }

    /// Adds a node.
    pub fn with_node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds an edge that is always followed.
    pub fn with_edge(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.edges.push(Edge::new(from, to));
        self
    }

    /// Adds an edge followed when `when` holds.
    pub fn with_edge_when(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        when: impl Into<String>,
    ) -> Self {
        self.edges.push(Edge::new(from, to).when(when));
        self
    }

    /// Declares input keys.
    pub fn with_inputs<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.inputs.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Sets the workflow's failure strategy.
    pub fn with_failure(mut self, strategy: FailureStrategy) -> Self {
        self.on_failure = strategy;
        self
    }

    /// Sets the acting agent identity.
    pub fn with_agent(mut self, agent: AgentId) -> Self {
        self.agent = agent;
        self
    }

    /// Declares a blueprint parameter with its default.
    pub fn with_param(mut self, name: impl Into<String>, default: Value) -> Self {
        self.params.insert(name.into(), default);
        self
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The outgoing edges of a node, in priority order.
    pub fn edges_from<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.from == id)
    }

    /// A blueprint instantiated for a tenant: a copy under `id` with `params` overriding the
    /// defaults (unknown parameters are refused by validation when published).
    pub fn instantiate(&self, id: WorkflowId, params: BTreeMap<String, Value>) -> Self {
        let mut copy = self.clone();
        copy.id = id;
        copy.params.extend(params);
        copy
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NodeRepr")]
#[non_exhaustive]
pub struct Node {
    /// Unique within the workflow.
    pub id: String,
    /// What the node does.
    #[serde(flatten)]
    pub kind: NodeKind,
    /// Retries of a failing node.
    #[serde(default, skip_serializing_if = "RetryPolicy::is_default")]
    pub retry: RetryPolicy,
    /// How long one attempt may take (tool and agent nodes), or how long a `wait_event` node
    /// waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Overrides the workflow's failure strategy for this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureStrategy>,
    /// The context key that receives the node's output (default: the node id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The call that undoes this node's effect, run when the workflow rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<ToolInvocation>,
    /// How often a run may enter this node (the bound of a loop through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
}

/// A node as written: the common fields, and the kind's fields checked strictly by
/// [`NodeKind`] (serde cannot deny unknown fields through `flatten`).
#[derive(Deserialize)]
struct NodeRepr {
    id: String,
    #[serde(default)]
    retry: RetryPolicy,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    on_failure: Option<FailureStrategy>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    compensate: Option<ToolInvocation>,
    #[serde(default)]
    max_visits: Option<u32>,
    kind: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl TryFrom<NodeRepr> for Node {
    type Error = String;

    fn try_from(r: NodeRepr) -> Result<Self, String> {
        let mut fields = r.rest;
        fields.insert("kind".into(), Value::String(r.kind));
        let kind = NodeKind::deserialize(Value::Object(fields))
            .map_err(|e| format!("node `{}`: {e}", r.id))?;
        Ok(Self {
            id: r.id,
            kind,
            retry: r.retry,
            timeout_ms: r.timeout_ms,
            on_failure: r.on_failure,
            output: r.output,
            compensate: r.compensate,
            max_visits: r.max_visits,
        })
    }
}

impl Node {
    /// A node with default retry, timeout and failure settings.
    pub fn new(id: impl Into<String>, kind: NodeKind) -> Self {
        Self {
            id: id.into(),
            kind,
            retry: RetryPolicy::default(),
            timeout_ms: None,
            on_failure: None,
            output: None,
            compensate: None,
            max_visits: None,
        }
    }

    /// A tool node calling `tool` with templated `args`.
    pub fn tool(id: impl Into<String>, tool: impl Into<String>, args: Value) -> Self {
        Self::new(
            id,
            NodeKind::Tool {
                tool: tool.into(),
                args,
            },
        )
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the node's failure strategy.
    pub fn with_failure(mut self, strategy: FailureStrategy) -> Self {
        self.on_failure = Some(strategy);
        self
    }

    /// Sets the output key.
    pub fn with_output(mut self, key: impl Into<String>) -> Self {
        self.output = Some(key.into());
        self
    }

    /// Sets the compensation.
    pub fn with_compensation(mut self, tool: impl Into<String>, args: Value) -> Self {
        self.compensate = Some(ToolInvocation {
            tool: tool.into(),
            args,
        });
        self
    }

    /// Bounds how often a run may enter the node.
    pub fn with_max_visits(mut self, max: u32) -> Self {
        self.max_visits = Some(max);
        self
    }

    /// The context key the output is stored under.
    pub fn output_key(&self) -> &str {
        self.output.as_deref().unwrap_or(&self.id)
    }
}

/// A tool and its templated arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInvocation {
    /// The tool's name.
    pub tool: String,
    /// Templated arguments.
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum NodeKind {
    /// A governed tool call (policy, idempotency claim, metering, audit). Output: the tool's.
    Tool {
        /// The tool's name.
        tool: String,
        /// Templated arguments.
        #[serde(default = "empty_object")]
        args: Value,
    },
    /// An agent turn on a templated input; suspends while the agent waits for approvals.
    /// Output: `{"reply": ..., "structured": ...}`.
    Agent {
        /// A registered agent.
        agent: AgentId,
        /// The user message, a template.
        input: String,
    },
    /// A human approval: the run waits until it is decided. Output: `{"approved": bool,
    /// "reviewer": ..., "comment": ..., "payload": ...}`; a rejection fails the node (so the
    /// failure strategy decides) unless `on_reject` names a node to go to instead.
    Approval {
        /// What the reviewer is asked.
        reason: String,
        /// Templated data shown to the reviewer (and edited by them).
        #[serde(default = "empty_object")]
        payload: Value,
        /// The request's priority.
        #[serde(default)]
        priority: Priority,
        /// A node to continue at when rejected, instead of failing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_reject: Option<String>,
    },
    /// Waits for an event with this name and correlation key. Output: the event's payload.
    /// The node's `timeout_ms` bounds the wait: then the node fails, or continues at
    /// `on_timeout` with a `null` output.
    WaitEvent {
        /// The event name.
        event: String,
        /// The correlation key, a template (`"${lead_id}"`).
        correlation: String,
        /// A node to continue at on timeout, instead of failing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_timeout: Option<String>,
    },
    /// A durable delay: the run holds no process while it waits. Output: the wake time.
    Timer {
        /// How long to wait.
        delay_ms: u64,
    },
    /// Routing only: its outgoing edges' conditions choose the next node. Output: `null`.
    Branch {},
    /// Starts every branch at once; the branches meet at `join`.
    Parallel {
        /// The first node of each branch.
        branches: Vec<String>,
        /// The join node where the branches meet.
        join: String,
    },
    /// Where a parallel node's branches meet; continues once all have arrived.
    Join {},
    /// Runs another published workflow as a child run and waits for it. Output: the child's
    /// final context.
    SubWorkflow {
        /// The child workflow.
        workflow: agentkit_core::id::WorkflowId,
        /// Its version (latest when absent, resolved when the child starts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// The child's input, templated.
        #[serde(default = "empty_object")]
        input: Value,
    },
    /// An immutable snapshot of the run so far (its context and step log) for the archive:
    /// written once as a hash-chained audit entry (`workflow.snapshot`) and never changed.
    /// Output: `{"label": .., "sha256": .., "audit_seq": ..}`.
    Snapshot {
        /// What the snapshot is (`"campaign closed"`).
        label: String,
    },
    /// A pure mapping of the context: each key is set to its template's value. Output: the
    /// object of those keys (also merged into the context at the top level).
    Transform {
        /// Key → template.
        set: BTreeMap<String, Value>,
    },
}

impl NodeKind {
    /// The kind's name as written in definitions (`tool`, `wait_event`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Tool { .. } => "tool",
            NodeKind::Agent { .. } => "agent",
            NodeKind::Approval { .. } => "approval",
            NodeKind::WaitEvent { .. } => "wait_event",
            NodeKind::Timer { .. } => "timer",
            NodeKind::Branch {} => "branch",
            NodeKind::Parallel { .. } => "parallel",
            NodeKind::Join {} => "join",
            NodeKind::SubWorkflow { .. } => "sub_workflow",
            NodeKind::Transform { .. } => "transform",
            NodeKind::Snapshot { .. } => "snapshot",
        }
    }
}

/// An edge; the first edge of a node whose condition holds is followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The source node.
    pub from: String,
    /// The target node.
    pub to: String,
    /// A condition over the run context (`lead.score >= 50`); always true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

impl Edge {
    /// An unconditional edge.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            when: None,
        }
    }

    /// Sets the condition.
    pub fn when(mut self, condition: impl Into<String>) -> Self {
        self.when = Some(condition.into());
        self
    }
}

/// Retries of a failing node: `max_attempts` in all, waiting `backoff_ms` before the second,
/// multiplied by `factor` each time up to `max_backoff_ms`. The wait is durable (the run is
/// parked in the store, not in a sleeping task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    /// The first backoff.
    pub backoff_ms: u64,
    /// The multiplier per attempt.
    pub factor: f32,
    /// The longest backoff.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff_ms: 1_000,
            factor: 2.0,
            max_backoff_ms: 300_000,
        }
    }
}

impl RetryPolicy {
    /// `attempts` in all with exponential backoff from `backoff`.
    pub fn attempts(attempts: u32, backoff: Duration) -> Self {
        Self {
            max_attempts: attempts,
            backoff_ms: u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            ..Self::default()
        }
    }

    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The wait before attempt `next` (2 for the first retry), computed with `backon`'s
    /// exponential backoff.
    pub fn delay_before(&self, next: u32) -> Duration {
        use backon::BackoffBuilder;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.backoff_ms))
            .with_max_delay(Duration::from_millis(
                self.max_backoff_ms.max(self.backoff_ms),
            ))
            .with_factor(if self.factor.is_finite() && self.factor >= 1.0 {
                self.factor
            } else {
                1.0
            })
            .with_max_times(usize::try_from(next).unwrap_or(usize::MAX))
            .build();
        let index = usize::try_from(next.saturating_sub(2)).unwrap_or(usize::MAX);
        let delay = backoff
            .nth(index)
            .unwrap_or(Duration::from_millis(self.max_backoff_ms));
        // Whole milliseconds: the factor is a float.
        Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }
}

/// What happens when a node fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureStrategy {
    /// The run fails.
    #[default]
    #[serde(alias = "ABORT")]
    Abort,
    /// The failure becomes an approval request whose decision is retry (approve), skip
    /// (approve with `{"action": "skip"}` as edited arguments) or abort (reject).
    #[serde(alias = "WAIT_FOR_HUMAN")]
    WaitForHuman,
    /// The compensations of the completed nodes run in reverse order, then the run fails.
    #[serde(alias = "ROLLBACK")]
    Rollback,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let retry = RetryPolicy {
            max_attempts: 10,
            backoff_ms: 100,
            factor: 2.0,
            max_backoff_ms: 500,
        };
        assert_eq!(retry.delay_before(2), Duration::from_millis(100));
        assert_eq!(retry.delay_before(3), Duration::from_millis(200));
        assert_eq!(retry.delay_before(4), Duration::from_millis(400));
        assert_eq!(retry.delay_before(5), Duration::from_millis(500));
        assert_eq!(retry.delay_before(9), Duration::from_millis(500));
    }

    #[test]
    fn definitions_read_from_toml() {
        let def: WorkflowDefinition = toml::from_str(
            r#"
            id = "nurture"
            version = 2
            start = "pick"
            on_failure = "ROLLBACK"
            [[nodes]]
            id = "pick"
            kind = "branch"
            [[nodes]]
            id = "wait"
            kind = "timer"
            delay_ms = 1000
            [[edges]]
            from = "pick"
            to = "wait"
            when = "true"
            "#,
        )
        .unwrap();
        assert_eq!(def.on_failure, FailureStrategy::Rollback);
        assert_eq!(def.nodes[1].kind, NodeKind::Timer { delay_ms: 1000 });
        let unknown = toml::from_str::<WorkflowDefinition>(
            "id = \"x\"\nversion = 1\nstart = \"a\"\nnodez = []\nnodes = []",
        );
        assert!(unknown.is_err());
        let typo = serde_json::from_value::<WorkflowDefinition>(serde_json::json!({
            "id": "x", "version": 1, "start": "a",
            "nodes": [{"id": "a", "kind": "timer", "delay_ms": 5, "delay_sec": 5}]
        }));
        let text = typo.unwrap_err().to_string();
        assert!(
            text.contains("node `a`") && text.contains("delay_sec"),
            "{text}"
        );
        let common_typo = serde_json::from_value::<WorkflowDefinition>(serde_json::json!({
            "id": "x", "version": 1, "start": "a",
            "nodes": [{"id": "a", "kind": "branch", "retries": 3}]
        }));
        assert!(common_typo.unwrap_err().to_string().contains("retries"));
    }
}
