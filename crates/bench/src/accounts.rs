//! The accounts scenarios (docs/accounts.md): `GET /api/me` by bearer token and by session
//! cookie, refresh-token rotation, and password logins, which are set against the Argon2 ceiling
//! of this machine measured by the bench itself, with a light `/healthz` probe running alongside.
//!
//! Every user is signed up through the JSON API before the timing starts: sign-up, the code read
//! from the dev outbox, verify.
use crate::load::{self, Sample, Stats};
use crate::scenarios::{self, Ctx};
use crate::server;
use anyhow::{Context, bail};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every bench user's password.
const PASSWORD: &str = "bench-password-0123";

/// The server's password hashing (docs/accounts.md: OWASP's 19 MiB, 2 passes, 1 lane).
const ARGON2_M_KIB: u32 = 19456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// Password logins per user in one run: each sends a code, and a number's pending verification
/// takes 5 sends per 10 minutes (one is the check before the timing).
const LOGINS_PER_USER: usize = 4;

/// How often the probe asks for `/healthz` while password logins run.
const PROBE_EVERY: Duration = Duration::from_millis(10);

pub const NAMES: [&str; 4] = ["me_bearer", "me_cookie", "refresh", "password_login"];

/// A signed-up user and the session its verify opened.
#[derive(Clone, Default)]
pub struct User {
    pub username: String,
    pub phone: String,
    pub access_token: String,
    pub refresh_token: String,
    /// `name=value` of the session cookie (with `"session":"cookie"`).
    pub cookie: String,
}

/// What password logins reached against what the machine can hash.
#[derive(Clone, Debug, Serialize)]
pub struct LoginReport {
    pub ceiling: Ceiling,
    pub logins_per_sec: f64,
    pub ratio_to_ceiling: f64,
    /// Other processes' CPU use during the logins, in cores (on a shared machine).
    pub others_cpu: f64,
    pub probe: Probe,
}

impl std::fmt::Display for LoginReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.ceiling)?;
        writeln!(
            f,
            "password_login: {:.1} logins/s = {:.3} of the Argon2 ceiling (target ≥ 0.85); other processes used {:.2} cores meanwhile",
            self.logins_per_sec, self.ratio_to_ceiling, self.others_cpu
        )?;
        write!(f, "{}", self.probe)
    }
}

/// Argon2id hashes per second on every core, with the server's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub threads: usize,
    pub hashes: u64,
    pub seconds: f64,
    pub hashes_per_sec: f64,
    /// Each measurement's rate (before the logins, and after them).
    pub runs: Vec<f64>,
    /// The server's CPU use meanwhile, in cores (it should be idle).
    pub server_cpu: f64,
    /// Other processes' CPU use meanwhile, in cores (on a shared machine).
    pub others_cpu: f64,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Ceiling {
    /// Both measurements as one.
    fn and(self, other: Ceiling) -> Ceiling {
        let (hashes, seconds) = (self.hashes + other.hashes, self.seconds + other.seconds);
        let mean = |a: f64, b: f64| (a * self.seconds + b * other.seconds) / seconds;
        Ceiling {
            hashes,
            seconds,
            hashes_per_sec: hashes as f64 / seconds,
            runs: [self.runs, other.runs].concat(),
            server_cpu: mean(self.server_cpu, other.server_cpu),
            others_cpu: mean(self.others_cpu, other.others_cpu),
            ..self
        }
    }
}

impl std::fmt::Display for Ceiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs: Vec<String> = self.runs.iter().map(|r| format!("{r:.1}")).collect();
        let when = match &runs[..] {
            [before, after] => format!("{before} before the logins and {after} after them"),
            _ => "measured by the bench".into(),
        };
        write!(
            f,
            "argon2 ceiling: {:.1} hashes/s (Argon2id v0x13 m={} KiB t={} p={}, {} threads, {} hashes in {:.1}s; {when}; meanwhile the server used {:.2} cores and other processes {:.2})",
            self.hashes_per_sec, self.m_kib, self.t, self.p, self.threads, self.hashes, self.seconds, self.server_cpu, self.others_cpu
        )
    }
}

