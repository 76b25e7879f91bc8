//! [`WorkflowStore`]: workflow definitions, runs, step logs and events (`agentkit-workflow`).
//!
//! A run is one row: the whole run as JSON plus the columns claims and deliveries look up
//! (`due_at`, `event_key`, `trigger_key`, state, times). Every write is one `BEGIN IMMEDIATE`
//! transaction: a claim takes its runs and writes their leases at once. A step commit checks
//! the version, appends the step row, takes a kept event if the run starts waiting for one and
//! writes the run, all or nothing; concurrent step commits share a transaction, each in its
//! own savepoint (`steps.rs`).

use agentkit_core::id::{RunId, TenantId, WorkflowId};
use agentkit_core::store::ensure_tenant;
use agentkit_core::{Error, Result};
use agentkit_workflow::record::{
    ClaimRequest, CommitOutcome, Created, Delivery, Lease, RunQuery, StepCommit, StepRecord,
    WorkflowEvent, WorkflowRun, event_key,
};
use agentkit_workflow::{WorkflowDefinition, WorkflowStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::codec::{from_json, from_micros, int, micros, to_json, uint};
use crate::error::{db_err, is_duplicate};
use crate::sql::{immediate, text};

mod steps;

pub(crate) use steps::CommitQueue;
use steps::{DrainGuard, Prepared, Queued, drain_queue};

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn put_workflow(&self, tenant: &TenantId, definition: &WorkflowDefinition) -> Result<()> {
        let (tenant, def) = (tenant.clone(), definition.clone());
        let body = to_json(&def)?;
        self.db()
            .write(move |c| put_workflow(c, &tenant, &def, &body))
            .await
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<Option<WorkflowDefinition>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db()
            .read(move |c| get_workflow(c, &tenant, &id, version))
            .await
    }

    async fn create_workflow_run(&self, tenant: &TenantId, run: &WorkflowRun) -> Result<Created> {
        ensure_tenant(tenant, &run.tenant, "workflow run")?;
        let row = RunRow::of(run)?;
        let run = run.clone();
        self.db().write(move |c| create_run(c, &run, &row)).await
    }

    async fn get_workflow_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db().read(move |c| get_run(c, &tenant, &id)).await
    }

    async fn list_workflow_runs(
        &self,
        tenant: &TenantId,
        query: &RunQuery,
    ) -> Result<Vec<WorkflowRun>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.db().read(move |c| list_runs(c, &tenant, &query)).await
    }

    async fn list_workflow_steps(&self, tenant: &TenantId, run: &RunId) -> Result<Vec<StepRecord>> {
        let (tenant, run) = (tenant.clone(), run.clone());
        self.db().read(move |c| list_steps(c, &tenant, &run)).await
    }

    async fn claim_workflow_runs(&self, request: &ClaimRequest) -> Result<Vec<WorkflowRun>> {
        let request = request.clone();
        self.db().write(move |c| claim(c, &request)).await
    }

    async fn renew_workflow_lease(
        &self,
        tenant: &TenantId,
        run: &RunId,
        version: u64,
        lease: &Lease,
    ) -> Result<bool> {
        let (tenant, run, lease) = (tenant.clone(), run.clone(), lease.clone());
        self.db()
            .write(move |c| renew(c, &tenant, &run, version, &lease))
            .await
    }

    async fn commit_workflow_step(
        &self,
        tenant: &TenantId,
        commit: &StepCommit,
    ) -> Result<CommitOutcome> {
        commit.check(tenant)?;
        // Everything but the SQL is done here, on the caller's task (in parallel with other
        // callers), so the single writer only runs statements.
        let prepared = Prepared::of(commit)?;
        // Group commit: queue the step, then take the writer; whoever gets it first writes
        // every queued step in one transaction (each in its own savepoint, so one step's
        // conflict refuses that step only). A caller whose step was written by another finds
        // the queue empty and only collects its answer.
        let (reply, answer) = tokio::sync::oneshot::channel();
        let drains = self.step_queue().push(Queued { prepared, reply });
        if drains {
            // Drain here; should this caller stop waiting (its future dropped) before the
            // drain ran, the guard hands the drain to a task, so the queue is never stranded.
            let mut guard = DrainGuard(Some(self.clone()));
            // Let the callers that are ready to run (runs the last batch answered) queue
            // their steps first: one transaction then carries them all.
            tokio::task::yield_now().await;
            drain_queue(self).await;
            guard.0 = None;
        }
        answer.await.map_err(|_| {
            Error::Internal("sqlite store: a queued workflow step was dropped".into())
        })?
    }

    async fn deliver_workflow_event(
        &self,
        tenant: &TenantId,
        event: &WorkflowEvent,
    ) -> Result<Delivery> {
        let (tenant, event) = (tenant.clone(), event.clone());
        let body = to_json(&event)?;
        self.db()
            .write(move |c| deliver(c, &tenant, &event, &body))
            .await
    }

    async fn next_workflow_wake(&self) -> Result<Option<DateTime<Utc>>> {
        self.db()
            .read(|c| {
                let v: Option<i64> = c
                    .prepare_cached(
                        "SELECT MIN(wake_at) FROM workflow_runs \
                         WHERE due_at IS NOT NULL AND wake_at IS NOT NULL",
                    )
                    .and_then(|mut st| st.query_row([], |r| r.get(0)))
                    .map_err(db_err)?;
                v.map(from_micros).transpose()
            })
            .await
    }
}

