//! The binary: keys, outbox, migrate, configuration errors, serving and graceful shutdown.
use crate::helpers::Server;
use serde_json::Value;
use std::process::Command;

fn phonegate(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(args)
        .env("PHONEGATE_DATABASE_URL", db)
        .envs(phonegate_store::testing::secret_file(db).map(|f| ("PHONEGATE_SECRET_FILE", f)))
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .expect("binary runs")
}

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn keys_are_created_listed_and_revoked_and_secrets_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let created = stdout_json(&phonegate(&db, &["keys", "create", "--name", "ci", "--json"]));
    let (id, secret) = (created["id"].as_str().unwrap(), created["secret"].as_str().unwrap());
    assert!(id.starts_with("SK") && secret.len() > 40);
    let listed = stdout_json(&phonegate(&db, &["keys", "list", "--json"]));
    assert_eq!(listed["keys"][0]["id"], id);
    assert!(listed["keys"][0]["revoked_at"].is_null());
    assert!(!listed.to_string().contains(secret));
    assert!(phonegate(&db, &["keys", "revoke", id]).status.success());
    assert!(stdout_json(&phonegate(&db, &["keys", "list", "--json"]))["keys"][0]["revoked_at"].is_string());
    let again = phonegate(&db, &["keys", "revoke", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active key"));
}

#[test]
fn configuration_mistakes_are_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phonegate.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n").unwrap();
    let out = phonegate("sqlite://unused.db", &["--config", file.to_str().unwrap(), "migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
    let out = phonegate("mysql://x", &["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    std::fs::write(&file, "[providers.dev]\nkind = \"outbox\"\n").unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = phonegate(&db, &["--config", file.to_str().unwrap(), "outbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be named `outbox`"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_test_sms_through_the_dev_outbox_is_refused_not_pretended() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let out = phonegate(&db, &["sms", "send", "--to", "+4915123456789", "--body", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configure a provider"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_command_explains_itself() {
    for args in
        [vec!["--help"], vec!["serve", "--help"], vec!["keys", "create", "--help"], vec!["outbox", "--help"], vec!["migrate", "--help"]]
    {
        let out = phonegate("sqlite://unused.db", &args);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: phonegate"));
    }
}

/// Serves on a real port, starts a verification with the key from the CLI, reads the code with
/// `phonegate outbox`, checks it, then stops on SIGTERM. The code never appears in the logs.
#[test]
fn serve_end_to_end_then_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let key = stdout_json(&phonegate(&db, &["keys", "create", "--name", "e2e", "--json"]));
    let secret = key["secret"].as_str().unwrap().to_string();
    let mut server = Server::spawn(&db, &[]);
    assert!(server.logs.contains("NO message leaves this machine"), "outbox warning: {}", server.logs);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let to = "+4915199990000";
    rt.block_on(async {
        let r = client
            .post(format!("{}/api/verifications", server.base))
            .bearer_auth(&secret)
            .json(&serde_json::json!({ "to": to }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });
    let outbox = stdout_json(&phonegate(&db, &["outbox", "--to", to, "--json"]));
    let body = outbox["messages"][0]["body"].as_str().unwrap();
    let code = body.rsplit(' ').next().unwrap().to_string();
    let id = outbox["messages"][0]["verification_id"].as_str().unwrap().to_string();
    rt.block_on(async {
        let r: Value = client
            .post(format!("{}/api/verifications/{id}/check", server.base))
            .bearer_auth(&secret)
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "approved");
    });
    let text = phonegate(&db, &["outbox"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&code));

    let (clean, logs) = server.stop();
    assert!(clean, "graceful exit");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(!logs.contains(&code), "a code reached the logs");
    assert!(!logs.contains(&secret), "a secret reached the logs");
}

#[tokio::test]
async fn jwt_rotate_adds_a_signing_key_that_the_server_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("j.db").display());
    let out = phonegate(&db, &["jwt", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("new signing key kid"));
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["migrate"])
        .env("PHONEGATE_DATABASE_URL", &db)
        .envs(phonegate_store::testing::secret_file(&db).map(|f| ("PHONEGATE_SECRET_FILE", f)))
        .env("PHONEGATE_ACCOUNTS__CODE_TTL", "5s")
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("accounts.code_ttl must be between 1m and 24h"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut server = tokio::task::spawn_blocking(move || Server::spawn(&db, &[])).await.unwrap();
    // Ready first: on a loaded machine the first reads may still wait for the database.
    let ready = format!("{}/readyz", server.base);
    crate::helpers::eventually(|| async { reqwest::get(&ready).await.ok().filter(|r| r.status() == 200).map(|_| ()) }).await;
    let r = reqwest::get(format!("{}/.well-known/jwks.json", server.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let jwks: Value = r.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "the first key and the rotated one: {jwks}");
    assert!(server.stop().0);
}

#[test]
fn admin_create_makes_the_first_admin_and_refuses_a_taken_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let admin = stdout_json(&phonegate(&db, &["admin", "create", "--username", "root", "--phone", "+4915123400001", "--json"]));
    assert_eq!((admin["username"].as_str(), admin["roles"][0].as_str()), (Some("root"), Some("admin")));
    let again = phonegate(&db, &["admin", "create", "--username", "other", "--phone", "+4915123400001"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("phone number belongs to another account"));
    let bad = phonegate(&db, &["admin", "create", "--username", "no way", "--phone", "+4915123400002"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("letters a-z"));
}

#[test]
fn the_dev_outbox_refuses_to_listen_beyond_loopback_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("o.db").display());
    let out = phonegate(&db, &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outbox_public = true") && stderr.contains("0.0.0.0:0"), "{stderr}");
    // With the setting it starts, and warns.
    let mut child = Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["serve", "--listen", "0.0.0.0:0", "--log-format", "json"])
        .env("PHONEGATE_DATABASE_URL", &db)
        .envs(phonegate_store::testing::secret_file(&db).map(|f| ("PHONEGATE_SECRET_FILE", f)))
        .env("PHONEGATE_OUTBOX_PUBLIC", "true")
        .env_remove("PHONEGATE_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = String::new();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    while !logs.contains("phonegate is listening") {
        assert!(std::io::BufRead::read_line(&mut stderr, &mut logs).unwrap() > 0, "server exited: {logs}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(logs.contains("outbox_public: the dev outbox is reachable"), "{logs}");
}

/// `phonegate healthcheck` with `PHONEGATE_LISTEN` (and the rest of the configuration) as given.
async fn healthcheck(env: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(["healthcheck", "--timeout", "10s"])
            .env_remove("PHONEGATE_CONFIG")
            .envs(env)
            .output()
            .expect("binary runs")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn healthcheck_exits_0_while_the_configured_server_is_ready_and_1_when_nothing_answers() {
    let app = crate::helpers::TestApp::spawn().await;
    let port = app.base.rsplit(':').next().unwrap().to_string();
    // A wildcard listen address is asked on loopback.
    for listen in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let out = healthcheck(vec![("PHONEGATE_LISTEN", listen.clone())]).await;
        assert!(out.status.success(), "{listen}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("http://127.0.0.1:{port}/readyz: ready"));
    }
    // Nothing listens on a port that was just free.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = healthcheck(vec![("PHONEGATE_LISTEN", free.to_string())]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("http://{free}/readyz: no answer")), "{out:?}");
}

#[tokio::test]
async fn healthcheck_asks_over_https_when_tls_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["phonegate.example".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let (c, k) = (cert_path.clone(), key_path.clone());
    let app = crate::helpers::TestApp::spawn_trusting(
        |config| {
            config.tls.cert = Some(c);
            config.tls.key = Some(k);
        },
        None,
    )
    .await;
    let listen = app.base.trim_start_matches("https://").to_string();
    let tls = |listen: &str| {
        vec![
            ("PHONEGATE_LISTEN", listen.to_string()),
            ("PHONEGATE_TLS__CERT", cert_path.display().to_string()),
            ("PHONEGATE_TLS__KEY", key_path.display().to_string()),
        ]
    };
    let out = healthcheck(tls(&listen)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("https://"));
    // Plain HTTP to an HTTPS listener is not an answer of readiness.
    let out = healthcheck(vec![("PHONEGATE_LISTEN", listen)]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
