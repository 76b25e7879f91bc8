//! (h) Tenant isolation on every route: company A (acme) has an agent with two versions, a
//! tool, a private conversation, pending approvals (a chat's and a workflow's), a workflow run,
//! usage, audit entries and (with knowledge) a document. Company B (globex) then calls every
//! route the router serves — the list comes from the router itself
//! (`agentkit_example_host::routes()`), and a route without a case here fails the test —
//! aiming at A's resources by their ids and names. Each call must be refused (404/403) or
//! answered with B's own data only: no reply may contain anything of A's that B did not send
//! itself. Afterwards A's data is exactly as it was, and A can still decide its approval.

use std::time::Duration;

use agentkit_example_host::Route;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::client::{self, Auth, Reply};
use crate::fixtures::{self, ORDER_TOOL};
use crate::host::{self, Host};

const SECRET: &str = "Zanzibar-7781";
const A_SESSION: &str = "a-private-session";
const A_WORKFLOW: &str = "a-launch";

/// A's workflow: check the balance, then draft a campaign (which waits for approval).
fn launch() -> Value {
    json!({
        "id": A_WORKFLOW, "version": 1, "name": "Campaign launch", "agent": "marketing",
        "start": "balance", "inputs": ["product"],
        "nodes": [
            {"id": "balance", "kind": "tool", "tool": "budget.get_balance", "args": {}},
            {"id": "draft", "kind": "tool", "tool": "marketing.create_campaign_draft",
             "args": {"name": "${product}", "budget": 30}}
        ],
        "edges": [{"from": "balance", "to": "draft"}]
    })
}

/// What B sends and gets back, for the leak check.
struct Sent {
    request: String,
    reply: Reply,
}

struct Ctx<'a> {
    h: &'a Host,
    a: String,
    b: String,
    /// A's approval from a chat, and from its workflow run.
    approvals: [String; 2],
    /// A's chat run and workflow run.
    chat_run: String,
    workflow_run: String,
    /// Strings only A's data contains.
    markers: Vec<String>,
    knowledge: bool,
}

impl Ctx<'_> {
    async fn send(&self, method: &str, path: &str, auth: Auth<'_>, body: Option<Value>) -> Sent {
        let reply = client::send(&self.h.router, method, path, auth, body.as_ref()).await;
        let request = format!(
            "{method} {path} {}",
            body.map(|b| b.to_string()).unwrap_or_default()
        );
        Sent { request, reply }
    }

    async fn b_get(&self, path: &str) -> Sent {
        self.send("GET", path, Auth::Bearer(&self.b), None).await
    }

    async fn b_post(&self, path: &str, body: Value) -> Sent {
        self.send("POST", path, Auth::Bearer(&self.b), Some(body))
            .await
    }

    async fn b_form(&self, path: &str, cookie: bool, body: &str) -> Sent {
        let key = cookie.then_some(self.b.as_str());
        let reply = client::form(&self.h.router, path, key, body).await;
        Sent {
            request: format!("POST {path} {body}"),
            reply,
        }
    }
}

fn expect(sent: &Sent, statuses: &[StatusCode]) -> Value {
    assert!(
        statuses.contains(&sent.reply.status),
        "{}: got {} (expected one of {statuses:?}): {}",
        sent.request,
        sent.reply.status,
        sent.reply.text
    );
    serde_json::from_str(&sent.reply.text).unwrap_or(Value::Null)
}

/// Which phase a route's probe runs in: 1 reads and refused writes, 2 writes that reuse A's
/// names (B gets its own), 3 B's key rotation.
fn phase(route: &Route) -> u8 {
    match (route.method, route.path) {
        ("POST", "/v1/agents" | "/v1/tools" | "/v1/workflows")
        | ("POST", "/v1/sessions/{session}/messages" | "/v1/sessions/{session}/stream") => 2,
        ("POST", "/v1/keys/rotate") => 3,
        _ => 1,
    }
}

