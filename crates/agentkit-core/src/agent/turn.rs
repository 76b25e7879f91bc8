//! The turn loop, suspension and resume.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Agent, AgentEvent, AgentInner, ModelSlot, RunOutcome, RunReport, RunRequest, Suspension,
    ToolCallSummary, ToolEntry, apply_memory_policy,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{IdempotencyKey, RunId, SessionId, TenantId};
use crate::message::{Message, ToolCall};
use crate::model::{CompletionRequest, CompletionResponse, StreamAccumulator, StreamEvent};
use crate::policy::{ActionOutcome, CallCounters, Decision, PolicyRequest};
use crate::redact::{hash_call, hash_json, redact};
use crate::retrieval::format_context_block;
use crate::store::{
    ApprovalRequest, ApprovalStatus, NewAuditEntry, PendingCall, RunRecord, RunStatus,
    SessionRecord, ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind,
};

pub(crate) type EventSink = mpsc::UnboundedSender<Result<AgentEvent>>;

/// Drives `f` on a spawned task and returns its events as a stream ending with `Done`/error.
pub(crate) fn spawn_streamed<F, Fut>(f: F) -> BoxStream<'static, Result<AgentEvent>>
where
    F: FnOnce(EventSink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<RunOutcome>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let done = tx.clone();
    tokio::spawn(async move {
        let result = f(tx).await;
        // The receiver may be gone; the run itself is complete and persisted either way.
        let _ = done.send(result.map(AgentEvent::Done));
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

pub(crate) async fn run(
    agent: &Agent,
    request: RunRequest,
    sink: Option<EventSink>,
) -> Result<RunOutcome> {
    let a = &*agent.inner;
    if request.input.trim().is_empty() {
        return Err(Error::InvalidInput("the run input is empty".into()));
    }
    let run_id = request.run_id.clone().unwrap_or_else(RunId::generate);
    let span = tracing::info_span!(
        "agent.turn",
        tenant = %request.tenant,
        agent = %a.id,
        session = %request.session,
        run = %run_id,
    );
    async move {
        let tenant = request.tenant;
        let session = request.session;
        let mut record = SessionRecord::new(tenant.clone(), session.clone(), a.id.clone());
        record.metadata.clone_from(&request.metadata);
        a.store.create_session(&record).await?;
        let run = RunRecord::new(
            tenant.clone(),
            run_id.clone(),
            a.id.clone(),
            session.clone(),
        );
        a.store.create_run(&run).await?;
        emit(
            &sink,
            AgentEvent::RunStarted {
                run: run_id.clone(),
            },
        );

        let window = a
            .store
            .load_messages(&tenant, &session, a.memory.store_window())
            .await?;
        let mut history = apply_memory_policy(&a.memory, window);
        let user = Message::user(request.input.clone());
        a.store
            .append_messages(
                &tenant,
                &session,
                Some(&run_id),
                std::slice::from_ref(&user),
            )
            .await?;
        history.push(user);

        let mut ctx = RunCtx {
            a,
            tenant,
            session,
            run,
            cancel: request.cancellation,
            confidence: request.confidence,
            metadata: request.metadata,
            sink,
            prefix: Vec::new(),
            history,
            summaries: Vec::new(),
            answered_by: String::new(),
            output_retries: 0,
        };
        let result = match ctx.build_prefix(&request.input).await {
            Ok(()) => ctx.drive().await,
            Err(e) => Err(e),
        };
        ctx.finish(result).await
    }
    .instrument(span)
    .await
}

pub(crate) async fn resume(
    agent: &Agent,
    tenant: &TenantId,
    run_id: &RunId,
    sink: Option<EventSink>,
) -> Result<RunOutcome> {
    let a = &*agent.inner;
    let stored = a
        .store
        .get_run(tenant, run_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
    let span = tracing::info_span!(
        "agent.turn",
        tenant = %tenant,
        agent = %a.id,
        session = %stored.session,
        run = %run_id,
        resume = true,
    );
    async move {
        if stored.agent != a.id {
            return Err(Error::InvalidInput(format!(
                "run {run_id} belongs to agent `{}`, not `{}`",
                stored.agent, a.id
            )));
        }
        if stored.status != RunStatus::Suspended {
            return Ok(RunOutcome::AlreadyResumed {
                run: run_id.clone(),
                status: stored.status,
            });
        }
        let mut decided = HashMap::new();
        let mut pending = Vec::new();
        for p in &stored.pending {
            if let PendingCall::AwaitingApproval { approval, .. } = p {
                let request = a
                    .store
                    .get_approval(tenant, approval)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("approval {approval}")))?;
                if request.status == ApprovalStatus::Pending {
                    pending.push(request);
                } else {
                    decided.insert(approval.clone(), request);
                }
            }
        }
        if !pending.is_empty() {
            return Ok(RunOutcome::Suspended(Suspension {
                run: run_id.clone(),
                session: stored.session.clone(),
                approvals: pending,
                tool_calls: Vec::new(),
            }));
        }

        // Claim the run: exactly one resumer wins the compare-and-swap.
        let expected = stored.version;
        let mut run = stored;
        run.status = RunStatus::Running;
        run.version += 1;
        run.updated_at = Utc::now();
        if let Err(e) = a.store.update_run(&run, expected).await {
            if e.kind() == ErrorKind::Conflict {
                let status = a
                    .store
                    .get_run(tenant, run_id)
                    .await?
                    .map_or(RunStatus::Running, |r| r.status);
                return Ok(RunOutcome::AlreadyResumed {
                    run: run_id.clone(),
                    status,
                });
            }
            return Err(e);
        }

        let window = a
            .store
            .load_messages(tenant, &run.session, a.memory.store_window())
            .await?;
        let history = apply_memory_policy(&a.memory, window);
        let query = history
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::User { content } => Some(content.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let pending_calls = std::mem::take(&mut run.pending);
        let mut ctx = RunCtx {
            a,
            tenant: tenant.clone(),
            session: run.session.clone(),
            run,
            cancel: CancellationToken::new(),
            confidence: None,
            metadata: BTreeMap::new(),
            sink,
            prefix: Vec::new(),
            history,
            summaries: Vec::new(),
            answered_by: String::new(),
            output_retries: 0,
        };
        let result = async {
            ctx.build_prefix(&query).await?;
            let results = ctx.apply_decisions(pending_calls, &decided).await?;
            ctx.persist(&results).await?;
            ctx.history.extend(results);
            ctx.check_error_budget()?;
            ctx.drive().await
        }
        .await;
        ctx.finish(result).await
    }
    .instrument(span)
    .await
}

/// Decides an approval (exactly once, see [`crate::store::ApprovalStore::decide_approval`]) and
/// records the decision in the audit trail. Hosts call this from their approval endpoint, then
/// [`Agent::resume`].
pub async fn decide_approval(
    store: &dyn crate::store::StateStore,
    tenant: &TenantId,
    approval: &crate::id::ApprovalId,
    decision: &crate::store::ApprovalDecision,
) -> Result<ApprovalRequest> {
    let decided = store.decide_approval(tenant, approval, decision).await?;
    let mut entry = NewAuditEntry::new(
        tenant.clone(),
        "approval.decided",
        format!("user:{}", decision.reviewer),
        decided.call.name.clone(),
    );
    entry.decision = Some(decided.status.as_str().into());
    entry.reason.clone_from(&decided.comment);
    entry.agent = Some(decided.agent.clone());
    entry.session = Some(decided.session.clone());
    entry.run = Some(decided.run.clone());
    entry.input = json!({
        "approval": decided.id,
        "arguments_hash": decided.arguments_hash,
        "edited": decided.edited_arguments.is_some(),
    });
    store.append_audit(entry).await?;
    Ok(decided)
}

fn emit(sink: &Option<EventSink>, event: AgentEvent) {
    emit_with(sink, || event);
}

/// [`emit`], building the event (and its clones) only when the run is streamed.
fn emit_with(sink: &Option<EventSink>, event: impl FnOnce() -> AgentEvent) {
    if let Some(s) = sink {
        // A dropped receiver does not stop the run.
        let _ = s.send(Ok(event()));
    }
}

/// What to do with one proposed call after the gate.
enum Planned {
    Resolved(Message),
    Execute {
        index: usize,
        arguments: Value,
        request: PolicyRequest,
    },
    Approval(PendingCall),
}

struct RunCtx<'a> {
    a: &'a AgentInner,
    tenant: TenantId,
    session: SessionId,
    run: RunRecord,
    cancel: CancellationToken,
    confidence: Option<f64>,
    metadata: BTreeMap<String, String>,
    sink: Option<EventSink>,
    prefix: Vec<Message>,
    history: Vec<Message>,
    summaries: Vec<ToolCallSummary>,
    answered_by: String,
    output_retries: u32,
}

impl RunCtx<'_> {
    async fn build_prefix(&mut self, query: &str) -> Result<()> {
        let a = self.a;
        if !a.system_prompt.is_empty() {
            self.prefix.push(Message::system(a.system_prompt.clone()));
        }
        if let Some((retriever, top_k)) = &a.retriever {
            let span =
                tracing::info_span!("agent.retrieve", tenant = %self.tenant, agent = %a.id, top_k);
            let chunks = retriever
                .retrieve(&self.tenant, &a.id, query, *top_k)
                .instrument(span)
                .await?;
            let mut event = self.usage_event(UsageKind::KnowledgeQuery, 1);
            event.resource = Some("retriever".into());
            self.append_usage(vec![event]).await?;
            if !chunks.is_empty() {
                self.prefix
                    .push(Message::system(format_context_block(&chunks)));
            }
        }
        Ok(())
    }

    async fn drive(&mut self) -> Result<RunOutcome> {
        let limits = self.a.limits;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if self.run.turns >= limits.max_turns {
                return Err(Error::LimitExceeded {
                    limit: "max_turns",
                    detail: format!(
                        "the run made {} model calls without a final answer",
                        self.run.turns
                    ),
                });
            }
            let response = self.call_model().await?;
            self.run.turns += 1;
            self.run.usage.add(&response.usage);
            self.record_model_usage(&response).await?;
            let assistant = response.to_message();
            self.persist(std::slice::from_ref(&assistant)).await?;
            self.history.push(assistant);

            if response.tool_calls.is_empty() {
                match self.check_output(&response.content) {
                    Ok(structured) => return self.complete(response.content, structured).await,
                    Err(problem) if self.output_retries < limits.max_output_retries => {
                        self.output_retries += 1;
                        let correction = Message::user(format!(
                            "Your answer does not match the required JSON schema:\n{problem}\n\
                             Reply again with only JSON that matches the schema."
                        ));
                        self.persist(std::slice::from_ref(&correction)).await?;
                        self.history.push(correction);
                        continue;
                    }
                    Err(problem) => return Err(Error::InvalidOutput(problem)),
                }
            }

            let pending = self.process_calls(&response.tool_calls).await?;
            if pending
                .iter()
                .any(|p| matches!(p, PendingCall::AwaitingApproval { .. }))
            {
                return self.suspend(pending).await;
            }
            let results: Vec<Message> = pending
                .into_iter()
                .filter_map(|p| match p {
                    PendingCall::Resolved { result, .. } => Some(result),
                    PendingCall::AwaitingApproval { .. } => None,
                })
                .collect();
            self.persist(&results).await?;
            self.history.extend(results);
            self.check_error_budget()?;
        }
    }

    fn check_error_budget(&self) -> Result<()> {
        if self.run.tool_errors > self.a.limits.max_tool_errors {
            return Err(Error::LimitExceeded {
                limit: "max_tool_errors",
                detail: format!(
                    "{} tool calls failed or were refused in this run",
                    self.run.tool_errors
                ),
            });
        }
        Ok(())
    }

    async fn call_model(&mut self) -> Result<CompletionResponse> {
        let a = self.a;
        let mut messages = Vec::with_capacity(self.prefix.len() + self.history.len());
        messages.extend(self.prefix.iter().cloned());
        messages.extend(self.history.iter().cloned());
        let mut request = CompletionRequest::new(a.model.model.clone(), messages)
            .with_tools(a.tool_specs.clone());
        request.temperature = a.model.temperature;
        request.max_tokens = a.model.max_tokens;
        request.output_schema = a.output.as_ref().map(|(s, _)| s.clone());
        request.metadata.clone_from(&self.metadata);
        request
            .metadata
            .insert("tenant".into(), self.tenant.to_string());
        request.metadata.insert("agent".into(), a.id.to_string());
        request
            .metadata
            .insert("session".into(), self.session.to_string());
        request
            .metadata
            .insert("run".into(), self.run.id.to_string());

        let (result, delivered) = self.call_slot(&a.model, &request).await;
        match (result, &a.backup) {
            (Ok(r), _) => Ok(r),
            (Err(e), Some(backup)) if !delivered && e.kind() != ErrorKind::Cancelled => {
                tracing::warn!(error = %e, backup = %backup.model, "primary model failed; the backup agent's model answers");
                request.model.clone_from(&backup.model);
                request.temperature = backup.temperature.or(request.temperature);
                request.max_tokens = backup.max_tokens.or(request.max_tokens);
                self.call_slot(backup, &request).await.0
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Calls one provider; the flag says whether any text already reached the stream consumer.
    async fn call_slot(
        &mut self,
        slot: &ModelSlot,
        request: &CompletionRequest,
    ) -> (Result<CompletionResponse>, bool) {
        let span = tracing::info_span!(
            "model.call",
            provider = slot.provider.name(),
            model = %slot.model,
            tenant = %self.tenant,
            agent = %self.a.id,
            session = %self.session,
            run = %self.run.id,
        );
        let started = std::time::Instant::now();
        let mut delivered = false;
        let result = async {
            if self.sink.is_none() {
                return slot.provider.complete(request).await;
            }
            let mut stream = slot.provider.stream(request).await?;
            let mut acc = StreamAccumulator::new();
            while let Some(event) = stream.next().await {
                let event = event?;
                if let StreamEvent::TextDelta(text) = &event {
                    delivered = true;
                    emit(&self.sink, AgentEvent::TextDelta(text.clone()));
                }
                acc.push(&event);
            }
            acc.finish()
        }
        .instrument(span)
        .await;
        let result = result.map(|mut r| {
            if r.usage.latency.is_zero() {
                r.usage.latency = started.elapsed();
            }
            if r.model.is_empty() {
                r.model.clone_from(&slot.model);
            }
            let provider = if r.provider.is_empty() {
                slot.provider.name()
            } else {
                r.provider.as_str()
            };
            self.answered_by = format!("{provider}/{}", r.model);
            r
        });
        (result, delivered)
    }

    async fn record_model_usage(&mut self, response: &CompletionResponse) -> Result<()> {
        let u = &response.usage;
        let mut events = Vec::with_capacity(3);
        for (kind, qty) in [
            (
                UsageKind::InputTokens,
                u.input_tokens.saturating_sub(u.cached_input_tokens),
            ),
            (UsageKind::OutputTokens, u.output_tokens),
            (UsageKind::CachedInputTokens, u.cached_input_tokens),
        ] {
            if qty > 0 {
                let mut e = self.usage_event(kind, qty);
                e.resource = Some(response.model.clone());
                events.push(e);
            }
        }
        if !events.is_empty() {
            self.append_usage(events).await?;
        }
        emit(&self.sink, AgentEvent::Usage(response.usage));
        Ok(())
    }

    /// Prices (when the agent has a meter) and appends one step's usage events.
    async fn append_usage(&self, mut events: Vec<UsageEvent>) -> Result<()> {
        if let Some(meter) = &self.a.meter
            && let Err(e) = meter.meter(&mut events).await
        {
            tracing::warn!(error = %e, "usage could not be priced; recording it unpriced");
        }
        self.a.store.append_usage(&events).await
    }

    fn usage_event(&self, kind: UsageKind, quantity: u64) -> UsageEvent {
        let mut e = UsageEvent::new(self.tenant.clone(), self.a.id.clone(), kind, quantity);
        e.session = Some(self.session.clone());
        e.run = Some(self.run.id.clone());
        e
    }

    fn check_output(&self, content: &str) -> std::result::Result<Option<Value>, String> {
        let Some((_, compiled)) = &self.a.output else {
            return Ok(None);
        };
        let text = strip_code_fence(content);
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        compiled.check(&value, 10)?;
        Ok(Some(value))
    }

    async fn persist(&self, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.a
            .store
            .append_messages(&self.tenant, &self.session, Some(&self.run.id), messages)
            .await
            .map(|_| ())
    }

    fn policy_request(&self, call: &ToolCall, arguments: Value) -> PolicyRequest {
        let mut r = PolicyRequest::new(
            self.tenant.clone(),
            self.a.id.clone(),
            self.session.clone(),
            self.run.id.clone(),
            call.name.clone(),
            arguments,
        );
        r.confidence = self.confidence;
        if let Some(entry) = self.a.tools.get(&call.name) {
            r.side_effect = entry.tool.spec().side_effect;
        }
        r
    }

    fn idempotency_key(&self, index: usize) -> IdempotencyKey {
        IdempotencyKey::new(format!("{}:{}:{}", self.run.id, self.run.turns, index))
    }

    /// Gate every call, then execute the allowed ones concurrently; results in call order.
    async fn process_calls(&mut self, calls: &[ToolCall]) -> Result<Vec<PendingCall>> {
        let limits = self.a.limits;
        let mut planned = Vec::with_capacity(calls.len());
        for (index, call) in calls.iter().enumerate() {
            self.run.tool_calls += 1;
            let fingerprint = hash_call(&call.name, &call.arguments);
            let identical = self
                .run
                .call_fingerprints
                .iter()
                .filter(|f| **f == fingerprint)
                .count();
            self.run.call_fingerprints.push(fingerprint);
            let plan = self
                .gate(
                    index,
                    call,
                    CallCounters {
                        calls_this_turn: index as u32 + 1,
                        calls_this_run: self.run.tool_calls,
                        identical_calls_this_run: identical as u32,
                    },
                    limits.max_tool_calls_per_turn,
                )
                .await?;
            planned.push(plan);
        }
        let this = &*self;
        let futures: Vec<BoxFuture<'_, Result<PendingCall>>> = planned
            .into_iter()
            .zip(calls)
            .map(|(plan, call)| {
                async move {
                    match plan {
                        Planned::Resolved(result) => Ok(PendingCall::Resolved {
                            call: call.clone(),
                            result,
                        }),
                        Planned::Approval(p) => Ok(p),
                        Planned::Execute {
                            index,
                            arguments,
                            request,
                        } => {
                            let result = this.execute(index, call, arguments, &request).await?;
                            Ok(PendingCall::Resolved {
                                call: call.clone(),
                                result,
                            })
                        }
                    }
                }
                .boxed()
            })
            .collect();
        let outcomes: Vec<Result<PendingCall>> = futures::stream::iter(futures)
            .buffered(limits.tool_concurrency)
            .collect()
            .await;
        let pending = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
        for p in &pending {
            if let PendingCall::Resolved { call, result } = p {
                self.note_result(call, result);
            }
        }
        Ok(pending)
    }

    fn note_result(&mut self, call: &ToolCall, result: &Message) {
        let is_error = matches!(result, Message::Tool { is_error: true, .. });
        if is_error {
            self.run.tool_errors += 1;
        }
        let summary = ToolCallSummary {
            call: call.clone(),
            result: result.text().to_string(),
            is_error,
        };
        emit_with(&self.sink, || AgentEvent::ToolCallFinished(summary.clone()));
        self.summaries.push(summary);
    }

    async fn gate(
        &mut self,
        index: usize,
        call: &ToolCall,
        counters: CallCounters,
        max_per_turn: u32,
    ) -> Result<Planned> {
        let a = self.a;
        let limit = self.a.limits.max_tool_result_bytes;
        if index as u32 >= max_per_turn {
            return Ok(Planned::Resolved(Message::tool_error(
                &call.id,
                &call.name,
                format!("Not executed: at most {max_per_turn} tool calls are allowed in one turn."),
            )));
        }
        let Some(entry) = a.tools.get(&call.name) else {
            let available: Vec<&str> = a.tool_specs.iter().map(|s| s.name.as_str()).collect();
            return Ok(Planned::Resolved(Message::tool_error(
                &call.id,
                &call.name,
                truncate(
                    format!(
                        "Unknown tool `{}`. Available tools: {}.",
                        call.name,
                        if available.is_empty() {
                            "none".into()
                        } else {
                            available.join(", ")
                        }
                    ),
                    limit,
                ),
            )));
        };
        if let Err(problems) = entry.validator.check(&call.arguments, 10) {
            tracing::debug!(tool = %call.name, "invalid tool arguments returned to the model");
            return Ok(Planned::Resolved(Message::tool_error(
                &call.id,
                &call.name,
                truncate(
                    format!(
                        "Invalid arguments for `{}`:\n{problems}\nFix the arguments and call the tool again.",
                        call.name
                    ),
                    limit,
                ),
            )));
        }
        let mut request = self.policy_request(call, call.arguments.clone());
        request.counters = counters;
        match self.evaluate(&request).await {
            Decision::Allow => Ok(Planned::Execute {
                index,
                arguments: call.arguments.clone(),
                request,
            }),
            Decision::Deny { reason } => {
                self.audit_decision(entry, call, "deny", Some(reason.clone()))
                    .await?;
                Ok(Planned::Resolved(Message::tool_error(
                    &call.id,
                    &call.name,
                    truncate(format!("Denied by policy: {reason}"), limit),
                )))
            }
            Decision::RequireApproval { reason, priority } => {
                let approval = ApprovalRequest::new(
                    self.tenant.clone(),
                    a.id.clone(),
                    self.session.clone(),
                    self.run.id.clone(),
                    call.clone(),
                    reason.clone(),
                    priority,
                );
                a.store.create_approval(&approval).await?;
                self.audit_decision(entry, call, "require_approval", Some(reason))
                    .await?;
                emit_with(&self.sink, || {
                    AgentEvent::ApprovalRequired(approval.clone())
                });
                Ok(Planned::Approval(PendingCall::AwaitingApproval {
                    call: call.clone(),
                    approval: approval.id,
                    arguments_hash: approval.arguments_hash,
                }))
            }
        }
    }

    async fn evaluate(&self, request: &PolicyRequest) -> Decision {
        match self.a.policy.evaluate(request).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, action = %request.action, "policy evaluation failed; denying");
                Decision::deny(format!("policy evaluation failed: {e}"))
            }
        }
    }

    async fn audit_decision(
        &self,
        entry: &ToolEntry,
        call: &ToolCall,
        decision: &str,
        reason: Option<String>,
    ) -> Result<()> {
        let mut e = self.audit_entry("policy.decision", &call.name);
        e.decision = Some(decision.into());
        e.reason = reason;
        e.input = redact(&call.arguments, &entry.tool.spec().redact);
        self.a.store.append_audit(e).await.map(|_| ())
    }

    fn audit_entry(&self, kind: &str, action: &str) -> NewAuditEntry {
        let mut e = NewAuditEntry::new(
            self.tenant.clone(),
            kind,
            format!("agent:{}", self.a.id),
            action,
        );
        e.agent = Some(self.a.id.clone());
        e.session = Some(self.session.clone());
        e.run = Some(self.run.id.clone());
        e
    }

    /// Executes one allowed call with its idempotency key (replaying a recorded success).
    async fn execute(
        &self,
        index: usize,
        call: &ToolCall,
        arguments: Value,
        request: &PolicyRequest,
    ) -> Result<Message> {
        let a = self.a;
        let limit = a.limits.max_tool_result_bytes;
        let Some(entry) = a.tools.get(&call.name) else {
            return Ok(Message::tool_error(
                &call.id,
                &call.name,
                format!("Unknown tool `{}`.", call.name),
            ));
        };
        let spec = entry.tool.spec();
        let key = self.idempotency_key(index);
        let span = tracing::info_span!(
            "tool.call",
            tool = %call.name,
            call_id = %call.id,
            tenant = %self.tenant,
            agent = %a.id,
            session = %self.session,
            run = %self.run.id,
        );
        async move {
            if let Some(prev) = a.store.get_tool_execution(&self.tenant, &key).await?
                && prev.status == ToolExecutionStatus::Succeeded
            {
                tracing::debug!(key = %key, "replaying a recorded tool result");
                let output = prev.output.unwrap_or(Value::Null);
                return Ok(Message::tool_result(
                    &call.id,
                    &call.name,
                    render(&output, limit),
                ));
            }
            let mut record = ToolExecution {
                tenant: self.tenant.clone(),
                idempotency_key: key.clone(),
                agent: a.id.clone(),
                session: self.session.clone(),
                run: self.run.id.clone(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                input: redact(&arguments, &spec.redact),
                output: None,
                error: None,
                status: ToolExecutionStatus::Started,
                started_at: Utc::now(),
                finished_at: None,
            };
            if spec.side_effect != crate::tool::SideEffect::Read {
                // A crash after this line leaves `started`; a retry runs again with the same key.
                a.store.record_tool_execution(&record).await?;
            }
            emit_with(&self.sink, || {
                AgentEvent::ToolCallStarted(ToolCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: arguments.clone(),
                })
            });
            let mut ctx = crate::tool::ToolContext::new(
                self.tenant.clone(),
                a.id.clone(),
                self.session.clone(),
                self.run.id.clone(),
                call.id.clone(),
                key,
            );
            ctx.cancellation = self.cancel.child_token();
            let outcome = match entry.tool.call(ctx, arguments).await {
                Ok(value) => match &entry.output_validator {
                    Some(v) => v.check(&value, 5).map(|()| value).map_err(|p| {
                        Error::Tool(format!(
                            "the tool returned output that does not match its output schema: {p}"
                        ))
                    }),
                    None => Ok(value),
                },
                Err(e) => Err(e),
            };
            record.finished_at = Some(Utc::now());
            let (message, action_outcome) = match &outcome {
                Ok(value) => {
                    record.status = ToolExecutionStatus::Succeeded;
                    record.output = Some(redact(value, &spec.redact));
                    (
                        Message::tool_result(&call.id, &call.name, render(value, limit)),
                        ActionOutcome::Succeeded,
                    )
                }
                Err(e) => {
                    record.status = ToolExecutionStatus::Failed;
                    record.error = Some(e.to_string());
                    tracing::info!(error = %e, "tool failed; the model is told");
                    (
                        Message::tool_error(
                            &call.id,
                            &call.name,
                            truncate(format!("The tool failed: {e}"), limit),
                        ),
                        ActionOutcome::Failed,
                    )
                }
            };
            a.store.record_tool_execution(&record).await?;
            let mut usage = self.usage_event(UsageKind::ToolCall, 1);
            usage.resource = Some(call.name.clone());
            self.append_usage(vec![usage]).await?;
            let mut audit = self.audit_entry("tool.call", &call.name);
            audit.decision = Some("allow".into());
            audit.reason = Some(record_status(record.status).into());
            audit.input = record.input;
            audit.output = match (record.output, record.error) {
                (Some(o), _) => o,
                (None, Some(e)) => json!({ "error": e }),
                (None, None) => Value::Null,
            };
            a.store.append_audit(audit).await?;
            if let Err(e) = a.policy.record_outcome(request, &action_outcome).await {
                tracing::warn!(error = %e, "policy could not record the outcome");
            }
            Ok(message)
        }
        .instrument(span)
        .await
    }

    /// Turns decided approvals into tool results (executing approved calls), in call order.
    async fn apply_decisions(
        &mut self,
        pending: Vec<PendingCall>,
        decided: &HashMap<crate::id::ApprovalId, ApprovalRequest>,
    ) -> Result<Vec<Message>> {
        let limit = self.a.limits.max_tool_result_bytes;
        let mut results = Vec::with_capacity(pending.len());
        for (index, p) in pending.into_iter().enumerate() {
            match p {
                PendingCall::Resolved { result, .. } => results.push(result),
                PendingCall::AwaitingApproval {
                    call,
                    approval,
                    arguments_hash,
                } => {
                    let request = decided
                        .get(&approval)
                        .ok_or_else(|| Error::Internal(format!("approval {approval} vanished")))?;
                    let result = match request.status {
                        ApprovalStatus::Approved => {
                            self.run_approved(index, &call, request, &arguments_hash)
                                .await?
                        }
                        ApprovalStatus::Rejected => Message::tool_error(
                            &call.id,
                            &call.name,
                            truncate(
                                format!(
                                    "A human reviewer ({}) rejected this call{}",
                                    request.reviewer.as_deref().unwrap_or("unknown"),
                                    request
                                        .comment
                                        .as_deref()
                                        .map(|c| format!(": {c}"))
                                        .unwrap_or_else(|| ".".into())
                                ),
                                limit,
                            ),
                        ),
                        ApprovalStatus::Expired | ApprovalStatus::Pending => Message::tool_error(
                            &call.id,
                            &call.name,
                            "Not executed: the approval request expired without a decision.",
                        ),
                    };
                    self.note_result(&call, &result);
                    results.push(result);
                }
            }
        }
        Ok(results)
    }

    async fn run_approved(
        &self,
        index: usize,
        call: &ToolCall,
        approval: &ApprovalRequest,
        arguments_hash: &str,
    ) -> Result<Message> {
        let limit = self.a.limits.max_tool_result_bytes;
        // The approval binds to the exact arguments that were submitted.
        if approval.call.name != call.name
            || hash_json(&approval.call.arguments) != arguments_hash
            || approval.arguments_hash != arguments_hash
        {
            return Ok(Message::tool_error(
                &call.id,
                &call.name,
                "Not executed: the approval does not match the requested call.",
            ));
        }
        let Some(entry) = self.a.tools.get(&call.name) else {
            return Ok(Message::tool_error(
                &call.id,
                &call.name,
                format!(
                    "Not executed: tool `{}` is no longer available to this agent.",
                    call.name
                ),
            ));
        };
        let arguments = approval.approved_arguments().clone();
        if approval.edited_arguments.is_some()
            && let Err(problems) = entry.validator.check(&arguments, 10)
        {
            return Ok(Message::tool_error(
                &call.id,
                &call.name,
                truncate(
                    format!(
                        "Not executed: the reviewer's edited arguments are invalid:\n{problems}"
                    ),
                    limit,
                ),
            ));
        }
        let mut request = self.policy_request(call, arguments.clone());
        request.approved_by_human = true;
        match self.evaluate(&request).await {
            Decision::Deny { reason } => {
                let mut c = call.clone();
                c.arguments = arguments;
                self.audit_decision(entry, &c, "deny", Some(reason.clone()))
                    .await?;
                Ok(Message::tool_error(
                    &call.id,
                    &call.name,
                    truncate(format!("Approved, but denied by policy: {reason}"), limit),
                ))
            }
            // A human approved these exact arguments; a second approval is not asked for.
            Decision::Allow | Decision::RequireApproval { .. } => {
                self.execute(index, call, arguments, &request).await
            }
        }
    }

    async fn suspend(&mut self, pending: Vec<PendingCall>) -> Result<RunOutcome> {
        let a = self.a;
        let mut approvals = Vec::new();
        for p in &pending {
            if let PendingCall::AwaitingApproval { approval, .. } = p
                && let Some(r) = a.store.get_approval(&self.tenant, approval).await?
            {
                approvals.push(r);
            }
        }
        self.run.pending = pending;
        self.run.status = RunStatus::Suspended;
        self.save_run().await?;
        tracing::info!(approvals = approvals.len(), "run suspended for approval");
        Ok(RunOutcome::Suspended(Suspension {
            run: self.run.id.clone(),
            session: self.session.clone(),
            approvals,
            tool_calls: std::mem::take(&mut self.summaries),
        }))
    }

    async fn complete(&mut self, reply: String, structured: Option<Value>) -> Result<RunOutcome> {
        self.run.status = RunStatus::Completed;
        self.run.reply = Some(reply.clone());
        self.save_run().await?;
        Ok(RunOutcome::Completed(RunReport {
            run: self.run.id.clone(),
            session: self.session.clone(),
            reply,
            structured,
            usage: self.run.usage,
            turns: self.run.turns,
            tool_calls: std::mem::take(&mut self.summaries),
            answered_by: std::mem::take(&mut self.answered_by),
        }))
    }

    async fn save_run(&mut self) -> Result<()> {
        let expected = self.run.version;
        self.run.version += 1;
        self.run.updated_at = Utc::now();
        self.a.store.update_run(&self.run, expected).await
    }

    /// Records a failure on the run (best effort) and passes the result through.
    async fn finish(&mut self, result: Result<RunOutcome>) -> Result<RunOutcome> {
        if let Err(e) = &result {
            tracing::warn!(error = %e, "run failed");
            self.run.status = RunStatus::Failed;
            self.run.error = Some(e.to_string());
            if let Err(save) = self.save_run().await {
                tracing::warn!(error = %save, "could not record the run failure");
            }
        }
        result
    }
}

fn record_status(s: ToolExecutionStatus) -> &'static str {
    match s {
        ToolExecutionStatus::Started => "started",
        ToolExecutionStatus::Succeeded => "succeeded",
        ToolExecutionStatus::Failed => "failed",
    }
}

/// What the model is shown for a tool output.
fn render(value: &Value, limit: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(text, limit)
}

fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut cut = limit.saturating_sub(16);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …[truncated]");
    }
    text
}

fn strip_code_fence(content: &str) -> &str {
    let t = content.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        if let Some(body) = rest.strip_suffix("```") {
            return body.trim();
        }
    }
    t
}
