//! The host's side: connecting, a worker over its agents, starting runs, deciding approvals.

use std::str::FromStr;
use std::sync::Arc;

use agentkit_core::agent::Agent;
use agentkit_core::exec::ToolExecutor;
use agentkit_core::id::{ApprovalId, TenantId};
use agentkit_core::store::{ApprovalDecision, ApprovalRequest, StateStore};
use agentkit_workflow::{WorkflowDefinition, WorkflowEvent, validate};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowSignalOptions, WorkflowStartOptions,
};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use crate::activities::AgentActivities;
use crate::graph::{GraphActivities, GraphRunInput, GraphRunOutput, GraphWorkflow};
use crate::types::{AgentRunInput, AgentRunOutput};
use crate::workflow::AgentWorkflow;

/// What went wrong talking to Temporal, or in agentkit's store.
#[derive(Debug)]
#[non_exhaustive]
pub enum TemporalError {
    /// Connecting, starting, signalling or reading a result failed.
    Temporal(String),
    /// The agentkit store refused (e.g. an approval decided twice: `Conflict`).
    Agentkit(agentkit_core::Error),
}

impl std::fmt::Display for TemporalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemporalError::Temporal(m) => write!(f, "temporal: {m}"),
            TemporalError::Agentkit(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TemporalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TemporalError::Agentkit(e) => Some(e),
            TemporalError::Temporal(_) => None,
        }
    }
}

fn temporal(e: impl std::fmt::Display) -> TemporalError {
    TemporalError::Temporal(e.to_string())
}

/// The agents (and workflow definitions) a worker serves.
#[derive(Default)]
pub struct TemporalAgents {
    agents: Vec<Agent>,
    activities_per_second: Option<f64>,
    executor: Option<ToolExecutor>,
    definitions: Vec<WorkflowDefinition>,
}