/// B's calls for `route`, checked; `None` when there is no case for it.
async fn probe(c: &mut Ctx<'_>, route: &Route) -> Option<Vec<Sent>> {
    let ok = [StatusCode::OK];
    let not_found = [StatusCode::NOT_FOUND];
    let [approval, workflow_approval] = c.approvals.clone();
    Some(match (route.method, route.path) {
        ("GET", "/healthz" | "/readyz") => {
            let s = c.send("GET", route.path, Auth::None, None).await;
            expect(&s, &ok);
            vec![s]
        }
        ("POST", "/admin/v1/companies") => {
            let s = c
                .b_post(route.path, json!({"company": "b-made-this"}))
                .await;
            expect(&s, &[StatusCode::FORBIDDEN]);
            vec![s]
        }
        ("GET", "/v1/blueprints" | "/v1/prices" | "/v1/tools" | "/v1/approvals") => {
            let s = c.b_get(route.path).await;
            expect(&s, &ok);
            vec![s]
        }
        ("GET", "/v1/agents") => {
            let s = c.b_get(route.path).await;
            let agents = expect(&s, &ok);
            assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");
            vec![s]
        }
        ("GET", "/v1/agents/{agent}") => {
            let s = c.b_get("/v1/agents/concierge").await;
            expect(&s, &not_found);
            vec![s]
        }
        ("GET", "/v1/agents/{agent}/versions/{version}") => {
            let s = c.b_get("/v1/agents/concierge/versions/1").await;
            expect(&s, &not_found);
            vec![s]
        }
        ("POST", "/v1/agents/{agent}/knowledge") => {
            let s = c
                .b_post(
                    "/v1/agents/concierge/knowledge",
                    json!({"documents": [{"id": "b.txt", "text": "B's note"}]}),
                )
                .await;
            // Without the knowledge feature (501) or model (503) nobody can upload.
            let allowed: &[StatusCode] = if c.knowledge {
                &not_found
            } else {
                &[StatusCode::NOT_IMPLEMENTED, StatusCode::SERVICE_UNAVAILABLE]
            };
            expect(&s, allowed);
            vec![s]
        }
        ("GET", "/v1/sessions/{session}/messages") => {
            let s = c.b_get(&format!("/v1/sessions/{A_SESSION}/messages")).await;
            expect(&s, &not_found);
            vec![s]
        }
        ("POST", "/v1/approvals/{id}") => {
            let mut out = Vec::new();
            for id in [&approval, &workflow_approval] {
                let decision = json!({"decision": "approve", "reviewer": "alice"});
                let s = c.b_post(&format!("/v1/approvals/{id}"), decision).await;
                expect(&s, &not_found);
                out.push(s);
            }
            out
        }
        ("POST", "/v1/workflows/{workflow}/runs") => {
            let s = c
                .b_post(
                    &format!("/v1/workflows/{A_WORKFLOW}/runs"),
                    json!({"input": {"product": "b"}}),
                )
                .await;
            expect(&s, &not_found);
            vec![s]
        }
        ("GET", "/v1/workflow-runs/{run}") => {
            let s = c
                .b_get(&format!("/v1/workflow-runs/{}", c.workflow_run))
                .await;
            expect(&s, &not_found);
            vec![s]
        }
        ("GET", "/v1/usage") => {
            let s = c.b_get(route.path).await;
            let usage = expect(&s, &ok);
            assert_eq!(usage["tenant"], "globex");
            vec![s]
        }
        ("GET", "/v1/usage/events") => {
            let all = c.b_get(route.path).await;
            let events = expect(&all, &ok);
            assert!(
                !events.as_array().unwrap().is_empty(),
                "B has its own events"
            );
            assert!(
                events
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["tenant"] == "globex")
            );
            let aimed = c
                .b_get(&format!("/v1/usage/events?run={}", c.chat_run))
                .await;
            assert_eq!(expect(&aimed, &ok), json!([]));
            vec![all, aimed]
        }
        ("GET", "/v1/invoices/{period}") => {
            let period = chrono::Utc::now().format("%Y-%m").to_string();
            let s = c.b_get(&format!("/v1/invoices/{period}")).await;
            let draft = expect(&s, &ok);
            assert_eq!(draft["tenant"], "globex");
            vec![s]
        }
        ("GET", "/v1/audit") => {
            let s = c.b_get(route.path).await;
            expect(&s, &ok);
            vec![s]
        }
        ("GET", "/v1/audit/verify") => {
            let s = c.b_get(route.path).await;
            let v = expect(&s, &ok);
            let export = c.b_get("/v1/audit").await;
            assert_eq!(
                v["entries"].as_u64().unwrap() as usize,
                export.reply.text.lines().count()
            );
            vec![s, export]
        }
        ("GET", "/review") => {
            let s = c.send("GET", "/review", Auth::Cookie(&c.b), None).await;
            expect(&s, &ok);
            assert!(s.reply.text.contains("globex"), "{}", s.reply.text);
            vec![s]
        }
        ("POST", "/review/login") => {
            let mine = c.b_form(route.path, false, &format!("key={}", c.b)).await;
            expect(&mine, &[StatusCode::SEE_OTHER]);
            let wrong = c.b_form(route.path, false, "key=ak_guess").await;
            expect(&wrong, &[StatusCode::UNAUTHORIZED]);
            vec![mine, wrong]
        }
        ("POST", "/review/logout") => {
            let s = c.b_form(route.path, true, "").await;
            expect(&s, &[StatusCode::SEE_OTHER]);
            vec![s]
        }
        ("POST", "/review/approvals/{id}") => {
            let path = format!("/review/approvals/{approval}");
            let s = c
                .b_form(&path, true, "decision=approve&reviewer=alice")
                .await;
            expect(&s, &not_found);
            vec![s]
        }
        // Phase 2: B reuses A's names and gets its own things.
        ("POST", "/v1/agents") => {
            let own = c
                .b_post(
                    route.path,
                    fixtures::concierge("You are Globex's concierge.", &[]),
                )
                .await;
            assert_eq!(expect(&own, &[StatusCode::CREATED])["version"], 1);
            let with_a_tool = c
                .b_post(route.path, fixtures::concierge("Globex", &["orders.*"]))
                .await;
            expect(&with_a_tool, &[StatusCode::UNPROCESSABLE_ENTITY]);
            vec![own, with_a_tool]
        }
        ("POST", "/v1/tools") => {
            let mut tool = fixtures::order_tool(&c.h.orders.base);
            tool["url"] = json!(format!("{}/b-orders/{{order_id}}", c.h.orders.base));
            let s = c.b_post(route.path, tool).await;
            expect(&s, &[StatusCode::CREATED]);
            vec![s]
        }
        ("POST", "/v1/workflows") => {
            let s = c.b_post(route.path, launch()).await;
            expect(&s, &[StatusCode::CREATED]);
            vec![s]
        }
        ("POST", "/v1/sessions/{session}/messages") => {
            let path = format!("/v1/sessions/{A_SESSION}/messages");
            let s = c.b_post(&path, json!({"message": "hello"})).await;
            expect(&s, &ok);
            let history = c.b_get(&path).await;
            assert_eq!(
                expect(&history, &ok).as_array().unwrap().len(),
                2,
                "B's own session"
            );
            vec![s, history]
        }
        ("POST", "/v1/sessions/{session}/stream") => {
            let path = format!("/v1/sessions/{A_SESSION}/stream");
            let s = c.b_post(&path, json!({"message": "hello"})).await;
            expect(&s, &ok);
            vec![s]
        }
        ("POST", "/v1/keys/rotate") => {
            let s = c.b_post(route.path, json!({})).await;
            let rotated = expect(&s, &ok);
            assert_eq!(rotated["tenant"], "globex");
            c.b = rotated["api_key"].as_str().unwrap().to_string();
            vec![s]
        }
        _ => return None,
    })
}

