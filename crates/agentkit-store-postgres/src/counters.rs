//! [`CounterStore`]: atomic counters with an optional limit.
//!
//! One conditional UPSERT does the check and the add:
//! `INSERT ... ON CONFLICT DO UPDATE SET value = counters.value + $delta WHERE <fits>
//! RETURNING value`. The limit is checked as `value <= limit - delta` (computed in Rust with
//! overflow checks), so the check itself cannot overflow. When the add is refused no row comes
//! back, but the conflicting row is still locked by the statement, so the value read next in
//! the same transaction is the one the refusal was based on.

use agentkit_core::Result;
use agentkit_core::id::TenantId;
use agentkit_core::store::{CounterOutcome, CounterStore};
use async_trait::async_trait;
use sqlx::PgConnection;

use crate::error::query_error;
use crate::{PostgresStore, commit};

async fn current(
    conn: &mut PgConnection,
    op: &'static str,
    tenant: &TenantId,
    key: &str,
) -> Result<i64> {
    let value: Option<i64> =
        sqlx::query_scalar("SELECT value FROM counters WHERE tenant = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .fetch_optional(conn)
            .await
            .map_err(|e| query_error(op, e))?;
    Ok(value.unwrap_or(0))
}

#[async_trait]
impl CounterStore for PostgresStore {
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome> {
        const OP: &str = "counter_add";
        // The highest value the add may start from; `None` when any value may take it.
        let (bound, impossible) = match limit {
            Some(limit) if delta > 0 => match limit.checked_sub(delta) {
                Some(bound) => (Some(bound), false),
                // `limit - delta` is below i64::MIN: no value can take this add.
                None => (None, true),
            },
            _ => (None, false),
        };
        let mut tx = self.begin(OP, tenant).await?;
        let added: Option<i64> = if impossible {
            None
        } else if bound.is_some_and(|b| b < 0) {
            // A missing counter (0) may not take the add, so never insert: add to an existing
            // counter whose value is low enough (a negative one), or refuse.
            sqlx::query_scalar(
                "UPDATE counters SET value = value + $3, updated_at = now() \
                 WHERE tenant = $1 AND key = $2 AND value <= $4 RETURNING value",
            )
            .bind(tenant.as_str())
            .bind(key)
            .bind(delta)
            .bind(bound)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?
        } else {
            sqlx::query_scalar(
                "INSERT INTO counters (tenant, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, key) DO UPDATE \
                 SET value = counters.value + EXCLUDED.value, updated_at = now() \
                 WHERE $4::bigint IS NULL OR counters.value <= $4 \
                 RETURNING value",
            )
            .bind(tenant.as_str())
            .bind(key)
            .bind(delta)
            .bind(bound)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?
        };
        let outcome = match added {
            Some(value) => CounterOutcome {
                applied: true,
                value,
            },
            None => CounterOutcome {
                applied: false,
                value: current(&mut tx, OP, tenant, key).await?,
            },
        };
        commit(tx, OP).await?;
        Ok(outcome)
    }

    async fn counter_get(&self, tenant: &TenantId, key: &str) -> Result<i64> {
        const OP: &str = "counter_get";
        let mut tx = self.begin(OP, tenant).await?;
        let value = current(&mut tx, OP, tenant, key).await?;
        commit(tx, OP).await?;
        Ok(value)
    }
}
