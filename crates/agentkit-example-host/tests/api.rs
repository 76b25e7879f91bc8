//! The host's HTTP API through its router (`tower::ServiceExt::oneshot`), as a client would
//! use it: keys, chat (JSON and SSE), approvals, agents, usage, audit, the reviewer's page,
//! and what must be refused — another tenant's data, bad JSON, oversized bodies, unknown ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentkit::id::TenantId;
use agentkit_example_host::{App, HostConfig, router};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Host {
    router: Router,
    acme: String,
    globex: String,
    _dir: tempfile::TempDir,
}

async fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        db_path: dir.path().join("host.db"),
        body_limit: 4 * 1024,
        ..HostConfig::default()
    };
    let app = App::open(config).await.unwrap();
    let acme = app
        .create_tenant(&TenantId::new("acme").unwrap())
        .await
        .unwrap();
    let globex = app
        .create_tenant(&TenantId::new("globex").unwrap())
        .await
        .unwrap();
    Host {
        router: router(app),
        acme,
        globex,
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(k) = key {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(Body::empty()).unwrap()
}

fn post(path: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(Body::from(body.to_string())).unwrap()
}

fn is_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(
        reply.content_type,
        "application/problem+json",
        "{}",
        reply.text()
    );
    let p = reply.json();
    assert_eq!(p["status"], status.as_u16());
    assert!(p["title"].is_string(), "{p}");
}

async fn tool_calls(h: &Host, key: &str, tool: &str) -> usize {
    let export = call(&h.router, get("/v1/audit", Some(key))).await;
    assert_eq!(export.status, StatusCode::OK);
    export
        .text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "tool.call" && e["action"] == tool)
        .count()
}

const CAMPAIGN: &str = "marketing.create_campaign_draft";

