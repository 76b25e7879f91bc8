//! The history a model receives is well-formed whatever happened before in the session: a
//! suspended run blocks new runs, a failed run's messages are retracted, an interrupted run's
//! half exchange is left out, and a session belongs to one agent.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::agent::decide_approval;
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::prelude::*;
use agentkit_core::store::{ApprovalDecision, MessageWindow, RunRecord, RunStatus, SessionRecord};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse, scope};
use serde_json::json;

fn acme() -> TenantId {
    TenantId::from_static("acme")
}

fn agent(id: &str, st: Arc<dyn StateStore>, m: &ScriptedModel) -> Agent {
    let tool = FnTool::new(
        ToolSpec::new(
            "ads.launch",
            "Launches an ad",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
        ),
        |_ctx, _args| async { Ok(json!({"launched": true})) },
    );
    Agent::builder()
        .id(id)
        .model(Arc::new(m.clone()), "m")
        .tool(Arc::new(tool))
        .store(st)
        .policy(
            AllowListPolicy::new(["ads.*"])
                .require_approval_for(["ads.launch"])
                .into_arc(),
        )
        .build()
        .unwrap()
}

/// Every request's messages: each assistant tool call is answered right after it, no two
/// user messages follow each other, no result lacks its call.
fn assert_well_formed(messages: &[Message]) {
    let mut open: Vec<String> = Vec::new();
    let mut previous_user = false;
    for m in messages {
        match m {
            Message::Tool { call_id, .. } => {
                assert!(
                    open.contains(call_id),
                    "result {call_id} without its call: {messages:#?}"
                );
                open.retain(|c| c != call_id);
            }
            other => {
                assert!(open.is_empty(), "calls {open:?} unanswered: {messages:#?}");
                if let Message::Assistant { tool_calls, .. } = other {
                    open = tool_calls.iter().map(|c| c.id.clone()).collect();
                }
            }
        }
        let user = matches!(m, Message::User { .. });
        assert!(
            !(user && previous_user),
            "two user messages in a row: {messages:#?}"
        );
        previous_user = user;
    }
    assert!(open.is_empty(), "calls {open:?} unanswered: {messages:#?}");
}

fn assert_requests_well_formed(m: &ScriptedModel) {
    for request in m.requests() {
        assert_well_formed(&request.messages);
    }
}

fn launch() -> ScriptedResponse {
    ScriptedResponse::tool_call("ads.launch", json!({"name": "spring"}))
}

#[tokio::test]
async fn a_session_with_a_suspended_run_refuses_a_new_run_naming_it() {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let m = ScriptedModel::new([launch(), ScriptedResponse::text("hello")]);
    let a = agent("ads", st.clone(), &m);
    let out = a
        .run(RunRequest::new("acme", "s1", "launch it"))
        .await
        .unwrap();
    let RunOutcome::Suspended(s) = &out else {
        panic!("{out:?}")
    };

    let err = a
        .run(RunRequest::new("acme", "s1", "something else"))
        .await
        .unwrap_err();
    match &err {
        Error::SessionSuspended { run, .. } => assert_eq!(run, s.run.as_str()),
        other => panic!("expected SessionSuspended, got {other:?}"),
    }
    assert_eq!(m.calls(), 1, "the model was not called for the refused run");

    // Deciding and resuming completes the exchange in order, and the session is open again.
    decide_approval(
        st.as_ref(),
        &acme(),
        &s.approvals[0].id,
        &ApprovalDecision::approve("ops@acme"),
    )
    .await
    .unwrap();
    let done = a.resume("acme", &s.run).await.unwrap();
    assert!(matches!(done, RunOutcome::Completed(_)), "{done:?}");
    m.push(ScriptedResponse::text("sure"));
    a.run(RunRequest::new("acme", "s1", "something else"))
        .await
        .unwrap();
    assert_requests_well_formed(&m);
}

#[tokio::test]
async fn an_abandoned_run_unblocks_its_session_and_leaves_no_dangling_call() {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let m = ScriptedModel::new([launch()]);
    let a = agent("ads", st.clone(), &m);
    let out = a
        .run(RunRequest::new("acme", "s1", "launch it"))
        .await
        .unwrap();
    assert!(
        a.abandon_run("acme", out.run_id(), "customer changed their mind")
            .await
            .unwrap()
    );
    assert!(
        !a.abandon_run("acme", out.run_id(), "twice").await.unwrap(),
        "a run is abandoned once"
    );
    let run = st.get_run(&acme(), out.run_id()).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(matches!(
        a.resume("acme", out.run_id()).await.unwrap(),
        RunOutcome::AlreadyResumed { .. }
    ));

    m.push(ScriptedResponse::text("ok"));
    a.run(RunRequest::new("acme", "s1", "what now?"))
        .await
        .unwrap();
    assert_requests_well_formed(&m);
    let last = m.requests().pop().unwrap();
    assert_eq!(
        last.messages.iter().filter(|m| m.is_tool_result()).count(),
        0
    );
    assert!(!last.messages.iter().any(|m| m.text() == "launch it"));
}

