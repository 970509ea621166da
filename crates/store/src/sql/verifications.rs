//! Verification rows.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::ports::{StoreError, StoreResult, VerificationReads, VerificationWrites};
use phonegate_core::verification::CheckRecord;
use phonegate_core::workflow::Workflow;
use phonegate_core::{Channel, PhoneNumber, Recipient, Status, Verification};

/// The column list, as a macro so statements stay `&'static str`.
macro_rules! columns {
    () => {
        "id, service_id, to_number, channel, locale, status, code_length, code_digest, code_sealed, \
         attempts, sends, send_window_started_at, created_at, updated_at, expires_at, approved_at, canceled_at, \
         expired_at, max_attempts_reached_at, failed_at, failure_reason, version, max_attempts, brand, app_hash, psd2_amount, psd2_payee, test, texts, \
         workflow, step, step_due_at, manual_steps, key_id, email_from, send_digits"
    };
}

static INSERT: Sql = Sql::new(concat!(
    "INSERT INTO verifications (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36) \
     ON CONFLICT (service_id, to_number) WHERE status = 'pending' DO NOTHING"
));
static BY_ID: Sql = Sql::new(concat!("SELECT ", columns!(), " FROM verifications WHERE id = $1 FOR UPDATE"));
static PENDING: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM verifications WHERE service_id = $1 AND to_number = $2 AND status = 'pending' FOR UPDATE"
));
static LOCKED: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM verifications WHERE service_id = $1 AND to_number = $2 AND status = 'max_attempts_reached' AND expires_at > $3 \
     ORDER BY created_at DESC LIMIT 1"
));
static LATEST_SILENT: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM verifications WHERE service_id = $1 AND to_number = $2 AND channel = 'silent' ORDER BY created_at DESC, id DESC LIMIT 1"
));
static UPDATE: Sql = Sql::new(
    "UPDATE verifications SET locale = $1, status = $2, attempts = $3, sends = $4, send_window_started_at = $5, \
     updated_at = $6, approved_at = $7, canceled_at = $8, expired_at = $9, max_attempts_reached_at = $10, \
     failed_at = $11, failure_reason = $12, step = $13, step_due_at = $14, email_from = $15, send_digits = $16, \
     version = version + 1 WHERE id = $17 AND version = $18",
);
static EXPIRE_DUE: Sql = Sql::new(
    "UPDATE verifications SET status = 'expired', expired_at = expires_at, updated_at = $1, version = version + 1 \
     WHERE id IN (SELECT id FROM verifications WHERE status = 'pending' AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED) \
     AND status = 'pending' RETURNING service_id, channel",
);
static INSERT_CHECK: Sql = Sql::new("INSERT INTO verification_checks (verification_id, at, valid, ip) VALUES ($1, $2, $3, $4)");
static CHECKS: Sql = Sql::new("SELECT at, valid, ip FROM verification_checks WHERE verification_id = $1 ORDER BY at, valid");
static PURGE_CHECKS: Sql = Sql::new(
    "DELETE FROM verification_checks WHERE verification_id IN \
     (SELECT id FROM verifications WHERE status <> 'pending' AND updated_at < $1 ORDER BY updated_at, id LIMIT $2)",
);
static PURGE_SILENT: Sql = Sql::new(
    "DELETE FROM silent_checks WHERE verification_id IN \
     (SELECT id FROM verifications WHERE status <> 'pending' AND updated_at < $1 ORDER BY updated_at, id LIMIT $2)",
);
static PURGE_MESSAGES: Sql = Sql::new(
    "DELETE FROM messages WHERE verification_id IN \
     (SELECT id FROM verifications WHERE status <> 'pending' AND updated_at < $1 ORDER BY updated_at, id LIMIT $2)",
);
// Only verifications without messages go, so a row is never left pointing at nothing.
static PURGE_VERIFICATIONS: Sql = Sql::new(
    "DELETE FROM verifications WHERE id IN (SELECT v.id FROM verifications v WHERE v.status <> 'pending' AND v.updated_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.verification_id = v.id) ORDER BY v.updated_at, v.id LIMIT $2)",
);
/// Old inbound messages lose their text and sender but keep their provider id, so a replayed
/// webhook stays a duplicate however old it is (a Twilio signature carries no timestamp).
static PURGE_INBOUND: Sql = Sql::new(
    "UPDATE inbound_messages SET body = '', from_number = '' WHERE id IN \
     (SELECT id FROM inbound_messages WHERE received_at < $1 AND (body <> '' OR from_number <> '') LIMIT $2)",
);
static PURGE_HELD_RECEIPTS: Sql = Sql::new(
    "DELETE FROM early_receipts WHERE provider_message_id IN \
     (SELECT provider_message_id FROM early_receipts WHERE received_at < $1 LIMIT $2)",
);

