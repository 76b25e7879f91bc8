//! The tool contract.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::id::IdempotencyKey;
use crate::scope::Scope;

/// What a tool does to the world; policies and retries look at it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideEffect {
    /// Reads only; safe to repeat.
    #[default]
    Read,
    /// Writes to the host's own data.
    Write,
    /// Acts on the outside world (sends mail, spends money, calls an API).
    External,
}

/// The description of a tool that models and policies see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolSpec {
    /// Namespaced name, `namespace.action` (e.g. `crm.create_lead`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    pub parameters: Value,
    /// JSON schema of the output, when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Side-effect class.
    #[serde(default)]
    pub side_effect: SideEffect,
    /// Whether running it twice with the same arguments has the effect of running it once.
    /// The executor retries an idempotent call left in doubt by a crash; others wait for a
    /// human. Read tools count as idempotent whatever this says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent: bool,
    /// Argument fields masked in audit entries, execution records and traces (top-level names
    /// or JSON pointers such as `/card/number`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// What the tool's provider claims about it (an MCP server's tool annotations). Untrusted:
    /// the executor never derives [`ToolSpec::side_effect`] or [`ToolSpec::idempotent`] from
    /// them, and the policy engine's rules may only *tighten* on them (deny or require approval
    /// when a tool says it is destructive), never grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<ToolHints>,
}

/// Hints a tool's provider gives about its behaviour — the MCP tool annotations
/// (`readOnlyHint`, `destructiveHint`, `idempotentHint`, `openWorldHint`). **Untrusted**: a
/// server may say anything, so they are fed to the policy as facts about what the server
/// *claims*, never as permission (see [`ToolSpec::hints`]). An absent hint reads as the MCP
/// default: not read-only, destructive, not idempotent, open-world — the cautious reading.
///
/// ```
/// use agentkit_core::tool::ToolHints;
///
/// let claimed = ToolHints { read_only: Some(true), ..ToolHints::default() };
/// assert!(claimed.read_only());
/// // Unsaid: the cautious MCP defaults.
/// assert!(ToolHints::default().destructive());
/// assert!(!ToolHints::default().idempotent());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolHints {
    /// Claims not to modify its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Claims its updates may be destructive (meaningful when not read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    /// Claims repeated calls with the same arguments have no additional effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// Claims to interact with an open world of external entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

impl ToolHints {
    /// The read-only claim (default `false`).
    pub fn read_only(&self) -> bool {
        self.read_only.unwrap_or(false)
    }

    /// The destructive claim (default `true`; a read-only tool is never destructive).
    pub fn destructive(&self) -> bool {
        !self.read_only() && self.destructive.unwrap_or(true)
    }

    /// The idempotent claim (default `false`).
    pub fn idempotent(&self) -> bool {
        self.idempotent.unwrap_or(false)
    }

    /// The open-world claim (default `true`).
    pub fn open_world(&self) -> bool {
        self.open_world.unwrap_or(true)
    }

    /// Whether every hint set in `pattern` equals this tool's claim (absent claims read as
    /// their defaults). The policy engine's rules match tools with it.
    pub fn matches(&self, pattern: &ToolHints) -> bool {
        pattern.read_only.is_none_or(|v| v == self.read_only())
            && pattern.destructive.is_none_or(|v| v == self.destructive())
            && pattern.idempotent.is_none_or(|v| v == self.idempotent())
            && pattern.open_world.is_none_or(|v| v == self.open_world())
    }
}

