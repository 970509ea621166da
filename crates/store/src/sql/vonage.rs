//! The Vonage Verify v2 drop-in's rows: applications, status callbacks, templates.
use super::dialect::Sql;
use super::{Cell, Db, Repo, Row, Value, args};
use chrono::{DateTime, Utc};
use phonegate_core::ports::{StoreError, StoreResult, VonageReads, VonageWrites};
use phonegate_core::vonage_model::{CallbackKind, TemplateFragment, VonageApp, VonageCallback, VonageTemplate};

static INSERT_APP: Sql = Sql::new(
    "INSERT INTO vonage_applications (id, key_id, public_key, status_url, signature_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (key_id) DO UPDATE SET public_key = excluded.public_key, status_url = excluded.status_url, \
     signature_secret = excluded.signature_secret",
);
static APP: Sql =
    Sql::new("SELECT id, key_id, public_key, status_url, signature_secret, created_at FROM vonage_applications WHERE id = $1");
static APP_OF_KEY: Sql =
    Sql::new("SELECT id, key_id, public_key, status_url, signature_secret, created_at FROM vonage_applications WHERE key_id = $1");

static INSERT_CALLBACK: Sql = Sql::new(
    "INSERT INTO vonage_callbacks (id, app_id, verification_id, kind, payload, created_at, attempts, due_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
);
/// An event when due; a summary once its verification is no longer pending (or past its end).
static CLAIM_CALLBACKS: Sql = Sql::new(
    "UPDATE vonage_callbacks SET lease_token = $1, due_at = $2 \
     WHERE id IN (SELECT c.id FROM vonage_callbacks c WHERE c.done_at IS NULL AND c.due_at <= $3 \
     AND (c.kind = 'event' OR EXISTS (SELECT 1 FROM verifications v WHERE v.id = c.verification_id \
     AND (v.status <> 'pending' OR v.expires_at <= $3))) ORDER BY c.due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
     AND done_at IS NULL RETURNING id, app_id, verification_id, kind, payload, created_at, attempts",
);
/// A delivered (or given up) callback keeps no payload: an event's may name a device link.
static FINISH_CALLBACK: Sql = Sql::new(
    "UPDATE vonage_callbacks SET attempts = $3, due_at = $4, done_at = $5, lease_token = NULL, \
     payload = CASE WHEN $5 IS NULL THEN payload ELSE '' END WHERE id = $1 AND lease_token = $2",
);
/// Delivered (or given up) callbacks older than the retention cutoff go with the verifications.
pub(super) static PURGE_CALLBACKS: Sql = Sql::new(
    "DELETE FROM vonage_callbacks WHERE id IN (SELECT id FROM vonage_callbacks WHERE done_at IS NOT NULL AND done_at < $1 LIMIT $2)",
);
static PENDING_SUMMARY: Sql = Sql::new(
    "SELECT id, app_id, verification_id, kind, payload, created_at, attempts FROM vonage_callbacks \
     WHERE verification_id = $1 AND kind = 'summary' AND done_at IS NULL FOR UPDATE",
);
static UPDATE_CALLBACK: Sql = Sql::new("UPDATE vonage_callbacks SET payload = $2, due_at = $3 WHERE id = $1 AND done_at IS NULL");

static TEMPLATES: Sql =
    Sql::new("SELECT id, service_id, name, is_default, created_at FROM vonage_templates WHERE service_id = $1 ORDER BY created_at, id");
static TEMPLATE: Sql =
    Sql::new("SELECT id, service_id, name, is_default, created_at FROM vonage_templates WHERE service_id = $1 AND id = $2");
static INSERT_TEMPLATE: Sql = Sql::new(
    "INSERT INTO vonage_templates (id, service_id, name, is_default, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (service_id, name) DO NOTHING",
);
static UPDATE_TEMPLATE: Sql = Sql::new(
    "UPDATE vonage_templates SET name = $3, is_default = $4 WHERE service_id = $1 AND id = $2 \
     AND NOT EXISTS (SELECT 1 FROM vonage_templates o WHERE o.service_id = $1 AND o.name = $3 AND o.id <> $2)",
);
static CLEAR_DEFAULT: Sql = Sql::new("UPDATE vonage_templates SET is_default = 0 WHERE service_id = $1 AND id <> $2 AND is_default = 1");
static DELETE_TEMPLATE: Sql = Sql::new("DELETE FROM vonage_templates WHERE service_id = $1 AND id = $2");
static FRAGMENTS: Sql = Sql::new(
    "SELECT id, template_id, channel, locale, text, created_at, updated_at FROM vonage_template_fragments \
     WHERE template_id = $1 ORDER BY created_at, id",
);
static INSERT_FRAGMENT: Sql = Sql::new(
    "INSERT INTO vonage_template_fragments (id, template_id, channel, locale, text, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (template_id, channel, locale) DO NOTHING",
);
static UPDATE_FRAGMENT: Sql =
    Sql::new("UPDATE vonage_template_fragments SET text = $3, updated_at = $4 WHERE template_id = $1 AND id = $2");
static DELETE_FRAGMENT: Sql = Sql::new("DELETE FROM vonage_template_fragments WHERE template_id = $1 AND id = $2");

fn app(mut r: Row) -> StoreResult<VonageApp> {
    Ok(VonageApp {
        id: r.text(0)?,
        key_id: r.text(1)?,
        public_key: r.text(2)?,
        status_url: r.opt_text(3)?,
        signature_secret_sealed: match r.take_cell(4) {
            Cell::Blob(b) => Some(b),
            _ => None,
        },
        created_at: r.ts(5)?,
    })
}