fn decode(mut r: Row) -> StoreResult<Verification> {
    let channel = r.text(3)?;
    let status = r.text(5)?;
    let corrupt = |what: &str, v: &str| StoreError::Other(format!("unknown {what} `{v}`"));
    Ok(Verification {
        id: r.text(0)?,
        service_id: r.text(1)?,
        to: Recipient::from_trusted(r.text(2)?),
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        workflow: match r.opt_text(29)? {
            Some(w) => Workflow::parse(&w).map_err(|_| corrupt("workflow", &w))?,
            None => Workflow::single(Channel::parse(&channel).filter(|c| c.carries_code()).unwrap_or(Channel::Sms)),
        },
        step: r.int(30)? as u32,
        step_due_at: r.opt_ts(31)?,
        manual_steps: r.bool(32)?,
        key_id: r.opt_text(33)?,
        locale: r.text(4)?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        code_length: r.int(6)? as u8,
        code_digest: r.blob(7)?,
        code_sealed: r.blob(8)?,
        attempts: r.int(9)? as u32,
        sends: r.int(10)? as u32,
        send_window_started_at: r.ts(11)?,
        created_at: r.ts(12)?,
        updated_at: r.ts(13)?,
        expires_at: r.ts(14)?,
        approved_at: r.opt_ts(15)?,
        canceled_at: r.opt_ts(16)?,
        expired_at: r.opt_ts(17)?,
        max_attempts_reached_at: r.opt_ts(18)?,
        failed_at: r.opt_ts(19)?,
        failure_reason: r.opt_text(20)?,
        version: r.int(21)?,
        max_attempts: r.int(22)? as u32,
        brand: r.opt_text(23)?,
        app_hash: r.opt_text(24)?,
        psd2: match (r.opt_text(25)?, r.opt_text(26)?) {
            (Some(amount), Some(payee)) => Some(phonegate_core::psd2::Psd2 { amount, payee }),
            _ => None,
        },
        test: r.bool(27)?,
        texts: r
            .opt_text(28)?
            .map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Other(format!("verification texts: {e}"))))
            .transpose()?,
        email_from: r.opt_text(34)?,
        send_digits: r.opt_text(35)?,
    })
}

impl<D: Db> VerificationReads for Repo<D> {
    fn verification(&mut self, id: &str) -> StoreResult<Option<Verification>> {
        self.row(&BY_ID, args![id])?.map(decode).transpose()
    }

    fn pending_verification(&mut self, service_id: &str, to: &Recipient) -> StoreResult<Option<Verification>> {
        self.row(&PENDING, args![service_id, to.as_str()])?.map(decode).transpose()
    }

    fn latest_silent_verification(&mut self, service_id: &str, to: &PhoneNumber) -> StoreResult<Option<Verification>> {
        self.row(&LATEST_SILENT, args![service_id, to.as_str()])?.map(decode).transpose()
    }

