//! Crash safety: a writer process killed with SIGKILL in the middle of its writes leaves a
//! database that opens, holds every write the writer saw committed, and holds no partial one —
//! in particular no partial turn step.
//!
//! The test binary re-executes itself as the writer: `crash_writer_child` does nothing unless
//! the environment names a database, in which case it commits turn steps in a loop (two
//! concurrent writers) and prints its progress until it is killed. Each step
//! ([`StepStore::commit_step`]) holds a batch of four messages, three usage events, an audit
//! entry, a tool execution record and the run's new version: after the kill, every batch is
//! either complete in all five places or absent from all of them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::scope::Scope;
use agentkit_core::store::{
    AuditQuery, AuditStore, MessageWindow, NewAuditEntry, RunRecord, RunStore, SessionRecord,
    SessionStore, Step, StepMessages, StepStore, ToolExecution, ToolExecutionStatus,
    ToolExecutionStore, UsageEvent, UsageKind, UsageQuery, UsageStore, verify_audit_chain,
};
use agentkit_store_sqlite::SqliteStore;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHILD_DB: &str = "AGENTKIT_SQLITE_CRASH_CHILD_DB";
const CHILD_ROUND: &str = "AGENTKIT_SQLITE_CRASH_CHILD_ROUND";
const WRITERS: usize = 2;
const ROUNDS: usize = 12;

fn tenant() -> TenantId {
    TenantId::from_static("crash")
}

fn session(round: usize, writer: usize) -> SessionId {
    SessionId::new(format!("round-{round}-writer-{writer}")).expect("a valid session id")
}

fn run_id(round: usize, writer: usize) -> RunId {
    RunId::new(format!("run-{round}-{writer}")).expect("a valid run id")
}

fn execution_key(round: usize, writer: usize, batch: u64) -> IdempotencyKey {
    IdempotencyKey::new(format!("run-{round}-{writer}:{batch}:0")).expect("a valid key")
}

fn batch_prefix(round: usize, writer: usize) -> String {
    format!("round {round} writer {writer} batch ")
}

fn batch_label(round: usize, writer: usize, batch: u64) -> String {
    format!("{}{batch}", batch_prefix(round, writer))
}

/// The i-th (1-based) message of a batch: its text says where it belongs. Every seventh batch
/// is large (overflow pages), so a kill lands in multi-page transactions too.
fn part(batch: u64, i: usize) -> String {
    let padding = if batch % 7 == 3 { 6_000 } else { 200 };
    format!("batch {batch} part {i}/4 {}", "x".repeat(padding))
}

/// The writer loop, run in the child process only.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // Not started by the parent test: nothing to do.
    };
    let round: usize = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(&path).await.unwrap();
        let writers = (0..WRITERS).map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let t = tenant();
                let scope = Scope::new(
                    t.clone(),
                    AgentId::from_static("crash"),
                    session(round, writer),
                    run_id(round, writer),
                );
                // The run's first step: its session and its record.
                let mut run = RunRecord::new(&scope);
                let first = Step {
                    session: Some(SessionRecord::new(
                        t.clone(),
                        scope.session.clone(),
                        scope.agent.clone(),
                    )),
                    new_run: Some(run.clone()),
                    ..Step::default()
                };
                store.commit_step(&t, first).await.unwrap();
                // Bounded, in case the parent is gone.
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut batch = 0u64;
                while Instant::now() < deadline {
                    let messages: Vec<Message> = (1..=4)
                        .map(|i| {
                            if i % 2 == 1 {
                                Message::user(part(batch, i))
                            } else {
                                Message::assistant(part(batch, i))
                            }
                        })
                        .collect();
                    let label = batch_label(round, writer, batch);
                    let usage: Vec<UsageEvent> = [
                        UsageKind::InputTokens,
                        UsageKind::OutputTokens,
                        UsageKind::ToolCall,
                    ]
                    .into_iter()
                    .map(|kind| {
                        let mut e = UsageEvent::scoped(&scope, kind, 5);
                        e.resource = Some(label.clone());
                        e
                    })
                    .collect();
                    let mut entry =
                        NewAuditEntry::scoped(&scope, "tool.call", "agent:crash", label);
                    entry.input = serde_json::json!({"batch": batch, "writer": writer}).into();
                    let mut execution = ToolExecution::started(
                        &scope,
                        execution_key(round, writer, batch),
                        format!("call-{batch}"),
                        "crm.update",
                        serde_json::json!({"batch": batch}),
                        "h".into(),
                    );
                    execution.status = ToolExecutionStatus::Succeeded;
                    execution.output = Some(serde_json::json!({"ok": batch}).into());
                    let expected = run.version;
                    run.version += 1;
                    run.turns = u32::try_from(batch + 1).unwrap();
                    let step = Step {
                        run_update: Some((run.clone(), expected)),
                        messages: Some(StepMessages::new(&scope, messages)),
                        executions: vec![execution],
                        usage,
                        audit: vec![entry],
                        ..Step::default()
                    };
                    store.commit_step(&t, step).await.unwrap();
                    println!("progress {writer} {batch}");
                    batch += 1;
                }
            })
        });
        for w in futures::future::join_all(writers).await {
            w.unwrap();
        }
    });
}

