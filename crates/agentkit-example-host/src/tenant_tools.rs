//! HTTP tools a tenant configures (`POST /v1/tools`): an `HttpToolConfig` (method, URL
//! template, JSON schema of the arguments, response mapping, timeout, redaction), reachable
//! only where the host's outbound policy allows (`AGENTKIT_HOST_TOOL_OUTBOUND`; public
//! addresses only by default). An agent of that tenant calls one when its config lists it
//! (`"tools": ["orders.*"]`); arguments are validated against the schema before any request.
//!
//! What a tenant may not configure: a header read from the host's environment (`secret_env`:
//! that would hand the host's secrets to the tenant's endpoint), a compensation (it would name
//! another tool), or a name a host tool already has.

use std::sync::Arc;

use agentkit::prelude::*;
use agentkit::tools::http::{HeaderSource, HttpTool, HttpToolConfig, OutboundPolicy};
use serde_json::{Value, json};

/// Checks a tenant's tool config and builds the tool (`InvalidConfig` / `Conflict` otherwise).
pub(crate) fn build(
    config: &Value,
    host_tools: &[Arc<dyn Tool>],
    outbound: &OutboundPolicy,
) -> Result<(HttpToolConfig, Arc<dyn Tool>)> {
    let parsed: HttpToolConfig = serde_json::from_value(config.clone())
        .map_err(|e| Error::InvalidConfig(format!("tool config: {e}")))?;
    if host_tools.iter().any(|t| t.spec().name == parsed.name) {
        return Err(Error::Conflict(format!(
            "`{}` is one of the host's tools; choose another name",
            parsed.name
        )));
    }
    if let Some((header, _)) = parsed
        .headers
        .iter()
        .find(|(_, source)| matches!(source, HeaderSource::Secret { .. }))
    {
        return Err(Error::InvalidConfig(format!(
            "header `{header}`: a tenant's tool cannot read the host's environment (`secret_env`)"
        )));
    }
    if parsed.compensation.is_some() {
        return Err(Error::InvalidConfig(
            "a tenant's tool cannot declare a compensation".into(),
        ));
    }
    let tool = HttpTool::new(parsed.clone(), outbound.clone())?;
    Ok((parsed, Arc::new(tool)))
}

/// What a tenant sees of one of its tools: everything but header values.
pub(crate) fn view(config: &HttpToolConfig, tool: &dyn Tool) -> Value {
    json!({
        "name": config.name,
        "kind": "http",
        "description": config.description,
        "method": config.method,
        "url": config.url,
        "parameters": tool.spec().parameters,
        "headers": config.headers.keys().collect::<Vec<_>>(),
        "redact": config.redact,
    })
}

/// What a tenant sees of a host tool.
pub(crate) fn host_view(tool: &dyn Tool) -> Value {
    let spec = tool.spec();
    json!({
        "name": spec.name,
        "kind": "builtin",
        "description": spec.description,
        "parameters": spec.parameters,
    })
}

impl crate::App {
    /// The models and tools `tenant`'s agents can name: the host's, and the tenant's own HTTP
    /// tools (each re-checked against the current outbound policy; one that no longer passes is
    /// left out, with a warning).
    pub(crate) async fn registry_for(
        &self,
        tenant: &agentkit::id::TenantId,
    ) -> Result<agentkit::agent::AgentRegistry> {
        let mut registry = self.inner.registry.clone();
        for (name, config) in self.inner.tables.tools(tenant).await? {
            match build(&config, &self.inner.tools, &self.config().tool_outbound) {
                Ok((_, tool)) => registry = registry.with_tool(tool),
                Err(e) => tracing::warn!(
                    tenant = %tenant, tool = %name, error = %e,
                    "a tenant's tool is left out"
                ),
            }
        }
        Ok(registry)
    }

    /// Stores `tenant`'s HTTP tool (checked first); its agents are rebuilt on next use. Returns
    /// the tenant's view of it and whether it replaced one of the same name.
    pub(crate) async fn put_tenant_tool(
        &self,
        tenant: &agentkit::id::TenantId,
        config: &Value,
    ) -> Result<(Value, bool)> {
        let (parsed, tool) = build(config, &self.inner.tools, &self.config().tool_outbound)?;
        let stored = serde_json::to_value(&parsed)
            .map_err(|e| Error::Internal(format!("tool config: {e}")))?;
        let replaced = self
            .inner
            .tables
            .put_tool(tenant, &parsed.name, &stored)
            .await?;
        self.forget_tenant(tenant);
        Ok((view(&parsed, &*tool), replaced))
    }

    /// The tools `tenant`'s agents can name: the host's, then the tenant's.
    pub(crate) async fn tool_views(&self, tenant: &agentkit::id::TenantId) -> Result<Vec<Value>> {
        let mut out: Vec<Value> = self.inner.tools.iter().map(|t| host_view(&**t)).collect();
        for (name, config) in self.inner.tables.tools(tenant).await? {
            match build(&config, &self.inner.tools, &self.config().tool_outbound) {
                Ok((parsed, tool)) => out.push(view(&parsed, &*tool)),
                Err(e) => out.push(json!({
                    "name": name, "kind": "http", "unavailable": e.to_string(),
                })),
            }
        }
        Ok(out)
    }
}
