//! Services, API keys and server secrets.
use super::dialect::Sql;
use super::{Db, Repo, Row, args};
use chrono::{DateTime, Utc};
use phonegate_core::Channel;
use phonegate_core::apikey::{ApiKey, KeyScope};
use phonegate_core::ports::{ApiKeyReads, ApiKeyWrites, SecretWrites, ServiceReads, ServiceWrites, StoreError, StoreResult};
use phonegate_core::service::{ChannelSettings, Service};
use phonegate_core::workflow::Workflow;

/// The column list, as a macro so statements stay `&'static str`.
macro_rules! service_columns {
    () => {
        "id, name, code_length, code_ttl_secs, templates, created_at, custom_codes, psd2, friendly_name, updated_at, \
         workflow, email_from, email_reply_to, voice_key_press, voice_name, whatsapp_from"
    };
}

static INSERT_SERVICE: Sql = Sql::new(concat!(
    "INSERT INTO services (",
    service_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (name) DO NOTHING"
));
static SERVICE: Sql = Sql::new(concat!(
    "SELECT ",
    service_columns!(),
    " FROM services WHERE (id = $1 OR name = $1) AND deleted_at IS NULL ORDER BY (id = $1) DESC LIMIT 1"
));
static SERVICES: Sql = Sql::new(concat!("SELECT ", service_columns!(), " FROM services WHERE deleted_at IS NULL ORDER BY name"));
static LOCK_SERVICE: Sql =
    Sql::new(concat!("SELECT ", service_columns!(), " FROM services WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"));
/// `FOR KEY SHARE`: the lock a new verification's foreign key takes anyway; only a delete (`FOR
/// UPDATE`) waits for it.
static HOLD_SERVICE: Sql = Sql::new("SELECT id FROM services WHERE id = $1 AND deleted_at IS NULL FOR KEY SHARE");
static UPDATE_SERVICE: Sql = Sql::new(
    "UPDATE services SET name = $2, code_length = $3, code_ttl_secs = $4, templates = $5, custom_codes = $6, psd2 = $7, \
     friendly_name = $8, updated_at = $9, workflow = $10, email_from = $11, email_reply_to = $12, voice_key_press = $13, \
     voice_name = $14, whatsapp_from = $15 WHERE id = $1 AND deleted_at IS NULL",
);
/// A deleted service's name becomes its name, a line break and its id: no live service's name can
/// hold a line break, so the name is free again and no two deleted ones collide.
static DELETE_SERVICE: Sql =
    Sql::new("UPDATE services SET deleted_at = $2, updated_at = $2, name = name || $3 || id WHERE id = $1 AND deleted_at IS NULL");
static CANCEL_PENDING_OF_SERVICE: Sql = Sql::new(
    "UPDATE verifications SET status = 'canceled', canceled_at = $2, updated_at = $2, version = version + 1 \
     WHERE service_id = $1 AND status = 'pending' AND expires_at > $2 RETURNING channel",
);
static INSERT_KEY: Sql = Sql::new(
    "INSERT INTO api_keys (id, name, secret_hash, created_at, revoked_at, scope, service_ids) VALUES ($1, $2, $3, $4, $5, $6, $7)",
);
static KEY: Sql = Sql::new("SELECT id, name, secret_hash, created_at, revoked_at, scope, service_ids FROM api_keys WHERE id = $1");
static KEY_BY_HASH: Sql =
    Sql::new("SELECT id, name, secret_hash, created_at, revoked_at, scope, service_ids FROM api_keys WHERE secret_hash = $1");
static KEYS: Sql =
    Sql::new("SELECT id, name, secret_hash, created_at, revoked_at, scope, service_ids FROM api_keys ORDER BY created_at, id");
static REVOKE_KEY: Sql = Sql::new("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL");
static INSERT_SECRET: Sql = Sql::new("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING");
static SECRET: Sql = Sql::new("SELECT value FROM server_secrets WHERE name = $1");
static SECRETS: Sql = Sql::new("SELECT name, value FROM server_secrets ORDER BY name");

fn service(mut r: Row) -> StoreResult<Service> {
    Ok(Service {
        id: r.text(0)?,
        name: r.text(1)?,
        code_length: r.int(2)? as u8,
        code_ttl_secs: r.int(3)?,
        templates: serde_json::from_str(&r.text(4)?).map_err(|e| StoreError::Other(format!("service templates: {e}")))?,
        created_at: r.ts(5)?,
        custom_codes: r.int(6)? != 0,
        psd2: r.int(7)? != 0,
        channels: ChannelSettings {
            workflow: match r.opt_text(10)? {
                Some(w) => Workflow::parse(&w).map_err(|e| StoreError::Other(format!("service workflow: {e}")))?,
                None => Workflow::default(),
            },
            email_from: r.opt_text(11)?,
            email_reply_to: r.opt_text(12)?,
            voice_key_press: r.int(13)? != 0,
            voice_name: r.opt_text(14)?,
            whatsapp_from: r.opt_text(15)?,
        },
        friendly_name: r.opt_text(8)?,
        updated_at: r.ts(9)?,
    })
}

fn templates(s: &Service) -> StoreResult<String> {
    serde_json::to_string(&s.templates).map_err(|e| StoreError::Other(format!("service templates: {e}")))
}

