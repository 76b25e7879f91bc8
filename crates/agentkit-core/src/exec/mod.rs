//! The one governed execution path: every tool call in agentkit runs through
//! [`ToolExecutor`].
//!
//! The agent loop, the tool registry's host-side `execute`, compensations (`rollback`) and
//! workflow tool nodes all call it; nothing else calls [`Tool::call`](crate::tool::Tool::call).
//! For each call, in this order:
//!
//! 1. **per-turn cap** — beyond `max_calls_per_turn` the call is refused;
//! 2. **allow-list** — the tool must be in the executor's [`ToolSet`] (an agent's own tools);
//! 3. **validation** — the arguments against the tool's compiled schema;
//!    (1–3 refuse with [`CallOutcome::Refused`], audited as `tool.refused`)
//! 4. **policy** — [`PolicyEvaluator::evaluate`]; a deny or an approval requirement is audited
//!    as `policy.decision` with its reason; an approval request is stored;
//! 5. **idempotency claim** — [`ToolExecutionStore::claim_tool_execution`] claims
//!    `(tenant, key)` atomically, so two executions of one key never both run; a recorded
//!    success is replayed (after checking the tool and argument hash match, else
//!    [`Error::IdempotencyConflict`]); a `started` claim is [in doubt](CallOutcome::InDoubt);
//! 6. **call** — with the executor's timeout and the request's cancellation;
//! 7. **output check** — against the tool's output schema, if any;
//! 8. **execution record** — redacted by the tool's rules;
//! 9. **metered usage** — a `tool_call` event priced by the [`UsageMeter`];
//! 10. **audit** — a `tool.call` entry; then the policy hears the outcome
//!     ([`PolicyEvaluator::record_outcome`]).
//!
//! [`ToolExecutor::decide`] runs steps 1–4 and returns a [`Permit`]; [`ToolExecutor::run`]
//! runs 5–10 for a permit. The agent decides a turn's calls in order and runs the permits
//! concurrently; [`ToolExecutor::execute`] does both for one call.
//!
//! [`ToolExecutionStore::claim_tool_execution`]: crate::store::ToolExecutionStore::claim_tool_execution

mod outcome;
mod toolset;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::Instrument;

pub use outcome::{CallOutcome, CallRequest, Gate, InDoubtResolution, Permit, RefusalKind};
pub use toolset::{ToolEntry, ToolSet};

use crate::error::{Error, Result};
use crate::id::{IdempotencyKey, TenantId};
use crate::policy::{ActionOutcome, Decision, PolicyEvaluator, PolicyRequest};
use crate::redact::{hash_json, redact, scrub_text};
use crate::store::{
    Admission, ApprovalRequest, ApprovalStatus, NewAuditEntry, StateStore, ToolClaim,
    ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind, UsageMeter,
};
use crate::tool::{SideEffect, ToolContext};

/// The default per-call timeout.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs governed tool calls: see the [module docs](self) for the steps.
///
/// ```
/// # #[cfg(feature = "testkit")]
/// # async fn demo() -> agentkit_core::Result<()> {
/// use std::sync::Arc;
/// use agentkit_core::exec::{CallOutcome, CallRequest, ToolExecutor, ToolSet};
/// use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
/// use agentkit_core::message::ToolCall;
/// use agentkit_core::policy::AllowListPolicy;
/// use agentkit_core::scope::Scope;
/// use agentkit_core::store::InMemoryStore;
/// use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
/// use serde_json::json;
///
/// let send: Arc<dyn Tool> = Arc::new(FnTool::new(
///     ToolSpec::new("mail.send", "Sends mail", json!({"type": "object"}))
///         .with_side_effect(SideEffect::External),
///     |_ctx, _args| async move { Ok(json!({"sent": true})) },
/// ));
/// let executor = ToolExecutor::builder(ToolSet::new([send])?, Arc::new(InMemoryStore::new()))
///     .policy(AllowListPolicy::new(["mail.*"]).into_arc())
///     .build();
/// let scope = Scope::new(
///     TenantId::new("acme")?, AgentId::new("ops")?, SessionId::new("s")?, RunId::generate(),
/// );
/// let call = ToolCall::new("c1", "mail.send", json!({"to": "ada@example.com"}));
/// let key = IdempotencyKey::new(format!("{}:1:0", scope.run))?;
/// let first = executor.execute(CallRequest::new(scope.clone(), call.clone(), key.clone())).await?;
/// assert!(matches!(first, CallOutcome::Succeeded { replayed: false, .. }));
/// // The same key again: replayed from the record, the mail is not sent twice.
/// let again = executor.execute(CallRequest::new(scope, call, key)).await?;
/// assert!(matches!(again, CallOutcome::Succeeded { replayed: true, .. }));
/// # Ok(()) }
/// # #[cfg(feature = "testkit")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct ToolExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    tools: Arc<ToolSet>,
    store: Arc<dyn StateStore>,
    policy: Arc<dyn PolicyEvaluator>,
    meter: Option<Arc<dyn UsageMeter>>,
    timeout: Duration,
    in_doubt_after: Duration,
    max_calls_per_turn: u32,
}

