//! What a tool declares about itself besides its schema: side effects, timeout, retries, rate
//! limits, redaction and its compensating action.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use agentkit_core::tool::{SideEffect, validate_tool_name};
use agentkit_core::{Error, Result};
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use crate::compensation::Compensation;

/// Tool metadata per the platform spec.
///
/// ```
/// use std::time::Duration;
/// use agentkit_core::tool::SideEffect;
/// use agentkit_tools::{RateLimit, RetryPolicy, ToolMetadata};
///
/// let meta = ToolMetadata::new("crm.lookup_lead", "Looks up a lead by id")
///     .with_timeout(Duration::from_secs(5))
///     .with_retry(RetryPolicy::retries(2))
///     .with_rate_limit("60/min".parse::<RateLimit>()?)
///     .with_redacted(["email"]);
/// assert_eq!(meta.side_effect, SideEffect::Read);
/// assert!(meta.is_idempotent());
/// meta.validate()?;
/// # Ok::<(), agentkit_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolMetadata {
    /// Namespaced name, `namespace.action` (e.g. `crm.create_lead`).
    pub name: String,
    /// What the tool does, written for the model.
    pub description: String,
    /// Side-effect class (default: read).
    #[serde(default)]
    pub side_effect: SideEffect,
    /// Whether running the tool twice with the same arguments has the effect of running it once.
    /// Read tools are idempotent whatever this says; see [`ToolMetadata::is_idempotent`].
    #[serde(default)]
    pub idempotent: bool,
    /// Time limit of one attempt (none: no limit).
    #[serde(
        default,
        rename = "timeout_ms",
        with = "millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Retries of failed attempts with retryable errors. Only idempotent tools may declare one
    /// ([`ToolMetadata::validate`] refuses it otherwise): retrying a tool that is not idempotent
    /// could repeat its effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Calls allowed per tenant (each tenant has its own budget for this tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Fields masked in logs, traces, audit entries and execution records: top-level names
    /// (masked at any depth) or JSON pointers such as `/card/number`. Applies to arguments and
    /// output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// The action that undoes this one, run by [`crate::rollback`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<Compensation>,
}

impl ToolMetadata {
    /// Metadata for a read-only tool with no timeout, retry, rate limit or redaction.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            side_effect: SideEffect::Read,
            idempotent: false,
            timeout: None,
            retry: None,
            rate_limit: None,
            redact: Vec::new(),
            compensation: None,
        }
    }

    /// Sets the side-effect class.
    pub fn with_side_effect(mut self, side_effect: SideEffect) -> Self {
        self.side_effect = side_effect;
        self
    }

    /// Declares the tool idempotent (safe to retry with the same arguments).
    pub fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sets the time limit of one attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the retry policy (idempotent tools only).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the per-tenant rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Adds fields to redact.
    pub fn with_redacted(mut self, fields: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Sets the compensating action.
    pub fn with_compensation(mut self, compensation: Compensation) -> Self {
        self.compensation = Some(compensation);
        self
    }

    /// Whether the tool may be retried: declared idempotent, or read-only.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent || self.side_effect == SideEffect::Read
    }

    /// The namespace: the name up to its last dot (`crm` for `crm.create_lead`).
    pub fn namespace(&self) -> &str {
        namespace_of(&self.name)
    }

    /// Checks the metadata is usable; the error says what to fix.
    pub fn validate(&self) -> Result<()> {
        validate_namespaced_name(&self.name)?;
        let name = &self.name;
        if self.description.trim().is_empty() {
            return Err(Error::InvalidConfig(format!(
                "tool `{name}`: the description is empty; the model needs one to choose the tool"
            )));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidConfig(format!(
                "tool `{name}`: the timeout must be longer than zero"
            )));
        }
        if self.retry.is_some() && !self.is_idempotent() {
            return Err(Error::InvalidConfig(format!(
                "tool `{name}`: a retry policy needs an idempotent tool (declare it idempotent, or \
                 remove the retry policy: retrying a {} tool could repeat its effect)",
                side_effect_label(self.side_effect)
            )));
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate().map_err(|e| {
                Error::InvalidConfig(format!("tool `{name}`: rate limit `{limit}`: {e}"))
            })?;
        }
        if let Some(rule) = self.redact.iter().find(|r| r.trim().is_empty()) {
            return Err(Error::InvalidConfig(format!(
                "tool `{name}`: redaction rule `{rule}` is empty"
            )));
        }
        if let Some(c) = &self.compensation {
            c.validate(name)?;
        }
        Ok(())
    }
}

pub(crate) fn side_effect_label(s: SideEffect) -> &'static str {
    match s {
        SideEffect::Read => "read",
        SideEffect::Write => "write",
        SideEffect::External => "external",
    }
}

/// The namespace of a tool name: everything before its last dot (empty without a dot).
pub(crate) fn namespace_of(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(ns, _)| ns)
}

