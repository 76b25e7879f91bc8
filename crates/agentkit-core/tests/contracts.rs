//! Every contract used concretely and as `Arc<dyn …>`.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use agentkit_core::model::{CompletionRequest, StreamAccumulator};
use agentkit_core::policy::{AllowListPolicy, PolicyRequest};
use agentkit_core::prelude::*;
use agentkit_core::retrieval::{
    DocumentEntry, Embedder, Retriever, ScoredChunk, SearchRequest, VectorRecord, VectorRetriever,
    VectorStore,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;

async fn exercise_provider(p: &dyn LlmProvider) {
    let req = CompletionRequest::new("m", vec![Message::user("hi")]);
    let r = p.complete(&req).await.unwrap();
    assert_eq!(r.tool_calls[0].arguments, json!({"q": "x"}));
    let mut acc = StreamAccumulator::new();
    let mut s = p.stream(&req).await.unwrap();
    while let Some(e) = s.next().await {
        acc.push(&e.unwrap()).unwrap();
    }
    assert_eq!(acc.finish().unwrap().tool_calls, r.tool_calls);
}

#[tokio::test]
async fn provider_concrete_and_dyn() {
    let script =
        || ScriptedModel::repeating([ScriptedResponse::tool_call("kb.search", json!({"q": "x"}))]);
    exercise_provider(&script()).await;
    let dynp: Arc<dyn LlmProvider> = Arc::new(script());
    exercise_provider(&*dynp).await;
    assert!(dynp.capabilities().streaming);
}

fn scope() -> agentkit_core::scope::Scope {
    agentkit_core::scope::Scope::new(
        TenantId::from_static("t"),
        AgentId::from_static("a"),
        SessionId::from_static("s"),
        RunId::from_static("r"),
    )
}

#[tokio::test]
async fn tool_and_policy_concrete_and_dyn() {
    let tool = FnTool::new(
        ToolSpec::new("util.echo", "echo", json!({"type": "object"})),
        |ctx, args| async move { Ok(json!({"tenant": ctx.scope.tenant.as_str(), "args": args})) },
    );
    let ctx = ToolContext::new(
        scope(),
        "c",
        agentkit_core::id::IdempotencyKey::from_static("k"),
    );
    assert_eq!(
        tool.call(ctx.clone(), json!(1)).await.unwrap()["tenant"],
        "t"
    );
    let dyn_tool: Arc<dyn Tool> = Arc::new(tool);
    assert_eq!(dyn_tool.call(ctx, json!(2)).await.unwrap()["args"], 2);

    let policy = AllowListPolicy::new(["util.*"]);
    let req = PolicyRequest::new(scope(), "util.echo", json!({}));
    assert_eq!(policy.evaluate(&req).await.unwrap(), Decision::Allow);
    let dyn_policy: Arc<dyn PolicyEvaluator> = Arc::new(policy);
    let mut other = req.clone();
    other.action = "admin.x".into();
    assert_eq!(dyn_policy.evaluate(&other).await.unwrap().label(), "deny");
}

struct LenEmbedder;

#[async_trait]
impl Embedder for LenEmbedder {
    fn dimensions(&self) -> usize {
        2
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
    }
}

#[derive(Default)]
struct RecordingVectors(Mutex<Vec<SearchRequest>>);

#[async_trait]
impl VectorStore for RecordingVectors {
    fn dimensions(&self) -> usize {
        2
    }
    async fn replace_document(
        &self,
        _t: &TenantId,
        _a: &AgentId,
        _d: &DocumentEntry,
        _r: &[VectorRecord],
    ) -> Result<()> {
        Ok(())
    }
    async fn document(
        &self,
        _t: &TenantId,
        _a: &AgentId,
        _id: &str,
    ) -> Result<Option<DocumentEntry>> {
        Ok(None)
    }
    async fn documents(&self, _t: &TenantId, _a: &AgentId) -> Result<Vec<DocumentEntry>> {
        Ok(Vec::new())
    }
    async fn delete_document(
        &self,
        _t: &TenantId,
        _a: &AgentId,
        _id: &str,
    ) -> Result<Option<DocumentEntry>> {
        Ok(None)
    }
    async fn upsert(&self, _t: &TenantId, _a: &AgentId, _r: &[VectorRecord]) -> Result<()> {
        Ok(())
    }
    async fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        self.0.lock().unwrap().push(request.clone());
        Ok(Vec::new())
    }
    async fn delete(&self, _t: &TenantId, _a: &AgentId, ids: &[String]) -> Result<usize> {
        Ok(ids.len())
    }
}

#[tokio::test]
async fn retriever_always_passes_tenant_and_agent() {
    let vectors = Arc::new(RecordingVectors::default());
    let retriever =
        VectorRetriever::new(Arc::new(LenEmbedder), vectors.clone()).with_min_score(0.3);
    retriever
        .retrieve(
            &TenantId::from_static("acme"),
            &AgentId::from_static("support"),
            "abc",
            4,
        )
        .await
        .unwrap();
    let dyn_retriever: Arc<dyn Retriever> = Arc::new(retriever);
    dyn_retriever
        .retrieve(
            &TenantId::from_static("globex"),
            &AgentId::from_static("sales"),
            "abcd",
            2,
        )
        .await
        .unwrap();
    let seen = vectors.0.lock().unwrap().clone();
    assert_eq!(
        (
            seen[0].tenant.as_str(),
            seen[0].agent.as_str(),
            seen[0].top_k
        ),
        ("acme", "support", 4)
    );
    assert_eq!(seen[0].vector, vec![3.0, 1.0]);
    assert_eq!(seen[0].min_score, Some(0.3));
    assert_eq!(
        (seen[1].tenant.as_str(), seen[1].agent.as_str()),
        ("globex", "sales")
    );
}

#[tokio::test]
async fn store_parts_upcast_from_state_store() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let sessions: Arc<dyn agentkit_core::store::SessionStore> = store.clone();
    let record = agentkit_core::store::SessionRecord::new(
        TenantId::from_static("t"),
        SessionId::from_static("s"),
        AgentId::from_static("a"),
    );
    assert!(
        sessions
            .create_session(&record.tenant, &record)
            .await
            .unwrap()
    );
    assert!(
        !store.create_session(&record.tenant, &record).await.unwrap(),
        "second create is a no-op"
    );
}
