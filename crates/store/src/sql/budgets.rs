//! Budget counters: one row per budget, subject, rate, window and shard.
use super::dialect::Sql;
use super::{Db, Repo, args};
use chrono::{DateTime, Utc};
use phonegate_core::budget::Charge;
use phonegate_core::ports::{BudgetReads, BudgetWrites, StoreResult};

/// Adds `$4` only while the sum stays within `$6`. On PostgreSQL the conflicting row is locked
/// even when the condition refuses, so parallel takes on one counter take turns.
static TAKE_EXACT: Sql = Sql::new(
    "INSERT INTO budget_counters (name, window_start, shard, used, expires_at) SELECT $1, $2, $3, $4, $5 WHERE $4 <= $6 \
     ON CONFLICT (name, window_start, shard) DO UPDATE SET used = budget_counters.used + excluded.used \
     WHERE budget_counters.used + excluded.used <= $6 RETURNING used",
);
// PostgreSQL sums BIGINTs into NUMERIC: cast back.
static USED: Sql =
    Sql::new("SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) AS used FROM budget_counters WHERE name = $1 AND window_start = $2");
/// Two counters in two windows, summed over shards, in one statement.
static USED_2X2: Sql = Sql::new(
    "SELECT name, window_start, CAST(SUM(used) AS BIGINT) AS used FROM budget_counters \
     WHERE name IN ($1, $2) AND window_start IN ($3, $4) GROUP BY name, window_start",
);
static ADD_SHARED: Sql = Sql::new(
    "INSERT INTO budget_counters (name, window_start, shard, used, expires_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (name, window_start, shard) DO UPDATE SET used = budget_counters.used + excluded.used",
);
static EXACT_USED: Sql = Sql::new("SELECT used FROM budget_counters WHERE name = $1 AND window_start = $2 AND shard = 0 FOR UPDATE");
pub(super) static PURGE_COUNTERS: Sql = Sql::new(
    "DELETE FROM budget_counters WHERE (name, window_start, shard) IN \
     (SELECT name, window_start, shard FROM budget_counters WHERE expires_at < $1 LIMIT $2)",
);

impl<D: Db> BudgetReads for Repo<D> {
    fn budget_used(&mut self, charge: &Charge, window_start: i64) -> StoreResult<i64> {
        match self.row(&USED, args![&charge.counter(), window_start])? {
            Some(mut r) => r.int(0),
            None => Ok(0),
        }
    }

    fn budgets_used(&mut self, a: &Charge, b: &Charge, windows: [i64; 2]) -> StoreResult<[[i64; 2]; 2]> {
        let (na, nb) = (a.counter(), b.counter());
        let mut out = [[0; 2]; 2];
        for mut r in self.rows(&USED_2X2, args![&na, &nb, windows[0], windows[1]])? {
            let (name, window, used) = (r.text(0)?, r.int(1)?, r.int(2)?);
            let i = usize::from(name != na);
            let j = usize::from(window != windows[0]);
            out[i][j] = used;
        }
        Ok(out)
    }

    fn budget_left(&mut self, charge: &Charge, window_start: i64) -> StoreResult<bool> {
        let used = match self.row(&EXACT_USED, args![&charge.counter(), window_start])? {
            Some(mut r) => r.int(0)?,
            None => 0,
        };
        Ok(used < i64::from(charge.rate.limit))
    }
}

impl<D: Db> BudgetWrites for Repo<D> {
    fn take_budget(&mut self, charge: &Charge, window_start: i64, shard: u32, expires_at: DateTime<Utc>) -> StoreResult<bool> {
        let (name, limit) = (charge.counter(), i64::from(charge.rate.limit));
        if charge.exact() {
            return Ok(self.row(&TAKE_EXACT, args![&name, window_start, 0u32, 1i64, expires_at, limit])?.is_some());
        }
        // A counter with no limit (what the prefix throttle counts) needs no sum first.
        if charge.rate.limit != u32::MAX && self.budget_used(charge, window_start)? + 1 > limit {
            return Ok(false);
        }
        self.exec(&ADD_SHARED, args![&name, window_start, shard % phonegate_core::budget::SHARDS, 1i64, expires_at])?;
        Ok(true)
    }
}
