//! [`UsageStore`]: append-only usage events.
//!
//! A batch is inserted in one `BEGIN IMMEDIATE` transaction, whole or not at all; triggers
//! refuse any update, delete or replace. Queries filter in SQL and read in time order.

use agentkit_core::id::{AgentId, RunId, SessionId, TenantId, UsageEventId};
use agentkit_core::store::{UsageEvent, UsageQuery, UsageStore, Usd, ensure_tenant};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::codec::{from_micros, int, micros, parse_enum, uint};
use crate::error::{db_err, is_duplicate};
use crate::sql::{col, immediate, text};

#[async_trait]
impl UsageStore for SqliteStore {
    async fn append_usage(&self, tenant: &TenantId, events: &[UsageEvent]) -> Result<()> {
        for e in events {
            ensure_tenant(tenant, &e.tenant, "a usage event")?;
        }
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.db().write(move |c| append_usage(c, &events)).await
    }

    async fn list_usage(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.db()
            .read(move |c| list_usage(c, &tenant, &query))
            .await
    }
}

// The SQL, on one connection.

fn append_usage(conn: &mut Connection, events: &[UsageEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let tx = immediate(conn)?;
    append_usage_in(&tx, events)?;
    tx.commit().map_err(db_err)
}

/// Inserts the events inside the caller's IMMEDIATE transaction (a duplicate id fails it).
pub(crate) fn append_usage_in(tx: &Connection, events: &[UsageEvent]) -> Result<()> {
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO usage_events (tenant, id, agent, session, run, kind, resource, \
                 quantity, cost_nanos, price_version, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(db_err)?;
        for e in events {
            let UsageEvent {
                id,
                tenant,
                agent,
                session,
                run,
                kind,
                resource,
                quantity,
                cost,
                price_version,
                at,
            } = e;
            insert
                .execute(params![
                    tenant.as_str(),
                    id.as_str(),
                    agent.as_str(),
                    session.as_ref().map(SessionId::as_str),
                    run.as_ref().map(RunId::as_str),
                    kind.as_str(),
                    resource.as_deref(),
                    int(*quantity, "usage quantity")?,
                    cost.map(Usd::nanos),
                    price_version.as_deref(),
                    micros(*at)
                ])
                .map_err(|err| {
                    // A duplicate trips the no-replace trigger (or the primary key). Nothing of
                    // the batch is written: the transaction rolls back on drop.
                    if is_duplicate(&err)
                        || crate::error::constraint(&err)
                            == Some(rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER)
                    {
                        Error::Conflict(format!("usage event {id} already exists"))
                    } else {
                        db_err(err)
                    }
                })?;
        }
    }
    Ok(())
}

fn list_usage(conn: &Connection, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>> {
    let mut sql = String::from(
        "SELECT id, agent, session, run, kind, resource, quantity, cost_nanos, price_version, at \
         FROM usage_events WHERE tenant = ?1",
    );
    let mut args: Vec<SqlValue> = vec![SqlValue::Text(tenant.as_str().to_owned())];
    let mut filter = |clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(from) = query.from {
        filter("at >=", SqlValue::Integer(micros(from)));
    }
    if let Some(to) = query.to {
        filter("at <", SqlValue::Integer(micros(to)));
    }
    if let Some(agent) = &query.agent {
        filter("agent =", SqlValue::Text(agent.as_str().to_owned()));
    }
    if let Some(kind) = query.kind {
        filter("kind =", SqlValue::Text(kind.as_str().to_owned()));
    }
    if let Some(run) = &query.run {
        filter("run =", SqlValue::Text(run.as_str().to_owned()));
    }
    // Time order; events with the same time in insertion order.
    sql.push_str(" ORDER BY at, rowid");
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let opt = |idx| -> Result<Option<&str>> {
            row.get_ref(idx)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(db_err)
        };
        let event = UsageEvent {
            id: UsageEventId::new(text(row, 0)?)?,
            tenant: tenant.clone(),
            agent: AgentId::new(text(row, 1)?)?,
            session: opt(2)?.map(SessionId::new).transpose()?,
            run: opt(3)?.map(RunId::new).transpose()?,
            kind: parse_enum(text(row, 4)?, "usage kind")?,
            resource: opt(5)?.map(str::to_owned),
            quantity: uint(col(row, 6)?, "usage quantity")?,
            cost: col::<Option<i64>>(row, 7)?.map(Usd::from_nanos),
            price_version: opt(8)?.map(str::to_owned),
            at: from_micros(col(row, 9)?)?,
        };
        // The SQL applied every filter the query had when this was written; a filter added to
        // `UsageQuery` later still applies here.
        if query.matches(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::sql::testing::{db, plan};

    #[test]
    fn usage_reads_in_time_order_without_sorting() {
        let usage = plan(
            &db(),
            "SELECT id FROM usage_events WHERE tenant = ?1 ORDER BY at, rowid",
        );
        assert!(!usage.contains("TEMP B-TREE"), "{usage}");
    }
}