#[test]
fn sigkill_mid_write_leaves_no_partial_records() {
    if std::env::var(CHILD_DB).is_ok() {
        return; // The child runs only the writer loop.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    // The last batch each writer reported committed, per round.
    let mut acked: BTreeMap<(usize, usize), u64> = BTreeMap::new();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Kill after a different amount of progress each round.
        let kill_after = 40 + 23 * round;
        let mut seen = 0;
        let mut line = String::new();
        let record = |line: &str, acked: &mut BTreeMap<(usize, usize), u64>| -> bool {
            let Some(rest) = line.trim().strip_prefix("progress ") else {
                return false;
            };
            let (writer, batch) = rest.split_once(' ').unwrap();
            let (writer, batch): (usize, u64) = (writer.parse().unwrap(), batch.parse().unwrap());
            let slot = acked.entry((round, writer)).or_insert(0);
            *slot = (*slot).max(batch);
            true
        };
        while seen < kill_after {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!("the writer exited before it was killed:\n{stderr}");
            }
            if record(&line, &mut acked) {
                seen += 1;
            }
        }
        // A different delay each round, so the kill lands at different points of a step.
        std::thread::sleep(Duration::from_micros((round as u64 * 173) % 500));
        kill(
            Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        // Progress printed before the kill was acknowledged by the store: it must be there.
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        for line in rest.lines() {
            record(line, &mut acked);
        }
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
        println!(
            "round {round}: killed after {seen}+ progress lines; acked {:?}",
            acked.range((round, 0)..(round + 1, 0)).collect::<Vec<_>>()
        );

        verify(&path, round, &acked);
    }
}

/// Opens the database the killed writers left and checks everything written so far.
fn verify(path: &std::path::Path, last_round: usize, acked: &BTreeMap<(usize, usize), u64>) {
    let integrity: String = rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(path).await.unwrap();
        let t = tenant();
        let usage = store.list_usage(&t, &UsageQuery::all()).await.unwrap();
        let mut usage_per_batch: BTreeMap<String, usize> = BTreeMap::new();
        for e in &usage {
            *usage_per_batch
                .entry(e.resource.clone().unwrap())
                .or_default() += 1;
        }
        assert!(
            usage_per_batch.values().all(|&n| n == 3),
            "every usage batch is whole: {:?}",
            usage_per_batch
                .iter()
                .filter(|(_, n)| **n != 3)
                .collect::<Vec<_>>()
        );
        let audit = store.list_audit(&t, &AuditQuery::all()).await.unwrap();
        assert_eq!(
            verify_audit_chain(&audit),
            Ok(()),
            "the audit chain verifies"
        );

        for round in 0..=last_round {
            for writer in 0..WRITERS {
                let messages = store
                    .load_messages(&t, &session(round, writer), MessageWindow::All)
                    .await
                    .unwrap();
                assert_eq!(
                    messages.len() % 4,
                    0,
                    "round {round} writer {writer}: a message batch is partially present"
                );
                for (idx, m) in messages.iter().enumerate() {
                    assert_eq!(m.seq, idx as u64 + 1, "seqs have no gaps");
                    let (batch, i) = (idx as u64 / 4, idx % 4 + 1);
                    assert_eq!(
                        m.message.text(),
                        part(batch, i),
                        "round {round} writer {writer}: message {} is batch {batch} part {i}/4",
                        m.seq
                    );
                }
                let batches = messages.len() as u64 / 4;
                let acked = acked.get(&(round, writer)).copied().unwrap_or(0);
                if round == last_round {
                    println!(
                        "  writer {writer}: {batches} whole batches stored, last acknowledged \
                         batch {acked}"
                    );
                }
                assert!(
                    batches > acked,
                    "round {round} writer {writer}: batch {acked} was acknowledged but only \
                     {batches} batches are stored"
                );
                let prefix = batch_prefix(round, writer);
                let numbered = |label: &str| -> Option<u64> {
                    label.strip_prefix(&prefix).map(|n| n.parse().unwrap())
                };
                let audited: Vec<u64> = audit
                    .iter()
                    .filter_map(|e| numbered(&e.entry.action))
                    .collect();
                assert_eq!(
                    audited,
                    (0..audited.len() as u64).collect::<Vec<_>>(),
                    "round {round} writer {writer}: audit entries for consecutive batches"
                );
                let metered: Vec<u64> = usage_per_batch
                    .keys()
                    .filter_map(|label| numbered(label))
                    .collect();
                let metered_count = metered.len() as u64;
                assert!(
                    metered.iter().all(|n| *n < metered_count),
                    "round {round} writer {writer}: usage for consecutive batches"
                );
                // One step per batch: the batch's messages, usage, audit entry, execution
                // record and run version are all there or none is.
                assert_eq!(
                    (audited.len() as u64, metered_count),
                    (batches, batches),
                    "round {round} writer {writer}: a step is partially present \
                     (audited, metered) vs {batches} message batches"
                );
                let executions = store
                    .list_tool_executions(&t, &run_id(round, writer))
                    .await
                    .unwrap();
                let keys: Vec<String> = executions
                    .iter()
                    .map(|e| e.idempotency_key.to_string())
                    .collect();
                let expected: Vec<String> = (0..batches)
                    .map(|b| execution_key(round, writer, b).to_string())
                    .collect();
                assert_eq!(
                    keys, expected,
                    "round {round} writer {writer}: execution records"
                );
                let stored_run = store
                    .get_run(&t, &run_id(round, writer))
                    .await
                    .unwrap()
                    .expect("the run's first step was committed before any batch");
                assert_eq!(
                    (stored_run.version, u64::from(stored_run.turns)),
                    (batches + 1, batches),
                    "round {round} writer {writer}: the run record's version and turns"
                );
            }
        }
        println!(
            "after round {last_round}: {} usage events, {} audit entries, chain ok",
            usage.len(),
            audit.len()
        );
    });
}
