//! What a governed call asks for and what comes of it.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::id::IdempotencyKey;
use crate::message::{Message, ToolCall, render, truncate};
use crate::policy::{CallCounters, PolicyRequest};
use crate::scope::Scope;
use crate::store::{ApprovalRequest, ToolExecution};

/// One proposed tool call, with everything the gate and the records need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallRequest {
    /// Who calls, for whom, in which session and run.
    pub scope: Scope,
    /// The call as proposed (by a model, a workflow node or the host).
    pub call: ToolCall,
    /// The key that makes the call happen at most once; stable across retries and resumes.
    pub key: IdempotencyKey,
    /// Per-turn and per-run counts for policies (and the per-turn cap).
    pub counters: CallCounters,
    /// The caller's confidence, passed to the policy.
    pub confidence: Option<f64>,
    /// Cancels the call; passed to the tool.
    pub cancellation: CancellationToken,
    /// The audit entry kind of the execution (`tool.call`; `tool.compensate` for undo calls).
    pub audit_kind: &'static str,
}

impl CallRequest {
    /// A request for `call` in `scope` under `key`, counted as the first call of its turn.
    pub fn new(scope: Scope, call: ToolCall, key: IdempotencyKey) -> Self {
        Self {
            scope,
            call,
            key,
            counters: CallCounters {
                calls_this_turn: 1,
                calls_this_run: 1,
                identical_calls_this_run: 0,
            },
            confidence: None,
            cancellation: CancellationToken::new(),
            audit_kind: "tool.call",
        }
    }

    /// Sets the counters.
    pub fn with_counters(mut self, counters: CallCounters) -> Self {
        self.counters = counters;
        self
    }

    /// Sets the confidence passed to the policy.
    pub fn with_confidence(mut self, confidence: Option<f64>) -> Self {
        self.confidence = confidence;
        self
    }

    /// Sets the cancellation token.
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancellation = token;
        self
    }

    /// Sets the audit kind of the execution entry.
    pub fn with_audit_kind(mut self, kind: &'static str) -> Self {
        self.audit_kind = kind;
        self
    }
}

/// Why a call was refused before the policy was asked (or, for an approved call, before it ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The tool is not in the executor's tool set (not on the agent's allow-list).
    UnknownTool,
    /// The arguments do not match the tool's schema.
    InvalidArguments,
    /// The call exceeds the per-turn call cap.
    TooManyCalls,
    /// The approval does not match the call (other tool, other arguments, not approved).
    ApprovalMismatch,
}

impl RefusalKind {
    /// `"unknown_tool"`, `"invalid_arguments"`, `"too_many_calls"`, `"approval_mismatch"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusalKind::UnknownTool => "unknown_tool",
            RefusalKind::InvalidArguments => "invalid_arguments",
            RefusalKind::TooManyCalls => "too_many_calls",
            RefusalKind::ApprovalMismatch => "approval_mismatch",
        }
    }
}

/// How one governed call ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The tool ran and returned `output` — or, with `replayed`, an earlier execution under the
    /// same key did, and its recorded (redacted) output is returned without running again.
    Succeeded {
        /// The output.
        output: Value,
        /// Whether it was replayed from the execution record.
        replayed: bool,
    },
    /// The tool ran (or may have) and failed; the message is for the model.
    Failed {
        /// The error.
        error: Error,
    },
    /// Refused before the policy was asked (audited as `tool.refused`).
    Refused {
        /// Why.
        kind: RefusalKind,
        /// For the model or the host.
        message: String,
    },
    /// The policy denied the call (audited as `policy.decision`).
    Denied {
        /// Why.
        reason: String,
    },
    /// The policy requires a human: the approval request is stored and audited; run the call
    /// again with [`super::ToolExecutor::execute_approved`] once it is decided.
    NeedsApproval(Box<ApprovalRequest>),
    /// An earlier execution under this key started and never finished (a crash, or it is still
    /// running elsewhere): its outcome is unknown, so the tool is not run again. Resolve it with
    /// [`super::ToolExecutor::resolve_in_doubt`]; idempotent tools are retried automatically
    /// once the claim is older than the executor's `in_doubt_after`.
    InDoubt {
        /// The `started` record.
        execution: ToolExecution,
    },
}

