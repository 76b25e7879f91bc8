//! # agentkit-macros
//!
//! `#[derive(Tool)]` and `#[tool]` for agentkit tools. Use them through `agentkit-tools`
//! (`use agentkit_tools::{Tool, tool};`) or the facade (`use agentkit::tools::{Tool, tool};`).
//! The generated code finds the tools crate in the calling package's `Cargo.toml`
//! (`proc-macro-crate`): `agentkit-tools` under whatever name it has there, else the `agentkit`
//! facade's `tools` module; `crate = "..."` overrides both. A crate using the macros needs only
//! one of the two (plus `serde` and `schemars` for the derives on its own argument structs).
//!
//! Both macros read `#[tool(...)]` items:
//!
//! | item | meaning |
//! |---|---|
//! | `name = "crm.create_lead"` | namespaced tool name (required; checked at compile time) |
//! | `description = "..."` | what the tool does, for the model (default: the doc comment) |
//! | `handler = create_lead` | `#[derive(Tool)]` only: the `async fn(ToolContext, Args) -> Result<T>` |
//! | `side_effect = "read" \| "write" \| "external"` | side-effect class (default `read`) |
//! | `idempotent` | safe to run twice with the same arguments (required for `retries` on non-read tools) |
//! | `timeout_ms = 5000` | time limit of one attempt |
//! | `retries = 2` | retries of retryable errors (idempotent tools only) |
//! | `rate_limit = "60/min"` | calls per tenant per period (`s`, `min`, `h`, `day`, `250ms`) |
//! | `redact = ["card_number", "/billing/iban"]` | fields masked in logs, traces, audit and execution records |
//! | `output_schema` | declare the output's JSON schema (the output type must implement `JsonSchema`) |
//! | `crate = "::agentkit::tools"` | the path to agentkit-tools when it is not a direct dependency (through the `agentkit` facade) |
//!
//! `#[derive(Tool)]` on `struct CreateLead` generates `CreateLeadTool`; `#[tool]` on
//! `async fn lookup_lead` generates `LookupLeadTool` (and `LookupLeadArgs` from its parameters,
//! unless its only parameter besides the `ToolContext` is named `args`). Each generated tool has
//! `new()`, `metadata()`, implements `agentkit_core::tool::Tool` and converts into
//! `agentkit_tools::RegisteredTool` and `agentkit_tools::GovernedTool`.

mod attrs;
mod derive;
mod function;

use proc_macro::TokenStream;

/// Derives a tool from its arguments struct: `#[derive(Deserialize, JsonSchema, Tool)]` with
/// `#[tool(name = "...", handler = ...)]` generates `{Struct}Tool`, whose argument schema is
/// the struct's (doc comments become descriptions). See the crate docs for every item.
#[proc_macro_derive(Tool, attributes(tool))]
pub fn derive_tool(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `async fn` a tool: its parameters (after an optional leading `ToolContext`) become
/// the properties of the argument schema — or, when the only one is named `args`, its type is
/// the arguments struct. Generates `{PascalCaseName}Tool`. See the crate docs for every item.
#[proc_macro_attribute]
pub fn tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match function::expand(attr.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // Keep the function (without the parameter attributes only `#[tool]` accepts) so the
        // rest of the crate still resolves it and only this error is reported.
        Err(e) => {
            let error = e.into_compile_error();
            let item = match syn::parse2::<syn::ItemFn>(item.clone()) {
                Ok(mut function) => {
                    for input in &mut function.sig.inputs {
                        if let syn::FnArg::Typed(p) = input {
                            p.attrs.clear();
                        }
                    }
                    quote::ToTokens::into_token_stream(function)
                }
                Err(_) => item,
            };
            quote::quote!(#error #item).into()
        }
    }
}
