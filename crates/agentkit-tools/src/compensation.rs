//! Compensating actions and [`rollback`] of a run's effects.
//!
//! A tool declares the tool that undoes it and how to build that tool's arguments from the
//! original call's input and output (JSON pointers into `{"input": .., "output": ..}`). The
//! agent's execution records keep what is needed: each record holds the call's arguments and
//! output, redacted by the tool's rules, so [`crate::ToolRegistryBuilder::build`] refuses a
//! compensation that reads a redacted field. [`rollback`] then runs the compensations of a run's
//! completed calls, newest first, each under its own idempotency key, so running it again skips
//! what was already undone.

use std::collections::BTreeMap;

use agentkit_core::exec::ToolExecutor;
use agentkit_core::id::{IdempotencyKey, RunId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::store::{ToolExecution, ToolExecutionStatus};
use agentkit_core::tool::{SideEffect, ToolContext, validate_tool_name};
use agentkit_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::registry::ToolRegistry;

/// The suffix of a compensation's idempotency key: `{original key}:compensate`.
pub const COMPENSATION_KEY_SUFFIX: &str = ":compensate";

/// The compensating action of a tool: another tool, and how to build its arguments.
///
/// ```
/// use agentkit_tools::Compensation;
/// use serde_json::json;
///
/// let undo = Compensation::new("marketing.delete_campaign")
///     .pointer("campaign_id", "/output/id")
///     .constant("reason", json!("rolled back"));
/// let args = undo
///     .arguments_for(&json!({"name": "Spring"}), &json!({"id": "c-42"}))
///     .unwrap();
/// assert_eq!(args, json!({"campaign_id": "c-42", "reason": "rolled back"}));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Compensation {
    /// The compensating tool's name.
    pub tool: String,
    /// Its arguments: argument name → where the value comes from.
    #[serde(default)]
    pub arguments: BTreeMap<String, ArgumentSource>,
}

/// Where one argument of a compensating call comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArgumentSource {
    /// A JSON pointer into `{"input": <original arguments>, "output": <original output>}`, such
    /// as `/output/id` or `/input/email`.
    Pointer(String),
    /// A constant (`{"value": ...}` in configuration).
    Constant {
        /// The value.
        value: Value,
    },
}

impl Compensation {
    /// Compensation by `tool`, with no arguments yet.
    pub fn new(tool: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            arguments: BTreeMap::new(),
        }
    }

    /// Argument `name` from a JSON pointer into `{"input": .., "output": ..}`.
    pub fn pointer(mut self, name: impl Into<String>, pointer: impl Into<String>) -> Self {
        self.arguments
            .insert(name.into(), ArgumentSource::Pointer(pointer.into()));
        self
    }

    /// Argument `name` set to a constant.
    pub fn constant(mut self, name: impl Into<String>, value: Value) -> Self {
        self.arguments
            .insert(name.into(), ArgumentSource::Constant { value });
        self
    }

    /// Checks the compensation of tool `of` is well-formed.
    pub(crate) fn validate(&self, of: &str) -> Result<()> {
        validate_tool_name(&self.tool)
            .map_err(|e| Error::InvalidConfig(format!("tool `{of}`: compensating tool: {e}")))?;
        if self.tool == of {
            return Err(Error::InvalidConfig(format!(
                "tool `{of}` cannot compensate itself"
            )));
        }
        for (name, source) in &self.arguments {
            if let ArgumentSource::Pointer(p) = source
                && !(p == "/input"
                    || p == "/output"
                    || p.starts_with("/input/")
                    || p.starts_with("/output/"))
            {
                return Err(Error::InvalidConfig(format!(
                    "tool `{of}`: compensation argument `{name}` reads `{p}`: a pointer must start \
                     with `/input` or `/output` (e.g. `/output/id`)"
                )));
            }
        }
        Ok(())
    }

    /// Pointers of this compensation that a redaction rule masks (the execution record would
    /// not have the value), as `(argument, pointer, rule)`.
    pub(crate) fn redacted_sources<'a>(
        &'a self,
        rules: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        self.arguments.iter().filter_map(move |(name, source)| {
            let ArgumentSource::Pointer(p) = source else {
                return None;
            };
            let path = p
                .strip_prefix("/input")
                .or_else(|| p.strip_prefix("/output"))
                .unwrap_or(p);
            rules
                .iter()
                .find(|rule| masks(rule, path))
                .map(|rule| (name.as_str(), p.as_str(), rule.as_str()))
        })
    }

    /// The compensating call's arguments for an original call with `input` and `output`;
    /// `Err` names the pointer that found nothing.
    pub fn arguments_for(
        &self,
        input: &Value,
        output: &Value,
    ) -> std::result::Result<Value, String> {
        let mut args = Map::new();
        for (name, source) in &self.arguments {
            let value = match source {
                ArgumentSource::Constant { value } => value.clone(),
                ArgumentSource::Pointer(p) => {
                    let found = if p == "/input" {
                        Some(input)
                    } else if p == "/output" {
                        Some(output)
                    } else if let Some(rest) = p.strip_prefix("/input") {
                        input.pointer(rest)
                    } else if let Some(rest) = p.strip_prefix("/output") {
                        output.pointer(rest)
                    } else {
                        None
                    };
                    found.cloned().ok_or_else(|| {
                        format!("argument `{name}`: the original call has nothing at `{p}`")
                    })?
                }
            };
            args.insert(name.clone(), value);
        }
        Ok(Value::Object(args))
    }
}

