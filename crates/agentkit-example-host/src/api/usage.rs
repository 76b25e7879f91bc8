//! Usage and invoice drafts per tenant, priced with the host's price book.

use std::collections::BTreeMap;

use agentkit::id::{RunId, TenantId};
use agentkit::policy_engine::metering::{aggregate, invoice_draft};
use agentkit::store::UsageQuery;
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};

/// A period (`from` inclusive, `to` exclusive; RFC 3339). Default: everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Period {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl Period {
    fn query(&self) -> ApiResult<UsageQuery> {
        match (self.from, self.to) {
            (None, None) => Ok(UsageQuery::all()),
            (Some(from), Some(to)) if from < to => Ok(UsageQuery::all().between(from, to)),
            (Some(_), Some(_)) => Err(Problem::bad_request("`from` must be before `to`")),
            _ => Err(Problem::bad_request(
                "give both `from` and `to`, or neither",
            )),
        }
    }
}

pub(super) async fn usage(
    State(app): State<App>,
    caller: Caller,
    Query(period): Query<Period>,
) -> ApiResult<Json<Value>> {
    let query = period.query()?;
    let events = app
        .inner
        .store
        .list_usage(&caller.tenant, &query)
        .await
        .map_err(Problem::from)?;
    let (lines, unpriced) = aggregate(&events, &app.inner.prices);
    Ok(Json(json!({
        "tenant": caller.tenant, "events": events.len(), "lines": lines, "unpriced": unpriced,
    })))
}

/// Which events: a period and, optionally, one run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventFilter {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    run: Option<String>,
}

/// The usage events themselves (append-only; what invoices are recomputed from): per model
/// call its input and output tokens, per tool call one event, per knowledge query one event.
pub(super) async fn events(
    State(app): State<App>,
    caller: Caller,
    Query(filter): Query<EventFilter>,
) -> ApiResult<Json<Value>> {
    let mut query = Period {
        from: filter.from,
        to: filter.to,
    }
    .query()?;
    if let Some(run) = filter.run {
        let run = RunId::new(&run).map_err(|e| Problem::bad_request(e.to_string()))?;
        query = query.run(run);
    }
    let events = app
        .inner
        .store
        .list_usage(&caller.tenant, &query)
        .await
        .map_err(Problem::from)?;
    Ok(Json(json!(events)))
}

/// The price book in force (the same for every tenant).
pub(super) async fn prices(State(app): State<App>, _caller: Caller) -> Json<Value> {
    Json(json!(app.inner.prices))
}

pub(super) async fn invoice(
    State(app): State<App>,
    caller: Caller,
    Path(period): Path<String>,
) -> ApiResult<Json<Value>> {
    let (year, month) = period
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .ok_or_else(|| Problem::bad_request("the period is `YYYY-MM`"))?;
    let draft = invoice_draft(
        &*app.inner.store,
        &caller.tenant,
        year,
        month,
        chrono_tz::UTC,
        &app.inner.prices,
    )
    .await
    .map_err(Problem::from)?;
    Ok(Json(json!(draft)))
}

/// Spend in USD and tool calls per agent over all recorded usage (the reviewer page's
/// budget panel).
pub(crate) async fn spend_by_agent(
    app: &App,
    tenant: &TenantId,
) -> agentkit::Result<BTreeMap<String, (f64, u64)>> {
    let events = app
        .inner
        .store
        .list_usage(tenant, &UsageQuery::all())
        .await?;
    let (lines, _) = aggregate(&events, &app.inner.prices);
    let mut by_agent: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for line in lines {
        let slot = by_agent.entry(line.agent.as_str().to_string()).or_default();
        slot.0 += line.amount.as_f64();
        if line.kind == agentkit::store::UsageKind::ToolCall {
            slot.1 += line.quantity;
        }
    }
    Ok(by_agent)
}