/// What A's data looks like, to compare before and after B's calls.
async fn snapshot(c: &Ctx<'_>) -> Vec<Value> {
    let h = c.h;
    let ids = |v: Value| {
        json!(
            v.as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].clone())
                .collect::<Vec<_>>()
        )
    };
    vec![
        h.read(&c.a, "/v1/agents").await,
        h.read(&c.a, "/v1/agents/concierge").await,
        h.read(&c.a, "/v1/agents/concierge/versions/2").await,
        h.read(&c.a, "/v1/tools").await,
        h.read(&c.a, &format!("/v1/sessions/{A_SESSION}/messages"))
            .await,
        ids(h.read(&c.a, "/v1/approvals").await),
        h.read(&c.a, &format!("/v1/workflow-runs/{}", c.workflow_run))
            .await["state"]
            .clone(),
        h.read(&c.a, "/v1/usage/events").await,
        h.read(&c.a, "/v1/audit/verify").await,
    ]
}

/// Runs (h) on `h`.
pub async fn check(h: &Host) {
    let knowledge = host::knowledge_available("seed_001::h");
    let a = h.company("acme").await;
    let b = h.company("globex").await;
    let prompt = format!("You are Acme's concierge; the code word is {SECRET}.");
    h.concierge(&a, &prompt).await;
    client::post(
        &h.router,
        "/v1/agents",
        &a,
        fixtures::concierge(&prompt, &["orders.*"]),
    )
    .await
    .expect(StatusCode::CREATED);
    let chat = h
        .chat(
            &a,
            A_SESSION,
            "concierge",
            &format!("My code word is {SECRET}. Where is order 12345?"),
        )
        .await;
    let chat_run = chat["run_id"].as_str().unwrap().to_string();
    let sell = h
        .chat(&a, "a-campaign-session", "marketing", "Sell Zanzibar Chips")
        .await;
    let approval = sell["approvals"][0]["id"].as_str().unwrap().to_string();
    client::post(&h.router, "/v1/workflows", &a, launch())
        .await
        .expect(StatusCode::CREATED);
    let started = client::post(
        &h.router,
        &format!("/v1/workflows/{A_WORKFLOW}/runs"),
        &a,
        json!({"input": {"product": format!("{SECRET} Chips")}}),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let workflow_run = started["run_id"].as_str().unwrap().to_string();
    let mut waiting = false;
    for _ in 0..200 {
        let run = h
            .read(&a, &format!("/v1/workflow-runs/{workflow_run}"))
            .await;
        if run["state"] == "waiting" {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        waiting,
        "{}: A's workflow run never waited for its approval",
        h.db
    );
    let pending = h.read(&a, "/v1/approvals").await;
    let workflow_approval = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] != approval.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    if knowledge {
        client::post(
            &h.router,
            "/v1/agents/concierge/knowledge",
            &a,
            json!({"documents": [{"id": "a-handbook.md", "text": format!("The vault code is {SECRET}.")}]}),
        )
        .await
        .expect(StatusCode::OK);
    }
    // B has data of its own.
    h.chat(&b, "b-session", "marketing", "hello").await;

    let mut c = Ctx {
        h,
        a,
        b,
        markers: vec![
            SECRET.into(),
            "acme".into(),
            "Acme".into(),
            A_SESSION.into(),
            "a-campaign-session".into(),
            "concierge".into(),
            ORDER_TOOL.into(),
            A_WORKFLOW.into(),
            "a-handbook".into(),
            h.orders.base.clone(),
            approval.clone(),
            workflow_approval.clone(),
            chat_run.clone(),
            workflow_run.clone(),
        ],
        approvals: [approval.clone(), workflow_approval],
        chat_run,
        workflow_run,
        knowledge,
    };
    let before = snapshot(&c).await;

    let mut routes = agentkit_example_host::routes();
    assert!(
        routes.len() >= 30,
        "the router lists {} routes",
        routes.len()
    );
    routes.sort_by_key(phase);
    let mut uncovered = Vec::new();
    for route in &routes {
        let Some(sent) = probe(&mut c, route).await else {
            uncovered.push(route.to_string());
            continue;
        };
        for s in &sent {
            for marker in c.markers.iter().filter(|m| !s.request.contains(m.as_str())) {
                assert!(
                    !s.reply.text.contains(marker.as_str()),
                    "{}: {route}: B's call `{}` revealed A's `{marker}`: {}",
                    h.db,
                    s.request,
                    s.reply.text
                );
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "routes the router serves with no isolation case in tests/seed_001/isolation.rs: {uncovered:?}"
    );

    // A's data is exactly as it was; A's approval is still A's to decide.
    assert_eq!(
        snapshot(&c).await,
        before,
        "{}: B's calls changed A's data",
        h.db
    );
    if knowledge {
        let question = "What is the vault code?";
        let mine = h.chat(&c.a, "a-kb", "concierge", question).await;
        assert_eq!(mine["sources"][0]["document_id"], "a-handbook.md", "{mine}");
        // B's agent of the same name retrieves nothing of A's.
        let theirs = h.chat(&c.b, "b-kb", "concierge", question).await;
        assert_eq!(theirs["sources"], json!([]), "{theirs}");
    }
    let decided = client::post(
        &h.router,
        &format!("/v1/approvals/{approval}"),
        &c.a,
        json!({"decision": "approve", "reviewer": "alice"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(decided["status"], "completed", "{decided}");
    let _ = &mut c;
}
