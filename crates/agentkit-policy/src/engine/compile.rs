//! Compiling a policy document: rules checked and turned into per-agent indexes of actions
//! (exact names in a hash map, trailing-`*` patterns by prefix), with every path of a bad rule
//! in its error. The engine (`mod.rs`) evaluates what this produces.

/// The compiled maps hash with `foldhash` (seeded per process): a decision looks up its agent,
/// action, tenant settings and spend limits, several hashes of short strings per call.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

use agentkit_core::error::{Error, Result};
use agentkit_core::policy::Priority;
use agentkit_core::tool::ToolHints;
use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

use super::PolicyEngine;
use super::hot::Pointer;
use crate::config::{
    Condition, Constraint, CostSource, Effect, MissingConfidence, Mode, Op, Period, PolicyDocument,
    Quotas, Tier, Window,
};

#[derive(Debug, Clone)]
pub(crate) enum Check {
    TenantScope(Vec<String>),
    /// `prefix` is the counter key up to the period (`budget:agent:marketing:`).
    Budget {
        period: Period,
        limit_nanos: i64,
        cost: Cost,
        prefix: Box<str>,
    },
    /// `prefix` is the counter key up to the action (`rate:agent:marketing:`).
    RateLimit {
        max: i64,
        per: Window,
        prefix: Box<str>,
    },
    TimeWindow {
        days: Vec<Weekday>,
        start: NaiveTime,
        end: NaiveTime,
        tz: Option<Tz>,
    },
    Argument(Condition, Pointer),
    MaxCallsPerTurn(u32),
    RepeatedCalls(u32),
    Confidence {
        execute_at: f64,
        approve_at: f64,
        missing: MissingConfidence,
    },
    RequireApproval {
        reason: String,
        priority: Priority,
    },
}

/// What a budgeted call costs, in nano-USD.
#[derive(Debug, Clone)]
pub(crate) enum Cost {
    Fixed(i64),
    /// A number of USD in the arguments: the pointer's text and the pointer.
    Argument(String, Pointer),
}

#[derive(Debug)]
pub(crate) struct CompiledPermission {
    pub(crate) source: String,
    pub(crate) checks: Vec<Check>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) source: String,
    pub(crate) agents: HashSet<String>,
    pub(crate) effect: Effect,
    pub(crate) reason: String,
    pub(crate) priority: Priority,
    pub(crate) when: Vec<Condition>,
    pub(crate) hints: Option<ToolHints>,
}

/// Patterns indexed for lookup in O(length of the action), whatever the number of rules.
#[derive(Debug)]
pub(crate) struct ActionIndex<T> {
    pub(crate) items: Vec<T>,
    pub(crate) exact: HashMap<String, Vec<usize>>,
    pub(crate) prefix: HashMap<String, Vec<usize>>,
    pub(crate) max_prefix: usize,
}

impl<T> Default for ActionIndex<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            exact: HashMap::default(),
            prefix: HashMap::default(),
            max_prefix: 0,
        }
    }
}

impl<T> ActionIndex<T> {
    pub(crate) fn insert(&mut self, pattern: &str, item: T) {
        let i = self.items.len();
        self.items.push(item);
        match pattern.strip_suffix('*') {
            Some(p) => {
                self.max_prefix = self.max_prefix.max(p.len());
                self.prefix.entry(p.to_string()).or_default().push(i);
            }
            None => self.exact.entry(pattern.to_string()).or_default().push(i),
        }
    }

    /// Items whose pattern matches `action`, in insertion order.
    pub(crate) fn matching(&self, action: &str) -> Vec<&T> {
        let exact = self.exact.get(action).map_or(&[][..], Vec::as_slice);
        if self.prefix.is_empty() {
            // Indices of one list are increasing and distinct already.
            return exact.iter().map(|&i| &self.items[i]).collect();
        }
        let mut hits: Vec<usize> = exact.to_vec();
        {
            let longest = self.max_prefix.min(action.len());
            for end in (0..=longest).filter(|e| action.is_char_boundary(*e)) {
                if let Some(v) = self.prefix.get(&action[..end]) {
                    hits.extend_from_slice(v);
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| &self.items[i]).collect()
    }
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) mode: Mode,
    pub(crate) default_tz: Tz,
    pub(crate) tenant_tz: HashMap<String, Tz>,
    pub(crate) tenant_quotas: HashMap<String, (Tier, Quotas)>,
    /// Spend limits (nano-USD per day, per month) by tenant and by agent.
    pub(crate) tenant_spend: HashMap<String, SpendNanos>,
    pub(crate) agent_spend: HashMap<String, SpendNanos>,
    pub(crate) agents: HashMap<String, ActionIndex<CompiledPermission>>,
    pub(crate) rules: ActionIndex<CompiledRule>,
}

pub(crate) fn parse_tz(name: &str, path: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| Error::InvalidConfig(format!("{path}: unknown timezone `{name}`")))
}

pub(crate) fn parse_time(s: &str, path: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| Error::InvalidConfig(format!("{path}: `{s}` is not a time (HH:MM)")))
}

