//! [`ToolRegistry`]: every tool of a host by namespaced name, per-agent allow-lists, and an
//! execution path with idempotency for calls the host makes itself (compensations).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::exec::{
    CallOutcome, CallRequest, RefusalKind, ToolEntry, ToolExecutor, ToolExecutorBuilder, ToolSet,
};
use agentkit_core::message::ToolCall;
use agentkit_core::policy::pattern_matches;
use agentkit_core::store::StateStore;
use agentkit_core::tool::{Tool, ToolContext};
use agentkit_core::{Error, Result};
use serde_json::Value;

use crate::compensation::Compensation;
use crate::governed::GovernedTool;
use crate::metadata::{namespace_of, validate_namespaced_name};

/// A tool as registered: the tool and its compensating action, if any.
///
/// Converts from `Arc<dyn Tool>`, `Arc<T: Tool>`, [`GovernedTool`] (keeping the compensation
/// its metadata declares) and the tools of this crate, so `register` takes any of them.
#[derive(Clone)]
pub struct RegisteredTool {
    tool: Arc<dyn Tool>,
    compensation: Option<Compensation>,
}

impl RegisteredTool {
    /// A tool without compensation.
    pub fn new(tool: Arc<dyn Tool>) -> Self {
        Self {
            tool,
            compensation: None,
        }
    }

    /// Declares (or replaces) the compensating action.
    pub fn with_compensation(mut self, compensation: Compensation) -> Self {
        self.compensation = Some(compensation);
        self
    }
}

impl std::fmt::Debug for RegisteredTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredTool")
            .field("name", &self.tool.spec().name)
            .field("compensation", &self.compensation)
            .finish()
    }
}

impl From<Arc<dyn Tool>> for RegisteredTool {
    fn from(tool: Arc<dyn Tool>) -> Self {
        Self::new(tool)
    }
}

impl<T: Tool + 'static> From<Arc<T>> for RegisteredTool {
    fn from(tool: Arc<T>) -> Self {
        Self::new(tool)
    }
}

impl From<GovernedTool> for RegisteredTool {
    fn from(tool: GovernedTool) -> Self {
        let compensation = tool.metadata().compensation.clone();
        Self {
            tool: Arc::new(tool),
            compensation,
        }
    }
}

/// The tool patterns an agent may use: exact names (`crm.lookup_lead`), `*` (everything), or a
/// trailing-`*` prefix (`crm.*`, `crm.delete_*`) — the same patterns as
/// [`agentkit_core::policy::AllowListPolicy`] and `AgentConfig::tools`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<String>,
}

impl Allowlist {
    /// An allow-list of `patterns`.
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `name` matches a pattern.
    pub fn allows(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| pattern_matches(p, name))
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

pub(crate) struct Entry {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) compensation: Option<Compensation>,
}

/// Every tool of a host by namespaced name.
///
/// ```
/// use std::sync::Arc;
/// use agentkit_core::tool::{FnTool, Tool, ToolSpec};
/// use agentkit_tools::{Allowlist, ToolRegistry};
/// use serde_json::json;
///
/// let tool = |name: &str| -> Arc<dyn Tool> {
///     Arc::new(FnTool::new(
///         ToolSpec::new(name, "A tool", json!({"type": "object"})),
///         |_ctx, args| async move { Ok(args) },
///     ))
/// };
/// let registry = ToolRegistry::builder()
///     .register(tool("crm.lookup_lead"))
///     .register(tool("crm.create_lead"))
///     .register(tool("billing.refund"))
///     .build()?;
/// assert_eq!(registry.namespaces(), ["billing", "crm"]);
///
/// // The model only sees what the agent's allow-list matches.
/// let tools = registry.for_agent(&Allowlist::new(["crm.*"]));
/// let names: Vec<_> = tools.iter().map(|t| t.spec().name.clone()).collect();
/// assert_eq!(names, ["crm.create_lead", "crm.lookup_lead"]);
/// # Ok::<(), agentkit_core::Error>(())
/// ```
pub struct ToolRegistry {
    tools: BTreeMap<String, Entry>,
    /// The same tools compiled once, for executors.
    set: Arc<ToolSet>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds a [`ToolRegistry`]; `build()` validates everything.
#[derive(Debug, Default)]
pub struct ToolRegistryBuilder {
    tools: Vec<RegisteredTool>,
}

impl ToolRegistryBuilder {
    /// Adds a tool.
    pub fn register(mut self, tool: impl Into<RegisteredTool>) -> Self {
        self.tools.push(tool.into());
        self
    }

