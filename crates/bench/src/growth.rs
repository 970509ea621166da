//! Growth: pair throughput with many old verifications in the database, and how fast the
//! retention job removes them.
use crate::load;
use crate::scenarios::{self, Ctx};
use crate::server::Server;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Serialize)]
pub struct Growth {
    pub old_rows: u64,
    pub pair_empty_per_sec: f64,
    pub pair_with_rows_per_sec: f64,
    pub ratio: f64,
    pub insert_secs: f64,
    /// Seconds from the rows falling due until the retention sweep had deleted them all (None:
    /// not within 10 minutes).
    pub retention_secs: Option<f64>,
}

impl std::fmt::Display for Growth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} old rows: pairs/s {:.0} → {:.0} (ratio {:.3}); inserted in {:.1}s; retention removed them in {}",
            self.old_rows,
            self.pair_empty_per_sec,
            self.pair_with_rows_per_sec,
            self.ratio,
            self.insert_secs,
            self.retention_secs.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "more than 10 minutes".into())
        )
    }
}

pub async fn measure(ctx: &Arc<Ctx>, srv: &Server, rows: u64, connections: usize, duration: Duration) -> anyhow::Result<Growth> {
    let c = ctx.clone();
    let empty = load::run("pair", connections, duration, srv.pid(), move |_| scenarios::pair(c.clone())).await;
    // The rows become due for retention (30 days) only after the loaded run, so the run measures
    // a large table, not the sweep deleting from it.
    let grace = duration + Duration::from_secs(10);
    let last_changed = chrono::Utc::now() - chrono::Duration::days(30) + chrono::Duration::from_std(grace)?;
    let t = Instant::now();
    insert_old(&srv.database_url, rows, last_changed.timestamp_millis()).await?;
    let insert_secs = t.elapsed().as_secs_f64();
    eprintln!("  inserted {rows} old verifications in {insert_secs:.1}s");
    let c = ctx.clone();
    let full = load::run("pair+old", connections, duration, srv.pid(), move |_| scenarios::pair(c.clone())).await;
    let left = count_old(&srv.database_url).await?;
    eprintln!("  {left} old rows still there after the loaded run; waiting for them to fall due");
    let due_in = (last_changed - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(due_in).await;
    let t = Instant::now();
    let mut retention_secs = None;
    while t.elapsed() < Duration::from_secs(600) {
        if count_old(&srv.database_url).await? == 0 {
            retention_secs = Some(t.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Growth {
        old_rows: rows,
        pair_empty_per_sec: empty.ops_per_sec,
        pair_with_rows_per_sec: full.ops_per_sec,
        ratio: full.ops_per_sec / empty.ops_per_sec,
        insert_secs,
        retention_secs,
    })
}

const SQLITE_INSERT: &str = "INSERT INTO verifications (id, service_id, to_number, channel, locale, status, code_length, code_digest, \
     code_sealed, attempts, sends, send_window_started_at, created_at, updated_at, expires_at, approved_at, version, max_attempts, brand) \
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
     SELECT 'VE' || printf('%032x', i), (SELECT id FROM services WHERE name = 'phonegate'), '+49170' || printf('%08d', i), 'sms', 'en', \
     'approved', 6, x'00', x'00', 1, 1, {at}, {at}, {at}, {at}, {at}, 1, 5, 'bench-old' FROM n";

const PG_INSERT: &str = "INSERT INTO verifications (id, service_id, to_number, channel, locale, status, code_length, code_digest, \
     code_sealed, attempts, sends, send_window_started_at, created_at, updated_at, expires_at, approved_at, version, max_attempts, brand) \
     SELECT 'VE' || lpad(to_hex(i), 32, '0'), (SELECT id FROM services WHERE name = 'phonegate'), '+49170' || lpad(i::text, 8, '0'), \
     'sms', 'en', 'approved', 6, '\\x00', '\\x00', 1, 1, {at}, {at}, {at}, {at}, {at}, 1, 5, 'bench-old' FROM generate_series(1, {rows}) AS i";

async fn insert_old(url: &str, rows: u64, last_changed_ms: i64) -> anyhow::Result<()> {
    let template = if url.starts_with("sqlite:") { SQLITE_INSERT } else { PG_INSERT };
    let sql = template.replace("{rows}", &rows.to_string()).replace("{at}", &last_changed_ms.to_string());
    phonegate_store::testing::execute(url, &sql).await?;
    Ok(())
}

async fn count_old(url: &str) -> anyhow::Result<i64> {
    Ok(phonegate_store::testing::count(url, "SELECT count(*) FROM verifications WHERE brand = 'bench-old'").await?)
}
