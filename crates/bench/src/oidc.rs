//! The OpenID Connect scenarios (docs/oidc.md), run against phonegate and, for comparison, any
//! other provider with the same client (the npm package `oidc-provider`, started from
//! `oidc-provider/server.mjs` beside this crate):
//!
//! - `userinfo`: `GET /oauth2/userinfo` with a bearer access token;
//! - `oidc-refresh`: `grant_type=refresh_token` with `client_secret_basic`, each connection
//!   rotating its own refresh token;
//! - `oidc-authorize`: a signed-in browser's authorization request (its session cookie, a
//!   first-party client: no page, a redirect with a code at once), then the code exchanged with
//!   its PKCE verifier: one operation of two requests.
//!
//! Tokens come from real authorizations before the timing starts: one per connection.
use crate::load::{self, Sample, Stats};
use anyhow::{Context, bail};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NAMES: [&str; 3] = ["userinfo", "oidc-refresh", "oidc-authorize"];

/// The bench's client, the same at both providers.
pub const CLIENT_ID: &str = "bench";
pub const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdef";
/// Never contacted: the bench reads the code from the redirect.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// What an app signing a user in asks for (no refresh token: `userinfo` and `oidc-authorize`).
const SCOPE: &str = "openid profile phone";
/// The same with a refresh token (`oidc-refresh`).
const OFFLINE_SCOPE: &str = "openid profile phone offline_access";

/// The client's part of phonegate's configuration file (`public_url` is the server's address),
/// its ID tokens signed with `id_token_alg`.
pub fn phonegate_config(public_url: &str, id_token_alg: &str) -> String {
    format!(
        r#"public_url = "{public_url}"

[oidc_clients.bench]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT_URI}"]
scopes = ["openid", "profile", "phone", "email", "offline_access"]
first_party = true
id_token_signed_response_alg = "{id_token_alg}"
# The scenarios run minutes after their tokens were issued.
access_token_ttl = "1h"
"#
    )
}

/// An OpenID provider under test, its endpoints read from its discovery document, and a signed-in
/// browser's cookies.
pub struct Provider {
    pub label: String,
    pub base: String,
    /// The server process (0 when it is not ours: no memory figures).
    pub pid: u32,
    http: reqwest::Client,
    authorize: String,
    token: String,
    userinfo: String,
    /// The browser's cookies for the authorization endpoint (`name=value; …`), set by
    /// [`Provider::sign_in`].
    cookies: String,
    /// The cookies [`Provider::sign_in`] started from: another browser's, for the
    /// authorizations that make tokens (oidc-provider gives the session a new identifier after
    /// every interaction, so each of those is a browser of its own there).
    start_cookies: String,
    /// Whether `offline_access` needs `prompt=consent` to be granted (OpenID Connect Core 11:
    /// oidc-provider follows it literally; phonegate's first-party clients are trusted).
    offline_needs_consent: bool,
}

impl Provider {
    /// Reads the provider's discovery document.
    pub async fn discover(label: &str, base: &str, pid: u32, connections: usize, offline_needs_consent: bool) -> anyhow::Result<Provider> {
        let http = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(connections)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("HTTP client")?;
        let r = http.get(format!("{base}/.well-known/openid-configuration")).send().await?;
        if r.status() != 200 {
            bail!("{label}: GET /.well-known/openid-configuration answered {} (a build without OpenID Connect?)", r.status());
        }
        let d: Value = r.json().await.context("the discovery document is no JSON")?;
        let endpoint = |k: &str| d[k].as_str().map(str::to_string).with_context(|| format!("{label}: the discovery document has no {k}"));
        Ok(Provider {
            label: label.into(),
            base: base.into(),
            pid,
            authorize: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
            userinfo: endpoint("userinfo_endpoint")?,
            http,
            cookies: String::new(),
            start_cookies: String::new(),
            offline_needs_consent,
        })
    }

    /// Signs the browser in: with `cookies` it already has (phonegate: the session cookie of a
    /// sign-up), then one authorization, following the provider's own redirects (oidc-provider:
    /// its interaction, which signs anyone in), keeping every cookie it sets.
    pub async fn sign_in(&mut self, cookies: &str) -> anyhow::Result<()> {
        let mut jar = Jar::parse(cookies);
        let (_, challenge) = pkce(0, 0);
        authorize_following(self, SCOPE, false, &challenge, &mut jar).await?;
        self.cookies = jar.header(&reqwest::Url::parse(&self.authorize)?);
        self.start_cookies = cookies.to_string();
        Ok(())
    }

