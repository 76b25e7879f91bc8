//! With feature `knowledge`: a tenant uploads a document for an agent, and the agent's answer
//! cites it; another tenant's agent of the same name retrieves nothing of it. Needs the
//! all-MiniLM-L6-v2 model (`AGENTKIT_MINILM_DIR`; `.ci/run` installs it): skips locally with a
//! printed reason without it, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use agentkit_example_host::router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn post(router: &axum::Router, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(
            Request::post(path)
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn uploaded_documents_are_cited_and_stay_with_their_tenant() {
    if std::env::var_os("AGENTKIT_MINILM_DIR").is_none() {
        let reason = "AGENTKIT_MINILM_DIR is not set (bash .ci/run installs the model)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {reason}"
        );
        eprintln!("skipping: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = common::app(&dir).await;
    let acme = common::tenant(&app, "acme").await;
    let globex = common::tenant(&app, "globex").await;
    let router = router(app);

    let (status, report) = post(
        &router,
        "/v1/agents/marketing/knowledge",
        &acme,
        json!({"documents": [
            {"id": "refunds.md", "format": "markdown", "title": "Refund policy",
             "text": "# Refunds\n\nRefunds are paid back to the card within five business days."},
            {"id": "shipping.txt", "text": "Orders ship from Rotterdam every weekday."}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["indexed"].as_array().unwrap().len(), 2, "{report}");
    // The same upload again changes nothing.
    let (_, again) = post(
        &router,
        "/v1/agents/marketing/knowledge",
        &acme,
        json!({"documents": [{"id": "shipping.txt", "text": "Orders ship from Rotterdam every weekday."}]}),
    )
    .await;
    assert_eq!(again["unchanged"], json!(["shipping.txt"]), "{again}");

    let (_, answer) = post(
        &router,
        "/v1/sessions/k1/messages",
        &acme,
        json!({"message": "How long until a refund reaches my card?"}),
    )
    .await;
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(
        answer["sources"][0]["document_id"], "refunds.md",
        "{answer}"
    );

    // globex's `marketing` agent retrieves nothing of acme's documents.
    let (_, theirs) = post(
        &router,
        "/v1/sessions/k1/messages",
        &globex,
        json!({"message": "How long until a refund reaches my card?"}),
    )
    .await;
    assert_eq!(theirs["sources"], json!([]), "{theirs}");

    // Unknown agent, bad format.
    let (status, _) = post(
        &router,
        "/v1/agents/ghost/knowledge",
        &acme,
        json!({"documents": [{"id": "a", "text": "b"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(
        &router,
        "/v1/agents/marketing/knowledge",
        &acme,
        json!({"documents": [{"id": "a", "text": "b", "format": "pdf"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
