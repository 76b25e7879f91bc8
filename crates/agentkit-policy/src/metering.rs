//! Usage pricing, spend accounting and invoice drafts.
//!
//! Prices are versioned: a [`PriceBook`] holds [`PriceTable`]s, each effective from a time, and an
//! event is priced with the table in force when it happened. Invoices are recomputed from the
//! append-only usage events (never from stored totals), so the same events always give the same
//! [`InvoiceDraft`].

use std::collections::BTreeMap;
use std::sync::Arc;

use agentkit_core::error::{Error, Result};
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::redact::hash_json;
use agentkit_core::store::{
    Admission, UsageEvent, UsageKind, UsageMeter, UsageQuery, UsageStore, Usd,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::PolicyEngine;

/// Prices of one model, in USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Prompt tokens.
    pub input_per_mtok: f64,
    /// Completion tokens.
    pub output_per_mtok: f64,
    /// Cached prompt tokens (default: the input price).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
}

/// One version of the prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Version label recorded on priced events (`2026-11`).
    pub version: String,
    /// In force from this time (until the next table).
    pub effective_from: DateTime<Utc>,
    /// Per model.
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
    /// Default price of one tool call.
    #[serde(default)]
    pub tool_call_usd: f64,
    /// Per-tool overrides.
    #[serde(default)]
    pub tools: BTreeMap<String, f64>,
    /// One knowledge-base query.
    #[serde(default)]
    pub knowledge_query_usd: f64,
    /// One minute of audio.
    #[serde(default)]
    pub audio_per_minute_usd: f64,
}

fn nanos(usd: f64) -> i128 {
    (usd * 1e9).round() as i128
}

/// The highest price a table accepts for one unit (a million tokens, a call, a query, a
/// minute): $1M. Prices are validated when a [`PriceBook`] is built.
pub const MAX_UNIT_PRICE_USD: f64 = 1e6;

/// `quantity × price / per`, rounded half up, in nano-USD; saturating (a provider may report
/// any token count).
fn scaled(quantity: u64, price_nanos: i128, per: i128) -> i64 {
    let v = i128::from(quantity)
        .checked_mul(price_nanos)
        .and_then(|x| x.checked_mul(2))
        .and_then(|x| x.checked_add(per))
        .map_or(i128::MAX, |x| x / (2 * per));
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn check_price(value: f64, path: String) -> Result<()> {
    if value.is_finite() && (0.0..=MAX_UNIT_PRICE_USD).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{path}: `{value}` is not a valid price (a finite USD amount from 0 to {MAX_UNIT_PRICE_USD})"
        )))
    }
}

impl PriceTable {
    /// Every price is finite, not negative and at most [`MAX_UNIT_PRICE_USD`]; the error names
    /// the bad value's path (`prices[2026-11].models.gpt-x.input_per_mtok`).
    pub fn validate(&self) -> Result<()> {
        let at = |field: &str| format!("prices[{}].{field}", self.version);
        for (name, m) in &self.models {
            check_price(
                m.input_per_mtok,
                at(&format!("models.{name}.input_per_mtok")),
            )?;
            check_price(
                m.output_per_mtok,
                at(&format!("models.{name}.output_per_mtok")),
            )?;
            if let Some(c) = m.cached_input_per_mtok {
                check_price(c, at(&format!("models.{name}.cached_input_per_mtok")))?;
            }
        }
        check_price(self.tool_call_usd, at("tool_call_usd"))?;
        for (name, price) in &self.tools {
            check_price(*price, at(&format!("tools.{name}")))?;
        }
        check_price(self.knowledge_query_usd, at("knowledge_query_usd"))?;
        check_price(self.audio_per_minute_usd, at("audio_per_minute_usd"))
    }

    /// The cost of one event under this table.
    pub fn price(&self, event: &UsageEvent) -> Result<Usd> {
        let resource = event.resource.as_deref().unwrap_or("");
        let model = || {
            self.models.get(resource).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "price table {}: no price for model `{resource}`",
                    self.version
                ))
            })
        };
        let q = event.quantity;
        let cost = match event.kind {
            UsageKind::InputTokens => scaled(q, nanos(model()?.input_per_mtok), 1_000_000),
            UsageKind::OutputTokens => scaled(q, nanos(model()?.output_per_mtok), 1_000_000),
            UsageKind::CachedInputTokens => {
                let m = model()?;
                scaled(
                    q,
                    nanos(m.cached_input_per_mtok.unwrap_or(m.input_per_mtok)),
                    1_000_000,
                )
            }
            UsageKind::ToolCall => scaled(
                q,
                nanos(*self.tools.get(resource).unwrap_or(&self.tool_call_usd)),
                1,
            ),
            UsageKind::KnowledgeQuery => scaled(q, nanos(self.knowledge_query_usd), 1),
            UsageKind::AudioMillis => scaled(q, nanos(self.audio_per_minute_usd), 60_000),
        };
        Ok(Usd::from_nanos(cost))
    }
}

/// Every price version, ordered by when it took effect. Deserializing validates like
/// [`PriceBook::new`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PriceBookData")]
pub struct PriceBook {
    tables: Vec<PriceTable>,
}

