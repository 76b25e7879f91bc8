//! [`SessionStore`]: sessions and their messages.
//!
//! `messages` is keyed by `(tenant, session, seq)`. An append reads the session's last seq and
//! inserts the batch after it in one `BEGIN IMMEDIATE` transaction (numbers start at 1, have no
//! gaps and each batch is contiguous); a `Last(n)` window walks that key backwards with
//! `LIMIT n`, so its cost does not grow with the history.

use std::collections::BTreeMap;

use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    MessageWindow, SessionRecord, SessionStore, StoredMessage, ensure_tenant, orphaned_prefix_len,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::codec::{from_json, from_micros, micros, now, to_json, uint};
use crate::error::db_err;
use crate::sql::{col, immediate, text};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, tenant: &TenantId, session: &SessionRecord) -> Result<bool> {
        ensure_tenant(tenant, &session.tenant, "the session")?;
        let session = session.clone();
        self.db().write(move |c| create_session(c, &session)).await
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<SessionRecord>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.db().read(move |c| get_session(c, &tenant, &id)).await
    }

    async fn append_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64> {
        let rows = messages
            .iter()
            .map(to_json)
            .collect::<Result<Vec<String>>>()?;
        let (tenant, session, run) = (tenant.clone(), session.clone(), run.cloned());
        self.db()
            .write(move |c| append_messages(c, &tenant, &session, run.as_ref(), &rows))
            .await
    }

    async fn load_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        let (tenant, session) = (tenant.clone(), session.clone());
        self.db()
            .read(move |c| load_messages(c, &tenant, &session, window))
            .await
    }

    async fn retract_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: &RunId,
    ) -> Result<u64> {
        let (tenant, session, run) = (tenant.clone(), session.clone(), run.clone());
        self.db()
            .write(move |c| retract_messages(c, &tenant, &session, &run))
            .await
    }
}

// The SQL, on one connection.

pub(crate) fn create_session(conn: &Connection, s: &SessionRecord) -> Result<bool> {
    let metadata = to_json(&s.metadata)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (tenant, id, agent, created_at, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                s.tenant.as_str(),
                s.id.as_str(),
                s.agent.as_str(),
                micros(s.created_at),
                metadata
            ])
        })
        .map_err(db_err)?;
    Ok(inserted == 1)
}

fn get_session(
    conn: &Connection,
    tenant: &TenantId,
    id: &SessionId,
) -> Result<Option<SessionRecord>> {
    let mut st = conn
        .prepare_cached(
            "SELECT agent, created_at, metadata FROM sessions WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), id.as_str()])
        .map_err(db_err)?;
    let Some(row) = rows.next().map_err(db_err)? else {
        return Ok(None);
    };
    let metadata: BTreeMap<String, String> = from_json(text(row, 2)?, "session metadata")?;
    Ok(Some(SessionRecord {
        tenant: tenant.clone(),
        id: id.clone(),
        agent: AgentId::new(text(row, 0)?)?,
        created_at: from_micros(col(row, 1)?)?,
        metadata,
    }))
}

/// Appends pre-serialized messages in one IMMEDIATE transaction; returns the last seq.
fn append_messages(
    conn: &mut Connection,
    tenant: &TenantId,
    session: &SessionId,
    run: Option<&RunId>,
    messages: &[String],
) -> Result<u64> {
    let tx = immediate(conn)?;
    let seq = append_messages_in(&tx, tenant, session, run, messages)?;
    tx.commit().map_err(db_err)?;
    Ok(seq)
}

/// Appends pre-serialized messages inside the caller's IMMEDIATE transaction; returns the last
/// seq.
pub(crate) fn append_messages_in(
    tx: &Connection,
    tenant: &TenantId,
    session: &SessionId,
    run: Option<&RunId>,
    messages: &[String],
) -> Result<u64> {
    let (exists, last): (bool, i64) = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE tenant = ?1 AND id = ?2), \
                    COALESCE((SELECT MAX(seq) FROM messages WHERE tenant = ?1 AND session = ?2), 0)",
        )
        .and_then(|mut st| {
            st.query_row(params![tenant.as_str(), session.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(db_err)?;
    if !exists {
        return Err(Error::NotFound(format!("session {session}")));
    }
    let mut seq = last;
    if !messages.is_empty() {
        let created_at = micros(now());
        let run = run.map(RunId::as_str);
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO messages (tenant, session, seq, run, created_at, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db_err)?;
        for message in messages {
            seq += 1;
            insert
                .execute(params![
                    tenant.as_str(),
                    session.as_str(),
                    seq,
                    run,
                    created_at,
                    message
                ])
                .map_err(db_err)?;
        }
    }
    uint(seq, "message seq")
}

/// Marks a run's messages retracted in one statement (atomic on its own).
fn retract_messages(
    conn: &mut Connection,
    tenant: &TenantId,
    session: &SessionId,
    run: &RunId,
) -> Result<u64> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sessions WHERE tenant = ?1 AND id = ?2)")
        .and_then(|mut st| st.query_row(params![tenant.as_str(), session.as_str()], |r| r.get(0)))
        .map_err(db_err)?;
    if !exists {
        return Err(Error::NotFound(format!("session {session}")));
    }
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET retracted = 1 \
             WHERE tenant = ?1 AND session = ?2 AND run = ?3 AND retracted = 0",
        )
        .and_then(|mut st| st.execute(params![tenant.as_str(), session.as_str(), run.as_str()]))
        .map_err(db_err)?;
    Ok(changed as u64)
}

