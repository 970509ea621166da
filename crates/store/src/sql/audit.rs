//! The audit log.
use super::dialect::Sql;
use super::{Db, Repo, args};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phonegate_core::audit::AuditEvent;
use phonegate_core::ports::{AuditTx, StoreResult};

static INSERT: Sql =
    Sql::new("INSERT INTO audit_events (id, at, kind, key_id, ip, request_id, subject, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
// One statement per filter combination: an OR of optional filters keeps the planner off indexes.
static ALL: Sql = Sql::new(
    "SELECT id, at, kind, key_id, ip, request_id, subject, detail FROM audit_events WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2",
);
static OF_KIND: Sql = Sql::new(
    "SELECT id, at, kind, key_id, ip, request_id, subject, detail FROM audit_events WHERE kind = $3 AND at >= $1 ORDER BY at DESC, id DESC LIMIT $2",
);

#[async_trait]
impl<D: Db> AuditTx for Repo<D> {
    async fn insert_audit_event(&mut self, e: &AuditEvent) -> StoreResult<()> {
        let args = args![&e.id, e.at, &e.kind, &e.key_id, &e.ip, &e.request_id, &e.subject, &e.detail];
        self.exec(&INSERT, args).await.map(|_| ())
    }

    async fn audit_events(&mut self, kind: Option<&str>, since: Option<DateTime<Utc>>, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        let since = since.unwrap_or(DateTime::UNIX_EPOCH);
        let rows = match kind {
            Some(kind) => self.rows(&OF_KIND, args![since, limit, kind]).await?,
            None => self.rows(&ALL, args![since, limit]).await?,
        };
        rows.into_iter()
            .map(|mut r| {
                Ok(AuditEvent {
                    id: r.text(0)?,
                    at: r.ts(1)?,
                    kind: r.text(2)?,
                    key_id: r.opt_text(3)?,
                    ip: r.opt_text(4)?,
                    request_id: r.text(5)?,
                    subject: r.opt_text(6)?,
                    detail: r.text(7)?,
                })
            })
            .collect()
    }
}
