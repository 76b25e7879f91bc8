//! Seed 001 (multi-tenant agent platform), its acceptance criteria through the host's HTTP
//! router, as a company and the platform's operator would use it — each on SQLite and, when
//! `AGENTKIT_TEST_POSTGRES_URL` is set (feature `postgres`), on Postgres (a missing Postgres is
//! a failure under `CI=true`):
//!
//! (a) create a company and its API key; the key authenticates, a wrong or rotated one does not;
//! (b) create an agent with a prompt and rules: a versioned config that reaches the model;
//! (c) start a session and chat: history persisted (across a restart) and returned;
//! (d) upload knowledge → indexing → retrieval reaches the model, answers cite their sources
//!     (feature `knowledge` with the MiniLM model);
//! (e) configure a tool and attach it: the agent calls it, arguments validated by its schema
//!     (invalid ones go back to the model and nothing is sent), not attached → not callable;
//! (f) usage events per interaction (tokens, tool calls, knowledge queries);
//! (g) an invoice draft for a period, equal to one recomputed by hand from the events;
//! (h) tenant isolation on every route the router serves (`isolation.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../../examples/seed_001/fixtures.rs"]
mod fixtures;
mod host;
mod isolation;

use std::collections::BTreeMap;

use agentkit::message::Message;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::client::{self, Auth};
use fixtures::ORDER_TOOL;

const PROMPT_V1: &str =
    "You are Acme's concierge. Rules: answer in one sentence; never promise a refund.";
const PROMPT_V2: &str =
    "You are Acme's concierge, version two. Rules: greet by name; never promise a refund.";

/// The system prompt of a request.
fn system_prompt(request: &agentkit::model::CompletionRequest) -> String {
    match request.messages.first() {
        Some(Message::System { content }) => content.clone(),
        other => panic!("no system prompt first: {other:?}"),
    }
}

/// The names of the tools a request offered the model.
fn offered(request: &agentkit::model::CompletionRequest) -> Vec<String> {
    request.tools.iter().map(|t| t.name.clone()).collect()
}

