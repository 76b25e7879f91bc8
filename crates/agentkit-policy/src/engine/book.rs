//! The budget reservations kept between `evaluate` and `record_outcome`, by the action
//! instance they were made for. Found by a hash of the request's ids and compared part by part
//! (arguments too), so a decision does not format the request into a string key.

use std::hash::{BuildHasher, Hash, Hasher};

use agentkit_core::id::{IdempotencyKey, RunId, TenantId};
use agentkit_core::policy::PolicyRequest;
use serde_json::Value;

use super::Reservation;

/// One action instance: the call's idempotency key when there is one (two identical calls of
/// one turn keep separate reservations), else the run, action and arguments.
enum Call {
    Keyed {
        tenant: TenantId,
        key: IdempotencyKey,
    },
    Unkeyed {
        tenant: TenantId,
        run: RunId,
        action: String,
        arguments: Value,
    },
}

impl Call {
    fn of(r: &PolicyRequest) -> Self {
        let tenant = r.scope.tenant.clone();
        match &r.idempotency_key {
            Some(key) => Self::Keyed {
                tenant,
                key: key.clone(),
            },
            None => Self::Unkeyed {
                tenant,
                run: r.scope.run.clone(),
                action: r.action.clone(),
                arguments: r.arguments.clone(),
            },
        }
    }

    fn is(&self, r: &PolicyRequest) -> bool {
        match (self, &r.idempotency_key) {
            (Self::Keyed { tenant, key }, Some(k)) => *tenant == r.scope.tenant && key == k,
            (
                Self::Unkeyed {
                    tenant,
                    run,
                    action,
                    arguments,
                },
                None,
            ) => {
                *tenant == r.scope.tenant
                    && *run == r.scope.run
                    && *action == r.action
                    && *arguments == r.arguments
            }
            _ => false,
        }
    }
}

/// Reservations by action instance.
#[derive(Default)]
pub(super) struct Book {
    calls: super::compile::HashMap<u64, Vec<(Call, Vec<Reservation>)>>,
    hasher: foldhash::fast::RandomState,
}

impl Book {
    fn hash(&self, r: &PolicyRequest) -> u64 {
        let mut h = self.hasher.build_hasher();
        r.scope.tenant.hash(&mut h);
        match &r.idempotency_key {
            Some(key) => key.hash(&mut h),
            // Not the arguments: hashing a JSON tree costs more than comparing the few calls
            // of one run and action that await an outcome at once.
            None => {
                r.scope.run.hash(&mut h);
                r.action.hash(&mut h);
            }
        }
        h.finish()
    }

    /// Keeps reservations made for `r`. One kept for it already on the same counter grows by
    /// the new amount (releasing the sum is releasing each), so an action instance evaluated
    /// again and again without an outcome keeps one reservation per counter, not one per call.
    pub(super) fn add(&mut self, r: &PolicyRequest, reservations: Vec<Reservation>) {
        let hash = self.hash(r);
        let calls = self.calls.entry(hash).or_default();
        let Some((_, kept)) = calls.iter_mut().find(|(c, _)| c.is(r)) else {
            calls.push((Call::of(r), reservations));
            return;
        };
        for new in reservations {
            let same = kept
                .iter_mut()
                .find(|k| k.tenant == new.tenant && k.key == new.key);
            match same.and_then(|k| Some((k.amount.checked_add(new.amount)?, k))) {
                Some((sum, k)) => k.amount = sum,
                None => kept.push(new),
            }
        }
    }

    /// Removes and returns the reservations kept for `r`.
    pub(super) fn take(&mut self, r: &PolicyRequest) -> Vec<Reservation> {
        let hash = self.hash(r);
        let Some(calls) = self.calls.get_mut(&hash) else {
            return Vec::new();
        };
        let Some(i) = calls.iter().position(|(c, _)| c.is(r)) else {
            return Vec::new();
        };
        let (_, kept) = calls.swap_remove(i);
        if calls.is_empty() {
            self.calls.remove(&hash);
        }
        kept
    }
}
