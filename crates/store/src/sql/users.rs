//! Users, login flows, sessions, refresh tokens and access-token signing keys.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::PhoneNumber;
use phonegate_core::accounts::events::AccountEvent;
use phonegate_core::accounts::invites::Invite;
use phonegate_core::accounts::{Flow, FlowKind, JwtAlgorithm, JwtKey, Session, SessionKind, User};
use phonegate_core::ports::{AccountReads, AccountWrites, StoreError, StoreResult};

macro_rules! user_sql {
    ($where:literal) => {
        Sql::new(concat!(
            "SELECT id, username, email, phone, password_hash, roles, created_at, last_login_at, email_verified FROM users ",
            $where
        ))
    };
}
static INSERT_USER: Sql = Sql::new(
    "INSERT INTO users (id, username, username_lc, email, email_lc, phone, password_hash, roles, created_at, last_login_at, email_verified) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
);
static USER: Sql = user_sql!("WHERE id = $1");
static USER_BY_LOGIN: Sql = user_sql!("WHERE username_lc = $1 OR email_lc = $1 ORDER BY (username_lc = $1) DESC LIMIT 1");
static USER_BY_PHONE: Sql = user_sql!("WHERE phone = $1");
static USER_BY_EMAIL: Sql = user_sql!("WHERE email_lc = $1");
static RELEASE_EMAIL: Sql =
    Sql::new("UPDATE users SET email = NULL, email_lc = NULL WHERE id = $1 AND email_lc = $2 AND email_verified = 0");
static SET_EMAIL: Sql = Sql::new("UPDATE users SET email = $2, email_lc = $3, email_verified = $4 WHERE id = $1");
static USERS: Sql = user_sql!("ORDER BY username_lc");
/// Roles are stored space-separated; an admin's list holds the word `admin`.
static ADMIN_COUNT: Sql = Sql::new("SELECT COUNT(*) FROM users WHERE ' ' || roles || ' ' LIKE '% admin %'");
static SET_ROLES: Sql = Sql::new("UPDATE users SET roles = $2 WHERE id = $1");
static USERNAME_TAKEN: Sql = Sql::new("SELECT COUNT(*) FROM users WHERE username_lc = $1");
static EMAIL_TAKEN: Sql = Sql::new("SELECT COUNT(*) FROM users WHERE email_lc = $1");
static SET_LAST_LOGIN: Sql = Sql::new("UPDATE users SET last_login_at = $2 WHERE id = $1");
static SET_PHONE: Sql = Sql::new("UPDATE users SET phone = $2 WHERE id = $1");
static SET_PASSWORD: Sql = Sql::new("UPDATE users SET password_hash = $2 WHERE id = $1 AND COALESCE(password_hash, '') = COALESCE($3, '')");
static DELETE_USER_TOKENS: Sql = Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)");
static DELETE_USER_SESSIONS: Sql = Sql::new("DELETE FROM sessions WHERE user_id = $1");
static DELETE_USER_CONSENTS: Sql = Sql::new("DELETE FROM oidc_consents WHERE user_id = $1");
static DELETE_USER: Sql = Sql::new("DELETE FROM users WHERE id = $1");

static INSERT_FLOW: Sql = Sql::new(
    "INSERT INTO auth_flows (id, kind, user_id, phone, username, email, password_hash, verification_id, login, attempts, created_at, \
     expires_at, last_sent_at, used_at, invite_id, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
);
macro_rules! flow_sql {
    ($where:literal) => {
        Sql::new(concat!(
            "SELECT id, kind, user_id, phone, username, email, password_hash, verification_id, login, attempts, created_at, expires_at, \
             last_sent_at, used_at, invite_id, origin FROM auth_flows ",
            $where
        ))
    };
}
static FLOW: Sql = flow_sql!("WHERE id = $1 FOR UPDATE");
static EMAIL_FLOW: Sql = flow_sql!(
    "WHERE user_id = $1 AND kind = 'email_change' AND used_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT 1"
);
static REPLY_FLOW: Sql = flow_sql!(
    "WHERE phone = $1 AND origin = 'sms_reply' AND used_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id LIMIT 1 FOR UPDATE"
);
static INVITE_CODE: Sql = Sql::new("SELECT generation, created_at FROM invite_codes ORDER BY generation DESC LIMIT 1");
static INSERT_INVITE_CODE: Sql = Sql::new("INSERT INTO invite_codes (generation, created_at, created_by) VALUES ($1, $2, $3)");
static UPDATE_FLOW: Sql =
    Sql::new("UPDATE auth_flows SET attempts = $2, last_sent_at = $3, used_at = $4, verification_id = $5, expires_at = $6 WHERE id = $1");

