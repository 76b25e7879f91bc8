//! What a decision does on every call, made cheap: JSON pointers split once at compile time,
//! the local calendar buckets of "now" formatted once per second and thread, counter keys built
//! in one allocation from prefixes compiled per permission, and every reservation of a decision
//! made in one store call ([`CounterStore::counter_add_many`], synchronous when the store can
//! answer without I/O).

use std::cell::Cell;
use std::io::Write as _;

use agentkit_core::error::Result;
use agentkit_core::policy::PolicyRequest;
use agentkit_core::store::{CounterDelta, CounterStore};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::{Pending, PendingKind, PolicyEngine, Reservation};

/// A JSON pointer split into unescaped tokens, looked up like [`Value::pointer`] without
/// allocating.
#[derive(Debug, Clone)]
pub(crate) struct Pointer {
    /// `None` for a pointer that is neither empty nor starts with `/` (it finds nothing).
    tokens: Option<Box<[Box<str>]>>,
}

impl Pointer {
    pub(crate) fn new(pointer: &str) -> Self {
        if pointer.is_empty() {
            return Self {
                tokens: Some(Box::new([])),
            };
        }
        let tokens = pointer.strip_prefix('/').map(|rest| {
            rest.split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~").into_boxed_str())
                .collect()
        });
        Self { tokens }
    }

    /// What `value.pointer(text)` returns for the text this was built from.
    pub(crate) fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut target = value;
        for token in self.tokens.as_deref()? {
            target = match target {
                Value::Object(map) => map.get(&**token)?,
                Value::Array(list) => list.get(array_index(token)?)?,
                _ => return None,
            };
        }
        Some(target)
    }
}

/// An array index as JSON pointers (and `serde_json`) read it: digits, no `+`, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

/// The local calendar buckets of one second in one timezone: `YYYY-MM-DDTHH:MM`, whose
/// prefixes are the month, day and hour buckets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Buckets {
    text: [u8; 24],
    len: u8,
}

thread_local! {
    /// The last second's buckets on this thread: a decision needs the local day and minute,
    /// and converting to a timezone and formatting costs more than the rest of a decision.
    static LAST: Cell<Option<(Tz, i64, Buckets)>> = const { Cell::new(None) };
}

impl Buckets {
    /// The buckets of `now` in `tz`. Cached per second: local time is UTC plus an offset in
    /// whole seconds that changes only on a whole second, so every instant of one UTC second
    /// falls in the same local minute.
    pub(super) fn at(now: DateTime<Utc>, tz: Tz) -> Self {
        let second = now.timestamp();
        if let Some((t, s, b)) = LAST.get()
            && t == tz
            && s == second
        {
            return b;
        }
        let b = Self::format(now, tz);
        LAST.set(Some((tz, second, b)));
        b
    }

    fn format(now: DateTime<Utc>, tz: Tz) -> Self {
        let l = now.with_timezone(&tz);
        let mut text = [0u8; 24];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        // At most 19 bytes (`-262143-12-31T23:59`): chrono's years have at most 6 digits.
        let written = write!(
            cursor,
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            l.year(),
            l.month(),
            l.day(),
            l.hour(),
            l.minute()
        );
        let len = if written.is_ok() {
            u8::try_from(cursor.position()).unwrap_or(0)
        } else {
            0
        };
        Self { text, len }
    }

    /// The buckets as text.
    pub(super) fn local(&self) -> Local<'_> {
        let text = self.text.get(..usize::from(self.len)).unwrap_or_default();
        Local(std::str::from_utf8(text).unwrap_or_default())
    }
}

/// The local minute `YYYY-MM-DDTHH:MM`, whose prefixes are the hour, day and month.
#[derive(Debug, Clone, Copy)]
pub(super) struct Local<'a>(&'a str);

impl<'a> Local<'a> {
    fn cut(self, n: usize) -> &'a str {
        self.0
            .get(..self.0.len().saturating_sub(n))
            .unwrap_or_default()
    }

    /// `YYYY-MM-DDTHH:MM`.
    pub(super) fn minute(self) -> &'a str {
        self.0
    }

    /// `YYYY-MM-DDTHH`.
    pub(super) fn hour(self) -> &'a str {
        self.cut(3)
    }

    /// `YYYY-MM-DD`.
    pub(super) fn day(self) -> &'a str {
        self.cut(6)
    }

    /// `YYYY-MM`.
    pub(super) fn month(self) -> &'a str {
        self.cut(9)
    }
}