impl std::fmt::Debug for ToolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolExecutor")
            .field("tools", &self.inner.tools.len())
            .field("timeout", &self.inner.timeout)
            .field("in_doubt_after", &self.inner.in_doubt_after)
            .field("max_calls_per_turn", &self.inner.max_calls_per_turn)
            .field("metered", &self.inner.meter.is_some())
            .finish()
    }
}

/// Builds a [`ToolExecutor`].
pub struct ToolExecutorBuilder {
    inner: Inner,
}

impl std::fmt::Debug for ToolExecutorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolExecutorBuilder")
            .finish_non_exhaustive()
    }
}

impl ToolExecutorBuilder {
    /// The policy every call is decided by. Default: [`AllowListPolicy::allow_all`] — only the
    /// tool set limits what runs.
    ///
    /// [`AllowListPolicy::allow_all`]: crate::policy::AllowListPolicy::allow_all
    pub fn policy(mut self, policy: Arc<dyn PolicyEvaluator>) -> Self {
        self.inner.policy = policy;
        self
    }

    /// Prices each call's usage event and accounts its spend (`agentkit-policy`'s `Meter`).
    pub fn meter(mut self, meter: Option<Arc<dyn UsageMeter>>) -> Self {
        self.inner.meter = meter;
        self
    }

    /// The per-call timeout (default [`DEFAULT_TOOL_TIMEOUT`]); a call that takes longer fails
    /// with [`Error::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner.timeout = timeout;
        self
    }

    /// How old a `started` claim must be before an idempotent tool's call under the same key
    /// retries it (default: twice the timeout). Non-idempotent tools always wait for
    /// [`ToolExecutor::resolve_in_doubt`].
    pub fn in_doubt_after(mut self, after: Duration) -> Self {
        self.inner.in_doubt_after = after;
        self
    }

    /// At most this many calls per model turn (default: unlimited); later ones are refused.
    pub fn max_calls_per_turn(mut self, max: u32) -> Self {
        self.inner.max_calls_per_turn = max;
        self
    }

    /// The executor.
    pub fn build(self) -> ToolExecutor {
        ToolExecutor {
            inner: Arc::new(self.inner),
        }
    }
}

impl ToolExecutor {
    /// A builder over `tools` and `store` (the allow-all policy, no meter, default timeout).
    pub fn builder(
        tools: impl Into<Arc<ToolSet>>,
        store: Arc<dyn StateStore>,
    ) -> ToolExecutorBuilder {
        ToolExecutorBuilder {
            inner: Inner {
                tools: tools.into(),
                store,
                policy: crate::policy::AllowListPolicy::allow_all().into_arc(),
                meter: None,
                timeout: DEFAULT_TOOL_TIMEOUT,
                in_doubt_after: DEFAULT_TOOL_TIMEOUT * 2,
                max_calls_per_turn: u32::MAX,
            },
        }
    }

    /// The tools it may run.
    pub fn tools(&self) -> &Arc<ToolSet> {
        &self.inner.tools
    }

    /// The store it records into.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The policy it asks.
    pub fn policy(&self) -> &Arc<dyn PolicyEvaluator> {
        &self.inner.policy
    }

