//! Verification rows on SQLite.
use super::{SqliteStore, map_err, ms, opt_ts, ts};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phonegate_core::ports::{StoreError, StoreResult, VerificationStore};
use phonegate_core::{Channel, PhoneNumber, Status, Verification};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The column list, as a macro so queries stay `&'static str` (sqlx refuses dynamic SQL).
macro_rules! columns {
    () => {
        "id, service_id, to_number, channel, locale, status, code_length, code_digest, code_sealed, \
         attempts, sends, send_window_started_at, created_at, updated_at, expires_at, approved_at, canceled_at, \
         expired_at, max_attempts_reached_at, failed_at, failure_reason, version, max_attempts, brand"
    };
}

fn from_row(r: &SqliteRow) -> Result<Verification, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let channel: String = r.try_get("channel")?;
    let corrupt = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown {what} `{v}`").into());
    Ok(Verification {
        id: r.try_get("id")?,
        service_id: r.try_get("service_id")?,
        to: PhoneNumber::from_trusted(r.try_get("to_number")?),
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        locale: r.try_get("locale")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        code_length: r.try_get::<i64, _>("code_length")? as u8,
        code_digest: r.try_get("code_digest")?,
        code_sealed: r.try_get("code_sealed")?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
        brand: r.try_get("brand")?,
        sends: r.try_get::<i64, _>("sends")? as u32,
        send_window_started_at: ts(r.try_get("send_window_started_at")?),
        created_at: ts(r.try_get("created_at")?),
        updated_at: ts(r.try_get("updated_at")?),
        expires_at: ts(r.try_get("expires_at")?),
        approved_at: opt_ts(r.try_get("approved_at")?),
        canceled_at: opt_ts(r.try_get("canceled_at")?),
        expired_at: opt_ts(r.try_get("expired_at")?),
        max_attempts_reached_at: opt_ts(r.try_get("max_attempts_reached_at")?),
        failed_at: opt_ts(r.try_get("failed_at")?),
        failure_reason: r.try_get("failure_reason")?,
        version: r.try_get("version")?,
    })
}

fn decode(r: Option<SqliteRow>) -> StoreResult<Option<Verification>> {
    r.as_ref().map(from_row).transpose().map_err(map_err)
}

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn insert_verification(&self, v: &Verification) -> StoreResult<()> {
        let sql = concat!("INSERT INTO verifications (", columns!(), ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        sqlx::query(sql)
            .bind(&v.id)
            .bind(&v.service_id)
            .bind(v.to.as_str())
            .bind(v.channel.as_str())
            .bind(&v.locale)
            .bind(v.status.as_str())
            .bind(v.code_length as i64)
            .bind(&v.code_digest)
            .bind(&v.code_sealed)
            .bind(v.attempts as i64)
            .bind(v.sends as i64)
            .bind(ms(v.send_window_started_at))
            .bind(ms(v.created_at))
            .bind(ms(v.updated_at))
            .bind(ms(v.expires_at))
            .bind(v.approved_at.map(ms))
            .bind(v.canceled_at.map(ms))
            .bind(v.expired_at.map(ms))
            .bind(v.max_attempts_reached_at.map(ms))
            .bind(v.failed_at.map(ms))
            .bind(&v.failure_reason)
            .bind(v.version)
            .bind(v.max_attempts as i64)
            .bind(&v.brand)
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn get_verification(&self, id: &str) -> StoreResult<Option<Verification>> {
        let sql = concat!("SELECT ", columns!(), " FROM verifications WHERE id = ?");
        decode(sqlx::query(sql).bind(id).fetch_optional(&self.pool).await.map_err(map_err)?)
    }

    async fn find_pending_verification(&self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>> {
        let sql = concat!("SELECT ", columns!(), " FROM verifications WHERE service_id = ? AND to_number = ? AND status = 'pending'");
        let row = sqlx::query(sql).bind(service_id).bind(to.as_str()).fetch_optional(&self.pool).await.map_err(map_err)?;
        decode(row)
    }

    async fn update_verification(&self, v: &Verification, expected_version: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE verifications SET locale = ?, status = ?, attempts = ?, sends = ?, send_window_started_at = ?, \
             updated_at = ?, approved_at = ?, canceled_at = ?, expired_at = ?, max_attempts_reached_at = ?, \
             failed_at = ?, failure_reason = ?, version = version + 1 WHERE id = ? AND version = ?",
        )
        .bind(&v.locale)
        .bind(v.status.as_str())
        .bind(v.attempts as i64)
        .bind(v.sends as i64)
        .bind(ms(v.send_window_started_at))
        .bind(ms(v.updated_at))
        .bind(v.approved_at.map(ms))
        .bind(v.canceled_at.map(ms))
        .bind(v.expired_at.map(ms))
        .bind(v.max_attempts_reached_at.map(ms))
        .bind(v.failed_at.map(ms))
        .bind(&v.failure_reason)
        .bind(&v.id)
        .bind(expected_version)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        match done.rows_affected() {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(StoreError::Other(format!("compare-and-swap touched {n} rows"))),
        }
    }

    async fn expire_due_verifications(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<(String, Channel)>> {
        let rows = sqlx::query(
            "UPDATE verifications SET status = 'expired', expired_at = expires_at, updated_at = ?1, version = version + 1 \
             WHERE id IN (SELECT id FROM verifications WHERE status = 'pending' AND expires_at <= ?1 LIMIT ?2) \
             AND status = 'pending' RETURNING service_id, channel",
        )
        .bind(ms(now))
        .bind(limit as i64)
        .fetch_all(&self.writer)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let channel: String = r.try_get("channel")?;
                Ok((r.try_get("service_id")?, Channel::parse(&channel).unwrap_or(Channel::Sms)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        sqlx::query(
            "DELETE FROM messages WHERE verification_id IN \
             (SELECT id FROM verifications WHERE status <> 'pending' AND updated_at < ?1 ORDER BY updated_at LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(limit as i64)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        // Only verifications without messages go, so a row is never left pointing at nothing.
        let done = sqlx::query(
            "DELETE FROM verifications WHERE id IN (SELECT v.id FROM verifications v WHERE v.status <> 'pending' AND v.updated_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.verification_id = v.id) ORDER BY v.updated_at LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(limit as i64)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        for sql in [
            "DELETE FROM outbox_messages WHERE seq IN (SELECT seq FROM outbox_messages WHERE created_at < ?1 LIMIT ?2)",
            "DELETE FROM inbound_messages WHERE id IN (SELECT id FROM inbound_messages WHERE received_at < ?1 LIMIT ?2)",
            "DELETE FROM early_receipts WHERE provider_message_id IN (SELECT provider_message_id FROM early_receipts WHERE received_at < ?1 LIMIT ?2)",
        ] {
            sqlx::query(sql).bind(cutoff).bind(limit as i64).execute(&self.writer).await.map_err(map_err)?;
        }
        Ok(done.rows_affected())
    }
}