macro_rules! session_sql {
    ($where:literal) => {
        Sql::new(concat!(
            "SELECT id, user_id, kind, secret_hash, device, ip, created_at, last_seen_at, expires_at, auth_time, amr, client_id, scope \
             FROM sessions ",
            $where
        ))
    };
}
static INSERT_SESSION: Sql = Sql::new(
    "INSERT INTO sessions (id, user_id, kind, secret_hash, device, ip, created_at, last_seen_at, expires_at, auth_time, amr, client_id, \
     scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
);
static SESSION: Sql = session_sql!("WHERE id = $1 FOR UPDATE");
static SESSION_BY_SECRET: Sql = session_sql!("WHERE secret_hash = $1");
static SESSIONS_OF: Sql = session_sql!("WHERE user_id = $1 ORDER BY created_at DESC, id");
static TOUCH_SESSION: Sql = Sql::new("UPDATE sessions SET last_seen_at = $2 WHERE id = $1");
static SET_SESSION_SECRET: Sql = Sql::new("UPDATE sessions SET secret_hash = $2, last_seen_at = $3 WHERE id = $1");
static DELETE_SESSION_TOKENS: Sql =
    Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE id = $2 AND user_id = $1)");
static DELETE_SESSION: Sql = Sql::new("DELETE FROM sessions WHERE id = $2 AND user_id = $1");
static DELETE_OTHER_TOKENS: Sql =
    Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2)");
static DELETE_OTHER_SESSIONS: Sql = Sql::new("DELETE FROM sessions WHERE user_id = $1 AND id <> $2");

static INSERT_REFRESH: Sql =
    Sql::new("INSERT INTO refresh_tokens (token_hash, session_id, created_at, spent_at) VALUES ($1, $2, $3, NULL)");
static REFRESH: Sql = Sql::new("SELECT session_id, spent_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE");
static SPEND_REFRESH: Sql = Sql::new("UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1");

static JWT_KEYS: Sql = Sql::new("SELECT kid, alg, private_sealed, public_jwk, created_at FROM jwt_keys ORDER BY created_at DESC, kid DESC");
static INSERT_JWT_KEY: Sql =
    Sql::new("INSERT INTO jwt_keys (kid, alg, private_sealed, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)");

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("unknown {what} in the database"))
}

fn user(mut r: Row) -> StoreResult<User> {
    Ok(User {
        id: r.text(0)?,
        username: r.text(1)?,
        email: r.opt_text(2)?,
        phone: PhoneNumber::from_trusted(r.text(3)?),
        password_hash: r.opt_text(4)?,
        roles: r.text(5)?.split_whitespace().map(str::to_string).collect(),
        created_at: r.ts(6)?,
        last_login_at: r.opt_ts(7)?,
        email_verified: r.bool(8)?,
    })
}

fn flow(mut r: Row) -> StoreResult<Flow> {
    let origin = r.opt_text(15)?;
    Ok(Flow {
        id: r.text(0)?,
        kind: FlowKind::parse(&r.text(1)?).ok_or_else(|| corrupt("flow kind"))?,
        user_id: r.opt_text(2)?,
        phone: r.opt_text(3)?.map(PhoneNumber::from_trusted),
        username: r.opt_text(4)?,
        email: r.opt_text(5)?,
        password_hash: r.opt_text(6)?,
        verification_id: r.opt_text(7)?,
        login: r.opt_text(8)?,
        attempts: r.int(9)? as u32,
        created_at: r.ts(10)?,
        expires_at: r.ts(11)?,
        last_sent_at: r.ts(12)?,
        used_at: r.opt_ts(13)?,
        invite_id: r.opt_text(14)?,
        by_reply: origin.as_deref() == Some("sms_reply"),
        recognised: origin.as_deref() == Some("device"),
    })
}