    /// Tokens of one authorization (not timed): the access token, and with `offline` a refresh
    /// token.
    pub async fn tokens(&self, offline: bool, n: u64) -> anyhow::Result<Tokens> {
        let (verifier, challenge) = pkce(u64::MAX, n);
        let mut jar = Jar::parse(&self.start_cookies);
        let code = authorize_following(self, if offline { OFFLINE_SCOPE } else { SCOPE }, offline, &challenge, &mut jar).await?;
        let r = self.exchange(&code, &verifier).await?;
        let got = r.status();
        let v: Value = r.json().await.unwrap_or_default();
        if got != 200 {
            bail!("{}: the code exchange answered {got}: {v}", self.label);
        }
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let tokens = Tokens { access_token: text("access_token"), refresh_token: text("refresh_token") };
        if tokens.access_token.is_empty() || v["id_token"].as_str().is_none() {
            bail!("{}: the code exchange answered no access_token or id_token: {v}", self.label);
        }
        if offline && tokens.refresh_token.is_empty() {
            bail!("{}: scope offline_access gave no refresh_token: {v}", self.label);
        }
        Ok(tokens)
    }

    async fn exchange(&self, code: &str, verifier: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(&self.token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI), ("code_verifier", verifier)])
            .send()
            .await
    }

    fn authorize_request(&self, scope: &str, offline: bool, challenge: &str, state: &str, cookies: &str) -> reqwest::RequestBuilder {
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", state),
            ("nonce", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        if offline && self.offline_needs_consent {
            query.push(("prompt", "consent"));
        }
        let r = self.http.get(&self.authorize).query(&query);
        if cookies.is_empty() { r } else { r.header(reqwest::header::COOKIE, cookies) }
    }

    /// `GET /healthz`, the same-run baseline.
    async fn healthz(&self) -> Sample {
        let t = Instant::now();
        let ok = match self.http.get(format!("{}/healthz", self.base)).send().await {
            Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        sample(t, ok, 1)
    }
}

#[derive(Clone, Default)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// The PKCE verifier of one authorization (43 to 128 URL-safe characters, unique in the run) and
/// its S256 challenge.
fn pkce(worker: u64, seq: u64) -> (String, String) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let verifier = format!("bench-pkce-verifier-{worker:020}-{seq:020}-{nanos:x}");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A browser's cookies: what it sends (by path), and what the server's `Set-Cookie` headers
/// change. One host, so domains do not matter.
struct Jar(Vec<Cookie>);

struct Cookie {
    name: String,
    value: String,
    path: String,
}

impl Jar {
    fn parse(header: &str) -> Jar {
        Jar(header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(k, v)| Cookie { name: k.into(), value: v.into(), path: "/".into() })
            .collect())
    }

    fn update(&mut self, headers: &reqwest::header::HeaderMap) {
        for set in headers.get_all(reqwest::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let mut parts = set.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else { continue };
            let (mut path, mut removed) = ("/".to_string(), value.is_empty());
            for attr in parts.map(str::trim) {
                let lower = attr.to_ascii_lowercase();
                if lower.starts_with("path=") {
                    path = attr[5..].to_string();
                }
                removed |= lower == "max-age=0" || lower.starts_with("max-age=-") || lower.starts_with("expires=thu, 01 jan 1970");
            }
            self.0.retain(|c| !(c.name == name && c.path == path));
            if !removed {
                self.0.push(Cookie { name: name.into(), value: value.into(), path });
            }
        }
    }

    /// The `Cookie` header for a request to `url` (RFC 6265's path match).
    fn header(&self, url: &reqwest::Url) -> String {
        let path = url.path();
        let matches = |c: &&Cookie| {
            let p = c.path.trim_end_matches('/');
            path == c.path || path.starts_with(p) && path[p.len()..].starts_with('/')
        };
        self.0.iter().filter(matches).map(|c| format!("{}={}", c.name, c.value)).collect::<Vec<_>>().join("; ")
    }
}

/// The code in a redirect to the client (checking `state`), if it is one.
fn code_of(location: &str, state: &str) -> Option<Result<String, String>> {
    if !location.starts_with(REDIRECT_URI) {
        return None;
    }
    let url = reqwest::Url::parse(location).ok()?;
    let param = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    Some(match (param("code"), param("state")) {
        (Some(code), Some(s)) if s == state => Ok(code),
        _ => Err(location.to_string()),
    })
}

