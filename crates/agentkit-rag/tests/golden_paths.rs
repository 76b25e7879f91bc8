//! Seed 004's feedback loop: an approved human decision is stored as a golden path, found for a
//! similar later request, and shown to the model as an example; rejected decisions are not;
//! golden paths stay apart from documents and from other tenants.

use std::sync::Arc;

use serde_json::json;

use agentkit_core::prelude::*;
use agentkit_core::retrieval::{Retriever, VectorStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_rag::memory::InMemoryVectorStore;
use agentkit_rag::testkit::HashEmbedder;
use agentkit_rag::{Document, GoldenPath, GoldenPaths, Ingestor, KnowledgeRetriever};

const DIMS: usize = 128;

fn refund_tool() -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "billing.refund",
            "Refunds an order",
            json!({"type": "object"}),
        ),
        |_ctx, args| async move { Ok(json!({"refunded": args})) },
    ))
}

#[tokio::test]
async fn approved_decisions_become_examples_for_similar_requests() {
    let embedder = Arc::new(HashEmbedder::new(DIMS));
    let vectors = Arc::new(InMemoryVectorStore::new(DIMS));
    let golden = GoldenPaths::new(embedder.clone(), vectors.clone()).expect("golden paths");
    let (acme, support) = (
        TenantId::from_static("acme"),
        AgentId::from_static("support"),
    );

    // A run asks for a refund; the policy sends it to a human, who approves with an edit.
    let request = "Refund order 1234 for the customer whose parcel arrived damaged";
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("billing.refund", json!({"order": "1234", "amount": 80})),
        ScriptedResponse::text("Refunded."),
    ]));
    let agent = Agent::builder()
        .id("support")
        .model(model, "m")
        .tool(refund_tool())
        .policy(Arc::new(
            AllowListPolicy::new(["billing.*"]).require_approval_for(["billing.refund"]),
        ))
        .store(Arc::new(InMemoryStore::new()))
        .build()
        .expect("agent");
    let out = agent
        .run(RunRequest::new("acme", "s1", request))
        .await
        .expect("run");
    let approval = out.approvals()[0].clone();
    let decision =
        ApprovalDecision::approve_with_arguments("maria", json!({"order": "1234", "amount": 60}));
    let path = GoldenPath::from_approval(request, &approval, &decision).expect("approved");
    assert_eq!(path.outcome, "edited");
    assert!(
        path.action.contains("60"),
        "the edited arguments are the example: {}",
        path.action
    );
    golden.record(&acme, &support, &path).await.expect("record");

    // Rejections and automatic decisions are not golden paths.
    assert!(
        GoldenPath::from_approval(request, &approval, &ApprovalDecision::reject("maria", "no"))
            .is_none()
    );

    // A similar request finds it; an unrelated one scores lower.
    let similar = golden
        .similar(
            &acme,
            &support,
            "Customer parcel arrived damaged, refund order 998",
            1,
        )
        .await
        .expect("similar");
    assert_eq!(similar.len(), 1);
    assert_eq!(similar[0].0, path, "the stored path comes back whole");
    let unrelated = golden
        .similar(&acme, &support, "What are your opening hours on Sunday?", 1)
        .await
        .expect("similar");
    assert!(unrelated[0].1 < similar[0].1);

    // Other tenants never see it.
    let other = golden
        .similar(&TenantId::from_static("globex"), &support, request, 5)
        .await
        .expect("similar");
    assert!(other.is_empty());

    // Documents and golden paths share the store but not the searches.
    let ingestor = Ingestor::builder(embedder.clone(), vectors.clone())
        .build()
        .expect("ingestor");
    let report = ingestor
        .ingest(
            &acme,
            &support,
            vec![Document::text(
                "policy.txt",
                "Damaged parcels are refunded in full after a photo.",
            )],
        )
        .await;
    assert!(report.is_complete());
    let knowledge = KnowledgeRetriever::new(embedder.clone(), vectors.clone()).expect("retriever");
    let docs_only = knowledge
        .retrieve(&acme, &support, "refund damaged parcel order", 10)
        .await
        .expect("retrieve");
    assert!(
        docs_only
            .iter()
            .all(|c| c.source.document_id == "policy.txt"),
        "{docs_only:?}"
    );
    let with_examples = knowledge
        .with_golden_paths(golden.clone(), 1)
        .retrieve(&acme, &support, "refund damaged parcel order", 10)
        .await
        .expect("retrieve");
    assert_eq!(with_examples.len(), 2);
    assert!(
        with_examples[1]
            .text
            .starts_with("Approved example (edited by maria)")
    );

    // The example reaches the model in the (untrusted) context block.
    let scripted = Arc::new(ScriptedModel::new([ScriptedResponse::text("ok")]));
    let model = scripted.clone();
    let retriever = KnowledgeRetriever::new(embedder, vectors.clone())
        .expect("retriever")
        .with_golden_paths(golden.clone(), 1);
    let agent = Agent::builder()
        .id("support")
        .model(model, "m")
        .store(Arc::new(InMemoryStore::new()))
        .retriever(Arc::new(retriever), 3)
        .build()
        .expect("agent");
    agent
        .run(RunRequest::new(
            "acme",
            "s2",
            "Please refund order 77, the parcel arrived damaged",
        ))
        .await
        .expect("run");
    let prompt = scripted.requests()[0].messages[0].text().to_string();
    assert!(prompt.contains("Approved example"), "{prompt}");
    assert!(prompt.contains("\"amount\":60"), "{prompt}");

    assert!(
        golden
            .forget(&acme, &support, &path.id)
            .await
            .expect("forget")
    );
    assert!(
        golden
            .similar(&acme, &support, request, 5)
            .await
            .expect("similar")
            .is_empty()
    );
    assert_eq!(
        vectors
            .documents(&acme, &support)
            .await
            .expect("documents")
            .len(),
        1
    );
}