fn session(mut r: Row) -> StoreResult<Session> {
    Ok(Session {
        id: r.text(0)?,
        user_id: r.text(1)?,
        kind: SessionKind::parse(&r.text(2)?).ok_or_else(|| corrupt("session kind"))?,
        secret_hash: match r.take_cell(3) {
            super::Cell::Blob(b) => Some(b),
            _ => None,
        },
        device: r.opt_text(4)?,
        ip: r.opt_text(5)?,
        created_at: r.ts(6)?,
        last_seen_at: r.ts(7)?,
        expires_at: r.ts(8)?,
        auth_time: match r.opt_ts(9)? {
            Some(t) => t,
            None => r.ts(6)?,
        },
        amr: r.opt_text(10)?.unwrap_or_default().split_whitespace().map(str::to_string).collect(),
        client_id: r.opt_text(11)?,
        scope: r.opt_text(12)?,
    })
}

fn phone_text(p: &Option<PhoneNumber>) -> Option<String> {
    p.as_ref().map(|p| p.as_str().to_string())
}

impl<D: Db> AccountReads for Repo<D> {
    fn user(&mut self, id: &str) -> StoreResult<Option<User>> {
        self.row(&USER, args![id])?.map(user).transpose()
    }

    fn user_by_login(&mut self, login_lc: &str) -> StoreResult<Option<User>> {
        self.row(&USER_BY_LOGIN, args![login_lc])?.map(user).transpose()
    }

    fn user_by_phone(&mut self, phone: &PhoneNumber) -> StoreResult<Option<User>> {
        self.row(&USER_BY_PHONE, args![phone.as_str()])?.map(user).transpose()
    }

    fn user_by_email(&mut self, email_lc: &str) -> StoreResult<Option<User>> {
        self.row(&USER_BY_EMAIL, args![email_lc])?.map(user).transpose()
    }

    fn username_taken(&mut self, username_lc: &str) -> StoreResult<bool> {
        Ok(self.row(&USERNAME_TAKEN, args![username_lc])?.map(|mut r| r.int(0)).transpose()?.unwrap_or(0) > 0)
    }

    fn users(&mut self) -> StoreResult<Vec<User>> {
        self.rows(&USERS, args![])?.into_iter().map(user).collect()
    }

    fn admin_count(&mut self) -> StoreResult<i64> {
        Ok(self.row(&ADMIN_COUNT, args![])?.map(|mut r| r.int(0)).transpose()?.unwrap_or(0))
    }

    fn email_taken(&mut self, email_lc: &str) -> StoreResult<bool> {
        Ok(self.row(&EMAIL_TAKEN, args![email_lc])?.map(|mut r| r.int(0)).transpose()?.unwrap_or(0) > 0)
    }

    fn flow(&mut self, id: &str) -> StoreResult<Option<Flow>> {
        self.row(&FLOW, args![id])?.map(flow).transpose()
    }

