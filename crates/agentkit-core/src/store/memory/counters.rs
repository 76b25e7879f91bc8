//! The counters of [`InMemoryStore`]: per tenant, then by key, under one lock. A batch
//! ([`CounterStore::counter_add_many`](crate::store::CounterStore::counter_add_many)) is applied
//! under that one lock and undone there on a refusal, so no other caller sees part of it.

use super::{HashMap, InMemoryStore, lock};
use crate::error::{Error, Result};
use crate::id::TenantId;
use crate::store::{CounterDelta, CounterOutcome};

/// One conditional add on a counter's value: the new value, `Ok(None)` when a limit refuses it.
fn apply(key: &str, current: i64, delta: i64, limit: Option<i64>) -> Result<Option<i64>> {
    let Some(next) = current.checked_add(delta) else {
        if delta > 0 && limit.is_some() {
            // Past i64::MAX is certainly past the limit.
            return Ok(None);
        }
        return Err(Error::InvalidInput(format!(
            "counter {key}: {current} + {delta} overflows"
        )));
    };
    if delta > 0
        && let Some(limit) = limit
        && next > limit
    {
        return Ok(None);
    }
    Ok(Some(next))
}

/// Sets a counter (the key is allocated only when the counter is new).
fn set(map: &mut HashMap<Box<str>, i64>, key: &str, value: i64) {
    match map.get_mut(key) {
        Some(v) => *v = value,
        None => {
            map.insert(key.into(), value);
        }
    }
}

impl InMemoryStore {
    pub(super) fn counter_add_sync(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome> {
        let mut counters = lock(&self.inner.counters, "counters")?;
        let current = counters
            .get(tenant)
            .and_then(|m| m.get(key))
            .copied()
            .unwrap_or(0);
        let Some(next) = apply(key, current, delta, limit)? else {
            return Ok(CounterOutcome {
                applied: false,
                value: current,
            });
        };
        match counters.get_mut(tenant) {
            Some(map) => set(map, key, next),
            None => set(counters.entry(tenant.clone()).or_default(), key, next),
        }
        Ok(CounterOutcome {
            applied: true,
            value: next,
        })
    }

    pub(super) fn counter_get_sync(&self, tenant: &TenantId, key: &str) -> Result<i64> {
        let counters = lock(&self.inner.counters, "counters")?;
        Ok(counters
            .get(tenant)
            .and_then(|m| m.get(key))
            .copied()
            .unwrap_or(0))
    }

    /// Applies the deltas in order under the lock; on a refusal or an error, puts back the
    /// values the batch found before returning.
    pub(super) fn counter_add_many_sync(
        &self,
        tenant: &TenantId,
        deltas: &[CounterDelta<'_>],
    ) -> Result<Option<usize>> {
        if deltas.is_empty() {
            return Ok(None);
        }
        let mut counters = lock(&self.inner.counters, "counters")?;
        let map = match counters.get_mut(tenant) {
            Some(m) => m,
            None => counters.entry(tenant.clone()).or_default(),
        };
        let mut outcome = Ok(None);
        let mut applied = 0;
        for (i, d) in deltas.iter().enumerate() {
            let current = map.get(d.key).copied().unwrap_or(0);
            match apply(d.key, current, d.delta, d.limit) {
                Ok(Some(next)) => {
                    set(map, d.key, next);
                    applied = i + 1;
                }
                Ok(None) => {
                    outcome = Ok(Some(i));
                    break;
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if !matches!(outcome, Ok(None)) {
            // In reverse, so a key that appears twice returns to the value before the batch.
            for d in deltas[..applied].iter().rev() {
                let value = map.get(d.key).copied().unwrap_or(0);
                // Exact: the value is what an applied `+ delta` left.
                set(map, d.key, value.wrapping_sub(d.delta));
            }
        }
        outcome
    }
}