#[tokio::test]
async fn a_failed_run_leaves_no_message_behind_so_a_retry_asks_once() {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let m = ScriptedModel::new([
        ScriptedResponse::error(|| Error::Server {
            status: Some(500),
            message: "boom".into(),
        }),
        ScriptedResponse::text("hello"),
    ]);
    let a = agent("ads", st.clone(), &m);
    a.run(RunRequest::new("acme", "s1", "hi"))
        .await
        .unwrap_err();
    a.run(RunRequest::new("acme", "s1", "hi")).await.unwrap();
    assert_requests_well_formed(&m);
    let retry = m.requests().pop().unwrap();
    assert_eq!(
        retry.messages.iter().filter(|m| m.text() == "hi").count(),
        1,
        "{:#?}",
        retry.messages
    );
    // The rows stay stored for the record; windows skip them.
    let window = st
        .load_messages(&acme(), &SessionId::from_static("s1"), MessageWindow::All)
        .await
        .unwrap();
    assert_eq!(window.len(), 2, "{window:#?}");
}

#[tokio::test]
async fn a_run_that_died_mid_call_is_left_out_of_the_next_window() {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let m = ScriptedModel::new([ScriptedResponse::text("hello")]);
    let a = agent("ads", st.clone(), &m);
    // A process died after storing the question and the model's tool call: the run stays
    // `running` and nothing was retracted.
    let sc = scope("acme", "ads", "s1", "dead-run");
    st.create_session(
        &acme(),
        &SessionRecord::new(acme(), sc.session.clone(), sc.agent.clone()),
    )
    .await
    .unwrap();
    st.create_run(&acme(), &RunRecord::new(&sc)).await.unwrap();
    st.append_messages(
        &acme(),
        &sc.session,
        Some(&sc.run),
        &[
            Message::user("launch it"),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall::new("c1", "ads.launch", json!({}))],
            },
        ],
    )
    .await
    .unwrap();

    a.run(RunRequest::new("acme", "s1", "hello?"))
        .await
        .unwrap();
    assert_requests_well_formed(&m);
}

#[tokio::test]
async fn another_agent_of_the_tenant_cannot_use_a_session() {
    let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let m = ScriptedModel::new([ScriptedResponse::text("secret plans")]);
    agent("ads", st.clone(), &m)
        .run(RunRequest::new("acme", "s1", "our plans?"))
        .await
        .unwrap();
    let other_model = ScriptedModel::new([ScriptedResponse::text("leaked")]);
    let err = agent("support", st.clone(), &other_model)
        .run(RunRequest::new("acme", "s1", "what did they say?"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(
        other_model.calls(),
        0,
        "the history never reached another agent"
    );
}

mod arbitrary_histories {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Piece {
        User,
        Answer,
        Calls(Vec<u8>),
        Result(u8),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            Just(Piece::User),
            Just(Piece::Answer),
            prop::collection::vec(0u8..4, 1..3).prop_map(Piece::Calls),
            (0u8..4).prop_map(Piece::Result),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever earlier runs (crashed, interleaved, cut short) or a host left in a
        /// session, the next run sends the model a well-formed history.
        #[test]
        fn any_stored_history_reaches_the_model_well_formed(
            pieces in prop::collection::vec((0usize..3, piece()), 0..24)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let st: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
                let runs: Vec<_> = (0..3)
                    .map(|i| scope("acme", "ads", "s1", format!("old-{i}")))
                    .collect();
                st.create_session(
                    &acme(),
                    &SessionRecord::new(acme(), runs[0].session.clone(), runs[0].agent.clone()),
                )
                .await
                .unwrap();
                for sc in &runs {
                    st.create_run(&acme(), &RunRecord::new(sc)).await.unwrap();
                }
                for (run, p) in &pieces {
                    let message = match p {
                        Piece::User => Message::user("q"),
                        Piece::Answer => Message::assistant("a"),
                        Piece::Calls(ids) => Message::Assistant {
                            content: String::new(),
                            tool_calls: ids
                                .iter()
                                .map(|i| ToolCall::new(format!("c{i}"), "ads.launch", json!({})))
                                .collect(),
                        },
                        Piece::Result(i) => Message::tool_result(format!("c{i}"), "ads.launch", "ok"),
                    };
                    st.append_messages(&acme(), &runs[*run].session, Some(&runs[*run].run), &[message])
                        .await
                        .unwrap();
                }
                let m = ScriptedModel::new([ScriptedResponse::text("hello")]);
                agent("ads", st.clone(), &m)
                    .run(RunRequest::new("acme", "s1", "and now?"))
                    .await
                    .unwrap();
                assert_requests_well_formed(&m);
            });
        }
    }
}