fn template(mut r: Row) -> StoreResult<VonageTemplate> {
    Ok(VonageTemplate { id: r.text(0)?, service_id: r.text(1)?, name: r.text(2)?, is_default: r.int(3)? != 0, created_at: r.ts(4)? })
}

fn fragment(mut r: Row) -> StoreResult<TemplateFragment> {
    Ok(TemplateFragment {
        id: r.text(0)?,
        template_id: r.text(1)?,
        channel: r.text(2)?,
        locale: r.text(3)?,
        text: r.text(4)?,
        created_at: r.ts(5)?,
        updated_at: r.ts(6)?,
    })
}

fn callback(mut r: Row) -> StoreResult<VonageCallback> {
    let kind = r.text(3)?;
    Ok(VonageCallback {
        id: r.text(0)?,
        app_id: r.text(1)?,
        verification_id: r.text(2)?,
        kind: CallbackKind::parse(&kind).ok_or_else(|| StoreError::Other(format!("unknown callback kind `{kind}`")))?,
        payload: r.text(4)?,
        created_at: r.ts(5)?,
        attempts: r.int(6)? as u32,
    })
}

impl<D: Db> VonageReads for Repo<D> {
    fn pending_summary(&mut self, verification_id: &str) -> StoreResult<Option<VonageCallback>> {
        self.row(&PENDING_SUMMARY, args![verification_id])?.map(callback).transpose()
    }

    fn vonage_app(&mut self, id: &str) -> StoreResult<Option<VonageApp>> {
        self.row(&APP, args![id])?.map(app).transpose()
    }

    fn vonage_app_of_key(&mut self, key_id: &str) -> StoreResult<Option<VonageApp>> {
        self.row(&APP_OF_KEY, args![key_id])?.map(app).transpose()
    }

    fn vonage_templates(&mut self, service_id: &str) -> StoreResult<Vec<VonageTemplate>> {
        self.rows(&TEMPLATES, args![service_id])?.into_iter().map(template).collect()
    }

    fn vonage_template(&mut self, service_id: &str, id: &str) -> StoreResult<Option<VonageTemplate>> {
        self.row(&TEMPLATE, args![service_id, id])?.map(template).transpose()
    }

    fn template_fragments(&mut self, template_id: &str) -> StoreResult<Vec<TemplateFragment>> {
        self.rows(&FRAGMENTS, args![template_id])?.into_iter().map(fragment).collect()
    }
}

impl<D: Db> VonageWrites for Repo<D> {
    fn put_vonage_app(&mut self, a: &VonageApp) -> StoreResult<()> {
        let secret = Value::Blob(a.signature_secret_sealed.clone());
        self.exec(&INSERT_APP, args![&a.id, &a.key_id, &a.public_key, &a.status_url, secret, a.created_at]).map(|_| ())
    }

    fn insert_vonage_callback(&mut self, c: &VonageCallback, due_at: DateTime<Utc>) -> StoreResult<()> {
        let args = args![&c.id, &c.app_id, &c.verification_id, c.kind.as_str(), &c.payload, c.created_at, due_at];
        self.exec(&INSERT_CALLBACK, args).map(|_| ())
    }

    fn update_vonage_callback(&mut self, id: &str, payload: &str, due_at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(&UPDATE_CALLBACK, args![id, payload, due_at]).map(|_| ())
    }

    fn claim_vonage_callbacks(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u32,
    ) -> StoreResult<Vec<VonageCallback>> {
        self.rows(&CLAIM_CALLBACKS, args![token, lease_until, now, limit])?.into_iter().map(callback).collect()
    }

    fn finish_vonage_callback(
        &mut self,
        id: &str,
        token: &str,
        attempts: u32,
        due_at: DateTime<Utc>,
        done_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.exec(&FINISH_CALLBACK, args![id, token, attempts, due_at, done_at]).map(|_| ())
    }

    fn insert_vonage_template(&mut self, t: &VonageTemplate) -> StoreResult<bool> {
        Ok(self.exec(&INSERT_TEMPLATE, args![&t.id, &t.service_id, &t.name, i64::from(t.is_default), t.created_at])? == 1)
    }

    fn update_vonage_template(&mut self, t: &VonageTemplate) -> StoreResult<bool> {
        Ok(self.exec(&UPDATE_TEMPLATE, args![&t.service_id, &t.id, &t.name, i64::from(t.is_default)])? == 1)
    }

    fn clear_default_template(&mut self, service_id: &str, except: &str) -> StoreResult<()> {
        self.exec(&CLEAR_DEFAULT, args![service_id, except]).map(|_| ())
    }

    fn delete_vonage_template(&mut self, service_id: &str, id: &str) -> StoreResult<bool> {
        Ok(self.exec(&DELETE_TEMPLATE, args![service_id, id])? == 1)
    }

    fn insert_template_fragment(&mut self, f: &TemplateFragment) -> StoreResult<bool> {
        let args = args![&f.id, &f.template_id, &f.channel, &f.locale, &f.text, f.created_at, f.updated_at];
        Ok(self.exec(&INSERT_FRAGMENT, args)? == 1)
    }

    fn update_template_fragment(&mut self, f: &TemplateFragment) -> StoreResult<bool> {
        Ok(self.exec(&UPDATE_FRAGMENT, args![&f.template_id, &f.id, &f.text, f.updated_at])? == 1)
    }

    fn delete_template_fragment(&mut self, template_id: &str, id: &str) -> StoreResult<bool> {
        Ok(self.exec(&DELETE_FRAGMENT, args![template_id, id])? == 1)
    }
}
