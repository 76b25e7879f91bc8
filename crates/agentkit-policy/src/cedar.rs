//! A [`PolicyEvaluator`] over Cedar policies (feature `cedar`, the `cedar-policy` crate).
//!
//! Each request becomes a Cedar request:
//! - principal `Agent::"<agent id>"`, action `Action::"<action>"`, resource `Tenant::"<tenant>"`;
//! - context: `arguments` (the tool arguments; integral numbers as `Long`, other numbers as
//!   strings, since Cedar has no floats), `calls_this_turn`, `calls_this_run`,
//!   `identical_calls`, `confidence_pct` (0–100, present only when a confidence was given),
//!   `hour` and `minute` and `weekday` (`"mon"`…) in the engine's timezone, and
//!   `spent_today_micros` — the agent's spend today from the budget counters (the same
//!   counters the native engine and the `Meter` use).
//!
//! Cedar decides allow or deny. A permit policy annotated `@approval("reason")` turns an allow it
//! contributed to into [`Decision::RequireApproval`]; a forbid policy's `@reason("…")` annotation
//! is the denial's reason. Counters are read, not reserved: use the native engine where budgets
//! must be reserved atomically.

use std::str::FromStr;
use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::policy::{Decision, PolicyEvaluator, PolicyRequest, Priority};
use agentkit_core::store::CounterStore;
use async_trait::async_trait;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request,
};
use chrono::{Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::Clock;

/// The Cedar evaluator.
#[derive(Clone)]
pub struct CedarEvaluator {
    policies: Arc<PolicySet>,
    counters: Arc<dyn CounterStore>,
    tz: Tz,
    clock: Clock,
}

impl std::fmt::Debug for CedarEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CedarEvaluator")
            .field("policies", &self.policies.policies().count())
            .field("tz", &self.tz)
            .finish_non_exhaustive()
    }
}

fn uid(type_name: &str, id: &str) -> Result<EntityUid> {
    let t = EntityTypeName::from_str(type_name)
        .map_err(|e| Error::Internal(format!("cedar type {type_name}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// Tool arguments as a Cedar-compatible JSON record.
fn cedar_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
                _ => Value::String(n.to_string()),
            },
        },
        Value::Array(a) => Value::Array(a.iter().map(cedar_value).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), cedar_value(v))).collect())
        }
        Value::Null => Value::String(String::new()),
        other => other.clone(),
    }
}

impl CedarEvaluator {
    /// Parses Cedar policy text; errors name the problem.
    pub fn new(policies: &str, counters: Arc<dyn CounterStore>) -> Result<Self> {
        let set = PolicySet::from_str(policies)
            .map_err(|e| Error::InvalidConfig(format!("cedar policies: {e}")))?;
        Ok(Self {
            policies: Arc::new(set),
            counters,
            tz: Tz::UTC,
            clock: Arc::new(Utc::now),
        })
    }

    /// The timezone for `hour`, `weekday` and the day of `spent_today_micros`.
    pub fn with_timezone(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// Uses another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn context(&self, request: &PolicyRequest, spent_nanos: i64) -> Value {
        let local = (self.clock)().with_timezone(&self.tz);
        let mut ctx = Map::new();
        let args = match &request.arguments {
            Value::Object(_) => cedar_value(&request.arguments),
            other => json!({ "value": cedar_value(other) }),
        };
        ctx.insert("arguments".into(), args);
        ctx.insert(
            "calls_this_turn".into(),
            json!(request.counters.calls_this_turn),
        );
        ctx.insert(
            "calls_this_run".into(),
            json!(request.counters.calls_this_run),
        );
        ctx.insert(
            "identical_calls".into(),
            json!(request.counters.identical_calls_this_run),
        );
        if let Some(c) = request.confidence {
            ctx.insert("confidence_pct".into(), json!((c * 100.0).round() as i64));
        }
        ctx.insert("hour".into(), json!(local.hour()));
        ctx.insert("minute".into(), json!(local.minute()));
        ctx.insert(
            "weekday".into(),
            json!(local.weekday().to_string().to_lowercase()),
        );
        ctx.insert("spent_today_micros".into(), json!(spent_nanos / 1_000));
        Value::Object(ctx)
    }
}

#[async_trait]
impl PolicyEvaluator for CedarEvaluator {
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision> {
        let day = (self.clock)().with_timezone(&self.tz).date_naive();
        let spent = self
            .counters
            .counter_get(
                &request.scope.tenant,
                &format!("budget:agent:{}:{day}", request.scope.agent),
            )
            .await?;
        let context = Context::from_json_value(self.context(request, spent), None)
            .map_err(|e| Error::InvalidInput(format!("cedar context: {e}")))?;
        let cedar_request = Request::new(
            uid("Agent", request.scope.agent.as_str())?,
            uid("Action", &request.action)?,
            uid("Tenant", request.scope.tenant.as_str())?,
            context,
            None,
        )
        .map_err(|e| Error::InvalidInput(format!("cedar request: {e}")))?;
        let response =
            Authorizer::new().is_authorized(&cedar_request, &self.policies, &Entities::empty());
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            // Cedar skips policies that error; an error is reported, and decisions stay as Cedar made them.
            tracing::warn!(errors = ?errors, action = %request.action, "cedar policy evaluation errors");
        }
        let reasons: Vec<_> = response.diagnostics().reason().collect();
        match response.decision() {
            CedarDecision::Deny => {
                let reason = reasons
                    .iter()
                    .find_map(|id| self.policies.annotation(id, "reason"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("no Cedar policy permits `{}`", request.action));
                Ok(Decision::deny(reason))
            }
            CedarDecision::Allow => {
                let approval = reasons
                    .iter()
                    .find_map(|id| self.policies.annotation(id, "approval"));
                match approval {
                    Some(reason) if !request.approved_by_human => Ok(Decision::RequireApproval {
                        reason: reason.to_string(),
                        priority: Priority::Medium,
                    }),
                    _ => Ok(Decision::Allow),
                }
            }
        }
    }
}