/// Whether redaction `rule` masks the value at JSON pointer `path` (or part of it).
fn masks(rule: &str, path: &str) -> bool {
    if rule.starts_with('/') {
        path == rule
            || path.starts_with(&format!("{rule}/"))
            || rule.starts_with(&format!("{path}/"))
            || path.is_empty()
    } else {
        path.split('/')
            .skip(1)
            .any(|seg| seg.replace("~1", "/").replace("~0", "~") == rule)
            || path.is_empty()
    }
}

/// What [`rollback`] did for one recorded call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RollbackStep {
    /// The original call's idempotency key.
    pub key: IdempotencyKey,
    /// The original tool.
    pub tool: String,
    /// The compensating tool, when there is one.
    pub compensation: Option<String>,
    /// What happened.
    pub outcome: RollbackOutcome,
}

/// The outcome of one [`RollbackStep`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RollbackOutcome {
    /// The compensation ran now; its (redacted) output.
    Compensated(Value),
    /// An earlier rollback already ran it; its recorded (redacted) output.
    AlreadyCompensated(Value),
    /// The call changed something and nothing declares how to undo it.
    NotCompensable(String),
    /// The call never finished (a crash); whether it had an effect is unknown.
    Uncertain,
    /// The compensation failed; rollback stopped here (run it again to retry).
    Failed(String),
    /// Not attempted because an earlier compensation failed.
    NotRun,
}

/// What [`rollback`] did, newest call first.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RollbackReport {
    /// The run.
    pub run: RunId,
    /// One step per completed call that changed something, in the order they were undone.
    pub steps: Vec<RollbackStep>,
}

impl RollbackReport {
    /// Whether every effect was compensated (now or before).
    pub fn is_complete(&self) -> bool {
        self.steps.iter().all(|s| {
            matches!(
                s.outcome,
                RollbackOutcome::Compensated(_) | RollbackOutcome::AlreadyCompensated(_)
            )
        })
    }

    /// The compensating tools that ran in this invocation, in order.
    pub fn ran(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, RollbackOutcome::Compensated(_)))
            .filter_map(|s| s.compensation.as_deref())
            .collect()
    }
}