/// One authorization as a browser makes it: the request, then the provider's own redirects (at
/// most eight), to the redirect to the client with a code.
async fn authorize_following(p: &Provider, scope: &str, offline: bool, challenge: &str, jar: &mut Jar) -> anyhow::Result<String> {
    let state = format!("setup-{}", challenge.get(..8).unwrap_or_default());
    let first = reqwest::Url::parse(&p.authorize)?;
    let mut r = p.authorize_request(scope, offline, challenge, &state, &jar.header(&first)).send().await?;
    for _ in 0..8 {
        jar.update(r.headers());
        let status = r.status();
        let location = r.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = r.text().await.unwrap_or_default();
            bail!(
                "{}: the authorization answered {status}, not a redirect to the client (is the browser signed in? is the client first-party?): {}",
                p.label,
                body.chars().take(300).collect::<String>()
            );
        };
        match code_of(&location, &state) {
            Some(Ok(code)) => return Ok(code),
            Some(Err(to)) => bail!("{}: the authorization redirected to the client without a code: {to}", p.label),
            None => {}
        }
        let next = reqwest::Url::parse(&p.authorize)?.join(&location)?;
        if !next.as_str().starts_with(&p.base) {
            bail!("{}: the authorization redirected away, to {next}", p.label);
        }
        let cookies = jar.header(&next);
        r = p.http.get(next).header(reqwest::header::COOKIE, cookies).send().await?;
    }
    bail!("{}: more than eight redirects without a code", p.label)
}

fn sample(started: Instant, ok: bool, requests: u64) -> Sample {
    Sample { micros: started.elapsed().as_micros() as u64, ok, requests }
}

/// The answer's JSON (read to the end, as a client would) when it has the status; else notes
/// what came instead.
async fn answered(scenario: &'static str, r: Result<reqwest::Response, reqwest::Error>, status: u16) -> Option<Value> {
    match r {
        Ok(r) if r.status().as_u16() == status => {
            let body = r.bytes().await.ok()?;
            Some(serde_json::from_slice(&body).unwrap_or_default())
        }
        Ok(r) => {
            let got = r.status();
            crate::accounts::note_error(scenario, format!("{got} {}", r.text().await.unwrap_or_default()));
            None
        }
        Err(e) => {
            crate::accounts::note_error(scenario, e.to_string());
            None
        }
    }
}

async fn userinfo(p: Arc<Provider>, tokens: Arc<Vec<Tokens>>, i: u64) -> Sample {
    let token = &tokens[i as usize % tokens.len()].access_token;
    let t = Instant::now();
    let body = answered("userinfo", p.http.get(&p.userinfo).bearer_auth(token).send().await, 200).await;
    let ok = body.is_some_and(|v| v["sub"].is_string());
    sample(t, ok, 1)
}

