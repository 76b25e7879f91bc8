//! [`CounterStore`]: per-tenant counters with an atomic conditional add (budgets, quotas).

use agentkit_core::id::TenantId;
use agentkit_core::store::{CounterOutcome, CounterStore};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::db_err;
use crate::sql::immediate;

#[async_trait]
impl CounterStore for SqliteStore {
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.db()
            .write(move |c| counter_add(c, &tenant, &key, delta, limit))
            .await
    }

    async fn counter_get(&self, tenant: &TenantId, key: &str) -> Result<i64> {
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.db().read(move |c| counter_get(c, &tenant, &key)).await
    }
}

// The SQL, on one connection.

/// Read, check and write in one IMMEDIATE transaction (the arithmetic is checked in Rust:
/// SQLite would turn an overflowing integer into a float).
fn counter_add(
    conn: &mut Connection,
    tenant: &TenantId,
    key: &str,
    delta: i64,
    limit: Option<i64>,
) -> Result<CounterOutcome> {
    let tx = immediate(conn)?;
    let current: i64 = tx
        .prepare_cached("SELECT value FROM counters WHERE tenant = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), key], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?
        .unwrap_or(0);
    let refused = CounterOutcome {
        applied: false,
        value: current,
    };
    let Some(next) = current.checked_add(delta) else {
        if delta > 0 && limit.is_some() {
            // Past i64::MAX is certainly past the limit.
            return Ok(refused);
        }
        return Err(Error::InvalidInput(format!(
            "counter {key}: {current} + {delta} overflows"
        )));
    };
    if delta > 0
        && let Some(limit) = limit
        && next > limit
    {
        return Ok(refused);
    }
    tx.prepare_cached(
        "INSERT INTO counters (tenant, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut st| st.execute(params![tenant.as_str(), key, next]))
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(CounterOutcome {
        applied: true,
        value: next,
    })
}

fn counter_get(conn: &Connection, tenant: &TenantId, key: &str) -> Result<i64> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM counters WHERE tenant = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), key], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    Ok(value.unwrap_or(0))
}
