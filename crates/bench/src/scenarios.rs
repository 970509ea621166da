//! The scenarios: each is one operation a worker repeats, timed the way a user experiences it.
use crate::load::Sample;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub struct Ctx {
    pub client: reqwest::Client,
    pub base: String,
    pub key_id: String,
    pub secret: String,
    /// Verifications created by the `start` scenario, reused by `status` and `check`.
    pub ids: Mutex<Vec<String>>,
    pub twilio_service: String,
    numbers: AtomicU64,
}

impl Ctx {
    pub fn new(base: String, key_id: String, secret: String, connections: usize) -> Ctx {
        let client = reqwest::Client::builder().http1_only().pool_max_idle_per_host(connections).build().expect("HTTP client");
        Ctx { client, base, key_id, secret, ids: Mutex::new(Vec::new()), twilio_service: String::new(), numbers: AtomicU64::new(0) }
    }

    /// A valid German mobile number no earlier operation used.
    pub fn fresh_number(&self) -> String {
        format!("+49151{:08}", self.numbers.fetch_add(1, Ordering::Relaxed))
    }

    fn ids_snapshot(&self) -> Vec<String> {
        self.ids.lock().map(|ids| ids.clone()).unwrap_or_default()
    }
}

fn sample(started: Instant, ok: bool, requests: u64) -> Sample {
    Sample { micros: started.elapsed().as_micros() as u64, ok, requests }
}

async fn json_of(r: Result<reqwest::Response, reqwest::Error>, expect: u16) -> Option<Value> {
    let r = r.ok()?;
    if r.status().as_u16() != expect {
        return None;
    }
    r.json().await.ok()
}

/// Reads a number's newest code from the dev outbox (never part of the timing).
pub async fn code(ctx: &Ctx, to: &str) -> Option<String> {
    let r =
        ctx.client.get(format!("{}/api/dev/outbox", ctx.base)).query(&[("to", to), ("limit", "1")]).bearer_auth(&ctx.secret).send().await;
    let v = json_of(r, 200).await?;
    Some(v["messages"][0]["body"].as_str()?.rsplit(' ').next()?.to_string())
}

pub async fn baseline(ctx: Arc<Ctx>) -> Sample {
    let t = Instant::now();
    let ok = ctx.client.get(format!("{}/healthz", ctx.base)).send().await.is_ok_and(|r| r.status() == 200);
    sample(t, ok, 1)
}

async fn start_one(ctx: &Ctx, to: &str) -> Option<String> {
    let r = ctx.client.post(format!("{}/api/verifications", ctx.base)).bearer_auth(&ctx.secret).json(&json!({ "to": to })).send().await;
    Some(json_of(r, 201).await?["id"].as_str()?.to_string())
}

pub async fn start(ctx: Arc<Ctx>) -> Sample {
    let to = ctx.fresh_number();
    let t = Instant::now();
    let id = start_one(&ctx, &to).await;
    let s = sample(t, id.is_some(), 1);
    if let (Some(id), Ok(mut ids)) = (id, ctx.ids.lock()) {
        ids.push(id);
    }
    s
}

pub async fn status(ctx: Arc<Ctx>, ids: Arc<Vec<String>>, i: u64) -> Sample {
    let id = &ids[(i as usize) % ids.len()];
    let t = Instant::now();
    let r = ctx.client.get(format!("{}/api/verifications/{id}", ctx.base)).bearer_auth(&ctx.secret).send().await;
    sample(t, r.is_ok_and(|r| r.status() == 200), 1)
}

/// Wrong codes, four per verification so each stays pending (the fifth would lock it).
pub async fn check(ctx: Arc<Ctx>, ids: Arc<Vec<String>>, i: u64) -> Sample {
    let id = &ids[(i as usize / 4) % ids.len()];
    let t = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/api/verifications/{id}/check", ctx.base))
        .bearer_auth(&ctx.secret)
        .json(&json!({ "code": "000000" }))
        .send()
        .await;
    let ok = json_of(r, 200).await.is_some_and(|v| v["status"] == "pending" || v["valid"] == true);
    sample(t, ok, 1)
}

/// The user journey: start, (read the code, untimed), check it.
pub async fn pair(ctx: Arc<Ctx>) -> Sample {
    let to = ctx.fresh_number();
    let t = Instant::now();
    let Some(id) = start_one(&ctx, &to).await else { return sample(t, false, 1) };
    let started = t.elapsed();
    let Some(code) = code(&ctx, &to).await else { return Sample { micros: started.as_micros() as u64, ok: false, requests: 1 } };
    let t2 = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/api/verifications/{id}/check", ctx.base))
        .bearer_auth(&ctx.secret)
        .json(&json!({ "code": code }))
        .send()
        .await;
    let ok = json_of(r, 200).await.is_some_and(|v| v["valid"] == true);
    Sample { micros: (started + t2.elapsed()).as_micros() as u64, ok, requests: 2 }
}