#[derive(Deserialize)]
struct PriceBookData {
    tables: Vec<PriceTable>,
}

impl TryFrom<PriceBookData> for PriceBook {
    type Error = Error;

    fn try_from(data: PriceBookData) -> Result<Self> {
        PriceBook::new(data.tables)
    }
}

impl PriceBook {
    /// A book from tables (any order; two tables may not take effect at the same time).
    pub fn new(mut tables: Vec<PriceTable>) -> Result<Self> {
        for t in &tables {
            t.validate()?;
        }
        tables.sort_by_key(|t| t.effective_from);
        if let Some(w) = tables
            .windows(2)
            .find(|w| w[0].effective_from == w[1].effective_from)
        {
            return Err(Error::InvalidConfig(format!(
                "price tables {} and {} take effect at the same time",
                w[0].version, w[1].version
            )));
        }
        Ok(Self { tables })
    }

    /// The table in force at `at`.
    pub fn table_at(&self, at: DateTime<Utc>) -> Option<&PriceTable> {
        self.tables.iter().rev().find(|t| t.effective_from <= at)
    }

    /// The cost of an event with the table in force when it happened, and that table's version.
    pub fn price(&self, event: &UsageEvent) -> Result<(Usd, String)> {
        let table = self.table_at(event.at).ok_or_else(|| {
            Error::InvalidConfig(format!("no price table in force at {}", event.at))
        })?;
        Ok((table.price(event)?, table.version.clone()))
    }
}

/// Prices usage before it is recorded and adds the spend to the budget counters the policy
/// engine reserves on, so budgets cover model tokens as well as tool actions. Give it to agents
/// with `AgentBuilder::meter`.
#[derive(Clone)]
pub struct Meter {
    book: Arc<PriceBook>,
    engine: PolicyEngine,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// A meter pricing with `book` and accounting into `engine`'s counters (and timezones).
    pub fn new(book: Arc<PriceBook>, engine: PolicyEngine) -> Self {
        Self { book, engine }
    }
}

type Amounts = BTreeMap<(TenantId, String), i64>;

