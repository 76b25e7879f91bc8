//! Messages are stored as deltas: the bytes a turn adds stay flat as a session grows to 500
//! turns (measured on the messages table's heap and indexes).
#![allow(clippy::unwrap_used)]

mod common;

use agentkit_core::id::{AgentId, SessionId, TenantId};
use agentkit_core::message::{Message, ToolCall};
use agentkit_core::store::{SessionRecord, SessionStore};
use common::TestDb;
use serde_json::json;
use sqlx::Row;

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_turn_stay_flat_over_500_turns() {
    let Some(db) = TestDb::from_env("bytes_per_turn_stay_flat_over_500_turns").await else {
        return;
    };
    let store = db.app_store().await;
    let tenant = TenantId::from_static("acme");
    let session = SessionId::from_static("long");
    store
        .create_session(
            &tenant,
            &SessionRecord::new(tenant.clone(), session.clone(), AgentId::from_static("a")),
        )
        .await
        .unwrap();
    let mut admin = db.admin_conn().await;
    let mut sizes = Vec::new();
    for turn in 0..500u32 {
        let batch = [
            Message::user(format!(
                "question {turn}: what is the status of lead {turn}?"
            )),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall::new(
                    format!("c{turn}"),
                    "crm.lookup",
                    json!({"lead_id": turn}),
                )],
            },
            Message::tool_result(
                format!("c{turn}"),
                "crm.lookup",
                format!("{{\"lead_id\": {turn}, \"stage\": \"qualified\"}}"),
            ),
            Message::assistant(format!("Lead {turn} is qualified.")),
        ];
        store
            .append_messages(&tenant, &session, None, &batch)
            .await
            .unwrap();
        if turn % 50 == 49 {
            let sql = format!(
                "SELECT pg_total_relation_size('\"{}\".messages')::bigint AS bytes",
                db.schema
            );
            let row = sqlx::query(&sql).fetch_one(&mut admin).await.unwrap();
            sizes.push(row.get::<i64, _>("bytes"));
        }
    }
    let growth: Vec<i64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
    println!("messages table size every 50 turns: {sizes:?}\ngrowth per 50-turn block: {growth:?}");
    let early = growth[0].max(1);
    let late = *growth.last().unwrap();
    assert!(
        late <= early * 3 / 2,
        "bytes per turn grew with history: first block +{early} B, last block +{late} B"
    );
    db.cleanup().await;
}
