//! Shared helpers: spawn the app, call the API, read codes from the dev outbox.
use chrono::{Duration, TimeZone, Utc};
use phonegate::app::App;
use phonegate::config::Config;
use phonegate::http::AppState;
use phonegate_core::{Caller, ManualClock};
use reqwest::{Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub key_id: String,
    pub secret: String,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub database_url: String,
    _dir: TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A fresh, valid German mobile number per call, so tests never share a pending verification.
pub fn fresh_number() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id() as u64 * 1000;
    format!("+49151{:08}", n % 100_000_000)
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_trusting(configure, None).await
    }

    /// Spawns the app serving HTTPS itself with a new self-signed certificate for `localhost` and
    /// `127.0.0.1` (the client trusts it); returns the app and the certificate, for other clients.
    pub async fn spawn_tls(configure: impl FnOnce(&mut Config)) -> (Self, reqwest::Certificate) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let pem = cert.cert.pem();
        let app = Self::spawn_trusting(
            |c| {
                c.tls.cert = Some(cert_path);
                c.tls.key = Some(key_path);
                configure(c);
            },
            Some(pem.as_bytes()),
        )
        .await;
        assert!(app.base.starts_with("https://"));
        (app, reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
    }

    /// Spawns the app; `ca_pem` is a certificate the client trusts (for an HTTPS listener).
    pub async fn spawn_trusting(configure: impl FnOnce(&mut Config), ca_pem: Option<&[u8]>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = phonegate_store::testing::fresh_database_url(dir.path()).await.expect("a test database");
        // The start request waits for the send's result (a test that wants it not to sets its own
        // delivery.send_wait): how long a send takes on a busy machine must not change what a test sees.
        let mut config = Config { listen: "127.0.0.1:0".parse().unwrap(), database_url, ..Config::default() };
        config.delivery.send_wait = std::time::Duration::from_secs(60);
        configure(&mut config);
        if config.secret_file.is_none() {
            config.secret_file = phonegate_store::testing::secret_file(&config.database_url);
        }
        // The database the app really uses (a test may point it at another one).
        let database_url = config.database_url.clone();
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()));
        let app = App::build(config, clock.clone()).await.expect("app builds");
        let scheme = if app.is_tls() { "https" } else { "http" };
        let base = format!("{scheme}://{}", app.local_addr());
        let state = app.state.clone();
        let (key, secret) = state
            .core
            .api_keys
            .create(&Caller::system("tests"), "tests", phonegate_core::apikey::KeyScope::Admin)
            .await
            .expect("key stored");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let mut client = reqwest::Client::builder().pool_max_idle_per_host(64);
        if let Some(pem) = ca_pem {
            client = client.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        let client = client.build().unwrap();
        let secret = secret.expose_secret().to_string();
        Self { base, client, key_id: key.id, secret, clock, state, database_url, _dir: dir, _shutdown: tx }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(&self.secret).json(&body).send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(&self.secret).send().await.expect("request sent")
    }

    /// Starts a verification and returns its JSON, asserting 201.
    pub async fn start(&self, to: &str) -> Value {
        let r = self.post("/api/verifications", json!({ "to": to })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// The code in the newest outbox message to `to`.
    pub async fn code_for(&self, to: &str) -> String {
        let messages = self.outbox(to).await;
        let body = messages[0]["body"].as_str().expect("a message was stored").to_string();
        body.rsplit(' ').next().unwrap().to_string()
    }

    pub async fn outbox(&self, to: &str) -> Vec<Value> {
        let r = self.client.get(self.url("/api/dev/outbox")).query(&[("to", to)]).bearer_auth(&self.secret).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    pub async fn check(&self, id: &str, code: &str) -> Response {
        self.post(&format!("/api/verifications/{id}/check"), json!({ "code": code })).await
    }

    /// How many texts to `to` were ever queued. Every text is queued in the unit of the request
    /// that sends it, committed before that request is answered: once a request has answered,
    /// this counts every text it will ever send, whereas the outbox lists a text only once its
    /// send has ended (for a login code, after the answer). "Nothing was sent" is asserted here.
    pub async fn queued(&self, to: &str) -> i64 {
        assert!(to.starts_with('+') && to[1..].bytes().all(|b| b.is_ascii_digit()), "{to}");
        self.query_i64(&format!("SELECT COUNT(*) FROM messages WHERE to_number = '{to}'")).await
    }

    /// The one integer a SQL query returns, from the app's database.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        query_i64(&self.database_url, sql).await
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A wrong code of the right length for `code`.
pub fn wrong(code: &str) -> String {
    code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect()
}

/// Asserts status and error code of an error response; returns its `error` object.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status for expected `{code}`");
    let v: Value = r.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["error"].clone()
}

/// Provider settings for tests, pointing at local mock servers.
pub mod providers {
    use phonegate_providers::{ProviderKind, ProviderSettings, Secret, TwilioSettings, VonageSettings, WebhookSettings};
    use std::time::Duration;

    pub fn http(url: &str, timeout_ms: u64) -> ProviderSettings {
        ProviderSettings {
            kind: ProviderKind::Http(WebhookSettings { url: url.into(), secret: Secret::new("whsec") }),
            timeout: Duration::from_millis(timeout_ms),
            retries: 0,
            channels: None,
        }
    }

    pub fn twilio(base_url: &str, timeout_ms: u64) -> ProviderSettings {
        ProviderSettings {
            kind: ProviderKind::Twilio(TwilioSettings {
                account_sid: "AC0123".into(),
                auth_token: Secret::new("twilio-token"),
                api_key_sid: None,
                api_key_secret: None,
                from: Some("+15005550006".into()),
                messaging_service_sid: None,
                base_url: Some(base_url.into()),
                voice_from: None,
                voices: Default::default(),
                whatsapp_from: Some("+15005550006".into()),
                whatsapp_content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
            }),
            timeout: Duration::from_millis(timeout_ms),
            retries: 0,
            channels: None,
        }
    }

    pub fn vonage(base_url: &str) -> ProviderSettings {
        ProviderSettings {
            kind: ProviderKind::Vonage(VonageSettings {
                api_key: "abcd1234".into(),
                api_secret: Secret::new("vonage-secret"),
                from: Some("Acme".into()),
                signature_secret: Some(Secret::new("sig-secret")),
                signature_method: None,
                base_url: Some(base_url.into()),
                application_id: None,
                private_key: None,
                voice_from: None,
                whatsapp_from: None,
                whatsapp_template: None,
                whatsapp_languages: None,
                api_base_url: None,
            }),
            timeout: Duration::from_secs(30),
            retries: 0,
            channels: None,
        }
    }
}

/// The one integer a SQL query returns, from the database `database_url` names (either backend).
pub async fn query_i64(database_url: &str, sql: &str) -> i64 {
    phonegate_store::testing::count(database_url, sql).await.unwrap()
}

/// Polls `f` every 20 ms until it returns Some. The 30 s bound is far above anything a working
/// server needs even on a loaded machine (a passing test returns as soon as the condition
/// holds); it only stops a broken test from hanging.
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// The app clock as Unix seconds (what signed webhooks' timestamps are checked against).
    pub fn clock_now_unix(&self) -> i64 {
        use phonegate_core::Clock;
        self.clock.now().timestamp()
    }
}

/// A `phonegate serve` process on a free port, for tests that need real separate instances.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    /// Log lines read so far (JSON), and the rest of stderr for later reading.
    pub logs: String,
    pub stderr: std::io::BufReader<std::process::ChildStderr>,
}

