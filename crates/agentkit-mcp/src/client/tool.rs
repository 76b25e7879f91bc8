//! One MCP tool as a governed agentkit tool: its spec from the server's definition and the
//! host's overrides, its call over the live connection, its result as a JSON value.

use std::sync::Arc;

use agentkit_core::tool::{Tool, ToolContext, ToolHints, validate_tool_name};
use agentkit_core::{Error, Result};
use agentkit_tools::{GovernedTool, ToolMetadata};
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Map, Value};

use super::Inner;
use crate::error::McpError;

/// The parts of a server's tool definition that a registered tool is pinned to: when any of
/// them changes on the server, calls through the old registration are refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Definition {
    pub(crate) tool: Arc<rmcp::model::Tool>,
}

impl Definition {
    /// Whether `other` is the same tool as far as the model and the policy are concerned.
    pub(crate) fn same_as(&self, other: &rmcp::model::Tool) -> bool {
        let t = &*self.tool;
        t.description == other.description
            && t.input_schema == other.input_schema
            && t.output_schema == other.output_schema
            && t.annotations == other.annotations
    }
}

/// The agentkit name of an MCP tool: `namespace.mcp_name`.
pub(crate) fn agentkit_name(namespace: &str, mcp_name: &str) -> String {
    format!("{namespace}.{mcp_name}")
}

/// Builds the governed tool for `definition`: name, schema (compiled; a schema that is not
/// valid JSON Schema is an [`McpError::InvalidTool`]), the host's overrides, the server's
/// annotations as untrusted hints, and a handler calling the server.
pub(crate) fn build(inner: &Arc<Inner>, definition: &Definition) -> Result<GovernedTool, McpError> {
    let server = &inner.config.namespace;
    let mcp = &*definition.tool;
    let invalid = |reason: String| McpError::InvalidTool {
        server: server.clone(),
        tool: mcp.name.to_string(),
        reason,
    };
    let name = agentkit_name(server, &mcp.name);
    validate_tool_name(&name).map_err(|_| {
        invalid(
            "its name is not a valid agentkit tool name (letters, digits, `_`, `-` and `.` only)"
                .into(),
        )
    })?;
    let overrides = inner.config.tools.get(mcp.name.as_ref());
    let description = overrides
        .and_then(|o| o.description.clone())
        .or_else(|| mcp.description.as_deref().map(str::to_string))
        .or_else(|| mcp.title.clone())
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| format!("`{}` (its MCP server gave no description)", mcp.name));
    let side_effect = overrides
        .and_then(|o| o.side_effect)
        .unwrap_or(inner.config.default_side_effect);
    let mut metadata = ToolMetadata::new(name, description).with_side_effect(side_effect);
    if let Some(o) = overrides {
        metadata = metadata
            .with_idempotent(o.idempotent)
            .with_redacted(o.redact.iter().cloned());
        if let Some(retry) = o.retry {
            metadata = metadata.with_retry(retry);
        }
        if let Some(limit) = o.rate_limit {
            metadata = metadata.with_rate_limit(limit);
        }
    }
    let parameters = Value::Object((*mcp.input_schema).clone());
    let call_inner = inner.clone();
    let pinned = definition.clone();
    let mut tool = GovernedTool::from_json(metadata, parameters, move |ctx, arguments| {
        let inner = call_inner.clone();
        let pinned = pinned.clone();
        async move { call(&inner, &pinned, ctx, arguments).await }
    })
    .map_err(|e| invalid(e.to_string()))?;
    if let Some(schema) = &mcp.output_schema {
        tool = tool
            .with_output_schema(Value::Object((**schema).clone()))
            .map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(a) = &mcp.annotations {
        tool = tool.with_hints(ToolHints {
            read_only: a.read_only_hint,
            destructive: a.destructive_hint,
            idempotent: a.idempotent_hint,
            open_world: a.open_world_hint,
        });
    }
    Ok(tool)
}

/// The registered tool's spec, for the registry (an `Arc<dyn Tool>`).
pub(crate) fn into_dyn(tool: GovernedTool) -> Arc<dyn Tool> {
    Arc::new(tool)
}

/// One `tools/call`: refused when the server's definition changed since registration, bounded
/// by the request limit (a call over it is cancelled on the server), errors typed.
async fn call(
    inner: &Arc<Inner>,
    pinned: &Definition,
    ctx: ToolContext,
    arguments: Value,
) -> Result<Value> {
    let mcp_name = pinned.tool.name.to_string();
    inner.check_pinned(pinned)?;
    let peer = inner.peer().await?;
    let Value::Object(arguments) = arguments else {
        return Err(Error::InvalidInput(format!(
            "tool `{}` takes an object of arguments",
            agentkit_name(&inner.config.namespace, &mcp_name)
        )));
    };
    let mut params = CallToolRequestParams::new(mcp_name.clone()).with_arguments(arguments);
    // The call's idempotency key, stable across retries and resumes, for servers that dedupe.
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.0.insert(
        "io.agentkit/idempotency-key".into(),
        Value::String(ctx.idempotency_key.as_str().to_string()),
    );
    params.meta = Some(meta);
    let server = inner.config.namespace.clone();
    match send(inner, &peer, params.clone()).await? {
        Ok(result) => result_value(result),
        Err(e) => match e.auth_challenge().map(str::to_string) {
            // The server wants more (a scope step-up, a fresh token): authorize again with its
            // challenge, then retry once. The call was refused, so it did not run.
            Some(challenge) if inner.oauth_configured() => {
                let peer = inner.reauthorize(&challenge).await?;
                match send(inner, &peer, params).await? {
                    Ok(result) => result_value(result),
                    Err(e) => Err(call_error(&server, &mcp_name, e)),
                }
            }
            _ => Err(call_error(&server, &mcp_name, e)),
        },
    }
}

