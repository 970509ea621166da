//! Services, API keys and the dev outbox on SQLite.
use super::{SqliteStore, map_err, ms, opt_ts, ts};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phonegate_core::apikey::ApiKey;
use phonegate_core::outbox::OutboxMessage;
use phonegate_core::ports::{ApiKeyStore, OutboxStore, ServiceStore, StoreResult};
use phonegate_core::service::Service;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

fn service_from_row(r: &SqliteRow) -> Result<Service, sqlx::Error> {
    let templates: String = r.try_get("templates")?;
    Ok(Service {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        code_length: r.try_get::<i64, _>("code_length")? as u8,
        code_ttl_secs: r.try_get("code_ttl_secs")?,
        templates: serde_json::from_str(&templates).map_err(|e| sqlx::Error::Decode(e.into()))?,
        created_at: ts(r.try_get("created_at")?),
    })
}

fn key_from_row(r: &SqliteRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        secret_hash: r.try_get("secret_hash")?,
        created_at: ts(r.try_get("created_at")?),
        revoked_at: opt_ts(r.try_get("revoked_at")?),
    })
}

#[async_trait]
impl ServiceStore for SqliteStore {
    async fn insert_service(&self, s: &Service) -> StoreResult<()> {
        let templates = serde_json::to_string(&s.templates).unwrap_or_else(|_| "{}".into());
        sqlx::query("INSERT INTO services (id, name, code_length, code_ttl_secs, templates, created_at) VALUES (?,?,?,?,?,?)")
            .bind(&s.id)
            .bind(&s.name)
            .bind(s.code_length as i64)
            .bind(s.code_ttl_secs)
            .bind(templates)
            .bind(ms(s.created_at))
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn get_service(&self, id_or_name: &str) -> StoreResult<Option<Service>> {
        let row = sqlx::query("SELECT * FROM services WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(service_from_row).transpose().map_err(map_err)
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        let rows = sqlx::query("SELECT * FROM services ORDER BY name").fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(service_from_row).collect::<Result<_, _>>().map_err(map_err)
    }
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, k: &ApiKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, name, secret_hash, created_at, revoked_at) VALUES (?,?,?,?,?)")
            .bind(&k.id)
            .bind(&k.name)
            .bind(&k.secret_hash)
            .bind(ms(k.created_at))
            .bind(k.revoked_at.map(ms))
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ?").bind(id).fetch_optional(&self.pool).await.map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose().map_err(map_err)
    }

    async fn find_api_key_by_hash(&self, secret_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(key_from_row).transpose().map_err(map_err)
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(key_from_row).collect::<Result<_, _>>().map_err(map_err)
    }

    async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ms(now))
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn push_outbox(&self, m: &OutboxMessage) -> StoreResult<()> {
        sqlx::query("INSERT INTO outbox_messages (id, to_number, body, verification_id, created_at) VALUES (?,?,?,?,?)")
            .bind(&m.id)
            .bind(&m.to)
            .bind(&m.body)
            .bind(&m.verification_id)
            .bind(ms(m.created_at))
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn list_outbox(&self, to: Option<&str>, limit: u32) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query(
            "SELECT id, to_number, body, verification_id, created_at FROM outbox_messages \
             WHERE ?1 IS NULL OR to_number = ?1 ORDER BY seq DESC LIMIT ?2",
        )
        .bind(to)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxMessage {
                    id: r.try_get("id")?,
                    to: r.try_get("to_number")?,
                    body: r.try_get("body")?,
                    verification_id: r.try_get("verification_id")?,
                    created_at: ts(r.try_get("created_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }
}
