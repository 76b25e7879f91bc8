//! [`UsageStore`]: the append-only usage ledger.
//!
//! A batch (all of one tenant: the store refuses others) is one transaction of one
//! `INSERT ... SELECT FROM unnest(...)` with `ON CONFLICT DO NOTHING`: fewer rows inserted than
//! given means an id was taken (or repeated within the batch), and the transaction is rolled
//! back. There is no statement that
//! updates or deletes usage rows, and the schema refuses them.

use agentkit_core::id::TenantId;
use agentkit_core::store::{UsageEvent, UsageKind, UsageQuery, UsageStore, Usd, ensure_tenant};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::codec::{from_name, micros, micros_bound, name, to_i64, to_u64};
use crate::error::query_error;
use crate::{PostgresStore, commit};

#[derive(sqlx::FromRow)]
struct UsageRow {
    id: String,
    agent: String,
    session_id: Option<String>,
    run_id: Option<String>,
    kind: String,
    resource: Option<String>,
    quantity: i64,
    cost_nanos: Option<i64>,
    price_version: Option<String>,
    at: DateTime<Utc>,
}

impl UsageRow {
    fn into_event(self, tenant: &TenantId) -> Result<UsageEvent> {
        Ok(UsageEvent {
            id: self.id.try_into()?,
            tenant: tenant.clone(),
            agent: self.agent.try_into()?,
            session: self.session_id.map(TryInto::try_into).transpose()?,
            run: self.run_id.map(TryInto::try_into).transpose()?,
            kind: from_name::<UsageKind>(&self.kind, "usage kind")?,
            resource: self.resource,
            quantity: to_u64(self.quantity, "usage quantity")?,
            cost: self.cost_nanos.map(Usd::from_nanos),
            price_version: self.price_version,
            at: self.at,
        })
    }
}

/// One tenant's events of a batch, as column arrays.
#[derive(Default)]
struct Columns {
    ids: Vec<String>,
    agents: Vec<String>,
    sessions: Vec<Option<String>>,
    runs: Vec<Option<String>>,
    kinds: Vec<String>,
    resources: Vec<Option<String>>,
    quantities: Vec<i64>,
    costs: Vec<Option<i64>>,
    price_versions: Vec<Option<String>>,
    ats: Vec<DateTime<Utc>>,
}

impl Columns {
    fn push(&mut self, e: &UsageEvent) -> Result<()> {
        self.ids.push(e.id.to_string());
        self.agents.push(e.agent.to_string());
        self.sessions
            .push(e.session.as_ref().map(ToString::to_string));
        self.runs.push(e.run.as_ref().map(ToString::to_string));
        self.kinds.push(name(&e.kind)?);
        self.resources.push(e.resource.clone());
        self.quantities.push(to_i64(e.quantity, "usage quantity")?);
        self.costs.push(e.cost.map(Usd::nanos));
        self.price_versions.push(e.price_version.clone());
        self.ats.push(micros(e.at));
        Ok(())
    }
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn append_usage(&self, tenant: &TenantId, events: &[UsageEvent]) -> Result<()> {
        const OP: &str = "append_usage";
        for e in events {
            ensure_tenant(tenant, &e.tenant, "a usage event")?;
        }
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin(OP, tenant).await?;
        append_usage_in(&mut tx, OP, tenant, events).await?;
        commit(tx, OP).await
    }

    async fn list_usage(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        const OP: &str = "list_usage";
        let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "SELECT id, agent, session_id, run_id, kind, resource, quantity, cost_nanos, \
             price_version, at FROM usage_events WHERE tenant = ",
        );
        sql.push_bind(tenant.as_str());
        if let Some(from) = query.from {
            sql.push(" AND at >= ").push_bind(micros_bound(from));
        }
        if let Some(to) = query.to {
            sql.push(" AND at < ").push_bind(micros_bound(to));
        }
        if let Some(agent) = &query.agent {
            sql.push(" AND agent = ").push_bind(agent.as_str());
        }
        if let Some(kind) = &query.kind {
            sql.push(" AND kind = ").push_bind(name(kind)?);
        }
        if let Some(run) = &query.run {
            sql.push(" AND run_id = ").push_bind(run.as_str());
        }
        sql.push(" ORDER BY at, pos");
        let mut tx = self.begin(OP, tenant).await?;
        let rows: Vec<UsageRow> = sql
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter().map(|r| r.into_event(tenant)).collect()
    }
}

/// Inserts usage events inside the caller's transaction; an id that exists or repeats fails it
/// ([`Error::Conflict`]; the caller's transaction must then be rolled back).
pub(crate) async fn append_usage_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    tenant: &TenantId,
    events: &[UsageEvent],
) -> Result<()> {
    let mut columns = Columns::default();
    for e in events {
        columns.push(e)?;
    }
    let expected = columns.ids.len() as u64;
    let inserted = sqlx::query(
        "INSERT INTO usage_events (tenant, id, agent, session_id, run_id, kind, \
             resource, quantity, cost_nanos, price_version, at) \
             SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], \
             $11::timestamptz[]) AS u \
             ON CONFLICT (tenant, id) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(columns.ids)
    .bind(columns.agents)
    .bind(columns.sessions)
    .bind(columns.runs)
    .bind(columns.kinds)
    .bind(columns.resources)
    .bind(columns.quantities)
    .bind(columns.costs)
    .bind(columns.price_versions)
    .bind(columns.ats)
    .execute(&mut *tx)
    .await
    .map_err(|e| query_error(op, e))?
    .rows_affected();
    if inserted != expected {
        // Dropping the transaction rolls the whole batch back.
        return Err(Error::Conflict(format!(
            "usage batch: {} of {expected} event ids already exist or repeat",
            expected - inserted
        )));
    }
    Ok(())
}
