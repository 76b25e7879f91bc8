//! [`GovernedTool`]: a core [`Tool`] that enforces its [`ToolMetadata`].

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agentkit_core::id::TenantId;
use agentkit_core::redact::redact;
use agentkit_core::tool::{Tool, ToolContext, ToolSpec};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::metadata::{RateLimit, ToolMetadata};
use crate::schema::{CompiledSchema, schema_for};
use crate::typed::{ToolHandler, TypedTool, output_to_value, parse_arguments};

pub(crate) type Handler =
    Arc<dyn Fn(ToolContext, Value) -> BoxFuture<'static, Result<Value>> + Send + Sync>;

/// A tool that enforces its metadata around a handler; the adapter every tool of this crate is
/// built on (typed tools, derived tools, HTTP tools, agents as tools).
///
/// On each call, in order:
/// 1. the per-tenant rate limit of this tool (a second tenant is never limited by the first):
///    [`Error::RateLimited`] with `retry_after` when exceeded;
/// 2. a `debug` event with the arguments **redacted** by the tool's rules (arguments never go
///    into span fields);
/// 3. the handler, bounded by the timeout ([`Error::Timeout`]) and the caller's cancellation
///    ([`Error::Cancelled`]);
/// 4. for idempotent tools with a retry policy, retries of retryable errors with backoff.
///
/// Argument and output schema validation is the executor's job (the agent, or
/// [`crate::ToolRegistry::execute`]), with validators compiled once.
///
/// Cheap to clone: clones share the spec, the handler and the rate limiter.
#[derive(Clone)]
pub struct GovernedTool {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    spec: ToolSpec,
    metadata: ToolMetadata,
    limiter: Option<Arc<TenantLimiter>>,
    handler: Handler,
}

impl std::fmt::Debug for GovernedTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedTool")
            .field("metadata", &self.inner.metadata)
            .finish_non_exhaustive()
    }
}

impl GovernedTool {
    /// Adapts a [`TypedTool`]: schema from `T::Args`, output schema from
    /// [`TypedTool::output_schema`]. Fails when the metadata or a schema is invalid.
    pub fn from_typed<T: TypedTool>(tool: T) -> Result<Self> {
        let metadata = tool.metadata();
        let output_schema = tool.output_schema();
        let tool = Arc::new(tool);
        let name: Arc<str> = metadata.name.as_str().into();
        let handler: Handler = Arc::new(move |ctx, arguments| {
            let tool = tool.clone();
            let name = name.clone();
            async move {
                let args: T::Args = parse_arguments(&name, arguments)?;
                let output = tool.run(ctx, args).await?;
                output_to_value(&output)
            }
            .boxed()
        });
        Self::build(metadata, schema_for::<T::Args>(), output_schema, handler)
    }

    /// A tool from metadata and a handler taking typed arguments `A` (an `async fn(ToolContext,
    /// A) -> Result<T>`); the argument schema comes from `A`.
    ///
    /// ```
    /// use agentkit_core::tool::{SideEffect, ToolContext};
    /// use agentkit_tools::{GovernedTool, ToolMetadata};
    /// use schemars::JsonSchema;
    /// use serde::Deserialize;
    /// use serde_json::{Value, json};
    ///
    /// #[derive(Deserialize, JsonSchema)]
    /// struct Note {
    ///     text: String,
    /// }
    ///
    /// async fn add_note(_ctx: ToolContext, note: Note) -> agentkit_core::Result<Value> {
    ///     Ok(json!({"saved": note.text.len()}))
    /// }
    ///
    /// let tool = GovernedTool::from_handler(
    ///     ToolMetadata::new("notes.add", "Saves a note").with_side_effect(SideEffect::Write),
    ///     add_note,
    /// )?;
    /// # let _ = tool;
    /// # Ok::<(), agentkit_core::Error>(())
    /// ```
    pub fn from_handler<A, H>(metadata: ToolMetadata, handler: H) -> Result<Self>
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        H: ToolHandler<A>,
    {
        let handler = typed_handler(&metadata.name, handler);
        Self::build(metadata, schema_for::<A>(), None, handler)
    }

