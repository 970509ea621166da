//! The outbound message queue, held receipts, inbound messages and opt-outs.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::message::{DeliveryStatus, InboundMessage, Message};
use phonegate_core::ports::{
    InboundWrites, Lease, MessageReads, MessageResult, MessageWrites, OptOutReads, OptOutWrites, StoreError, StoreResult,
};
use phonegate_core::{Channel, PhoneNumber, Recipient};

macro_rules! columns {
    () => {
        "id, verification_id, service, to_number, body_sealed, resend, status, provider, provider_message_id, error, \
         claims, created_at, updated_at, channel, step"
    };
}

static INSERT: Sql = Sql::new(concat!(
    "INSERT INTO messages (",
    columns!(),
    ", lease_token, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
));
/// Several instances claim at once: each skips the rows another is claiming. The first
/// `status IN (…)` is the condition of the partial index `messages_due`: without it the OR keeps
/// the planner off that index and every claim scans the whole table.
static CLAIM_DUE: Sql = Sql::new(concat!(
    "UPDATE messages SET status = 'sending', claims = claims + 1, lease_token = $1, lease_until = $2, updated_at = $3 \
     WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'sending') \
                  AND ((status = 'queued' AND created_at <= $5) OR (status = 'sending' AND lease_until <= $3)) \
                  ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     AND ((status = 'queued' AND created_at <= $5) OR (status = 'sending' AND lease_until <= $3)) RETURNING ",
    columns!()
));
static FINISH: Sql = Sql::new(
    "UPDATE messages SET status = $1, provider = $2, provider_message_id = $3, error = $4, updated_at = $5, \
     lease_token = NULL, lease_until = NULL WHERE id = $6 AND status = 'sending' AND lease_token = $7",
);
/// `$5`/`$6`: the statuses the receipt may follow (the core's rule), padded with a status no
/// message has.
static APPLY_RECEIPT: Sql = Sql::new(concat!(
    "UPDATE messages SET status = $1, error = COALESCE($2, error), updated_at = $3 \
     WHERE provider_message_id = $4 AND status IN ($5, $6) RETURNING ",
    columns!()
));
static HOLD_RECEIPT: Sql = Sql::new(
    "INSERT INTO early_receipts (provider_message_id, status, error, received_at) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = $1) \
     ON CONFLICT (provider_message_id) DO UPDATE SET status = excluded.status, error = excluded.error, received_at = excluded.received_at",
);
/// Holding a receipt and taking it for a newly sent message take turns per provider message id,
/// so neither misses the other's write (READ COMMITTED sees only what was committed before each
/// statement).
static LOCK_PROVIDER_MESSAGE_ID: Sql = Sql::postgres_only("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
static TAKE_HELD_RECEIPT: Sql = Sql::new("DELETE FROM early_receipts WHERE provider_message_id = $1 RETURNING status, error");
static FOR_VERIFICATION: Sql =
    Sql::new(concat!("SELECT ", columns!(), " FROM messages WHERE verification_id = $1 ORDER BY created_at, id"));
// `'outbox'` is `outbox::PROVIDER` and `'test'` `test_numbers::PROVIDER` (the messages test numbers
// were given), written out so the partial indexes on them apply. Two
// statements, not `$1 IS NULL OR to_number = $1`: an OR keeps the planner off the index.
static OUTBOX: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE provider IN ('outbox', 'test') ORDER BY created_at DESC, id DESC LIMIT $1"
));
static OUTBOX_TO: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM messages WHERE provider IN ('outbox', 'test') AND to_number = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
));
static IS_OPTED_OUT: Sql = Sql::new("SELECT 1 AS one FROM opt_outs WHERE number = $1");
static OPT_OUT: Sql = Sql::new("INSERT INTO opt_outs (number, created_at) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING");
static OPT_IN: Sql = Sql::new("DELETE FROM opt_outs WHERE number = $1");
static INSERT_INBOUND: Sql = Sql::new(
    "INSERT INTO inbound_messages (id, provider, provider_message_id, from_number, to_number, body, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, provider_message_id) DO NOTHING",
);

fn decode(mut r: Row) -> StoreResult<Message> {
    let status = r.text(6)?;
    Ok(Message {
        id: r.text(0)?,
        verification_id: r.opt_text(1)?,
        service: r.opt_text(2)?,
        to: Recipient::from_trusted(r.text(3)?),
        body_sealed: r.blob(4)?,
        resend: r.bool(5)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| StoreError::Other(format!("unknown delivery status `{status}`")))?,
        provider: r.opt_text(7)?,
        provider_message_id: r.opt_text(8)?,
        error: r.opt_text(9)?,
        claims: r.int(10)? as u32,
        created_at: r.ts(11)?,
        updated_at: r.ts(12)?,
        channel: {
            let c = r.text(13)?;
            Channel::parse(&c).ok_or_else(|| StoreError::Other(format!("unknown channel `{c}`")))?
        },
        step: r.opt_int(14)?.map(|s| s as u32),
    })
}

