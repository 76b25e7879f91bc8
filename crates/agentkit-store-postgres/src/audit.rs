//! [`AuditStore`]: the append-only, hash-chained audit trail.
//!
//! An append takes a transaction-scoped advisory lock on the tenant's chain
//! (`pg_advisory_xact_lock(class, hashtext(tenant))`), reads the head (the highest `seq`, a
//! backward step on the primary key) in a statement that starts after the lock is held (so it
//! sees every earlier append, committed before the lock was released), chains the entry in Rust
//! with [`NewAuditEntry::chain`] and inserts it. Concurrent appends of one tenant therefore queue
//! and form one chain; tenants whose names hash alike merely share a queue. The primary key
//! `(tenant, seq)` would turn any lapse into an error rather than a fork.

use agentkit_core::id::TenantId;
use agentkit_core::store::{
    AUDIT_GENESIS_HASH, AuditEntry, AuditQuery, AuditStore, NewAuditEntry, ensure_tenant,
};
use agentkit_core::{Result, SharedJson};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::codec::{check_tenant, from_json, json, micros, micros_bound, to_i64, to_u64};
use crate::error::{acquire_error, query_error};
use crate::{PostgresStore, commit};

/// The first key of the advisory locks that serialize a tenant's audit appends ("akau").
const AUDIT_LOCK_CLASS: i32 = 0x616b_6175;

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    kind: String,
    actor: String,
    action: String,
    decision: Option<String>,
    reason: Option<String>,
    agent: Option<String>,
    session_id: Option<String>,
    run_id: Option<String>,
    input: String,
    output: String,
    at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn into_entry(self, tenant: &TenantId) -> Result<AuditEntry> {
        Ok(AuditEntry {
            seq: to_u64(self.seq, "audit seq")?,
            entry: NewAuditEntry {
                tenant: tenant.clone(),
                kind: self.kind,
                actor: self.actor,
                action: self.action,
                decision: self.decision,
                reason: self.reason,
                agent: self.agent.map(TryInto::try_into).transpose()?,
                session: self.session_id.map(TryInto::try_into).transpose()?,
                run: self.run_id.map(TryInto::try_into).transpose()?,
                input: from_json::<SharedJson>(&self.input, "audit input")?,
                output: from_json::<SharedJson>(&self.output, "audit output")?,
                at: self.at,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, tenant: &TenantId, entry: NewAuditEntry) -> Result<AuditEntry> {
        const OP: &str = "append_audit";
        ensure_tenant(tenant, &entry.tenant, "the audit entry")?;
        check_tenant(&entry.tenant)?;
        let mut tx = self.pool.begin().await.map_err(|e| acquire_error(OP, e))?;
        // Scope the transaction to the tenant and queue for its chain in one round trip.
        sqlx::query(
            "SELECT set_config('agentkit.tenant', $1, true), pg_advisory_xact_lock($2, hashtext($1))",
        )
        .bind(entry.tenant.as_str())
        .bind(AUDIT_LOCK_CLASS)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        let chained = insert_chained(&mut tx, OP, entry).await?;
        commit(tx, OP).await?;
        Ok(chained)
    }

    async fn list_audit(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        const OP: &str = "list_audit";
        let mut sql: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "SELECT seq, kind, actor, action, decision, reason, agent, session_id, run_id, \
             input::text AS input, output::text AS output, at, prev_hash, hash \
             FROM audit_entries WHERE tenant = ",
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
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(run) = &query.run {
            sql.push(" AND run_id = ").push_bind(run.as_str());
        }
        if let Some(action) = &query.action {
            sql.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(after) = query.after {
            sql.push(" AND seq > ")
                .push_bind(i64::try_from(after).unwrap_or(i64::MAX));
        }
        sql.push(" ORDER BY seq");
        if let Some(limit) = query.limit {
            sql.push(" LIMIT ")
                .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut tx = self.begin(OP, tenant).await?;
        let rows: Vec<AuditRow> = sql
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter().map(|r| r.into_entry(tenant)).collect()
    }
}

/// Appends `entry` to its tenant's chain inside the caller's transaction, which is already
/// scoped to the tenant (`agentkit.tenant`); takes the chain's advisory lock (held to commit).
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    op: &'static str,
    entry: NewAuditEntry,
) -> Result<AuditEntry> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(AUDIT_LOCK_CLASS)
        .bind(entry.tenant.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| query_error(op, e))?;
    insert_chained(tx, op, entry).await
}

/// Appends `entries` in order to their tenant's chain inside the caller's transaction (scoped
/// to that tenant), taking the chain's lock once; returns the last sequence number.
pub(crate) async fn append_many_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    op: &'static str,
    tenant: &TenantId,
    entries: Vec<NewAuditEntry>,
) -> Result<Option<u64>> {
    if entries.is_empty() {
        return Ok(None);
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(AUDIT_LOCK_CLASS)
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| query_error(op, e))?;
    let mut last = None;
    for entry in entries {
        last = Some(insert_chained(tx, op, entry).await?.seq);
    }
    Ok(last)
}

/// Reads the chain head and inserts `entry` after it; the caller holds the chain's lock.
async fn insert_chained(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    op: &'static str,
    mut entry: NewAuditEntry,
) -> Result<AuditEntry> {
    // Hash exactly what is stored and read back (`chain` truncates too; this keeps the store
    // right on its own).
    entry.at = micros(entry.at);
    let input = json(&entry.input)?;
    let output = json(&entry.output)?;
    let tenant = entry.tenant.clone();
    let head: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_entries WHERE tenant = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| query_error(op, e))?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (to_u64(seq, "audit seq")? + 1, hash),
        None => (1, AUDIT_GENESIS_HASH.to_string()),
    };
    let chained = entry.chain(seq, prev_hash);
    let e = &chained.entry;
    sqlx::query(
        "INSERT INTO audit_entries (tenant, seq, kind, actor, action, decision, reason, \
         agent, session_id, run_id, input, output, at, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::json, $12::json, $13, $14, $15)",
    )
    .bind(tenant.as_str())
    .bind(to_i64(chained.seq, "audit seq")?)
    .bind(e.kind.as_str())
    .bind(e.actor.as_str())
    .bind(e.action.as_str())
    .bind(e.decision.as_deref())
    .bind(e.reason.as_deref())
    .bind(e.agent.as_ref().map(|a| a.as_str()))
    .bind(e.session.as_ref().map(|s| s.as_str()))
    .bind(e.run.as_ref().map(|r| r.as_str()))
    .bind(input)
    .bind(output)
    .bind(e.at)
    .bind(chained.prev_hash.as_str())
    .bind(chained.hash.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| query_error(op, e))?;
    Ok(chained)
}
