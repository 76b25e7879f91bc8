//! [`ToolRegistry`]: every tool of a host by namespaced name, per-agent allow-lists, and an
//! execution path with idempotency for calls the host makes itself (compensations).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::policy::pattern_matches;
use agentkit_core::redact::redact;
use agentkit_core::store::{
    NewAuditEntry, StateStore, ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind,
};
use agentkit_core::tool::{SideEffect, Tool, ToolContext};
use agentkit_core::{Error, Result};
use chrono::Utc;
use serde_json::{Value, json};

use crate::compensation::Compensation;
use crate::governed::GovernedTool;
use crate::metadata::{namespace_of, validate_namespaced_name};
use crate::schema::ArgumentValidator;

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
    validator: ArgumentValidator,
    output_validator: Option<ArgumentValidator>,
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
            let validator = ArgumentValidator::compile(&spec.parameters)
                .map_err(|e| Error::InvalidConfig(format!("tool `{name}` argument schema: {e}")))?;
            let output_validator = spec
                .output_schema
                .as_ref()
                .map(|s| {
                    ArgumentValidator::compile(s).map_err(|e| {
                        Error::InvalidConfig(format!("tool `{name}` output schema: {e}"))
                    })
                })
                .transpose()?;
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
                validator,
                output_validator,
            };
            if tools.insert(name.clone(), entry).is_some() {
                return Err(Error::InvalidConfig(format!(
                    "two tools are named `{name}`"
                )));
            }
        }
        for (name, entry) in &tools {
            if let Some(c) = &entry.compensation
                && !tools.contains_key(&c.tool)
            {
                return Err(Error::InvalidConfig(format!(
                    "tool `{name}`: its compensating tool `{}` is not registered",
                    c.tool
                )));
            }
        }
        Ok(ToolRegistry { tools })
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

    /// Runs a tool for the host (not for a model: no policy is asked), exactly once per
    /// idempotency key: a succeeded execution recorded under `ctx.idempotency_key` is replayed
    /// without running the tool. Otherwise the arguments are validated (the error lists every
    /// failing field), non-read tools get a `started` record first, and the execution is
    /// recorded (redacted), metered (`tool_call` usage event) and audited (`tool.call`).
    pub async fn execute(
        &self,
        store: &dyn StateStore,
        ctx: ToolContext,
        name: &str,
        arguments: Value,
    ) -> Result<Executed> {
        self.execute_as(store, ctx, name, arguments, "tool.call")
            .await
    }

    pub(crate) async fn execute_as(
        &self,
        store: &dyn StateStore,
        ctx: ToolContext,
        name: &str,
        arguments: Value,
        audit_kind: &str,
    ) -> Result<Executed> {
        let entry = self
            .tools
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("tool `{name}` is not in the registry")))?;
        let spec = entry.tool.spec();
        if let Some(prev) = store
            .get_tool_execution(&ctx.tenant, &ctx.idempotency_key)
            .await?
            && prev.status == ToolExecutionStatus::Succeeded
        {
            tracing::debug!(tool = name, key = %ctx.idempotency_key, "replaying a recorded tool result");
            return Ok(Executed {
                output: prev.output.unwrap_or(Value::Null),
                replayed: true,
            });
        }
        entry
            .validator
            .check(&arguments, &format!("arguments for `{name}`"))?;
        let mut record = ToolExecution {
            tenant: ctx.tenant.clone(),
            idempotency_key: ctx.idempotency_key.clone(),
            agent: ctx.agent.clone(),
            session: ctx.session.clone(),
            run: ctx.run.clone(),
            call_id: ctx.call_id.clone(),
            tool: name.to_string(),
            input: redact(&arguments, &spec.redact),
            output: None,
            error: None,
            status: ToolExecutionStatus::Started,
            started_at: Utc::now(),
            finished_at: None,
        };
        if spec.side_effect != SideEffect::Read {
            store.record_tool_execution(&record.tenant, &record).await?;
        }
        let outcome = match entry.tool.call(ctx.clone(), arguments).await {
            Ok(value) => match &entry.output_validator {
                Some(v) => v
                    .check(&value, &format!("output of `{name}`"))
                    .map(|()| value)
                    .map_err(|e| Error::Tool(e.to_string())),
                None => Ok(value),
            },
            Err(e) => Err(e),
        };
        record.finished_at = Some(Utc::now());
        match &outcome {
            Ok(value) => {
                record.status = ToolExecutionStatus::Succeeded;
                record.output = Some(redact(value, &spec.redact));
            }
            Err(e) => {
                record.status = ToolExecutionStatus::Failed;
                record.error = Some(e.to_string());
            }
        }
        store.record_tool_execution(&record.tenant, &record).await?;
        let mut usage = UsageEvent::new(
            ctx.tenant.clone(),
            ctx.agent.clone(),
            UsageKind::ToolCall,
            1,
        );
        usage.session = Some(ctx.session.clone());
        usage.run = Some(ctx.run.clone());
        usage.resource = Some(name.to_string());
        store.append_usage(std::slice::from_ref(&usage)).await?;
        let mut audit = NewAuditEntry::new(
            ctx.tenant.clone(),
            audit_kind,
            format!("agent:{}", ctx.agent),
            name,
        );
        audit.decision = Some("host".into());
        audit.reason = Some(
            match record.status {
                ToolExecutionStatus::Succeeded => "succeeded",
                ToolExecutionStatus::Failed => "failed",
                ToolExecutionStatus::Started => "started",
            }
            .into(),
        );
        audit.agent = Some(ctx.agent.clone());
        audit.session = Some(ctx.session.clone());
        audit.run = Some(ctx.run.clone());
        audit.input = record.input;
        audit.output = match (record.output, record.error) {
            (Some(o), _) => o,
            (None, Some(e)) => json!({ "error": e }),
            (None, None) => Value::Null,
        };
        store.append_audit(audit).await?;
        outcome.map(|output| Executed {
            output,
            replayed: false,
        })
    }
}
