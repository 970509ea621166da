//! Two phonegate processes on one database, parallel requests at both: every guarantee holds
//! across instances with no sticky routing.
use crate::helpers::{Server, cli_key, eventually, fresh_number, query_i64, wrong};
use futures::future::join_all;
use serde_json::{Value, json};

struct Pair {
    a: Server,
    b: Server,
    secret: String,
    client: reqwest::Client,
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Pair {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[(&'static str, &'static str)]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let url = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
        let database_url = url.clone();
        let mut env = vec![("PHONEGATE_DELIVERY__DISPATCH_INTERVAL", "20ms")];
        env.extend_from_slice(extra);
        let (a, b, secret) = tokio::task::spawn_blocking(move || {
            let secret = cli_key(&url, "pair");
            (Server::spawn(&url, &env), Server::spawn(&url, &env), secret)
        })
        .await
        .unwrap();
        Pair { a, b, secret, client: reqwest::Client::new(), database_url, _dir: dir }
    }

    /// Instance A for even `i`, B for odd.
    fn base(&self, i: usize) -> &str {
        if i.is_multiple_of(2) { &self.a.base } else { &self.b.base }
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.base(i))).bearer_auth(&self.secret).json(&body).send().await.unwrap()
    }

    async fn call(&self, i: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let r = self.client.request(method, format!("{}{path}", self.base(i))).bearer_auth(&self.secret);
        match body {
            Some(b) => r.json(&b),
            None => r,
        }
        .send()
        .await
        .unwrap()
    }

    async fn outbox(&self, i: usize, to: &str) -> Vec<Value> {
        let r = self
            .client
            .get(format!("{}/api/dev/outbox", self.base(i)))
            .query(&[("to", to)])
            .bearer_auth(&self.secret)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["messages"].as_array().unwrap().clone()
    }

    async fn code(&self, to: &str) -> String {
        self.outbox(1, to).await[0]["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_every_guarantee() {
    let pair = Pair::start().await;

    // Started on A, checked on B.
    let to = fresh_number();
    let v: Value = pair.post(0, "/api/verifications", json!({ "to": to })).await.json().await.unwrap();
    let code = pair.code(&to).await;
    let r: Value = pair
        .post(1, &format!("/api/verifications/{}/check", v["id"].as_str().unwrap()), json!({ "code": code }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "approved");

    // 50 wrong checks spread over both instances: at most 5 attempts, then locked.
    let to = fresh_number();
    let v: Value = pair.post(1, "/api/verifications", json!({ "to": to })).await.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let code = pair.code(&to).await;
    let path = format!("/api/verifications/{id}/check");
    let bad = wrong(&code);
    let results = join_all((0..50).map(|i| pair.post(i, &path, json!({ "code": bad })))).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    assert_eq!(pair.post(0, &path, json!({ "code": code })).await.status(), 409);

    // 20 right checks spread over both: exactly one approval.
    let to = fresh_number();
    let v: Value = pair.post(0, "/api/verifications", json!({ "to": to })).await.json().await.unwrap();
    let code = pair.code(&to).await;
    let path = format!("/api/verifications/{}/check", v["id"].as_str().unwrap());
    let results = join_all((0..20).map(|i| pair.post(i, &path, json!({ "code": code })))).await;
    let mut approvals = 0;
    for r in results {
        if r.status() == 200 {
            approvals += r.json::<Value>().await.unwrap()["valid"].as_bool().unwrap() as u32;
        }
    }
    assert_eq!(approvals, 1);

    // 12 parallel starts for one number over both: one verification, 5 sends, each sent once.
    let to = fresh_number();
    let results = join_all((0..12).map(|i| pair.post(i, "/api/verifications", json!({ "to": to })))).await;
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for r in results {
        match r.status().as_u16() {
            201 => {
                ids.insert(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
                created += 1;
            }
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ids.len(), created), (1, 5));
    // Every send has finished, none was claimed twice: nothing more can reach the outbox.
    let id = ids.into_iter().next().unwrap();
    eventually(|| async {
        let r = pair.client.get(format!("{}/api/verifications/{id}", pair.base(0))).bearer_auth(&pair.secret).send().await.unwrap();
        let d: Value = r.json().await.unwrap();
        let messages = d["messages"].as_array().cloned().unwrap_or_default();
        (messages.len() == 5 && messages.iter().all(|m| m["status"] == "sent")).then_some(())
    })
    .await;
    let extra_claims = query_i64(&pair.database_url, "SELECT CAST(SUM(claims) - COUNT(*) AS BIGINT) FROM messages").await;
    assert_eq!(extra_claims, 0, "every message of the test was claimed once");
    let sent = pair.outbox(0, &to).await;
    assert_eq!(sent.len(), 5, "every accepted send reached the provider exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_hold_across_instances_services_and_parallel_requests() {
    let pair = Pair::start_with(&[
        ("PHONEGATE_BUDGETS__FAILED_CHECKS_PER_NUMBER", r#"["10/1d"]"#),
        ("PHONEGATE_BUDGETS__SENDS_PER_NUMBER", r#"["5/1h"]"#),
    ])
    .await;
    let to = fresh_number();
    let mut services = Vec::new();
    for i in 0..8 {
        let r: Value = pair.post(i, "/api/services", json!({ "name": format!("S{i}") })).await.json().await.unwrap();
        services.push(r["id"].as_str().unwrap().to_string());
    }
    // Eight parallel starts for one number in eight services, at both instances: five sends.
    let starts =
        join_all(services.iter().enumerate().map(|(i, svc)| pair.post(i, "/api/verifications", json!({ "to": to, "service": svc })))).await;
    let mut ids = Vec::new();
    for r in starts {
        match r.status().as_u16() {
            201 => ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()),
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ids.len(), 5, "the number's send budget holds across instances");
    assert_eq!(pair.outbox(0, &to).await.len(), 5);
    // Twenty-five parallel wrong codes over its five verifications: ten are compared.
    let code = pair.code(&to).await;
    let pair = &pair;
    let guesses = ids.iter().flat_map(|id| (0..5).map(move |_| id.clone())).enumerate().map(|(i, id)| {
        let guess = wrong(&code);
        async move { pair.post(i, &format!("/api/verifications/{id}/check"), json!({ "code": guess })).await.status().as_u16() }
    });
    let statuses = join_all(guesses).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
}

/// Accounts across instances: a flow started on one is verified on the other, tokens and session
/// cookies of one are honoured by the other, a logout on one ends the session on both, and
/// parallel refreshes of one token spread over both all get its one successor.
#[tokio::test]
async fn accounts_work_across_instances() {
    // Real clocks: a reuse interval no loaded machine outlasts.
    let pair = Pair::start_with(&[("PHONEGATE_ACCOUNTS__REFRESH_REUSE", "60s")]).await;
    let anon = |i: usize, path: &str, body: Value| pair.client.post(format!("{}{path}", pair.base(i))).json(&body).send();
    let phone = fresh_number();
    let r = anon(0, "/api/auth/signup", json!({ "username": "twin", "phone": phone })).await.unwrap();
    assert_eq!(r.status(), 202);
    let flow: Value = r.json().await.unwrap();
    let code = eventually(|| async {
        pair.outbox(1, &phone).await.first().map(|m| m["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string())
    })
    .await;
    let r = anon(1, "/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code })).await.unwrap();
    assert_eq!(r.status(), 200);
    let signed: Value = r.json().await.unwrap();
    let me = |i: usize, token: &str| pair.client.get(format!("{}/api/me", pair.base(i))).bearer_auth(token).send();
    assert_eq!(me(0, signed["access_token"].as_str().unwrap()).await.unwrap().status(), 200);

    let token = signed["refresh_token"].as_str().unwrap().to_string();
    let refreshes = (0..8).map(|i| anon(i, "/api/auth/refresh", json!({ "refresh_token": token })));
    let mut successors = std::collections::BTreeSet::new();
    for r in join_all(refreshes).await {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        successors.insert(r.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_string());
    }
    assert_eq!(successors.len(), 1, "{successors:?}");

    // A browser session made on A, used and ended on B.
    let before = pair.outbox(0, &phone).await;
    let flow: Value = anon(1, "/api/auth/login", json!({ "phone": phone })).await.unwrap().json().await.unwrap();
    let messages = eventually(|| async { Some(pair.outbox(0, &phone).await).filter(|m| m.len() > before.len()) }).await;
    // The message not there before (equal times would make "newest" ambiguous).
    let new = messages.iter().find(|m| !before.contains(m)).unwrap();
    let code = new["body"].as_str().unwrap().rsplit(' ').next().unwrap();
    let r = anon(0, "/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let with_cookie = |i: usize| pair.client.get(format!("{}/api/me", pair.base(i))).header("cookie", &cookie).send();
    assert_eq!(with_cookie(1).await.unwrap().status(), 200);
    let r = pair.client.post(format!("{}/api/auth/logout", pair.b.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(with_cookie(0).await.unwrap().status(), 401);
}

/// A service changed or deleted on one instance: that one sees it at once, the other within the
/// catalog's cache time, and no verification starts on the other once the delete committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_changed_or_deleted_on_one_instance_is_seen_by_the_other() {
    use reqwest::Method as M;
    let pair = Pair::start().await;
    let s: Value = pair.post(0, "/api/services", json!({ "name": "Shared" })).await.json().await.unwrap();
    let path = format!("/api/services/{}", s["id"].as_str().unwrap());
    let code_length = |i: usize| {
        let (pair, path) = (&pair, path.clone());
        async move { pair.call(i, M::GET, &path, None).await.json::<Value>().await.unwrap()["code_length"].as_u64() }
    };
    // B reads it, and keeps it.
    assert_eq!(code_length(1).await, Some(6));
    let changed = std::time::Instant::now();
    assert_eq!(pair.call(0, M::PATCH, &path, Some(json!({ "code_length": 8 }))).await.status(), 200);
    assert_eq!(code_length(0).await, Some(8), "the instance that changed it sees it at once");
    eventually(|| async { (code_length(1).await == Some(8)).then_some(()) }).await;
    let bound = phonegate_core::catalog::CACHE_TTL + std::time::Duration::from_secs(3);
    assert!(changed.elapsed() < bound, "seen after {:?}, later than the cache time allows", changed.elapsed());
    let to = fresh_number();
    let r = pair.post(1, "/api/verifications", json!({ "to": to, "service": "Shared" })).await;
    assert_eq!(r.status(), 201);
    let vid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let code = eventually(|| async { pair.outbox(1, &to).await.first().map(|m| m["body"].as_str().unwrap().to_string()) }).await;
    assert_eq!(code.rsplit(' ').next().unwrap().len(), 8, "{code}");

    // Deleted on A while B still keeps it: B starts nothing for it, and soon finds it gone too.
    assert_eq!(code_length(1).await, Some(8));
    assert_eq!(pair.call(0, M::DELETE, &path, None).await.status(), 204);
    let r = pair.post(1, "/api/verifications", json!({ "to": fresh_number(), "service": "Shared" })).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "service_not_found");
    let v: Value = pair.call(1, M::GET, &format!("/api/verifications/{vid}"), None).await.json().await.unwrap();
    assert_eq!(v["status"], "canceled", "its pending verification was canceled with it: {v}");
    eventually(|| async { (pair.call(1, M::GET, &path, None).await.status() == 404).then_some(()) }).await;
}

/// OpenID across instances: a code made on A and exchanged on both at once gives tokens once
/// (and the loser's attempt ends that grant); a refresh token spent on both at once likewise; a
/// client made by the admin API on A authenticates on B.
#[tokio::test]
async fn openid_codes_and_refresh_tokens_are_spent_once_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oidc.toml");
    std::fs::write(
        &config,
        "public_url = \"https://id.example\"\n[oidc_clients.app]\nclient_secret = \"app-secret-0123456789\"\n\
         redirect_uris = [\"https://app.example/cb\"]\nfirst_party = true\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let config: &'static str = Box::leak(config.into_boxed_str());
    let pair = Pair::start_with(&[("PHONEGATE_CONFIG", config)]).await;
    let anon = |i: usize, path: &str, body: Value| pair.client.post(format!("{}{path}", pair.base(i))).json(&body).send();
    let phone = fresh_number();
    let flow: Value = anon(0, "/api/auth/signup", json!({ "username": "openid", "phone": phone })).await.unwrap().json().await.unwrap();
    let code = eventually(|| async {
        pair.outbox(1, &phone).await.first().map(|m| m["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string())
    })
    .await;
    let r = anon(1, "/api/auth/verify", json!({ "flow_id": flow["flow_id"], "code": code, "session": "cookie" })).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let authorize = format!(
        "{}/oauth2/authorize?client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=code&scope=openid%20offline_access",
        pair.a.base
    );
    let r = no_redirects.get(&authorize).header("cookie", &cookie).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let code = to.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let token = |i: usize, form: Vec<(&'static str, String)>| {
        pair.client.post(format!("{}/oauth2/token", pair.base(i))).basic_auth("app", Some("app-secret-0123456789")).form(&form).send()
    };
    let exchange = |i: usize| {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.clone()),
            ("redirect_uri", "https://app.example/cb".into()),
        ];
        token(i, form)
    };
    let answers = join_all((0..2).map(exchange)).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.as_ref().unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    // The winner's grant ended with the second use: its refresh token no longer works anywhere.
    let mut winner = None;
    for r in answers {
        let r = r.unwrap();
        if r.status() == 200 {
            winner = Some(r.json::<Value>().await.unwrap());
        }
    }
    let refresh = winner.unwrap()["refresh_token"].as_str().unwrap().to_string();
    let r = token(1, vec![("grant_type", "refresh_token".to_string()), ("refresh_token", refresh)]).await.unwrap();
    assert_eq!(r.status(), 400);

    // A fresh code, one exchange; its refresh token spent on both at once: one success.
    let r = no_redirects.get(&authorize).header("cookie", &cookie).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let code = to.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let form = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://app.example/cb")];
    let r = pair.client.post(format!("{}/oauth2/token", pair.b.base)).basic_auth("app", Some("app-secret-0123456789")).form(&form);
    let t: Value = r.send().await.unwrap().json().await.unwrap();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let answers =
        join_all((0..2).map(|i| token(i, vec![("grant_type", "refresh_token".to_string()), ("refresh_token", refresh.clone())]))).await;
    let ok = answers.iter().filter(|r| r.as_ref().unwrap().status() == 200).count();
    assert_eq!(ok, 1, "one of two parallel refreshes of one token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vonage_v2_applications_and_callbacks_work_across_instances() {
    let pair = Pair::start().await;
    let (status_url, got) = crate::compat_vonage_v2::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let public_key = dir.path().join("app.pub");
    std::fs::write(&public_key, crate::vonage_channels::PUBLIC_KEY).unwrap();
    let (url, file) = (pair.database_url.clone(), public_key.to_str().unwrap().to_string());
    let made = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(["keys", "create", "--name", "v2", "--json", "--vonage-application-public-key", &file])
            .args(["--vonage-status-url", &status_url, "--vonage-signature-secret", "a-signature-secret-of-32-characters!!"])
            .env("PHONEGATE_DATABASE_URL", &url)
            .envs(phonegate_store::testing::secret_file(&url).map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    })
    .await
    .unwrap();
    let app_id = made["application_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(crate::vonage_channels::PRIVATE_KEY.as_bytes()).unwrap();
    let jwt = |jti: String| {
        let claims = json!({ "application_id": app_id, "iat": now, "jti": jti });
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
    };
    // One JWT presented at both instances at once: it authenticates once.
    let token = jwt("shared".into());
    let to = fresh_number();
    let n = to.trim_start_matches('+').to_string();
    let body = json!({ "brand": "Acme", "workflow": [{ "channel": "sms", "to": n }] });
    let both =
        join_all((0..2).map(|i| pair.client.post(format!("{}/v2/verify", pair.base(i))).bearer_auth(&token).json(&body).send())).await;
    let mut statuses: Vec<u16> = both.iter().map(|r| r.as_ref().unwrap().status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [202, 401], "a jti is taken once across instances");

    // Requests started at one instance, checked at the other: each summary arrives once.
    let mut ids = Vec::new();
    for i in 0..6 {
        let to = fresh_number();
        let body =
            json!({ "brand": "Acme", "workflow": [{ "channel": "sms", "to": to.trim_start_matches('+') }], "client_ref": format!("r{i}") });
        let r = pair.client.post(format!("{}/v2/verify", pair.base(i))).bearer_auth(jwt(format!("s{i}"))).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 202);
        let rid = r.json::<Value>().await.unwrap()["request_id"].as_str().unwrap().to_string();
        let code = eventually(|| async {
            pair.outbox(i + 1, &to).await.first().map(|m| m["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string())
        })
        .await;
        let r = pair
            .client
            .post(format!("{}/v2/verify/{rid}", pair.base(i + 1)))
            .bearer_auth(jwt(format!("c{i}")))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ids.push(rid);
    }
    // The first request (the shared JWT's) is still pending: its summary waits.
    let done = "SELECT COUNT(*) FROM vonage_callbacks WHERE done_at IS NOT NULL";
    eventually(|| async { (query_i64(&pair.database_url, done).await == 6).then_some(()) }).await;
    let bodies: Vec<Value> = got.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    let mut received: Vec<String> = bodies.iter().map(|b| b["request_id"].as_str().unwrap().to_string()).collect();
    received.sort();
    ids.sort();
    assert_eq!(received, ids, "each summary once, whichever instance sent it");
    assert!(bodies.iter().all(|b| b["status"] == "completed"));
}