/// `/healthz` latency seen by a light client while the server is busy.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub every_ms: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "healthz probe during password_login: p99 {:.2} ms (target < 10 ms), p50 {:.2} ms, max {:.1} ms, {} requests every {} ms, {} errors",
            self.p99_ms, self.p50_ms, self.max_ms, self.requests, self.every_ms, self.errors
        )
    }
}

/// Sets up and runs one accounts scenario; the password login also answers its report.
pub async fn scenario(
    name: &str,
    ctx: &Arc<Ctx>,
    connections: usize,
    duration: Duration,
    pid: u32,
) -> anyhow::Result<(Stats, Option<LoginReport>)> {
    let c = ctx.clone();
    Ok(match name {
        "me_bearer" => {
            let users = sign_up_many(ctx, connections, false, false).await?;
            (load::run(name, connections, duration, pid, move |i| me_bearer(c.clone(), users.clone(), i)).await, None)
        }
        "me_cookie" => {
            let users = sign_up_many(ctx, connections, false, true).await?;
            (load::run(name, connections, duration, pid, move |i| me_cookie(c.clone(), users.clone(), i)).await, None)
        }
        "refresh" => {
            let users = sign_up_many(ctx, connections, false, false).await?;
            let chains: Arc<Vec<Mutex<Option<String>>>> =
                Arc::new(users.iter().map(|u| Mutex::new(Some(u.refresh_token.clone()))).collect());
            (load::run_workers(name, connections, duration, pid, move |w, _| refresh(c.clone(), chains.clone(), w)).await, None)
        }
        "password_login" => {
            eprintln!("  measuring the Argon2 ceiling for {}s (the server idle)", duration.as_secs());
            let ceiling = measure_ceiling(pid, duration).await?;
            eprintln!("  {ceiling}");
            // Each login sends a code to the account's number, on the number's pending
            // verification when there is one, which takes 5 sends per 10 minutes: enough users
            // that none is logged in more than 4 times, with a wide margin over the ceiling (a
            // shared machine's speed can double within seconds).
            let expected = ceiling.hashes_per_sec * duration.as_secs_f64() * 3.0;
            let users = sign_up_many(ctx, connections.max((expected / LOGINS_PER_USER as f64).ceil() as usize), true, false).await?;
            check_password_login(ctx, &users[0]).await?;
            let stop = Arc::new(AtomicBool::new(false));
            let probe = tokio::spawn(probe(ctx.base.clone(), stop.clone()));
            let others = server::Others::start(pid);
            let stats = load::run(name, connections, duration, pid, move |i| password_login(c.clone(), users.clone(), i)).await;
            let others_cpu = others.cores();
            stop.store(true, Ordering::Relaxed);
            let probe = probe.await?;
            // Once more after the run (the server idle again), so a machine whose speed drifts
            // is measured on both sides of the logins.
            let after = measure_ceiling(pid, duration).await?;
            let ceiling = ceiling.and(after);
            let report = LoginReport {
                logins_per_sec: stats.ops_per_sec,
                ratio_to_ceiling: stats.ops_per_sec / ceiling.hashes_per_sec,
                others_cpu,
                ceiling,
                probe,
            };
            (stats, Some(report))
        }
        other => bail!("not an accounts scenario: {other}"),
    })
}

fn url(ctx: &Ctx, path: &str) -> String {
    format!("{}{path}", ctx.base)
}

/// The answer's JSON when it has the expected status, else an error naming the request.
async fn expect(r: reqwest::Response, status: u16, what: &str) -> anyhow::Result<Value> {
    let got = r.status();
    if got.as_u16() != status {
        let body = r.text().await.unwrap_or_default();
        bail!("{what} answered {got} (expected {status}): {}", body.chars().take(300).collect::<String>());
    }
    r.json().await.with_context(|| format!("{what} answered no JSON"))
}

