//! [`McpToolServer`]: a host's governed tools served over MCP — on stdio, or as a Streamable
//! HTTP tower service the host mounts in axum.
//!
//! Every `tools/call` runs through the host's [`ToolExecutor`]: the same allow-list, schema
//! validation, policy (RBAC, budgets, approvals), idempotency, metering and audit as a call
//! from an agent. The caller's tenant and principal come from the transport: the
//! [`Authenticator`] for HTTP, a fixed [`McpCaller`] for stdio (the process's own identity).

mod caller;
mod http;

use std::sync::Arc;

use agentkit_core::exec::{CallOutcome, CallRequest, ToolExecutor};
use agentkit_core::id::{ApprovalId, IdempotencyKey, RunId, SessionId};
use agentkit_core::message::ToolCall;
use agentkit_core::scope::Scope;
use agentkit_core::store::{RunRecord, RunStatus, SessionRecord, StateStore};
use agentkit_core::tool::{SideEffect, ToolSpec};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

pub use caller::{AuthError, Authenticator, BearerTokens, FixedCaller, McpCaller};
pub use http::{McpHttpConfig, McpHttpService};

use crate::error::McpError;

/// The `_meta` key of a call's idempotency key (stable across a client's retries: a repeated
/// key replays the recorded result instead of running the tool again).
pub const IDEMPOTENCY_KEY_META: &str = "io.agentkit/idempotency-key";
/// The `_meta` key naming a decided approval request, to run a call that needed approval.
pub const APPROVAL_META: &str = "io.agentkit/approval";

/// A host's tools as an MCP server.
///
/// ```no_run
/// # async fn demo(registry: agentkit_tools::ToolRegistry,
/// #               store: std::sync::Arc<dyn agentkit_core::store::StateStore>,
/// #               policy: std::sync::Arc<dyn agentkit_core::policy::PolicyEvaluator>)
/// #               -> Result<(), Box<dyn std::error::Error>> {
/// use agentkit_core::id::{AgentId, TenantId};
/// use agentkit_mcp::server::{McpCaller, McpToolServer};
///
/// let executor = registry.executor(store.clone()).policy(policy).build();
/// let server = McpToolServer::new(executor, store, "acme-tools");
/// // Over stdio, as one fixed caller:
/// server
///     .serve_stdio(McpCaller::new(TenantId::new("acme")?, AgentId::new("desktop")?))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpToolServer {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    executor: ToolExecutor,
    store: Arc<dyn StateStore>,
    info: Implementation,
    instructions: Option<String>,
    tools: Arc<Vec<rmcp::model::Tool>>,
    /// The caller of a stdio connection (HTTP requests carry theirs).
    fixed_caller: Option<McpCaller>,
}

impl std::fmt::Debug for McpToolServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpToolServer")
            .field("name", &self.inner.info.name)
            .field("tools", &self.inner.tools.len())
            .finish_non_exhaustive()
    }
}

impl McpToolServer {
    /// Serves the tools of `executor` (build it with `ToolRegistry::executor(store)` and the
    /// host's policy and meter), recording approvals in `store`, as server `name`.
    pub fn new(
        executor: ToolExecutor,
        store: Arc<dyn StateStore>,
        name: impl Into<String>,
    ) -> Self {
        let tools = executor.tools().specs().iter().map(mcp_tool).collect();
        Self {
            inner: Arc::new(Inner {
                executor,
                store,
                info: Implementation::new(name.into(), env!("CARGO_PKG_VERSION")),
                instructions: None,
                tools: Arc::new(tools),
                fixed_caller: None,
            }),
        }
    }

    /// Serves every tool of `registry` under `policy` (no meter: build the executor yourself
    /// with `registry.executor(store).policy(..).meter(..)` and use [`McpToolServer::new`] to
    /// price calls).
    pub fn from_registry(
        registry: &agentkit_tools::ToolRegistry,
        store: Arc<dyn StateStore>,
        policy: Arc<dyn agentkit_core::policy::PolicyEvaluator>,
        name: impl Into<String>,
    ) -> Self {
        let executor = registry.executor(store.clone()).policy(policy).build();
        Self::new(executor, store, name)
    }

