//! The group commit of workflow steps: callers queue their prepared steps, one of them (the
//! drainer) writes the queue in one transaction, each step in a savepoint, and answers each.

use agentkit_core::id::{RunId, TenantId};
use agentkit_core::{Error, Result};
use agentkit_workflow::record::{CommitOutcome, StepCommit, WorkflowEvent, WorkflowRun};
use rusqlite::{Connection, OptionalExtension, params};

use super::{RunRow, stored_version, update_run_row};
use crate::SqliteStore;
use crate::codec::{from_json, int, to_json};
use crate::error::{db_err, is_duplicate};
use crate::sql::immediate;

/// Writes what is queued (the caller is the drainer).
pub(super) async fn drain_queue(store: &SqliteStore) {
    let queue = store.step_queue().clone();
    if let Err(e) = store
        .db()
        .write(move |c| {
            queue.drain(c);
            Ok(())
        })
        .await
    {
        // The drain did not finish (a panic): fail what is still queued.
        store.step_queue().fail_all(&e);
    }
}

/// Hands an unfinished drain to a task when the draining caller's future is dropped.
pub(super) struct DrainGuard(pub(super) Option<SqliteStore>);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move { drain_queue(&store).await });
                }
                Err(_) => store.step_queue().fail_all(&Error::Internal(
                    "sqlite store: a workflow step commit was abandoned outside a runtime".into(),
                )),
            }
        }
    }
}

/// A queued step commit and where its answer goes.
pub(crate) struct Queued {
    pub(super) prepared: Prepared,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<CommitOutcome>>,
}

/// A step commit made ready for the writer: the run's row serialized, the step's row
/// serialized, and the run itself only when the store may have to wake it (it starts waiting
/// for an event, which a kept event may already match).
pub(crate) struct Prepared {
    tenant: TenantId,
    run_id: RunId,
    state: &'static str,
    row: RunRow,
    expected: i64,
    step: Option<(i64, String)>,
    waits_for_event: Option<(String, WorkflowRun)>,
}

impl Prepared {
    pub(super) fn of(commit: &StepCommit) -> Result<Self> {
        let run = &commit.run;
        let step = commit
            .step
            .as_ref()
            .map(|s| Ok::<_, Error>((int(s.seq, "step seq")?, to_json(s)?)))
            .transpose()?;
        let row = RunRow::of(run)?;
        Ok(Self {
            tenant: run.tenant.clone(),
            run_id: run.id.clone(),
            state: run.state.as_str(),
            expected: int(commit.expected_version, "run version")?,
            step,
            waits_for_event: row.event_key.clone().map(|key| (key, run.clone())),
            row,
        })
    }
}

/// Step commits waiting for the writer, and whether a caller is writing them.
#[derive(Default)]
struct Pending {
    queued: Vec<Queued>,
    draining: bool,
}

/// Step commits waiting for the writer. One caller at a time drains it: it writes batches
/// until the queue is empty; the others only wait for their answers.
#[derive(Default, Clone)]
pub(crate) struct CommitQueue(std::sync::Arc<std::sync::Mutex<Pending>>);

impl CommitQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a step; `true` when the caller must drain (nobody else is).
    pub(super) fn push(&self, q: Queued) -> bool {
        let mut p = self.lock();
        p.queued.push(q);
        !std::mem::replace(&mut p.draining, true)
    }

    /// The next batch, or `None` (and draining ends) when the queue is empty, atomically
    /// with [`CommitQueue::push`], so no queued step is left without a drainer.
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut p = self.lock();
        if p.queued.is_empty() {
            p.draining = false;
            None
        } else {
            Some(std::mem::take(&mut p.queued))
        }
    }

    fn fail_all(&self, e: &Error) {
        let mut p = self.lock();
        p.draining = false;
        for q in p.queued.drain(..) {
            let _ = q.reply.send(Err(e.clone_for_each()));
        }
    }

    /// Writes batches until the queue is empty.
    fn drain(&self, c: &mut Connection) {
        while let Some(batch) = self.next_batch() {
            write_batch(c, batch);
        }
    }
}