/// Creates an API key with the `keys create` command on the database `url` names; returns its
/// secret. Blocking: call it from `spawn_blocking`.
pub fn cli_key(url: &str, name: &str) -> String {
    let key = std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["keys", "create", "--name", name, "--json"])
        .env("PHONEGATE_DATABASE_URL", url)
        .envs(phonegate_store::testing::secret_file(url).map(|f| ("PHONEGATE_SECRET_FILE", f)))
        .output()
        .unwrap();
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    key["secret"].as_str().unwrap().to_string()
}

impl Server {
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("PHONEGATE_DATABASE_URL", database_url)
            .envs(phonegate_store::testing::secret_file(database_url).map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .env_remove("PHONEGATE_CONFIG")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut logs = String::new();
        let address = loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "server exited early: {logs}");
            logs.push_str(&line);
            let entry: Value = serde_json::from_str(&line).expect("JSON log line");
            if let Some(a) = entry["address"].as_str() {
                break a.to_string();
            }
        };
        Server { child, base: format!("http://{address}"), logs, stderr }
    }

    /// Sends SIGTERM and waits; returns whether it exited cleanly, and all of its logs.
    pub fn stop(&mut self) -> (bool, String) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stderr, &mut rest);
        (ok, format!("{}{rest}", self.logs))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one `phonegate` command on the database `db` names (no configuration file).
pub fn phonegate(db: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(args)
        .env("PHONEGATE_DATABASE_URL", db)
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap()
}

/// A command's stdout and stderr, for assertions and their messages.
pub fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

impl Server {
    /// `Server::spawn` off the async runtime's workers.
    pub async fn start(url: &str) -> Server {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || Server::spawn(&url, &[])).await.unwrap()
    }

    /// `stop` off the runtime's workers, asserting a clean exit.
    pub async fn stopped(mut self) {
        let (clean, logs) = tokio::task::spawn_blocking(move || self.stop()).await.unwrap();
        assert!(clean, "the server stops cleanly: {logs}");
    }
}
