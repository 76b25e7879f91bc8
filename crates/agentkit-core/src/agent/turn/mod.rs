//! The turn loop and suspension; `resume.rs` continues a suspended run.

mod calls;
pub(crate) mod resume;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::ContextRequest;
use super::{
    Agent, AgentEvent, AgentInner, ModelSlot, RunOutcome, RunReport, RunRequest, Suspension,
    ToolCallSummary, apply_memory_policy, window,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id::RunId;
use crate::message::Message;
use crate::model::{CompletionRequest, CompletionResponse, StreamAccumulator, StreamEvent};
use crate::retrieval::{ScoredChunk, citations};
use crate::scope::Scope;
use crate::store::{
    Admission, ApprovalRequest, MessageWindow, PendingCall, RunRecord, RunStatus, SessionRecord,
    Step, StepMessages, UsageEvent, UsageKind,
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
        // A panic inside the run still ends the stream with an error, never a silent end.
        let result = unwind_to_error(f(tx)).await;
        // The receiver may be gone; the run itself is complete and persisted either way.
        let _ = done.send(result.map(AgentEvent::Done));
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Runs `fut`, turning a panic into [`Error::Internal`] so that the run is recorded as failed
/// and the caller gets an error instead of an aborted task.
pub(crate) async fn unwind_to_error<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            tracing::error!(panic = %what, "the run panicked");
            Err(Error::Internal(format!("the run panicked: {what}")))
        }
    }
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
    let tenant = request.tenant.clone().map_err(Error::InvalidInput)?;
    let session = request.session.clone().map_err(Error::InvalidInput)?;
    let run_id = request.run_id.clone().unwrap_or_else(RunId::generate);
    let scope = Scope::new(tenant, a.id.clone(), session, run_id);
    // OpenTelemetry GenAI semantic conventions (`gen_ai.*`) beside agentkit's own fields.
    let span = tracing::info_span!(
        "agent.turn",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.id = %a.id,
        tenant = %scope.tenant,
        agent = %a.id,
        session = %scope.session,
        run = %scope.run,
    );
    async move {
        let tenant = &scope.tenant;
        // Reads only: the session, its window and the run are written with the run's first
        // step (see `RunCtx::flush`).
        let existing = a.store.get_session(tenant, &scope.session).await?;
        if let Some(owner) = existing.as_ref().map(|s| &s.agent)
            && *owner != a.id
        {
            // A session belongs to the agent that created it: another agent of the tenant may
            // not read or extend its history.
            return Err(Error::PermissionDenied(format!(
                "session `{}` belongs to agent `{owner}`, not `{}`",
                scope.session, a.id
            )));
        }
        let window = if existing.is_some() {
            // The newest message is loaded even when the policy keeps no history: it tells
            // whether a suspended run still waits for its tool results.
            let load = match a.memory.store_window() {
                MessageWindow::Last(0) => MessageWindow::Last(1),
                other => other,
            };
            a.store.load_messages(tenant, &scope.session, load).await?
        } else {
            Vec::new()
        };
        if let Some(other) = window::unanswered_tail(&window)
            && let Some(r) = a.store.get_run(tenant, other).await?
            && r.status == RunStatus::Suspended
        {
            return Err(Error::SessionSuspended {
                session: scope.session.to_string(),
                run: r.id.to_string(),
            });
        }
        let new_session = existing.is_none().then(|| {
            let mut record =
                SessionRecord::new(tenant.clone(), scope.session.clone(), a.id.clone());
            record.metadata.clone_from(&request.metadata);
            record
        });
        let run = RunRecord::new(&scope);
        emit(
            &sink,
            AgentEvent::RunStarted {
                run: scope.run.clone(),
            },
        );

        let history = apply_memory_policy(&a.memory, window::repair(window, &scope.run, true));
        let user = Message::user(request.input.clone());

        let mut ctx = RunCtx {
            a,
            scope: scope.clone(),
            run,
            cancel: request.cancellation,
            confidence: request.confidence,
            metadata: request.metadata,
            sink,
            history: Arc::new(history),
            summaries: Vec::new(),
            answered_by: String::new(),
            sources: Vec::new(),
            output_retries: 0,
            admission: None,
            step: Step::default(),
            stored: Stored::New {
                session: new_session,
            },
        };
        ctx.persist(std::slice::from_ref(&user));
        ctx.remember(user);
        let result = unwind_to_error(async {
            ctx.build_prefix(&request.input).await?;
            ctx.drive().await
        })
        .await;
        ctx.finish(result).await
    }
    .instrument(span)
    .await
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