/// The number's newest message, once there is one (the send may lag the answer briefly).
async fn newest_message(ctx: &Ctx, to: &str) -> Option<Value> {
    let r = ctx.client.get(url(ctx, "/api/dev/outbox")).query(&[("to", to), ("limit", "1")]).bearer_auth(&ctx.secret).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json::<Value>().await.ok()?["messages"].get(0).cloned()
}

/// The code of the number's newest message, waiting up to 5 s for it to arrive.
async fn outbox_code(ctx: &Ctx, to: &str) -> anyhow::Result<String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Some(code) = scenarios::code(ctx, to).await {
            let code = code.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
            if !code.is_empty() {
                return Ok(code);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("no code for {to} in the dev outbox within 5 s")
}

/// Signs up a user with a fresh number (sign-up, code from the outbox, verify): with a
/// password or not, with a session cookie or tokens.
pub async fn sign_up(ctx: &Ctx, password: bool, cookie: bool) -> anyhow::Result<User> {
    let phone = ctx.fresh_number();
    let username = format!("bench{}", phone.trim_start_matches('+'));
    let mut body = json!({ "username": username, "phone": phone });
    if password {
        body["password"] = json!(PASSWORD);
    }
    let r = ctx.client.post(url(ctx, "/api/auth/signup")).json(&body).send().await?;
    let flow = expect(r, 202, "POST /api/auth/signup").await?;
    let flow_id = flow["flow_id"].as_str().context("the sign-up answered no flow_id")?.to_string();
    let code = outbox_code(ctx, &phone).await?;
    let mut body = json!({ "flow_id": flow_id, "code": code });
    if cookie {
        body["session"] = json!("cookie");
    }
    let r = ctx.client.post(url(ctx, "/api/auth/verify")).json(&body).send().await?;
    let session_cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::trim))
        .find(|pair| pair.split_once('=').is_some_and(|(name, value)| name.ends_with("phonegate_session") && !value.is_empty()))
        .map(str::to_string);
    let v = expect(r, 200, "POST /api/auth/verify").await?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let user = User { username, phone, access_token: text("access_token"), refresh_token: text("refresh_token"), cookie: String::new() };
    if cookie {
        let cookie = session_cookie.context("verify with \"session\":\"cookie\" set no phonegate_session cookie")?;
        return Ok(User { cookie, ..user });
    }
    if user.access_token.is_empty() || user.refresh_token.is_empty() {
        bail!("verify answered no access_token or refresh_token: {v}");
    }
    Ok(user)
}

/// Signs up `count` users, several at a time (not timed).
pub async fn sign_up_many(ctx: &Arc<Ctx>, count: usize, password: bool, cookie: bool) -> anyhow::Result<Arc<Vec<User>>> {
    eprintln!("  signing up {count} users{}", if password { " with passwords" } else { "" });
    let t = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (ctx, gate) = (ctx.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                sign_up(&ctx, password, cookie).await
            })
        })
        .collect();
    let mut users = Vec::with_capacity(count);
    for t in tasks {
        users.push(t.await??);
    }
    eprintln!("  signed up {count} users in {:.1}s", t.elapsed().as_secs_f64());
    Ok(Arc::new(users))
}

