//! Seed 001 — the multi-tenant agent platform — walked through on the example host, as its
//! acceptance criteria read:
//!
//! ```text
//! cargo run -p agentkit-example-host --example seed_001
//! AGENTKIT_MINILM_DIR=<all-MiniLM-L6-v2 dir> cargo run -p agentkit-example-host --features knowledge --example seed_001
//! ```
//!
//! The host runs in process on a temporary SQLite file (its router driven with tower's
//! `oneshot`, exactly the requests a client would send), with the offline rule-based model and
//! a small order system on loopback as the company's tool. It prints what happens: an operator
//! creates two companies and their API keys; Acme connects its order system as a tool, creates
//! a support agent with a prompt and rules, chats (the agent calls the tool; arguments that do
//! not fit the tool's schema go back to the model and nothing is sent), uploads knowledge and
//! gets a cited answer (with the `knowledge` feature and the model), sees its usage events and
//! this month's invoice draft; Globex sees none of it.
//!
//! Where the seed's design is superseded by agentkit's:
//! - One Rust process over one database (SQLite, or Postgres with feature `postgres` and
//!   `AGENTKIT_HOST_DATABASE_URL`) instead of FastAPI + Celery + Redis + Qdrant: the vectors
//!   live in the same database, under the same tenant scoping as everything else.
//! - Uploads are indexed in the request and answered with a report (indexed, unchanged,
//!   failed, chunks), not queued for a worker: the caller knows at once what is searchable.
//! - Invoice drafts are computed on request from the append-only usage ledger and priced by a
//!   versioned price book, not stored by a monthly job: a draft always equals its
//!   recomputation (same events, same fingerprint).
//!
//! Not in this host: users, roles (RBAC) and JWT sign-in — a company acts through its API keys.

#![allow(clippy::print_stdout)]

#[path = "fixtures.rs"]
mod fixtures;

use agentkit::store::UsageEvent;
use agentkit_example_host::{AdminToken, App, HostConfig, router};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const OPERATOR: &str = "operator-token-0123456789";

/// Sends one request as a client would; the status and the JSON (or text) reply.
async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), BoxError> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}