impl Meter {
    /// Prices the events (setting `cost` and `price_version`) and sums what they count toward:
    /// nano-USD per budget key, tokens per monthly quota key. Saturating: a provider reporting
    /// absurd token counts cannot wrap a counter. The first pricing error is returned beside.
    fn amounts(&self, events: &mut [UsageEvent]) -> (Amounts, Option<Error>) {
        let mut amounts = Amounts::new();
        let mut first_error = None;
        for e in events.iter_mut() {
            match self.book.price(e) {
                Ok((cost, version)) => {
                    e.cost = Some(cost);
                    e.price_version = Some(version);
                    for key in self.engine.budget_keys(&e.tenant, e.agent.as_str(), e.at) {
                        let slot = amounts.entry((e.tenant.clone(), key)).or_default();
                        *slot = slot.saturating_add(cost.nanos());
                    }
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
            if matches!(
                e.kind,
                UsageKind::InputTokens | UsageKind::OutputTokens | UsageKind::CachedInputTokens
            ) {
                let local = e.at.with_timezone(&self.engine.timezone(&e.tenant));
                let slot = amounts
                    .entry((e.tenant.clone(), PolicyEngine::token_quota_key(&local)))
                    .or_default();
                *slot = slot.saturating_add(i64::try_from(e.quantity).unwrap_or(i64::MAX));
            }
        }
        (amounts, first_error)
    }

    async fn add_all(&self, amounts: Amounts) -> Result<()> {
        let counters = self.engine.counters();
        for ((tenant, key), amount) in amounts {
            if amount != 0 {
                counters.counter_add(&tenant, &key, amount, None).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl UsageMeter for Meter {
    async fn meter(&self, events: &mut [UsageEvent]) -> Result<()> {
        let (amounts, first_error) = self.amounts(events);
        self.add_all(amounts).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reserves the estimate on every limited counter (spend limits of the agent and tenant,
    /// the tenant's token quota), each with its limit in one atomic step; the first refusal
    /// releases what was reserved and names the exhausted limit.
    async fn admit(&self, estimate: &[UsageEvent]) -> Result<Admission> {
        let mut events = estimate.to_vec();
        let (amounts, _unpriced) = self.amounts(&mut events);
        let mut limits: Vec<(TenantId, String, i64, String)> = Vec::new();
        for e in &events {
            for (key, limit, what) in self.engine.limited_keys(&e.tenant, e.agent.as_str(), e.at) {
                if !limits.iter().any(|l| l.0 == e.tenant && l.1 == key) {
                    limits.push((e.tenant.clone(), key, limit, what));
                }
            }
            if let Some((key, limit, what)) = self.engine.token_quota(&e.tenant, e.at)
                && !limits.iter().any(|l| l.0 == e.tenant && l.1 == key)
            {
                limits.push((e.tenant.clone(), key, limit, what));
            }
        }
        let counters = self.engine.counters();
        let mut reserved: Vec<(TenantId, String, i64)> = Vec::new();
        for (tenant, key, limit, what) in limits {
            // At least one unit, so an exhausted limit refuses even a free estimate.
            let amount = amounts
                .get(&(tenant.clone(), key.clone()))
                .copied()
                .unwrap_or(0)
                .max(1);
            let outcome = counters
                .counter_add(&tenant, &key, amount, Some(limit))
                .await;
            match outcome {
                Ok(o) if o.applied => reserved.push((tenant, key, amount)),
                other => {
                    for (t, k, a) in &reserved {
                        if let Err(e) = counters.counter_add(t, k, -a, None).await {
                            tracing::warn!(error = %e, key = %k, "could not release a reservation");
                        }
                    }
                    other?;
                    return Err(Error::LimitExceeded {
                        limit: if key.starts_with("quota:") {
                            "token_quota"
                        } else {
                            "spend_limit"
                        },
                        detail: format!("{what} is exhausted; the model was not called"),
                    });
                }
            }
        }
        Ok(Admission::new(reserved))
    }

    /// Adds the actual amounts minus what the admission reserved (a negative difference
    /// releases); the actual cost is recorded even when it exceeds a limit (the call happened).
    async fn settle(&self, admission: Admission, events: &mut [UsageEvent]) -> Result<()> {
        let (mut amounts, first_error) = self.amounts(events);
        for (tenant, key, amount) in admission.reserved {
            let slot = amounts.entry((tenant, key)).or_default();
            *slot = slot.saturating_sub(amount);
        }
        self.add_all(amounts).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Usage summed by agent, kind and resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The agent.
    pub agent: AgentId,
    /// What was used.
    pub kind: UsageKind,
    /// The model or tool.
    pub resource: Option<String>,
    /// The price version.
    pub price_version: String,
    /// Total quantity.
    pub quantity: u64,
    /// Total cost.
    pub amount: Usd,
}

/// A month's invoice draft for one tenant, recomputed from the usage events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDraft {
    /// The tenant.
    pub tenant: TenantId,
    /// `YYYY-MM`.
    pub period: String,
    /// First instant of the period (tenant's timezone).
    pub from: DateTime<Utc>,
    /// First instant after the period.
    pub to: DateTime<Utc>,
    /// Lines, sorted by agent, kind, resource, price version.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the lines.
    pub total: Usd,
    /// Events included.
    pub events: usize,
    /// Events with no price (unknown model, no table): listed here by id, not charged.
    pub unpriced: Vec<String>,
    /// SHA-256 of the lines, total and unpriced ids: equal drafts have equal fingerprints.
    pub fingerprint: String,
}

/// Invoice line grouping: agent, kind, resource, price version.
type LineKey = (AgentId, UsageKind, Option<String>, String);

/// Aggregates events into invoice lines, pricing each with the table in force when it happened.
pub fn aggregate(events: &[UsageEvent], book: &PriceBook) -> (Vec<InvoiceLine>, Vec<String>) {
    let mut lines: BTreeMap<LineKey, (u64, i64)> = BTreeMap::new();
    let mut unpriced = Vec::new();
    for e in events {
        match book.price(e) {
            Ok((cost, version)) => {
                let slot = lines
                    .entry((e.agent.clone(), e.kind, e.resource.clone(), version))
                    .or_default();
                slot.0 += e.quantity;
                slot.1 = slot.1.saturating_add(cost.nanos());
            }
            Err(_) => unpriced.push(e.id.to_string()),
        }
    }
    unpriced.sort();
    let lines = lines
        .into_iter()
        .map(
            |((agent, kind, resource, price_version), (quantity, amount))| InvoiceLine {
                agent,
                kind,
                resource,
                price_version,
                quantity,
                amount: Usd::from_nanos(amount),
            },
        )
        .collect();
    (lines, unpriced)
}

/// The invoice draft of `tenant` for a calendar month in timezone `tz`, recomputed from the
/// usage ledger.
pub async fn invoice_draft(
    usage: &dyn UsageStore,
    tenant: &TenantId,
    year: i32,
    month: u32,
    tz: Tz,
    book: &PriceBook,
) -> Result<InvoiceDraft> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| Error::InvalidInput(format!("{year}-{month:02} is not a month")))?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .ok_or_else(|| Error::InvalidInput("month out of range".into()))?;
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Error::InvalidInput(format!("no midnight on {d} in {tz}")))
    };
    let (from, to) = (start(first)?, start(next)?);
    let events = usage
        .list_usage(tenant, &UsageQuery::all().between(from, to))
        .await?;
    let (lines, unpriced) = aggregate(&events, book);
    let total: Usd = lines.iter().map(|l| l.amount).sum();
    let fingerprint = hash_json(&serde_json::json!({
        "tenant": tenant, "period": format!("{year}-{month:02}"), "lines": lines, "total": total, "unpriced": unpriced,
    }));
    Ok(InvoiceDraft {
        tenant: tenant.clone(),
        period: format!("{year}-{month:02}"),
        from,
        to,
        lines,
        total,
        events: events.len(),
        unpriced,
        fingerprint,
    })
}
