//! Steps 5–10 of a governed call: the idempotency claim, the call, and its records.

use chrono::Utc;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{CallOutcome, CallRequest, InDoubtResolution, Permit, ToolExecutor};
use crate::SharedJson;
use crate::error::{Error, Result};
use crate::id::{IdempotencyKey, TenantId};
use crate::policy::ActionOutcome;
use crate::redact::{hash_json, redact, scrub_text};
use crate::store::{
    NewAuditEntry, Step, ToolClaim, ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind,
};
use crate::tool::{SideEffect, ToolContext};

impl ToolExecutor {
    /// Steps 5–10 for an allowed call; its records (execution, usage, audit) are written in
    /// one step.
    pub async fn run(&self, permit: Permit) -> Result<CallOutcome> {
        let tenant = permit.request.scope.tenant.clone();
        let (outcome, step) = self.run_staged(permit).await?;
        self.commit(&tenant, step).await?;
        Ok(outcome)
    }

    /// [`run`](Self::run) without writing the call's records: they are returned as a
    /// [`Step`] for the caller to commit, with the other records of its turn step, in one
    /// [`StepStore::commit_step`](crate::store::StepStore::commit_step). Only the idempotency
    /// claim (step 5) is written before the tool runs: it must be durable before anything
    /// happens. Until the step is committed, the claim stays `started` (in doubt).
    pub async fn run_staged(&self, permit: Permit) -> Result<(CallOutcome, Step)> {
        let span = tracing::info_span!(
            "tool.call",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %permit.request.call.name,
            gen_ai.tool.call.id = %permit.request.call.id,
            tool = %permit.request.call.name,
            call_id = %permit.request.call.id,
            tenant = %permit.request.scope.tenant,
            agent = %permit.request.scope.agent,
            session = %permit.request.scope.session,
            run = %permit.request.scope.run,
        );
        self.run_inner(permit).instrument(span).await
    }

    async fn run_inner(&self, permit: Permit) -> Result<(CallOutcome, Step)> {
        let i = &*self.inner;
        let Permit {
            request,
            arguments,
            policy,
        } = permit;
        let call = &request.call;
        let Some(entry) = i.tools.get(&call.name) else {
            return Err(Error::Internal(format!(
                "a permit names tool `{}`, which this executor does not have",
                call.name
            )));
        };
        let spec = entry.spec();
        let arguments_hash = hash_json(&arguments);
        let mut record = ToolExecution::started(
            &request.scope,
            request.key.clone(),
            call.id.clone(),
            call.name.clone(),
            redact(&arguments, &spec.redact),
            arguments_hash,
        );
        // Step 5: the claim (an idempotent call left in doubt is taken over at most once).
        let idempotent = spec.idempotent || spec.side_effect == SideEffect::Read;
        let mut retried_stale = false;
        loop {
            match i
                .store
                .claim_tool_execution(&request.scope.tenant, &record)
                .await?
            {
                ToolClaim::Claimed { attempt } => {
                    record.attempt = attempt;
                    break;
                }
                ToolClaim::Existing(prev) => {
                    let retry_stale = idempotent && !retried_stale;
                    if let Some(outcome) =
                        self.existing(&request, &record, *prev, retry_stale).await?
                    {
                        self.outcome_for_policy(&policy, &ActionOutcome::NotRun)
                            .await;
                        return Ok((outcome, Step::default()));
                    }
                    retried_stale = true;
                }
            }
        }
        // Steps 6–7: the call and the output check.
        let mut ctx = ToolContext::new(request.scope.clone(), call.id.clone(), request.key.clone());
        ctx.cancellation = request.cancellation.child_token();
        let cancelled_before = request.cancellation.is_cancelled();
        // Kept only when the tool has redaction rules: its error text is scrubbed with them.
        let redact_from = (!spec.redact.is_empty()).then(|| arguments.clone());
        let called = if cancelled_before {
            Err(Error::Cancelled)
        } else {
            let mut running = entry.tool().call(ctx, arguments);
            // Most tools answer on their first poll; only a call that waits pays for a timer
            // and a cancellation waiter (about 9 µs a call on the turn bench).
            match futures::poll!(&mut running) {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => tokio::select! {
                    r = tokio::time::timeout(i.timeout, running) => r
                        .unwrap_or_else(|_| Err(Error::Timeout(format!(
                            "tool `{}` did not finish within {:?}", call.name, i.timeout
                        )))),
                    () = request.cancellation.cancelled() => Err(Error::Cancelled),
                },
            }
        };
        let outcome = called.and_then(|value| match entry.output_validator() {
            Some(v) => v.check_lines(&value, 5).map(|()| value).map_err(|p| {
                Error::Tool(format!(
                    "the tool returned output that does not match its output schema: {p}"
                ))
            }),
            None => Ok(value),
        });
        // An error that quotes a redacted argument is told and recorded without it.
        let outcome = outcome.map_err(|e| {
            let Some(args) = &redact_from else { return e };
            let scrub = |t: &str| scrub_text(t, args, &spec.redact);
            match e {
                Error::Tool(m) => Error::Tool(scrub(&m)),
                Error::NotExecuted(m) => Error::NotExecuted(scrub(&m)),
                other => {
                    let text = other.to_string();
                    let scrubbed = scrub(&text);
                    if scrubbed == text {
                        other
                    } else {
                        Error::Tool(scrubbed)
                    }
                }
            }
        });
        // Step 8: the record.
        record.finished_at = Some(crate::store::now());
        match &outcome {
            Ok(value) => {
                record.status = ToolExecutionStatus::Succeeded;
                record.output = Some(redact(value, &spec.redact).into());
            }
            Err(e) => {
                record.status = ToolExecutionStatus::Failed;
                record.error = Some(e.to_string());
                tracing::info!(error = %e, "tool failed");
            }
        }
        // Step 9: metered usage.
        let mut usage = vec![UsageEvent::scoped(&request.scope, UsageKind::ToolCall, 1)];
        usage[0].resource = Some(call.name.clone());
        self.price_usage(&mut usage).await;
        // Step 10: audit, then the policy hears the outcome.
        let mut audit = self.audit_entry(&request, request.audit_kind);
        audit.decision = Some("allow".into());
        audit.reason = Some(record.status.as_str().into());
        audit.input = record.input.clone();
        audit.output = match (&record.output, &record.error) {
            (Some(o), _) => o.clone(),
            (None, Some(e)) => json!({ "error": e }).into(),
            (None, None) => SharedJson::null(),
        };
        let step = Step {
            executions: vec![record],
            usage,
            audit: vec![audit],
            ..Step::default()
        };
        // Only a call known not to have acted releases its reservations.
        let action = match &outcome {
            Ok(_) => ActionOutcome::Succeeded,
            Err(Error::NotExecuted(_)) => ActionOutcome::NotRun,
            Err(_) if cancelled_before => ActionOutcome::NotRun,
            Err(_) => ActionOutcome::Failed,
        };
        self.outcome_for_policy(&policy, &action).await;
        let outcome = match outcome {
            Ok(output) => CallOutcome::Succeeded {
                output,
                replayed: false,
            },
            Err(error) => CallOutcome::Failed { error },
        };
        Ok((outcome, step))
    }