    /// A tool from metadata, a hand-written argument schema and a handler over JSON values.
    pub fn from_json<F, Fut>(metadata: ToolMetadata, parameters: Value, handler: F) -> Result<Self>
    where
        F: Fn(ToolContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx, args| handler(ctx, args).boxed());
        Self::build(metadata, parameters, None, handler)
    }

    /// Declares an output schema (the agent validates outputs against it). Fails when the
    /// schema does not compile.
    pub fn with_output_schema(mut self, schema: Value) -> Result<Self> {
        CompiledSchema::compile(&schema).map_err(|e| {
            Error::InvalidConfig(format!("tool `{}` output schema: {e}", self.spec().name))
        })?;
        let inner = Arc::make_mut(&mut self.inner);
        inner.spec = inner.spec.clone().with_output_schema(schema);
        Ok(self)
    }

    /// Records what the tool's provider claims about it (an MCP server's annotations): fed to
    /// the policy as untrusted hints, never used to loosen anything (see
    /// [`ToolSpec::hints`](agentkit_core::tool::ToolSpec::hints)).
    pub fn with_hints(mut self, hints: agentkit_core::tool::ToolHints) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.spec.hints = Some(hints);
        self
    }

    /// The metadata.
    pub fn metadata(&self) -> &ToolMetadata {
        &self.inner.metadata
    }

    pub(crate) fn build(
        metadata: ToolMetadata,
        parameters: Value,
        output_schema: Option<Value>,
        handler: Handler,
    ) -> Result<Self> {
        metadata.validate()?;
        let name = &metadata.name;
        CompiledSchema::compile(&parameters)
            .map_err(|e| Error::InvalidConfig(format!("tool `{name}` argument schema: {e}")))?;
        if let Some(schema) = &output_schema {
            CompiledSchema::compile(schema)
                .map_err(|e| Error::InvalidConfig(format!("tool `{name}` output schema: {e}")))?;
        }
        let tool = Self::assemble(metadata, parameters, output_schema, handler);
        tool.spec().validate()?;
        Ok(tool)
    }

    /// Builds without validating (the derive macros validate at compile time).
    fn assemble(
        metadata: ToolMetadata,
        parameters: Value,
        output_schema: Option<Value>,
        handler: Handler,
    ) -> Self {
        let mut spec = ToolSpec::new(
            metadata.name.clone(),
            metadata.description.clone(),
            parameters,
        )
        .with_side_effect(metadata.side_effect)
        .with_idempotent(metadata.is_idempotent())
        .with_redacted(metadata.redact.iter().cloned());
        if let Some(schema) = output_schema {
            spec = spec.with_output_schema(schema);
        }
        let limiter = metadata
            .rate_limit
            .and_then(TenantLimiter::new)
            .map(Arc::new);
        Self {
            inner: Arc::new(Inner {
                spec,
                metadata,
                limiter,
                handler,
            }),
        }
    }

    /// One attempt: the handler under the timeout and the caller's cancellation.
    async fn attempt(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        let inner = &*self.inner;
        let cancel = ctx.cancellation.clone();
        let call = (inner.handler)(ctx, arguments);
        let bounded = async {
            match inner.metadata.timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                    Error::Timeout(format!(
                        "tool `{}` did not finish within {} ms",
                        inner.spec.name,
                        limit.as_millis()
                    ))
                })?,
                None => call.await,
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Error::Cancelled),
            result = bounded => result,
        }
    }
}

/// The handler of typed arguments `A` as a JSON handler.
pub(crate) fn typed_handler<A, H>(name: &str, handler: H) -> Handler
where
    A: DeserializeOwned + Send + 'static,
    H: ToolHandler<A>,
{
    let name: Arc<str> = name.into();
    let handler = Arc::new(handler);
    Arc::new(
        move |ctx, arguments| match parse_arguments::<A>(&name, arguments) {
            Ok(args) => handler.call(ctx, args),
            Err(e) => futures::future::ready(Err(e)).boxed(),
        },
    )
}

