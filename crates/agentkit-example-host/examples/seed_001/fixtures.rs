//! What seed 001's walk-through and acceptance tests share: the company's order system (a
//! small HTTP service on loopback that counts the requests it gets), the offline model that
//! plays the company's support agent, and the configs the company sends to the host.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit::rules::{Rule, RuleBasedModel};
use agentkit_example_host::HostModel;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The tool the company configures: its order system's status lookup.
pub const ORDER_TOOL: &str = "orders.get_status";

/// The company's order system: `GET /orders/{id}` → status and delivery day.
pub struct OrderService {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl OrderService {
    /// Starts it on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/orders/{id}", get(order))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Ok(Self { base, hits, stop })
    }

    /// How many requests reached it.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for OrderService {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn order(
    State(hits): State<Arc<AtomicUsize>>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    hits.fetch_add(1, Ordering::SeqCst);
    if id == "12345" {
        (
            StatusCode::OK,
            Json(json!({"order": {"id": id, "status": "shipped", "eta": "Friday"}})),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no order {id}")})),
        )
    }
}

/// The order tool as the company configures it: the URL, the argument schema (an order
/// number is five digits), and which fields of the answer the agent gets.
pub fn order_tool(service_base: &str) -> Value {
    json!({
        "name": ORDER_TOOL,
        "description": "Looks up an order's status and delivery day by its five-digit number",
        "method": "GET",
        "url": format!("{service_base}/orders/{{order_id}}"),
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["order_id"],
            "additionalProperties": false
        },
        "response": {"fields": {"status": "/order/status", "eta": "/order/eta"}},
        "timeout_ms": 5000
    })
}

/// The company's support agent: its prompt and rules, the model, the tools it may call.
pub fn concierge(system_prompt: &str, tools: &[&str]) -> Value {
    json!({"config": {
        "agent": "concierge",
        "version": 1,
        "name": "Concierge",
        "system_prompt": system_prompt,
        "model": {"provider": "default", "name": "rules-v1"},
        "tools": tools,
        "limits": {"max_turns": 4, "max_tool_calls_per_turn": 2}
    }})
}

/// The offline model playing the agents: asked about an order it looks it up with the number
/// the customer gave (right or wrong: the tool's schema is what checks it), then reports what
/// came back; asked to sell something it runs the host's campaign flow.
pub fn model() -> HostModel {
    let rules = RuleBasedModel::new("Hello! I can look up your order: tell me its number.")
        .rule(
            Rule::regex(r"order #?([A-Za-z0-9-]+)")
                .unwrap_or_else(|e| panic!("the order rule: {e}"))
                .tool_call(ORDER_TOOL, json!({"order_id": "$1"})),
        )
        .rule(
            Rule::keywords(["sell", "campaign", "ads"]).tool_call("budget.get_balance", json!({})),
        )
        .rule(Rule::after_tool("budget.get_balance").tool_call(
            "marketing.create_campaign_draft",
            json!({"name": "Spicy Chips", "budget": 50, "contact_email": "ads@acme.example"}),
        ))
        .rule(
            Rule::after_tool("marketing.create_campaign_draft")
                .reply("Draft \"Spicy Chips\" created; please review it before launch."),
        )
        .after_tools("Here is what I found: {results}");
    HostModel::new(
        Arc::new(rules),
        "rules-v1",
        "the rule-based model (offline)",
    )
}
