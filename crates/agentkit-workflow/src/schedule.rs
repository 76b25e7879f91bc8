//! Time triggers: start a workflow on a schedule (cron in a time zone, or every N days at a
//! time), exactly once per slot, with a stated catch-up policy for slots missed while nothing
//! ran.
//!
//! Each slot starts its run with the trigger key `schedule:<id>:<slot>`, so however many
//! scheduler processes tick, and however often a tick is retried after a crash, a slot starts
//! one run. Where a schedule got to (its last handled slot) is kept in the agentkit state
//! store's memory (`MemoryScope::Entity("agentkit.schedule")`, key = the schedule id), so a
//! scheduler that was down knows which slots it missed.
//!
//! ```
//! use agentkit_workflow::schedule::{CatchUp, Schedule, ScheduledWorkflow};
//! use chrono::{TimeZone, Utc};
//!
//! // 10:00 on Mondays, Berlin time.
//! let upsell = Schedule::cron("0 10 * * MON", "Europe/Berlin")?;
//! let after = Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(); // a Wednesday
//! assert_eq!(upsell.next_after(after), Some(Utc.with_ymd_and_hms(2026, 3, 9, 9, 0, 0).unwrap()));
//!
//! // 11:00 every 2 days from 2 March 2026.
//! let nurture = Schedule::every_days(2, "11:00", "Europe/Berlin", "2026-03-02")?;
//! let first = nurture.next_after(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
//! assert_eq!(first, Some(Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()));
//!
//! // Started for tenant `acme` at each slot; a slot missed during downtime runs once.
//! let daily = ScheduledWorkflow::new("nurture", "acme", "nurture-leads", nurture)?
//!     .catch_up(CatchUp::RunOnce);
//! # let _ = daily;
//! # Ok::<(), agentkit_core::Error>(())
//! ```

use std::time::Duration;

use agentkit_core::id::{IntoId, TenantId, WorkflowId};
use agentkit_core::store::MemoryScope;
use agentkit_core::{Error, Result};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::{StartRequest, Workflows};
use crate::record::Created;

/// When a schedule fires.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Schedule {
    /// A cron expression (5 fields, or 6 with seconds; `croner` syntax: `0 9 * * *`,
    /// `0 10 * * MON`, `@daily`) in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<croner::Cron>,
        /// The time zone its times are in.
        time_zone: Tz,
    },
    /// Every `days` days at a local time, counting from a start date (cron cannot say "every
    /// 2 days" across month ends).
    EveryDays {
        /// The period.
        days: u32,
        /// The local time of day.
        at: NaiveTime,
        /// The time zone.
        time_zone: Tz,
        /// The first day.
        starting: NaiveDate,
    },
}

fn tz(name: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| Error::InvalidConfig(format!("unknown time zone `{name}`")))
}

impl Schedule {
    /// A cron schedule; [`Error::InvalidConfig`] for a bad expression or time zone.
    pub fn cron(expression: &str, time_zone: &str) -> Result<Self> {
        let cron = croner::parser::CronParser::new()
            .parse(expression)
            .map_err(|e| Error::InvalidConfig(format!("cron `{expression}`: {e}")))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            time_zone: tz(time_zone)?,
        })
    }

    /// Every `days` days at `at` (`"HH:MM"`) local time from `starting` (`"YYYY-MM-DD"`).
    pub fn every_days(days: u32, at: &str, time_zone: &str, starting: &str) -> Result<Self> {
        if days == 0 {
            return Err(Error::InvalidConfig("every 0 days never fires".into()));
        }
        let at = NaiveTime::parse_from_str(at, "%H:%M")
            .map_err(|e| Error::InvalidConfig(format!("time of day `{at}`: {e} (use HH:MM)")))?;
        let starting = NaiveDate::parse_from_str(starting, "%Y-%m-%d").map_err(|e| {
            Error::InvalidConfig(format!("start date `{starting}`: {e} (use YYYY-MM-DD)"))
        })?;
        Ok(Schedule::EveryDays {
            days,
            at,
            time_zone: tz(time_zone)?,
            starting,
        })
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, time_zone } => cron
                .find_next_occurrence(&t.with_timezone(time_zone), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Schedule::EveryDays {
                days,
                at,
                time_zone,
                starting,
            } => {
                let local = t.with_timezone(time_zone).date_naive();
                // The first candidate day: the period's day on or before `local`.
                let offset = (local - *starting).num_days();
                let period = i64::from(*days);
                let mut day = if offset <= 0 {
                    *starting
                } else {
                    starting.checked_add_days(Days::new(
                        u64::try_from(offset - offset.rem_euclid(period)).ok()?,
                    ))?
                };
                for _ in 0..4 {
                    // A local time that does not exist (a DST gap) fires at the next instant
                    // that does; an ambiguous one at its first occurrence.
                    let slot = time_zone
                        .from_local_datetime(&day.and_time(*at))
                        .earliest()
                        .or_else(|| {
                            time_zone
                                .from_local_datetime(&(day.and_time(*at) + TimeDelta::hours(1)))
                                .earliest()
                        })
                        .map(|d| d.with_timezone(&Utc));
                    if let Some(slot) = slot
                        && slot > t
                    {
                        return Some(slot);
                    }
                    day = day.checked_add_days(Days::new(u64::from(*days)))?;
                }
                None
            }
        }
    }
}