struct RunCtx<'a> {
    a: &'a AgentInner,
    scope: Scope,
    run: RunRecord,
    cancel: CancellationToken,
    confidence: Option<f64>,
    metadata: BTreeMap<String, String>,
    sink: Option<EventSink>,
    /// The conversation the model is sent: the prefix (system prompt, retrieved context),
    /// the window and this run's messages. Shared with each request (no copy per model call);
    /// appended through [`RunCtx::remember`].
    history: Arc<Vec<Message>>,
    summaries: Vec<ToolCallSummary>,
    answered_by: String,
    /// The chunks the retriever gave this run (the context block's order).
    sources: Vec<ScoredChunk>,
    output_retries: u32,
    /// The reservation of the model call whose usage is not recorded yet.
    admission: Option<Admission>,
    /// What the current step has produced and not written yet ([`RunCtx::flush`]).
    step: Step,
    /// Whether the run is in the store yet.
    stored: Stored,
}

/// A call of a turn: its pending state and, when it was decided or ran, its records.
type CallDone = (PendingCall, Option<Step>);

/// Whether a run's record is in the store.
pub(crate) enum Stored {
    /// Not yet: the first step inserts it, and creates the session when `session` is set.
    New { session: Option<SessionRecord> },
    /// Yes: each step updates it (compare-and-swap on its version).
    Yes,
}

/// The output tokens a model call is assumed to spend at most when the agent sets no
/// `max_tokens` (for the budget gate's estimate).
pub const OUTPUT_ESTIMATE_TOKENS: u64 = 4096;

