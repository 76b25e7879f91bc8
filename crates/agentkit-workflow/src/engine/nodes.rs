//! What each kind of node does in one step.

use std::time::Duration;

use agentkit_core::agent::{RunOutcome, RunRequest};
use agentkit_core::exec::{CallOutcome, CallRequest};
use agentkit_core::id::{ApprovalId, IdempotencyKey, RunId};
use agentkit_core::message::ToolCall;
use agentkit_core::redact::{hash_json, redact};
use agentkit_core::scope::Scope;
use agentkit_core::store::{ApprovalRequest, ApprovalStatus, AuditQuery, NewAuditEntry, RunStatus};
use agentkit_core::{Error, Result};
use serde_json::{Value, json};

use super::drive::agent_run_id;
use super::{CHILD_POLL, StartRequest, Workflows, lease_delta};
use crate::definition::{Node, NodeKind};
use crate::record::{ApprovalPurpose, RunState, StepStatus, Token, Wait, WorkflowRun};
use crate::validate::CompiledWorkflow;

/// What woke a waiting token.
#[derive(Debug, Clone)]
pub(crate) struct Resumed {
    /// What it waited for.
    pub wait: Option<Wait>,
    /// The input a resume, event or decision brought.
    pub input: Option<Value>,
    /// Claimed because its `wake_at` passed (a timer, a timeout), not resumed.
    pub by_time: bool,
}

/// A node's result.
pub(crate) enum NodeResult {
    Done {
        input: Value,
        output: Value,
        /// Go here instead of following the edges.
        route: Option<String>,
        /// Merge the output object's keys into the context (transforms).
        merge: bool,
        status: StepStatus,
    },
    Wait {
        input: Value,
        wait: Wait,
        wake_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    Fail {
        input: Value,
        error: String,
        retryable: bool,
    },
}

impl NodeResult {
    pub(crate) fn done(input: Value, output: Value) -> Self {
        NodeResult::Done {
            input,
            output,
            route: None,
            merge: false,
            status: StepStatus::Succeeded,
        }
    }

    fn fail(input: Value, error: impl Into<String>, retryable: bool) -> Self {
        NodeResult::Fail {
            input,
            error: error.into(),
            retryable,
        }
    }