/// `tools/call` under the request limit (dropping the request on timeout sends
/// `notifications/cancelled`).
async fn send(
    inner: &Arc<Inner>,
    peer: &rmcp::Peer<rmcp::RoleClient>,
    params: CallToolRequestParams,
) -> Result<std::result::Result<CallToolResult, ServiceError>> {
    let limit = inner.config.timeout;
    tokio::time::timeout(limit, peer.call_tool(params))
        .await
        .map_err(|_| {
            McpError::Timeout {
                server: inner.config.namespace.clone(),
                method: "tools/call",
                after: limit,
            }
            .into()
        })
}

fn call_error(server: &str, tool: &str, e: ServiceError) -> Error {
    match e {
        // A JSON-RPC error (unknown tool, invalid arguments): the model reads it and adapts.
        ServiceError::McpError(data) => Error::Tool(format!(
            "the MCP server refused the call ({}): {}",
            data.code.0, data.message
        )),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => McpError::Closed {
            server: server.to_string(),
            context: format!(
                "while `tools/call` of `{tool}` was in flight; it may or may not have taken effect"
            ),
        }
        .into(),
        ServiceError::Timeout { timeout } => McpError::Timeout {
            server: server.to_string(),
            method: "tools/call",
            after: timeout,
        }
        .into(),
        ServiceError::Cancelled { .. } => Error::Cancelled,
        other => McpError::Protocol {
            server: server.to_string(),
            method: "tools/call",
            reason: other.to_string(),
        }
        .into(),
    }
}

/// A `CallToolResult` as the tool's output: an error result goes back to the model as a tool
/// error; structured content is the output as is; text content is a string (or a list of
/// strings); other content (images, audio, resources) is described without its bytes.
pub(crate) fn result_value(result: CallToolResult) -> Result<Value> {
    if result.is_error == Some(true) {
        let text = texts(&result).join("\n");
        return Err(Error::Tool(if text.is_empty() {
            "the MCP tool reported an error".into()
        } else {
            text
        }));
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    let blocks: Vec<Value> = result
        .content
        .iter()
        .filter_map(|b| serde_json::to_value(b).ok())
        .collect();
    let all_text = blocks
        .iter()
        .all(|b| b.get("type").and_then(Value::as_str) == Some("text"));
    if all_text {
        let mut texts = texts_of(&blocks);
        return Ok(match texts.len() {
            0 => Value::String(String::new()),
            1 => Value::String(texts.remove(0)),
            _ => Value::Array(texts.into_iter().map(Value::String).collect()),
        });
    }
    Ok(Value::Array(blocks.into_iter().map(describe).collect()))
}

fn texts(result: &CallToolResult) -> Vec<String> {
    result
        .content
        .iter()
        .filter_map(|b| b.as_text().map(|t| t.text.clone()))
        .collect()
}

fn texts_of(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A content block for the model: binary payloads (base64 `data`, `blob`) replaced by their
/// size, annotations and `_meta` dropped.
fn describe(block: Value) -> Value {
    let Value::Object(mut map) = block else {
        return block;
    };
    map.remove("annotations");
    map.remove("_meta");
    for key in ["data", "blob"] {
        if let Some(Value::String(b64)) = map.remove(key) {
            map.insert("size_bytes".into(), Value::from(b64.len() / 4 * 3));
        }
    }
    if let Some(Value::Object(resource)) = map.get_mut("resource") {
        if let Some(Value::String(b64)) = resource.remove("blob") {
            resource.insert("size_bytes".into(), Value::from(b64.len() / 4 * 3));
        }
        resource.remove("_meta");
    }
    Value::Object(Map::from_iter(map))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rmcp::model::ContentBlock;
    use serde_json::json;

    use super::*;

    #[test]
    fn results_become_values_the_model_can_read() {
        let one = CallToolResult::success(vec![ContentBlock::text("42 contacts")]);
        assert_eq!(result_value(one).unwrap(), json!("42 contacts"));
        let two = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(result_value(two).unwrap(), json!(["a", "b"]));
        let image = CallToolResult::success(vec![
            ContentBlock::text("chart"),
            ContentBlock::image("aGVsbG8h", "image/png"),
        ]);
        let v = result_value(image).unwrap();
        assert_eq!(v[1]["type"], "image");
        assert_eq!(v[1]["size_bytes"], 6);
        assert!(v[1].get("data").is_none(), "{v}");
        let failed = CallToolResult::error(vec![ContentBlock::text("no such contact")]);
        let err = result_value(failed).unwrap_err();
        assert!(
            matches!(err, Error::Tool(ref m) if m == "no such contact"),
            "{err}"
        );
        let mut structured = CallToolResult::success(vec![ContentBlock::text("{}")]);
        structured.structured_content = Some(json!({"count": 3}));
        assert_eq!(result_value(structured).unwrap(), json!({"count": 3}));
    }
}