    fn email_flow(&mut self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Flow>> {
        self.row(&EMAIL_FLOW, args![user_id, now])?.map(flow).transpose()
    }

    fn reply_flow(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Flow>> {
        self.row(&REPLY_FLOW, args![phone.as_str(), now])?.map(flow).transpose()
    }

    fn invite_code(&mut self) -> StoreResult<Option<(i64, DateTime<Utc>)>> {
        match self.row(&INVITE_CODE, args![])? {
            Some(mut r) => Ok(Some((r.int(0)?, r.ts(1)?))),
            None => Ok(None),
        }
    }

    fn session(&mut self, id: &str) -> StoreResult<Option<Session>> {
        self.row(&SESSION, args![id])?.map(session).transpose()
    }

    fn session_by_secret(&mut self, secret_hash: &[u8]) -> StoreResult<Option<Session>> {
        self.row(&SESSION_BY_SECRET, args![secret_hash])?.map(session).transpose()
    }

    fn sessions_of(&mut self, user_id: &str) -> StoreResult<Vec<Session>> {
        self.rows(&SESSIONS_OF, args![user_id])?.into_iter().map(session).collect()
    }

    fn refresh_token(&mut self, token_hash: &[u8]) -> StoreResult<Option<(String, Option<DateTime<Utc>>)>> {
        let Some(mut r) = self.row(&REFRESH, args![token_hash])? else { return Ok(None) };
        Ok(Some((r.text(0)?, r.opt_ts(1)?)))
    }

    fn jwt_keys(&mut self) -> StoreResult<Vec<JwtKey>> {
        self.rows(&JWT_KEYS, args![])?
            .into_iter()
            .map(|mut r| {
                Ok(JwtKey {
                    kid: r.text(0)?,
                    alg: JwtAlgorithm::parse(&r.text(1)?).ok_or_else(|| corrupt("signing algorithm"))?,
                    private_sealed: r.blob(2)?,
                    public_jwk: r.text(3)?,
                    created_at: r.ts(4)?,
                })
            })
            .collect()
    }

    fn invite(&mut self, id: &str) -> StoreResult<Option<Invite>> {
        self.row(&INVITE, args![id])?.map(invite).transpose()
    }

    fn invites(&mut self) -> StoreResult<Vec<Invite>> {
        self.rows(&INVITES, args![])?.into_iter().map(invite).collect()
    }

    fn live_invite(&mut self, phone: &PhoneNumber, now: DateTime<Utc>) -> StoreResult<Option<Invite>> {
        self.row(&LIVE_INVITE, args![phone.as_str(), now])?.map(invite).transpose()
    }
}

impl<D: Db> AccountWrites for Repo<D> {
    fn insert_user(&mut self, u: &User) -> StoreResult<()> {
        let (name_lc, email_lc) = (u.username.to_lowercase(), u.email.as_ref().map(|e| e.to_lowercase()));
        let roles = u.roles.join(" ");
        let args = args![
            &u.id,
            &u.username,
            &name_lc,
            &u.email,
            &email_lc,
            u.phone.as_str(),
            &u.password_hash,
            &roles,
            u.created_at,
            u.last_login_at,
            i64::from(u.email_verified)
        ];
        self.exec(&INSERT_USER, args).map(|_| ())
    }

    fn set_roles(&mut self, user_id: &str, roles: &[String]) -> StoreResult<()> {
        self.exec(&SET_ROLES, args![user_id, &roles.join(" ")]).map(|_| ())
    }

    fn set_last_login(&mut self, user_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&SET_LAST_LOGIN, args![user_id, at]).map(|_| ())
    }

    fn set_user_phone(&mut self, user_id: &str, phone: &PhoneNumber) -> StoreResult<()> {
        self.exec(&SET_PHONE, args![user_id, phone.as_str()]).map(|_| ())
    }

    fn set_user_email(&mut self, user_id: &str, email: Option<&str>, verified: bool) -> StoreResult<()> {
        let lc = email.map(str::to_lowercase);
        self.exec(&SET_EMAIL, args![user_id, email, &lc, i64::from(verified)]).map(|_| ())
    }

    fn release_unverified_email(&mut self, user_id: &str, email_lc: &str) -> StoreResult<bool> {
        Ok(self.exec(&RELEASE_EMAIL, args![user_id, email_lc])? == 1)
    }

    fn set_password_hash(&mut self, user_id: &str, hash: &str, expected: Option<&str>) -> StoreResult<bool> {
        Ok(self.exec(&SET_PASSWORD, args![user_id, hash, expected])? == 1)
    }

    fn delete_user(&mut self, user_id: &str) -> StoreResult<bool> {
        self.exec(&DELETE_USER_TOKENS, args![user_id])?;
        self.exec(&DELETE_USER_SESSIONS, args![user_id])?;
        self.exec(&DELETE_USER_CONSENTS, args![user_id])?;
        Ok(self.exec(&DELETE_USER, args![user_id])? == 1)
    }

    fn insert_flow(&mut self, f: &Flow) -> StoreResult<()> {
        let args = args![
            &f.id,
            f.kind.as_str(),
            &f.user_id,
            &phone_text(&f.phone),
            &f.username,
            &f.email,
            &f.password_hash,
            &f.verification_id,
            &f.login,
            f.attempts,
            f.created_at,
            f.expires_at,
            f.last_sent_at,
            f.used_at,
            &f.invite_id,
            if f.by_reply { Some("sms_reply") } else { f.recognised.then_some("device") }
        ];
        self.exec(&INSERT_FLOW, args).map(|_| ())
    }

    fn insert_invite_code(&mut self, generation: i64, at: DateTime<Utc>, by: &str) -> StoreResult<()> {
        self.exec(&INSERT_INVITE_CODE, args![generation, at, by]).map(|_| ())
    }

    fn update_flow(&mut self, f: &Flow) -> StoreResult<()> {
        self.exec(&UPDATE_FLOW, args![&f.id, f.attempts, f.last_sent_at, f.used_at, &f.verification_id, f.expires_at]).map(|_| ())
    }

    fn insert_session(&mut self, s: &Session) -> StoreResult<()> {
        let secret = super::Value::Blob(s.secret_hash.clone());
        let mut a = args![&s.id, &s.user_id, s.kind.as_str()];
        a.push(secret);
        let amr = (!s.amr.is_empty()).then(|| s.amr.join(" "));
        a.extend(args![&s.device, &s.ip, s.created_at, s.last_seen_at, s.expires_at, s.auth_time, amr, &s.client_id, &s.scope]);
        self.exec(&INSERT_SESSION, a).map(|_| ())
    }

    fn touch_session(&mut self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&TOUCH_SESSION, args![id, at]).map(|_| ())
    }