/// What happens to slots missed while no scheduler ran (older than the grace period when
/// seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CatchUp {
    /// Missed slots are dropped; the schedule continues with the next one.
    #[default]
    Skip,
    /// The latest missed slot runs once (a daily report after a weekend outage runs once).
    RunOnce,
    /// Every missed slot runs, oldest first (up to [`MAX_CATCH_UP`]).
    RunAll,
}

/// The most missed slots one tick starts under [`CatchUp::RunAll`].
pub const MAX_CATCH_UP: usize = 1_000;

/// A workflow started on a schedule for one tenant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScheduledWorkflow {
    /// Unique per tenant; part of each slot's trigger key.
    pub id: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The workflow (latest version when started).
    pub workflow: WorkflowId,
    /// The input object; each run also gets `"schedule": {"id": .., "slot": ..}`.
    pub input: Value,
    /// When.
    pub schedule: Schedule,
    /// Missed slots.
    pub catch_up: CatchUp,
    /// How late a slot may be seen and still count as on time (default 5 minutes).
    pub grace: Duration,
}

impl ScheduledWorkflow {
    /// `workflow` for `tenant` on `schedule`, skipping missed slots.
    pub fn new(
        id: impl Into<String>,
        tenant: impl IntoId<TenantId>,
        workflow: impl IntoId<WorkflowId>,
        schedule: Schedule,
    ) -> Result<Self> {
        Ok(Self {
            id: id.into(),
            tenant: tenant.into_id()?,
            workflow: workflow.into_id()?,
            input: json!({}),
            schedule,
            catch_up: CatchUp::Skip,
            grace: Duration::from_secs(300),
        })
    }

    /// Sets the input.
    pub fn input(mut self, input: Value) -> Self {
        self.input = input;
        self
    }

    /// Sets the catch-up policy.
    pub fn catch_up(mut self, policy: CatchUp) -> Self {
        self.catch_up = policy;
        self
    }

    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// One run a tick started (or found started: another scheduler got there first).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The slot.
    pub slot: DateTime<Utc>,
    /// Whether the slot was missed (caught up) rather than on time.
    pub caught_up: bool,
    /// The run.
    pub created: Created,
}

const CURSOR_ENTITY: &str = "agentkit.schedule";

/// Starts scheduled workflows: call [`Scheduler::tick`] (tests, cron-driven hosts) or
/// [`Scheduler::run`] (a long-lived task).
#[derive(Debug)]
pub struct Scheduler {
    engine: Workflows,
    schedules: Vec<ScheduledWorkflow>,
}

impl Scheduler {
    /// A scheduler for `engine`.
    pub fn new(engine: Workflows) -> Self {
        Self {
            engine,
            schedules: Vec::new(),
        }
    }

