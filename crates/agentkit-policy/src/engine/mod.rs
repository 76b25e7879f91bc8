//! The compiled, indexed policy engine: evaluation, reservations and outcomes.

mod book;
mod compile;
mod hot;
mod keys;

use std::sync::{Arc, Mutex};

use agentkit_core::error::{Error, Result};
use agentkit_core::id::TenantId;
use agentkit_core::policy::{ActionOutcome, Decision, PolicyEvaluator, PolicyRequest};
use agentkit_core::store::{AuditStore, CounterStore, NewAuditEntry};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::config::{
    Condition, Effect, MissingConfidence, Mode, Op, Period, PolicyDocument, Tier, Window,
};
use compile::{Check, Compiled, Cost, compile};
use hot::{Buckets, Local, key};

/// A clock (injectable for tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One step of an explanation: which rule was looked at and what it said.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Where the rule came from (`agent marketing / role marketer / permission marketing.*`).
    pub source: String,
    /// `allow`, `deny` or `require_approval`.
    pub outcome: &'static str,
    /// Why, for non-allow outcomes and reservations.
    pub reason: Option<String>,
}

/// A decision with the rules that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The decision as enforced (always `Allow` in log-only mode).
    pub decision: Decision,
    /// The decision the rules produced (differs from `decision` only in log-only mode).
    pub would_decide: Decision,
    /// The mode.
    pub mode: Mode,
    /// Every rule that matched, in evaluation order.
    pub trace: Vec<Trace>,
}

/// A reservation made for an allowed action, committed or released by `record_outcome`.
#[derive(Debug, Clone)]
struct Reservation {
    tenant: TenantId,
    key: String,
    amount: i64,
}

/// The native policy engine; implements [`PolicyEvaluator`].
///
/// Build it from a [`PolicyDocument`] and the store's counters (budgets and rate limits are
/// reserved atomically there, so concurrent calls in many processes cannot overspend).
#[derive(Clone)]
pub struct PolicyEngine {
    compiled: Arc<Compiled>,
    counters: Arc<dyn CounterStore>,
    audit: Option<Arc<dyn AuditStore>>,
    clock: Clock,
    reservations: Arc<Mutex<book::Book>>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("mode", &self.compiled.mode)
            .field("agents", &self.compiled.agents.len())
            .field("rules", &self.compiled.rules.items.len())
            .finish_non_exhaustive()
    }
}

fn compare(actual: &Value, op: Op, expected: &Value) -> bool {
    match op {
        Op::Eq => actual == expected,
        Op::Ne => actual != expected,
        Op::In => expected.as_array().is_some_and(|a| a.contains(actual)),
        Op::NotIn => expected.as_array().is_some_and(|a| !a.contains(actual)),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => match (actual.as_f64(), expected.as_f64()) {
            (Some(a), Some(e)) => match op {
                Op::Lt => a < e,
                Op::Le => a <= e,
                Op::Gt => a > e,
                _ => a >= e,
            },
            _ => false,
        },
    }
}

fn condition_text(c: &Condition) -> String {
    let op = match c.op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::In => "in",
        Op::NotIn => "not in",
    };
    format!("{} {op} {}", c.pointer, c.value)
}

