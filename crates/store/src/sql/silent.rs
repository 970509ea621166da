//! Silent-check rows, and the tokens that may be used once.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::ports::{OnceWrites, SilentReads, SilentWrites, StoreError, StoreResult};
use phonegate_core::silent::{CheckState, Reason, SilentCheck};

macro_rules! columns {
    () => {
        "id, verification_id, provider, provider_ref, device_url_sealed, token_digest, state, reason, fallback, \
         return_path, created_at, expires_at, opened_at, finished_at"
    };
}

static INSERT: Sql =
    Sql::new(concat!("INSERT INTO silent_checks (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"));
static UPDATE: Sql = Sql::new(
    "UPDATE silent_checks SET provider_ref = $1, device_url_sealed = $2, state = $3, reason = $4, opened_at = $5, \
     finished_at = $6 WHERE id = $7",
);
static OF: Sql = Sql::new(concat!("SELECT ", columns!(), " FROM silent_checks WHERE verification_id = $1 FOR UPDATE"));
static BY_TOKEN: Sql = Sql::new(concat!("SELECT ", columns!(), " FROM silent_checks WHERE token_digest = $1 FOR UPDATE"));
static BY_REF: Sql = Sql::new(concat!("SELECT ", columns!(), " FROM silent_checks WHERE provider = $1 AND provider_ref = $2 FOR UPDATE"));
static DUE: Sql = Sql::new(concat!(
    "SELECT ",
    columns!(),
    " FROM silent_checks WHERE state IN ('created', 'opened') AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
));

fn decode(mut r: Row) -> StoreResult<SilentCheck> {
    let corrupt = |what: &str, v: &str| StoreError::Other(format!("unknown silent {what} `{v}`"));
    let state = r.text(6)?;
    let reason = r.opt_text(7)?;
    Ok(SilentCheck {
        id: r.text(0)?,
        verification_id: r.text(1)?,
        provider: r.text(2)?,
        provider_ref: r.opt_text(3)?,
        device_url_sealed: match r.take_cell(4) {
            super::Cell::Blob(b) => Some(b),
            _ => None,
        },
        token_digest: r.blob(5)?,
        state: CheckState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        reason: match reason {
            Some(s) => Some(Reason::parse(&s).ok_or_else(|| corrupt("reason", &s))?),
            None => None,
        },
        fallback: r.bool(8)?,
        return_path: r.opt_text(9)?,
        created_at: r.ts(10)?,
        expires_at: r.ts(11)?,
        opened_at: r.opt_ts(12)?,
        finished_at: r.opt_ts(13)?,
    })
}

fn one(row: Option<Row>) -> StoreResult<Option<SilentCheck>> {
    row.map(decode).transpose()
}

impl<D: Db> SilentReads for Repo<D> {
    fn silent_check_of(&mut self, verification_id: &str) -> StoreResult<Option<SilentCheck>> {
        let row = self.row(&OF, args![verification_id])?;
        one(row)
    }

    fn silent_check_by_token(&mut self, token_digest: &[u8]) -> StoreResult<Option<SilentCheck>> {
        let row = self.row(&BY_TOKEN, args![token_digest])?;
        one(row)
    }

    fn silent_check_by_ref(&mut self, provider: &str, provider_ref: &str) -> StoreResult<Option<SilentCheck>> {
        let row = self.row(&BY_REF, args![provider, provider_ref])?;
        one(row)
    }

    fn due_silent_checks(&mut self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<SilentCheck>> {
        let rows = self.rows(&DUE, args![now, limit])?;
        rows.into_iter().map(decode).collect()
    }
}

impl<D: Db> SilentWrites for Repo<D> {
    fn insert_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()> {
        let args = args![
            &c.id,
            &c.verification_id,
            &c.provider,
            &c.provider_ref,
            super::Value::Blob(c.device_url_sealed.clone()),
            &c.token_digest,
            c.state.as_str(),
            c.reason.map(|r| r.as_str()),
            i64::from(c.fallback),
            &c.return_path,
            c.created_at,
            c.expires_at,
            c.opened_at,
            c.finished_at
        ];
        self.exec(&INSERT, args).map(|_| ())
    }

    fn update_silent_check(&mut self, c: &SilentCheck) -> StoreResult<()> {
        let args = args![
            &c.provider_ref,
            super::Value::Blob(c.device_url_sealed.clone()),
            c.state.as_str(),
            c.reason.map(|r| r.as_str()),
            c.opened_at,
            c.finished_at,
            &c.id
        ];
        self.exec(&UPDATE, args).map(|_| ())
    }
}

static USE_ONCE: Sql = Sql::new("INSERT INTO used_tokens (digest, expires_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING");
pub(super) static PURGE_USED_TOKENS: Sql =
    Sql::new("DELETE FROM used_tokens WHERE digest IN (SELECT digest FROM used_tokens WHERE expires_at < $1 LIMIT $2)");

impl<D: Db> OnceWrites for Repo<D> {
    fn use_once(&mut self, digest: &[u8], expires_at: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.exec(&USE_ONCE, args![digest, expires_at])? == 1)
    }
}