pub(crate) fn parse_day(s: &str, path: &str) -> Result<Weekday> {
    s.parse::<Weekday>()
        .map_err(|_| Error::InvalidConfig(format!("{path}: `{s}` is not a weekday (mon..sun)")))
}

pub(crate) fn compile_condition(c: &Condition, path: &str) -> Result<Condition> {
    if !c.pointer.starts_with('/') {
        return Err(Error::InvalidConfig(format!(
            "{path}.pointer: `{}` is not a JSON pointer (it must start with `/`)",
            c.pointer
        )));
    }
    if matches!(c.op, Op::In | Op::NotIn) && !c.value.is_array() {
        return Err(Error::InvalidConfig(format!(
            "{path}.value: `in`/`not_in` need an array"
        )));
    }
    if matches!(c.op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !c.value.is_number() {
        return Err(Error::InvalidConfig(format!(
            "{path}.value: `{:?}` compares numbers; give a number",
            c.op
        )));
    }
    Ok(c.clone())
}

/// Compiled [`SpendLimits`](crate::config::SpendLimits): nano-USD per day and per month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpendNanos {
    pub(crate) day: Option<i64>,
    pub(crate) month: Option<i64>,
}

fn compile_spend(limits: &crate::config::SpendLimits, path: &str) -> Result<Option<SpendNanos>> {
    let day = limits
        .day_usd
        .map(|v| usd_to_nanos(v, &format!("{path}.spend.day_usd")))
        .transpose()?;
    let month = limits
        .month_usd
        .map(|v| usd_to_nanos(v, &format!("{path}.spend.month_usd")))
        .transpose()?;
    Ok((day.is_some() || month.is_some()).then_some(SpendNanos { day, month }))
}

pub(crate) fn usd_to_nanos(usd: f64, path: &str) -> Result<i64> {
    if !usd.is_finite() || !(0.0..=9.0e9).contains(&usd) {
        return Err(Error::InvalidConfig(format!(
            "{path}: `{usd}` is not a valid USD amount"
        )));
    }
    Ok((usd * 1e9).round() as i64)
}

/// Compiles one constraint of a permission of `agent`.
pub(crate) fn compile_constraint(c: &Constraint, agent: &str, path: &str) -> Result<Check> {
    Ok(match c {
        Constraint::TenantScope { fields } => {
            for (i, f) in fields.iter().enumerate() {
                if !f.starts_with('/') {
                    return Err(Error::InvalidConfig(format!(
                        "{path}.fields[{i}]: `{f}` is not a JSON pointer"
                    )));
                }
            }
            Check::TenantScope(fields.clone())
        }
        Constraint::Budget {
            period,
            limit_usd,
            cost,
            scope,
        } => {
            let cost = match cost {
                CostSource::FixedUsd(v) => Cost::Fixed(usd_to_nanos(*v, &format!("{path}.cost"))?),
                CostSource::Argument(p) => Cost::Argument(p.clone(), Pointer::new(p)),
            };
            Check::Budget {
                period: *period,
                limit_nanos: usd_to_nanos(*limit_usd, &format!("{path}.limit_usd"))?,
                cost,
                prefix: PolicyEngine::owner_prefix("budget", *scope, agent).into(),
            }
        }
        Constraint::RateLimit { max, per, scope } => Check::RateLimit {
            max: i64::from(*max),
            per: *per,
            prefix: PolicyEngine::owner_prefix("rate", *scope, agent).into(),
        },
        Constraint::TimeWindow {
            days,
            start,
            end,
            timezone,
        } => Check::TimeWindow {
            days: days
                .iter()
                .enumerate()
                .map(|(i, d)| parse_day(d, &format!("{path}.days[{i}]")))
                .collect::<Result<_>>()?,
            start: parse_time(start, &format!("{path}.start"))?,
            end: parse_time(end, &format!("{path}.end"))?,
            tz: timezone
                .as_deref()
                .map(|t| parse_tz(t, &format!("{path}.timezone")))
                .transpose()?,
        },
        Constraint::Argument(cond) => {
            let cond = compile_condition(cond, path)?;
            let pointer = Pointer::new(&cond.pointer);
            Check::Argument(cond, pointer)
        }
        Constraint::MaxCallsPerTurn { max } => Check::MaxCallsPerTurn(*max),
        Constraint::RepeatedCalls { max_identical } => Check::RepeatedCalls(*max_identical),
        Constraint::Confidence {
            execute_at,
            approve_at,
            missing,
        } => {
            if !(0.0..=1.0).contains(approve_at)
                || !(0.0..=1.0).contains(execute_at)
                || approve_at > execute_at
            {
                return Err(Error::InvalidConfig(format!(
                    "{path}: need 0 <= approve_at <= execute_at <= 1"
                )));
            }
            Check::Confidence {
                execute_at: *execute_at,
                approve_at: *approve_at,
                missing: *missing,
            }
        }
        Constraint::RequireApproval { reason, priority } => Check::RequireApproval {
            reason: reason.clone(),
            priority: *priority,
        },
    })
}