    /// Steps 1–10 for one call.
    pub async fn execute(&self, request: CallRequest) -> Result<CallOutcome> {
        match self.decide(request).await? {
            Gate::Allowed(permit) => self.run(permit).await,
            Gate::Done(outcome) => Ok(outcome),
        }
    }

    /// Steps 1–4: cap, allow-list, validation, policy.
    pub async fn decide(&self, request: CallRequest) -> Result<Gate> {
        let i = &*self.inner;
        let call = &request.call;
        if request.counters.calls_this_turn > i.max_calls_per_turn {
            let message = format!(
                "Not executed: at most {} tool calls are allowed in one turn.",
                i.max_calls_per_turn
            );
            return self
                .refuse(&request, RefusalKind::TooManyCalls, message)
                .await;
        }
        let Some(entry) = i.tools.get(&call.name) else {
            let available: Vec<&str> = i.tools.specs().iter().map(|s| s.name.as_str()).collect();
            let message = format!(
                "Unknown tool `{}`. Available tools: {}.",
                call.name,
                if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                }
            );
            return self
                .refuse(&request, RefusalKind::UnknownTool, message)
                .await;
        };
        if let Err(problems) = entry.validator().check_lines(&call.arguments, 10) {
            tracing::debug!(tool = %call.name, "invalid tool arguments refused");
            let message = format!(
                "Invalid arguments for `{}`:\n{problems}\nFix the arguments and call the tool again.",
                call.name
            );
            return self
                .refuse(&request, RefusalKind::InvalidArguments, message)
                .await;
        }
        let arguments = call.arguments.clone();
        let policy = self.policy_request(&request, entry, arguments.clone(), false);
        match self.evaluate(&policy).await {
            Decision::Allow => Ok(Gate::Allowed(Permit {
                request,
                arguments,
                policy,
            })),
            Decision::Deny { reason } => {
                let reason = scrub_text(&reason, &arguments, &entry.spec().redact);
                self.audit_decision(&request, entry, &arguments, "deny", &reason)
                    .await?;
                Ok(Gate::Done(CallOutcome::Denied { reason }))
            }
            Decision::RequireApproval { reason, priority } => {
                let reason = scrub_text(&reason, &arguments, &entry.spec().redact);
                let approval =
                    ApprovalRequest::new(&request.scope, call.clone(), reason.clone(), priority);
                i.store.create_approval(&approval.tenant, &approval).await?;
                self.audit_decision(&request, entry, &arguments, "require_approval", &reason)
                    .await?;
                Ok(Gate::Done(CallOutcome::NeedsApproval(approval)))
            }
        }
    }

    /// Steps 2–4 for a call a human decided: the approval must be approved and bound to this
    /// call (same tool, same argument hash); edited arguments are validated; the policy is asked
    /// again with `approved_by_human` (a deny still wins; a second approval is not asked for).
    pub async fn decide_approved(
        &self,
        request: CallRequest,
        approval: &ApprovalRequest,
    ) -> Result<Gate> {
        let call = &request.call;
        let bound = approval.status == ApprovalStatus::Approved
            && approval.tenant == request.scope.tenant
            && approval.call.name == call.name
            && approval.arguments_hash == hash_json(&call.arguments)
            && hash_json(&approval.call.arguments) == approval.arguments_hash;
        if !bound {
            let message = "Not executed: the approval does not match the requested call.".into();
            return self
                .refuse(&request, RefusalKind::ApprovalMismatch, message)
                .await;
        }
        let Some(entry) = self.inner.tools.get(&call.name) else {
            let message = format!(
                "Not executed: tool `{}` is no longer available to this agent.",
                call.name
            );
            return self
                .refuse(&request, RefusalKind::UnknownTool, message)
                .await;
        };
        let arguments = approval.approved_arguments().clone();
        if approval.edited_arguments.is_some()
            && let Err(problems) = entry.validator().check_lines(&arguments, 10)
        {
            let message =
                format!("Not executed: the reviewer's edited arguments are invalid:\n{problems}");
            return self
                .refuse(&request, RefusalKind::InvalidArguments, message)
                .await;
        }
        let automatic = approval.decided_automatically;
        let mut policy = self.policy_request(&request, entry, arguments.clone(), !automatic);
        policy.approved_automatically = automatic;
        match self.evaluate(&policy).await {
            Decision::Deny { reason } => {
                let reason = scrub_text(&reason, &arguments, &entry.spec().redact);
                self.audit_decision(&request, entry, &arguments, "deny", &reason)
                    .await?;
                Ok(Gate::Done(CallOutcome::Denied { reason }))
            }
            // The policy does not accept an automatic approval for this call: a person must.
            Decision::RequireApproval { reason, .. } if automatic => {
                let message = format!(
                    "Not executed: this call needs a human's approval ({reason}); it was only \
                     approved automatically."
                );
                self.refuse(&request, RefusalKind::ApprovalMismatch, message)
                    .await
            }
            Decision::Allow | Decision::RequireApproval { .. } => Ok(Gate::Allowed(Permit {
                request,
                arguments,
                policy,
            })),
        }
    }

    /// [`decide_approved`](Self::decide_approved), then [`run`](Self::run).
    pub async fn execute_approved(
        &self,
        request: CallRequest,
        approval: &ApprovalRequest,
    ) -> Result<CallOutcome> {
        match self.decide_approved(request, approval).await? {
            Gate::Allowed(permit) => self.run(permit).await,
            Gate::Done(outcome) => Ok(outcome),
        }
    }

    /// Steps 5–10 for an allowed call.
    pub async fn run(&self, permit: Permit) -> Result<CallOutcome> {
        let span = tracing::info_span!(
            "tool.call",
            tool = %permit.request.call.name,
            call_id = %permit.request.call.id,
            tenant = %permit.request.scope.tenant,
            agent = %permit.request.scope.agent,
            session = %permit.request.scope.session,
            run = %permit.request.scope.run,
        );
        self.run_inner(permit).instrument(span).await
    }

    async fn run_inner(&self, permit: Permit) -> Result<CallOutcome> {
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
                        return Ok(outcome);
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
                record.output = Some(redact(value, &spec.redact));
            }
            Err(e) => {
                record.status = ToolExecutionStatus::Failed;
                record.error = Some(e.to_string());
                tracing::info!(error = %e, "tool failed");
            }
        }
        i.store
            .record_tool_execution(&request.scope.tenant, &record)
            .await?;
        // Step 9: metered usage.
        let mut usage = UsageEvent::scoped(&request.scope, UsageKind::ToolCall, 1);
        usage.resource = Some(call.name.clone());
        self.append_usage(&request.scope.tenant, vec![usage])
            .await?;
        // Step 10: audit, then the policy hears the outcome.
        let mut audit = self.audit_entry(&request, request.audit_kind);
        audit.decision = Some("allow".into());
        audit.reason = Some(record.status.as_str().into());
        audit.input = record.input;
        audit.output = match (record.output, record.error) {
            (Some(o), _) => o,
            (None, Some(e)) => json!({ "error": e }),
            (None, None) => Value::Null,
        };
        i.store.append_audit(&request.scope.tenant, audit).await?;
        // Only a call known not to have acted releases its reservations.
        let action = match &outcome {
            Ok(_) => ActionOutcome::Succeeded,
            Err(Error::NotExecuted(_)) => ActionOutcome::NotRun,
            Err(_) if cancelled_before => ActionOutcome::NotRun,
            Err(_) => ActionOutcome::Failed,
        };
        self.outcome_for_policy(&policy, &action).await;
        Ok(match outcome {
            Ok(output) => CallOutcome::Succeeded {
                output,
                replayed: false,
            },
            Err(error) => CallOutcome::Failed { error },
        })
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
                    output: prev.output.unwrap_or(Value::Null),
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
                record.output = Some(redact(&output, &rules));
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
        audit.input = json!({ "idempotency_key": key, "attempt": record.attempt });
        i.store.append_audit(tenant, audit).await?;
        Ok(record)
    }

    fn policy_request(
        &self,
        request: &CallRequest,
        entry: &ToolEntry,
        arguments: Value,
        approved_by_human: bool,
    ) -> PolicyRequest {
        let mut p = PolicyRequest::new(request.scope.clone(), request.call.name.clone(), arguments);
        p.side_effect = entry.spec().side_effect;
        p.confidence = request.confidence;
        p.counters = request.counters;
        p.idempotency_key = Some(request.key.clone());
        p.approved_by_human = approved_by_human;
        p
    }

    async fn evaluate(&self, request: &PolicyRequest) -> Decision {
        match self.inner.policy.evaluate(request).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, action = %request.action, "policy evaluation failed; denying");
                Decision::deny(format!("policy evaluation failed: {e}"))
            }
        }
    }

    async fn outcome_for_policy(&self, policy: &PolicyRequest, outcome: &ActionOutcome) {
        if let Err(e) = self.inner.policy.record_outcome(policy, outcome).await {
            tracing::warn!(error = %e, "policy could not record the outcome");
        }
    }

    async fn refuse(
        &self,
        request: &CallRequest,
        kind: RefusalKind,
        message: String,
    ) -> Result<Gate> {
        let mut e = self.audit_entry(request, "tool.refused");
        e.decision = Some("refuse".into());
        e.reason = Some(format!("{}: {}", kind.as_str(), first_line(&message)));
        // Unknown tools have no redaction rules: keep only the hash of what was proposed.
        e.input = match self.inner.tools.get(&request.call.name) {
            Some(entry) => redact(&request.call.arguments, &entry.spec().redact),
            None => json!({ "arguments_hash": hash_json(&request.call.arguments) }),
        };
        self.inner
            .store
            .append_audit(&request.scope.tenant, e)
            .await?;
        Ok(Gate::Done(CallOutcome::Refused { kind, message }))
    }

    async fn audit_decision(
        &self,
        request: &CallRequest,
        entry: &ToolEntry,
        arguments: &Value,
        decision: &str,
        reason: &str,
    ) -> Result<()> {
        let mut e = self.audit_entry(request, "policy.decision");
        e.decision = Some(decision.into());
        e.reason = Some(reason.into());
        e.input = redact(arguments, &entry.spec().redact);
        self.inner
            .store
            .append_audit(&request.scope.tenant, e)
            .await
            .map(|_| ())
    }

    fn audit_entry(&self, request: &CallRequest, kind: &str) -> NewAuditEntry {
        NewAuditEntry::scoped(
            &request.scope,
            kind,
            format!("agent:{}", request.scope.agent),
            request.call.name.clone(),
        )
    }

    /// Whether usage is priced and gated (a [`UsageMeter`] is set).
    pub fn is_metered(&self) -> bool {
        self.inner.meter.is_some()
    }

    /// Admits a model call with its estimated usage ([`UsageMeter::admit`]); without a meter,
    /// every call is admitted.
    pub async fn admit_model_call(&self, estimate: &[UsageEvent]) -> Result<Admission> {
        match &self.inner.meter {
            Some(meter) => meter.admit(estimate).await,
            None => Ok(Admission::default()),
        }
    }

    /// Prices a model call's usage settling its admission ([`UsageMeter::settle`]) and appends
    /// it; a call that failed settles with no events, which releases the reservation.
    pub async fn append_settled_usage(
        &self,
        tenant: &TenantId,
        admission: Admission,
        mut events: Vec<UsageEvent>,
    ) -> Result<()> {
        if let Some(meter) = &self.inner.meter
            && let Err(e) = meter.settle(admission, &mut events).await
        {
            tracing::warn!(error = %e, "usage could not be priced; recording it unpriced");
        }
        if events.is_empty() {
            return Ok(());
        }
        self.inner.store.append_usage(tenant, &events).await
    }

    /// Prices (with the meter) and appends usage events of one tenant.
    pub async fn append_usage(&self, tenant: &TenantId, mut events: Vec<UsageEvent>) -> Result<()> {
        if let Some(meter) = &self.inner.meter
            && let Err(e) = meter.meter(&mut events).await
        {
            tracing::warn!(error = %e, "usage could not be priced; recording it unpriced");
        }
        self.inner.store.append_usage(tenant, &events).await
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
