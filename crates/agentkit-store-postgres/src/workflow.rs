//! [`WorkflowStore`]: workflow definitions, runs, step logs and events (`agentkit-workflow`),
//! shared by many worker processes.
//!
//! Claims are one transaction: `SELECT … WHERE due_at <= now ORDER BY due_at FOR UPDATE SKIP
//! LOCKED`, then each claimed row's lease and version are written, so concurrent workers on any
//! number of machines take disjoint runs without waiting on each other. Every change that makes
//! work claimable (a new run, a wake, an event) sends `NOTIFY agentkit_workflow` in its
//! transaction; [`WorkflowStore::wait_for_work`] listens, so idle workers wake on it instead of
//! polling the table.

use std::time::Duration;

use agentkit_core::id::{RunId, TenantId, WorkflowId};
use agentkit_core::store::ensure_tenant;
use agentkit_core::{Error, Result};
use agentkit_workflow::record::{
    ClaimRequest, CommitOutcome, Created, Delivery, Lease, RunQuery, StepCommit, StepRecord,
    WorkflowEvent, WorkflowRun, event_key,
};
use agentkit_workflow::{RunState, WorkflowDefinition, WorkflowStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, Transaction};

use crate::codec::{from_json, json, micros, to_i64};
use crate::error::{acquire_error, query_error};
use crate::{PostgresStore, commit};

/// The channel claimable work is announced on.
pub const CHANNEL: &str = "agentkit_workflow";

impl PostgresStore {
    /// A transaction that may see and lock every tenant's workflow runs (claims only).
    async fn begin_claim(&self, op: &'static str) -> Result<Transaction<'static, Postgres>> {
        // `BEGIN` and the setting in one round trip.
        self.pool
            .begin_with("BEGIN; SELECT set_config('agentkit.workflow_claim', 'on', true)")
            .await
            .map_err(|e| acquire_error(op, e))
    }
}

async fn notify(tx: &mut PgConnection, op: &'static str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(tx)
        .await
        .map_err(|e| query_error(op, e))?;
    Ok(())
}

/// A run's columns.
struct RunRow {
    body: String,
    version: i64,
}

impl RunRow {
    fn of(run: &WorkflowRun) -> Result<Self> {
        Ok(Self {
            body: json(run)?,
            version: to_i64(run.version, "run version")?,
        })
    }
}

async fn write_run(tx: &mut PgConnection, op: &'static str, run: &WorkflowRun) -> Result<()> {
    write_run_if(tx, op, run, None).await.map(|_| ())
}

/// Writes a run's row, if the stored version is `expected` when one is given; the rows
/// changed (0 or 1).
async fn write_run_if(
    tx: &mut PgConnection,
    op: &'static str,
    run: &WorkflowRun,
    expected: Option<i64>,
) -> Result<u64> {
    let row = RunRow::of(run)?;
    Ok(bind_run(
        sqlx::query(
            "UPDATE workflow_runs SET state = $3, version = $4, due_at = $5, wake_at = $6, \
             event_key = $7, body = $8::json \
             WHERE tenant = $1 AND id = $2 AND ($9::bigint IS NULL OR version = $9)",
        ),
        run,
        &row,
    )
    .bind(expected)
    .execute(tx)
    .await
    .map_err(|e| query_error(op, e))?
    .rows_affected())
}

/// Binds a run's row as `$1`…`$8`: tenant, id, state, version, due_at, wake_at, event_key,
/// body.
fn bind_run<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    run: &'q WorkflowRun,
    row: &'q RunRow,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(run.tenant.as_str())
        .bind(run.id.as_str())
        .bind(run.state.as_str())
        .bind(row.version)
        .bind(run.due_at().map(micros))
        .bind(run.wake_at.map(micros))
        .bind(run.event_key())
        .bind(&row.body)
}

/// The run a trigger key started (its body), in the caller's transaction.
async fn run_by_trigger(
    tx: &mut PgConnection,
    op: &'static str,
    run: &WorkflowRun,
    key: &str,
) -> Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT body::text FROM workflow_runs \
         WHERE tenant = $1 AND workflow = $2 AND trigger_key = $3",
    )
    .bind(run.tenant.as_str())
    .bind(run.workflow.as_str())
    .bind(key)
    .fetch_optional(tx)
    .await
    .map_err(|e| query_error(op, e))
}

fn bodies<T: serde::de::DeserializeOwned>(
    rows: Vec<sqlx::postgres::PgRow>,
    op: &'static str,
    what: &str,
) -> Result<Vec<T>> {
    rows.into_iter()
        .map(|r| {
            let body: String = r.try_get(0).map_err(|e| query_error(op, e))?;
            from_json(&body, what)
        })
        .collect()
}

