//! [`AuditStore`]: the per-tenant hash-chained audit log.
//!
//! An append reads the tenant's chain head, computes [`NewAuditEntry::chain`] and inserts the
//! entry in one `BEGIN IMMEDIATE` transaction; triggers refuse updates and deletes and check the
//! next seq and previous hash.

use agentkit_core::Result;
use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::store::{
    AUDIT_GENESIS_HASH, AuditEntry, AuditQuery, AuditStore, NewAuditEntry, ensure_tenant,
};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SqliteStore;
use crate::codec::{from_json, from_micros, int, micros, stored_time, to_json, uint};
use crate::error::db_err;
use crate::sql::{col, immediate, text};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, tenant: &TenantId, entry: NewAuditEntry) -> Result<AuditEntry> {
        ensure_tenant(tenant, &entry.tenant, "the audit entry")?;
        self.db().write(move |c| append_audit(c, entry)).await
    }

    async fn list_audit(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.db()
            .read(move |c| list_audit(c, &tenant, &query))
            .await
    }
}

// The SQL, on one connection.

#[derive(Serialize)]
struct AuditBodyRef<'a> {
    actor: &'a str,
    action: &'a str,
    decision: Option<&'a str>,
    reason: Option<&'a str>,
    input: &'a Value,
    output: &'a Value,
}

#[derive(Deserialize)]
struct AuditBody {
    actor: String,
    action: String,
    decision: Option<String>,
    reason: Option<String>,
    input: Value,
    output: Value,
}

/// Chains the entry after the tenant's last one and inserts it, in one IMMEDIATE transaction.
/// `entry.at` must already be cut to microseconds (the hash covers it).
fn append_audit(conn: &mut Connection, entry: NewAuditEntry) -> Result<AuditEntry> {
    let tx = immediate(conn)?;
    let chained = append_in(&tx, entry)?;
    tx.commit().map_err(db_err)?;
    Ok(chained)
}

/// Chains and inserts the entry inside the caller's (IMMEDIATE) transaction, which commits it
/// together with the caller's other writes.
pub(crate) fn append_in(tx: &Connection, mut entry: NewAuditEntry) -> Result<AuditEntry> {
    // The hash covers `at`: cut it to the stored precision first, so the chain verifies from
    // what is read back.
    entry.at = stored_time(entry.at);
    let last: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT seq, hash FROM audit_entries WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row(params![entry.tenant.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(db_err)?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (uint(seq, "audit seq")? + 1, hash),
        None => (1, AUDIT_GENESIS_HASH.to_string()),
    };
    let chained = entry.chain(seq, prev_hash);
    let AuditEntry {
        seq,
        entry: e,
        prev_hash,
        hash,
    } = &chained;
    let NewAuditEntry {
        tenant,
        kind,
        actor,
        action,
        decision,
        reason,
        agent,
        session,
        run,
        input,
        output,
        at,
    } = e;
    let seq = int(*seq, "audit seq")?;
    let body = to_json(&AuditBodyRef {
        actor,
        action,
        decision: decision.as_deref(),
        reason: reason.as_deref(),
        input,
        output,
    })?;
    tx.prepare_cached(
        "INSERT INTO audit_entries (tenant, seq, kind, agent, session, run, at, prev_hash, hash, \
         body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant.as_str(),
            seq,
            kind,
            agent.as_ref().map(AgentId::as_str),
            session.as_ref().map(SessionId::as_str),
            run.as_ref().map(RunId::as_str),
            micros(*at),
            prev_hash,
            hash,
            body
        ])
    })
    .map_err(db_err)?;
    Ok(chained)
}

fn list_audit(conn: &Connection, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let mut sql = String::from(
        "SELECT seq, kind, agent, session, run, at, prev_hash, hash, body \
         FROM audit_entries WHERE tenant = ?1",
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
    if let Some(kind) = &query.kind {
        filter("kind =", SqlValue::Text(kind.clone()));
    }
    if let Some(run) = &query.run {
        filter("run =", SqlValue::Text(run.as_str().to_owned()));
    }
    if let Some(after) = query.after {
        filter(
            "seq >",
            SqlValue::Integer(i64::try_from(after).unwrap_or(i64::MAX)),
        );
    }
    // The action is inside the JSON body: filtered below, so the limit is applied there too.
    sql.push_str(" ORDER BY seq");
    let limit = query.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let opt = |idx| -> Result<Option<&str>> {
            row.get_ref(idx)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(db_err)
        };
        let body: AuditBody = from_json(text(row, 8)?, "audit entry")?;
        let entry = AuditEntry {
            seq: uint(col(row, 0)?, "audit seq")?,
            entry: NewAuditEntry {
                tenant: tenant.clone(),
                kind: text(row, 1)?.to_owned(),
                actor: body.actor,
                action: body.action,
                decision: body.decision,
                reason: body.reason,
                agent: opt(2)?.map(AgentId::new).transpose()?,
                session: opt(3)?.map(SessionId::new).transpose()?,
                run: opt(4)?.map(RunId::new).transpose()?,
                input: body.input.into(),
                output: body.output.into(),
                at: from_micros(col(row, 5)?)?,
            },
            prev_hash: text(row, 6)?.to_owned(),
            hash: text(row, 7)?.to_owned(),
        };
        if query.matches(&entry) {
            out.push(entry);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}
