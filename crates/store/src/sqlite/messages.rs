//! The outbound message queue, inbound messages and opt-outs on SQLite.
use super::{SqliteStore, map_err, ms, ts};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phonegate_core::PhoneNumber;
use phonegate_core::message::{DeliveryStatus, InboundMessage, Message};
use phonegate_core::ports::{InboundStore, Lease, MessageResult, MessageStore, OptOutStore, StoreResult};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

macro_rules! message_columns {
    () => {
        "id, verification_id, service, to_number, body_sealed, resend, status, provider, provider_message_id, error, \
         claims, created_at, updated_at"
    };
}

fn message_from_row(r: &SqliteRow) -> Result<Message, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: r.try_get("id")?,
        verification_id: r.try_get("verification_id")?,
        service: r.try_get("service")?,
        to: PhoneNumber::from_trusted(r.try_get("to_number")?),
        body_sealed: r.try_get("body_sealed")?,
        resend: r.try_get("resend")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status `{status}`").into()))?,
        provider: r.try_get("provider")?,
        provider_message_id: r.try_get("provider_message_id")?,
        error: r.try_get("error")?,
        claims: r.try_get::<i64, _>("claims")? as u32,
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
    })
}

fn messages(rows: Vec<SqliteRow>) -> StoreResult<Vec<Message>> {
    rows.iter().map(message_from_row).collect::<Result<_, _>>().map_err(map_err)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn insert_message(&self, m: &Message, lease: Option<&Lease>) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO messages (",
            message_columns!(),
            ", lease_token, lease_until) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        ))
        .bind(&m.id)
        .bind(&m.verification_id)
        .bind(&m.service)
        .bind(m.to.as_str())
        .bind(&m.body_sealed)
        .bind(m.resend)
        .bind(m.status.as_str())
        .bind(&m.provider)
        .bind(&m.provider_message_id)
        .bind(&m.error)
        .bind(m.claims as i64)
        .bind(ms(m.created_at))
        .bind(ms(m.updated_at))
        .bind(lease.map(|l| l.token.as_str()))
        .bind(lease.map(|l| ms(l.until)))
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(concat!(
            "UPDATE messages SET status = 'sending', claims = claims + 1, lease_token = ?1, lease_until = ?2, updated_at = ?3 \
             WHERE id IN (SELECT id FROM messages WHERE (status = 'queued' AND created_at <= ?5) OR (status = 'sending' AND lease_until <= ?3) \
                          ORDER BY created_at LIMIT ?4) \
             AND ((status = 'queued' AND created_at <= ?5) OR (status = 'sending' AND lease_until <= ?3)) RETURNING ",
            message_columns!()
        ))
        .bind(token)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(limit as i64)
        .bind(ms(queued_before))
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        messages(rows)
    }

    async fn finish_message(&self, id: &str, token: &str, r: &MessageResult, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE messages SET status = ?, provider = ?, provider_message_id = ?, error = ?, updated_at = ?, \
             lease_token = NULL, lease_until = NULL WHERE id = ? AND status = 'sending' AND lease_token = ?",
        )
        .bind(r.status.as_str())
        .bind(&r.provider)
        .bind(&r.provider_message_id)
        .bind(&r.error)
        .bind(ms(now))
        .bind(id)
        .bind(token)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn apply_receipt(
        &self,
        pmid: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        // The statuses this receipt may follow, from the core's rule.
        let allowed: Vec<&str> = DeliveryStatus::ALL.into_iter().filter(|c| status.can_follow(*c)).map(|c| c.as_str()).collect();
        let allowed = serde_json::to_string(&allowed).unwrap_or_else(|_| "[]".into());
        let row = sqlx::query(concat!(
            "UPDATE messages SET status = ?1, error = COALESCE(?2, error), updated_at = ?3 \
             WHERE provider_message_id = ?4 AND status IN (SELECT value FROM json_each(?5)) RETURNING ",
            message_columns!()
        ))
        .bind(status.as_str())
        .bind(error)
        .bind(ms(now))
        .bind(pmid)
        .bind(allowed)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_err)?;
        row.as_ref().map(message_from_row).transpose().map_err(map_err)
    }

    async fn hold_receipt(&self, pmid: &str, status: DeliveryStatus, error: Option<&str>, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO early_receipts (provider_message_id, status, error, received_at) \
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = ?1) \
             ON CONFLICT (provider_message_id) DO UPDATE SET status = excluded.status, error = excluded.error, received_at = excluded.received_at",
        )
        .bind(pmid)
        .bind(status.as_str())
        .bind(error)
        .bind(ms(now))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn take_held_receipt(&self, pmid: &str) -> StoreResult<Option<(DeliveryStatus, Option<String>)>> {
        let row = sqlx::query("DELETE FROM early_receipts WHERE provider_message_id = ?1 RETURNING status, error")
            .bind(pmid)
            .fetch_optional(&self.writer)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status").map_err(map_err)?;
        Ok(DeliveryStatus::parse(&status).map(|s| (s, row.try_get("error").ok().flatten())))
    }

    async fn list_messages_for_verification(&self, verification_id: &str) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE verification_id = ? ORDER BY created_at, id"))
            .bind(verification_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        messages(rows)
    }
}

#[async_trait]
impl OptOutStore for SqliteStore {
    async fn is_opted_out(&self, number: &PhoneNumber) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM opt_outs WHERE number = ?")
            .bind(number.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn set_opted_out(&self, number: &PhoneNumber, opted_out: bool, now: DateTime<Utc>) -> StoreResult<()> {
        let query = if opted_out {
            sqlx::query("INSERT INTO opt_outs (number, created_at) VALUES (?, ?) ON CONFLICT (number) DO NOTHING")
                .bind(number.as_str())
                .bind(ms(now))
        } else {
            sqlx::query("DELETE FROM opt_outs WHERE number = ?").bind(number.as_str())
        };
        query.execute(&self.writer).await.map(|_| ()).map_err(map_err)
    }
}

#[async_trait]
impl InboundStore for SqliteStore {
    async fn insert_inbound(&self, m: &InboundMessage, opt_out: Option<bool>) -> StoreResult<()> {
        // The first statement writes, so the transaction takes the write lock at once.
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO inbound_messages (id, provider, provider_message_id, from_number, to_number, body, received_at) VALUES (?,?,?,?,?,?,?)",
        )
        .bind(&m.id)
        .bind(&m.provider)
        .bind(&m.provider_message_id)
        .bind(m.from.as_str())
        .bind(&m.to)
        .bind(&m.body)
        .bind(ms(m.received_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        match opt_out {
            Some(true) => {
                sqlx::query("INSERT INTO opt_outs (number, created_at) VALUES (?, ?) ON CONFLICT (number) DO NOTHING")
                    .bind(m.from.as_str())
                    .bind(ms(m.received_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            Some(false) => {
                sqlx::query("DELETE FROM opt_outs WHERE number = ?").bind(m.from.as_str()).execute(&mut *tx).await.map_err(map_err)?;
            }
            None => {}
        }
        tx.commit().await.map_err(map_err)
    }
}