#[tokio::test]
async fn a_a_company_and_its_api_key_authenticates() {
    for db in common::databases("seed_001::a").await {
        let h = host::start(&db).await;
        let r = &h.router;
        // Only the operator creates companies.
        let body = json!({"company": "acme"});
        let anonymous =
            client::send(r, "POST", "/admin/v1/companies", Auth::None, Some(&body)).await;
        anonymous.expect(StatusCode::UNAUTHORIZED);
        let wrong = client::send(
            r,
            "POST",
            "/admin/v1/companies",
            Auth::Bearer("not-the-operator-token"),
            Some(&body),
        )
        .await;
        wrong.expect(StatusCode::FORBIDDEN);
        let acme = h.company("acme").await;
        let again = client::send(
            r,
            "POST",
            "/admin/v1/companies",
            Auth::Bearer(host::ADMIN),
            Some(&body),
        )
        .await;
        again.expect(StatusCode::CONFLICT);
        // A company's key is not the operator's token.
        let by_tenant = client::send(
            r,
            "POST",
            "/admin/v1/companies",
            Auth::Bearer(&acme),
            Some(&json!({"company": "evil"})),
        )
        .await;
        by_tenant.expect(StatusCode::FORBIDDEN);

        // The key authenticates as its company.
        let agents = h.read(&acme, "/v1/agents").await;
        assert_eq!(agents[0]["agent"], "marketing", "{}: {agents}", h.db);
        client::get(r, "/v1/agents", "ak_0000")
            .await
            .expect(StatusCode::UNAUTHORIZED);
        client::send(r, "GET", "/v1/agents", Auth::None, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);

        // Stored as a digest only.
        let digest = hex::encode(Sha256::digest(acme.as_bytes()));
        assert!(
            db.contains(&digest).await,
            "{}: the key's digest is stored",
            h.db
        );
        assert!(
            !db.contains(&acme).await,
            "{}: the key itself is stored",
            h.db
        );

        // Rotation: the new key works, the old one stops at once.
        let rotated = client::post(r, "/v1/keys/rotate", &acme, json!({}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(rotated["tenant"], "acme");
        let fresh = rotated["api_key"].as_str().unwrap().to_string();
        assert_ne!(fresh, acme);
        h.read(&fresh, "/v1/agents").await;
        client::get(r, "/v1/agents", &acme)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        client::post(r, "/v1/keys/rotate", &acme, json!({}))
            .await
            .expect(StatusCode::UNAUTHORIZED);

        // Another company's key is another tenant.
        let globex = h.company("globex").await;
        let theirs = client::post(r, "/v1/keys/rotate", &globex, json!({}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(theirs["tenant"], "globex");
        drop(h);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn b_an_agent_with_prompt_and_rules_is_a_versioned_config() {
    for db in common::databases("seed_001::b").await {
        let h = host::start(&db).await;
        let acme = h.company("acme").await;
        h.concierge(&acme, PROMPT_V1).await;
        let listed = h.read(&acme, "/v1/agents").await;
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["concierge", "marketing"], "{}", h.db);

        // The prompt and rules reach the model; the agent is offered its tools only.
        h.model.clear();
        let reply = h.chat(&acme, "b-1", "concierge", "hello").await;
        assert_eq!(reply["status"], "completed", "{reply}");
        let seen = h.model.requests();
        assert_eq!(system_prompt(&seen[0]), PROMPT_V1, "{}", h.db);
        assert_eq!(offered(&seen[0]), [ORDER_TOOL]);

        // Editing makes version 2; version 1 stays as it was.
        let v2 = client::post(
            &h.router,
            "/v1/agents",
            &acme,
            fixtures::concierge(PROMPT_V2, &["orders.*"]),
        )
        .await
        .expect(StatusCode::CREATED);
        assert_eq!(v2, json!({"agent": "concierge", "version": 2}));
        assert_eq!(h.read(&acme, "/v1/agents/concierge").await, json!([1, 2]));
        let first = h.read(&acme, "/v1/agents/concierge/versions/1").await;
        assert_eq!(first["system_prompt"], PROMPT_V1);
        assert_eq!(first["status"], "final");
        assert_eq!(first["tools"], json!(["orders.*"]));
        let second = h.read(&acme, "/v1/agents/concierge/versions/2").await;
        assert_eq!(second["system_prompt"], PROMPT_V2);
        client::get(&h.router, "/v1/agents/concierge/versions/3", &acme)
            .await
            .expect(StatusCode::NOT_FOUND);

        // The next turn runs the new version.
        h.model.clear();
        h.chat(&acme, "b-1", "concierge", "hello again").await;
        assert_eq!(system_prompt(&h.model.requests()[0]), PROMPT_V2, "{}", h.db);

        // A config naming a tool the company does not have is refused; nothing is stored.
        let refused = client::post(
            &h.router,
            "/v1/agents",
            &acme,
            fixtures::concierge(PROMPT_V2, &["payments.*"]),
        )
        .await;
        refused.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(h.read(&acme, "/v1/agents/concierge").await, json!([1, 2]));
        drop(h);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn c_a_session_and_chat_with_history_persisted_and_returned() {
    for db in common::databases("seed_001::c").await {
        let h = host::start(&db).await;
        let acme = h.company("acme").await;
        h.concierge(&acme, PROMPT_V1).await;
        let hello = h.chat(&acme, "c-1", "concierge", "hello").await;
        assert_eq!(
            hello["reply"],
            "Hello! I can look up your order: tell me its number."
        );
        h.model.clear();
        let order = h
            .chat(&acme, "c-1", "concierge", "Where is order 12345?")
            .await;
        assert!(
            order["reply"].as_str().unwrap().contains("shipped"),
            "{order}"
        );
        // The second turn was sent the first exchange.
        let first_request = &h.model.requests()[0];
        let texts: Vec<&str> = first_request.messages.iter().map(Message::text).collect();
        assert!(texts.contains(&"hello"), "{}: {texts:?}", h.db);

        let expected_roles = [
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant",
        ];
        let check = |history: &Value| {
            let items = history.as_array().unwrap();
            let roles: Vec<&str> = items.iter().map(|m| m["role"].as_str().unwrap()).collect();
            assert_eq!(roles, expected_roles, "{history}");
            assert_eq!(items[0]["text"], "hello");
            assert_eq!(items[2]["text"], "Where is order 12345?");
            assert_eq!(items[3]["tool_calls"], json!([ORDER_TOOL]));
            assert!(
                items[5]["text"].as_str().unwrap().contains("Friday"),
                "{history}"
            );
            let seqs: Vec<u64> = items.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        };
        let history = h.read(&acme, "/v1/sessions/c-1/messages").await;
        check(&history);

        // Another session is another conversation.
        h.chat(&acme, "c-2", "concierge", "hi there").await;
        let other = h.read(&acme, "/v1/sessions/c-2/messages").await;
        assert_eq!(other.as_array().unwrap().len(), 2, "{other}");
        client::get(&h.router, "/v1/sessions/c-404/messages", &acme)
            .await
            .expect(StatusCode::NOT_FOUND);

        // Persisted: a host restarted on the same database returns the same history.
        drop(h);
        let restarted = host::start(&db).await;
        assert_eq!(
            restarted.read(&acme, "/v1/sessions/c-1/messages").await,
            history
        );
        drop(restarted);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn d_uploaded_knowledge_is_retrieved_into_answers_with_citations() {
    if !host::knowledge_available("seed_001::d") {
        return;
    }
    for db in common::databases("seed_001::d").await {
        let h = host::start(&db).await;
        let acme = h.company("acme").await;
        h.concierge(&acme, PROMPT_V1).await;
        let question = "How long until a refund reaches my card?";
        // Before the upload: nothing to cite, nothing retrieved into the model's input.
        h.model.clear();
        let before = h.chat(&acme, "d-1", "concierge", question).await;
        assert_eq!(before["sources"], json!([]), "{}: {before}", h.db);
        let flat = |r: &agentkit::model::CompletionRequest| {
            r.messages
                .iter()
                .map(Message::text)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(!flat(&h.model.requests()[0]).contains("five business days"));

        let upload = client::post(
            &h.router,
            "/v1/agents/concierge/knowledge",
            &acme,
            json!({"documents": [
                {"id": "refunds.md", "format": "markdown", "title": "Refund policy",
                 "text": "# Refunds\n\nRefunds are paid back to the card within five business days."},
                {"id": "shipping.txt", "text": "Orders ship from Rotterdam every weekday."}
            ]}),
        )
        .await
        .expect(StatusCode::OK);
        assert_eq!(upload["indexed"].as_array().unwrap().len(), 2, "{upload}");
        assert!(upload["chunks"].as_u64().unwrap() >= 2, "{upload}");

        // After: the passage reaches the model as context and the answer cites it.
        h.model.clear();
        let after = h.chat(&acme, "d-2", "concierge", question).await;
        assert_eq!(
            after["sources"][0]["document_id"], "refunds.md",
            "{}: {after}",
            h.db
        );
        assert_eq!(after["sources"][0]["title"], "Refund policy");
        assert!(
            flat(&h.model.requests()[0]).contains("five business days"),
            "{}",
            h.db
        );
        // The query was metered.
        let run = after["run_id"].as_str().unwrap();
        let events = h.read(&acme, &format!("/v1/usage/events?run={run}")).await;
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "knowledge_query"),
            "{events}"
        );
        // Knowledge is per agent: the company's other agent has none of it.
        let other = h.chat(&acme, "d-3", "marketing", question).await;
        assert_eq!(other["sources"], json!([]), "{other}");
        drop(h);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn e_configured_tools_are_called_with_schema_validation() {
    for db in common::databases("seed_001::e").await {
        let h = host::start(&db).await;
        let r = &h.router;
        let acme = h.company("acme").await;
        let tool = fixtures::order_tool(&h.orders.base);
        // Refused configurations: the host's secrets, a host tool's name, a private address.
        let mut secret = tool.clone();
        secret["headers"] = json!({"Authorization": {"secret_env": "OPENAI_API_KEY"}});
        client::post(r, "/v1/tools", &acme, secret)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        let mut taken = tool.clone();
        taken["name"] = json!("budget.get_balance");
        client::post(r, "/v1/tools", &acme, taken)
            .await
            .expect(StatusCode::CONFLICT);
        let mut private = tool.clone();
        private["url"] = json!("http://10.1.2.3/orders/{order_id}");
        client::post(r, "/v1/tools", &acme, private)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        // Configure, then attach to an agent.
        client::post(r, "/v1/tools", &acme, tool.clone())
            .await
            .expect(StatusCode::CREATED);
        client::post(r, "/v1/tools", &acme, tool)
            .await
            .expect(StatusCode::OK);
        let tools = h.read(&acme, "/v1/tools").await;
        let ours = tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == ORDER_TOOL)
            .unwrap();
        assert_eq!(ours["kind"], "http");
        assert_eq!(
            ours["parameters"]["properties"]["order_id"]["pattern"],
            "^[0-9]{5}$"
        );
        client::post(
            r,
            "/v1/agents",
            &acme,
            fixtures::concierge(PROMPT_V1, &["orders.*"]),
        )
        .await
        .expect(StatusCode::CREATED);

        // Valid arguments: the call runs, its result reaches the answer.
        let found = h
            .chat(&acme, "e-1", "concierge", "Where is order 12345?")
            .await;
        assert_eq!(found["status"], "completed", "{found}");
        let call = &found["tool_calls"][0];
        assert_eq!(call["name"], ORDER_TOOL);
        assert_eq!(call["is_error"], false, "{found}");
        let result: Value = serde_json::from_str(call["result"].as_str().unwrap()).unwrap();
        assert_eq!(result, json!({"status": "shipped", "eta": "Friday"}));
        assert_eq!(h.orders.hits(), 1, "{}", h.db);

        // Invalid arguments: refused by the schema, told to the model, nothing sent.
        h.model.clear();
        let invalid = h
            .chat(&acme, "e-2", "concierge", "Where is order 12-AB?")
            .await;
        assert_eq!(invalid["status"], "completed", "{invalid}");
        assert_eq!(invalid["tool_calls"][0]["is_error"], true, "{invalid}");
        assert_eq!(
            h.orders.hits(),
            1,
            "{}: an invalid call reached the service",
            h.db
        );
        let told = h.model.requests().iter().any(|req| {
            req.messages.iter().any(|m| {
                matches!(m, Message::Tool { name, is_error: true, content, .. }
                    if name == ORDER_TOOL && content.contains("order_id"))
            })
        });
        assert!(told, "{}: the model was not told why", h.db);

        // Not attached: the company's marketing agent is not offered the tool and cannot call it.
        h.model.clear();
        let other = h
            .chat(&acme, "e-3", "marketing", "Where is order 12345?")
            .await;
        assert_eq!(other["tool_calls"][0]["is_error"], true, "{other}");
        assert!(!offered(&h.model.requests()[0]).contains(&ORDER_TOOL.to_string()));
        assert_eq!(h.orders.hits(), 1);

        // A rule on the tool: with approval required, the call waits for a reviewer.
        let mut gated = fixtures::concierge(PROMPT_V1, &["orders.*"]);
        gated["config"]["policy"] = json!({"require_approval": [ORDER_TOOL]});
        client::post(r, "/v1/agents", &acme, gated)
            .await
            .expect(StatusCode::CREATED);
        let waiting = h
            .chat(&acme, "e-4", "concierge", "Where is order 12345?")
            .await;
        assert_eq!(waiting["status"], "suspended", "{waiting}");
        assert_eq!(h.orders.hits(), 1);
        let id = waiting["approvals"][0]["id"].as_str().unwrap();
        let decided = client::post(
            r,
            &format!("/v1/approvals/{id}"),
            &acme,
            json!({"decision": "approve", "reviewer": "alice"}),
        )
        .await
        .expect(StatusCode::OK);
        assert_eq!(decided["status"], "completed", "{decided}");
        assert_eq!(h.orders.hits(), 2);
        drop(h);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn f_every_interaction_records_usage_events() {
    let knowledge = host::knowledge_available("seed_001::f");
    for db in common::databases("seed_001::f").await {
        let h = host::start(&db).await;
        let acme = h.company("acme").await;
        h.concierge(&acme, PROMPT_V1).await;
        let mut runs = Vec::new();
        for message in ["hello", "Where is order 12345?", "Where is order 12-AB?"] {
            let outcome = h.chat(&acme, "f-1", "concierge", message).await;
            runs.push(outcome);
        }
        let mut all = 0;
        let mut first_run_events = Value::Null;
        for (i, outcome) in runs.iter().enumerate() {
            let run = outcome["run_id"].as_str().unwrap();
            let events = h.read(&acme, &format!("/v1/usage/events?run={run}")).await;
            let events = events.as_array().unwrap();
            all += events.len();
            if i == 0 {
                first_run_events = json!(events);
            }
            let sum = |kind: &str| -> u64 {
                events
                    .iter()
                    .filter(|e| e["kind"] == kind)
                    .map(|e| e["quantity"].as_u64().unwrap())
                    .sum()
            };
            let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
            for e in events {
                assert_eq!(e["run"], run);
                assert_eq!(e["agent"], "concierge");
                assert_eq!(e["session"], "f-1");
                assert_eq!(e["tenant"], "acme");
            }
            // Tokens: the events add up to what the run reported.
            assert_eq!(
                sum("input_tokens"),
                outcome["usage"]["input_tokens"].as_u64().unwrap(),
                "{}: {outcome}",
                h.db
            );
            assert_eq!(
                sum("output_tokens"),
                outcome["usage"]["output_tokens"].as_u64().unwrap()
            );
            assert!(sum("input_tokens") > 0);
            // Tool calls: one event per call that ran (the invalid one did not).
            let ran = [0, 1, 0][i];
            assert_eq!(count("tool_call"), ran, "{}: run {i}: {events:?}", h.db);
            if ran == 1 {
                let call = events.iter().find(|e| e["kind"] == "tool_call").unwrap();
                assert_eq!(call["resource"], ORDER_TOOL);
            }
            // Knowledge queries: one per run when the agent has a knowledge base.
            assert_eq!(
                count("knowledge_query"),
                usize::from(knowledge),
                "{}: {events:?}",
                h.db
            );
        }
        let every = h.read(&acme, "/v1/usage/events").await;
        assert_eq!(every.as_array().unwrap().len(), all);
        // Append-only: a later interaction leaves earlier events as they were.
        h.chat(&acme, "f-1", "concierge", "thanks").await;
        let run = runs[0]["run_id"].as_str().unwrap();
        assert_eq!(
            h.read(&acme, &format!("/v1/usage/events?run={run}")).await,
            first_run_events
        );
        assert!(
            h.read(&acme, "/v1/usage/events")
                .await
                .as_array()
                .unwrap()
                .len()
                > all
        );
        drop(h);
        db.cleanup().await;
    }
}

/// The cost of one event by hand from the price book's JSON: the table in force when it
/// happened, its unit price, rounded half up to whole nano-dollars.
fn cost(book: &Value, event: &Value) -> (i64, String) {
    let at: chrono::DateTime<chrono::Utc> = event["at"].as_str().unwrap().parse().unwrap();
    let table = book["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["effective_from"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                <= at
        })
        .max_by_key(|t| t["effective_from"].as_str().unwrap().to_string())
        .unwrap();
    let resource = event["resource"].as_str().unwrap_or("");
    let model = &table["models"][resource];
    let (usd, per) = match event["kind"].as_str().unwrap() {
        "input_tokens" => (model["input_per_mtok"].as_f64().unwrap(), 1_000_000),
        "output_tokens" => (model["output_per_mtok"].as_f64().unwrap(), 1_000_000),
        "tool_call" => (
            table["tools"][resource]
                .as_f64()
                .unwrap_or(table["tool_call_usd"].as_f64().unwrap()),
            1,
        ),
        "knowledge_query" => (table["knowledge_query_usd"].as_f64().unwrap(), 1),
        other => panic!("no hand price for {other}"),
    };
    let nanos = (usd * 1e9).round() as i128;
    let q = i128::from(event["quantity"].as_u64().unwrap());
    let amount = (q * nanos * 2 + per) / (2 * per);
    (
        i64::try_from(amount).unwrap(),
        table["version"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn g_the_invoice_draft_equals_the_events_recomputed() {
    for db in common::databases("seed_001::g").await {
        let h = host::start(&db).await;
        let acme = h.company("acme").await;
        h.concierge(&acme, PROMPT_V1).await;
        h.chat(&acme, "g-1", "concierge", "hello").await;
        h.chat(&acme, "g-1", "concierge", "Where is order 12345?")
            .await;
        let sell = h.chat(&acme, "g-2", "marketing", "Sell Spicy Chips").await;
        assert_eq!(sell["status"], "suspended", "{sell}");
        let book = h.read(&acme, "/v1/prices").await;
        let period = chrono::Utc::now().format("%Y-%m").to_string();

        let recompute = |draft: &Value, events: &Value| {
            let mut lines: BTreeMap<(String, String, String, String), (u64, i64)> = BTreeMap::new();
            for e in events.as_array().unwrap() {
                let (amount, version) = cost(&book, e);
                let key = (
                    e["agent"].as_str().unwrap().to_string(),
                    e["kind"].as_str().unwrap().to_string(),
                    e["resource"].as_str().unwrap_or("").to_string(),
                    version,
                );
                let slot = lines.entry(key).or_default();
                slot.0 += e["quantity"].as_u64().unwrap();
                slot.1 += amount;
            }
            let drafted: BTreeMap<(String, String, String, String), (u64, i64)> = draft["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        (
                            l["agent"].as_str().unwrap().to_string(),
                            l["kind"].as_str().unwrap().to_string(),
                            l["resource"].as_str().unwrap_or("").to_string(),
                            l["price_version"].as_str().unwrap().to_string(),
                        ),
                        (
                            l["quantity"].as_u64().unwrap(),
                            l["amount"].as_i64().unwrap(),
                        ),
                    )
                })
                .collect();
            assert_eq!(drafted, lines, "{draft}");
            let total: i64 = lines.values().map(|(_, a)| a).sum();
            assert_eq!(draft["total"].as_i64().unwrap(), total, "{draft}");
            assert_eq!(
                draft["events"].as_u64().unwrap() as usize,
                events.as_array().unwrap().len()
            );
            assert_eq!(draft["unpriced"], json!([]));
            total
        };
        let draft = h.read(&acme, &format!("/v1/invoices/{period}")).await;
        assert_eq!(draft["tenant"], "acme");
        assert_eq!(draft["period"], period.as_str());
        let window = |d: &Value| {
            let q = |t: &Value| t.as_str().unwrap().replace('+', "%2B");
            format!("/v1/usage/events?from={}&to={}", q(&d["from"]), q(&d["to"]))
        };
        let events = h.read(&acme, &window(&draft)).await;
        let total = recompute(&draft, &events);
        assert!(total > 0, "{}: nothing was charged: {draft}", h.db);
        let kinds: Vec<&str> = draft["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"tool_call") && kinds.contains(&"input_tokens"),
            "{kinds:?}"
        );

        // Recomputable: the same events give the same draft; more usage, a larger one.
        assert_eq!(
            h.read(&acme, &format!("/v1/invoices/{period}")).await["fingerprint"],
            draft["fingerprint"]
        );
        h.chat(&acme, "g-1", "concierge", "Where is order 12345?")
            .await;
        let later = h.read(&acme, &format!("/v1/invoices/{period}")).await;
        let later_total = recompute(&later, &h.read(&acme, &window(&later)).await);
        assert!(later_total > total);
        // A period without usage: an empty draft.
        let empty = h.read(&acme, "/v1/invoices/2020-01").await;
        assert_eq!(
            (empty["total"].as_i64(), empty["events"].as_u64()),
            (Some(0), Some(0)),
            "{empty}"
        );
        drop(h);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn h_tenant_isolation_on_every_route() {
    for db in common::databases("seed_001::h").await {
        let h = host::start(&db).await;
        isolation::check(&h).await;
        drop(h);
        db.cleanup().await;
    }
}