    fn set_session_secret(&mut self, id: &str, secret_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&SET_SESSION_SECRET, args![id, secret_hash, at]).map(|_| ())
    }

    fn delete_session(&mut self, user_id: &str, id: &str) -> StoreResult<bool> {
        self.exec(&DELETE_SESSION_TOKENS, args![user_id, id])?;
        Ok(self.exec(&DELETE_SESSION, args![user_id, id])? == 1)
    }

    fn delete_sessions_of(&mut self, user_id: &str) -> StoreResult<u64> {
        self.exec(&DELETE_USER_TOKENS, args![user_id])?;
        self.exec(&DELETE_USER_SESSIONS, args![user_id])
    }

    fn delete_other_sessions(&mut self, user_id: &str, keep: &str) -> StoreResult<u64> {
        self.exec(&DELETE_OTHER_TOKENS, args![user_id, keep])?;
        self.exec(&DELETE_OTHER_SESSIONS, args![user_id, keep])
    }

    fn insert_refresh_token(&mut self, token_hash: &[u8], session_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&INSERT_REFRESH, args![token_hash, session_id, at]).map(|_| ())
    }

    fn spend_refresh_token(&mut self, token_hash: &[u8], at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&SPEND_REFRESH, args![token_hash, at]).map(|_| ())
    }

    fn insert_jwt_key(&mut self, k: &JwtKey) -> StoreResult<()> {
        self.exec(&INSERT_JWT_KEY, args![&k.kid, k.alg.as_str(), &k.private_sealed, &k.public_jwk, k.created_at]).map(|_| ())
    }

    fn purge_accounts(&mut self, now: DateTime<Utc>, before: DateTime<Utc>, idle_since: DateTime<Utc>) -> StoreResult<u64> {
        let mut n = self.exec(&PURGE_FLOWS, args![before])?;
        n += self.exec(&PURGE_CODES, args![before])?;
        self.exec(&PURGE_SESSION_TOKENS, args![now, idle_since])?;
        n += self.exec(&PURGE_SESSIONS, args![now, idle_since])?;
        n += self.exec(&PURGE_EVENTS, args![before])?;
        Ok(n)
    }

    fn insert_invite(&mut self, i: &Invite) -> StoreResult<()> {
        let args =
            args![&i.id, i.phone.as_str(), &i.username, &i.created_by, i.created_at, i.expires_at, i.last_sent_at, i.used_at, i.revoked_at];
        self.exec(&INSERT_INVITE, args).map(|_| ())
    }

    fn use_invite(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.exec(&USE_INVITE, args![id, now])? == 1)
    }

    fn update_invite(&mut self, i: &Invite) -> StoreResult<()> {
        self.exec(&UPDATE_INVITE, args![&i.id, i.last_sent_at, i.revoked_at]).map(|_| ())
    }

    fn insert_account_event(&mut self, e: &AccountEvent, now: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&INSERT_EVENT, args![&e.id, &e.kind, &e.payload, e.created_at, now]).map(|_| ())
    }

    fn claim_account_events(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<AccountEvent>> {
        self.rows(&CLAIM_EVENTS, args![token, lease_until, now, limit])?
            .into_iter()
            .map(|mut r| {
                Ok(AccountEvent { id: r.text(0)?, kind: r.text(1)?, payload: r.text(2)?, created_at: r.ts(3)?, attempts: r.int(4)? as u32 })
            })
            .collect()
    }

    fn finish_account_event(
        &mut self,
        id: &str,
        token: &str,
        attempts: u32,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.exec(&FINISH_EVENT, args![id, token, attempts, due_at, done_at]).map(|_| ())
    }
}

