//! OpenID Connect: clients made through the admin API, authorization codes and consents.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::oidc_model::{AuthCode, Consent, OidcClient};
use phonegate_core::ports::{OidcReads, OidcWrites, StoreError, StoreResult};

static CLIENT: Sql = Sql::new("SELECT client_id, secret_hash, settings, created_at FROM oidc_clients WHERE client_id = $1");
static CLIENTS: Sql = Sql::new("SELECT client_id, secret_hash, settings, created_at FROM oidc_clients ORDER BY client_id");
static INSERT_CLIENT: Sql = Sql::new("INSERT INTO oidc_clients (client_id, secret_hash, settings, created_at) VALUES ($1, $2, $3, $4)");
static SET_SECRET: Sql = Sql::new("UPDATE oidc_clients SET secret_hash = $2 WHERE client_id = $1 AND secret_hash IS NOT NULL");
static DELETE_CLIENT: Sql = Sql::new("DELETE FROM oidc_clients WHERE client_id = $1");
static DELETE_CLIENT_CODES: Sql = Sql::new("DELETE FROM oidc_codes WHERE client_id = $1");
static DELETE_CLIENT_CONSENTS: Sql = Sql::new("DELETE FROM oidc_consents WHERE client_id = $1");
static DELETE_CLIENT_TOKENS: Sql =
    Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE client_id = $1)");
static DELETE_CLIENT_SESSIONS: Sql = Sql::new("DELETE FROM sessions WHERE client_id = $1");

static INSERT_CODE: Sql = Sql::new(
    "INSERT INTO oidc_codes (code_hash, client_id, grant_data, expires_at, used_at, session_id) VALUES ($1, $2, $3, $4, NULL, NULL)",
);
static CODE: Sql =
    Sql::new("SELECT code_hash, client_id, grant_data, expires_at, used_at, session_id FROM oidc_codes WHERE code_hash = $1 FOR UPDATE");
static USE_CODE: Sql = Sql::new("UPDATE oidc_codes SET used_at = $2, session_id = $3 WHERE code_hash = $1");

static CONSENT: Sql = Sql::new("SELECT user_id, client_id, scope, created_at FROM oidc_consents WHERE user_id = $1 AND client_id = $2");
static CONSENTS_OF: Sql =
    Sql::new("SELECT user_id, client_id, scope, created_at FROM oidc_consents WHERE user_id = $1 ORDER BY created_at, client_id");
static PUT_CONSENT: Sql = Sql::new(
    "INSERT INTO oidc_consents (user_id, client_id, scope, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
);
static DELETE_CONSENT: Sql = Sql::new("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2");
static DELETE_GRANT_TOKENS: Sql =
    Sql::new("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1 AND client_id = $2)");
static DELETE_GRANTS: Sql = Sql::new("DELETE FROM sessions WHERE user_id = $1 AND client_id = $2");

fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("unreadable {what} in the database"))
}

fn client(mut r: Row) -> StoreResult<OidcClient> {
    let client_id = r.text(0)?;
    let secret_hash = match r.take_cell(1) {
        super::Cell::Blob(b) => Some(b),
        _ => None,
    };
    let mut c: OidcClient = serde_json::from_str(&r.text(2)?).map_err(|_| corrupt("OpenID client"))?;
    c.client_id = client_id;
    c.secret_hash = secret_hash;
    c.created_at = Some(r.ts(3)?);
    c.configured = false;
    Ok(c)
}

fn code(mut r: Row) -> StoreResult<AuthCode> {
    let hash = r.blob(0)?;
    let client_id = r.text(1)?;
    let mut c: AuthCode = serde_json::from_str(&r.text(2)?).map_err(|_| corrupt("authorization code"))?;
    c.hash = hash;
    c.client_id = client_id;
    c.expires_at = r.ts(3)?;
    c.used_at = r.opt_ts(4)?;
    c.session_id = r.opt_text(5)?;
    Ok(c)
}

fn consent(mut r: Row) -> StoreResult<Consent> {
    Ok(Consent { user_id: r.text(0)?, client_id: r.text(1)?, scope: r.text(2)?, created_at: r.ts(3)? })
}

impl<D: Db> OidcReads for Repo<D> {
    fn oidc_client(&mut self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        self.row(&CLIENT, args![client_id])?.map(client).transpose()
    }

    fn oidc_clients(&mut self) -> StoreResult<Vec<OidcClient>> {
        self.rows(&CLIENTS, args![])?.into_iter().map(client).collect()
    }

    fn consent(&mut self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        self.row(&CONSENT, args![user_id, client_id])?.map(consent).transpose()
    }

    fn consents_of(&mut self, user_id: &str) -> StoreResult<Vec<Consent>> {
        self.rows(&CONSENTS_OF, args![user_id])?.into_iter().map(consent).collect()
    }
}

impl<D: Db> OidcWrites for Repo<D> {
    fn insert_oidc_client(&mut self, c: &OidcClient) -> StoreResult<()> {
        let settings = serde_json::to_string(c).map_err(|e| StoreError::Other(e.to_string()))?;
        let mut a = args![&c.client_id];
        a.push(super::Value::Blob(c.secret_hash.clone()));
        a.extend(args![&settings, c.created_at.unwrap_or_default()]);
        self.exec(&INSERT_CLIENT, a).map(|_| ())
    }

    fn set_oidc_client_secret(&mut self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool> {
        Ok(self.exec(&SET_SECRET, args![client_id, secret_hash])? == 1)
    }

    fn delete_oidc_client(&mut self, client_id: &str) -> StoreResult<bool> {
        self.exec(&DELETE_CLIENT_CODES, args![client_id])?;
        self.exec(&DELETE_CLIENT_CONSENTS, args![client_id])?;
        self.exec(&DELETE_CLIENT_TOKENS, args![client_id])?;
        self.exec(&DELETE_CLIENT_SESSIONS, args![client_id])?;
        Ok(self.exec(&DELETE_CLIENT, args![client_id])? == 1)
    }

    fn insert_auth_code(&mut self, c: &AuthCode) -> StoreResult<()> {
        let data = serde_json::to_string(c).map_err(|e| StoreError::Other(e.to_string()))?;
        self.exec(&INSERT_CODE, args![&c.hash, &c.client_id, &data, c.expires_at]).map(|_| ())
    }

    fn auth_code(&mut self, hash: &[u8]) -> StoreResult<Option<AuthCode>> {
        self.row(&CODE, args![hash])?.map(code).transpose()
    }

    fn use_auth_code(&mut self, hash: &[u8], at: DateTime<Utc>, session_id: &str) -> StoreResult<()> {
        self.exec(&USE_CODE, args![hash, at, session_id]).map(|_| ())
    }

    fn put_consent(&mut self, c: &Consent) -> StoreResult<()> {
        self.exec(&PUT_CONSENT, args![&c.user_id, &c.client_id, &c.scope, c.created_at]).map(|_| ())
    }

    fn revoke_client_access(&mut self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        let consents = self.exec(&DELETE_CONSENT, args![user_id, client_id])?;
        self.exec(&DELETE_GRANT_TOKENS, args![user_id, client_id])?;
        let grants = self.exec(&DELETE_GRANTS, args![user_id, client_id])?;
        Ok(consents + grants > 0)
    }
}
