//! Bytes per turn stay flat: appending a turn writes its new messages, whatever the length of
//! the session's history (messages are stored as deltas, never as snapshots).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::{Message, ToolCall};
use agentkit_core::store::{SessionRecord, SessionStore};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

const TURNS: usize = 500;
const BLOCK: usize = 50;

/// A user question, an assistant tool call, its result and the answer.
fn turn(n: usize) -> [Message; 4] {
    [
        Message::user(format!(
            "turn {n}: where is order {n}? It was due last week."
        )),
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall::new(
                format!("call-{n}"),
                "orders.get",
                json!({"order": n, "fields": ["status", "carrier", "eta"]}),
            )],
        },
        Message::tool_result(
            format!("call-{n}"),
            "orders.get",
            json!({"order": n, "status": "shipped", "carrier": "DHL", "eta": "2025-03-04"})
                .to_string(),
        ),
        Message::assistant(format!(
            "Order {n} has shipped with DHL and should arrive on 2025-03-04."
        )),
    ]
}

/// The database file's size with the WAL checkpointed into it.
fn checkpointed_size(path: &Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint must complete");
    let pages: u64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    pages * page_size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_turn_stay_flat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growth.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let tenant = TenantId::from_static("acme");
    let session = SessionRecord::new(
        tenant.clone(),
        SessionId::generate(),
        AgentId::from_static("support"),
    );
    store
        .create_session(&session.tenant, &session)
        .await
        .unwrap();
    let run = RunId::generate();

    let mut sizes = vec![checkpointed_size(&path)];
    for n in 0..TURNS {
        let last = store
            .append_messages(&tenant, &session.id, Some(&run), &turn(n))
            .await
            .unwrap();
        assert_eq!(last, 4 * (n as u64 + 1));
        if (n + 1) % BLOCK == 0 {
            sizes.push(checkpointed_size(&path));
        }
    }
    let growth: Vec<u64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
    let per_turn: Vec<u64> = growth.iter().map(|g| g / BLOCK as u64).collect();
    println!("database size after each {BLOCK}-turn block: {sizes:?}");
    println!("growth per block (bytes): {growth:?}");
    println!("bytes per turn per block: {per_turn:?}");
    let (second, last) = (growth[1], growth[growth.len() - 1]);
    assert!(
        second > 0 && last * 2 <= second * 3,
        "the last block grew {last} bytes, more than 1.5x the second block's {second}: \
         appending is not O(new messages)"
    );
}
