//! Every difference between SQLite's and PostgreSQL's SQL that phonegate's statements meet, in
//! one place. Statements are written once, in PostgreSQL's dialect; each backend asks for the
//! text it runs, adapted once per statement and kept.
//!
//! 1. **Placeholders.** PostgreSQL numbers them `$1, $2…`. SQLite reads `$2` as a *named*
//!    parameter numbered by first appearance (so `SET a = $2 … WHERE id = $1` would bind silently
//!    wrong); `?2` is its positional form.
//! 2. **Row locks.** In a write, PostgreSQL's `FOR UPDATE` makes a concurrent unit wait for a row
//!    this one will change, and `FOR UPDATE SKIP LOCKED` lets queue workers pass over rows another
//!    instance is claiming; `FOR KEY SHARE` holds a row against a delete only. SQLite has a single
//!    writer, so a write transaction already excludes every other: the clauses are dropped.
//!    Read-only work takes no locks on either backend.
//! 3. **Locks on a key with no row.** Where two units must take turns on a value no row holds
//!    yet (a provider's message id, before the receipt or the send's result is stored),
//!    PostgreSQL takes a transaction-level advisory lock; such a statement is
//!    `Sql::postgres_only` and SQLite, whose single writer already serialises, skips it.
//!
//! Column types differ too (BLOB/BYTEA, INTEGER/BIGINT, booleans as 0/1 on SQLite); that lives in
//! the migrations and in each backend's conversion of values, not in statement text.
use std::sync::OnceLock;

/// Whether a statement runs in a write transaction or read-only work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

/// One statement, written once.
pub(crate) struct Sql {
    text: &'static str,
    postgres_only: bool,
    sqlite: OnceLock<String>,
    postgres_read: OnceLock<String>,
}

impl Sql {
    pub const fn new(text: &'static str) -> Self {
        Self { text, postgres_only: false, sqlite: OnceLock::new(), postgres_read: OnceLock::new() }
    }

    /// A statement only PostgreSQL needs (difference 3).
    pub const fn postgres_only(text: &'static str) -> Self {
        Self { text, postgres_only: true, sqlite: OnceLock::new(), postgres_read: OnceLock::new() }
    }

    /// The text SQLite runs; `None` for a statement it skips.
    pub fn sqlite(&'static self) -> Option<&'static str> {
        (!self.postgres_only).then(|| self.sqlite.get_or_init(|| numbered_placeholders(&without_row_locks(self.text))).as_str())
    }

    pub fn postgres(&'static self, mode: Mode) -> &'static str {
        match mode {
            Mode::Write => self.text,
            Mode::Read => self.postgres_read.get_or_init(|| without_row_locks(self.text)),
        }
    }
}

const ROW_LOCKS: [&str; 3] = [" FOR UPDATE SKIP LOCKED", " FOR UPDATE", " FOR KEY SHARE"];

fn without_row_locks(sql: &str) -> String {
    ROW_LOCKS.iter().fold(sql.to_string(), |s, clause| s.replace(clause, ""))
}

/// `$n` → `?n`.
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_positional_placeholders_and_no_row_locks() {
        static Q: Sql = Sql::new("UPDATE t SET a = $2 WHERE id IN (SELECT id FROM t WHERE b = $1 LIMIT $10 FOR UPDATE SKIP LOCKED)");
        assert_eq!(Q.sqlite(), Some("UPDATE t SET a = ?2 WHERE id IN (SELECT id FROM t WHERE b = ?1 LIMIT ?10)"));
        assert_eq!(Q.postgres(Mode::Write), Q.text);
        static R: Sql = Sql::new("SELECT a FROM t WHERE id = $1 FOR UPDATE");
        assert_eq!(R.postgres(Mode::Read), "SELECT a FROM t WHERE id = $1");
        assert_eq!(R.postgres(Mode::Write), "SELECT a FROM t WHERE id = $1 FOR UPDATE");
        assert_eq!(R.sqlite(), Some("SELECT a FROM t WHERE id = ?1"));
        static K: Sql = Sql::new("SELECT id FROM t WHERE id = $1 FOR KEY SHARE");
        assert_eq!((K.sqlite(), K.postgres(Mode::Read)), (Some("SELECT id FROM t WHERE id = ?1"), "SELECT id FROM t WHERE id = $1"));
        static L: Sql = Sql::postgres_only("SELECT pg_advisory_xact_lock($1)");
        assert_eq!((L.sqlite(), L.postgres(Mode::Write)), (None, "SELECT pg_advisory_xact_lock($1)"));
    }
}