fn key(mut r: Row) -> StoreResult<ApiKey> {
    let scope = match r.text(5)?.as_str() {
        "admin" => KeyScope::Admin,
        "service" => KeyScope::Services(r.text(6)?.split_whitespace().map(str::to_string).collect()),
        other => return Err(StoreError::Other(format!("unknown key scope `{other}`"))),
    };
    Ok(ApiKey { id: r.text(0)?, name: r.text(1)?, secret_hash: r.blob(2)?, scope, created_at: r.ts(3)?, revoked_at: r.opt_ts(4)? })
}

impl<D: Db> ServiceReads for Repo<D> {
    fn service(&mut self, id_or_name: &str) -> StoreResult<Option<Service>> {
        self.row(&SERVICE, args![id_or_name])?.map(service).transpose()
    }

    fn services(&mut self) -> StoreResult<Vec<Service>> {
        self.rows(&SERVICES, args![])?.into_iter().map(service).collect()
    }
}

impl<D: Db> ServiceWrites for Repo<D> {
    fn insert_service(&mut self, s: &Service) -> StoreResult<bool> {
        let args = args![
            &s.id,
            &s.name,
            i64::from(s.code_length),
            s.code_ttl_secs,
            &templates(s)?,
            s.created_at,
            i64::from(s.custom_codes),
            i64::from(s.psd2),
            &s.friendly_name,
            s.updated_at,
            (s.channels.workflow != Workflow::default()).then(|| s.channels.workflow.encode()),
            s.channels.email_from.as_deref(),
            s.channels.email_reply_to.as_deref(),
            i64::from(s.channels.voice_key_press),
            s.channels.voice_name.as_deref(),
            s.channels.whatsapp_from.as_deref()
        ];
        Ok(self.exec(&INSERT_SERVICE, args)? == 1)
    }

    fn lock_service(&mut self, id: &str) -> StoreResult<Option<Service>> {
        self.row(&LOCK_SERVICE, args![id])?.map(service).transpose()
    }

    fn hold_service(&mut self, id: &str) -> StoreResult<bool> {
        Ok(self.row(&HOLD_SERVICE, args![id])?.is_some())
    }

    fn update_service(&mut self, s: &Service) -> StoreResult<bool> {
        let args = args![
            &s.id,
            &s.name,
            i64::from(s.code_length),
            s.code_ttl_secs,
            &templates(s)?,
            i64::from(s.custom_codes),
            i64::from(s.psd2),
            &s.friendly_name,
            s.updated_at,
            (s.channels.workflow != Workflow::default()).then(|| s.channels.workflow.encode()),
            s.channels.email_from.as_deref(),
            s.channels.email_reply_to.as_deref(),
            i64::from(s.channels.voice_key_press),
            s.channels.voice_name.as_deref(),
            s.channels.whatsapp_from.as_deref()
        ];
        Ok(self.exec(&UPDATE_SERVICE, args)? == 1)
    }

    fn delete_service(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Vec<Channel>>> {
        if self.exec(&DELETE_SERVICE, args![id, now, "\n"])? == 0 {
            return Ok(None);
        }
        let rows = self.rows(&CANCEL_PENDING_OF_SERVICE, args![id, now])?;
        let channels = rows.into_iter().map(|mut r| Ok(Channel::parse(&r.text(0)?).unwrap_or(Channel::Sms)));
        Ok(Some(channels.collect::<StoreResult<_>>()?))
    }
}

impl<D: Db> ApiKeyReads for Repo<D> {
    fn api_key(&mut self, id: &str) -> StoreResult<Option<ApiKey>> {
        self.row(&KEY, args![id])?.map(key).transpose()
    }

    fn api_key_by_hash(&mut self, secret_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        self.row(&KEY_BY_HASH, args![secret_hash])?.map(key).transpose()
    }

    fn api_keys(&mut self) -> StoreResult<Vec<ApiKey>> {
        self.rows(&KEYS, args![])?.into_iter().map(key).collect()
    }
}

impl<D: Db> ApiKeyWrites for Repo<D> {
    fn insert_api_key(&mut self, k: &ApiKey) -> StoreResult<()> {
        let services = match &k.scope {
            KeyScope::Admin => String::new(),
            KeyScope::Services(ids) => ids.join(" "),
        };
        let args = args![&k.id, &k.name, &k.secret_hash, k.created_at, k.revoked_at, k.scope.as_str(), &services];
        self.exec(&INSERT_KEY, args).map(|_| ())
    }

    fn revoke_api_key(&mut self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.exec(&REVOKE_KEY, args![now, id])? == 1)
    }
}

impl<D: Db> SecretWrites for Repo<D> {
    fn secret_or_insert(&mut self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        self.exec(&INSERT_SECRET, args![name, candidate])?;
        let mut row = self.row(&SECRET, args![name])?.ok_or_else(|| StoreError::Other(format!("secret `{name}` vanished")))?;
        row.blob(0)
    }

    fn secrets(&mut self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.rows(&SECRETS, args![])?.into_iter().map(|mut r| Ok((r.text(0)?, r.blob(1)?))).collect()
    }

    fn insert_secret(&mut self, name: &str, value: &[u8]) -> StoreResult<bool> {
        Ok(self.exec(&INSERT_SECRET, args![name, value])? == 1)
    }
}
