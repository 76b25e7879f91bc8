//! Chat per tenant and session: one JSON answer, or the run's events over SSE.

use std::convert::Infallible;

use agentkit::agent::{AgentEvent, RunOutcome};
use agentkit::id::{AgentId, SessionId};
use agentkit::prelude::RunRequest;
use agentkit::redact::redact;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiJson, ApiResult, Problem};

use super::approvals::approval_view;

/// One user message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatRequest {
    /// What the user says.
    message: String,
    /// Which agent answers (default `marketing`).
    #[serde(default = "default_agent")]
    agent: String,
}

fn default_agent() -> String {
    "marketing".into()
}

async fn prepare(
    app: &App,
    caller: &Caller,
    session: &str,
    body: ChatRequest,
) -> ApiResult<(std::sync::Arc<agentkit::prelude::Agent>, RunRequest)> {
    let session = SessionId::new(session).map_err(|e| Problem::bad_request(e.to_string()))?;
    let agent = AgentId::new(&body.agent).map_err(|e| Problem::bad_request(e.to_string()))?;
    if body.message.trim().is_empty() {
        return Err(Problem::bad_request("`message` is empty"));
    }
    let agent = app
        .agent(&caller.tenant, &agent)
        .await
        .map_err(Problem::from)?;
    Ok((
        agent,
        RunRequest::new(&caller.tenant, &session, body.message),
    ))
}

pub(super) async fn send(
    State(app): State<App>,
    caller: Caller,
    Path(session): Path<String>,
    ApiJson(body): ApiJson<ChatRequest>,
) -> ApiResult<Json<Value>> {
    let (agent, request) = prepare(&app, &caller, &session, body).await?;
    let outcome = agent.run(request).await.map_err(Problem::from)?;
    app.record_run(&caller.tenant, &outcome).await;
    Ok(Json(outcome_json(&app, &outcome)))
}

pub(super) async fn stream(
    State(app): State<App>,
    caller: Caller,
    Path(session): Path<String>,
    ApiJson(body): ApiJson<ChatRequest>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (agent, request) = prepare(&app, &caller, &session, body).await?;
    let tenant = caller.tenant.clone();
    let events = agent.run_stream(request).filter_map(move |event| {
        let app = app.clone();
        let tenant = tenant.clone();
        async move {
            if let Ok(AgentEvent::Done(outcome)) = &event {
                app.record_run(&tenant, outcome).await;
            }
            let (name, data) = match event {
                Ok(event) => event_json(&app, event)?,
                Err(e) => ("error", serde_json::to_value(Problem::from(e)).ok()?),
            };
            Some(Ok(Event::default().event(name).data(data.to_string())))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// A session's messages in order: role and text (tool calls by name only; their arguments
/// stay in the audit trail, redacted).
pub(super) async fn history(
    State(app): State<App>,
    caller: Caller,
    Path(session): Path<String>,
) -> ApiResult<Json<Value>> {
    let session = SessionId::new(&session).map_err(|e| Problem::bad_request(e.to_string()))?;
    let store = &app.inner.store;
    if store
        .get_session(&caller.tenant, &session)
        .await
        .map_err(Problem::from)?
        .is_none()
    {
        return Err(Problem::not_found(format!("no session `{session}`")));
    }
    let messages = store
        .load_messages(
            &caller.tenant,
            &session,
            agentkit::store::MessageWindow::All,
        )
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!(
        messages
            .iter()
            .map(|m| {
                let role = serde_json::to_value(&m.message)
                    .ok()
                    .and_then(|v| v["role"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let tools: Vec<&str> = match &m.message {
                    agentkit::message::Message::Assistant { tool_calls, .. } => {
                        tool_calls.iter().map(|c| c.name.as_str()).collect()
                    }
                    _ => Vec::new(),
                };
                json!({"seq": m.seq, "role": role, "text": m.message.text(), "tool_calls": tools})
            })
            .collect::<Vec<_>>()
    )))
}

/// An SSE event's name and data; `None` for events a client does not need.
fn event_json(app: &App, event: AgentEvent) -> Option<(&'static str, Value)> {
    Some(match event {
        AgentEvent::RunStarted { run } => ("run_started", json!({"run_id": run})),
        AgentEvent::TextDelta(text) => ("text", json!({"text": text})),
        AgentEvent::ToolCallStarted(call) => (
            "tool_call",
            json!({
                "id": call.id, "name": call.name,
                "arguments": redact(&call.arguments, &app.redaction_of(&call.name)),
            }),
        ),
        AgentEvent::ToolCallFinished(s) => (
            "tool_result",
            json!({"id": s.call.id, "name": s.call.name, "result": s.result, "is_error": s.is_error}),
        ),
        AgentEvent::ApprovalRequired(a) => ("approval_required", approval_view(app, &a)),
        AgentEvent::Usage(u) => ("usage", json!(u)),
        AgentEvent::Done(outcome) => ("done", outcome_json(app, &outcome)),
        _ => return None,
    })
}

/// A run's outcome for clients: status, reply, tool calls (arguments redacted) and the
/// approvals it waits for.
pub(crate) fn outcome_json(app: &App, outcome: &RunOutcome) -> Value {
    let calls = |calls: &[agentkit::agent::ToolCallSummary]| -> Vec<Value> {
        calls
            .iter()
            .map(|s| {
                json!({
                    "name": s.call.name,
                    "arguments": redact(&s.call.arguments, &app.redaction_of(&s.call.name)),
                    "result": s.result,
                    "is_error": s.is_error,
                })
            })
            .collect()
    };
    match outcome {
        RunOutcome::Completed(r) => json!({
            "run_id": r.run, "status": "completed", "reply": r.reply,
            "tool_calls": calls(&r.tool_calls), "usage": r.usage,
            "sources": r.sources.iter().map(|c| json!({
                "document_id": c.source.document_id, "title": c.source.title,
                "page": c.source.page, "score": c.score,
            })).collect::<Vec<_>>(),
        }),
        RunOutcome::Suspended(s) => json!({
            "run_id": s.run, "status": "suspended",
            "tool_calls": calls(&s.tool_calls),
            "approvals": s.approvals.iter().map(|a| approval_view(app, a)).collect::<Vec<_>>(),
        }),
        RunOutcome::AlreadyResumed { run, status } => {
            json!({"run_id": run, "status": "already_resumed", "run_status": status})
        }
        _ => json!({"run_id": outcome.run_id(), "status": "other"}),
    }
}