impl CallOutcome {
    /// What a model is told about this outcome of `call`: the output, or why there is none, in
    /// at most `limit` bytes; `prefix` goes before a denial's reason (a rejected approval).
    /// Every engine that drives an agent's turn (the agent's own loop, a Temporal workflow)
    /// shows the model the same text.
    pub fn into_message(self, call: &ToolCall, prefix: &str, limit: usize) -> Message {
        match self {
            CallOutcome::Succeeded { output, .. } => {
                Message::tool_result(&call.id, &call.name, render(&output, limit))
            }
            CallOutcome::Failed { error } => Message::tool_error(
                &call.id,
                &call.name,
                truncate(format!("The tool failed: {error}"), limit),
            ),
            CallOutcome::Refused { message, .. } => {
                Message::tool_error(&call.id, &call.name, truncate(message, limit))
            }
            CallOutcome::Denied { reason } => Message::tool_error(
                &call.id,
                &call.name,
                truncate(format!("{prefix}Denied by policy: {reason}"), limit),
            ),
            CallOutcome::InDoubt { execution } => Message::tool_error(
                &call.id,
                &call.name,
                format!(
                    "Not executed: an earlier attempt of this call (key {}) has an unknown \
                 outcome; a person must resolve it before it can run again.",
                    execution.idempotency_key
                ),
            ),
            // An agent turns approvals into pending calls before asking for a message.
            CallOutcome::NeedsApproval(_) => Message::tool_error(
                &call.id,
                &call.name,
                "Not executed: this call needs a human's approval.",
            ),
        }
    }

    /// `"succeeded"`, `"failed"`, `"refused"`, `"denied"`, `"needs_approval"`, `"in_doubt"`.
    pub fn label(&self) -> &'static str {
        match self {
            CallOutcome::Succeeded { .. } => "succeeded",
            CallOutcome::Failed { .. } => "failed",
            CallOutcome::Refused { .. } => "refused",
            CallOutcome::Denied { .. } => "denied",
            CallOutcome::NeedsApproval(_) => "needs_approval",
            CallOutcome::InDoubt { .. } => "in_doubt",
        }
    }
}

/// The gate's verdict: a [`Permit`] to run, or the call's final outcome.
#[derive(Debug)]
#[non_exhaustive]
// The permit is the common verdict and is moved once, to the executor; boxing it would cost an
// allocation on every allowed call.
#[allow(clippy::large_enum_variant)]
pub enum Gate {
    /// Allowed: pass the permit to [`super::ToolExecutor::run`].
    Allowed(Permit),
    /// Refused, denied or waiting for approval: nothing runs.
    Done(CallOutcome),
}

/// Proof that a call passed allow-list, validation and policy. Only the executor makes one, so
/// nothing can run a tool without passing the gate.
#[derive(Debug)]
pub struct Permit {
    pub(super) request: CallRequest,
    pub(super) arguments: Value,
    pub(super) policy: PolicyRequest,
}

impl Permit {
    /// The call this permit allows.
    pub fn call(&self) -> &ToolCall {
        &self.request.call
    }

    /// The arguments it will run with (an approver's edits applied).
    pub fn arguments(&self) -> &Value {
        &self.arguments
    }

    /// The idempotency key.
    pub fn key(&self) -> &IdempotencyKey {
        &self.request.key
    }
}

/// A human's (or an operator's) resolution of an in-doubt execution.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InDoubtResolution {
    /// The tool did not act (checked in the external system): the next execution under the key
    /// runs it again.
    NotRun {
        /// Who checked, and what they found.
        note: String,
    },
    /// The tool did act: record this output, which later executions under the key replay.
    Succeeded {
        /// The output to record (redacted by the tool's rules before it is stored).
        output: Value,
    },
}
