//! The audit log.
use super::dialect::Sql;
use super::{Db, Repo, args};
use chrono::{DateTime, Duration, Utc};
use phonegate_core::audit::{AuditEvent, AuditQuery};
use phonegate_core::ports::{AuditReads, AuditWrites, StoreResult};

static INSERT: Sql = Sql::new(
    "INSERT INTO audit_events (id, at, kind, key_id, ip, request_id, subject, detail, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
);
/// The time range ($1 inclusive, $2 exclusive, narrowed to the cursors' times) walks the index
/// on `at`; the optional filters (empty: any) and the cursors' ids at their exact time are
/// checked on the rows in it: before ($7, $8) and after ($9, $10) in the order (at, id).
macro_rules! select {
    ($order:literal) => {
        concat!(
            "SELECT id, at, kind, key_id, ip, request_id, subject, detail, actor FROM audit_events WHERE at >= $1 AND at < $2 ",
            "AND ($4 = '' OR kind = $4) AND ($5 = '' OR actor = $5 OR key_id = $5 OR subject = $5) AND ($6 = '' OR ip = $6) ",
            "AND (at < $7 OR (at = $7 AND id < $8)) AND (at > $9 OR (at = $9 AND id > $10)) ",
            $order
        )
    };
}
/// Newest first: the first page, and the pages before a cursor.
static NEWEST_FIRST: Sql = Sql::new(select!("ORDER BY at DESC, id DESC LIMIT $3"));
/// Oldest first: the events just after a cursor (a page of newer events), reversed once read.
static OLDEST_FIRST: Sql = Sql::new(select!("ORDER BY at ASC, id ASC LIMIT $3"));

/// An optional filter's argument: empty for any.
fn any(f: &Option<String>) -> &str {
    f.as_deref().unwrap_or_default()
}

impl<D: Db> AuditReads for Repo<D> {
    fn audit_events(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let (before_at, before_id) = q.before.as_ref().map_or((DateTime::<Utc>::MAX_UTC, ""), |p| (p.at, p.id.as_str()));
        let (after_at, after_id) = q.after.as_ref().map_or((DateTime::<Utc>::MIN_UTC, ""), |p| (p.at, p.id.as_str()));
        let since = q.since.unwrap_or(DateTime::UNIX_EPOCH).max(after_at);
        let until =
            q.until.unwrap_or(DateTime::<Utc>::MAX_UTC).min(before_at.checked_add_signed(Duration::milliseconds(1)).unwrap_or(before_at));
        let statement = if q.after.is_some() { &OLDEST_FIRST } else { &NEWEST_FIRST };
        let filters = args![since, until, q.limit, any(&q.kind), any(&q.who), any(&q.ip), before_at, before_id, after_at, after_id];
        let mut events = self
            .rows(statement, filters)?
            .into_iter()
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
            .collect::<StoreResult<Vec<_>>>()?;
        if q.after.is_some() {
            events.reverse();
        }
        Ok(events)
    }
}

impl<D: Db> AuditWrites for Repo<D> {
    fn insert_audit_event(&mut self, e: &AuditEvent) -> StoreResult<()> {
        let args = args![&e.id, e.at, &e.kind, &e.key_id, &e.ip, &e.request_id, &e.subject, &e.detail, &e.actor];
        self.exec(&INSERT, args).map(|_| ())
    }
}