impl TemporalAgents {
    /// No agents yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `agent` (its tools, policy, store and meter, as built).
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// The governed executor workflow definitions' tool nodes and compensations call
    /// through (its tools, policy, store and meter, as built; approvals, executions, usage
    /// and audit go to its store).
    pub fn workflow_executor(mut self, executor: ToolExecutor) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Serves `definition` as [`GraphWorkflow`] runs (needs
    /// [`TemporalAgents::workflow_executor`]). Checked when the worker is built, against the
    /// executor's tools and this worker's agents.
    pub fn workflow(mut self, definition: WorkflowDefinition) -> Self {
        self.definitions.push(definition);
        self
    }

    /// At most `rate` activities per second dispatched on the worker's task queue (set by the
    /// server, for every worker of the queue): a brake on model and tool traffic.
    pub fn max_activities_per_second(mut self, rate: f64) -> Self {
        self.activities_per_second = Some(rate);
        self
    }

    /// A worker on `task_queue` running [`AgentWorkflow`] and its activities (a per-tenant-tier
    /// queue is one worker per queue). Drive it with `worker.run().await` (its future is not
    /// `Send`: run it on the task that owns it, e.g. with `tokio::join!`), stop it with
    /// `worker.shutdown_handle()`.
    ///
    /// With workflow definitions, it also runs [`GraphWorkflow`] and its activities; a
    /// definition that names a tool the executor lacks or an agent the worker does not serve,
    /// or that fails validation, or two different definitions under one id and version, are
    /// `Agentkit(InvalidConfig)` naming every problem.
    pub fn worker(&self, client: &Client, task_queue: &str) -> Result<Worker, TemporalError> {
        let graph = self.graph_activities().map_err(TemporalError::Agentkit)?;
        let runtime = Runtime::from_current_tokio(Default::default()).map_err(temporal)?;
        let mut options = WorkerOptions::new(task_queue)
            .register_workflow::<AgentWorkflow>()
            .map_err(temporal)?
            .register_activities(AgentActivities::new(self.agents.iter().cloned()));
        if let Some(graph) = graph {
            options = options
                .register_workflow::<GraphWorkflow>()
                .map_err(temporal)?
                .register_activities(graph);
        }
        let options = options
            .maybe_max_task_queue_activities_per_second(self.activities_per_second)
            .build();
        Worker::new(&runtime, client.clone(), options).map_err(temporal)
    }

    /// Checks the workflow definitions as [`TemporalAgents::worker`] does (against the
    /// executor's tools and this worker's agents), without a server: for a host's start-up
    /// checks or its CI.
    pub fn check(&self) -> agentkit_core::Result<()> {
        self.graph_activities().map(|_| ())
    }

    /// The workflow activities, the definitions checked; `None` without definitions.
    fn graph_activities(&self) -> agentkit_core::Result<Option<GraphActivities>> {
        if self.definitions.is_empty() {
            return Ok(None);
        }
        let Some(executor) = &self.executor else {
            return Err(agentkit_core::Error::InvalidConfig(
                "workflow definitions need a `workflow_executor` for their tool nodes".into(),
            ));
        };
        let ids: Vec<String> = self.agents.iter().map(|a| a.id().to_string()).collect();
        let catalog = GraphActivities::catalog(executor, &ids);
        let mut problems = Vec::new();
        for (i, d) in self.definitions.iter().enumerate() {
            if let Err(e) = validate(d, &catalog) {
                problems.push(format!("workflow `{}` v{}: {e}", d.id, d.version));
            }
            if self.definitions[..i]
                .iter()
                .any(|o| o.id == d.id && o.version == d.version && o != d)
            {
                problems.push(format!(
                    "workflow `{}` v{} is registered twice with different content",
                    d.id, d.version
                ));
            }
        }
        if !problems.is_empty() {
            return Err(agentkit_core::Error::InvalidConfig(problems.join("; ")));
        }
        let agents = self
            .agents
            .iter()
            .map(|a| (a.id().to_string(), AgentRunInput::for_agent(a, "", "", "")))
            .collect();
        Ok(Some(GraphActivities::new(
            executor.clone(),
            &self.definitions,
            agents,
        )))
    }
}

/// Connects to a Temporal server (`http://127.0.0.1:7233`) in `namespace`.
pub async fn connect(url: &str, namespace: &str) -> Result<Client, TemporalError> {
    let url = Url::from_str(url).map_err(temporal)?;
    let connection = Connection::connect(ConnectionOptions::new(url).build())
        .await
        .map_err(temporal)?;
    Client::new(connection, ClientOptions::new(namespace).build()).map_err(temporal)
}

/// Starts a run of `input` as workflow `run_id` on `task_queue` (the run id is also the run's
/// id in the agentkit store's records). Starting an id that is already running is an error.
pub async fn start(
    client: &Client,
    task_queue: &str,
    run_id: &str,
    input: AgentRunInput,
) -> Result<(), TemporalError> {
    client
        .start_workflow(
            AgentWorkflow::run,
            input,
            WorkflowStartOptions::new(task_queue, run_id).build(),
        )
        .await
        .map(|_| ())
        .map_err(temporal)
}

/// Waits for run `run_id`'s result.
pub async fn result(client: &Client, run_id: &str) -> Result<AgentRunOutput, TemporalError> {
    client
        .get_workflow_handle::<AgentWorkflow>(run_id)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(temporal)
}

/// Tells run `run_id` that `approval` was decided. Both workflows name the signal
/// `approval_decided` and take the request id.
async fn signal_decided(
    client: &Client,
    run_id: &str,
    approval: &ApprovalId,
) -> Result<(), TemporalError> {
    client
        .get_workflow_handle::<AgentWorkflow>(run_id)
        .signal(
            AgentWorkflow::approval_decided,
            approval.to_string(),
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(temporal)
}

/// Starts a run of a workflow definition as workflow `run_id` on `task_queue` (the run id is
/// also its id in the agentkit store's records: approvals, executions, usage, audit).
pub async fn start_workflow(
    client: &Client,
    task_queue: &str,
    run_id: &str,
    input: GraphRunInput,
) -> Result<(), TemporalError> {
    client
        .start_workflow(
            GraphWorkflow::run,
            input,
            WorkflowStartOptions::new(task_queue, run_id).build(),
        )
        .await
        .map(|_| ())
        .map_err(temporal)
}

/// Waits for workflow run `run_id`'s result: its final context and step log, or the reason
/// it failed (`Temporal(..)` with the failure's message).
pub async fn workflow_result(
    client: &Client,
    run_id: &str,
) -> Result<GraphRunOutput, TemporalError> {
    client
        .get_workflow_handle::<GraphWorkflow>(run_id)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(temporal)
}

/// Delivers `event` to workflow run `run_id` (Temporal signals address a run): the run's
/// first `wait_event` node waiting for the event's name and correlation key takes it, now
/// or when it gets there; a delivery of an id seen before is ignored.
pub async fn send_event(
    client: &Client,
    run_id: &str,
    event: &WorkflowEvent,
) -> Result<(), TemporalError> {
    client
        .get_workflow_handle::<GraphWorkflow>(run_id)
        .signal(
            GraphWorkflow::event,
            event.clone(),
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(temporal)
}

/// Asks workflow run `run_id` to look again at its calls left in doubt (after
/// `ToolExecutor::resolve_in_doubt`).
pub async fn resume(client: &Client, run_id: &str) -> Result<(), TemporalError> {
    client
        .get_workflow_handle::<GraphWorkflow>(run_id)
        .signal(
            GraphWorkflow::resume,
            String::new(),
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(temporal)
}

/// A reviewer's decision on any approval request of a Temporal run — an agent's tool call,
/// an approval node, a failed node waiting for a human: recorded in the agentkit store
/// exactly once (bound to the argument hash; a second decision is `Conflict`), then
/// signalled to the run the request belongs to (its agent run, or its workflow run).
pub async fn decide(
    client: &Client,
    store: Arc<dyn StateStore>,
    tenant: &TenantId,
    approval: &ApprovalId,
    decision: &ApprovalDecision,
) -> Result<ApprovalRequest, TemporalError> {
    let decided = store
        .decide_approval(tenant, approval, decision)
        .await
        .map_err(TemporalError::Agentkit)?;
    signal_decided(client, decided.run.as_str(), approval).await?;
    Ok(decided)
}