/// Writes queued steps in one transaction, each in a savepoint, and answers each.
fn write_batch(c: &mut Connection, batch: Vec<Queued>) {
    {
        let tx = match immediate(c) {
            Ok(tx) => tx,
            Err(e) => {
                for q in batch {
                    let _ = q.reply.send(Err(e.clone_for_each()));
                }
                return;
            }
        };
        if let [q] = batch.as_slice() {
            // Alone: no savepoint; a refused step rolls its transaction back whole.
            let result = commit_step_in(&tx, &q.prepared);
            let answer = match result {
                Ok(outcome) => tx.commit().map_err(db_err).map(|()| outcome),
                Err(e) => Err(e),
            };
            if let Some(q) = batch.into_iter().next() {
                let _ = q.reply.send(answer);
            }
            return;
        }
        let mut results = Vec::with_capacity(batch.len());
        for q in &batch {
            let result =
                run_cached(&tx, "SAVEPOINT step").and_then(|()| commit_step_in(&tx, &q.prepared));
            let end = if result.is_ok() {
                run_cached(&tx, "RELEASE step")
            } else {
                run_cached(&tx, "ROLLBACK TO step").and_then(|()| run_cached(&tx, "RELEASE step"))
            };
            results.push(end.and(result));
        }
        let committed = tx.commit().map_err(db_err);
        for (q, result) in batch.into_iter().zip(results) {
            let answer = match (&committed, result) {
                (Ok(()), r) => r,
                (Err(e), _) => Err(e.clone_for_each()),
            };
            let _ = q.reply.send(answer);
        }
    }
}

/// Runs a statement without parameters through the statement cache (parsed once).
fn run_cached(tx: &Connection, sql: &str) -> Result<()> {
    tx.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
        .map_err(db_err)
}

/// An error to give to each of several callers.
trait CloneForEach {
    fn clone_for_each(&self) -> Error;
}

impl CloneForEach for Error {
    fn clone_for_each(&self) -> Error {
        Error::Storage {
            message: self.to_string(),
            retryable: self.is_retryable(),
            source: None,
        }
    }
}

/// A step commit inside the caller's transaction: the run's compare-and-swap (one statement),
/// the step row, and a kept event when the run starts waiting for one.
fn commit_step_in(tx: &Connection, p: &Prepared) -> Result<CommitOutcome> {
    let (tenant, run_id) = (&p.tenant, &p.run_id);
    let mut outcome = CommitOutcome::default();
    let mut woken_row = None;
    if let Some((key, run)) = &p.waits_for_event {
        let kept: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT id, body FROM workflow_events \
                 WHERE tenant = ?1 AND event_key = ?2 AND consumed = 0 ORDER BY at, id LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), key], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(db_err)?;
        if let Some((id, body)) = kept {
            let event: WorkflowEvent = from_json(&body, "workflow event")?;
            tx.prepare_cached(
                "UPDATE workflow_events SET consumed = 1 WHERE tenant = ?1 AND id = ?2",
            )
            .and_then(|mut st| st.execute(params![tenant.as_str(), id]))
            .map_err(db_err)?;
            let mut run = run.clone();
            let at = run.updated_at;
            run.wake(event.payload, at);
            woken_row = Some(RunRow::of(&run)?);
            outcome.woken = Some(run);
        }
    }
    let (state, row) = match (&outcome.woken, &woken_row) {
        (Some(run), Some(row)) => (run.state.as_str(), row),
        _ => (p.state, &p.row),
    };
    if update_run_body(tx, tenant, run_id, state, row, p.expected)? == 0
        && update_run_row(tx, tenant, run_id, state, row, Some(p.expected))? == 0
    {
        return Err(match stored_version(tx, tenant, run_id)? {
            None => Error::NotFound(format!("workflow run `{run_id}`")),
            Some(v) => Error::Conflict(format!(
                "workflow run `{run_id}` is at version {v}, not {}",
                p.expected
            )),
        });
    }
    if let Some((seq, body)) = &p.step {
        let inserted = tx
            .prepare_cached(
                "INSERT INTO workflow_steps (tenant, run, seq, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![tenant.as_str(), run_id.as_str(), seq, body]));
        match inserted {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {
                return Err(Error::Conflict(format!(
                    "step {seq} of workflow run `{run_id}` exists"
                )));
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok(outcome)
}

/// A step's compare-and-swap when the run's indexed columns keep their values (most steps of
/// a drive: the lease, and with it `due_at`, does not change): it leaves them out of the `SET`,
/// so SQLite does not rewrite their index entries (one WAL page less per step). 0 rows when
/// the version differs or an indexed column changes; [`update_run_row`] then decides.
fn update_run_body(
    tx: &Connection,
    tenant: &TenantId,
    id: &RunId,
    state: &str,
    row: &RunRow,
    expected: i64,
) -> Result<usize> {
    tx.prepare_cached(
        "UPDATE workflow_runs SET state = ?3, version = ?4, wake_at = ?5, body = ?6 \
         WHERE tenant = ?1 AND id = ?2 AND version = ?7 AND due_at IS ?8 AND event_key IS ?9",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant.as_str(),
            id.as_str(),
            state,
            row.version,
            row.wake_at,
            row.body,
            expected,
            row.due_at,
            row.event_key,
        ])
    })
    .map_err(db_err)
}