/// Runs the compensations of a run's completed calls in reverse order.
///
/// For each succeeded execution record of the run, newest first: the tool's compensation
/// arguments are built from the recorded input and output, and the compensating tool runs
/// through `executor` (the governed path: the host's policy, idempotency claim, record, metered
/// usage, audit as `tool.compensation`) under the key `{original key}:compensate` — so a second
/// rollback replays instead of running again.
/// Read-only and failed calls have nothing to undo. The first failing compensation stops the
/// rollback (later steps are [`RollbackOutcome::NotRun`]); run it again once the cause is
/// fixed. Concurrent rollbacks of one run must be serialized by the host.
///
/// Store errors are returned as errors; tool failures are steps.
pub async fn rollback(
    executor: &ToolExecutor,
    tenant: &TenantId,
    run: &RunId,
    registry: &ToolRegistry,
) -> Result<RollbackReport> {
    let executions = executor.store().list_tool_executions(tenant, run).await?;
    let mut steps = Vec::new();
    let mut failed = false;
    for exec in executions.iter().rev() {
        if exec
            .idempotency_key
            .as_str()
            .ends_with(COMPENSATION_KEY_SUFFIX)
        {
            continue;
        }
        let entry = registry.entry(&exec.tool);
        let side_effect = entry.map(|e| e.tool.spec().side_effect);
        let compensation = entry.and_then(|e| e.compensation.as_ref());
        if side_effect == Some(SideEffect::Read) && compensation.is_none() {
            continue;
        }
        let outcome = match exec.status {
            ToolExecutionStatus::Failed => continue,
            ToolExecutionStatus::Started => RollbackOutcome::Uncertain,
            ToolExecutionStatus::Succeeded if failed => RollbackOutcome::NotRun,
            ToolExecutionStatus::Succeeded => match (entry, compensation) {
                (None, _) => RollbackOutcome::NotCompensable(format!(
                    "tool `{}` is not in the registry",
                    exec.tool
                )),
                (Some(_), None) => RollbackOutcome::NotCompensable(format!(
                    "tool `{}` declares no compensation",
                    exec.tool
                )),
                (Some(_), Some(c)) => {
                    let outcome = compensate(executor, tenant, exec, c, registry).await?;
                    failed = matches!(outcome, RollbackOutcome::Failed(_));
                    outcome
                }
            },
        };
        steps.push(RollbackStep {
            key: exec.idempotency_key.clone(),
            tool: exec.tool.clone(),
            compensation: compensation.map(|c| c.tool.clone()),
            outcome,
        });
    }
    Ok(RollbackReport {
        run: run.clone(),
        steps,
    })
}

async fn compensate(
    executor: &ToolExecutor,
    tenant: &TenantId,
    exec: &ToolExecution,
    compensation: &Compensation,
    registry: &ToolRegistry,
) -> Result<RollbackOutcome> {
    let output = exec.output.clone().unwrap_or_default();
    let arguments = match compensation.arguments_for(&exec.input, &output) {
        Ok(a) => a,
        Err(problem) => {
            return Ok(RollbackOutcome::Failed(format!(
                "compensation `{}` of `{}`: {problem}",
                compensation.tool, exec.tool
            )));
        }
    };
    let key = IdempotencyKey::new(format!("{}{COMPENSATION_KEY_SUFFIX}", exec.idempotency_key))?;
    let scope = Scope::new(
        tenant.clone(),
        exec.agent.clone(),
        exec.session.clone(),
        exec.run.clone(),
    );
    let ctx = ToolContext::new(scope, format!("compensate:{}", exec.call_id), key);
    match registry
        .execute_as(
            executor,
            ctx,
            &compensation.tool,
            arguments,
            "tool.compensation",
        )
        .await
    {
        Ok(done) if done.replayed => Ok(RollbackOutcome::AlreadyCompensated(done.output)),
        Ok(done) => Ok(RollbackOutcome::Compensated(done.output)),
        Err(e) if e.kind() == ErrorKind::Storage => Err(e),
        Err(e) => Ok(RollbackOutcome::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_rules_that_hide_a_source_are_found() {
        let c = Compensation::new("crm.delete")
            .pointer("id", "/output/lead/id")
            .pointer("email", "/input/email");
        let found = |rules: &[&str]| {
            let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            c.redacted_sources(&rules)
                .map(|(n, _, _)| n.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(found(&["email"]), ["email"]);
        assert_eq!(found(&["/lead"]), ["id"]);
        assert_eq!(found(&["/lead/id/x"]), ["id"]);
        assert!(found(&["/lead/name", "phone"]).is_empty());
    }

    #[test]
    fn pointers_must_name_input_or_output() {
        assert!(
            Compensation::new("a.b")
                .pointer("x", "/id")
                .validate("a.c")
                .is_err()
        );
        assert!(Compensation::new("a.b").validate("a.b").is_err());
        let c = Compensation::new("a.b").pointer("x", "/output/missing");
        assert!(
            c.arguments_for(&json!({}), &json!({}))
                .unwrap_err()
                .contains("/output/missing")
        );
    }
}