    /// Instructions for the client's model.
    pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).instructions = Some(instructions.into());
        self
    }

    /// Serves one client on this process's stdin and stdout until it disconnects; every call
    /// acts as `caller`.
    pub async fn serve_stdio(&self, caller: McpCaller) -> Result<(), McpError> {
        self.serve_io(caller, tokio::io::stdin(), tokio::io::stdout())
            .await
    }

    /// Serves one client over a byte stream pair (a pipe, a socket, an in-memory duplex) until
    /// it disconnects; every call acts as `caller`.
    pub async fn serve_io<R, W>(
        &self,
        caller: McpCaller,
        reader: R,
        writer: W,
    ) -> Result<(), McpError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let mut server = self.clone();
        Arc::make_mut(&mut server.inner).fixed_caller = Some(caller);
        let name = self.inner.info.name.clone();
        let running = server
            .serve((reader, writer))
            .await
            .map_err(|e| McpError::Handshake {
                server: name.clone(),
                reason: e.to_string(),
            })?;
        running.waiting().await.map_err(|e| McpError::Closed {
            server: name,
            context: format!("the server task failed: {e}"),
        })?;
        Ok(())
    }

    /// A Streamable HTTP service (a tower `Service`) to mount in axum or any tower server;
    /// every request is authenticated by `authenticator` first (`401` otherwise).
    pub fn http_service(
        &self,
        authenticator: Arc<dyn Authenticator>,
        config: McpHttpConfig,
    ) -> McpHttpService {
        McpHttpService::new(self.clone(), authenticator, config)
    }

    /// One governed call. Each call is a one-step run of the caller's principal, recorded in
    /// the store (so an approval request has its run, and the run's status says how it
    /// ended); a call carrying a decided approval continues that approval's run.
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller(&context)?;
        let store = &self.inner.store;
        // rmcp moves the request's `_meta` into the context.
        let meta_str = |key: &str| {
            context
                .meta
                .0
                .get(key)
                .or_else(|| request.meta.as_ref().and_then(|m| m.0.get(key)))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let approval = match meta_str(APPROVAL_META) {
            Some(id) => {
                let id = ApprovalId::new(&id)
                    .map_err(|e| ErrorData::invalid_params(format!("approval id: {e}"), None))?;
                let decided = store
                    .get_approval(&caller.tenant, &id)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| {
                        ErrorData::invalid_params(format!("no approval request `{id}`"), None)
                    })?;
                Some(decided)
            }
            None => None,
        };
        let scope = match &approval {
            Some(a) => Scope::new(
                caller.tenant.clone(),
                caller.agent.clone(),
                a.session.clone(),
                a.run.clone(),
            ),
            None => {
                let session = caller
                    .session
                    .clone()
                    .map_or_else(|| SessionId::new("mcp"), Ok)
                    .map_err(internal)?;
                let scope = Scope::new(
                    caller.tenant.clone(),
                    caller.agent.clone(),
                    session.clone(),
                    RunId::generate(),
                );
                let record =
                    SessionRecord::new(caller.tenant.clone(), session, caller.agent.clone());
                store
                    .create_session(&caller.tenant, &record)
                    .await
                    .map_err(internal)?;
                store
                    .create_run(&caller.tenant, &RunRecord::new(&scope))
                    .await
                    .map_err(internal)?;
                scope
            }
        };
        let key = match (&approval, meta_str(IDEMPOTENCY_KEY_META)) {
            (Some(a), _) => format!("mcp-approval:{}", a.id),
            (None, Some(key)) => format!("mcp:{}:{key}", caller.agent),
            (None, None) => format!("mcp:{}:0", scope.run),
        };
        let key = IdempotencyKey::new(key)
            .map_err(|e| ErrorData::invalid_params(format!("idempotency key: {e}"), None))?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let call = ToolCall::new(context.id.to_string(), request.name.to_string(), arguments);
        let call_request =
            CallRequest::new(scope.clone(), call, key).with_cancellation(context.ct.child_token());
        let outcome = match &approval {
            Some(decided) => {
                self.inner
                    .executor
                    .execute_approved(call_request, decided)
                    .await
            }
            None => self.inner.executor.execute(call_request).await,
        }
        .map_err(internal)?;
        self.finish_run(&scope, &outcome).await;
        Ok(result_of(outcome))
    }

    /// Records how the call's run ended (best effort: the call's own records are already
    /// written, and a concurrent replay may have finished the run first).
    async fn finish_run(&self, scope: &Scope, outcome: &CallOutcome) {
        let store = &self.inner.store;
        let Ok(Some(mut run)) = store.get_run(&scope.tenant, &scope.run).await else {
            return;
        };
        let (status, error) = match outcome {
            CallOutcome::Succeeded { .. } => (RunStatus::Completed, None),
            CallOutcome::NeedsApproval(_) => (RunStatus::Suspended, None),
            other => (RunStatus::Failed, Some(other.label().to_string())),
        };
        if run.status == status {
            return;
        }
        let expected = run.version;
        run.status = status;
        run.error = error;
        run.tool_calls += 1;
        run.version += 1;
        if let Err(e) = store.update_run(&scope.tenant, &run, expected).await {
            tracing::debug!(run = %scope.run, error = %e, "MCP call's run not updated");
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<McpCaller, ErrorData> {
        if let Some(caller) = &self.inner.fixed_caller {
            return Ok(caller.clone());
        }
        context
            .extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.extensions.get::<McpCaller>())
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated", None))
    }
}

