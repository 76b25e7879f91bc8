//! Where the engine reads the time: the system clock, or a [`ManualClock`] a test moves.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// The engine's source of "now" (timers, timeouts, leases, schedules).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: drive timers, timeouts and schedules over simulated
/// weeks in a test.
///
/// ```
/// use agentkit_workflow::clock::{Clock, ManualClock};
/// use chrono::{TimeDelta, TimeZone, Utc};
///
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap());
/// clock.advance(TimeDelta::hours(1));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (a negative delta is ignored: time does not go back).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if by > TimeDelta::zero() {
            *now = now.checked_add_signed(by).unwrap_or(*now);
        }
    }

    /// Sets the time, if it is later than now.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
