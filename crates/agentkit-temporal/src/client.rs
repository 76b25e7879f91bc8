//! The host's side: connecting, a worker over its agents, starting runs, deciding approvals.

use std::str::FromStr;
use std::sync::Arc;

use agentkit_core::agent::Agent;
use agentkit_core::id::{ApprovalId, TenantId};
use agentkit_core::store::{ApprovalDecision, ApprovalRequest, StateStore};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowSignalOptions, WorkflowStartOptions,
};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use crate::activities::AgentActivities;
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

/// The agents a worker serves.
#[derive(Default)]
pub struct TemporalAgents {
    agents: Vec<Agent>,
    activities_per_second: Option<f64>,
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
    pub fn worker(&self, client: &Client, task_queue: &str) -> Result<Worker, TemporalError> {
        let runtime = Runtime::from_current_tokio(Default::default()).map_err(temporal)?;
        let options = WorkerOptions::new(task_queue)
            .register_workflow::<AgentWorkflow>()
            .map_err(temporal)?
            .register_activities(AgentActivities::new(self.agents.iter().cloned()))
            .maybe_max_task_queue_activities_per_second(self.activities_per_second)
            .build();
        Worker::new(&runtime, client.clone(), options).map_err(temporal)
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

/// A reviewer's decision: recorded in the agentkit store exactly once (bound to the call's
/// argument hash; a second decision is `Conflict`), then signalled to run `run_id`, which runs
/// the decided arguments once or reports the rejection to the model.
pub async fn approve(
    client: &Client,
    store: Arc<dyn StateStore>,
    tenant: &TenantId,
    run_id: &str,
    approval: &ApprovalId,
    decision: &ApprovalDecision,
) -> Result<ApprovalRequest, TemporalError> {
    let decided = store
        .decide_approval(tenant, approval, decision)
        .await
        .map_err(TemporalError::Agentkit)?;
    client
        .get_workflow_handle::<AgentWorkflow>(run_id)
        .signal(
            AgentWorkflow::approval_decided,
            approval.to_string(),
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(temporal)?;
    Ok(decided)
}