impl RunCtx<'_> {
    /// Adds the prefix (system prompt, the host's assembled context, retrieved knowledge)
    /// before the conversation.
    async fn build_prefix(&mut self, query: &str) -> Result<()> {
        let a = self.a;
        let mut prefix = Vec::with_capacity(2 + a.context.len());
        if !a.system_prompt.is_empty() {
            prefix.push(Message::system(a.system_prompt.clone()));
        }
        if !a.context.is_empty() || a.retriever.is_some() {
            let request = ContextRequest {
                scope: self.scope.clone(),
                input: query.to_owned(),
                metadata: self.metadata.clone(),
            };
            let context = a.context_prefix(&request).await?;
            if context.retrieved {
                let mut event = self.usage_event(UsageKind::KnowledgeQuery, 1);
                event.resource = Some("retriever".into());
                self.append_usage(vec![event]).await;
            }
            prefix.extend(context.messages);
            self.sources = context.sources;
        }
        if !prefix.is_empty() {
            Arc::make_mut(&mut self.history).splice(0..0, prefix);
        }
        Ok(())
    }

    /// Appends a message to the conversation the model is sent (copy-free while no request
    /// holds it).
    fn remember(&mut self, message: Message) {
        Arc::make_mut(&mut self.history).push(message);
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
            let mut response = self.call_model().await?;
            self.run.turns += 1;
            self.run.usage.add(&response.usage);
            self.record_model_usage(&response).await;
            // The calls move into the assistant message (the history's copy is the one the
            // calls are processed from).
            let assistant = Message::Assistant {
                content: response.content.clone(),
                tool_calls: std::mem::take(&mut response.tool_calls),
            };
            let has_calls = !assistant.tool_calls().is_empty();
            self.persist(std::slice::from_ref(&assistant));
            self.remember(assistant);

            if !has_calls {
                match self.check_output(&response.content) {
                    Ok(structured) => return self.complete(response.content, structured).await,
                    Err(problem) if self.output_retries < limits.max_output_retries => {
                        self.output_retries += 1;
                        let correction = Message::user(format!(
                            "Your answer does not match the required JSON schema:\n{problem}\n\
                             Reply again with only JSON that matches the schema."
                        ));
                        self.persist(std::slice::from_ref(&correction));
                        self.remember(correction);
                        continue;
                    }
                    Err(problem) => return Err(Error::InvalidOutput(problem)),
                }
            }

            // A handle on the history keeps the calls readable while the run goes on; it is
            // dropped before the history grows again.
            let history = Arc::clone(&self.history);
            let calls = history.last().map(Message::tool_calls).unwrap_or_default();
            let pending = self.process_calls(calls).await?;
            drop(history);
            if pending
                .iter()
                .any(|p| matches!(p, PendingCall::AwaitingApproval { .. }))
            {
                for p in &pending {
                    if let PendingCall::Resolved { call, result } = p {
                        self.note_result(call.clone(), result);
                    }
                }
                return self.suspend(pending).await;
            }
            let mut results = Vec::with_capacity(pending.len());
            for p in pending {
                if let PendingCall::Resolved { call, result } = p {
                    self.note_result(call, &result);
                    results.push(result);
                }
            }
            self.persist(&results);
            Arc::make_mut(&mut self.history).extend(results);
            // The step's durable point: the answer, its calls' records and results, together.
            self.flush().await?;
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
        let mut request = CompletionRequest::new(a.model.model.clone(), Arc::clone(&self.history))
            .with_tools(a.tool_specs.clone());
        request.temperature = a.model.temperature;
        request.max_tokens = a.model.max_tokens;
        request.output_schema = a.output.as_ref().map(|(s, _)| s.clone());
        // Only the host's own metadata goes to the provider: ids stay with us.
        request.metadata.clone_from(&self.metadata);

        // The budget and quota gate: the estimate is reserved before the call and settled
        // with the actual usage after it (`record_model_usage`), or released on failure.
        let admission = if a.executor.is_metered() {
            let estimate = self.estimate_usage(&request);
            a.executor.admit_model_call(&estimate).await?
        } else {
            Admission::default()
        };
        let result = self.call_with_backup(request).await;
        match &result {
            Ok(_) => self.admission = Some(admission),
            Err(_) => a.executor.settle_usage(admission, &mut []).await,
        }
        result
    }

    /// What a model call may spend at most: the prompt's estimated tokens and the bounded
    /// output (`max_tokens`, or [`OUTPUT_ESTIMATE_TOKENS`] when the agent sets none).
    fn estimate_usage(&self, request: &CompletionRequest) -> Vec<UsageEvent> {
        let prompt: usize = request
            .messages
            .iter()
            .map(Message::estimated_tokens)
            .sum::<usize>()
            .saturating_add(
                request
                    .tools
                    .iter()
                    .map(|t| {
                        (t.name.len() + t.description.len() + t.parameters.to_string().len())
                            .div_ceil(4)
                    })
                    .sum(),
            );
        let output = request.max_tokens.map_or(OUTPUT_ESTIMATE_TOKENS, u64::from);
        [
            (
                UsageKind::InputTokens,
                u64::try_from(prompt).unwrap_or(u64::MAX),
            ),
            (UsageKind::OutputTokens, output),
        ]
        .into_iter()
        .map(|(kind, qty)| {
            let mut e = self.usage_event(kind, qty);
            e.resource = Some(request.model.clone());
            e
        })
        .collect()
    }

    async fn call_with_backup(
        &mut self,
        mut request: CompletionRequest,
    ) -> Result<CompletionResponse> {
        let a = self.a;
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
            gen_ai.operation.name = "chat",
            gen_ai.system = slot.provider.name(),
            gen_ai.request.model = %slot.model,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            provider = slot.provider.name(),
            model = %slot.model,
            tenant = %self.scope.tenant,
            agent = %self.a.id,
            session = %self.scope.session,
            run = %self.scope.run,
        );
        let started = std::time::Instant::now();
        let mut delivered = false;
        let result = async {
            if self.sink.is_none() {
                return slot.provider.complete(request).await;
            }
            let mut stream = slot.provider.stream(request).await?;
            let mut acc = StreamAccumulator::new();
            loop {
                // A cancelled run stops reading (and drops) the model's stream at once, so a
                // voice barge-in or a host's stop ends the generation, not just the next step.
                let next = tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return Err(Error::Cancelled),
                    next = stream.next() => next,
                };
                let Some(event) = next else { break };
                let event = event?;
                if let StreamEvent::TextDelta(text) = &event {
                    delivered = true;
                    emit(&self.sink, AgentEvent::TextDelta(text.clone()));
                }
                acc.push(&event)?;
            }
            acc.finish()
        }
        .instrument(span.clone())
        .await;
        if let Ok(r) = &result {
            span.record("gen_ai.response.model", r.model.as_str());
            // As i64: OpenTelemetry has no unsigned integers (a u64 arrives as text).
            let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            span.record("gen_ai.usage.input_tokens", tokens(r.usage.input_tokens));
            span.record("gen_ai.usage.output_tokens", tokens(r.usage.output_tokens));
        }
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

    async fn record_model_usage(&mut self, response: &CompletionResponse) {
        let mut events = UsageEvent::for_model_call(&self.scope, &response.usage, &response.model);
        let admission = self.admission.take().unwrap_or_default();
        self.a.executor.settle_usage(admission, &mut events).await;
        crate::store::step::append(&mut self.step.usage, events);
        emit(&self.sink, AgentEvent::Usage(response.usage));
    }

    /// Prices (when the agent has a meter) usage events and adds them to the step.
    async fn append_usage(&mut self, mut events: Vec<UsageEvent>) {
        self.a.executor.price_usage(&mut events).await;
        self.step.usage.extend(events);
    }

    fn usage_event(&self, kind: UsageKind, quantity: u64) -> UsageEvent {
        UsageEvent::scoped(&self.scope, kind, quantity)
    }

    fn check_output(&self, content: &str) -> std::result::Result<Option<Value>, String> {
        let Some((_, compiled)) = &self.a.output else {
            return Ok(None);
        };
        let text = strip_code_fence(content);
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        compiled.check_lines(&value, 10)?;
        Ok(Some(value))
    }

    /// Adds messages of this run to the step.
    fn persist(&mut self, messages: &[Message]) {
        if messages.is_empty() {
            return;
        }
        match &mut self.step.messages {
            Some(m) => m.messages.extend_from_slice(messages),
            None => {
                self.step.messages = Some(StepMessages::new(&self.scope, messages.to_vec()));
            }
        }
    }

    /// Writes the step: everything it produced and the run's state, in one
    /// [`commit_step`](crate::store::StepStore::commit_step). The run's first step inserts
    /// it (and creates a new session); later ones update it.
    async fn flush(&mut self) -> Result<()> {
        let mut step = std::mem::take(&mut self.step);
        let expected = self.run.version;
        let first = matches!(self.stored, Stored::New { .. });
        if let Stored::New { session } = &self.stored {
            step.session.clone_from(session);
            step.new_run = Some(self.run.clone());
        } else {
            self.run.version += 1;
            self.run.updated_at = Utc::now();
            step.run_update = Some((self.run.clone(), expected));
        }
        match self.a.store.commit_step(&self.scope.tenant, step).await {
            Ok(_) => {
                if first {
                    self.stored = Stored::Yes;
                }
                Ok(())
            }
            Err(e) => {
                self.run.version = expected;
                Err(e)
            }
        }
    }

    async fn suspend(&mut self, pending: Vec<PendingCall>) -> Result<RunOutcome> {
        // The approval requests were staged by the policy gate; they are written with the
        // suspension, so nobody is asked to decide a request that does not exist.
        let approvals: Vec<ApprovalRequest> = self
            .step
            .approvals
            .iter()
            .filter(|r| {
                pending.iter().any(|p| {
                    matches!(p, PendingCall::AwaitingApproval { approval, .. } if *approval == r.id)
                })
            })
            .cloned()
            .collect();
        self.run.pending = pending;
        self.run.status = RunStatus::Suspended;
        self.flush().await?;
        for approval in &approvals {
            emit_with(&self.sink, || {
                AgentEvent::ApprovalRequired(approval.clone())
            });
        }
        tracing::info!(approvals = approvals.len(), "run suspended for approval");
        Ok(RunOutcome::Suspended(Suspension {
            run: self.run.id.clone(),
            session: self.scope.session.clone(),
            approvals,
            tool_calls: std::mem::take(&mut self.summaries),
        }))
    }

    async fn complete(&mut self, reply: String, structured: Option<Value>) -> Result<RunOutcome> {
        self.run.status = RunStatus::Completed;
        self.run.reply = Some(reply.clone());
        self.flush().await?;
        let cited = citations(&reply, &self.sources);
        Ok(RunOutcome::Completed(RunReport {
            run: self.run.id.clone(),
            session: self.scope.session.clone(),
            reply,
            structured,
            usage: self.run.usage,
            turns: self.run.turns,
            tool_calls: std::mem::take(&mut self.summaries),
            answered_by: std::mem::take(&mut self.answered_by),
            citations: cited,
            sources: std::mem::take(&mut self.sources),
        }))
    }

    /// Records a failure on the run (best effort) and passes the result through. A failed run's
    /// messages are retracted (and the step's are not written), so the session's conversation
    /// holds no half exchange; its usage, tool records and audit entries are written.
    async fn finish(&mut self, result: Result<RunOutcome>) -> Result<RunOutcome> {
        if let Err(e) = &result {
            tracing::warn!(error = %e, "run failed");
            if matches!(self.stored, Stored::Yes)
                && let Err(retract) = self
                    .a
                    .store
                    .retract_messages(&self.scope.tenant, &self.scope.session, &self.run.id)
                    .await
            {
                // Windows repair what is left (see `window.rs`).
                tracing::warn!(error = %retract, "could not retract the failed run's messages");
            }
            self.step.messages = None;
            self.run.status = RunStatus::Failed;
            self.run.error = Some(e.to_string());
            if let Err(save) = self.flush().await {
                tracing::warn!(error = %save, "could not record the run failure");
            }
        }
        result
    }
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
