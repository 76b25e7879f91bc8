//! The agent's context sources and retriever on Temporal: asked once per run (with the run's
//! metadata), their blocks sent to the model after the system prompt — as the agent's own
//! loop sends them — and the knowledge query metered once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::agent::{Agent, FnContext, RunRequest};
use agentkit_core::id::{AgentId, RunId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::retrieval::{Retriever, ScoredChunk};
use agentkit_core::store::{InMemoryStore, UsageKind, UsageQuery, UsageStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_temporal::{AgentRunInput, TemporalAgents};
use serde_json::json;

/// One chunk of the tenant's own knowledge, counting the queries.
struct Handbook(AtomicUsize);

#[async_trait::async_trait]
impl Retriever for Handbook {
    async fn retrieve(
        &self,
        tenant: &TenantId,
        _agent: &AgentId,
        _query: &str,
        _top_k: usize,
    ) -> agentkit_core::Result<Vec<ScoredChunk>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(vec![
            serde_json::from_value(json!({
                "id": "c1", "score": 0.9,
                "text": format!("{tenant}'s refund window is 30 days."),
                "source": {"document_id": "handbook", "title": "Handbook", "page": null,
                           "offset": null}
            }))
            .unwrap(),
        ])
    }
}

fn agent(store: Arc<InMemoryStore>, model: Arc<ScriptedModel>, handbook: Arc<Handbook>) -> Agent {
    let profile = FnContext::new("customer", |request| {
        let user = request.metadata.get("user").cloned().unwrap_or_default();
        async move { Ok(Some(json!({"user": user, "plan": "pro"}))) }
    });
    Agent::builder()
        .id("support")
        .system_prompt("You answer support questions.")
        .model(model, "scripted")
        .context(Arc::new(profile))
        .retriever(handbook, 3)
        .store(store)
        .build()
        .unwrap()
}

fn system_texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .take_while(|m| matches!(m, Message::System { .. }))
        .map(|m| m.text().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_and_knowledge_reach_the_model_as_in_the_agents_own_loop() {
    let Some(server) = common::dev_server("context").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let store = Arc::new(InMemoryStore::new());
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::text("30 days."),
        ScriptedResponse::text("30 days."),
    ]));
    let handbook = Arc::new(Handbook(AtomicUsize::new(0)));
    let support = agent(store.clone(), model.clone(), handbook.clone());
    let tenant = TenantId::new("acme").unwrap();
    let run = format!("ctx-{}", RunId::generate());
    let queue = format!("ctx-{}", RunId::generate());
    let mut worker = TemporalAgents::new()
        .agent(support.clone())
        .worker(&client, &queue)
        .unwrap();
    let shutdown = worker.shutdown_handle();
    let flow = async {
        let input = AgentRunInput::for_agent(&support, "acme", "s-1", "How long may I return it?")
            .with_metadata("user", "u-7");
        agentkit_temporal::start(&client, &queue, &run, input)
            .await
            .unwrap();
        let out = agentkit_temporal::result(&client, &run).await.unwrap();
        shutdown();
        out
    };
    let (worked, out) = tokio::join!(worker.run(), flow);
    worked.unwrap();
    assert_eq!(out.reply, "30 days.");

    // The embedded loop, same agent, same input and metadata.
    let request =
        RunRequest::new("acme", "s-2", "How long may I return it?").with_metadata("user", "u-7");
    support.run(request).await.unwrap();

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let temporal = system_texts(&requests[0].messages);
    let embedded = system_texts(&requests[1].messages);
    assert_eq!(temporal, embedded, "the same prefix on both engines");
    assert_eq!(temporal.len(), 3, "{temporal:#?}");
    assert_eq!(temporal[0], "You answer support questions.");
    assert!(
        temporal[1].contains("u-7") && temporal[1].contains("customer"),
        "{}",
        temporal[1]
    );
    assert!(
        temporal[2].contains("acme's refund window"),
        "{}",
        temporal[2]
    );
    assert_eq!(handbook.0.load(Ordering::SeqCst), 2, "asked once per run");
    let run_id = RunId::new(&run).unwrap();
    let usage = store
        .list_usage(&tenant, &UsageQuery::all().run(run_id))
        .await
        .unwrap();
    let queries: Vec<_> = usage
        .iter()
        .filter(|e| e.kind == UsageKind::KnowledgeQuery)
        .collect();
    assert_eq!(queries.len(), 1, "{usage:?}");
    assert_eq!(queries[0].resource.as_deref(), Some("retriever"));
}
