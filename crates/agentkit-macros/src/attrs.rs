//! The `#[tool(...)]` attribute shared by `#[derive(Tool)]` and `#[tool]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprArray, Lit, LitBool, LitInt, LitStr, Path};

/// Which macro is parsing (they accept slightly different keys).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    Derive,
    Function,
}

impl Site {
    fn supported(self) -> &'static str {
        match self {
            Site::Derive => {
                "name, description, handler, side_effect, idempotent, timeout_ms, retries, \
                 rate_limit, redact, output_schema, crate"
            }
            Site::Function => {
                "name, description, side_effect, idempotent, timeout_ms, retries, rate_limit, \
                 redact, output_schema, crate"
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct ToolAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) description: Option<LitStr>,
    pub(crate) handler: Option<Path>,
    side_effect: Option<(LitStr, &'static str)>,
    idempotent: bool,
    timeout_ms: Option<u64>,
    retries: Option<(Span, u32)>,
    rate_limit: Option<(u32, u64)>,
    redact: Vec<LitStr>,
    pub(crate) output_schema: bool,
    krate: Option<Path>,
}

impl ToolAttrs {
    /// Parses one `name = value` (or bare flag) item.
    pub(crate) fn parse_item(&mut self, meta: ParseNestedMeta<'_>, site: Site) -> syn::Result<()> {
        let key = if meta.path.is_ident("crate") {
            "crate".to_string()
        } else {
            meta.path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        match key.as_str() {
            "name" => {
                let lit: LitStr = meta.value()?.parse()?;
                check_name(&lit.value()).map_err(|msg| syn::Error::new(lit.span(), msg))?;
                self.name = Some(lit);
            }
            "description" => {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "the description is empty; the model needs it to choose the tool",
                    ));
                }
                self.description = Some(lit);
            }
            "handler" if site == Site::Derive => {
                let path: Path = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`handler` names the async fn that runs the tool, e.g. `handler = create_lead`",
                    )
                })?;
                self.handler = Some(path);
            }
            "side_effect" => {
                let lit: LitStr = meta.value()?.parse()?;
                let variant = match lit.value().as_str() {
                    "read" => "Read",
                    "write" => "Write",
                    "external" => "External",
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "`side_effect` must be \"read\", \"write\" or \"external\"",
                        ));
                    }
                };
                self.side_effect = Some((lit, variant));
            }
            "crate" => {
                let lit: LitStr = meta.value()?.parse()?;
                let path: Path = lit.parse().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "`crate` is the path to agentkit-tools, e.g. `crate = \"::agentkit::tools\"`",
                    )
                })?;
                self.krate = Some(path);
            }
            "idempotent" => self.idempotent = flag(&meta)?,
            "output_schema" => self.output_schema = flag(&meta)?,
            "timeout_ms" => {
                let lit: LitInt = meta.value()?.parse()?;
                let ms: u64 = lit.base10_parse()?;
                if ms == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`timeout_ms` must be at least 1",
                    ));
                }
                self.timeout_ms = Some(ms);
            }
            "retries" => {
                let key = meta.path.span();
                let lit: LitInt = meta.value()?.parse()?;
                let n: u32 = lit.base10_parse()?;
                self.retries = Some((key, n));
            }
            "rate_limit" => {
                let lit: LitStr = meta.value()?.parse()?;
                let parsed = parse_rate_limit(&lit.value())
                    .map_err(|msg| syn::Error::new(lit.span(), msg))?;
                self.rate_limit = Some(parsed);
            }
            "redact" => {
                let expr: Expr = meta.value()?.parse()?;
                let array = match expr {
                    Expr::Array(a) => a,
                    other => ExprArray {
                        attrs: Vec::new(),
                        bracket_token: Default::default(),
                        elems: std::iter::once(other).collect(),
                    },
                };
                for elem in array.elems {
                    match elem {
                        Expr::Lit(syn::ExprLit {
                            lit: Lit::Str(s), ..
                        }) if !s.value().trim().is_empty() => self.redact.push(s),
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "`redact` lists field names or JSON pointers as strings, e.g. \
                                 `redact = [\"card_number\", \"/billing/iban\"]`",
                            ));
                        }
                    }
                }
            }
            _ => {
                let shown = if key.is_empty() {
                    quote::ToTokens::to_token_stream(&meta.path).to_string()
                } else {
                    key
                };
                let hint = match shown.as_str() {
                    "timeout" | "timeout_secs" => " (did you mean `timeout_ms`?)",
                    "retry" | "max_retries" => " (did you mean `retries`?)",
                    "side_effects" | "effect" => " (did you mean `side_effect`?)",
                    "rate" | "ratelimit" | "rate_limits" => " (did you mean `rate_limit`?)",
                    "redacted" | "sensitive" => " (did you mean `redact`?)",
                    "output" => " (did you mean `output_schema`?)",
                    "handler" => {
                        " (`handler` is for `#[derive(Tool)]`; `#[tool]` is on the handler itself)"
                    }
                    _ => "",
                };
                return Err(meta.error(format!(
                    "unsupported `#[tool]` attribute `{shown}`{hint}; supported: {}",
                    site.supported()
                )));
            }
        }
        Ok(())
    }

    /// Checks what needs all items together.
    /// `at` is what errors about missing items point at (the attribute, or the item).
    pub(crate) fn finish(&self, at: &dyn ToTokens, site: Site) -> syn::Result<()> {
        if self.name.is_none() {
            return Err(syn::Error::new_spanned(
                at,
                "missing tool name: add `name = \"namespace.action\"` to `#[tool(...)]`, \
                 e.g. `#[tool(name = \"crm.create_lead\")]`",
            ));
        }
        if site == Site::Derive && self.handler.is_none() {
            return Err(syn::Error::new_spanned(
                at,
                "missing `handler`: name the `async fn(ToolContext, Args) -> Result<T>` that runs \
                 the tool, e.g. `#[tool(name = \"crm.create_lead\", handler = create_lead)]`",
            ));
        }
        let read = self.side_effect.as_ref().is_none_or(|(_, v)| *v == "Read");
        if let Some((key, _)) = &self.retries
            && !self.idempotent
            && !read
        {
            return Err(syn::Error::new(
                *key,
                "`retries` needs an idempotent tool: add `idempotent` if running the tool twice \
                 has the effect of running it once, or remove `retries` (retrying could repeat \
                 its effect)",
            ));
        }
        Ok(())
    }

    /// The path to agentkit-tools: `crate = "..."` when given; otherwise found in the calling
    /// package's `Cargo.toml` — `agentkit-tools` (under whatever name it was renamed to), else
    /// the `agentkit` facade's `tools` module, else `::agentkit_tools`.
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote!(#path),
            None => default_krate(),
        }
    }

    /// The `ToolMetadata` expression.
    pub(crate) fn metadata(&self, description: &str) -> TokenStream {
        let krate = self.krate();
        let p = quote!(#krate::__private);
        let name = self.name.as_ref().map(LitStr::value).unwrap_or_default();
        let mut chain = quote!(#p::ToolMetadata::new(#name, #description));
        if let Some((_, variant)) = &self.side_effect {
            let v = syn::Ident::new(variant, Span::call_site());
            chain = quote!(#chain.with_side_effect(#p::agentkit_core::tool::SideEffect::#v));
        }
        if self.idempotent {
            chain = quote!(#chain.with_idempotent(true));
        }
        if let Some(ms) = self.timeout_ms {
            chain = quote!(#chain.with_timeout(::std::time::Duration::from_millis(#ms)));
        }
        if let Some((_, n)) = self.retries {
            chain = quote!(#chain.with_retry(#p::RetryPolicy::retries(#n)));
        }
        if let Some((calls, period_ms)) = self.rate_limit {
            chain = quote!(#chain.with_rate_limit(#p::RateLimit::new(
                #calls,
                ::std::time::Duration::from_millis(#period_ms),
            )));
        }
        if !self.redact.is_empty() {
            let fields = &self.redact;
            chain = quote!(#chain.with_redacted([#(#fields),*]));
        }
        chain
    }
}

/// `flag` or `flag = true|false`.
fn flag(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitBool = meta.value()?.parse()?;
        Ok(lit.value)
    } else {
        Ok(true)
    }
}

/// Core's tool-name rule (`agentkit_core::tool::validate_tool_name`): `[A-Za-z0-9_-]` segments
/// joined by dots, at most 128 bytes. A namespace is recommended, not required: bare names
/// such as `get_weather` are what models and MCP servers use.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !valid {
        return Err(format!(
            "invalid tool name `{name}`: use dot-separated segments of letters, digits, `_` or \
             `-` (at most 128 bytes), like `crm.create_lead`"
        ));
    }
    Ok(())
}

/// `"10/s"`, `"60/min"`, `"1000/h"`, `"5000/day"`, `"3/250ms"` → (calls, period in ms).
fn parse_rate_limit(text: &str) -> Result<(u32, u64), String> {
    let bad = || {
        format!(
            "invalid rate limit `{text}`: write calls per period, like \"10/s\", \"60/min\", \
             \"1000/h\" or \"5000/day\""
        )
    };
    let (calls, unit) = text.split_once('/').ok_or_else(bad)?;
    let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
    let period_ms: u64 = match unit.trim() {
        "s" | "sec" | "second" => 1_000,
        "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        "d" | "day" => 86_400_000,
        other => other
            .strip_suffix("ms")
            .and_then(|ms| ms.parse().ok())
            .ok_or_else(bad)?,
    };
    if calls == 0 || period_ms == 0 {
        return Err(format!(
            "invalid rate limit `{text}`: allow at least one call per non-empty period"
        ));
    }
    if period_ms.saturating_mul(1_000_000) / u64::from(calls) == 0 {
        return Err(format!(
            "invalid rate limit `{text}`: the period is too short"
        ));
    }
    Ok((calls, period_ms))
}

/// The text of `///` comments: lines trimmed, paragraphs kept.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    let mut out = String::new();
    for line in lines {
        if line.is_empty() {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str("\n\n");
            }
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(&line);
        }
    }
    out.trim().to_string()
}

/// Where agentkit-tools is for the package being compiled (see [`ToolAttrs::krate`]).
fn default_krate() -> TokenStream {
    use proc_macro_crate::{FoundCrate, crate_name};
    let ident = |name: &str| proc_macro2::Ident::new(name, proc_macro2::Span::call_site());
    match crate_name("agentkit-tools") {
        // Inside agentkit-tools' own tests and doc tests the crate is an extern crate too.
        Ok(FoundCrate::Itself) => quote!(::agentkit_tools),
        Ok(FoundCrate::Name(name)) => {
            let name = ident(&name);
            quote!(::#name)
        }
        Err(_) => match crate_name("agentkit") {
            Ok(FoundCrate::Name(name)) => {
                let name = ident(&name);
                quote!(::#name::tools)
            }
            Ok(FoundCrate::Itself) => quote!(::agentkit::tools),
            Err(_) => quote!(::agentkit_tools),
        },
    }
}