/// Each worker rotates its own refresh token; a broken chain is an error, and the worker gets a
/// new one by another authorization (not timed) before its next refresh.
async fn refresh(p: Arc<Provider>, chains: Arc<Vec<Mutex<Option<String>>>>, worker: usize, seq: u64) -> Sample {
    let slot = &chains[worker % chains.len()];
    let held = slot.lock().ok().and_then(|mut s| s.take());
    let token = match held {
        Some(token) => token,
        None => match p.tokens(true, seq).await {
            Ok(t) => t.refresh_token,
            Err(e) => {
                eprintln!("  oidc-refresh: a new refresh token for worker {worker} failed: {e:#}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Sample { micros: 0, ok: false, requests: 0 };
            }
        },
    };
    let t = Instant::now();
    let r = p
        .http
        .post(&p.token)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
        .send()
        .await;
    let next = answered("oidc-refresh", r, 200).await.and_then(|v| {
        v["access_token"].as_str()?;
        v["refresh_token"].as_str().map(str::to_string)
    });
    let s = sample(t, next.is_some(), 1);
    if let Ok(mut held) = slot.lock() {
        *held = next;
    }
    s
}

/// The signed-in browser's authorization and the client's code exchange.
async fn authorize(p: Arc<Provider>, worker: usize, seq: u64) -> Sample {
    let (verifier, challenge) = pkce(worker as u64, seq);
    let state = format!("s{seq}");
    let t = Instant::now();
    let r = p.authorize_request(SCOPE, false, &challenge, &state, &p.cookies).send().await;
    let code = match r {
        Ok(r) if r.status().is_redirection() => {
            let location = r.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
            let _ = r.bytes().await;
            match code_of(&location, &state) {
                Some(Ok(code)) => Some(code),
                _ => {
                    crate::accounts::note_error("oidc-authorize", format!("redirect to {location}"));
                    None
                }
            }
        }
        other => answered("oidc-authorize", other, 303).await.and(None::<String>),
    };
    let Some(code) = code else { return sample(t, false, 1) };
    let body = answered("oidc-authorize", p.exchange(&code, &verifier).await, 200).await;
    let ok = body.is_some_and(|v| v["access_token"].is_string() && v["id_token"].is_string());
    sample(t, ok, 2)
}

/// Sets up and runs one OpenID scenario against `p`.
pub async fn scenario(name: &str, p: &Arc<Provider>, connections: usize, duration: Duration) -> anyhow::Result<Stats> {
    let (pid, c) = (p.pid, p.clone());
    Ok(match name {
        "userinfo" => {
            let tokens = Arc::new(authorizations(p, connections, false).await?);
            load::run(name, connections, duration, pid, move |i| userinfo(c.clone(), tokens.clone(), i)).await
        }
        "oidc-refresh" => {
            let tokens = authorizations(p, connections, true).await?;
            let chains: Arc<Vec<Mutex<Option<String>>>> = Arc::new(tokens.into_iter().map(|t| Mutex::new(Some(t.refresh_token))).collect());
            load::run_workers(name, connections, duration, pid, move |w, i| refresh(c.clone(), chains.clone(), w, i)).await
        }
        "oidc-authorize" => load::run_workers(name, connections, duration, pid, move |w, i| authorize(c.clone(), w, i)).await,
        other => bail!("not an OpenID scenario: {other}"),
    })
}

/// The same-run baseline of a provider: its own trivial endpoint.
pub async fn baseline(p: &Arc<Provider>, connections: usize, duration: Duration) -> Stats {
    let c = p.clone();
    load::run("baseline", connections, duration, p.pid, move |_| {
        let c = c.clone();
        async move { c.healthz().await }
    })
    .await
}

/// `count` authorizations and code exchanges, several at a time (not timed).
async fn authorizations(p: &Arc<Provider>, count: usize, offline: bool) -> anyhow::Result<Vec<Tokens>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (p, gate) = (p.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                p.tokens(offline, i as u64).await
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(count);
    for t in tasks {
        tokens.push(t.await??);
    }
    Ok(tokens)
}

/// The directory of `oidc-provider/server.mjs` in this source tree.
pub fn default_node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// `node server.mjs` on a free loopback port: the process and what it printed when ready.
pub struct NodeProvider {
    child: Child,
    pub base: String,
    pub version: String,
    pub node: String,
}

impl NodeProvider {
    pub fn start(node: &Path, dir: &Path, id_token_alg: &str) -> anyhow::Result<NodeProvider> {
        if !dir.join("node_modules").join("oidc-provider").is_dir() {
            bail!("{} has no node_modules/oidc-provider: run `npm ci` there first", dir.display());
        }
        let mut child = Command::new(node)
            .arg("server.mjs")
            .arg("0")
            .current_dir(dir)
            .env("NODE_ENV", "production")
            .env("BENCH_ID_TOKEN_ALG", id_token_alg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} (is Node.js installed?)", node.display()))?;
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("  oidc-provider: {line}");
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: Value = serde_json::from_str(&line).with_context(|| {
            let _ = child.kill();
            format!("node server.mjs did not start: {line:?}")
        })?;
        std::thread::spawn(move || for _ in stdout.lines() {});
        let text = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        Ok(NodeProvider { base: format!("http://{}", text("address")), version: text("oidc_provider"), node: text("node"), child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};

    fn set_cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn url(path: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://127.0.0.1:1{path}")).unwrap()
    }

    #[test]
    fn the_jar_sends_cookies_by_path_and_forgets_removed_ones() {
        let mut jar = Jar::parse("phonegate_session=abc");
        jar.update(&set_cookies(&[
            "_interaction=i1; path=/interaction/UiD; httponly",
            "_session=s1; path=/; expires=Mon, 21 Dec 2026 20:00:00 GMT; samesite=lax",
        ]));
        assert_eq!(jar.header(&url("/interaction/UiD")), "phonegate_session=abc; _interaction=i1; _session=s1");
        assert_eq!(jar.header(&url("/interaction/UiDx")), "phonegate_session=abc; _session=s1");
        assert_eq!(jar.header(&url("/oauth2/authorize")), "phonegate_session=abc; _session=s1");
        jar.update(&set_cookies(&["_session=s2; path=/", "phonegate_session=; Path=/; Max-Age=0"]));
        assert_eq!(jar.header(&url("/oauth2/authorize")), "_session=s2");
        jar.update(&set_cookies(&["_session=x; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT"]));
        assert_eq!(jar.header(&url("/")), "");
    }

    #[test]
    fn a_code_counts_only_in_a_redirect_to_the_client_with_its_state() {
        let ok = format!("{REDIRECT_URI}?code=c0de&state=s1&iss=http%3A%2F%2F127.0.0.1");
        assert_eq!(code_of(&ok, "s1"), Some(Ok("c0de".into())));
        assert!(matches!(code_of(&ok, "s2"), Some(Err(_))));
        assert!(matches!(code_of(&format!("{REDIRECT_URI}?error=access_denied&state=s1"), "s1"), Some(Err(_))));
        assert_eq!(code_of("/login?return_to=%2Foauth2%2Fauthorize%2Fresume", "s1"), None);
    }

    #[test]
    fn pkce_pairs_are_valid_and_differ() {
        let (v1, c1) = pkce(1, 1);
        let (v2, _) = pkce(1, 2);
        assert_ne!(v1, v2);
        assert!((43..=128).contains(&v1.len()) && v1.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
        assert_eq!(c1, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v1.as_bytes())));
        assert_eq!(c1.len(), 43);
    }
}