/// The columns of a run row.
struct RunRow {
    body: String,
    version: i64,
    due_at: Option<i64>,
    wake_at: Option<i64>,
    event_key: Option<String>,
}

impl RunRow {
    fn of(run: &WorkflowRun) -> Result<Self> {
        Ok(Self {
            body: to_json(run)?,
            version: int(run.version, "run version")?,
            due_at: run.due_at().map(micros),
            wake_at: run.wake_at.map(micros),
            event_key: run.event_key(),
        })
    }
}

fn put_workflow(
    c: &mut Connection,
    tenant: &TenantId,
    def: &WorkflowDefinition,
    body: &str,
) -> Result<()> {
    let tx = immediate(c)?;
    let existing: Option<String> = tx
        .prepare_cached(
            "SELECT body FROM workflow_definitions WHERE tenant = ?1 AND id = ?2 AND version = ?3",
        )
        .and_then(|mut st| {
            st.query_row(
                params![tenant.as_str(), def.id.as_str(), def.version],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(db_err)?;
    if let Some(existing) = existing {
        let stored: WorkflowDefinition = from_json(&existing, "workflow definition")?;
        return if stored == *def {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "workflow `{}` version {} is published with other content; publish a new version",
                def.id, def.version
            )))
        };
    }
    tx.prepare_cached(
        "INSERT INTO workflow_definitions (tenant, id, version, body) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![tenant.as_str(), def.id.as_str(), def.version, body]))
    .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

fn get_workflow(
    c: &Connection,
    tenant: &TenantId,
    id: &WorkflowId,
    version: Option<u32>,
) -> Result<Option<WorkflowDefinition>> {
    let body: Option<String> = match version {
        Some(v) => c
            .prepare_cached(
                "SELECT body FROM workflow_definitions \
                 WHERE tenant = ?1 AND id = ?2 AND version = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), id.as_str(), v], |r| r.get(0))
                    .optional()
            }),
        None => c
            .prepare_cached(
                "SELECT body FROM workflow_definitions WHERE tenant = ?1 AND id = ?2 \
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                    .optional()
            }),
    }
    .map_err(db_err)?;
    body.map(|b| from_json(&b, "workflow definition"))
        .transpose()
}

fn create_run(c: &mut Connection, run: &WorkflowRun, row: &RunRow) -> Result<Created> {
    let tx = immediate(c)?;
    if let Some(key) = &run.trigger_key {
        let existing: Option<String> = tx
            .prepare_cached(
                "SELECT body FROM workflow_runs \
                 WHERE tenant = ?1 AND workflow = ?2 AND trigger_key = ?3",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![run.tenant.as_str(), run.workflow.as_str(), key],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(db_err)?;
        if let Some(body) = existing {
            return Ok(Created::Existing(from_json(&body, "workflow run")?));
        }
    }
    let inserted = tx
        .prepare_cached(
            "INSERT INTO workflow_runs (tenant, id, workflow, state, version, due_at, wake_at, \
             event_key, trigger_key, created_at, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut st| {
            st.execute(params![
                run.tenant.as_str(),
                run.id.as_str(),
                run.workflow.as_str(),
                run.state.as_str(),
                row.version,
                row.due_at,
                row.wake_at,
                row.event_key,
                run.trigger_key,
                micros(run.created_at),
                row.body,
            ])
        });
    match inserted {
        Ok(_) => {}
        Err(e) if is_duplicate(&e) => {
            return Err(Error::Conflict(format!("workflow run `{}` exists", run.id)));
        }
        Err(e) => return Err(db_err(e)),
    }
    tx.commit().map_err(db_err)?;
    Ok(Created::New(run.clone()))
}

fn get_run(c: &Connection, tenant: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>> {
    let body: Option<String> = c
        .prepare_cached("SELECT body FROM workflow_runs WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    body.map(|b| from_json(&b, "workflow run")).transpose()
}

fn list_runs(c: &Connection, tenant: &TenantId, q: &RunQuery) -> Result<Vec<WorkflowRun>> {
    let mut sql = String::from("SELECT body FROM workflow_runs WHERE tenant = ?");
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(tenant.to_string())];
    if let Some(w) = &q.workflow {
        sql.push_str(" AND workflow = ?");
        args.push(SqlValue::Text(w.to_string()));
    }
    if !q.states.is_empty() {
        sql.push_str(" AND state IN (");
        sql.push_str(&vec!["?"; q.states.len()].join(", "));
        sql.push(')');
        args.extend(
            q.states
                .iter()
                .map(|s| SqlValue::Text(s.as_str().to_owned())),
        );
    }
    if let Some(from) = q.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(SqlValue::Integer(micros(from)));
    }
    if let Some(to) = q.created_to {
        sql.push_str(" AND created_at < ?");
        args.push(SqlValue::Integer(micros(to)));
    }
    sql.push_str(" ORDER BY created_at, id");
    if let Some(n) = q.limit {
        sql.push_str(" LIMIT ?");
        args.push(SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
    }
    let mut st = c.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(from_json(text(row, 0)?, "workflow run")?);
    }
    Ok(out)
}