    /// Adds tools.
    pub fn register_all<T: Into<RegisteredTool>>(
        mut self,
        tools: impl IntoIterator<Item = T>,
    ) -> Self {
        self.tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Validates and builds: names are namespaced and unique, schemas compile, and every
    /// compensation names a registered tool and reads no field the original tool redacts (its
    /// execution records would not have the value).
    pub fn build(self) -> Result<ToolRegistry> {
        let mut tools = BTreeMap::new();
        for registered in self.tools {
            let spec = registered.tool.spec();
            let name = spec.name.clone();
            validate_namespaced_name(&name)?;
            spec.validate()?;
            let compiled = ToolEntry::new(registered.tool.clone())?;
            if let Some(c) = &registered.compensation {
                c.validate(&name)?;
                if let Some((arg, pointer, rule)) = c.redacted_sources(&spec.redact).next() {
                    return Err(Error::InvalidConfig(format!(
                        "tool `{name}`: compensation argument `{arg}` reads `{pointer}`, which the \
                         redaction rule `{rule}` masks in execution records; compensate from a \
                         field that is not redacted"
                    )));
                }
            }
            let entry = Entry {
                tool: registered.tool,
                compensation: registered.compensation,
            };
            if tools.insert(name.clone(), (entry, compiled)).is_some() {
                return Err(Error::InvalidConfig(format!(
                    "two tools are named `{name}`"
                )));
            }
        }
        for (name, (entry, _)) in &tools {
            if let Some(c) = &entry.compensation
                && !tools.contains_key(&c.tool)
            {
                return Err(Error::InvalidConfig(format!(
                    "tool `{name}`: its compensating tool `{}` is not registered",
                    c.tool
                )));
            }
        }
        let mut set = ToolSet::default();
        let mut entries = BTreeMap::new();
        for (name, (entry, compiled)) in tools {
            set.insert(compiled)?;
            entries.insert(name, entry);
        }
        Ok(ToolRegistry {
            tools: entries,
            set: Arc::new(set),
        })
    }
}

/// The result of [`ToolRegistry::execute`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Executed {
    /// The output (redacted by the tool's rules when replayed: the record keeps no more).
    pub output: Value,
    /// Whether it was replayed from an earlier execution with the same idempotency key.
    pub replayed: bool,
}

impl ToolRegistry {
    /// A builder.
    pub fn builder() -> ToolRegistryBuilder {
        ToolRegistryBuilder::default()
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.tools.get(name)
    }

    /// The compensating action of a tool.
    pub fn compensation(&self, name: &str) -> Option<&Compensation> {
        self.tools.get(name).and_then(|e| e.compensation.as_ref())
    }

    /// Every tool name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// How many tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The namespaces (a name up to its last dot), sorted and unique.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.tools.keys().map(|n| namespace_of(n)).collect();
        out.dedup();
        out
    }

    /// The tools of one namespace (not of nested ones: `crm` holds `crm.x`, not `crm.notes.x`).
    pub fn namespace(&self, namespace: &str) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|(n, _)| namespace_of(n) == namespace)
            .map(|(_, e)| e.tool.clone())
            .collect()
    }

    /// The tools an agent may use, sorted by name: give these to `AgentBuilder::tools` so the
    /// model only sees (and can only call) allowed tools.
    pub fn for_agent(&self, allowlist: &Allowlist) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|(n, _)| allowlist.allows(n))
            .map(|(_, e)| e.tool.clone())
            .collect()
    }

    /// Fails naming every pattern that matches no registered tool (usually a typo).
    pub fn check_allowlist(&self, allowlist: &Allowlist) -> Result<()> {
        let unmatched: Vec<&str> = allowlist
            .patterns()
            .iter()
            .filter(|p| !self.tools.keys().any(|n| pattern_matches(p, n)))
            .map(String::as_str)
            .collect();
        if unmatched.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "allow-list patterns match no registered tool: {}",
                unmatched.join(", ")
            )))
        }
    }

    /// A [`ToolExecutor`] over every tool of the registry and `store`: the one governed path
    /// (allow-list, validation, policy, idempotency claim, call, record, metered usage,
    /// audit). Set the host's policy and meter on the builder, exactly as for an agent, so
    /// host-run calls and compensations are priced and inside the same budgets.
    pub fn executor(&self, store: Arc<dyn StateStore>) -> ToolExecutorBuilder {
        ToolExecutor::builder(self.set.clone(), store)
    }

    /// Runs a tool for the host through `executor` (made by [`ToolRegistry::executor`]),
    /// exactly once per idempotency key: a succeeded execution recorded under
    /// `ctx.idempotency_key` is replayed without running the tool, and a replay with other
    /// arguments is [`agentkit_core::ErrorKind::IdempotencyConflict`]. Errors: invalid arguments
    /// and unknown tools are `InvalidInput`/`NotFound`, a policy denial or approval requirement
    /// `PermissionDenied`, an execution in doubt `Conflict`, a failed tool its own error.
    pub async fn execute(
        &self,
        executor: &ToolExecutor,
        ctx: ToolContext,
        name: &str,
        arguments: Value,
    ) -> Result<Executed> {
        self.execute_as(executor, ctx, name, arguments, "tool.call")
            .await
    }

    pub(crate) async fn execute_as(
        &self,
        executor: &ToolExecutor,
        ctx: ToolContext,
        name: &str,
        arguments: Value,
        audit_kind: &'static str,
    ) -> Result<Executed> {
        let call = ToolCall::new(ctx.call_id.clone(), name, arguments);
        let request = CallRequest::new(ctx.scope, call, ctx.idempotency_key)
            .with_cancellation(ctx.cancellation)
            .with_audit_kind(audit_kind);
        match executor.execute(request).await? {
            CallOutcome::Succeeded { output, replayed } => Ok(Executed { output, replayed }),
            CallOutcome::Failed { error } => Err(error),
            CallOutcome::Refused {
                kind: RefusalKind::UnknownTool,
                message,
            } => Err(Error::NotFound(message)),
            CallOutcome::Refused { message, .. } => Err(Error::InvalidInput(message)),
            CallOutcome::Denied { reason } => Err(Error::PermissionDenied(reason)),
            CallOutcome::NeedsApproval(approval) => Err(Error::PermissionDenied(format!(
                "`{name}` needs a human's approval (request {}): {}",
                approval.id, approval.reason
            ))),
            CallOutcome::InDoubt { execution } => Err(Error::Conflict(format!(
                "an earlier execution under key {} has an unknown outcome; resolve it first",
                execution.idempotency_key
            ))),
            other => Err(Error::Internal(format!(
                "unexpected outcome `{}`",
                other.label()
            ))),
        }
    }
}
