//! Typed tools: Rust argument and output types instead of JSON values.

use std::future::Future;

use agentkit_core::Error;
use agentkit_core::tool::ToolContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::metadata::ToolMetadata;

/// A hand-written tool with typed arguments and output.
///
/// The argument schema comes from `Args` (schemars: doc comments become descriptions); the agent
/// validates the model's arguments against it before `run` is called, so `run` receives
/// well-formed arguments. Turn it into a [`Tool`](agentkit_core::tool::Tool) with
/// [`GovernedTool::from_typed`](crate::GovernedTool::from_typed), which enforces the metadata
/// (timeout, retries, rate limit, redaction in logs).
///
/// ```
/// use agentkit_core::tool::ToolContext;
/// use agentkit_tools::{GovernedTool, ToolMetadata, TypedTool};
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// /// Arguments of `crm.lookup_lead`.
/// #[derive(Deserialize, JsonSchema)]
/// struct Lookup {
///     /// The lead's id.
///     lead_id: u64,
/// }
///
/// #[derive(Serialize)]
/// struct Lead {
///     id: u64,
///     name: String,
/// }
///
/// struct LookupLead;
///
/// impl TypedTool for LookupLead {
///     type Args = Lookup;
///     type Output = Lead;
///
///     fn metadata(&self) -> ToolMetadata {
///         ToolMetadata::new("crm.lookup_lead", "Looks up a lead by id")
///     }
///
///     async fn run(&self, _ctx: ToolContext, args: Lookup) -> agentkit_core::Result<Lead> {
///         Ok(Lead { id: args.lead_id, name: "Ada".into() })
///     }
/// }
///
/// let tool = GovernedTool::from_typed(LookupLead)?;
/// # let _ = tool;
/// # Ok::<(), agentkit_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a typed tool",
    label = "`{Self}` does not implement `TypedTool`",
    note = "implement `agentkit_tools::TypedTool` for it (arguments, output, metadata and `run`), \
            or use `#[derive(Tool)]` on an arguments struct or `#[tool]` on an `async fn`"
)]
pub trait TypedTool: Send + Sync + 'static {
    /// The arguments; their JSON schema is what the model sees.
    type Args: DeserializeOwned + JsonSchema + Send + 'static;
    /// The output, serialized to JSON for the model.
    type Output: Serialize + Send + 'static;

    /// Name, description, side effects, timeout, retries, rate limit, redaction, compensation.
    fn metadata(&self) -> ToolMetadata;

    /// The JSON schema of the output, when it should be declared (and validated by the agent):
    /// return `Some(agentkit_tools::schema_for::<Self::Output>())` when `Output: JsonSchema`.
    fn output_schema(&self) -> Option<Value> {
        None
    }

    /// Runs the tool. Return [`Error::Tool`] with a message written for the model when the
    /// tool cannot do what was asked.
    fn run(
        &self,
        ctx: ToolContext,
        args: Self::Args,
    ) -> impl Future<Output = agentkit_core::Result<Self::Output>> + Send;
}

/// The handler of a derived tool: an `async fn(ToolContext, Args) -> Result<T>` (or a closure
/// returning such a future) where `T: Serialize` and the error converts into
/// [`agentkit_core::Error`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the handler of a tool whose arguments are `{A}`",
    label = "expected an `async fn(ToolContext, {A}) -> Result<T>`",
    note = "a tool handler is an `async fn` taking `agentkit_core::tool::ToolContext` and the \
            arguments struct, returning `agentkit_core::Result<T>` where `T: serde::Serialize`"
)]
pub trait ToolHandler<A>: Send + Sync + 'static {
    /// Runs the handler and serializes its output.
    fn call(&self, ctx: ToolContext, args: A) -> BoxFuture<'static, agentkit_core::Result<Value>>;
}

impl<F, Fut, A, O, E> ToolHandler<A> for F
where
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    O: Serialize,
    E: Into<Error>,
{
    fn call(&self, ctx: ToolContext, args: A) -> BoxFuture<'static, agentkit_core::Result<Value>> {
        self(ctx, args)
            .map(|result| match result {
                Ok(output) => output_to_value(&output),
                Err(e) => Err(e.into()),
            })
            .boxed()
    }
}

pub(crate) fn output_to_value<O: Serialize + ?Sized>(output: &O) -> agentkit_core::Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| Error::Internal(format!("the tool output could not be serialized: {e}")))
}

/// Deserializes arguments, naming the field that failed (`lead.email: invalid type ...`).
pub(crate) fn parse_arguments<A: DeserializeOwned>(
    tool: &str,
    arguments: Value,
) -> agentkit_core::Result<A> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::InvalidInput(format!("invalid arguments for `{tool}`: {inner}"))
        } else {
            Error::InvalidInput(format!("invalid arguments for `{tool}`: {path}: {inner}"))
        }
    })
}