#[tokio::test]
async fn health_readiness_and_authentication() {
    let h = host().await;
    assert_eq!(
        call(&h.router, get("/healthz", None)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&h.router, get("/readyz", None)).await.status,
        StatusCode::OK
    );
    is_problem(
        &call(&h.router, get("/v1/approvals", None)).await,
        StatusCode::UNAUTHORIZED,
    );
    is_problem(
        &call(&h.router, get("/v1/approvals", Some("ak_nope"))).await,
        StatusCode::UNAUTHORIZED,
    );
    is_problem(
        &call(&h.router, get("/v1/nothing-here", Some(&h.acme))).await,
        StatusCode::NOT_FOUND,
    );

    // Rotation: the new key works, the old one stops at once.
    let rotated = call(&h.router, post("/v1/keys/rotate", Some(&h.acme), json!({}))).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let fresh = rotated.json()["api_key"].as_str().unwrap().to_string();
    assert_eq!(
        call(&h.router, get("/v1/approvals", Some(&fresh)))
            .await
            .status,
        StatusCode::OK
    );
    is_problem(
        &call(&h.router, get("/v1/approvals", Some(&h.acme))).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn chat_suspends_for_approval_and_a_decision_resumes_exactly_once() {
    let h = host().await;
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/s1/messages",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text());
    let chat = chat.json();
    assert_eq!(chat["status"], "suspended", "{chat}");
    let approval = &chat["approvals"][0];
    assert_eq!(approval["tool"], CAMPAIGN);
    // The tool's redaction rules apply to what clients and reviewers see.
    assert_eq!(approval["arguments"]["contact_email"], "[REDACTED]");
    let id = approval["id"].as_str().unwrap().to_string();

    // Another tenant sees nothing and cannot decide it: 404, not the data.
    let theirs = call(&h.router, get("/v1/approvals", Some(&h.globex))).await;
    assert_eq!(theirs.json(), json!([]));
    let stolen = call(
        &h.router,
        post(
            &format!("/v1/approvals/{id}"),
            Some(&h.globex),
            json!({"decision": "approve", "reviewer": "alice"}),
        ),
    )
    .await;
    is_problem(&stolen, StatusCode::NOT_FOUND);

    let pending = call(&h.router, get("/v1/approvals", Some(&h.acme)))
        .await
        .json();
    assert_eq!(pending[0]["id"], id.as_str());
    assert_eq!(pending[0]["priority"], "medium");
    assert!(pending[0]["due"].is_string());
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 0);

    // Two reviewers decide at once: one wins, the tool runs once.
    let decide = |reviewer: &'static str| {
        call(
            &h.router,
            post(
                &format!("/v1/approvals/{id}"),
                Some(&h.acme),
                json!({"decision": "approve", "reviewer": reviewer}),
            ),
        )
    };
    let (a, b) = tokio::join!(decide("alice"), decide("bob"));
    let statuses = [a.status, b.status];
    assert!(
        statuses.contains(&StatusCode::OK),
        "{} / {}",
        a.text(),
        b.text()
    );
    let winner = if a.status == StatusCode::OK { &a } else { &b };
    assert_eq!(winner.json()["status"], "completed", "{}", winner.text());
    assert!(
        winner.json()["reply"]
            .as_str()
            .unwrap()
            .contains("Spicy Chips")
    );
    let loser = if a.status == StatusCode::OK { &b } else { &a };
    assert!(
        loser.status == StatusCode::CONFLICT || loser.status == StatusCode::OK,
        "{}",
        loser.text()
    );
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 1);
    assert_eq!(
        call(&h.router, get("/v1/approvals", Some(&h.acme)))
            .await
            .json(),
        json!([])
    );

    // The session's history, in order; another tenant's view of it is a 404.
    let history = call(&h.router, get("/v1/sessions/s1/messages", Some(&h.acme)))
        .await
        .json();
    let roles: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.first(), Some(&"user"), "{history}");
    assert_eq!(roles.last(), Some(&"assistant"), "{history}");
    is_problem(
        &call(&h.router, get("/v1/sessions/s1/messages", Some(&h.globex))).await,
        StatusCode::NOT_FOUND,
    );

    // An unknown or malformed id is a 404.
    is_problem(
        &call(
            &h.router,
            post(
                "/v1/approvals/nope",
                Some(&h.acme),
                json!({"decision": "approve", "reviewer": "alice"}),
            ),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_the_tool_never_runs() {
    let h = host().await;
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/s2/messages",
            Some(&h.acme),
            json!({"message": "run ads for chips"}),
        ),
    )
    .await
    .json();
    let id = chat["approvals"][0]["id"].as_str().unwrap().to_string();
    let no_reason = call(
        &h.router,
        post(
            &format!("/v1/approvals/{id}"),
            Some(&h.acme),
            json!({"decision": "reject", "reviewer": "alice"}),
        ),
    )
    .await;
    is_problem(&no_reason, StatusCode::BAD_REQUEST);
    let not_a_reviewer = call(
        &h.router,
        post(
            &format!("/v1/approvals/{id}"),
            Some(&h.acme),
            json!({"decision": "approve", "reviewer": "mallory"}),
        ),
    )
    .await;
    is_problem(&not_a_reviewer, StatusCode::FORBIDDEN);
    let rejected = call(
        &h.router,
        post(
            &format!("/v1/approvals/{id}"),
            Some(&h.acme),
            json!({"decision": "reject", "reviewer": "bob", "comment": "budget is frozen"}),
        ),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text());
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 0);
}

