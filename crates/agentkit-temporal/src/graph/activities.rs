//! The activities of a workflow-definition run: loading the definition, governed tool calls
//! (and compensations), approval requests, snapshots, and the run's agentkit record.
// Temporal's macros generate undocumented associated items for each method.
#![allow(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::error::Error;
use agentkit_core::exec::{CallOutcome, CallRequest, ToolExecutor};
use agentkit_core::id::{ApprovalId, IdempotencyKey};
use agentkit_core::message::ToolCall;
use agentkit_core::redact::{hash_json, redact};
use agentkit_core::store::{ApprovalRequest, AuditQuery, NewAuditEntry, RunStatus};
use agentkit_core::tool::SideEffect;
use agentkit_workflow::{Catalog, WorkflowDefinition};
use serde_json::{Value, json};
use temporalio_common::ActivityError;
use temporalio_macros::activities;
use temporalio_sdk::activities::ActivityContext;

use super::types::{
    ApprovalView, FinishGraph, LoadInput, Loaded, NodeCall, NodeStep, OpenApproval, ReadApproval,
    SnapshotInput,
};
use crate::activities::{ensure_run, fail};
use crate::types::{AgentRunInput, RunScope};

/// The audit kind of a run's snapshots, as with the embedded engine.
const SNAPSHOT: &str = "workflow.snapshot";

/// The activities of [`crate::GraphWorkflow`]: the definitions a worker serves and the
/// governed executor their tool nodes call through.
pub struct GraphActivities {
    executor: ToolExecutor,
    definitions: HashMap<String, BTreeMap<u32, WorkflowDefinition>>,
    agents: BTreeMap<String, AgentRunInput>,
}

impl GraphActivities {
    /// Activities over `definitions` (each checked against the executor's tools and the
    /// worker's `agents` when it was registered), calling tools through `executor`.
    pub(crate) fn new(
        executor: ToolExecutor,
        definitions: &[WorkflowDefinition],
        agents: BTreeMap<String, AgentRunInput>,
    ) -> Self {
        let mut by_id: HashMap<String, BTreeMap<u32, WorkflowDefinition>> = HashMap::new();
        for d in definitions {
            by_id
                .entry(d.id.to_string())
                .or_default()
                .insert(d.version, d.clone());
        }
        Self {
            executor,
            definitions: by_id,
            agents,
        }
    }

    /// The catalog definitions are checked against: the executor's tools, the worker's agents.
    pub(crate) fn catalog(executor: &ToolExecutor, agents: &[String]) -> Catalog {
        Catalog {
            tools: Some(
                executor
                    .tools()
                    .specs()
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
            ),
            agents: Some(
                agents
                    .iter()
                    .filter_map(|a| agentkit_core::id::AgentId::new(a).ok())
                    .collect::<HashSet<_>>(),
            ),
        }
    }

    fn shown(&self, tool: &str, args: &Value) -> Value {
        match self.executor.tools().get(tool) {
            Some(entry) => redact(args, &entry.spec().redact),
            None => args.clone(),
        }
    }
}

fn parse_id(id: &str) -> Result<ApprovalId, ActivityError> {
    ApprovalId::new(id).map_err(fail)
}

