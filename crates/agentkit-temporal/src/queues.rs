//! Task queues per tenant tier: each tier's runs on a queue of their own, served by its own
//! workers at its own rate, so one tier's load never delays another's.

use std::collections::BTreeMap;

/// Which task queue a tier's runs go to: start a run on [`TaskQueues::queue`] of its
/// tenant's tier, and run one worker (or several) per queue of [`TaskQueues::queues`], each
/// with the tier's own `max_activities_per_second`.
///
/// ```
/// use agentkit_temporal::TaskQueues;
///
/// let queues = TaskQueues::new("agents")
///     .tier("enterprise", "agents-enterprise")
///     .tier("free", "agents-free");
/// assert_eq!(queues.queue("enterprise"), "agents-enterprise");
/// assert_eq!(queues.queue("starter"), "agents", "a tier without a queue uses the default");
/// assert_eq!(
///     queues.queues().collect::<Vec<_>>(),
///     ["agents", "agents-enterprise", "agents-free"]
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQueues {
    default: String,
    tiers: BTreeMap<String, String>,
}

impl TaskQueues {
    /// Every tier on `default` until given a queue of its own.
    pub fn new(default: impl Into<String>) -> Self {
        Self {
            default: default.into(),
            tiers: BTreeMap::new(),
        }
    }

    /// Puts `tier`'s runs on `queue`.
    pub fn tier(mut self, tier: impl Into<String>, queue: impl Into<String>) -> Self {
        self.tiers.insert(tier.into(), queue.into());
        self
    }

    /// The queue for `tier`'s runs (the default for a tier without one).
    pub fn queue(&self, tier: &str) -> &str {
        self.tiers.get(tier).unwrap_or(&self.default)
    }

    /// Every queue, the default first, each once: one worker set per queue.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = vec![self.default.as_str()];
        for q in self.tiers.values() {
            if !seen.contains(&q.as_str()) {
                seen.push(q);
            }
        }
        seen.into_iter()
    }
}
