//! Knowledge upload per agent (feature `knowledge`; otherwise `501`).

use axum::Json;
#[cfg(feature = "knowledge")]
use axum::extract::{Path, State};
#[cfg(feature = "knowledge")]
use serde::Deserialize;
use serde_json::Value;

#[cfg(feature = "knowledge")]
use crate::app::App;
use crate::auth::Caller;
#[cfg(feature = "knowledge")]
use crate::problem::ApiJson;
use crate::problem::{ApiResult, Problem};

/// Documents to index for one agent.
#[cfg(feature = "knowledge")]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Upload {
    documents: Vec<UploadedDocument>,
}

/// One document: an id (re-uploading an id replaces it), its text, and `text` or `markdown`.
#[cfg(feature = "knowledge")]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadedDocument {
    id: String,
    text: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[cfg(feature = "knowledge")]
pub(super) async fn upload(
    State(app): State<App>,
    caller: Caller,
    Path(agent): Path<String>,
    ApiJson(body): ApiJson<Upload>,
) -> ApiResult<Json<Value>> {
    use agentkit::id::AgentId;
    use agentkit::rag::Document;
    use axum::http::StatusCode;
    use serde_json::json;

    let knowledge = app.inner.knowledge.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "knowledge is off: set AGENTKIT_MINILM_DIR to the all-MiniLM-L6-v2 model directory",
        )
    })?;
    let agent = AgentId::new(&agent).map_err(|e| Problem::bad_request(e.to_string()))?;
    if app
        .inner
        .store
        .get_agent_config(&caller.tenant, &agent, None)
        .await
        .map_err(Problem::from)?
        .is_none()
    {
        return Err(Problem::not_found(format!("no agent `{agent}`")));
    }
    if body.documents.is_empty() {
        return Err(Problem::bad_request("`documents` is empty"));
    }
    let mut documents = Vec::with_capacity(body.documents.len());
    for d in body.documents {
        let mut doc = match d.format.as_deref().unwrap_or("text") {
            "text" => Document::text(d.id, d.text),
            "markdown" => Document::markdown(d.id, d.text),
            other => {
                return Err(Problem::bad_request(format!(
                    "`format` is `text` or `markdown`, not `{other}`"
                )));
            }
        };
        if let Some(title) = d.title {
            doc = doc.with_title(title);
        }
        documents.push(doc);
    }
    let report = knowledge
        .ingest(&caller.tenant, &agent, documents)
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!({
        "indexed": report.indexed,
        "unchanged": report.unchanged,
        "failed": report.failed.iter().map(|f| json!({
            "document_id": f.document_id, "error": f.error.to_string(),
        })).collect::<Vec<_>>(),
        "chunks": report.chunks,
    })))
}

#[cfg(not(feature = "knowledge"))]
pub(super) async fn upload(_caller: Caller) -> ApiResult<Json<Value>> {
    Err(Problem::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "this host was built without the `knowledge` feature",
    ))
}