    fn locked_verification(&mut self, service_id: &str, to: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Verification>> {
        self.row(&LOCKED, args![service_id, to.as_str(), now])?.map(decode).transpose()
    }

    fn checks(&mut self, verification_id: &str) -> StoreResult<Vec<CheckRecord>> {
        let rows = self.rows(&CHECKS, args![verification_id])?;
        rows.into_iter().map(|mut r| Ok(CheckRecord { at: r.ts(0)?, valid: r.int(1)? != 0, ip: r.opt_text(2)? })).collect()
    }

    #[allow(clippy::type_complexity)] // (number, created, approved)
    fn recent_verifications(
        &mut self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(Recipient, DateTime<Utc>, Option<DateTime<Utc>>)>> {
        let rows = self.rows(&RECENT, args![since, limit])?;
        rows.into_iter().map(|mut r| Ok((Recipient::from_trusted(r.text(0)?), r.ts(1)?, r.opt_ts(2)?))).collect()
    }

    fn due_steps(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<String>> {
        let rows = self.rows(&DUE_STEPS, args![now, limit])?;
        rows.into_iter().map(|mut r| r.text(0)).collect()
    }
}

impl<D: Db> VerificationWrites for Repo<D> {
    fn insert_verification(&mut self, v: &Verification) -> StoreResult<bool> {
        let args = args![
            &v.id,
            &v.service_id,
            v.to.as_str(),
            v.channel.as_str(),
            &v.locale,
            v.status.as_str(),
            i64::from(v.code_length),
            &v.code_digest,
            &v.code_sealed,
            v.attempts,
            v.sends,
            v.send_window_started_at,
            v.created_at,
            v.updated_at,
            v.expires_at,
            v.approved_at,
            v.canceled_at,
            v.expired_at,
            v.max_attempts_reached_at,
            v.failed_at,
            &v.failure_reason,
            v.version,
            v.max_attempts,
            &v.brand,
            &v.app_hash,
            &v.psd2.as_ref().map(|p| p.amount.clone()),
            &v.psd2.as_ref().map(|p| p.payee.clone()),
            v.test,
            &v.texts.as_ref().map(serde_json::to_string).transpose().map_err(|e| StoreError::Other(format!("verification texts: {e}")))?,
            (v.workflow != Workflow::single(v.channel)).then(|| v.workflow.encode()),
            v.step,
            v.step_due_at,
            v.manual_steps,
            &v.key_id,
            &v.email_from,
            &v.send_digits,
        ];
        Ok(self.exec(&INSERT, args)? == 1)
    }

    fn update_verification(&mut self, v: &Verification) -> StoreResult<()> {
        let args = args![
            &v.locale,
            v.status.as_str(),
            v.attempts,
            v.sends,
            v.send_window_started_at,
            v.updated_at,
            v.approved_at,
            v.canceled_at,
            v.expired_at,
            v.max_attempts_reached_at,
            v.failed_at,
            &v.failure_reason,
            v.step,
            v.step_due_at,
            &v.email_from,
            &v.send_digits,
            &v.id,
            v.version,
        ];
        match self.exec(&UPDATE, args)? {
            1 => Ok(()),
            0 => Err(StoreError::Conflict),
            n => Err(StoreError::Other(format!("an update of one verification touched {n} rows"))),
        }
    }

    fn expire_due_verifications(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<(String, Channel)>> {
        let rows = self.rows(&EXPIRE_DUE, args![now, limit])?;
        rows.into_iter().map(|mut r| Ok((r.text(0)?, Channel::parse(&r.text(1)?).unwrap_or(Channel::Sms)))).collect()
    }

    fn insert_check(&mut self, verification_id: &str, c: &CheckRecord) -> StoreResult<()> {
        self.exec(&INSERT_CHECK, args![verification_id, c.at, i64::from(c.valid), &c.ip]).map(|_| ())
    }

    fn purge_before(&mut self, cutoff: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        self.exec(&PURGE_CHECKS, args![cutoff, limit])?;
        self.exec(&PURGE_SILENT, args![cutoff, limit])?;
        self.exec(&PURGE_MESSAGES, args![cutoff, limit])?;
        let deleted = self.exec(&PURGE_VERIFICATIONS, args![cutoff, limit])?;
        for sql in [
            &PURGE_INBOUND,
            &PURGE_HELD_RECEIPTS,
            &super::budgets::PURGE_COUNTERS,
            &super::silent::PURGE_USED_TOKENS,
            &super::vonage::PURGE_CALLBACKS,
        ] {
            self.exec(sql, args![cutoff, limit])?;
        }
        Ok(deleted)
    }
}

static DUE_STEPS: Sql = Sql::new(
    "SELECT id FROM verifications WHERE status = 'pending' AND step_due_at IS NOT NULL AND step_due_at <= $1 ORDER BY step_due_at LIMIT $2",
);
static RECENT: Sql =
    Sql::new("SELECT to_number, created_at, approved_at FROM verifications WHERE created_at >= $1 ORDER BY created_at DESC LIMIT $2");