/// Collects an agent's permissions: its own, then its roles' (inherited roles depth-first),
/// refusing unknown roles and inheritance cycles.
pub(crate) fn collect_permissions<'d>(
    doc: &'d PolicyDocument,
    role: &str,
    path: &str,
    stack: &mut Vec<String>,
    out: &mut Vec<(String, &'d crate::config::Permission, String)>,
) -> Result<()> {
    if stack.iter().any(|r| r == role) {
        return Err(Error::InvalidConfig(format!(
            "{path}: role inheritance cycle {} -> {role}",
            stack.join(" -> ")
        )));
    }
    let def = doc
        .roles
        .get(role)
        .ok_or_else(|| Error::InvalidConfig(format!("{path}: unknown role `{role}`")))?;
    stack.push(role.to_string());
    for (i, p) in def.permissions.iter().enumerate() {
        out.push((
            format!("role {role} / permission {}", p.action),
            p,
            format!("roles.{role}.permissions[{i}]"),
        ));
    }
    for (i, parent) in def.inherits.iter().enumerate() {
        collect_permissions(
            doc,
            parent,
            &format!("roles.{role}.inherits[{i}]"),
            stack,
            out,
        )?;
    }
    stack.pop();
    Ok(())
}

pub(crate) fn compile(doc: &PolicyDocument) -> Result<Compiled> {
    let default_tz = doc
        .timezone
        .as_deref()
        .map(|t| parse_tz(t, "timezone"))
        .transpose()?
        .unwrap_or(Tz::UTC);
    let mut tenant_tz = HashMap::default();
    let mut tenant_quotas = HashMap::default();
    let mut tenant_spend = HashMap::default();
    let mut agent_spend = HashMap::default();
    for (tenant, s) in &doc.tenants {
        if let Some(tier) = s.tier {
            let quotas = doc
                .tiers
                .get(&tier)
                .copied()
                .unwrap_or_else(|| tier.quotas());
            tenant_quotas.insert(tenant.clone(), (tier, quotas));
        }
        if let Some(limits) = compile_spend(&s.spend, &format!("tenants.{tenant}"))? {
            tenant_spend.insert(tenant.clone(), limits);
        }
        if let Some(t) = &s.timezone {
            tenant_tz.insert(
                tenant.clone(),
                parse_tz(t, &format!("tenants.{tenant}.timezone"))?,
            );
        }
    }
    // Validate every role (even unused ones) so mistakes are reported at load time.
    for role in doc.roles.keys() {
        collect_permissions(
            doc,
            role,
            &format!("roles.{role}"),
            &mut Vec::new(),
            &mut Vec::new(),
        )?;
    }
    let mut agents = HashMap::default();
    for (agent, grant) in &doc.agents {
        if let Some(limits) = compile_spend(&grant.spend, &format!("agents.{agent}"))? {
            agent_spend.insert(agent.clone(), limits);
        }
        let mut perms = Vec::new();
        for (i, p) in grant.permissions.iter().enumerate() {
            perms.push((
                format!("agent {agent} / permission {}", p.action),
                p,
                format!("agents.{agent}.permissions[{i}]"),
            ));
        }
        for (i, role) in grant.roles.iter().enumerate() {
            collect_permissions(
                doc,
                role,
                &format!("agents.{agent}.roles[{i}]"),
                &mut Vec::new(),
                &mut perms,
            )?;
        }
        let mut index = ActionIndex::default();
        for (source, p, path) in perms {
            validate_pattern(&p.action, &format!("{path}.action"))?;
            let checks = p
                .constraints
                .iter()
                .enumerate()
                .map(|(i, c)| compile_constraint(c, agent, &format!("{path}.constraints[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            index.insert(&p.action, CompiledPermission { source, checks });
        }
        agents.insert(agent.clone(), index);
    }
    let mut rules = ActionIndex::default();
    for (i, r) in doc.rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        validate_pattern(&r.action, &format!("{path}.action"))?;
        let when = r
            .when
            .iter()
            .enumerate()
            .map(|(j, c)| compile_condition(c, &format!("{path}.when[{j}]")))
            .collect::<Result<Vec<_>>>()?;
        rules.insert(
            &r.action,
            CompiledRule {
                source: format!("rule {i} ({})", r.action),
                agents: r.agents.iter().cloned().collect(),
                effect: r.effect,
                reason: r.reason.clone(),
                priority: r.priority,
                when,
                hints: r.hints,
            },
        );
    }
    Ok(Compiled {
        mode: doc.mode,
        default_tz,
        tenant_tz,
        tenant_quotas,
        tenant_spend,
        agent_spend,
        agents,
        rules,
    })
}

pub(crate) fn validate_pattern(p: &str, path: &str) -> Result<()> {
    let body = p.strip_suffix('*').unwrap_or(p);
    if body.contains('*') || (p.is_empty()) {
        return Err(Error::InvalidConfig(format!(
            "{path}: `{p}` is not a valid action pattern (exact, `*`, or a prefix ending in `*`)"
        )));
    }
    Ok(())
}