    /// What to do when the key is held: `Some(outcome)` to stop, `None` to claim again.
    async fn existing(
        &self,
        request: &CallRequest,
        mine: &ToolExecution,
        prev: ToolExecution,
        retry_stale: bool,
    ) -> Result<Option<CallOutcome>> {
        let i = &*self.inner;
        if prev.tool != mine.tool
            || (!prev.arguments_hash.is_empty() && prev.arguments_hash != mine.arguments_hash)
        {
            return Err(Error::IdempotencyConflict {
                key: request.key.to_string(),
                detail: format!(
                    "it was used for `{}` with arguments hashing to {}, not `{}` with {}",
                    prev.tool,
                    short(&prev.arguments_hash),
                    mine.tool,
                    short(&mine.arguments_hash)
                ),
            });
        }
        match prev.status {
            ToolExecutionStatus::Succeeded => {
                tracing::debug!(key = %request.key, "replaying a recorded tool result");
                Ok(Some(CallOutcome::Succeeded {
                    output: prev
                        .output
                        .map(SharedJson::into_value)
                        .unwrap_or(Value::Null),
                    replayed: true,
                }))
            }
            ToolExecutionStatus::Started => {
                let age = Utc::now()
                    .signed_duration_since(prev.started_at)
                    .to_std()
                    .unwrap_or_default();
                if retry_stale && age >= i.in_doubt_after {
                    tracing::warn!(key = %request.key, "retrying an idempotent call left in doubt");
                    let mut abandoned = prev;
                    abandoned.status = ToolExecutionStatus::Failed;
                    abandoned.error = Some(format!(
                        "abandoned after {age:?} without a result; retried (idempotent tool)"
                    ));
                    abandoned.finished_at = Some(crate::store::now());
                    i.store
                        .record_tool_execution(&request.scope.tenant, &abandoned)
                        .await?;
                    return Ok(None);
                }
                Ok(Some(CallOutcome::InDoubt { execution: prev }))
            }
            // A failed record with the same tool and arguments is claimed again by the store; a
            // store that returns it anyway reports a conflict it could not resolve.
            ToolExecutionStatus::Failed => Err(Error::IdempotencyConflict {
                key: request.key.to_string(),
                detail: "the store refused to claim a failed execution again".into(),
            }),
        }
    }

    /// Resolves an execution left `started` (in doubt): after a human or an operator checked
    /// the external system. Audited as `tool.resolved` with `resolved_by`.
    /// [`Error::Conflict`] when the execution is not in doubt.
    pub async fn resolve_in_doubt(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        resolution: InDoubtResolution,
        resolved_by: &str,
    ) -> Result<ToolExecution> {
        let i = &*self.inner;
        let mut record = i
            .store
            .get_tool_execution(tenant, key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tool execution {key}")))?;
        if record.status != ToolExecutionStatus::Started {
            return Err(Error::Conflict(format!(
                "tool execution {key} is not in doubt (it is {})",
                record.status.as_str()
            )));
        }
        let rules = i
            .tools
            .get(&record.tool)
            .map(|e| e.spec().redact.clone())
            .unwrap_or_default();
        record.finished_at = Some(crate::store::now());
        let note = match resolution {
            InDoubtResolution::NotRun { note } => {
                record.status = ToolExecutionStatus::Failed;
                record.error = Some(format!("resolved as not run by {resolved_by}: {note}"));
                note
            }
            InDoubtResolution::Succeeded { output } => {
                record.status = ToolExecutionStatus::Succeeded;
                record.output = Some(redact(&output, &rules).into());
                "resolved as succeeded".into()
            }
        };
        i.store.record_tool_execution(tenant, &record).await?;
        let mut audit = NewAuditEntry::new(
            tenant.clone(),
            "tool.resolved",
            format!("user:{resolved_by}"),
            record.tool.clone(),
        );
        audit.decision = Some(record.status.as_str().into());
        audit.reason = Some(note);
        audit.agent = Some(record.agent.clone());
        audit.session = Some(record.session.clone());
        audit.run = Some(record.run.clone());
        audit.input = json!({ "idempotency_key": key, "attempt": record.attempt }).into();
        i.store.append_audit(tenant, audit).await?;
        Ok(record)
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