static PURGE_FLOWS: Sql = Sql::new("DELETE FROM auth_flows WHERE expires_at < $1");
static PURGE_CODES: Sql = Sql::new("DELETE FROM oidc_codes WHERE expires_at < $1");
static PURGE_SESSION_TOKENS: Sql =
    Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < $1 OR last_seen_at < $2)");
static PURGE_SESSIONS: Sql = Sql::new("DELETE FROM sessions WHERE expires_at < $1 OR last_seen_at < $2");
static PURGE_EVENTS: Sql = Sql::new("DELETE FROM account_events WHERE done_at < $1");

macro_rules! invite_sql {
    ($rest:literal) => {
        Sql::new(concat!(
            "SELECT id, phone, username, created_by, created_at, expires_at, last_sent_at, used_at, revoked_at FROM invites ",
            $rest
        ))
    };
}
static INSERT_INVITE: Sql = Sql::new(
    "INSERT INTO invites (id, phone, username, created_by, created_at, expires_at, last_sent_at, used_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
);
static INVITE: Sql = invite_sql!("WHERE id = $1 FOR UPDATE");
static INVITES: Sql = invite_sql!("ORDER BY created_at DESC, id");
static LIVE_INVITE: Sql =
    invite_sql!("WHERE phone = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 1");
static USE_INVITE: Sql =
    Sql::new("UPDATE invites SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2");
static UPDATE_INVITE: Sql = Sql::new("UPDATE invites SET last_sent_at = $2, revoked_at = $3 WHERE id = $1");

fn invite(mut r: Row) -> StoreResult<Invite> {
    Ok(Invite {
        id: r.text(0)?,
        phone: PhoneNumber::from_trusted(r.text(1)?),
        username: r.opt_text(2)?,
        created_by: r.text(3)?,
        created_at: r.ts(4)?,
        expires_at: r.ts(5)?,
        last_sent_at: r.ts(6)?,
        used_at: r.opt_ts(7)?,
        revoked_at: r.opt_ts(8)?,
    })
}

static INSERT_EVENT: Sql = Sql::new(
    "INSERT INTO account_events (id, kind, payload, created_at, attempts, due_at, lease_token, done_at) \
     VALUES ($1, $2, $3, $4, 0, $5, NULL, NULL)",
);
static CLAIM_EVENTS: Sql = Sql::new(
    "UPDATE account_events SET lease_token = $1, due_at = $2 \
     WHERE id IN (SELECT id FROM account_events WHERE done_at IS NULL AND due_at <= $3 ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     AND done_at IS NULL AND due_at <= $3 RETURNING id, kind, payload, created_at, attempts",
);
static FINISH_EVENT: Sql =
    Sql::new("UPDATE account_events SET attempts = $3, due_at = $4, done_at = $5, lease_token = NULL WHERE id = $1 AND lease_token = $2");