    fn wait(input: Value, wait: Wait) -> Self {
        NodeResult::Wait {
            input,
            wait,
            wake_at: None,
        }
    }
}

impl Workflows {
    /// Runs one node's step for `token`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn exec_node(
        &self,
        wf: &CompiledWorkflow,
        scope: &Scope,
        run: &WorkflowRun,
        token: &Token,
        node: &Node,
        resumed: Option<Resumed>,
        seq: u64,
    ) -> Result<NodeResult> {
        let compiled = wf.nodes.get(&node.id);
        let main = compiled.and_then(|c| c.main.as_ref());
        let render = |what: &str| -> std::result::Result<Value, Box<NodeResult>> {
            match main.map(|t| t.render(&run.context)) {
                None => Ok(Value::Null),
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(Box::new(NodeResult::fail(
                    Value::Null,
                    format!("its {what}: {e}"),
                    false,
                ))),
            }
        };
        let now = self.inner.clock.now();
        Ok(match &node.kind {
            NodeKind::Tool { tool, .. } => {
                let args = match render("arguments") {
                    Ok(a) => a,
                    Err(r) => return Ok(*r),
                };
                let shown = match self.inner.executor.tools().get(tool) {
                    Some(entry) => redact(&args, &entry.spec().redact),
                    None => args.clone(),
                };
                let key = IdempotencyKey::new(format!(
                    "wf:{}:{}:{}:{}",
                    run.id, node.id, token.visit, token.attempt
                ))?;
                let call = ToolCall::new(
                    format!("{}.{}.{}", node.id, token.visit, token.attempt),
                    tool,
                    args,
                );
                let request = CallRequest::new(scope.clone(), call, key.clone());
                let approval = match &resumed {
                    Some(Resumed {
                        wait:
                            Some(Wait::Approval {
                                approval,
                                purpose: ApprovalPurpose::Tool,
                            }),
                        ..
                    }) => Some(self.approval(run, approval).await?),
                    _ => None,
                };
                if let Some(a) = &approval
                    && a.status == ApprovalStatus::Pending
                {
                    return Ok(NodeResult::wait(
                        shown,
                        Wait::Approval {
                            approval: a.id.clone(),
                            purpose: ApprovalPurpose::Tool,
                        },
                    ));
                }
                let executor = &self.inner.executor;
                let call = async {
                    let attempt = |request: CallRequest| async {
                        match &approval {
                            Some(a) => executor.execute_approved(request, a).await,
                            None => executor.execute(request).await,
                        }
                    };
                    match attempt(request.clone()).await {
                        // The run's agentkit record is missing (a crash right after the run
                        // started): create it and call again under the same key.
                        Err(Error::NotFound(_)) => {
                            self.ensure_core_run(scope).await?;
                            attempt(request).await
                        }
                        other => other,
                    }
                };
                let outcome = match node.timeout_ms {
                    Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), call).await {
                        Ok(o) => o?,
                        Err(_) => {
                            return Ok(NodeResult::fail(
                                shown,
                                format!("timed out after {ms} ms"),
                                true,
                            ));
                        }
                    },
                    None => call.await?,
                };
                match outcome {
                    CallOutcome::Succeeded { output, .. } => NodeResult::done(shown, output),
                    CallOutcome::Failed { error } => {
                        NodeResult::fail(shown, error.to_string(), true)
                    }
                    CallOutcome::Refused { kind, message } => NodeResult::fail(
                        shown,
                        format!("refused ({}): {message}", kind.as_str()),
                        false,
                    ),
                    CallOutcome::Denied { reason } => {
                        NodeResult::fail(shown, format!("denied by policy: {reason}"), false)
                    }
                    CallOutcome::NeedsApproval(request) => NodeResult::wait(
                        shown,
                        Wait::Approval {
                            approval: request.id,
                            purpose: ApprovalPurpose::Tool,
                        },
                    ),
                    CallOutcome::InDoubt { .. } => {
                        // An idempotent tool is retried by the executor once the claim is old
                        // enough: look again then, under the same key. Others wait for a human
                        // (`ToolExecutor::resolve_in_doubt`, then `Workflows::resume`).
                        let retried = self.inner.executor.tools().get(tool).is_some_and(|e| {
                            e.spec().idempotent
                                || e.spec().side_effect == agentkit_core::tool::SideEffect::Read
                        });
                        NodeResult::Wait {
                            input: shown,
                            wait: Wait::InDoubt { key },
                            wake_at: retried
                                .then(|| now + lease_delta(self.inner.executor.in_doubt_after())),
                        }
                    }
                    other => NodeResult::fail(
                        shown,
                        format!("unexpected outcome `{}`", other.label()),
                        false,
                    ),
                }
            }
            NodeKind::Approval {
                reason,
                priority,
                on_reject,
                ..
            } => {
                if let Some(Resumed {
                    wait:
                        Some(Wait::Approval {
                            approval,
                            purpose: ApprovalPurpose::Node,
                        }),
                    ..
                }) = &resumed
                {
                    let a = self.approval(run, approval).await?;
                    let decision = json!({
                        "approved": a.status == ApprovalStatus::Approved,
                        "status": a.status,
                        "reviewer": a.reviewer,
                        "comment": a.comment,
                        "payload": a.approved_arguments(),
                    });
                    return Ok(match a.status {
                        ApprovalStatus::Pending => NodeResult::wait(
                            Value::Null,
                            Wait::Approval {
                                approval: a.id.clone(),
                                purpose: ApprovalPurpose::Node,
                            },
                        ),
                        ApprovalStatus::Approved => NodeResult::done(Value::Null, decision),
                        _ => match on_reject {
                            Some(to) => NodeResult::Done {
                                input: Value::Null,
                                output: decision,
                                route: Some(to.clone()),
                                merge: false,
                                status: StepStatus::Succeeded,
                            },
                            None => NodeResult::fail(
                                decision,
                                format!(
                                    "rejected by {}{}",
                                    a.reviewer.as_deref().unwrap_or("a reviewer"),
                                    a.comment
                                        .as_deref()
                                        .map(|c| format!(": {c}"))
                                        .unwrap_or_default()
                                ),
                                false,
                            ),
                        },
                    });
                }
                let payload = match render("payload") {
                    Ok(p) => p,
                    Err(r) => return Ok(*r),
                };
                let id = ApprovalId::new(format!("wfa-{}-{seq}", run.id))?;
                let call = ToolCall::new(node.id.clone(), "workflow.approval", payload.clone());
                let mut request = ApprovalRequest::new(scope, call, reason.clone(), *priority);
                request.id = id.clone();
                self.create_approval(scope, request).await?;
                NodeResult::wait(
                    payload,
                    Wait::Approval {
                        approval: id,
                        purpose: ApprovalPurpose::Node,
                    },
                )
            }
            NodeKind::WaitEvent {
                event, on_timeout, ..
            } => {
                if let Some(r) = &resumed {
                    if let Some(payload) = &r.input {
                        return Ok(NodeResult::done(Value::Null, payload.clone()));
                    }
                    if r.by_time {
                        return Ok(match on_timeout {
                            Some(to) => NodeResult::Done {
                                input: Value::Null,
                                output: Value::Null,
                                route: Some(to.clone()),
                                merge: false,
                                status: StepStatus::Succeeded,
                            },
                            None => NodeResult::fail(
                                Value::Null,
                                format!("no `{event}` event came in time"),
                                false,
                            ),
                        });
                    }
                }
                let correlation = match wf.correlation_key(&node.id, &run.context) {
                    Ok(c) => c,
                    Err(e) => return Ok(NodeResult::fail(Value::Null, e, false)),
                };
                NodeResult::Wait {
                    input: json!({"event": event, "correlation": correlation}),
                    wait: Wait::Event {
                        name: event.clone(),
                        correlation,
                    },
                    wake_at: node
                        .timeout_ms
                        .map(|ms| now + lease_delta(Duration::from_millis(ms))),
                }
            }
            NodeKind::Timer { delay_ms } => {
                if resumed.is_some() {
                    return Ok(NodeResult::done(Value::Null, json!(now)));
                }
                NodeResult::Wait {
                    input: json!({"delay_ms": delay_ms}),
                    wait: Wait::Timer,
                    wake_at: Some(now + lease_delta(Duration::from_millis(*delay_ms))),
                }
            }
            NodeKind::Branch {} => NodeResult::done(Value::Null, Value::Null),
            NodeKind::Transform { .. } => match wf.transform(&node.id, &run.context) {
                Ok(out) => NodeResult::Done {
                    input: Value::Null,
                    output: Value::Object(out),
                    route: None,
                    merge: true,
                    status: StepStatus::Succeeded,
                },
                Err(e) => NodeResult::fail(Value::Null, e, false),
            },
            NodeKind::SubWorkflow {
                workflow, version, ..
            } => {
                if let Some(Resumed {
                    wait: Some(Wait::Child { run: child }),
                    ..
                }) = &resumed
                {
                    let stored = self
                        .inner
                        .store
                        .get_workflow_run(&run.tenant, child)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("child run `{child}`")))?;
                    return Ok(match stored.state {
                        RunState::Done => NodeResult::done(json!({"run": child}), stored.context),
                        RunState::Failed | RunState::Cancelled => NodeResult::fail(
                            json!({"run": child}),
                            format!(
                                "the child run `{child}` ended {}: {}",
                                stored.state.as_str(),
                                stored.error.unwrap_or_default()
                            ),
                            false,
                        ),
                        _ => NodeResult::Wait {
                            input: json!({"run": child}),
                            wait: Wait::Child { run: child.clone() },
                            wake_at: Some(now + lease_delta(CHILD_POLL)),
                        },
                    });
                }
                let input = match render("input") {
                    Ok(i) => i,
                    Err(r) => return Ok(*r),
                };
                let mut start = StartRequest::new(workflow, input.clone())?
                    .trigger_key(format!("sub:{}:{seq}", run.id));
                start.version = *version;
                start.parent = Some(run.id.clone());
                let child = match Box::pin(self.start(&run.tenant, start)).await {
                    Ok(c) => c.run().id.clone(),
                    Err(
                        e @ (Error::InvalidInput(_) | Error::NotFound(_) | Error::InvalidConfig(_)),
                    ) => {
                        return Ok(NodeResult::fail(input, e.to_string(), false));
                    }
                    Err(e) => return Err(e),
                };
                NodeResult::Wait {
                    input,
                    wait: Wait::Child { run: child },
                    wake_at: Some(now + lease_delta(CHILD_POLL)),
                }
            }
            NodeKind::Agent { agent, .. } => {
                let Some(runner) = self.inner.agents.get(agent) else {
                    return Ok(NodeResult::fail(
                        Value::Null,
                        format!("agent `{agent}` is not registered with this engine"),
                        false,
                    ));
                };
                let input = match render("input") {
                    Ok(Value::String(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(r) => return Ok(*r),
                };
                let agent_run: RunId = match &resumed {
                    Some(Resumed {
                        wait: Some(Wait::Agent { run }),
                        ..
                    }) => run.clone(),
                    _ => agent_run_id(&run.id, seq)?,
                };
                let shown = json!({"input": input, "run": agent_run});
                let existing = self.state().get_run(&run.tenant, &agent_run).await?;
                let outcome = match existing.map(|r| r.status) {
                    None => {
                        let session = format!("wf-{}-{}", run.id, node.id);
                        let request = RunRequest::new(&run.tenant, session.as_str(), input)
                            .with_run_id(agent_run.clone());
                        runner.run(request).await
                    }
                    Some(RunStatus::Suspended) => runner.resume(&run.tenant, &agent_run).await,
                    Some(RunStatus::Completed) => {
                        let record = self.state().get_run(&run.tenant, &agent_run).await?;
                        let reply = record.and_then(|r| r.reply).unwrap_or_default();
                        return Ok(NodeResult::done(shown, json!({"reply": reply})));
                    }
                    Some(_) => Err(Error::Conflict(format!(
                        "agent run `{agent_run}` did not finish"
                    ))),
                };
                match outcome {
                    Ok(RunOutcome::Completed(report)) => NodeResult::done(
                        shown,
                        json!({"reply": report.reply, "structured": report.structured}),
                    ),
                    Ok(RunOutcome::Suspended(s)) => {
                        NodeResult::wait(shown, Wait::Agent { run: s.run })
                    }
                    Ok(other) => NodeResult::wait(
                        shown,
                        Wait::Agent {
                            run: other.run_id().clone(),
                        },
                    ),
                    Err(e) => NodeResult::fail(shown, e.to_string(), e.is_retryable()),
                }
            }
            NodeKind::Snapshot { label } => {
                return self.snapshot(wf, scope, run, label, seq).await;
            }
            NodeKind::Parallel { .. } | NodeKind::Join {} => {
                NodeResult::fail(Value::Null, "structural node run as a step", false)
            }
        })
    }

    /// Writes (once) the audit entry holding the run's snapshot at step `seq`.
    async fn snapshot(
        &self,
        wf: &CompiledWorkflow,
        scope: &Scope,
        run: &WorkflowRun,
        label: &str,
        seq: u64,
    ) -> Result<NodeResult> {
        const KIND: &str = "workflow.snapshot";
        let state = self.state();
        let earlier = state
            .list_audit(
                &run.tenant,
                &AuditQuery::all().kind(KIND).run(run.id.clone()),
            )
            .await?;
        if let Some(e) = earlier.iter().find(|e| e.entry.input["seq"] == json!(seq)) {
            // Written before a crash lost this step's commit.
            return Ok(NodeResult::done(
                e.entry.input.clone().into(),
                json!({"label": label, "sha256": e.entry.output["sha256"], "audit_seq": e.seq}),
            ));
        }
        let steps = self
            .inner
            .store
            .list_workflow_steps(&run.tenant, &run.id)
            .await?;
        let content = json!({
            "workflow": wf.def.id,
            "version": wf.def.version,
            "run": run.id,
            "context": run.context,
            "steps": steps.iter().map(|s| json!({
                "seq": s.seq, "node": s.node, "kind": s.kind, "attempt": s.attempt,
                "status": s.status.as_str(), "output": s.output, "error": s.error,
                "finished_at": s.finished_at,
            })).collect::<Vec<_>>(),
        });
        let sha256 = hash_json(&content);
        let input = json!({"seq": seq, "label": label});
        let mut entry = NewAuditEntry::scoped(scope, KIND, "workflow", label);
        entry.input = input.clone().into();
        entry.output = json!({"sha256": sha256, "snapshot": content}).into();
        let stored = state.append_audit(&run.tenant, entry).await?;
        Ok(NodeResult::done(
            input,
            json!({"label": label, "sha256": sha256, "audit_seq": stored.seq}),
        ))
    }

    async fn approval(&self, run: &WorkflowRun, id: &ApprovalId) -> Result<ApprovalRequest> {
        self.state()
            .get_approval(&run.tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {id}")))
    }
}
