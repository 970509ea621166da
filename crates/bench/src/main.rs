//! phonegate-bench: starts phonegate on loopback with a fresh database and the dev outbox, drives
//! it with N concurrent connections per scenario, and prints throughput, latency and memory next
//! to a baseline measured in the same run (a bare endpoint of the same server stack).
mod accounts;
mod growth;
mod load;
mod oidc;
mod scenarios;
mod server;

use clap::Parser;
use load::Stats;
use scenarios::Ctx;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Every scenario `--scenarios` accepts (`baseline` runs first whether it is named or not).
const SCENARIOS: [&str; 16] = [
    "baseline",
    "start",
    "status",
    "check",
    "pair",
    "compat",
    "vonage2",
    "silent",
    "me_bearer",
    "me_cookie",
    "refresh",
    "password_login",
    "backup",
    "userinfo",
    "oidc-refresh",
    "oidc-authorize",
];

#[derive(Parser)]
#[command(name = "phonegate-bench", about = "Measure phonegate whole requests over loopback against a baseline from the same run")]
struct Args {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Scenarios to run, in order (baseline always runs first; vonage2 is the pair through Vonage
    /// Verify v2, JSON with Basic auth); besides the default ones:
    /// silent (an auto verification approved through the simulator's operator),
    /// me_bearer, me_cookie, refresh, password_login (the accounts API), backup (the start load
    /// while `phonegate backup` copies the SQLite database back to back: compare its p99 and max
    /// with start's), userinfo, oidc-refresh, oidc-authorize (OpenID Connect: a bearer access
    /// token at userinfo; refresh-token rotation; a signed-in browser's authorization and the
    /// code exchange).
    #[arg(long, value_delimiter = ',', default_value = "start,status,check,pair,compat,vonage2", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenarios: Vec<String>,
    /// A PostgreSQL database to create a fresh schema in (default: a new SQLite file).
    #[arg(long)]
    postgres: Option<String>,
    /// Also measure pairs with this many old verifications in the database, and their removal
    /// by the retention job.
    #[arg(long, default_value_t = 0)]
    growth_rows: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The phonegate binary (default: the one next to this program).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Also run the OpenID scenarios named in --scenarios against the npm package oidc-provider:
    /// starts `node server.mjs` from --oidc-provider-dir (after `npm ci` there) on loopback and
    /// measures it after phonegate, against its own same-run baseline (node:http's `/healthz`).
    #[arg(long)]
    compare_oidc_provider: bool,
    /// The directory of the comparison's server.mjs (default: crates/bench/oidc-provider of the
    /// source tree this program was built from).
    #[arg(long)]
    oidc_provider_dir: Option<PathBuf>,
    /// The algorithm of the bench client's ID tokens, at both providers (RS256 is the one every
    /// OpenID provider must support; ES256 and EdDSA are cheaper to sign).
    #[arg(long, default_value = "RS256", value_parser = clap::builder::PossibleValuesParser::new(["RS256", "ES256", "EdDSA"]))]
    id_token_alg: String,
    /// The Node.js program that runs it (oidc-provider 9 wants Node 22 or later).
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// Compare with an oidc-provider already running at this URL (started as server.mjs is; no
    /// memory figures) instead of starting one.
    #[arg(long)]
    oidc_provider: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (backend, url) = match &args.postgres {
        Some(admin) => ("postgres", phonegate_store::testing::fresh_postgres_schema(admin, "bench").await?),
        None => ("sqlite", format!("sqlite://{}", dir.path().join("bench.db").display())),
    };
    let binary = args.server.clone().unwrap_or_else(server::default_binary);
    let oidc_named: Vec<String> = args.scenarios.iter().filter(|s| oidc::NAMES.contains(&s.as_str())).cloned().collect();
    let comparing = args.compare_oidc_provider || args.oidc_provider.is_some();
    if comparing && oidc_named.is_empty() {
        anyhow::bail!("the comparison with oidc-provider runs the OpenID scenarios: name them, e.g. --scenarios {}", oidc::NAMES.join(","));
    }
    let srv = server::Server::start(&binary, &url, (!oidc_named.is_empty()).then(|| dir.path()), &args.id_token_alg)?;
    let mut ctx = Ctx::new(srv.base.clone(), srv.key_id.clone(), srv.secret.clone(), args.connections);
    ctx.twilio_service = scenarios::twilio_service(&ctx).await?;
    let ctx = Arc::new(ctx);
    let duration = Duration::from_secs(args.duration.max(1));
    let (n, pid) = (args.connections, srv.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = server::rss_kib(pid) as f64 / 1024.0;
    eprintln!("phonegate-bench: {backend}, {n} connections, {}s per scenario, idle RSS {idle_rss:.1} MiB", duration.as_secs());

    let c = ctx.clone();
    let baseline = load::run("baseline", n, duration, pid, move |_| scenarios::baseline(c.clone())).await;
    let mut results = vec![baseline.clone()];
    let mut login = None;
    let mut failed = Vec::new();
    let mut provider: Option<Arc<oidc::Provider>> = None;
    for name in &args.scenarios {
        let c = ctx.clone();
        let stats = match name.as_str() {
            "baseline" => continue,
            "start" => load::run("start", n, duration, pid, move |_| scenarios::start(c.clone())).await,
            "status" | "check" => {
                if ctx.ids.lock().map(|i| i.is_empty()).unwrap_or(true) {
                    let c2 = ctx.clone();
                    load::run("start", n, duration, pid, move |_| scenarios::start(c2.clone())).await;
                }
                if name == "status" {
                    let ids = scenarios::ids(&ctx);
                    load::run("status", n, duration, pid, move |i| scenarios::status(c.clone(), ids.clone(), i)).await
                } else {
                    // Each verification takes 4 wrong checks: have enough for the expected rate
                    // (a read's rate; a check, one small write, can be faster still, so with a
                    // wide margin), created before the timing starts.
                    let expected = results.iter().find(|r| r.scenario == "status").unwrap_or(&baseline).ops_per_sec;
                    let needed = (expected * duration.as_secs_f64() / 4.0 * 3.0) as usize;
                    scenarios::prefill(&ctx, needed, n).await;
                    let ids = scenarios::ids(&ctx);
                    load::run("check", n, duration, pid, move |i| scenarios::check(c.clone(), ids.clone(), i)).await
                }
            }
            "pair" => load::run("pair", n, duration, pid, move |_| scenarios::pair(c.clone())).await,
            "backup" if backend == "sqlite" => {
                let backups = tokio::spawn(scenarios::backups(binary.clone(), url.clone(), dir.path().to_path_buf(), duration));
                let result = load::run("backup", n, duration, pid, move |_| scenarios::start(c.clone())).await;
                let (copies, longest) = backups.await??;
                eprintln!("backup: {copies} backups during the load, the longest took {} ms", longest.as_millis());
                result
            }
            "backup" => anyhow::bail!("the backup scenario measures SQLite (PostgreSQL is backed up with pg_dump)"),
            "compat" => load::run("compat", n, duration, pid, move |_| scenarios::compat(c.clone())).await,
            "vonage2" => load::run("vonage2", n, duration, pid, move |_| scenarios::vonage2(c.clone())).await,
            "silent" => load::run("silent", n, duration, pid, move |_| scenarios::silent(c.clone())).await,
            name if accounts::NAMES.contains(&name) => match accounts::scenario(name, &ctx, n, duration, pid).await {
                Ok((stats, report)) => {
                    login = report.or(login);
                    stats
                }
                Err(e) => {
                    eprintln!("  {name} could not run: {e:#}");
                    failed.push(format!("{name}: {e:#}"));
                    continue;
                }
            },
            name if oidc::NAMES.contains(&name) => {
                let run = async {
                    if provider.is_none() {
                        provider = Some(Arc::new(phonegate_provider(&ctx, n, pid).await?));
                    }
                    let p = provider.as_ref().expect("just set");
                    oidc::scenario(name, p, n, duration).await
                };
                match run.await {
                    Ok(stats) => stats,
                    Err(e) => {
                        eprintln!("  {name} could not run: {e:#}");
                        failed.push(format!("{name}: {e:#}"));
                        continue;
                    }
                }
            }
            other => anyhow::bail!("unknown scenario `{other}` ({})", SCENARIOS.join(", ")),
        };
        results.push(stats);
    }
    let growth = if args.growth_rows > 0 { Some(growth::measure(&ctx, &srv, args.growth_rows, n, duration).await?) } else { None };

    let comparison = if comparing {
        match compare(&args, &oidc_named, n, duration, &mut failed).await {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("  the comparison with oidc-provider could not run: {e:#}");
                failed.push(format!("oidc-provider: {e:#}"));
                None
            }
        }
    } else {
        None
    };

    for r in &mut results {
        r.ratio_to_baseline = Some(r.ops_per_sec / baseline.requests_per_sec);
    }
    print_table(&results, idle_rss);
    if !oidc_named.is_empty() {
        println!(
            "OpenID targets (issue 26): userinfo ≥ 0.50, oidc-refresh ≥ 0.10, oidc-authorize ≥ 0.05 (two requests per operation); ID tokens {}",
            args.id_token_alg
        );
    }
    if let Some(c) = &comparison {
        println!(
            "\noidc-provider {} on node {} (one process), the same client and scenarios, baseline = its node:http GET /healthz:",
            c.version, c.node
        );
        print_table(&c.scenarios, c.idle_rss_mib);
    }
    if let Some(l) = &login {
        println!("\n{l}");
    }
    if let Some(g) = &growth {
        println!("\ngrowth: {g}");
    }
    if let Some(path) = &args.json {
        let report = json!({
            "backend": backend,
            "connections": n,
            "duration_secs": duration.as_secs(),
            "cpus": std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1),
            "idle_rss_mib": idle_rss,
            "scenarios": results,
            "growth": growth,
            "password_login": login,
            "id_token_alg": args.id_token_alg,
            "oidc_provider": comparison,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if !failed.is_empty() {
        anyhow::bail!("scenarios that could not run:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

fn print_table(results: &[Stats], idle_rss: f64) {
    println!(
        "{:<14} {:>10} {:>10} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9}",
        "scenario", "ops/s", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "ratio", "peak RSS"
    );
    for r in results {
        println!(
            "{:<14} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>8.3} {:>6.1} MiB",
            r.scenario,
            r.ops_per_sec,
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.errors,
            r.ratio_to_baseline.unwrap_or(0.0),
            r.peak_rss_mib
        );
    }
    println!("idle RSS {idle_rss:.1} MiB; ratio = operations/s ÷ baseline requests/s (a pair is one operation of two requests)");
}

/// phonegate as an OpenID provider: a user signed up by the accounts API with a session cookie
/// (a signed-in browser), its first authorization made.
async fn phonegate_provider(ctx: &Arc<Ctx>, connections: usize, pid: u32) -> anyhow::Result<oidc::Provider> {
    let user = accounts::sign_up(ctx, false, true).await?;
    let mut p = oidc::Provider::discover("phonegate", &ctx.base, pid, connections, false).await?;
    p.sign_in(&user.cookie).await?;
    Ok(p)
}

/// The OpenID scenarios against oidc-provider, after its own baseline.
#[derive(serde::Serialize)]
struct Comparison {
    version: String,
    node: String,
    idle_rss_mib: f64,
    scenarios: Vec<Stats>,
}

async fn compare(args: &Args, names: &[String], n: usize, duration: Duration, failed: &mut Vec<String>) -> anyhow::Result<Comparison> {
    let (node, base) = match &args.oidc_provider {
        Some(url) => (None, url.trim_end_matches('/').to_string()),
        None => {
            let dir = args.oidc_provider_dir.clone().unwrap_or_else(oidc::default_node_dir);
            let node = oidc::NodeProvider::start(&args.node, &dir, &args.id_token_alg)?;
            let base = node.base.clone();
            (Some(node), base)
        }
    };
    let pid = node.as_ref().map_or(0, |n| n.pid());
    let mut p = oidc::Provider::discover("oidc-provider", &base, pid, n, true).await?;
    p.sign_in("").await?;
    let p = Arc::new(p);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss_mib = server::rss_kib(pid) as f64 / 1024.0;
    eprintln!("phonegate-bench: oidc-provider at {base}, idle RSS {idle_rss_mib:.1} MiB");
    let baseline = oidc::baseline(&p, n, duration).await;
    let mut scenarios = vec![baseline.clone()];
    for name in names {
        match oidc::scenario(name, &p, n, duration).await {
            Ok(stats) => scenarios.push(stats),
            Err(e) => {
                eprintln!("  oidc-provider {name} could not run: {e:#}");
                failed.push(format!("oidc-provider {name}: {e:#}"));
            }
        }
    }
    for r in &mut scenarios {
        r.ratio_to_baseline = Some(r.ops_per_sec / baseline.requests_per_sec);
    }
    let (version, node_version) = match &node {
        Some(node) => (node.version.clone(), node.node.clone()),
        None => ("(already running)".into(), "?".into()),
    };
    Ok(Comparison { version, node: node_version, idle_rss_mib, scenarios })
}
