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
//!    [`Error::IdempotencyConflict`](crate::Error::IdempotencyConflict)); a `started` claim is [in doubt](CallOutcome::InDoubt);
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
//! What a call records (audit entries, an approval request, the execution record, its usage
//! event) is written in one [`Step`] — one store transaction — per method. The `_staged`
//! variants ([`ToolExecutor::decide_staged`], [`ToolExecutor::run_staged`]) return those
//! records instead, so a caller (the agent's turn) commits them together with the rest of its
//! step; only the idempotency claim (step 5) is always written at once, before the tool runs.
//!
//! [`ToolExecutionStore::claim_tool_execution`]: crate::store::ToolExecutionStore::claim_tool_execution

mod outcome;
mod run;
mod toolset;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

pub use outcome::{CallOutcome, CallRequest, Gate, InDoubtResolution, Permit, RefusalKind};
pub use toolset::{ToolEntry, ToolSet};

use crate::error::Result;
use crate::id::TenantId;
use crate::policy::{ActionOutcome, Decision, PolicyEvaluator, PolicyRequest};
use crate::redact::{hash_json, redact, scrub_text};
use crate::store::{ApprovalRequest, ApprovalStatus, NewAuditEntry, StateStore, Step, UsageMeter};

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
    /// with [`Error::Timeout`](crate::Error::Timeout).
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

    /// How old a `started` claim of an idempotent tool must be before the executor retries it
    /// (see [`CallOutcome::InDoubt`]).
    pub fn in_doubt_after(&self) -> Duration {
        self.inner.in_doubt_after
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

    /// Steps 1–4: cap, allow-list, validation, policy. A refusal, a denial or an approval
    /// request is recorded (audit entry, approval request) in one step before it returns.
    pub async fn decide(&self, request: CallRequest) -> Result<Gate> {
        let tenant = request.scope.tenant.clone();
        let mut step = Step::default();
        let gate = self.decide_staged(request, &mut step).await?;
        self.commit(&tenant, step).await?;
        Ok(gate)
    }

    /// [`decide`](Self::decide), adding what it records to `step` instead of writing it: the
    /// caller commits the step ([`StepStore::commit_step`](crate::store::StepStore::commit_step))
    /// before it reports the outcome (an approval request must exist before anyone is asked
    /// to decide it).
    pub async fn decide_staged(&self, request: CallRequest, step: &mut Step) -> Result<Gate> {
        let i = &*self.inner;
        let call = &request.call;
        if request.counters.calls_this_turn > i.max_calls_per_turn {
            let message = format!(
                "Not executed: at most {} tool calls are allowed in one turn.",
                i.max_calls_per_turn
            );
            return Ok(self.refuse(&request, RefusalKind::TooManyCalls, message, step));
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
            return Ok(self.refuse(&request, RefusalKind::UnknownTool, message, step));
        };
        if let Err(problems) = entry.validator().check_lines(&call.arguments, 10) {
            tracing::debug!(tool = %call.name, "invalid tool arguments refused");
            let message = format!(
                "Invalid arguments for `{}`:\n{problems}\nFix the arguments and call the tool again.",
                call.name
            );
            return Ok(self.refuse(&request, RefusalKind::InvalidArguments, message, step));
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
                self.audit_decision(&request, entry, &arguments, "deny", &reason, step);
                Ok(Gate::Done(CallOutcome::Denied { reason }))
            }
            Decision::RequireApproval { reason, priority } => {
                let reason = scrub_text(&reason, &arguments, &entry.spec().redact);
                let approval =
                    ApprovalRequest::new(&request.scope, call.clone(), reason.clone(), priority);
                step.approvals.push(approval.clone());
                self.audit_decision(
                    &request,
                    entry,
                    &arguments,
                    "require_approval",
                    &reason,
                    step,
                );
                Ok(Gate::Done(CallOutcome::NeedsApproval(Box::new(approval))))
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
        let tenant = request.scope.tenant.clone();
        let mut step = Step::default();
        let gate = self
            .decide_approved_staged(request, approval, &mut step)
            .await?;
        self.commit(&tenant, step).await?;
        Ok(gate)
    }

    /// [`decide_approved`](Self::decide_approved), adding what it records to `step` (see
    /// [`decide_staged`](Self::decide_staged)).
    pub async fn decide_approved_staged(
        &self,
        request: CallRequest,
        approval: &ApprovalRequest,
        step: &mut Step,
    ) -> Result<Gate> {
        let call = &request.call;
        let bound = approval.status == ApprovalStatus::Approved
            && approval.tenant == request.scope.tenant
            && approval.call.name == call.name
            && approval.arguments_hash == hash_json(&call.arguments)
            && hash_json(&approval.call.arguments) == approval.arguments_hash;
        if !bound {
            let message = "Not executed: the approval does not match the requested call.".into();
            return Ok(self.refuse(&request, RefusalKind::ApprovalMismatch, message, step));
        }
        let Some(entry) = self.inner.tools.get(&call.name) else {
            let message = format!(
                "Not executed: tool `{}` is no longer available to this agent.",
                call.name
            );
            return Ok(self.refuse(&request, RefusalKind::UnknownTool, message, step));
        };
        let arguments = approval.approved_arguments().clone();
        if approval.edited_arguments.is_some()
            && let Err(problems) = entry.validator().check_lines(&arguments, 10)
        {
            let message =
                format!("Not executed: the reviewer's edited arguments are invalid:\n{problems}");
            return Ok(self.refuse(&request, RefusalKind::InvalidArguments, message, step));
        }
        let automatic = approval.decided_automatically;
        let mut policy = self.policy_request(&request, entry, arguments.clone(), !automatic);
        policy.approved_automatically = automatic;
        match self.evaluate(&policy).await {
            Decision::Deny { reason } => {
                let reason = scrub_text(&reason, &arguments, &entry.spec().redact);
                self.audit_decision(&request, entry, &arguments, "deny", &reason, step);
                Ok(Gate::Done(CallOutcome::Denied { reason }))
            }
            // The policy does not accept an automatic approval for this call: a person must.
            Decision::RequireApproval { reason, .. } if automatic => {
                let message = format!(
                    "Not executed: this call needs a human's approval ({reason}); it was only \
                     approved automatically."
                );
                Ok(self.refuse(&request, RefusalKind::ApprovalMismatch, message, step))
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

    fn policy_request(
        &self,
        request: &CallRequest,
        entry: &ToolEntry,
        arguments: Value,
        approved_by_human: bool,
    ) -> PolicyRequest {
        let mut p = PolicyRequest::new(request.scope.clone(), request.call.name.clone(), arguments);
        p.side_effect = entry.spec().side_effect;
        p.hints = entry.spec().hints;
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

    /// Refuses a call: its `tool.refused` audit entry goes into `step`.
    fn refuse(
        &self,
        request: &CallRequest,
        kind: RefusalKind,
        message: String,
        step: &mut Step,
    ) -> Gate {
        let mut e = self.audit_entry(request, "tool.refused");
        e.decision = Some("refuse".into());
        e.reason = Some(format!("{}: {}", kind.as_str(), first_line(&message)));
        // Unknown tools have no redaction rules: keep only the hash of what was proposed.
        e.input = match self.inner.tools.get(&request.call.name) {
            Some(entry) => redact(&request.call.arguments, &entry.spec().redact).into(),
            None => json!({ "arguments_hash": hash_json(&request.call.arguments) }).into(),
        };
        step.audit.push(e);
        Gate::Done(CallOutcome::Refused { kind, message })
    }

    fn audit_decision(
        &self,
        request: &CallRequest,
        entry: &ToolEntry,
        arguments: &Value,
        decision: &str,
        reason: &str,
        step: &mut Step,
    ) {
        let mut e = self.audit_entry(request, "policy.decision");
        e.decision = Some(decision.into());
        e.reason = Some(reason.into());
        e.input = redact(arguments, &entry.spec().redact).into();
        step.audit.push(e);
    }

    /// Commits a step unless it is empty.
    async fn commit(&self, tenant: &TenantId, step: Step) -> Result<()> {
        if !step.is_empty() {
            self.inner.store.commit_step(tenant, step).await?;
        }
        Ok(())
    }

    fn audit_entry(&self, request: &CallRequest, kind: &str) -> NewAuditEntry {
        NewAuditEntry::scoped(
            &request.scope,
            kind,
            format!("agent:{}", request.scope.agent),
            request.call.name.clone(),
        )
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