/// A valid core tool name with at least one namespace segment (`crm.create_lead`).
/// The one tool-name rule ([`validate_tool_name`]): namespaces are recommended (they group tools
/// for allow-lists such as `crm.*`) but bare names like `get_weather` are accepted.
pub(crate) fn validate_namespaced_name(name: &str) -> Result<()> {
    validate_tool_name(name)
}

/// Retries of a failed attempt, for idempotent tools: exponential backoff (backon) between
/// `min_delay` and `max_delay`, with jitter; only errors that are retryable
/// ([`Error::is_retryable`]) are retried, and a `retry_after` the error carries is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// First delay.
    #[serde(rename = "min_delay_ms", with = "millis_required")]
    pub min_delay: Duration,
    /// Largest delay.
    #[serde(rename = "max_delay_ms", with = "millis_required")]
    pub max_delay: Duration,
    /// Randomize delays (avoids synchronized retries).
    #[serde(default = "default_true")]
    pub jitter: bool,
}

fn default_true() -> bool {
    true
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// `max_retries` retries with the default delays (200 ms doubling up to 5 s, jittered).
    pub fn retries(max_retries: u32) -> Self {
        Self {
            max_retries,
            ..Self::default()
        }
    }

    /// Sets the delay bounds.
    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Turns jitter off (deterministic delays, for tests).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The delays between attempts.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut b = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize);
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

/// A rate limit: `calls` per `period`, as a token bucket holding `calls` tokens (so up to
/// `calls` at once, then one every `period / calls`). Written `"10/s"`, `"60/min"`, `"1000/h"`,
/// `"5000/day"` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls per period.
    pub calls: u32,
    /// The period.
    pub period: Duration,
}

impl RateLimit {
    /// `calls` per `period`.
    pub fn new(calls: u32, period: Duration) -> Self {
        Self { calls, period }
    }

    /// `calls` per second.
    pub fn per_second(calls: u32) -> Self {
        Self::new(calls, Duration::from_secs(1))
    }

    /// `calls` per minute.
    pub fn per_minute(calls: u32) -> Self {
        Self::new(calls, Duration::from_secs(60))
    }

    /// `calls` per hour.
    pub fn per_hour(calls: u32) -> Self {
        Self::new(calls, Duration::from_secs(3600))
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.calls == 0 {
            return Err("allow at least one call".into());
        }
        if self.period.is_zero() || (self.period / self.calls).is_zero() {
            return Err("the period is too short".into());
        }
        Ok(())
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let unit = match (secs, self.period.subsec_nanos()) {
            (1, 0) => "s".to_string(),
            (60, 0) => "min".to_string(),
            (3600, 0) => "h".to_string(),
            (86400, 0) => "day".to_string(),
            _ => format!("{}ms", self.period.as_millis()),
        };
        write!(f, "{}/{unit}", self.calls)
    }
}

impl FromStr for RateLimit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidConfig(format!(
                "rate limit `{s}`: write calls per period, like `10/s`, `60/min`, `1000/h` or `5000/day`"
            ))
        };
        let (calls, unit) = s.split_once('/').ok_or_else(bad)?;
        let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            other => match other.strip_suffix("ms").map(str::parse::<u64>) {
                Some(Ok(ms)) => Duration::from_millis(ms),
                _ => return Err(bad()),
            },
        };
        let limit = RateLimit::new(calls, period);
        limit
            .validate()
            .map_err(|e| Error::InvalidConfig(format!("rate limit `{s}`: {e}")))?;
        Ok(limit)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

mod millis_required {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rate_limits_parse_and_print() {
        for (text, calls, secs) in [("10/s", 10, 1), ("60/min", 60, 60), ("5/h", 5, 3600)] {
            let l: RateLimit = text.parse().unwrap();
            assert_eq!((l.calls, l.period), (calls, Duration::from_secs(secs)));
            assert_eq!(l.to_string(), text);
        }
        assert_eq!(
            "3/250ms".parse::<RateLimit>().unwrap().period,
            Duration::from_millis(250)
        );
        for bad in ["10", "x/s", "0/s", "10/fortnight", "10/0ms"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_needs_an_idempotent_tool() {
        let write = ToolMetadata::new("crm.create_lead", "Creates a lead")
            .with_side_effect(SideEffect::Write)
            .with_retry(RetryPolicy::retries(2));
        let err = write.validate().unwrap_err().to_string();
        assert!(err.contains("needs an idempotent tool"), "{err}");
        assert!(write.with_idempotent(true).validate().is_ok());
        // One name rule for every tool: bare names are accepted, malformed ones are not.
        assert!(ToolMetadata::new("get_weather", "x").validate().is_ok());
        assert!(ToolMetadata::new("crm..x", "x").validate().is_err());
    }

    #[test]
    fn metadata_round_trips_through_serde() {
        let meta = ToolMetadata::new("crm.lookup", "Looks up")
            .with_timeout(Duration::from_millis(1500))
            .with_rate_limit(RateLimit::per_minute(30))
            .with_retry(RetryPolicy::retries(1));
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(json["timeout_ms"], 1500);
        assert_eq!(json["rate_limit"], "30/min");
        let back: ToolMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta);
    }
}