/// The silent journey (the simulator): an `auto` start, then the device's way through its check
/// link (three redirects, the simulated operator answering "match") to the approval. No code.
pub async fn silent(ctx: Arc<Ctx>) -> Sample {
    let to = ctx.fresh_number();
    let t = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/api/verifications", ctx.base))
        .bearer_auth(&ctx.secret)
        .json(&json!({ "to": to, "channel": "auto" }))
        .send()
        .await;
    let Some(url) = json_of(r, 201).await.and_then(|v| v["silent"]["check_url"].as_str().map(str::to_string)) else {
        return sample(t, false, 1);
    };
    let ok = match ctx.client.get(format!("{url}?sim=match")).send().await {
        Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|page| page.contains("Number verified")),
        Err(_) => false,
    };
    sample(t, ok, 4)
}

/// The same journey through the Twilio Verify v2 API, form-encoded with Basic auth.
pub async fn compat(ctx: Arc<Ctx>) -> Sample {
    let to = ctx.fresh_number();
    let service = &ctx.twilio_service;
    let t = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/v2/Services/{service}/Verifications", ctx.base))
        .basic_auth(&ctx.key_id, Some(&ctx.secret))
        .form(&[("To", to.as_str()), ("Channel", "sms")])
        .send()
        .await;
    if json_of(r, 201).await.is_none() {
        return sample(t, false, 1);
    }
    let started = t.elapsed();
    let Some(code) = code(&ctx, &to).await else { return Sample { micros: started.as_micros() as u64, ok: false, requests: 1 } };
    let t2 = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/v2/Services/{service}/VerificationCheck", ctx.base))
        .basic_auth(&ctx.key_id, Some(&ctx.secret))
        .form(&[("To", to.as_str()), ("Code", code.as_str())])
        .send()
        .await;
    let ok = json_of(r, 200).await.is_some_and(|v| v["valid"] == true);
    Sample { micros: (started + t2.elapsed()).as_micros() as u64, ok, requests: 2 }
}

/// The same journey through Vonage Verify v2: JSON with Basic auth, a `request_id` to check.
pub async fn vonage2(ctx: Arc<Ctx>) -> Sample {
    let to = ctx.fresh_number();
    let t = Instant::now();
    let body = json!({ "brand": "Bench", "workflow": [{ "channel": "sms", "to": to.trim_start_matches('+') }] });
    let r = ctx.client.post(format!("{}/v2/verify", ctx.base)).basic_auth(&ctx.key_id, Some(&ctx.secret)).json(&body).send().await;
    let Some(rid) = json_of(r, 202).await.and_then(|v| v["request_id"].as_str().map(str::to_string)) else { return sample(t, false, 1) };
    let started = t.elapsed();
    let Some(code) = code(&ctx, &to).await else { return Sample { micros: started.as_micros() as u64, ok: false, requests: 1 } };
    let t2 = Instant::now();
    let r = ctx
        .client
        .post(format!("{}/v2/verify/{rid}", ctx.base))
        .basic_auth(&ctx.key_id, Some(&ctx.secret))
        .json(&json!({ "code": code }))
        .send()
        .await;
    let ok = json_of(r, 200).await.is_some_and(|v| v["status"] == "completed");
    Sample { micros: (started + t2.elapsed()).as_micros() as u64, ok, requests: 2 }
}

/// Creates the Twilio service the compat scenario uses.
pub async fn twilio_service(ctx: &Ctx) -> anyhow::Result<String> {
    let r = ctx
        .client
        .post(format!("{}/v2/Services", ctx.base))
        .basic_auth(&ctx.key_id, Some(&ctx.secret))
        .form(&[("FriendlyName", "bench")])
        .send()
        .await?;
    Ok(r.json::<Value>().await?["sid"].as_str().unwrap_or_default().to_string())
}

pub fn ids(ctx: &Ctx) -> Arc<Vec<String>> {
    Arc::new(ctx.ids_snapshot())
}

/// Starts verifications until at least `needed` exist for `check` (not timed).
pub async fn prefill(ctx: &Arc<Ctx>, needed: usize, connections: usize) {
    let have = ctx.ids.lock().map(|ids| ids.len()).unwrap_or(0);
    if have >= needed {
        return;
    }
    eprintln!("  preparing {} more verifications for the check scenario", needed - have);
    let remaining = Arc::new(AtomicU64::new((needed - have) as u64));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (ctx, remaining) = (ctx.clone(), remaining.clone());
            tokio::spawn(async move {
                while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_ok() {
                    start(ctx.clone()).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

/// `phonegate backup` of the database, back to back for `duration` (each into a new file, then
/// removed): how many ran and the longest.
pub async fn backups(
    binary: std::path::PathBuf,
    url: String,
    dir: std::path::PathBuf,
    duration: std::time::Duration,
) -> anyhow::Result<(u32, std::time::Duration)> {
    let until = std::time::Instant::now() + duration;
    let (mut copies, mut longest) = (0, std::time::Duration::ZERO);
    while std::time::Instant::now() < until {
        let file = dir.join(format!("backup-{copies}.db"));
        let started = std::time::Instant::now();
        let (binary, url, target) = (binary.clone(), url.clone(), file.display().to_string());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary)
                .args(["backup", &target])
                .env("PHONEGATE_DATABASE_URL", url)
                .env_remove("PHONEGATE_CONFIG")
                .output()
        })
        .await??;
        anyhow::ensure!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));
        longest = longest.max(started.elapsed());
        copies += 1;
        let _ = std::fs::remove_file(&file);
    }
    Ok((copies, longest))
}