#[async_trait]
impl WorkflowStore for PostgresStore {
    async fn put_workflow(&self, tenant: &TenantId, definition: &WorkflowDefinition) -> Result<()> {
        const OP: &str = "put_workflow";
        let body = json(definition)?;
        let mut tx = self.begin(OP, tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO workflow_definitions (tenant, id, version, body) \
             VALUES ($1, $2, $3, $4::json) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(definition.id.as_str())
        .bind(i64::from(definition.version))
        .bind(&body)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?
        .rows_affected();
        if inserted == 0 {
            let stored: String = sqlx::query_scalar(
                "SELECT body::text FROM workflow_definitions \
                 WHERE tenant = $1 AND id = $2 AND version = $3",
            )
            .bind(tenant.as_str())
            .bind(definition.id.as_str())
            .bind(i64::from(definition.version))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?;
            let stored: WorkflowDefinition = from_json(&stored, "workflow definition")?;
            if stored != *definition {
                return Err(Error::Conflict(format!(
                    "workflow `{}` version {} is published with other content; publish a new \
                     version",
                    definition.id, definition.version
                )));
            }
        }
        commit(tx, OP).await
    }

    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<Option<WorkflowDefinition>> {
        const OP: &str = "get_workflow";
        let mut tx = self.begin(OP, tenant).await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body::text FROM workflow_definitions WHERE tenant = $1 AND id = $2 \
             AND ($3::bigint IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(version.map(i64::from))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        body.map(|b| from_json(&b, "workflow definition"))
            .transpose()
    }

    async fn create_workflow_run(&self, tenant: &TenantId, run: &WorkflowRun) -> Result<Created> {
        const OP: &str = "create_workflow_run";
        ensure_tenant(tenant, &run.tenant, "workflow run")?;
        let row = RunRow::of(run)?;
        let mut tx = self.begin(OP, tenant).await?;
        if let Some(key) = &run.trigger_key {
            let existing = run_by_trigger(&mut tx, OP, run, key).await?;
            if let Some(body) = existing {
                commit(tx, OP).await?;
                return Ok(Created::Existing(from_json(&body, "workflow run")?));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO workflow_runs (tenant, id, workflow, state, version, due_at, wake_at, \
             event_key, trigger_key, created_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::json) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(run.id.as_str())
        .bind(run.workflow.as_str())
        .bind(run.state.as_str())
        .bind(row.version)
        .bind(run.due_at().map(micros))
        .bind(run.wake_at.map(micros))
        .bind(run.event_key())
        .bind(run.trigger_key.as_deref())
        .bind(micros(run.created_at))
        .bind(&row.body)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?
        .rows_affected();
        if inserted == 0 {
            // The id, or (concurrently) the trigger key, is taken.
            drop(tx);
            if let Some(key) = &run.trigger_key {
                let mut tx = self.begin(OP, tenant).await?;
                let existing = run_by_trigger(&mut tx, OP, run, key).await?;
                commit(tx, OP).await?;
                if let Some(body) = existing {
                    return Ok(Created::Existing(from_json(&body, "workflow run")?));
                }
            }
            return Err(Error::Conflict(format!("workflow run `{}` exists", run.id)));
        }
        notify(&mut tx, OP).await?;
        commit(tx, OP).await?;
        Ok(Created::New(run.clone()))
    }

    async fn get_workflow_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>> {
        const OP: &str = "get_workflow_run";
        let mut tx = self.begin(OP, tenant).await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body::text FROM workflow_runs WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        body.map(|b| from_json(&b, "workflow run")).transpose()
    }

    async fn list_workflow_runs(
        &self,
        tenant: &TenantId,
        query: &RunQuery,
    ) -> Result<Vec<WorkflowRun>> {
        const OP: &str = "list_workflow_runs";
        let mut q: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("SELECT body::text FROM workflow_runs WHERE tenant = ");
        q.push_bind(tenant.as_str());
        if let Some(w) = &query.workflow {
            q.push(" AND workflow = ").push_bind(w.as_str());
        }
        if !query.states.is_empty() {
            let states: Vec<&str> = query.states.iter().map(RunState::as_str).collect();
            q.push(" AND state = ANY(").push_bind(states).push(")");
        }
        if let Some(from) = query.created_from {
            q.push(" AND created_at >= ")
                .push_bind(crate::codec::micros_bound(from));
        }
        if let Some(to) = query.created_to {
            q.push(" AND created_at < ")
                .push_bind(crate::codec::micros_bound(to));
        }
        q.push(" ORDER BY created_at, id");
        if let Some(n) = query.limit {
            q.push(" LIMIT ")
                .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut tx = self.begin(OP, tenant).await?;
        let rows = q
            .build()
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        bodies(rows, OP, "workflow run")
    }

    async fn list_workflow_steps(&self, tenant: &TenantId, run: &RunId) -> Result<Vec<StepRecord>> {
        const OP: &str = "list_workflow_steps";
        let mut tx = self.begin(OP, tenant).await?;
        let rows = sqlx::query(
            "SELECT body::text FROM workflow_steps WHERE tenant = $1 AND run = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(run.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        bodies(rows, OP, "workflow step")
    }

    async fn claim_workflow_runs(&self, request: &ClaimRequest) -> Result<Vec<WorkflowRun>> {
        const OP: &str = "claim_workflow_runs";
        let mut tx = self.begin_claim(OP).await?;
        let rows = sqlx::query(
            "SELECT body::text FROM workflow_runs WHERE due_at IS NOT NULL AND due_at <= $1 \
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(micros(request.now))
        .bind(i64::try_from(request.window()).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let claimed = request.take(bodies::<WorkflowRun>(rows, OP, "workflow run")?);
        for run in &claimed {
            write_run(&mut tx, OP, run).await?;
        }
        commit(tx, OP).await?;
        Ok(claimed)
    }

    async fn renew_workflow_lease(
        &self,
        tenant: &TenantId,
        run: &RunId,
        version: u64,
        lease: &Lease,
    ) -> Result<bool> {
        const OP: &str = "renew_workflow_lease";
        let mut tx = self.begin(OP, tenant).await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body::text FROM workflow_runs WHERE tenant = $1 AND id = $2 AND version = $3 \
             FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(run.as_str())
        .bind(to_i64(version, "run version")?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let Some(body) = body else {
            return Ok(false);
        };
        let mut stored: WorkflowRun = from_json(&body, "workflow run")?;
        if !stored.held_by(version, &lease.owner) {
            return Ok(false);
        }
        stored.lease = Some(lease.clone());
        write_run(&mut tx, OP, &stored).await?;
        commit(tx, OP).await?;
        Ok(true)
    }

    async fn commit_workflow_step(
        &self,
        tenant: &TenantId,
        commit_req: &StepCommit,
    ) -> Result<CommitOutcome> {
        commit_req.check(tenant)?;
        crate::codec::check_tenant(tenant)?;
        let step = commit_req
            .step
            .as_ref()
            .map(|s| Ok::<_, Error>((to_i64(s.seq, "step seq")?, json(s)?)))
            .transpose()?;
        // One transaction per step: Postgres already shares WAL flushes between concurrent
        // commits, and a step is round-trip bound, so steps of concurrent runs go through the
        // pool's connections side by side (a single drainer writing batches was slower here).
        const OP: &str = "commit_workflow_step";
        let mut tx = self.begin(OP, tenant).await?;
        let outcome = commit_step_in(&mut tx, OP, commit_req, step.as_ref()).await?;
        commit(tx, OP).await?;
        Ok(outcome)
    }

    async fn deliver_workflow_event(
        &self,
        tenant: &TenantId,
        event: &WorkflowEvent,
    ) -> Result<Delivery> {
        const OP: &str = "deliver_workflow_event";
        let key = event_key(&event.name, &event.correlation);
        let body = json(event)?;
        let mut tx = self.begin(OP, tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO workflow_events (tenant, id, event_key, body, at, consumed) \
             VALUES ($1, $2, $3, $4::json, $5, false) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(&event.id)
        .bind(&key)
        .bind(&body)
        .bind(micros(event.at))
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?
        .rows_affected();
        if inserted == 0 {
            commit(tx, OP).await?;
            return Ok(Delivery::Duplicate);
        }
        let rows = sqlx::query(
            "SELECT body::text FROM workflow_runs WHERE tenant = $1 AND event_key = $2 \
             ORDER BY id FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(&key)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let waiting: Vec<WorkflowRun> = bodies(rows, OP, "workflow run")?;
        if waiting.is_empty() {
            commit(tx, OP).await?;
            return Ok(Delivery::Kept);
        }
        let mut woke = Vec::with_capacity(waiting.len());
        for mut run in waiting {
            run.wake(event.payload.clone(), event.at);
            write_run(&mut tx, OP, &run).await?;
            woke.push(run.id);
        }
        sqlx::query("UPDATE workflow_events SET consumed = true WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(&event.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?;
        notify(&mut tx, OP).await?;
        commit(tx, OP).await?;
        Ok(Delivery::Woke(woke))
    }

    async fn next_workflow_wake(&self) -> Result<Option<DateTime<Utc>>> {
        const OP: &str = "next_workflow_wake";
        let mut tx = self.begin_claim(OP).await?;
        let next: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT MIN(wake_at) FROM workflow_runs WHERE due_at IS NOT NULL AND wake_at IS NOT NULL",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        Ok(next)
    }

    async fn wait_for_work(&self, max: Duration) {
        let listener = self.listener.clone();
        let pool = self.pool.clone();
        let wait = async move {
            let mut guard = listener.lock().await;
            if guard.is_none() {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut l) => match l.listen(CHANNEL).await {
                        Ok(()) => *guard = Some(l),
                        Err(e) => {
                            tracing::debug!(error = %e, "could not LISTEN; polling instead");
                            return false;
                        }
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "could not open a LISTEN connection");
                        return false;
                    }
                }
            }
            let Some(l) = guard.as_mut() else {
                return false;
            };
            match l.recv().await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "the LISTEN connection failed; reopening");
                    *guard = None;
                    false
                }
            }
        };
        let start = tokio::time::Instant::now();
        let woke = tokio::time::timeout(max, wait).await.unwrap_or(false);
        if !woke {
            // Failed early (no listener): wait out the rest instead of spinning.
            tokio::time::sleep_until(start + max).await;
        }
    }
}

/// A step commit in the caller's transaction (scoped to the run's tenant): the run's
/// compare-and-swap, the step row, and a kept event when the run starts waiting for one.
async fn commit_step_in(
    tx: &mut PgConnection,
    op: &'static str,
    commit_req: &StepCommit,
    step: Option<&(i64, String)>,
) -> Result<CommitOutcome> {
    let tenant = &commit_req.run.tenant;
    let run_id = &commit_req.run.id;
    let mut outcome = CommitOutcome::default();
    if let Some(key) = commit_req.run.event_key() {
        let kept = sqlx::query(
            "SELECT id, body::text FROM workflow_events \
             WHERE tenant = $1 AND event_key = $2 AND NOT consumed \
             ORDER BY at, id LIMIT 1 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(op, e))?;
        if let Some(row) = kept {
            let id: String = row.try_get(0).map_err(|e| query_error(op, e))?;
            let body: String = row.try_get(1).map_err(|e| query_error(op, e))?;
            let event: WorkflowEvent = from_json(&body, "workflow event")?;
            sqlx::query("UPDATE workflow_events SET consumed = true WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_error(op, e))?;
            let mut woken = commit_req.run.clone();
            let at = woken.updated_at;
            woken.wake(event.payload, at);
            outcome.woken = Some(woken);
        }
    }
    // What is written: the run as committed, or as the kept event woke it (no copy otherwise).
    let run = outcome.woken.as_ref().unwrap_or(&commit_req.run);
    let expected = to_i64(commit_req.expected_version, "run version")?;
    let written = match step {
        // The compare-and-swap and the step row in one statement (one round trip): the step
        // is inserted only from the row the update moved.
        Some((seq, body)) => {
            let row = RunRow::of(run)?;
            bind_run(
                sqlx::query(
                    "WITH moved AS (UPDATE workflow_runs SET state = $3, version = $4, \
                     due_at = $5, wake_at = $6, event_key = $7, body = $8::json \
                     WHERE tenant = $1 AND id = $2 AND version = $9 RETURNING tenant, id) \
                     INSERT INTO workflow_steps (tenant, run, seq, body) \
                     SELECT tenant, id, $10::bigint, $11::json FROM moved \
                     ON CONFLICT DO NOTHING",
                ),
                run,
                &row,
            )
            .bind(expected)
            .bind(seq)
            .bind(body)
            .execute(&mut *tx)
            .await
            .map_err(|e| query_error(op, e))?
            .rows_affected()
        }
        None => write_run_if(tx, op, run, Some(expected)).await?,
    };
    if written == 0 {
        // Nothing written: the run is gone, at another version, or (the update went through
        // in this transaction) the step exists. The caller's transaction is rolled back.
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT version FROM workflow_runs WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(run_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| query_error(op, e))?;
        return Err(match (stored, step) {
            (None, _) => Error::NotFound(format!("workflow run `{run_id}`")),
            (Some(v), Some((seq, _))) if u64::try_from(v).ok() == Some(run.version) => {
                Error::Conflict(format!("step {seq} of workflow run `{run_id}` exists"))
            }
            (Some(v), _) => Error::Conflict(format!(
                "workflow run `{run_id}` is at version {v}, not {}",
                commit_req.expected_version
            )),
        });
    }
    if run.lease.is_none() && run.due_at().is_some() {
        notify(tx, op).await?;
    }
    Ok(outcome)
}