#[activities]
impl GraphActivities {
    /// The definition a run executes (the version asked for, or the latest), with the limits
    /// of the agents its agent nodes name. Its output is kept in the run's history.
    #[activity]
    pub async fn load(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: LoadInput,
    ) -> Result<Loaded, ActivityError> {
        let versions = self.definitions.get(&input.workflow).ok_or_else(|| {
            fail(Error::NotFound(format!(
                "workflow `{}` is not registered with this worker",
                input.workflow
            )))
        })?;
        let definition = match input.version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        }
        .ok_or_else(|| {
            fail(Error::NotFound(format!(
                "workflow `{}` version {:?} is not registered with this worker",
                input.workflow, input.version
            )))
        })?
        .clone();
        let agents = definition
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                agentkit_workflow::NodeKind::Agent { agent, .. } => self
                    .agents
                    .get(agent.as_str())
                    .map(|a| (agent.to_string(), a.clone())),
                _ => None,
            })
            .collect();
        Ok(Loaded { definition, agents })
    }

    /// Creates the agentkit session and run the run's approvals, tool executions, usage and
    /// audit entries belong to (once).
    #[activity]
    pub async fn begin_graph(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RunScope,
    ) -> Result<(), ActivityError> {
        let scope = input.scope().map_err(fail)?;
        ensure_run(self.executor.store().as_ref(), &scope)
            .await
            .map_err(fail)
    }

    /// One governed tool call of a tool node (or a compensation): allow-list, schema,
    /// policy, the idempotency claim under the node's key, metering and audit. A retried
    /// activity finds the call's record under the same key and does not call again.
    #[activity]
    pub async fn tool_node(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: NodeCall,
    ) -> Result<NodeStep, ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let shown = self.shown(&input.tool, &input.args);
        let key = IdempotencyKey::new(input.key.as_str()).map_err(fail)?;
        let call = ToolCall::new(input.call_id.clone(), &input.tool, input.args.clone());
        let mut request = CallRequest::new(scope.clone(), call, key);
        if input.compensation {
            request = request.with_audit_kind("tool.compensate");
        }
        let approval = match &input.approval {
            Some(id) => Some(
                self.executor
                    .store()
                    .get_approval(&scope.tenant, &parse_id(id)?)
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| fail(Error::NotFound(format!("approval {id}"))))?,
            ),
            None => None,
        };
        let executor = &self.executor;
        let call = async {
            match &approval {
                Some(a) => executor.execute_approved(request, a).await,
                None => executor.execute(request).await,
            }
        };
        let outcome = match input.timeout_ms {
            Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), call).await {
                Ok(o) => o.map_err(fail)?,
                Err(_) => {
                    return Ok(NodeStep::Failed {
                        shown,
                        error: format!("timed out after {ms} ms"),
                        retryable: true,
                    });
                }
            },
            None => call.await.map_err(fail)?,
        };
        Ok(match outcome {
            CallOutcome::Succeeded { output, .. } => NodeStep::Done { shown, output },
            CallOutcome::Failed { error } => NodeStep::Failed {
                shown,
                error: error.to_string(),
                retryable: true,
            },
            CallOutcome::Refused { kind, message } => NodeStep::Failed {
                shown,
                error: format!("refused ({}): {message}", kind.as_str()),
                retryable: false,
            },
            CallOutcome::Denied { reason } => NodeStep::Failed {
                shown,
                error: format!("denied by policy: {reason}"),
                retryable: false,
            },
            CallOutcome::NeedsApproval(request) => NodeStep::NeedsApproval {
                shown,
                approval: request.id.to_string(),
            },
            CallOutcome::InDoubt { .. } => {
                // As the embedded engine: an idempotent (or read-only) tool is retried under
                // the same key once the claim is old enough; others wait for a human.
                let retried = executor.tools().get(&input.tool).is_some_and(|e| {
                    e.spec().idempotent || e.spec().side_effect == SideEffect::Read
                });
                let after =
                    u64::try_from(executor.in_doubt_after().as_millis()).unwrap_or(u64::MAX);
                NodeStep::InDoubt {
                    shown,
                    retry_after_ms: retried.then_some(after),
                }
            }
            other => NodeStep::Failed {
                shown,
                error: format!("unexpected outcome `{}`", other.label()),
                retryable: false,
            },
        })
    }

    /// Stores an approval request (an approval node's, or a failure left to a human) in the
    /// agentkit store, where the reviewer page and the approval queue see it. Idempotent.
    #[activity]
    pub async fn open_approval(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: OpenApproval,
    ) -> Result<(), ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let call = ToolCall::new(input.call_id, input.tool, input.payload);
        let mut request = ApprovalRequest::new(&scope, call, input.reason, input.priority);
        request.id = parse_id(&input.id)?;
        match self
            .executor
            .store()
            .create_approval(&scope.tenant, &request)
            .await
        {
            // Made by an earlier attempt of this activity: it is the one.
            Ok(()) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(fail(e)),
        }
    }

    /// An approval request as the store has it (decided, once the run was signalled).
    #[activity]
    pub async fn read_approval(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReadApproval,
    ) -> Result<ApprovalView, ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let a = self
            .executor
            .store()
            .get_approval(&scope.tenant, &parse_id(&input.id)?)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(Error::NotFound(format!("approval {}", input.id))))?;
        Ok(ApprovalView {
            status: a.status,
            reviewer: a.reviewer.clone(),
            comment: a.comment.clone(),
            payload: a.approved_arguments().clone(),
            edited: a.edited_arguments.clone(),
        })
    }

    /// Writes (once) the hash-chained audit entry holding the run's snapshot at step `seq`;
    /// returns `{"label", "sha256", "audit_seq"}`.
    #[activity]
    pub async fn snapshot(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SnapshotInput,
    ) -> Result<Value, ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let store = self.executor.store();
        let earlier = store
            .list_audit(
                &scope.tenant,
                &AuditQuery::all().kind(SNAPSHOT).run(scope.run.clone()),
            )
            .await
            .map_err(fail)?;
        let label = input.label;
        if let Some(e) = earlier
            .iter()
            .find(|e| e.entry.input["seq"] == json!(input.seq))
        {
            // Written by an earlier attempt of this activity.
            return Ok(
                json!({"label": label, "sha256": e.entry.output["sha256"], "audit_seq": e.seq}),
            );
        }
        let sha256 = hash_json(&input.content);
        let mut entry = NewAuditEntry::scoped(&scope, SNAPSHOT, "workflow", &label);
        entry.input = json!({"seq": input.seq, "label": label}).into();
        entry.output = json!({"sha256": sha256, "snapshot": input.content}).into();
        let stored = store
            .append_audit(&scope.tenant, entry)
            .await
            .map_err(fail)?;
        Ok(json!({"label": label, "sha256": sha256, "audit_seq": stored.seq}))
    }

    /// Marks the run's agentkit record completed, or failed with the reason (once).
    #[activity]
    pub async fn finish_graph(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: FinishGraph,
    ) -> Result<(), ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let store = self.executor.store();
        let Some(mut run) = store
            .get_run(&scope.tenant, &scope.run)
            .await
            .map_err(fail)?
        else {
            return Err(fail(Error::NotFound(format!("run {}", scope.run))));
        };
        if matches!(run.status, RunStatus::Completed | RunStatus::Failed) {
            return Ok(());
        }
        let expected = run.version;
        run.version += 1;
        run.status = if input.error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        };
        run.error = input.error;
        run.updated_at = chrono::Utc::now();
        store
            .update_run(&scope.tenant, &run, expected)
            .await
            .map_err(fail)
    }
}