#[tokio::test]
async fn bad_requests_are_problem_details() {
    let h = host().await;
    let bad_json = Request::post("/v1/sessions/s1/messages")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.acme))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    is_problem(&call(&h.router, bad_json).await, StatusCode::BAD_REQUEST);
    let unknown_field = post(
        "/v1/sessions/s1/messages",
        Some(&h.acme),
        json!({"message": "hi", "tenant": "globex"}),
    );
    is_problem(
        &call(&h.router, unknown_field).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let big = post(
        "/v1/sessions/s1/messages",
        Some(&h.acme),
        json!({"message": "x".repeat(10_000)}),
    );
    is_problem(&call(&h.router, big).await, StatusCode::PAYLOAD_TOO_LARGE);
    let bad_session = post(
        "/v1/sessions/a%20b/messages",
        Some(&h.acme),
        json!({"message": "hi"}),
    );
    is_problem(&call(&h.router, bad_session).await, StatusCode::BAD_REQUEST);
    let unknown_agent = post(
        "/v1/sessions/s1/messages",
        Some(&h.acme),
        json!({"message": "hi", "agent": "ghost"}),
    );
    is_problem(&call(&h.router, unknown_agent).await, StatusCode::NOT_FOUND);
    is_problem(
        &call(&h.router, get("/v1/invoices/2026-13", Some(&h.acme))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    is_problem(
        &call(&h.router, get("/v1/invoices/nope", Some(&h.acme))).await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn the_stream_carries_tool_calls_and_the_approval() {
    let h = host().await;
    let reply = call(
        &h.router,
        post(
            "/v1/sessions/s3/stream",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("text/event-stream"),
        "{}",
        reply.content_type
    );
    let text = reply.text();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"run_started"), "{text}");
    assert!(events.contains(&"tool_call"), "{text}");
    assert!(events.contains(&"tool_result"), "{text}");
    assert!(events.contains(&"approval_required"), "{text}");
    assert_eq!(events.last(), Some(&"done"), "{text}");
    assert!(
        !text.contains("ads@acme.example"),
        "a redacted argument leaked: {text}"
    );
}

#[tokio::test]
async fn agents_have_versioned_configs_per_tenant() {
    let h = host().await;
    let list = call(&h.router, get("/v1/agents", Some(&h.acme)))
        .await
        .json();
    assert_eq!(list[0]["agent"], "marketing");
    let blueprints = call(&h.router, get("/v1/blueprints", Some(&h.acme)))
        .await
        .json();
    assert_eq!(blueprints[0]["name"], "Marketing");
    let created = call(
        &h.router,
        post(
            "/v1/agents",
            Some(&h.acme),
            json!({"agent": "promo", "blueprint": "Marketing"}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json(), json!({"agent": "promo", "version": 1}));
    let again = call(
        &h.router,
        post(
            "/v1/agents",
            Some(&h.acme),
            json!({"agent": "promo", "blueprint": "Marketing"}),
        ),
    )
    .await
    .json();
    assert_eq!(again["version"], 2);
    assert_eq!(
        call(&h.router, get("/v1/agents/promo", Some(&h.acme)))
            .await
            .json(),
        json!([1, 2])
    );
    // Another tenant has no such agent.
    is_problem(
        &call(&h.router, get("/v1/agents/promo", Some(&h.globex))).await,
        StatusCode::NOT_FOUND,
    );
    // A config naming a tool the host does not have is refused.
    let mut config = blueprints[0]["config"].clone();
    config["agent"] = json!("broken");
    config["tools"] = json!(["payments.*"]);
    let refused = call(
        &h.router,
        post("/v1/agents", Some(&h.acme), json!({"config": config})),
    )
    .await;
    is_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    // The new agent answers chat.
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/p1/messages",
            Some(&h.acme),
            json!({"message": "hello", "agent": "promo"}),
        ),
    )
    .await;
    assert_eq!(chat.json()["status"], "completed", "{}", chat.text());
}

#[tokio::test]
async fn usage_invoices_and_the_audit_chain() {
    let h = host().await;
    call(
        &h.router,
        post(
            "/v1/sessions/s1/messages",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await;
    let usage = call(&h.router, get("/v1/usage", Some(&h.acme)))
        .await
        .json();
    assert!(usage["events"].as_u64().unwrap() > 0, "{usage}");
    assert!(!usage["lines"].as_array().unwrap().is_empty(), "{usage}");
    let none = call(&h.router, get("/v1/usage", Some(&h.globex)))
        .await
        .json();
    assert_eq!(none["events"], 0);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let invoice = call(
        &h.router,
        get(&format!("/v1/invoices/{month}"), Some(&h.acme)),
    )
    .await;
    assert_eq!(invoice.status, StatusCode::OK, "{}", invoice.text());
    assert_eq!(invoice.json()["period"], month.as_str());
    let verify = call(&h.router, get("/v1/audit/verify", Some(&h.acme)))
        .await
        .json();
    assert_eq!(verify["verified"], true, "{verify}");
    assert!(verify["entries"].as_u64().unwrap() > 0);
    let export = call(&h.router, get("/v1/audit", Some(&h.acme))).await;
    assert_eq!(export.content_type, "application/x-ndjson");
    assert!(
        !export.text().contains("ads@acme.example"),
        "a redacted value in the audit export"
    );
}

#[tokio::test]
async fn the_reviewer_page_signs_in_lists_and_decides() {
    let h = host().await;
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/s1/messages",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await
    .json();
    let id = chat["approvals"][0]["id"].as_str().unwrap().to_string();

    let login_page = call(&h.router, get("/review", None)).await;
    assert!(login_page.text().contains("Reviewer sign-in"));
    let form = |path: &str, body: String, cookie: Option<&str>| {
        let mut r =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        r.body(Body::from(body)).unwrap()
    };
    let wrong = call(
        &h.router,
        form("/review/login", "key=ak_wrong".into(), None),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let signed_in = call(
        &h.router,
        form("/review/login", format!("key={}", h.acme), None),
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = signed_in.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        signed_in.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );

    let page = call(
        &h.router,
        Request::get("/review")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let html = page.text();
    assert!(html.contains(&format!("approval-{id}")), "{html}");
    assert!(html.contains(CAMPAIGN));
    assert!(
        html.contains("[REDACTED]") && !html.contains("ads@acme.example"),
        "{html}"
    );
    // globex's reviewer does not see acme's request.
    let theirs = call(
        &h.router,
        Request::get("/review")
            .header(header::COOKIE, format!("agentkit_key={}", h.globex))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!theirs.text().contains(&id));

    // Approve with edited arguments (re-validated: a budget over the schema's maximum is refused).
    let too_much = call(
        &h.router,
        form(
            &format!("/review/approvals/{id}"),
            format!(
                "decision=approve&reviewer=alice&arguments={}",
                urlencode(r#"{"name":"Spicy Chips","budget":500}"#)
            ),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(too_much.status, StatusCode::OK, "{}", too_much.text());
    assert_eq!(
        tool_calls(&h, &h.acme, CAMPAIGN).await,
        0,
        "invalid edited arguments must not run"
    );

    // A fresh request approved with valid edits runs once, with the reviewer's arguments.
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/s4/messages",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await
    .json();
    let id = chat["approvals"][0]["id"].as_str().unwrap().to_string();
    let edited = call(
        &h.router,
        form(
            &format!("/review/approvals/{id}"),
            format!(
                "decision=approve&reviewer=alice&arguments={}",
                urlencode(r#"{"name":"Spicy Chips","budget":20}"#)
            ),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    assert!(
        edited.text().contains("approved; the run is completed"),
        "{}",
        edited.text()
    );
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 1);
    let export = call(&h.router, get("/v1/audit", Some(&h.acme)))
        .await
        .text();
    assert!(
        export.contains(r#""budget":20"#),
        "the edited arguments ran"
    );

    // Another one rejected with a reason: nothing runs.
    let chat = call(
        &h.router,
        post(
            "/v1/sessions/s5/messages",
            Some(&h.acme),
            json!({"message": "Sell Spicy Chips"}),
        ),
    )
    .await
    .json();
    let id = chat["approvals"][0]["id"].as_str().unwrap().to_string();
    let rejected = call(
        &h.router,
        form(
            &format!("/review/approvals/{id}"),
            "decision=reject&reviewer=bob&comment=not+this+week".into(),
            Some(&cookie),
        ),
    )
    .await;
    assert!(rejected.text().contains("rejected"), "{}", rejected.text());
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 1);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const LAUNCH: &str = r#"{
  "id": "launch", "version": 1, "name": "Campaign launch", "agent": "marketing",
  "start": "balance", "inputs": ["product"],
  "nodes": [
    {"id": "balance", "kind": "tool", "tool": "budget.get_balance", "args": {}},
    {"id": "draft", "kind": "tool", "tool": "marketing.create_campaign_draft",
     "args": {"name": "${product}", "budget": 30}}
  ],
  "edges": [{"from": "balance", "to": "draft"}]
}"#;

async fn run_state(h: &Host, run: &str) -> Value {
    call(
        &h.router,
        get(&format!("/v1/workflow-runs/{run}"), Some(&h.acme)),
    )
    .await
    .json()
}

async fn wait_for(h: &Host, run: &str, state: &str) -> Value {
    for _ in 0..200 {
        let r = run_state(h, run).await;
        if r["state"] == state {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "run {run} never reached `{state}`: {}",
        run_state(h, run).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_on_the_host_worker_and_their_approvals_share_the_queue() {
    let h = host().await;
    let definition: Value = serde_json::from_str(LAUNCH).unwrap();
    let published = call(
        &h.router,
        post("/v1/workflows", Some(&h.acme), definition.clone()),
    )
    .await;
    assert_eq!(
        published.status,
        StatusCode::CREATED,
        "{}",
        published.text()
    );
    // A definition that does not hold together is refused with what is wrong.
    let mut broken = definition.clone();
    broken["id"] = json!("broken");
    broken["edges"] = json!([{"from": "balance", "to": "nowhere"}]);
    is_problem(
        &call(&h.router, post("/v1/workflows", Some(&h.acme), broken)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );

    let start = json!({"input": {"product": "Spicy Chips"}, "trigger_key": "order-1"});
    let started = call(
        &h.router,
        post("/v1/workflows/launch/runs", Some(&h.acme), start.clone()),
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let run = started.json()["run_id"].as_str().unwrap().to_string();
    // The same trigger key again: the same run.
    let again = call(
        &h.router,
        post("/v1/workflows/launch/runs", Some(&h.acme), start),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["run_id"], run.as_str());
    // Another tenant neither sees the run nor can start the workflow.
    is_problem(
        &call(
            &h.router,
            get(&format!("/v1/workflow-runs/{run}"), Some(&h.globex)),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &call(
            &h.router,
            post(
                "/v1/workflows/launch/runs",
                Some(&h.globex),
                json!({"input": {"product": "x"}}),
            ),
        )
        .await,
        StatusCode::NOT_FOUND,
    );

    // The worker runs the balance step, then the draft waits for approval in the tenant's queue.
    let waiting = wait_for(&h, &run, "waiting").await;
    assert_eq!(waiting["wait"]["for"], "approval", "{waiting}");
    let pending = call(&h.router, get("/v1/approvals", Some(&h.acme)))
        .await
        .json();
    let approval = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tool"] == CAMPAIGN)
        .unwrap_or_else(|| panic!("no approval: {pending}"));
    assert_eq!(approval["arguments"]["name"], "Spicy Chips");
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 0);
    let id = approval["id"].as_str().unwrap();
    let decided = call(
        &h.router,
        post(
            &format!("/v1/approvals/{id}"),
            Some(&h.acme),
            json!({"decision": "approve", "reviewer": "alice"}),
        ),
    )
    .await;
    assert_eq!(decided.json()["status"], "resumed", "{}", decided.text());
    let done = wait_for(&h, &run, "done").await;
    let nodes: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "succeeded")
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"balance") && nodes.contains(&"draft"),
        "{done}"
    );
    assert_eq!(tool_calls(&h, &h.acme, CAMPAIGN).await, 1);
}
