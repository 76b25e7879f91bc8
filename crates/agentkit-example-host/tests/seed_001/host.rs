//! The host as seed 001's tests run it: on a fresh database, with the company's order system
//! on loopback (its tools may reach 127.0.0.1 only), an operator token, and the offline model
//! behind a recorder that keeps every request the agents send it.

use std::sync::{Arc, Mutex};

use agentkit::async_trait;
use agentkit::model::{CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities};
use agentkit_example_host::{AdminToken, App, HostModel, router};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::TestDb;
use crate::common::client::{self, Auth};
use crate::fixtures::{self, OrderService};

/// The operator's token.
pub const ADMIN: &str = "operator-token-0123456789";

/// A provider that records the requests it answers.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<dyn LlmProvider>,
    seen: Arc<Mutex<Vec<CompletionRequest>>>,
}

impl Recorder {
    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<CompletionRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

#[async_trait]
impl LlmProvider for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ProviderCapabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &CompletionRequest) -> agentkit::Result<CompletionResponse> {
        self.seen.lock().unwrap().push(request.clone());
        self.inner.complete(request).await
    }
}

/// One running host.
pub struct Host {
    /// Its router.
    pub router: Router,
    /// The company's order system.
    pub orders: OrderService,
    /// What the agents sent the model.
    pub model: Recorder,
    /// The database's name.
    pub db: &'static str,
}

/// The host on `db`.
pub async fn start(db: &TestDb) -> Host {
    let orders = OrderService::start().await.unwrap();
    let mut config = db.config();
    config.tool_outbound =
        serde_json::from_value(json!({"allow_networks": ["127.0.0.1/32"]})).unwrap();
    config.admin_token = Some(AdminToken::new(ADMIN).unwrap());
    let base = fixtures::model();
    let model = Recorder {
        inner: base.provider.clone(),
        seen: Arc::default(),
    };
    let app = App::open_with_model(
        config,
        HostModel::new(Arc::new(model.clone()), base.name, base.label),
    )
    .await
    .unwrap();
    Host {
        router: router(app),
        orders,
        model,
        db: db.name,
    }
}

impl Host {
    /// Creates a company through the admin API; its first API key.
    pub async fn company(&self, id: &str) -> String {
        let created = client::send(
            &self.router,
            "POST",
            "/admin/v1/companies",
            Auth::Bearer(ADMIN),
            Some(&json!({"company": id})),
        )
        .await
        .expect(StatusCode::CREATED);
        assert_eq!(created["company"], id);
        created["api_key"].as_str().unwrap().to_string()
    }

    /// Configures the order tool and the `concierge` agent (prompt `prompt`, tools `orders.*`)
    /// for the company with `key`.
    pub async fn concierge(&self, key: &str, prompt: &str) {
        client::post(
            &self.router,
            "/v1/tools",
            key,
            fixtures::order_tool(&self.orders.base),
        )
        .await
        .expect(StatusCode::CREATED);
        client::post(
            &self.router,
            "/v1/agents",
            key,
            fixtures::concierge(prompt, &["orders.*"]),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// One chat message to `agent` in `session`; the outcome (status 200 required).
    pub async fn chat(&self, key: &str, session: &str, agent: &str, message: &str) -> Value {
        client::post(
            &self.router,
            &format!("/v1/sessions/{session}/messages"),
            key,
            json!({"message": message, "agent": agent}),
        )
        .await
        .expect(StatusCode::OK)
    }

    /// `GET path` as `key`, status 200 required.
    pub async fn read(&self, key: &str, path: &str) -> Value {
        client::get(&self.router, path, key)
            .await
            .expect(StatusCode::OK)
    }
}

/// Whether the knowledge part can run: feature `knowledge` and the MiniLM model
/// (`AGENTKIT_MINILM_DIR`). Otherwise prints why it is skipped — and fails under `CI=true`.
pub fn knowledge_available(test: &str) -> bool {
    let reason = if !cfg!(feature = "knowledge") {
        "the host is built without feature `knowledge` (--all-features)"
    } else if std::env::var_os("AGENTKIT_MINILM_DIR").is_none() {
        "AGENTKIT_MINILM_DIR is not set (bash .ci/run installs the model)"
    } else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: CI=true: {reason}"
    );
    eprintln!("SKIPPED the knowledge part of {test}: {reason}");
    false
}