/// A password login answers 202 whether the password was right or not: only the code it sends
/// tells. One login before the timing makes sure the bench's logins are the good kind.
async fn check_password_login(ctx: &Ctx, user: &User) -> anyhow::Result<()> {
    let before = newest_message(ctx, &user.phone).await;
    let r = ctx.client.post(url(ctx, "/api/auth/login")).json(&json!({ "identifier": user.username, "password": PASSWORD })).send().await?;
    expect(r, 202, "POST /api/auth/login").await?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if newest_message(ctx, &user.phone).await.is_some_and(|m| Some(&m) != before.as_ref()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("a password login for {} sent no code within 5 s (was the password refused?)", user.username)
}

fn sample(started: Instant, ok: bool) -> Sample {
    Sample { micros: started.elapsed().as_micros() as u64, ok, requests: 1 }
}

/// Prints the first few unexpected answers of each scenario (the table only counts them).
pub(crate) fn note_error(scenario: &'static str, what: String) {
    static SEEN: Mutex<Vec<(&str, u32)>> = Mutex::new(Vec::new());
    let Ok(mut seen) = SEEN.lock() else { return };
    let n = match seen.iter_mut().find(|(s, _)| *s == scenario) {
        Some((_, n)) => n,
        None => {
            seen.push((scenario, 0));
            &mut seen.last_mut().expect("just pushed").1
        }
    };
    *n += 1;
    if *n <= 3 {
        eprintln!("  {scenario}: unexpected answer: {}", what.chars().take(300).collect::<String>());
    }
}

/// Whether the answer has the status, its body read to the end (as a client would).
async fn answered(scenario: &'static str, r: Result<reqwest::Response, reqwest::Error>, status: u16) -> bool {
    match r {
        Ok(r) if r.status().as_u16() == status => r.bytes().await.is_ok(),
        Ok(r) => {
            let got = r.status();
            note_error(scenario, format!("{got} {}", r.text().await.unwrap_or_default()));
            false
        }
        Err(e) => {
            note_error(scenario, e.to_string());
            false
        }
    }
}

pub async fn me_bearer(ctx: Arc<Ctx>, users: Arc<Vec<User>>, i: u64) -> Sample {
    let user = &users[i as usize % users.len()];
    let t = Instant::now();
    let r = ctx.client.get(url(&ctx, "/api/me")).bearer_auth(&user.access_token).send().await;
    let ok = answered("me_bearer", r, 200).await;
    sample(t, ok)
}

pub async fn me_cookie(ctx: Arc<Ctx>, users: Arc<Vec<User>>, i: u64) -> Sample {
    let user = &users[i as usize % users.len()];
    let t = Instant::now();
    let r = ctx.client.get(url(&ctx, "/api/me")).header(reqwest::header::COOKIE, &user.cookie).send().await;
    let ok = answered("me_cookie", r, 200).await;
    sample(t, ok)
}

/// Each worker rotates its own session's refresh token; a broken chain is an error, and the
/// worker signs up a new user (not timed) before its next refresh.
pub async fn refresh(ctx: Arc<Ctx>, chains: Arc<Vec<Mutex<Option<String>>>>, worker: usize) -> Sample {
    let slot = &chains[worker % chains.len()];
    let held = slot.lock().ok().and_then(|mut s| s.take());
    let token = match held {
        Some(token) => token,
        None => match sign_up(&ctx, false, false).await {
            Ok(user) => user.refresh_token,
            Err(e) => {
                eprintln!("  refresh: a new session for worker {worker} failed: {e:#}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Sample { micros: 0, ok: false, requests: 0 };
            }
        },
    };
    let t = Instant::now();
    let r = ctx.client.post(url(&ctx, "/api/auth/refresh")).json(&json!({ "refresh_token": token })).send().await;
    let next = match r {
        Ok(r) if r.status() == 200 => r.json::<Value>().await.ok().and_then(|v| v["refresh_token"].as_str().map(str::to_string)),
        Ok(r) => {
            note_error("refresh", format!("{} {}", r.status(), r.text().await.unwrap_or_default()));
            None
        }
        Err(e) => {
            note_error("refresh", e.to_string());
            None
        }
    };
    let s = sample(t, next.is_some());
    if let Ok(mut held) = slot.lock() {
        *held = next;
    }
    s
}

/// A password login, the users in turn (its code is sent; nobody enters it).
pub async fn password_login(ctx: Arc<Ctx>, users: Arc<Vec<User>>, i: u64) -> Sample {
    let user = &users[i as usize % users.len()];
    let t = Instant::now();
    let r = ctx.client.post(url(&ctx, "/api/auth/login")).json(&json!({ "identifier": user.username, "password": PASSWORD })).send().await;
    let ok = match r {
        Ok(r) if r.status() == 202 => r.json::<Value>().await.is_ok_and(|v| v["flow_id"].is_string()),
        Ok(r) => {
            note_error("password_login", format!("{} {}", r.status(), r.text().await.unwrap_or_default()));
            false
        }
        Err(e) => {
            note_error("password_login", e.to_string());
            false
        }
    };
    sample(t, ok)
}

/// The ceiling once the server has gone quiet (up to 10 s), with what the server used meanwhile.
async fn measure_ceiling(pid: u32, duration: Duration) -> anyhow::Result<Ceiling> {
    let t = Instant::now();
    loop {
        let before = server::cpu_secs(pid);
        tokio::time::sleep(Duration::from_millis(250)).await;
        if server::cpu_secs(pid) - before <= 0.02 || t.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let (before, others) = (server::cpu_secs(pid), server::Others::start(pid));
    let mut ceiling = tokio::task::spawn_blocking(move || argon2_ceiling(duration)).await??;
    ceiling.server_cpu = (server::cpu_secs(pid) - before) / ceiling.seconds;
    ceiling.others_cpu = others.cores();
    Ok(ceiling)
}

/// Argon2id hashes per second with the server's parameters, one thread per core, for `duration`.
/// Each thread keeps its memory, so no hash pays for page faults: the machine's best.
pub fn argon2_ceiling(duration: Duration) -> anyhow::Result<Ceiling> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
    let start = Instant::now();
    let deadline = start + duration;
    let done: Vec<anyhow::Result<(u64, Instant)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let params = params.clone();
                s.spawn(move || {
                    let mut memory = vec![Block::default(); params.block_count()];
                    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let salt = [i as u8; 16];
                    let mut out = [0u8; 32];
                    let mut hashes = 0u64;
                    loop {
                        argon2
                            .hash_password_into_with_memory(PASSWORD.as_bytes(), &salt, &mut out, &mut memory)
                            .map_err(|e| anyhow::anyhow!("Argon2: {e}"))?;
                        hashes += 1;
                        let now = Instant::now();
                        if now >= deadline {
                            return Ok((hashes, now));
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an Argon2 thread panicked")))).collect()
    });
    let mut hashes = 0;
    let mut end = start;
    for d in done {
        let (n, at) = d?;
        hashes += n;
        end = end.max(at);
    }
    let seconds = (end - start).as_secs_f64();
    let rate = hashes as f64 / seconds;
    Ok(Ceiling {
        threads,
        hashes,
        seconds,
        hashes_per_sec: rate,
        runs: vec![rate],
        server_cpu: 0.0,
        others_cpu: 0.0,
        m_kib: ARGON2_M_KIB,
        t: ARGON2_T,
        p: ARGON2_P,
    })
}

/// One `/healthz` every [`PROBE_EVERY`] on a connection of its own until `stop`.
async fn probe(base: String, stop: Arc<AtomicBool>) -> Probe {
    let client = reqwest::Client::builder().http1_only().pool_max_idle_per_host(1).build().expect("HTTP client");
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut micros, mut errors) = (Vec::new(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let t = Instant::now();
        let ok = answered("healthz probe", client.get(format!("{base}/healthz")).send().await, 200).await;
        micros.push(t.elapsed().as_micros() as u64);
        errors += u64::from(!ok);
    }
    micros.sort_unstable();
    Probe {
        every_ms: PROBE_EVERY.as_millis() as u64,
        requests: micros.len() as u64,
        errors,
        p50_ms: load::percentile_ms(&micros, 0.50),
        p99_ms: load::percentile_ms(&micros, 0.99),
        max_ms: load::percentile_ms(&micros, 1.0),
    }
}