fn internal(e: agentkit_core::Error) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

/// A governed outcome as an MCP result: success with its output (structured when it is an
/// object), everything else an error result the client's model can read.
fn result_of(outcome: CallOutcome) -> CallToolResult {
    match outcome {
        CallOutcome::Succeeded { output, .. } => {
            let text = match &output {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            if output.is_object() {
                result.structured_content = Some(output);
            }
            result
        }
        CallOutcome::Failed { error } => error_result(format!("The tool failed: {error}")),
        CallOutcome::Refused { message, .. } => error_result(message),
        CallOutcome::Denied { reason } => error_result(format!("Denied by policy: {reason}")),
        CallOutcome::NeedsApproval(approval) => error_result(format!(
            "Approval required ({}): request `{}` waits for a reviewer. Once it is approved, \
             call again with `_meta[\"{APPROVAL_META}\"] = \"{}\"`.",
            approval.reason, approval.id, approval.id
        )),
        CallOutcome::InDoubt { .. } => error_result(
            "An earlier call with this idempotency key started and never finished; its outcome \
             is unknown, so the tool was not run again."
                .to_string(),
        ),
        other => error_result(format!("The call ended as `{}`.", other.label())),
    }
}

fn error_result(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// An agentkit tool spec as an MCP tool definition; the annotations say what the host
/// declared: a read tool is read-only; any other is destructive (idempotent is not harmless:
/// agentkit cannot tell a client that a write destroys nothing, so it says the cautious thing).
fn mcp_tool(spec: &ToolSpec) -> rmcp::model::Tool {
    let schema =
        |v: &Value| -> Arc<JsonObject> { Arc::new(v.as_object().cloned().unwrap_or_default()) };
    let read_only = spec.side_effect == SideEffect::Read;
    let annotations = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(!read_only)
        .idempotent(read_only || spec.idempotent)
        .open_world(spec.side_effect == SideEffect::External);
    let mut tool = rmcp::model::Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        schema(&spec.parameters),
    )
    .with_annotations(annotations);
    if let Some(output) = &spec.output_schema {
        tool = tool.with_raw_output_schema(schema(output));
    }
    tool
}

impl ServerHandler for McpToolServer {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(self.inner.info.clone());
        if let Some(instructions) = &self.inner.instructions {
            config = config.with_instructions(instructions.clone());
        }
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items((*self.inner.tools).clone()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.inner.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.get_tool(&request.name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        self.call(request, context).await.map(Into::into)
    }
}
