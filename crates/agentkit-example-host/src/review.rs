//! The reviewer's page: a server-rendered list of pending approvals (priority, SLA,
//! escalation, the exact tool and its redacted arguments) with approve / reject / edit forms,
//! and a usage panel per agent. Plain HTML forms; no front-end build.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::api::{decide_and_resume, pending_view, spend_by_agent};
use crate::app::App;
use crate::auth::{Caller, KEY_COOKIE};
use crate::routes::RouteTable;

/// The page's routes.
pub(crate) fn routes() -> RouteTable {
    RouteTable::new()
        .get("/review", page)
        .post("/review/login", login)
        .post("/review/logout", logout)
        .post("/review/approvals/{id}", decide)
}

struct ItemView {
    id: String,
    tool: String,
    arguments: String,
    reason: String,
    priority: String,
    agent: String,
    session: String,
    due: String,
    breached: bool,
    escalated: bool,
}

struct SpendView {
    agent: String,
    usd: String,
    tool_calls: u64,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    tenant: String,
    model: String,
    items: Vec<ItemView>,
    spend: Vec<SpendView>,
    reviewers: Vec<String>,
    message: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn render(
    app: &App,
    caller: &Caller,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let items = match pending_view(app, &caller.tenant).await {
        Ok(items) => items,
        Err(e) => return crate::problem::Problem::from(e).into_response(),
    };
    let items = items
        .iter()
        .map(|v| ItemView {
            id: text(&v["id"]),
            tool: text(&v["tool"]),
            arguments: serde_json::to_string_pretty(&v["arguments"]).unwrap_or_default(),
            reason: text(&v["reason"]),
            priority: text(&v["priority"]),
            agent: text(&v["agent"]),
            session: text(&v["session"]),
            due: text(&v["due"]),
            breached: v["breached"].as_bool().unwrap_or(false),
            escalated: v["escalation_level"].as_u64().unwrap_or(0) > 0,
        })
        .collect();
    let spend = spend_by_agent(app, &caller.tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(agent, (usd, tool_calls))| SpendView {
            agent,
            usd: format!("{usd:.6}"),
            tool_calls,
        })
        .collect();
    html(
        status,
        &ReviewPage {
            tenant: caller.tenant.as_str().to_string(),
            model: app.model_label().to_string(),
            items,
            spend,
            reviewers: app.config().reviewers.clone(),
            message,
            error,
        },
    )
}

async fn page(State(app): State<App>, caller: Result<Caller, crate::problem::Problem>) -> Response {
    match caller {
        Ok(caller) => render(&app, &caller, StatusCode::OK, None, None).await,
        Err(_) => html(StatusCode::OK, &LoginPage { error: None }),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    match app.tables().tenant_of(form.key.trim()).await {
        Ok(Some(_)) => {
            let cookie = format!(
                "{KEY_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/review",
                form.key.trim()
            );
            let mut headers = HeaderMap::new();
            if let Ok(v) = cookie.parse() {
                headers.insert(header::SET_COOKIE, v);
            }
            (headers, Redirect::to("/review")).into_response()
        }
        _ => html(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                error: Some("That API key is not valid.".into()),
            },
        ),
    }
}

async fn logout() -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) =
        format!("{KEY_COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/review").parse()
    {
        headers.insert(header::SET_COOKIE, v);
    }
    (headers, Redirect::to("/review")).into_response()
}

#[derive(Deserialize)]
struct DecisionForm {
    decision: String,
    reviewer: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    arguments: String,
}

async fn decide(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let arguments = if form.arguments.trim().is_empty() {
        None
    } else {
        match serde_json::from_str(&form.arguments) {
            Ok(v) => Some(v),
            Err(e) => {
                let error = format!("The edited arguments are not JSON: {e}");
                return render(&app, &caller, StatusCode::BAD_REQUEST, None, Some(error)).await;
            }
        }
    };
    let decision = crate::api::Decision {
        decision: form.decision.clone(),
        reviewer: form.reviewer,
        comment: Some(form.comment).filter(|c| !c.trim().is_empty()),
        arguments,
    };
    match decide_and_resume(&app, &caller.tenant, &id, decision).await {
        Ok(outcome) => {
            let status = outcome["status"].as_str().unwrap_or("done");
            let verb = if form.decision == "approve" {
                "approved"
            } else {
                "rejected"
            };
            let message = format!("Request {id}: {verb}; the run is {status}.");
            render(&app, &caller, StatusCode::OK, Some(message), None).await
        }
        Err(problem) => {
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            let error = problem.detail.unwrap_or_else(|| problem.title.clone());
            render(&app, &caller, status, None, Some(error)).await
        }
    }
}
