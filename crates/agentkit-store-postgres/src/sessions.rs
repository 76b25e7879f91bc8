//! [`SessionStore`]: sessions and their messages.
//!
//! A session row carries the sequence number of its last message. An append locks that row
//! (`UPDATE ... SET last_seq = last_seq + n RETURNING last_seq`), so concurrent appends to one
//! session queue up, then inserts the batch with consecutive numbers in the same transaction:
//! numbers start at 1, have no gaps and each batch is contiguous.

use std::collections::BTreeMap;

use agentkit_core::id::{RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    MessageWindow, SessionRecord, SessionStore, StoredMessage, ensure_tenant, orphaned_prefix_len,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::codec::{from_json, json, micros, to_i64, to_u64};
use crate::error::query_error;
use crate::{PostgresStore, commit, id_literal};
use sqlx::FromRow;

#[derive(sqlx::FromRow)]
struct SessionRow {
    agent: String,
    created_at: DateTime<Utc>,
    metadata: String,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    seq: i64,
    run_id: Option<String>,
    message: String,
    created_at: DateTime<Utc>,
}

impl MessageRow {
    fn into_stored(self) -> Result<StoredMessage> {
        Ok(StoredMessage {
            seq: to_u64(self.seq, "message seq")?,
            run: self.run_id.map(RunId::new).transpose()?,
            message: from_json::<Message>(&self.message, "a stored message")?,
            created_at: self.created_at,
        })
    }
}

/// The columns of a stored message.
const SELECT_MESSAGES: &str =
    "SELECT seq, run_id, message::text AS message, created_at FROM messages";

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, tenant: &TenantId, session: &SessionRecord) -> Result<bool> {
        const OP: &str = "create_session";
        ensure_tenant(tenant, &session.tenant, "the session")?;
        let mut tx = self.begin(OP, &session.tenant).await?;
        let inserted = create_session_in(&mut tx, OP, session).await?;
        commit(tx, OP).await?;
        Ok(inserted)
    }

    async fn get_session(
        &self,
        tenant: &TenantId,
        id: &SessionId,
    ) -> Result<Option<SessionRecord>> {
        const OP: &str = "get_session";
        // One round trip: a turn reads its session before anything else.
        let query = format!(
            "SELECT agent, created_at, metadata::text AS metadata FROM sessions \
             WHERE tenant = {} AND id = {}",
            id_literal(tenant.as_str())?,
            id_literal(id.as_str())?
        );
        let rows = self.read_scoped(OP, tenant, &query).await?;
        let row = rows
            .first()
            .map(SessionRow::from_row)
            .transpose()
            .map_err(|e| query_error(OP, e))?;
        row.map(|r| {
            Ok(SessionRecord {
                tenant: tenant.clone(),
                id: id.clone(),
                agent: r.agent.try_into()?,
                created_at: r.created_at,
                metadata: from_json::<BTreeMap<String, String>>(&r.metadata, "session metadata")?,
            })
        })
        .transpose()
    }

    async fn append_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64> {
        const OP: &str = "append_messages";
        let bodies = messages.iter().map(json).collect::<Result<Vec<String>>>()?;
        let mut tx = self.begin(OP, tenant).await?;
        let last = append_messages_in(&mut tx, OP, tenant, session, run, bodies).await?;
        commit(tx, OP).await?;
        to_u64(last, "session last_seq")
    }

    async fn load_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>> {
        const OP: &str = "load_messages";
        if window == MessageWindow::Last(0) {
            return Ok(Vec::new());
        }
        // One round trip: a turn in an existing session reads its window before the model call.
        let scoped = format!(
            "{SELECT_MESSAGES} WHERE tenant = {} AND session_id = {} AND NOT retracted",
            id_literal(tenant.as_str())?,
            id_literal(session.as_str())?
        );
        let query = match window {
            MessageWindow::All => format!("{scoped} ORDER BY seq"),
            MessageWindow::After(after) => format!(
                "{scoped} AND seq > {} ORDER BY seq",
                i64::try_from(after).unwrap_or(i64::MAX)
            ),
            // Newest first from the primary key read backwards, reversed below.
            MessageWindow::Last(n) => format!(
                "{scoped} ORDER BY seq DESC LIMIT {}",
                i64::try_from(n).unwrap_or(i64::MAX)
            ),
        };
        let rows = self.read_scoped(OP, tenant, &query).await?;
        let mut messages = rows
            .iter()
            .map(|row| {
                MessageRow::from_row(row)
                    .map_err(|e| query_error(OP, e))
                    .and_then(MessageRow::into_stored)
            })
            .collect::<Result<Vec<_>>>()?;
        if matches!(window, MessageWindow::Last(_)) {
            messages.reverse();
        }
        let orphans = orphaned_prefix_len(&messages);
        messages.drain(..orphans);
        Ok(messages)
    }

    async fn retract_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: &RunId,
    ) -> Result<u64> {
        const OP: &str = "retract_messages";
        let mut tx = self.begin(OP, tenant).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM sessions WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(session.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| query_error(OP, e))?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("session {session}")));
        }
        let done = sqlx::query(
            "UPDATE messages SET retracted = true \
             WHERE tenant = $1 AND session_id = $2 AND run_id = $3 AND NOT retracted",
        )
        .bind(tenant.as_str())
        .bind(session.as_str())
        .bind(run.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        Ok(done.rows_affected())
    }
}