/// Combines decisions: Deny > RequireApproval > Allow.
fn combine(a: Decision, b: Decision) -> Decision {
    fn rank(d: &Decision) -> u8 {
        match d {
            Decision::Allow => 0,
            Decision::RequireApproval { .. } => 1,
            Decision::Deny { .. } => 2,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}

/// What a pending reservation is for (its description is only rendered on refusal).
#[derive(Debug, Clone, Copy)]
enum PendingKind {
    Budget(Period),
    Rate(Window),
    ToolCallQuota(Tier),
    TierRate(Tier),
    TierHourlyRate(Tier),
}

struct Pending {
    key: String,
    amount: i64,
    limit: i64,
    kind: PendingKind,
}

impl Pending {
    fn describe(&self, action: &str) -> String {
        match self.kind {
            PendingKind::Budget(p) => format!(
                "{} budget of ${:.2}",
                match p {
                    Period::Day => "daily",
                    Period::Month => "monthly",
                },
                self.limit as f64 / 1e9
            ),
            PendingKind::Rate(w) => format!(
                "rate limit of {} per {} for `{action}`",
                self.limit,
                match w {
                    Window::Minute => "minute",
                    Window::Hour => "hour",
                    Window::Day => "day",
                }
            ),
            PendingKind::ToolCallQuota(t) => format!(
                "daily quota of {} tool calls (tier {})",
                self.limit,
                t.as_str()
            ),
            PendingKind::TierHourlyRate(t) => format!(
                "tenant rate limit of {} actions per hour (tier {})",
                self.limit,
                t.as_str()
            ),
            PendingKind::TierRate(t) => format!(
                "tenant rate limit of {} actions per minute (tier {})",
                self.limit,
                t.as_str()
            ),
        }
    }
}

impl PolicyEngine {
    /// Compiles a policy document. Errors name the path of the bad rule
    /// (`agents.marketing.permissions[1].constraints[0].limit_usd: ...`).
    pub fn new(doc: &PolicyDocument, counters: Arc<dyn CounterStore>) -> Result<Self> {
        Ok(Self {
            compiled: Arc::new(compile(doc)?),
            counters,
            audit: None,
            clock: Arc::new(Utc::now),
            reservations: Arc::default(),
        })
    }

    /// Parses and compiles a JSON policy.
    pub fn from_json(text: &str, counters: Arc<dyn CounterStore>) -> Result<Self> {
        Self::new(&crate::parse_json(text)?, counters)
    }

    /// Parses and compiles a TOML policy.
    pub fn from_toml(text: &str, counters: Arc<dyn CounterStore>) -> Result<Self> {
        Self::new(&crate::parse_toml(text)?, counters)
    }

    /// Records every decision (kind `policy.evaluation`) in this audit store.
    pub fn with_audit(mut self, audit: Arc<dyn AuditStore>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Uses another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.compiled.mode
    }

    /// Now, by the engine's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The counters the engine reads and reserves on.
    pub(crate) fn counters(&self) -> &Arc<dyn CounterStore> {
        &self.counters
    }

    /// The tenant's timezone.
    pub fn timezone(&self, tenant: &TenantId) -> Tz {
        self.tz(tenant)
    }

    fn tz(&self, tenant: &TenantId) -> Tz {
        self.compiled
            .tenant_tz
            .get(tenant.as_str())
            .copied()
            .unwrap_or(self.compiled.default_tz)
    }

    /// Evaluates without side effects on counters (budgets and rate limits are checked against
    /// current values, not reserved) and returns the decision with its trace.
    pub async fn explain(&self, request: &PolicyRequest) -> Result<Explanation> {
        let (decision, trace, _pending) = self.decide(request, false, true).await?;
        Ok(self.finish(decision, trace))
    }

    fn finish(&self, would: Decision, trace: Vec<Trace>) -> Explanation {
        let decision = match self.compiled.mode {
            Mode::Enforce => would.clone(),
            Mode::LogOnly => Decision::Allow,
        };
        Explanation {
            decision,
            would_decide: would,
            mode: self.compiled.mode,
            trace,
        }
    }

    /// The stateless part of the decision, plus the reservations an `Allow` needs.
    async fn decide(
        &self,
        request: &PolicyRequest,
        reserve: bool,
        want_trace: bool,
    ) -> Result<(Decision, Vec<Trace>, Vec<Pending>)> {
        let c = &*self.compiled;
        let action = request.action.as_str();
        let mut trace = Vec::new();
        let Some(index) = c.agents.get(request.scope.agent.as_str()) else {
            let reason = format!("agent `{}` has no grants", request.scope.agent);
            trace.push(Trace {
                source: "default".into(),
                outcome: "deny",
                reason: Some(reason.clone()),
            });
            return Ok((Decision::deny(reason), trace, Vec::new()));
        };
        let perms = index.matching(action);
        if perms.is_empty() {
            let reason = format!(
                "no permission of agent `{}` grants `{action}` (default deny)",
                request.scope.agent
            );
            trace.push(Trace {
                source: "default".into(),
                outcome: "deny",
                reason: Some(reason.clone()),
            });
            return Ok((Decision::deny(reason), trace, Vec::new()));
        }
        let now = (self.clock)();
        let tz = self.tz(&request.scope.tenant);
        let stamp = Buckets::at(now, tz);
        let buckets = stamp.local();
        let mut decision = Decision::Allow;
        let mut pending = Vec::new();
        for perm in perms {
            let mut outcome = Decision::Allow;
            for check in &perm.checks {
                let d = self.check(check, request, now, tz, buckets, &mut pending)?;
                outcome = combine(outcome, d);
            }
            if want_trace {
                trace.push(Trace {
                    source: perm.source.clone(),
                    outcome: outcome.label(),
                    reason: outcome.reason().map(str::to_string),
                });
            }
            decision = combine(decision, outcome);
        }
        for rule in c.rules.matching(action) {
            if !rule.agents.is_empty() && !rule.agents.contains(request.scope.agent.as_str()) {
                continue;
            }
            let applies = rule.when.iter().all(|cond| {
                request
                    .arguments
                    .pointer(&cond.pointer)
                    .is_some_and(|v| compare(v, cond.op, &cond.value))
            }) && rule
                .hints
                .as_ref()
                .is_none_or(|pattern| request.hints.as_ref().is_some_and(|h| h.matches(pattern)));
            if !applies {
                continue;
            }
            let d = match rule.effect {
                Effect::Deny => Decision::deny(rule.reason.clone()),
                Effect::RequireApproval => Decision::RequireApproval {
                    reason: rule.reason.clone(),
                    priority: rule.priority,
                },
            };
            trace.push(Trace {
                source: rule.source.clone(),
                outcome: d.label(),
                reason: Some(rule.reason.clone()),
            });
            decision = combine(decision, d);
        }
        // A human already approved these exact arguments.
        if request.approved_by_human && matches!(decision, Decision::RequireApproval { .. }) {
            trace.push(Trace {
                source: "human approval".into(),
                outcome: "allow",
                reason: None,
            });
            decision = Decision::Allow;
        }
        if !matches!(decision, Decision::Allow) {
            return Ok((decision, trace, Vec::new()));
        }
        // Spend limits: an exhausted one refuses tool calls too (their cost is metered after).
        for (key, limit, what) in
            self.limited_keys(&request.scope.tenant, request.scope.agent.as_str(), now)
        {
            let spent = self
                .counters
                .counter_get(&request.scope.tenant, &key)
                .await?;
            if spent >= limit {
                let reason = format!("{what} is exhausted");
                trace.push(Trace {
                    source: "spend limits".into(),
                    outcome: "deny",
                    reason: Some(reason.clone()),
                });
                return Ok((Decision::deny(reason), trace, Vec::new()));
            }
        }
        if let Some((tier, quotas)) = c.tenant_quotas.get(request.scope.tenant.as_str()) {
            if let Some(max) = quotas.tokens_per_month {
                let used = self
                    .counters
                    .counter_get(
                        &request.scope.tenant,
                        &key(&["quota:tokens:", buckets.month()]),
                    )
                    .await?;
                if used >= i64::try_from(max).unwrap_or(i64::MAX) {
                    let reason = format!(
                        "monthly quota of {max} model tokens exhausted (tier {})",
                        tier.as_str()
                    );
                    trace.push(Trace {
                        source: format!("tier {}", tier.as_str()),
                        outcome: "deny",
                        reason: Some(reason.clone()),
                    });
                    return Ok((Decision::deny(reason), trace, Vec::new()));
                }
            }
            if let Some(max) = quotas.tool_calls_per_day {
                pending.push(Pending {
                    key: key(&["quota:tool_calls:", buckets.day()]),
                    amount: 1,
                    limit: i64::from(max),
                    kind: PendingKind::ToolCallQuota(*tier),
                });
            }
            if let Some(max) = quotas.actions_per_minute {
                pending.push(Pending {
                    key: key(&["rate:tier:", buckets.minute()]),
                    amount: 1,
                    limit: i64::from(max),
                    kind: PendingKind::TierRate(*tier),
                });
            }
            if let Some(max) = quotas.actions_per_hour {
                pending.push(Pending {
                    key: key(&["rate:tier:hour:", buckets.hour()]),
                    amount: 1,
                    limit: i64::from(max),
                    kind: PendingKind::TierHourlyRate(*tier),
                });
            }
        }
        // Budgets and rate limits: check (explain) or reserve (evaluate) atomically.
        if !reserve {
            for p in &pending {
                let current = self
                    .counters
                    .counter_get(&request.scope.tenant, &p.key)
                    .await?;
                if current.saturating_add(p.amount) > p.limit {
                    let what = p.describe(&request.action);
                    let reason = format!("{what} exhausted");
                    trace.push(Trace {
                        source: what,
                        outcome: "deny",
                        reason: Some(reason.clone()),
                    });
                    return Ok((Decision::deny(reason), trace, Vec::new()));
                }
            }
        }
        Ok((decision, trace, pending))
    }

    fn check(
        &self,
        check: &Check,
        request: &PolicyRequest,
        now: DateTime<Utc>,
        tz: Tz,
        buckets: Local<'_>,
        pending: &mut Vec<Pending>,
    ) -> Result<Decision> {
        Ok(match check {
            Check::TenantScope(fields) => {
                for f in fields {
                    if let Some(v) = request.arguments.pointer(f)
                        && v.as_str() != Some(request.scope.tenant.as_str())
                    {
                        return Ok(Decision::deny(format!(
                            "argument {f} names another tenant; agents act only within tenant `{}`",
                            request.scope.tenant
                        )));
                    }
                }
                Decision::Allow
            }
            Check::Argument(cond, pointer) => match pointer.get(&request.arguments) {
                Some(v) if compare(v, cond.op, &cond.value) => Decision::Allow,
                Some(v) => Decision::deny(format!(
                    "argument constraint {} does not hold (got {v})",
                    condition_text(cond)
                )),
                None => Decision::deny(format!(
                    "argument constraint {}: {} is missing",
                    condition_text(cond),
                    cond.pointer
                )),
            },
            Check::MaxCallsPerTurn(max) => {
                if request.counters.calls_this_turn > *max {
                    Decision::deny(format!("at most {max} calls per turn"))
                } else {
                    Decision::Allow
                }
            }
            Check::RepeatedCalls(max) => {
                if request.counters.identical_calls_this_run > *max {
                    Decision::deny(format!(
                        "the same call was already made {} times in this run (at most {max} repeats)",
                        request.counters.identical_calls_this_run
                    ))
                } else {
                    Decision::Allow
                }
            }
            Check::Confidence {
                execute_at,
                approve_at,
                missing,
            } => match request.confidence {
                Some(c) if c >= *execute_at => Decision::Allow,
                Some(c) if c >= *approve_at => Decision::require_approval(format!(
                    "confidence {c:.2} is below {execute_at:.2}"
                )),
                Some(c) => Decision::deny(format!("confidence {c:.2} is below {approve_at:.2}")),
                None => match missing {
                    MissingConfidence::Allow => Decision::Allow,
                    MissingConfidence::Deny => Decision::deny("no confidence was given"),
                    MissingConfidence::RequireApproval => {
                        Decision::require_approval("no confidence was given")
                    }
                },
            },
            Check::RequireApproval { reason, priority } => Decision::RequireApproval {
                reason: reason.clone(),
                priority: *priority,
            },
            Check::TimeWindow {
                days,
                start,
                end,
                tz: own_tz,
            } => {
                let local = now.with_timezone(&own_tz.unwrap_or(tz));
                let t = local.time();
                let in_time = if start <= end {
                    t >= *start && t < *end
                } else {
                    t >= *start || t < *end
                };
                let in_day = days.is_empty() || days.contains(&local.weekday());
                if in_time && in_day {
                    Decision::Allow
                } else {
                    Decision::deny(format!(
                        "outside the allowed time window ({}–{} {}, now {})",
                        start.format("%H:%M"),
                        end.format("%H:%M"),
                        if days.is_empty() {
                            "every day".to_string()
                        } else {
                            format!("{days:?}")
                        },
                        local.format("%a %H:%M %Z")
                    ))
                }
            }
            Check::RateLimit { max, per, prefix } => {
                let window = match per {
                    Window::Minute => buckets.minute(),
                    Window::Hour => buckets.hour(),
                    Window::Day => buckets.day(),
                };
                pending.push(Pending {
                    key: key(&[prefix, &request.action, ":", window]),
                    amount: 1,
                    limit: *max,
                    kind: PendingKind::Rate(*per),
                });
                Decision::Allow
            }
            Check::Budget {
                period,
                limit_nanos,
                cost,
                prefix,
            } => {
                let amount = match cost {
                    Cost::Fixed(nanos) => *nanos,
                    Cost::Argument(ptr, pointer) => {
                        match pointer.get(&request.arguments).and_then(Value::as_f64) {
                            Some(v) if v.is_finite() && v >= 0.0 => (v * 1e9).round() as i64,
                            _ => {
                                return Ok(Decision::deny(format!(
                                    "budget: the cost argument {ptr} is missing or not a non-negative number"
                                )));
                            }
                        }
                    }
                };
                let period_key = match period {
                    Period::Day => buckets.day(),
                    Period::Month => buckets.month(),
                };
                pending.push(Pending {
                    key: key(&[prefix, period_key]),
                    amount,
                    limit: *limit_nanos,
                    kind: PendingKind::Budget(*period),
                });
                Decision::Allow
            }
        })
    }

    async fn record(&self, request: &PolicyRequest, explanation: &Explanation) {
        let Some(audit) = &self.audit else { return };
        let mut e = NewAuditEntry::scoped(
            &request.scope,
            "policy.evaluation",
            format!("agent:{}", request.scope.agent),
            request.action.clone(),
        );
        e.decision = Some(explanation.decision.label().into());
        e.reason = explanation.would_decide.reason().map(str::to_string);
        e.output = json!({
            "mode": match explanation.mode { Mode::Enforce => "enforce", Mode::LogOnly => "log_only" },
            "would_decide": explanation.would_decide.label(),
            "rules": explanation.trace.iter().map(|t| json!({"source": t.source, "outcome": t.outcome, "reason": t.reason})).collect::<Vec<_>>(),
        }).into();
        if let Err(err) = audit.append_audit(&request.scope.tenant, e).await {
            tracing::warn!(error = %err, "could not record a policy decision");
        }
    }

    /// Evaluates, reserving budgets and rate limits for an allowed action, and returns the full
    /// explanation. [`PolicyEvaluator::evaluate`] is this without the trace.
    pub async fn evaluate_explained(&self, request: &PolicyRequest) -> Result<Explanation> {
        self.evaluate_inner(request, true).await
    }

    async fn evaluate_inner(
        &self,
        request: &PolicyRequest,
        want_trace: bool,
    ) -> Result<Explanation> {
        let enforce = self.compiled.mode == Mode::Enforce;
        let want_trace = want_trace || self.audit.is_some();
        let (mut decision, mut trace, pending) = self.decide(request, enforce, want_trace).await?;
        if enforce && matches!(decision, Decision::Allow) && !pending.is_empty() {
            match self.reserve(request, pending).await? {
                // Only budgets are released on failure; rate-limit slots stay used.
                Ok(budgets) => {
                    if !budgets.is_empty()
                        && let Ok(mut map) = self.reservations.lock()
                    {
                        map.add(request, budgets);
                    }
                }
                Err(reason) => {
                    trace.push(Trace {
                        source: "counters".into(),
                        outcome: "deny",
                        reason: Some(reason.clone()),
                    });
                    decision = Decision::deny(reason);
                }
            }
        }
        let explanation = self.finish(decision, trace);
        self.record(request, &explanation).await;
        Ok(explanation)
    }
}

#[async_trait]
impl PolicyEvaluator for PolicyEngine {
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision> {
        Ok(self.evaluate_inner(request, false).await?.decision)
    }

    /// An action known not to have acted ([`ActionOutcome::NotRun`]) releases its budget
    /// reservation; a success or a failure keeps it (a failure may come after the effect).
    /// Rate-limit slots always stay used.
    async fn record_outcome(&self, request: &PolicyRequest, outcome: &ActionOutcome) -> Result<()> {
        let reserved = self
            .reservations
            .lock()
            .map_err(|_| Error::Internal("policy reservation lock poisoned".into()))?
            .take(request);
        if matches!(outcome, ActionOutcome::NotRun) {
            self.release(&reserved).await;
        }
        Ok(())
    }
}
