//! A turn's tool calls: decided in order, run concurrently, their records added to the step,
//! and what the model is told about each outcome.

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{CallDone, RunCtx, emit_with};
use crate::agent::{AgentEvent, ToolCallSummary};
use crate::error::Result;
use crate::exec::{CallOutcome, CallRequest, Gate};
use crate::id::IdempotencyKey;
use crate::message::{Message, ToolCall};
use crate::policy::CallCounters;
use crate::redact::hash_call;
use crate::store::{PendingCall, Step};

impl RunCtx<'_> {
    pub(super) fn idempotency_key(&self, index: usize) -> Result<IdempotencyKey> {
        IdempotencyKey::new(format!("{}:{}:{}", self.run.id, self.run.turns, index))
    }

    pub(super) fn call_request(
        &self,
        index: usize,
        call: &ToolCall,
        counters: CallCounters,
    ) -> Result<CallRequest> {
        Ok(CallRequest::new(
            self.scope.clone(),
            call.clone(),
            self.idempotency_key(index)?,
        )
        .with_counters(counters)
        .with_confidence(self.confidence)
        .with_cancellation(self.cancel.child_token()))
    }

    /// Decide every call in order (policy counters and approvals in the model's order), then
    /// run the permitted ones concurrently; results in call order. The caller notes each
    /// resolved call's result ([`Self::note_result`]).
    pub(super) async fn process_calls(&mut self, calls: &[ToolCall]) -> Result<Vec<PendingCall>> {
        let limits = self.a.limits;
        let mut gates = Vec::with_capacity(calls.len());
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
            let counters = CallCounters {
                calls_this_turn: index as u32 + 1,
                calls_this_run: self.run.tool_calls,
                identical_calls_this_run: identical as u32,
            };
            let request = self.call_request(index, call, counters)?;
            let executor = &self.a.executor;
            gates.push(executor.decide_staged(request, &mut self.step).await?);
        }
        let this = &*self;
        let futures: Vec<BoxFuture<'_, Result<CallDone>>> = gates
            .into_iter()
            .zip(calls)
            .map(|(gate, call)| {
                async move {
                    let outcome = match gate {
                        Gate::Allowed(permit) => {
                            emit_with(&this.sink, || {
                                AgentEvent::ToolCallStarted(ToolCall {
                                    id: call.id.clone(),
                                    name: call.name.clone(),
                                    arguments: permit.arguments().clone(),
                                })
                            });
                            this.a.executor.run_staged(permit).await?
                        }
                        Gate::Done(CallOutcome::NeedsApproval(approval)) => {
                            let pending = PendingCall::AwaitingApproval {
                                call: call.clone(),
                                approval: approval.id,
                                arguments_hash: approval.arguments_hash,
                            };
                            return Ok((pending, None));
                        }
                        Gate::Done(outcome) => (outcome, Step::default()),
                    };
                    let (outcome, records) = outcome;
                    let pending = PendingCall::Resolved {
                        call: call.clone(),
                        result: this.message_for(call, outcome, ""),
                    };
                    Ok((pending, Some(records)))
                }
                .boxed()
            })
            .collect();
        let outcomes: Vec<Result<CallDone>> = futures::stream::iter(futures)
            .buffered(limits.tool_concurrency)
            .collect()
            .await;
        // Every call that ran keeps its records even when another one failed: they are written
        // with the step (also when the run fails, see `finish`).
        let mut pending = Vec::with_capacity(outcomes.len());
        let mut first_error = None;
        for outcome in outcomes {
            match outcome {
                Ok((p, records)) => {
                    if let Some(records) = records {
                        self.step.merge(records)?;
                    }
                    pending.push(p);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(pending)
    }

    /// What the model is told about an outcome; `prefix` goes before a denial's reason.
    pub(super) fn message_for(
        &self,
        call: &ToolCall,
        outcome: CallOutcome,
        prefix: &str,
    ) -> Message {
        let limit = self.a.limits.max_tool_result_bytes;
        if let CallOutcome::Failed { error } = &outcome {
            tracing::info!(error = %error, "tool failed; the model is told");
        }
        outcome.into_message(call, prefix, limit)
    }

    /// Counts a resolved call's error, tells the event sink and keeps its summary for the report.
    pub(super) fn note_result(&mut self, call: ToolCall, result: &Message) {
        let is_error = matches!(result, Message::Tool { is_error: true, .. });
        if is_error {
            self.run.tool_errors += 1;
        }
        let summary = ToolCallSummary {
            call,
            result: result.text().to_string(),
            is_error,
        };
        emit_with(&self.sink, || AgentEvent::ToolCallFinished(summary.clone()));
        self.summaries.push(summary);
    }
}