impl ToolSpec {
    /// A spec with a name, a description and an argument schema; read-only, nothing redacted.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
            output_schema: None,
            side_effect: SideEffect::Read,
            idempotent: false,
            redact: Vec::new(),
            hints: None,
        }
    }

    /// Records what the tool's provider claims about it (see [`ToolSpec::hints`]).
    pub fn with_hints(mut self, hints: ToolHints) -> Self {
        self.hints = Some(hints);
        self
    }

    /// Declares the tool idempotent (see [`ToolSpec::idempotent`]).
    pub fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sets the side-effect class.
    pub fn with_side_effect(mut self, side_effect: SideEffect) -> Self {
        self.side_effect = side_effect;
        self
    }

    /// Sets the output schema.
    pub fn with_output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Adds fields to redact.
    pub fn with_redacted(mut self, fields: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Checks the spec is usable: a valid name and an object schema that compiles.
    pub fn validate(&self) -> Result<()> {
        validate_tool_name(&self.name)?;
        if !self.parameters.is_object() {
            return Err(Error::InvalidConfig(format!(
                "tool `{}`: the argument schema must be a JSON object",
                self.name
            )));
        }
        Ok(())
    }
}

/// The one tool-name rule, for every way of making a tool (`FnTool`, typed and derived tools,
/// HTTP tools, MCP tools): one or more `[A-Za-z0-9_-]` segments joined by dots, at most 128
/// bytes. A namespace (`crm.create_lead`) is recommended — it groups tools for allow-lists
/// (`crm.*`) — but bare names such as `get_weather` (what models and MCP servers often use) are
/// accepted.
pub fn validate_tool_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "tool name `{name}` is invalid: use dot-separated segments of letters, digits, `_` or `-`"
        )))
    }
}

/// What a tool call knows about where it runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ToolContext {
    /// The tenant (a tool must not touch other tenants' data), agent, session and run.
    pub scope: Scope,
    /// The model's call id.
    pub call_id: String,
    /// Stable across retries and resumes of the same call: pass it to external systems.
    pub idempotency_key: IdempotencyKey,
    /// Cancelled when the run is cancelled.
    pub cancellation: CancellationToken,
}

impl ToolContext {
    /// A context (the executor makes one per call; tests may too).
    pub fn new(scope: Scope, call_id: impl Into<String>, idempotency_key: IdempotencyKey) -> Self {
        Self {
            scope,
            call_id: call_id.into(),
            idempotency_key,
            cancellation: CancellationToken::new(),
        }
    }
}

/// A capability an agent can use.
///
/// The agent validates arguments against [`ToolSpec::parameters`] and asks the policy before
/// `call` runs, so `call` receives schema-valid arguments. Errors become tool results the model
/// sees; return [`Error::Tool`] with a message written for the model.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The spec.
    fn spec(&self) -> &ToolSpec;

    /// Runs the tool.
    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value>;
}

type BoxedHandler =
    dyn Fn(ToolContext, Value) -> Pin<Box<dyn Future<Output = Result<Value>> + Send>> + Send + Sync;

/// A tool from a spec and an async closure; handy for tests, examples and glue code.
///
/// ```
/// use agentkit_core::tool::{FnTool, ToolSpec};
/// use serde_json::json;
///
/// let echo = FnTool::new(
///     ToolSpec::new("util.echo", "Echoes its input", json!({"type": "object"})),
///     |_ctx, args| async move { Ok(args) },
/// );
/// # let _ = echo;
/// ```
pub struct FnTool {
    spec: ToolSpec,
    handler: Arc<BoxedHandler>,
}

impl FnTool {
    /// A tool calling `handler`.
    pub fn new<F, Fut>(spec: ToolSpec, handler: F) -> Self
    where
        F: Fn(ToolContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        Self {
            spec,
            handler: Arc::new(move |ctx, args| Box::pin(handler(ctx, args))),
        }
    }
}

impl std::fmt::Debug for FnTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool").field("spec", &self.spec).finish()
    }
}

#[async_trait]
impl Tool for FnTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        (self.handler)(ctx, arguments).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tool_names() {
        assert!(validate_tool_name("crm.create_lead").is_ok());
        assert!(validate_tool_name("search").is_ok());
        assert!(validate_tool_name("get_weather").is_ok());
        for bad in ["", "crm.", ".x", "crm create", "a..b"] {
            assert!(validate_tool_name(bad).is_err(), "{bad}");
        }
    }
}