fn decode_all(rows: Vec<Row>) -> StoreResult<Vec<Message>> {
    rows.into_iter().map(decode).collect()
}

impl<D: Db> MessageReads for Repo<D> {
    fn messages_for_verification(&mut self, verification_id: &str) -> StoreResult<Vec<Message>> {
        decode_all(self.rows(&FOR_VERIFICATION, args![verification_id])?)
    }

    fn outbox(&mut self, to: Option<&str>, limit: u32) -> StoreResult<Vec<Message>> {
        decode_all(match to {
            Some(to) => self.rows(&OUTBOX_TO, args![to, limit])?,
            None => self.rows(&OUTBOX, args![limit])?,
        })
    }

    fn message_counts(&mut self, since: DateTime<Utc>) -> StoreResult<Vec<(Option<String>, String, i64)>> {
        let rows = self.rows(&MESSAGE_COUNTS, args![since])?;
        rows.into_iter().map(|mut r| Ok((r.opt_text(0)?, r.text(1)?, r.int(2)?))).collect()
    }
}

impl<D: Db> MessageWrites for Repo<D> {
    fn insert_message(&mut self, m: &Message, lease: Option<&Lease>) -> StoreResult<()> {
        let args = args![
            &m.id,
            &m.verification_id,
            &m.service,
            m.to.as_str(),
            &m.body_sealed,
            m.resend,
            m.status.as_str(),
            &m.provider,
            &m.provider_message_id,
            &m.error,
            m.claims,
            m.created_at,
            m.updated_at,
            m.channel.as_str(),
            m.step.map(i64::from),
            lease.map(|l| l.token.as_str()),
            lease.map(|l| l.until),
        ];
        self.exec(&INSERT, args).map(|_| ())
    }

    fn claim_due_messages(
        &mut self,
        now: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        decode_all(self.rows(&CLAIM_DUE, args![token, lease_until, now, limit, queued_before])?)
    }

    fn finish_message(&mut self, id: &str, token: &str, r: &MessageResult, now: DateTime<Utc>) -> StoreResult<bool> {
        let args = args![r.status.as_str(), &r.provider, &r.provider_message_id, &r.error, now, id, token];
        Ok(self.exec(&FINISH, args)? == 1)
    }

    fn apply_receipt(
        &mut self,
        pmid: &str,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let mut follows = DeliveryStatus::ALL.into_iter().filter(|c| status.can_follow(*c)).map(|c| c.as_str());
        let (Some(first), second) = (follows.next(), follows.next()) else { return Ok(None) };
        debug_assert!(follows.next().is_none(), "a receipt follows at most two statuses");
        let args = args![status.as_str(), error, now, pmid, first, second.unwrap_or("")];
        self.row(&APPLY_RECEIPT, args)?.map(decode).transpose()
    }

    fn hold_receipt(&mut self, pmid: &str, status: DeliveryStatus, error: Option<&str>, now: DateTime<Utc>) -> StoreResult<bool> {
        self.exec(&LOCK_PROVIDER_MESSAGE_ID, args![pmid])?;
        Ok(self.exec(&HOLD_RECEIPT, args![pmid, status.as_str(), error, now])? > 0)
    }

    fn take_held_receipt(&mut self, pmid: &str) -> StoreResult<Option<(DeliveryStatus, Option<String>)>> {
        self.exec(&LOCK_PROVIDER_MESSAGE_ID, args![pmid])?;
        let Some(mut row) = self.row(&TAKE_HELD_RECEIPT, args![pmid])? else { return Ok(None) };
        let status = row.text(0)?;
        Ok(DeliveryStatus::parse(&status).map(|s| (s, row.opt_text(1).ok().flatten())))
    }
}

static MESSAGE_COUNTS: Sql =
    Sql::new("SELECT provider, status, COUNT(*) FROM messages WHERE created_at >= $1 GROUP BY provider, status ORDER BY provider, status");

impl<D: Db> OptOutReads for Repo<D> {
    fn is_opted_out(&mut self, number: &PhoneNumber) -> StoreResult<bool> {
        Ok(self.row(&IS_OPTED_OUT, args![number.as_str()])?.is_some())
    }
}

impl<D: Db> OptOutWrites for Repo<D> {
    fn set_opted_out(&mut self, number: &PhoneNumber, opted_out: bool, now: DateTime<Utc>) -> StoreResult<()> {
        if opted_out {
            self.exec(&OPT_OUT, args![number.as_str(), now])?;
        } else {
            self.exec(&OPT_IN, args![number.as_str()])?;
        }
        Ok(())
    }
}

impl<D: Db> InboundWrites for Repo<D> {
    fn insert_inbound(&mut self, m: &InboundMessage) -> StoreResult<bool> {
        let args = args![&m.id, &m.provider, &m.provider_message_id, m.from.as_str(), &m.to, &m.body, m.received_at];
        Ok(self.exec(&INSERT_INBOUND, args)? == 1)
    }
}
