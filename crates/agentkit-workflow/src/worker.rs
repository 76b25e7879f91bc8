//! [`Worker`]: a long-lived task that claims runnable runs with a lease and drives them, a
//! bounded number at a time.

use std::time::Duration;

use agentkit_core::Result;
use agentkit_core::id::TenantId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{Workflows, lease_delta};
use crate::record::ClaimRequest;

/// A worker's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The worker's id: the lease owner, in logs and step rows. Unique per process.
    pub id: String,
    /// Runs driven at once (back-pressure: no more are claimed while this many are in flight).
    pub concurrency: usize,
    /// At most this many runs of one tenant in flight on this worker (back-pressure: one
    /// tenant's burst cannot take every slot).
    pub per_tenant: Option<usize>,
    /// The longest sleep between claims when nothing wakes the worker.
    pub poll: Duration,
}

impl WorkerConfig {
    /// A worker named `id` driving up to 8 runs at once, polling at least every second.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            concurrency: 8,
            per_tenant: None,
            poll: Duration::from_secs(1),
        }
    }

    /// Sets the concurrency (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Caps the runs of one tenant in flight on this worker.
    pub fn per_tenant(mut self, n: usize) -> Self {
        self.per_tenant = Some(n.max(1));
        self
    }

    /// Sets the longest sleep between claims.
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Runs claimed.
    pub claimed: u64,
    /// Steps committed.
    pub steps: u64,
    /// Drives that ended in an error (logged; the run is released and retried).
    pub errors: u64,
}

/// Claims and drives runs until its shutdown token is cancelled; then it stops claiming, lets
/// each in-flight run finish its current step, releases their leases and returns.
///
/// ```no_run
/// # async fn demo(engine: agentkit_workflow::Workflows) -> agentkit_core::Result<()> {
/// use agentkit_workflow::{Worker, WorkerConfig};
/// use tokio_util::sync::CancellationToken;
///
/// let shutdown = CancellationToken::new();
/// let worker = tokio::spawn(Worker::new(engine, WorkerConfig::new("w-1")).run(shutdown.clone()));
/// // ... on SIGTERM:
/// shutdown.cancel();
/// let stats = worker.await.expect("worker task")?;
/// println!("{} steps", stats.steps);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Worker {
    engine: Workflows,
    config: WorkerConfig,
}

impl Worker {
    /// A worker for `engine`.
    pub fn new(engine: Workflows, config: WorkerConfig) -> Self {
        Self { engine, config }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerStats> {
        let inner = &self.engine.inner;
        let stop_steps = CancellationToken::new();
        let mut tasks: JoinSet<Result<usize>> = JoinSet::new();
        let mut busy = Busy::default();
        let mut stats = WorkerStats::default();
        let mut first_error = None;
        while !shutdown.is_cancelled() {
            let notified = inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let free = self.config.concurrency.saturating_sub(tasks.len());
            let mut claimed_any = false;
            if free > 0 {
                let now = inner.clock.now();
                let mut request = ClaimRequest::new(
                    self.config.id.clone(),
                    now,
                    now + lease_delta(inner.lease),
                    free,
                );
                request.per_tenant = self.config.per_tenant;
                request.busy = busy.per_tenant.clone();
                match inner.store.claim_workflow_runs(&request).await {
                    Ok(runs) => {
                        claimed_any = !runs.is_empty();
                        for run in runs {
                            stats.claimed += 1;
                            let tenant = run.tenant.clone();
                            let engine = self.engine.clone();
                            let id = self.config.id.clone();
                            let stop = stop_steps.clone();
                            let task =
                                tasks.spawn(async move { engine.drive(run, &id, &stop).await });
                            busy.start(task.id(), tenant);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %self.config.id, error = %e, "claim failed");
                        stats.errors += 1;
                    }
                }
            }
            if claimed_any && tasks.len() < self.config.concurrency {
                continue;
            }
            // Full: wait for a slot. Otherwise until the next timer, a notification, or the
            // poll interval.
            let sleep = if tasks.len() >= self.config.concurrency {
                self.config.poll
            } else {
                match inner.store.next_workflow_wake().await {
                    Ok(Some(t)) => (t - inner.clock.now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .clamp(Duration::from_millis(1), self.config.poll),
                    _ => self.config.poll,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = &mut notified => {}
                _ = inner.store.wait_for_work(sleep) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    note(&mut stats, &mut first_error, &mut busy, done);
                }
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                note(&mut stats, &mut first_error, &mut busy, done);
            }
        }
        stop_steps.cancel();
        while let Some(done) = tasks.join_next_with_id().await {
            note(&mut stats, &mut first_error, &mut busy, done);
        }
        if let Some(e) = first_error {
            tracing::debug!(worker = %self.config.id, error = %e, "first drive error of this worker");
        }
        Ok(stats)
    }
}

/// The runs a worker drives, by task and by tenant.
#[derive(Default)]
struct Busy {
    owners: std::collections::HashMap<tokio::task::Id, TenantId>,
    per_tenant: std::collections::HashMap<TenantId, usize>,
}

impl Busy {
    fn start(&mut self, task: tokio::task::Id, tenant: TenantId) {
        *self.per_tenant.entry(tenant.clone()).or_default() += 1;
        self.owners.insert(task, tenant);
    }

    fn end(&mut self, task: tokio::task::Id) {
        if let Some(tenant) = self.owners.remove(&task)
            && let Some(n) = self.per_tenant.get_mut(&tenant)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_tenant.remove(&tenant);
            }
        }
    }
}

fn note(
    stats: &mut WorkerStats,
    first_error: &mut Option<String>,
    busy: &mut Busy,
    done: std::result::Result<(tokio::task::Id, Result<usize>), tokio::task::JoinError>,
) {
    match done {
        Ok((task, Ok(steps))) => {
            busy.end(task);
            stats.steps += steps as u64;
        }
        Ok((task, Err(e))) => {
            busy.end(task);
            stats.errors += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
        Err(e) => {
            busy.end(e.id());
            stats.errors += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
}