/// Text on one line.
fn line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn usd(nanos: &Value) -> String {
    format!("${:.6}", nanos.as_f64().unwrap_or(0.0) / 1e9)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let orders = fixtures::OrderService::start().await?;
    let config = HostConfig {
        db_path: dir.path().join("platform.db"),
        // The order system runs on this machine; tools may reach it and nothing else private.
        tool_outbound: serde_json::from_value(json!({"allow_networks": ["127.0.0.1/32"]}))?,
        admin_token: Some(AdminToken::new(OPERATOR)?),
        ..HostConfig::default()
    };
    let app = App::open_with_model(config, fixtures::model()).await?;
    println!(
        "Seed 001: a multi-tenant agent platform (data in {}, model: {}).\n",
        app.database(),
        app.model_label()
    );
    let r = router(app.clone());

    println!("1. The operator creates two companies; each gets an API key, shown once.");
    let mut keys = Vec::new();
    for company in ["acme", "globex"] {
        let (status, created) = call(
            &r,
            "POST",
            "/admin/v1/companies",
            OPERATOR,
            Some(json!({"company": company})),
        )
        .await?;
        let key = created["api_key"].as_str().unwrap_or_default().to_string();
        println!(
            "   {company}: {status}, key {}… (the platform keeps only its SHA-256 digest)",
            &key[..12.min(key.len())]
        );
        keys.push(key);
    }
    let (acme, globex) = (keys[0].clone(), keys[1].clone());
    let (status, _) = call(&r, "GET", "/v1/agents", "ak_wrong", None).await?;
    println!("   A wrong key is turned away: {status}.\n");

    println!("2. Acme connects its order system as a tool.");
    let (status, tool) = call(
        &r,
        "POST",
        "/v1/tools",
        &acme,
        Some(fixtures::order_tool(&orders.base)),
    )
    .await?;
    println!(
        "   {status}: `{}` ({} {}), arguments checked against its schema: order_id = {}",
        tool["name"].as_str().unwrap_or_default(),
        tool["method"].as_str().unwrap_or_default(),
        tool["url"].as_str().unwrap_or_default(),
        tool["parameters"]["properties"]["order_id"]
    );
    let mut secret = fixtures::order_tool(&orders.base);
    secret["headers"] = json!({"Authorization": {"secret_env": "OPENAI_API_KEY"}});
    let (status, refused) = call(&r, "POST", "/v1/tools", &acme, Some(secret)).await?;
    println!(
        "   A tool that would read the platform's secrets is refused: {status} ({}).\n",
        refused["detail"].as_str().unwrap_or_default()
    );

    println!("3. Acme creates its support agent with a prompt and rules, and attaches the tool.");
    let prompt = "You are Acme's concierge. Rules: one sentence; never promise a refund.";
    let (status, created) = call(
        &r,
        "POST",
        "/v1/agents",
        &acme,
        Some(fixtures::concierge(prompt, &["orders.*"])),
    )
    .await?;
    println!("   {status}: {created} — prompt: \"{prompt}\"\n");

    println!("4. A customer chats with it (session web-42).");
    for message in ["hello", "Where is order 12345?", "Where is order 12-AB?"] {
        let (_, out) = call(
            &r,
            "POST",
            "/v1/sessions/web-42/messages",
            &acme,
            Some(json!({"message": message, "agent": "concierge"})),
        )
        .await?;
        println!("   customer: {message}");
        for c in out["tool_calls"].as_array().into_iter().flatten() {
            let verdict = if c["is_error"] == true {
                "refused"
            } else {
                "ran"
            };
            println!(
                "     tool {} {} {verdict}: {}",
                c["name"].as_str().unwrap_or_default(),
                c["arguments"],
                line(c["result"].as_str().unwrap_or_default())
            );
        }
        println!(
            "   agent: {}",
            line(out["reply"].as_str().unwrap_or_default())
        );
    }
    println!(
        "   The order system received {} request(s): the bad order number never left the platform.",
        orders.hits()
    );
    let (_, history) = call(&r, "GET", "/v1/sessions/web-42/messages", &acme, None).await?;
    println!(
        "   The conversation is stored: {} messages, returned in order.\n",
        history.as_array().map_or(0, Vec::len)
    );

    println!("5. Acme uploads knowledge for the agent.");
    let (status, upload) = call(
        &r,
        "POST",
        "/v1/agents/concierge/knowledge",
        &acme,
        Some(
            json!({"documents": [{"id": "refunds.md", "format": "markdown",
            "title": "Refund policy",
            "text": "# Refunds\n\nRefunds are paid back to the card within five business days."}]}),
        ),
    )
    .await?;
    if status == 200 {
        println!("   indexed: {}", upload["indexed"]);
        let (_, out) = call(
            &r,
            "POST",
            "/v1/sessions/web-43/messages",
            &acme,
            Some(json!({"message": "How long until a refund reaches my card?", "agent": "concierge"})),
        )
        .await?;
        let sources: Vec<String> = out["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} ({})",
                    s["title"].as_str().unwrap_or("-"),
                    s["document_id"]
                )
            })
            .collect();
        println!(
            "   The agent read the policy before answering, and cites: {}\n",
            sources.join(", ")
        );
    } else {
        println!(
            "   Skipped: {} — run with `--features knowledge` and AGENTKIT_MINILM_DIR set to the \
             all-MiniLM-L6-v2 model directory.\n",
            upload["detail"].as_str().unwrap_or_default()
        );
    }

    println!("6. Every interaction left usage events (the billing ledger, append-only).");
    let (_, events) = call(&r, "GET", "/v1/usage/events", &acme, None).await?;
    let events: Vec<UsageEvent> = serde_json::from_value(events)?;
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    for e in &events {
        let what = format!(
            "{} {}",
            e.kind.as_str(),
            e.resource.as_deref().unwrap_or("")
        );
        *by_kind.entry(what).or_default() += e.quantity;
    }
    for (what, quantity) in &by_kind {
        println!("   {what:<40} {quantity}");
    }
    println!();

    println!("7. This month's invoice draft for Acme.");
    let period = chrono::Utc::now().format("%Y-%m").to_string();
    let (_, draft) = call(&r, "GET", &format!("/v1/invoices/{period}"), &acme, None).await?;
    for line in draft["lines"].as_array().into_iter().flatten() {
        println!(
            "   {:<10} {:<16} {:<20} {:>6}  {}",
            line["agent"].as_str().unwrap_or_default(),
            line["kind"].as_str().unwrap_or_default(),
            line["resource"].as_str().unwrap_or("-"),
            line["quantity"],
            usd(&line["amount"])
        );
    }
    let (lines, _) = agentkit::policy_engine::metering::aggregate(&events, app.prices());
    let recomputed: i64 = lines.iter().map(|l| l.amount.nanos()).sum();
    println!(
        "   total {} over {} events; recomputed from the ledger: {} — {}\n",
        usd(&draft["total"]),
        draft["events"],
        usd(&json!(recomputed)),
        if draft["total"].as_i64() == Some(recomputed) {
            "equal"
        } else {
            "DIFFERENT"
        }
    );

    println!("8. Globex, on the same platform, sees none of it.");
    let (_, agents) = call(&r, "GET", "/v1/agents", &globex, None).await?;
    let names: Vec<&str> = agents
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    println!("   its agents: {names:?}");
    let (_, tools) = call(&r, "GET", "/v1/tools", &globex, None).await?;
    let has_orders = tools
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["name"] == fixtures::ORDER_TOOL);
    println!("   Acme's order tool among its tools: {has_orders}");
    let (status, _) = call(&r, "GET", "/v1/sessions/web-42/messages", &globex, None).await?;
    println!("   Acme's conversation web-42: {status}");
    let (status, _) = call(&r, "GET", "/v1/agents/concierge", &globex, None).await?;
    println!("   Acme's agent concierge: {status}");
    let (_, usage) = call(&r, "GET", "/v1/usage", &globex, None).await?;
    println!("   its usage events: {}", usage["events"]);
    Ok(())
}