/// The concatenation of `parts`, in one allocation.
pub(super) fn key(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

impl PolicyEngine {
    /// Reserves every pending counter in one all-or-nothing batch; on a refusal, nothing stays
    /// reserved and the reason is returned. Keeps the budget reservations (the ones an action
    /// that did not run gives back).
    pub(super) async fn reserve(
        &self,
        request: &PolicyRequest,
        pending: Vec<Pending>,
    ) -> Result<std::result::Result<Vec<Reservation>, String>> {
        let tenant = &request.scope.tenant;
        fn delta(p: &Pending) -> CounterDelta<'_> {
            CounterDelta {
                key: &p.key,
                delta: p.amount,
                limit: Some(p.limit),
            }
        }
        // A decision reserves a few counters: their deltas fit on the stack.
        let mut inline = [CounterDelta {
            key: "",
            delta: 0,
            limit: None,
        }; 8];
        let heap: Vec<CounterDelta<'_>>;
        let deltas: &[CounterDelta<'_>] = if pending.len() <= inline.len() {
            for (slot, p) in inline.iter_mut().zip(&pending) {
                *slot = delta(p);
            }
            &inline[..pending.len()]
        } else {
            heap = pending.iter().map(delta).collect();
            &heap
        };
        let counters: &dyn CounterStore = &*self.counters;
        let refused = match counters.counter_add_many_now(tenant, deltas) {
            Some(outcome) => outcome?,
            None => counters.counter_add_many(tenant, deltas).await?,
        };
        if let Some(i) = refused {
            let what = pending
                .get(i)
                .map_or_else(|| "a limit".into(), |p| p.describe(&request.action));
            return Ok(Err(format!("{what} exhausted")));
        }
        Ok(Ok(pending
            .into_iter()
            .filter(|p| matches!(p.kind, PendingKind::Budget(_)))
            .map(|p| Reservation {
                tenant: tenant.clone(),
                key: p.key,
                amount: p.amount,
            })
            .collect()))
    }

    /// Gives reservations back (a release always applies).
    pub(super) async fn release(&self, reservations: &[Reservation]) {
        for r in reservations {
            if let Err(e) = self
                .counters
                .counter_add(&r.tenant, &r.key, -r.amount, None)
                .await
            {
                tracing::warn!(error = %e, key = %r.key, "could not release a reservation");
            }
        }
    }

    /// The counter prefix of a scope for an agent (`budget:agent:marketing:`, `rate:tenant:`).
    pub(crate) fn owner_prefix(kind: &str, scope: crate::config::Scope, agent: &str) -> String {
        match scope {
            crate::config::Scope::Agent => format!("{kind}:agent:{agent}:"),
            crate::config::Scope::Tenant => format!("{kind}:tenant:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_find_what_serde_json_finds() {
        let v = json!({"a": {"b/c": [10, {"~d": 1}], "": 2}, "0": 3, "arr": [4, 5]});
        for p in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/~0d",
            "/a/",
            "/0",
            "/arr/1",
            "/arr/01",
            "/arr/+1",
            "/arr/2",
            "/arr/x",
            "/missing",
            "a",
            "/a/b~1c/0/x",
            "/arr/-1",
        ] {
            assert_eq!(Pointer::new(p).get(&v), v.pointer(p), "pointer `{p}`");
        }
    }

    #[test]
    fn buckets_match_the_formatted_local_time() {
        let tzs = [
            Tz::UTC,
            Tz::America__New_York,
            Tz::Asia__Kolkata,
            Tz::Australia__Lord_Howe,
        ];
        for tz in tzs {
            for secs in [0i64, 1_700_000_000, 1_710_054_000, 4_102_444_799, -1] {
                let now = DateTime::from_timestamp(secs, 999_999_999).expect("a valid time");
                let l = now.with_timezone(&tz);
                let stamp = Buckets::at(now, tz);
                let b = stamp.local();
                assert_eq!(b.minute(), l.format("%Y-%m-%dT%H:%M").to_string());
                assert_eq!(b.hour(), l.format("%Y-%m-%dT%H").to_string());
                assert_eq!(b.day(), l.date_naive().to_string());
                assert_eq!(b.month(), l.format("%Y-%m").to_string());
                assert_eq!(Buckets::at(now, tz).local().minute(), b.minute(), "cached");
            }
        }
    }
}