/// What `#[derive(Tool)]` and `#[tool]` expand to (they validated the metadata already).
#[doc(hidden)]
pub fn derived_tool<A, H>(
    metadata: ToolMetadata,
    handler: H,
    output_schema: Option<Value>,
) -> GovernedTool
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    H: ToolHandler<A>,
{
    let handler = typed_handler(&metadata.name, handler);
    GovernedTool::assemble(metadata, schema_for::<A>(), output_schema, handler)
}

/// [`derived_tool`] with the output schema of the handler's output type.
#[doc(hidden)]
pub fn derived_tool_with_output<A, O, E, Fut, H>(metadata: ToolMetadata, handler: H) -> GovernedTool
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    H: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<O, E>> + Send + 'static,
    O: Serialize + JsonSchema,
    E: Into<Error>,
{
    derived_tool(metadata, handler, Some(schema_for::<O>()))
}

#[async_trait]
impl Tool for GovernedTool {
    fn spec(&self) -> &ToolSpec {
        &self.inner.spec
    }

    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        let inner = &*self.inner;
        let name = inner.spec.name.as_str();
        if let Some(limiter) = &inner.limiter {
            limiter.check(&ctx.scope.tenant, name)?;
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                tool = name,
                tenant = %ctx.scope.tenant,
                idempotency_key = %ctx.idempotency_key,
                arguments = %redact(&arguments, &inner.spec.redact),
                "tool call"
            );
        }
        let result = match &inner.metadata.retry {
            Some(policy) if inner.metadata.is_idempotent() => {
                let mut delays = policy.delays();
                let mut attempt = 1u32;
                loop {
                    match self.attempt(ctx.clone(), arguments.clone()).await {
                        Err(e) if e.is_retryable() => match delays.next() {
                            Some(delay) => {
                                let delay = e.retry_after().map_or(delay, |after| delay.max(after));
                                tracing::warn!(tool = name, attempt, error = %e, ?delay, "retrying tool call");
                                tokio::select! {
                                    biased;
                                    () = ctx.cancellation.cancelled() => break Err(Error::Cancelled),
                                    () = tokio::time::sleep(delay) => {}
                                }
                                attempt += 1;
                            }
                            None => break Err(e),
                        },
                        other => break other,
                    }
                }
            }
            _ => self.attempt(ctx, arguments).await,
        };
        match &result {
            Ok(output) if tracing::enabled!(tracing::Level::DEBUG) => tracing::debug!(
                tool = name,
                output = %redact(output, &inner.spec.redact),
                "tool finished"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(tool = name, error = %e, "tool failed"),
        }
        result
    }
}

/// A per-tenant token bucket for one tool (governor keyed limiter).
struct TenantLimiter {
    limit: RateLimit,
    limiter: DefaultKeyedRateLimiter<TenantId>,
    checks: AtomicU64,
}

/// Every this many checks, buckets that are full again are dropped if many tenants are tracked
/// (a full bucket is the same as no bucket, so this only bounds memory).
const HOUSEKEEPING_EVERY: u64 = 1024;
const HOUSEKEEPING_ABOVE: usize = 1024;

impl TenantLimiter {
    fn new(limit: RateLimit) -> Option<Self> {
        let burst = NonZeroU32::new(limit.calls)?;
        let quota = Quota::with_period(limit.period / limit.calls)?.allow_burst(burst);
        Some(Self {
            limit,
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, tenant: &TenantId, tool: &str) -> Result<()> {
        let outcome = self.limiter.check_key(tenant);
        let n = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(HOUSEKEEPING_EVERY) && self.limiter.len() > HOUSEKEEPING_ABOVE {
            self.limiter.retain_recent();
        }
        outcome.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            Error::RateLimited {
                message: format!(
                    "tool `{tool}` reached its rate limit ({} per tenant); try again in {:.1} s",
                    self.limit,
                    wait.as_secs_f64()
                ),
                retry_after: Some(wait),
            }
        })
    }
}
