//! The audit log.
use super::dialect::Sql;
use super::{Db, Repo, args};
use chrono::{DateTime, Utc};
use phonegate_core::audit::{AuditEvent, AuditQuery};
use phonegate_core::ports::{AuditReads, AuditWrites, StoreResult};

static INSERT: Sql = Sql::new(
    "INSERT INTO audit_events (id, at, kind, key_id, ip, request_id, subject, detail, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
);
// The time range walks the index on `at`; the optional filters (empty: any) are checked on the
// rows in it.
static SELECT: Sql = Sql::new(
    "SELECT id, at, kind, key_id, ip, request_id, subject, detail, actor FROM audit_events WHERE at >= $1 AND at < $2 \
     AND ($4 = '' OR kind = $4) AND ($5 = '' OR actor = $5 OR key_id = $5 OR subject = $5) AND ($6 = '' OR ip = $6) \
     ORDER BY at DESC, id DESC LIMIT $3",
);

/// An optional filter's argument: empty for any.
fn any(f: &Option<String>) -> &str {
    f.as_deref().unwrap_or_default()
}

impl<D: Db> AuditReads for Repo<D> {
    fn audit_events(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let since = q.since.unwrap_or(DateTime::UNIX_EPOCH);
        let until = q.until.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let rows = self.rows(&SELECT, args![since, until, q.limit, any(&q.kind), any(&q.who), any(&q.ip)])?;
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
                    actor: r.opt_text(8)?,
                })
            })
            .collect()
    }
}

impl<D: Db> AuditWrites for Repo<D> {
    fn insert_audit_event(&mut self, e: &AuditEvent) -> StoreResult<()> {
        let args = args![&e.id, e.at, &e.kind, &e.key_id, &e.ip, &e.request_id, &e.subject, &e.detail, &e.actor];
        self.exec(&INSERT, args).map(|_| ())
    }
}