/// Inserts a session unless it exists, inside the caller's transaction; whether it inserted.
pub(crate) async fn create_session_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    session: &SessionRecord,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO sessions (tenant, id, agent, created_at, metadata) \
             VALUES ($1, $2, $3, $4, $5::json) ON CONFLICT (tenant, id) DO NOTHING",
    )
    .bind(session.tenant.as_str())
    .bind(session.id.as_str())
    .bind(session.agent.as_str())
    .bind(micros(session.created_at))
    .bind(json(&session.metadata)?)
    .execute(&mut *tx)
    .await
    .map_err(|e| query_error(op, e))?
    .rows_affected();
    Ok(inserted == 1)
}

/// Appends serialized messages inside the caller's transaction; returns the last seq.
pub(crate) async fn append_messages_in(
    tx: &mut sqlx::PgConnection,
    op: &'static str,
    tenant: &TenantId,
    session: &SessionId,
    run: Option<&RunId>,
    bodies: Vec<String>,
) -> Result<i64> {
    let count = to_i64(bodies.len() as u64, "message count")?;
    let last: Option<i64> = if bodies.is_empty() {
        sqlx::query_scalar("SELECT last_seq FROM sessions WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(session.as_str())
            .fetch_optional(&mut *tx)
            .await
    } else {
        // One statement (one round trip): the session's counter moves and the messages take
        // the numbers it moved over; no session row, no messages (and `None`).
        sqlx::query_scalar(
            "WITH moved AS (UPDATE sessions SET last_seq = last_seq + $3 \
                 WHERE tenant = $1 AND id = $2 RETURNING last_seq), \
             added AS (INSERT INTO messages (tenant, session_id, seq, run_id, message, created_at) \
                 SELECT $1, $2, moved.last_seq - $3 + m.ord, $4, m.body::json, $5 \
                 FROM moved, unnest($6::text[]) WITH ORDINALITY AS m (body, ord)) \
             SELECT last_seq FROM moved",
        )
        .bind(tenant.as_str())
        .bind(session.as_str())
        .bind(count)
        .bind(run.map(RunId::as_str))
        .bind(micros(Utc::now()))
        .bind(bodies)
        .fetch_optional(&mut *tx)
        .await
    }
    .map_err(|e| query_error(op, e))?;
    let Some(last) = last else {
        return Err(Error::NotFound(format!("session {session}")));
    };
    Ok(last)
}