    /// Adds a schedule; [`Error::InvalidConfig`] when its id is taken for the tenant or its
    /// input is not an object.
    pub fn add(&mut self, schedule: ScheduledWorkflow) -> Result<&mut Self> {
        if self
            .schedules
            .iter()
            .any(|s| s.id == schedule.id && s.tenant == schedule.tenant)
        {
            return Err(Error::InvalidConfig(format!(
                "schedule `{}` is defined twice for tenant `{}`",
                schedule.id, schedule.tenant
            )));
        }
        if !schedule.input.is_object() {
            return Err(Error::InvalidConfig(format!(
                "the input of schedule `{}` must be a JSON object",
                schedule.id
            )));
        }
        self.schedules.push(schedule);
        Ok(self)
    }

    /// Starts every slot that is due at the engine clock's now (and, by each schedule's
    /// catch-up policy, missed ones); returns what it started, oldest slot first per schedule.
    pub async fn tick(&self) -> Result<Vec<Fired>> {
        let now = self.engine.clock().now();
        let mut fired = Vec::new();
        for s in &self.schedules {
            fired.extend(self.tick_one(s, now).await?);
        }
        Ok(fired)
    }

    async fn tick_one(&self, s: &ScheduledWorkflow, now: DateTime<Utc>) -> Result<Vec<Fired>> {
        let state = self.engine.state();
        let scope = MemoryScope::Entity(CURSOR_ENTITY.into());
        let grace = TimeDelta::from_std(s.grace).unwrap_or(TimeDelta::minutes(5));
        let on_time_from = now - grace;
        let cursor = match state.get_memory(&s.tenant, &scope, &s.id).await? {
            Some(v) => serde_json::from_value::<DateTime<Utc>>(v).map_err(|e| Error::Storage {
                message: format!("schedule `{}`: its stored position: {e}", s.id),
                retryable: false,
                source: None,
            })?,
            // First tick ever: nothing was missed.
            None => on_time_from,
        };
        let mut missed = Vec::new();
        let mut on_time = Vec::new();
        let mut t = cursor;
        while let Some(slot) = s.schedule.next_after(t) {
            if slot > now {
                break;
            }
            if slot >= on_time_from {
                on_time.push(slot);
            } else {
                missed.push(slot);
                if missed.len() > MAX_CATCH_UP {
                    missed.remove(0);
                }
            }
            t = slot;
        }
        let last = t;
        let caught: Vec<DateTime<Utc>> = match s.catch_up {
            CatchUp::Skip => Vec::new(),
            CatchUp::RunOnce => missed.last().copied().into_iter().collect(),
            CatchUp::RunAll => missed.clone(),
        };
        if !missed.is_empty() {
            tracing::info!(
                schedule = %s.id, tenant = %s.tenant, missed = missed.len(),
                policy = ?s.catch_up, "missed schedule slots"
            );
        }
        let mut out = Vec::new();
        for (slot, caught_up) in caught
            .into_iter()
            .map(|x| (x, true))
            .chain(on_time.into_iter().map(|x| (x, false)))
        {
            let mut input = s.input.clone();
            if let Value::Object(map) = &mut input {
                map.insert("schedule".into(), json!({"id": s.id, "slot": slot}));
            }
            let request = StartRequest::new(&s.workflow, input)?.trigger_key(format!(
                "schedule:{}:{}",
                s.id,
                slot.to_rfc3339()
            ));
            let created = self.engine.start(&s.tenant, request).await?;
            out.push(Fired {
                schedule: s.id.clone(),
                slot,
                caught_up,
                created,
            });
        }
        if last > cursor {
            state
                .put_memory(&s.tenant, &scope, &s.id, &json!(last))
                .await?;
        }
        Ok(out)
    }

    /// The earliest next slot of any schedule after `t`.
    pub fn next_slot(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .filter_map(|s| s.schedule.next_after(t))
            .min()
    }

    /// Ticks at every slot until `shutdown` is cancelled (checking at least every `poll`, so a
    /// clock change or a missed wake-up is caught up). Tick errors are logged and retried at
    /// the next check.
    pub async fn run(self, shutdown: CancellationToken, poll: Duration) -> Result<()> {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "schedule tick failed; retrying");
            }
            let now = self.engine.clock().now();
            let wait = self
                .next_slot(now)
                .and_then(|t| (t - now).to_std().ok())
                .unwrap_or(poll)
                .min(poll);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