fn list_steps(c: &Connection, tenant: &TenantId, run: &RunId) -> Result<Vec<StepRecord>> {
    let mut st = c
        .prepare_cached(
            "SELECT body FROM workflow_steps WHERE tenant = ?1 AND run = ?2 ORDER BY seq",
        )
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), run.as_str()])
        .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(from_json(text(row, 0)?, "workflow step")?);
    }
    Ok(out)
}

/// Writes a run's row, if the stored version is `expected` when one is given; the rows
/// changed (0 or 1).
fn write_run_if(tx: &Connection, run: &WorkflowRun, expected: Option<i64>) -> Result<usize> {
    let row = RunRow::of(run)?;
    update_run_row(tx, &run.tenant, &run.id, run.state.as_str(), &row, expected)
}

/// [`write_run_if`] with the row already made.
fn update_run_row(
    tx: &Connection,
    tenant: &TenantId,
    id: &RunId,
    state: &str,
    row: &RunRow,
    expected: Option<i64>,
) -> Result<usize> {
    tx.prepare_cached(
        "UPDATE workflow_runs SET state = ?3, version = ?4, due_at = ?5, wake_at = ?6, \
         event_key = ?7, body = ?8 WHERE tenant = ?1 AND id = ?2 AND (?9 IS NULL OR version = ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant.as_str(),
            id.as_str(),
            state,
            row.version,
            row.due_at,
            row.wake_at,
            row.event_key,
            row.body,
            expected,
        ])
    })
    .map_err(db_err)
}

/// Writes a run's row (the run exists; the caller holds the transaction that read it).
fn write_run(tx: &Connection, run: &WorkflowRun) -> Result<()> {
    write_run_if(tx, run, None).map(|_| ())
}

fn claim(c: &mut Connection, request: &ClaimRequest) -> Result<Vec<WorkflowRun>> {
    let tx = immediate(c)?;
    let candidates: Vec<String> = {
        let mut st = tx
            .prepare_cached(
                "SELECT body FROM workflow_runs WHERE due_at IS NOT NULL AND due_at <= ?1 \
                 ORDER BY due_at LIMIT ?2",
            )
            .map_err(db_err)?;
        let window = i64::try_from(request.window()).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![micros(request.now), window], |r| r.get(0))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    let candidates = candidates
        .iter()
        .map(|body| from_json::<WorkflowRun>(body, "workflow run"))
        .collect::<Result<Vec<_>>>()?;
    let claimed = request.take(candidates);
    for run in &claimed {
        write_run(&tx, run)?;
    }
    tx.commit().map_err(db_err)?;
    Ok(claimed)
}

fn renew(
    c: &mut Connection,
    tenant: &TenantId,
    id: &RunId,
    version: u64,
    lease: &Lease,
) -> Result<bool> {
    let tx = immediate(c)?;
    let Some(mut run) = get_run(&tx, tenant, id)? else {
        return Ok(false);
    };
    let holds = run.held_by(version, &lease.owner);
    if holds {
        run.lease = Some(lease.clone());
        write_run(&tx, &run)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(holds)
}

fn stored_version(tx: &Connection, tenant: &TenantId, id: &RunId) -> Result<Option<u64>> {
    let v: Option<i64> = tx
        .prepare_cached("SELECT version FROM workflow_runs WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    v.map(|v| uint(v, "run version")).transpose()
}

fn deliver(
    c: &mut Connection,
    tenant: &TenantId,
    event: &WorkflowEvent,
    body: &str,
) -> Result<Delivery> {
    let key = event_key(&event.name, &event.correlation);
    let tx = immediate(c)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO workflow_events (tenant, id, event_key, body, at, consumed) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant.as_str(),
                event.id,
                key,
                body,
                micros(event.at)
            ])
        });
    match inserted {
        Ok(_) => {}
        Err(e) if is_duplicate(&e) => return Ok(Delivery::Duplicate),
        Err(e) => return Err(db_err(e)),
    }
    let waiting: Vec<String> = {
        let mut st = tx
            .prepare_cached(
                "SELECT body FROM workflow_runs WHERE tenant = ?1 AND event_key = ?2 ORDER BY id",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![tenant.as_str(), key], |r| r.get(0))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    if waiting.is_empty() {
        tx.commit().map_err(db_err)?;
        return Ok(Delivery::Kept);
    }
    let mut woke = Vec::with_capacity(waiting.len());
    for body in waiting {
        let mut run: WorkflowRun = from_json(&body, "workflow run")?;
        run.wake(event.payload.clone(), event.at);
        write_run(&tx, &run)?;
        woke.push(run.id);
    }
    tx.prepare_cached("UPDATE workflow_events SET consumed = 1 WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut st| st.execute(params![tenant.as_str(), event.id]))
        .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(Delivery::Woke(woke))
}