/// The whole session.
const LOAD_ALL: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 AND retracted = 0 ORDER BY seq";
/// The last `?3` messages, newest first: the primary key index walked backwards, so it reads
/// `?3` rows whatever the length of the history.
const LOAD_LAST: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 AND retracted = 0 ORDER BY seq DESC LIMIT ?3";
/// The messages after seq `?3`.
const LOAD_AFTER: &str = "SELECT seq, run, created_at, message FROM messages \
     WHERE tenant = ?1 AND session = ?2 AND seq > ?3 AND retracted = 0 ORDER BY seq";

fn load_messages(
    conn: &Connection,
    tenant: &TenantId,
    session: &SessionId,
    window: MessageWindow,
) -> Result<Vec<StoredMessage>> {
    let (sql, bound, newest_first) = match window {
        MessageWindow::All => (LOAD_ALL, None, false),
        MessageWindow::Last(0) => return Ok(Vec::new()),
        MessageWindow::Last(n) => (LOAD_LAST, Some(i64::try_from(n).unwrap_or(i64::MAX)), true),
        MessageWindow::After(after) => (
            LOAD_AFTER,
            Some(i64::try_from(after).unwrap_or(i64::MAX)),
            false,
        ),
    };
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = match bound {
        Some(b) => st.query(params![tenant.as_str(), session.as_str(), b]),
        None => st.query(params![tenant.as_str(), session.as_str()]),
    }
    .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let run: Option<&str> = row
            .get_ref(1)
            .and_then(|v| v.as_str_or_null().map_err(Into::into))
            .map_err(db_err)?;
        out.push(StoredMessage {
            seq: uint(col(row, 0)?, "message seq")?,
            run: run.map(RunId::new).transpose()?,
            created_at: from_micros(col(row, 2)?)?,
            message: from_json::<Message>(text(row, 3)?, "message")?,
        });
    }
    if newest_first {
        out.reverse();
    }
    let orphans = orphaned_prefix_len(&out);
    out.drain(..orphans);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::StatementStatus;

    use super::*;
    use crate::sql::testing::{assert_reads_index_in_order, db};

    #[test]
    fn windows_read_the_key_without_sorting() {
        let conn = db();
        for sql in [LOAD_LAST, LOAD_ALL, LOAD_AFTER] {
            assert_reads_index_in_order(&conn, sql, "sqlite_autoindex_messages_1");
        }
    }

    /// `Last(n)` does the same work on a long history as on a short one.
    #[test]
    fn last_n_work_does_not_grow_with_history() {
        let mut conn = db();
        let tenant = TenantId::from_static("t");
        let session = SessionId::from_static("s");
        let record = SessionRecord::new(tenant.clone(), session.clone(), AgentId::from_static("a"));
        assert!(create_session(&conn, &record).unwrap());
        let message = to_json(&Message::user("a message of some length")).unwrap();
        let steps = |conn: &mut Connection, total: usize| {
            let have = load_messages(conn, &tenant, &session, MessageWindow::All)
                .unwrap()
                .len();
            let more = vec![message.clone(); total - have];
            append_messages(conn, &tenant, &session, None, &more).unwrap();
            let st = conn.prepare_cached(LOAD_LAST).unwrap();
            st.reset_status(StatementStatus::VmStep);
            drop(st);
            let window = load_messages(conn, &tenant, &session, MessageWindow::Last(20)).unwrap();
            assert_eq!(window.len(), 20);
            assert_eq!(window[19].seq, total as u64);
            let st = conn.prepare_cached(LOAD_LAST).unwrap();
            let fullscan = st.get_status(StatementStatus::FullscanStep);
            assert_eq!(fullscan, 0, "Last(n) must not scan");
            st.get_status(StatementStatus::VmStep)
        };
        let short = steps(&mut conn, 100);
        let long = steps(&mut conn, 5_000);
        assert_eq!(
            short, long,
            "VM steps of Last(20): {short} at 100, {long} at 5000"
        );
    }
}
