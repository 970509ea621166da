//! `phonegate backup` of a live SQLite database under a write load, `restore` into a fresh
//! directory (everything acknowledged before the backup is there), what restore refuses, and the
//! schema checks (`migrate --check`, a database newer than the binary).
use crate::helpers::{Server, cli_key, fresh_number, phonegate, text};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_writes_restores_everything_acknowledged_before_it() {
    if phonegate_store::testing::postgres_url().is_some() {
        return; // a SQLite file is what this backs up; PostgreSQL has its own test below
    }
    let live = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", live.path().join("p.db").display());
    let key = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli_key(&url, "backup")
    })
    .await
    .unwrap();
    let server = Server::start(&url).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    // An account, made before the backup.
    let member = fresh_number();
    let r = client.post(format!("{base}/api/auth/signup")).json(&json!({ "username": "kept", "phone": member })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let flow: Value = r.json().await.unwrap();
    let code = crate::helpers::eventually(|| async {
        let r = client.get(format!("{base}/api/dev/outbox")).query(&[("to", &member)]).bearer_auth(&key).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        v["messages"][0]["body"].as_str().map(|b| b.rsplit(' ').next().unwrap().to_string())
    })
    .await;
    let r = client.post(format!("{base}/api/auth/verify")).json(&json!({ "flow_id": flow["flow_id"], "code": code })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the account is made");

    // Four writers start verifications until told to stop, noting each acknowledged id.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, base, key, acked, running) = (client.clone(), base.clone(), key.clone(), acked.clone(), running.clone());
        writers.push(tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/api/verifications"))
                    .bearer_auth(&key)
                    .json(&json!({ "to": fresh_number() }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                let v: Value = r.json().await.unwrap();
                acked.lock().unwrap().push(v["id"].as_str().unwrap().to_string());
            }
        }));
    }
    crate::helpers::eventually(|| async { (acked.lock().unwrap().len() >= 50).then_some(()) }).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let copies = tempfile::tempdir().unwrap();
    let file = copies.path().join("b.db");
    let out = tokio::task::spawn_blocking({
        let (url, file) = (url.clone(), file.clone());
        move || phonegate(&url, &["backup", file.to_str().unwrap()])
    })
    .await
    .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("is not in the backup"), "the command says to back up the key file: {}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "only its owner reads the backup");
    }
    // A second backup to the same name is refused rather than overwriting it.
    assert!(!phonegate(&url, &["backup", file.to_str().unwrap()]).status.success());
    server.stopped().await;

    // Restore into a fresh directory: without the key file, refused; with it, in place.
    let fresh = tempfile::tempdir().unwrap();
    let restored = format!("sqlite://{}", fresh.path().join("r.db").display());
    let out = phonegate(&restored, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no key file"), "{}", text(&out));
    std::fs::copy(live.path().join("phonegate-secret"), fresh.path().join("phonegate-secret")).unwrap();
    let out = phonegate(&restored, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let server = Server::start(&restored).await;
    for id in &before {
        let r = client.get(format!("{}/api/verifications/{id}", server.base)).bearer_auth(&key).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "verification {id}, acknowledged before the backup, is in it");
    }
    server.stopped().await;
    let users = phonegate_store::testing::count(&restored, "SELECT COUNT(*) FROM users WHERE username = 'kept'").await.unwrap();
    assert_eq!(users, 1, "the account made before the backup is in it");
    eprintln!("backup ran beside {during} acknowledged writes");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_a_running_database_a_foreign_key_file_and_a_file_that_is_no_database() {
    if phonegate_store::testing::postgres_url().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    assert!(phonegate(&url, &["keys", "list"]).status.success());
    let file = dir.path().join("b.db");
    assert!(phonegate(&url, &["backup", file.to_str().unwrap()]).status.success());

    let server = Server::start(&url).await;
    let out = phonegate(&url, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("in use"), "{}", text(&out));
    server.stopped().await;

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just some bytes that are long enough").unwrap();
    let out = phonegate(&url, &["restore", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a"), "{}", text(&out));

    let other = tempfile::tempdir().unwrap();
    let other_url = format!("sqlite://{}", other.path().join("o.db").display());
    let out = phonegate(&other_url, &["keys", "list"]);
    assert!(out.status.success());
    let restored = format!("sqlite://{}", other.path().join("o.db").display());
    let out = phonegate(&restored, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success(), "another database's key file does not open the backup");
    assert!(text(&out).contains("does not open this backup"), "{}", text(&out));

    // Restoring over a stopped database keeps the old one aside.
    let out = phonegate(&url, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("before-restore")));
}

#[tokio::test]
async fn migrate_check_and_a_database_newer_than_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let url = match phonegate_store::testing::postgres_url() {
        Some(admin) => phonegate_store::testing::fresh_postgres_schema(&admin, "mig").await.unwrap(),
        None => format!("sqlite://{}", dir.path().join("m.db").display()),
    };
    let env = phonegate_store::testing::secret_file(&url);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(args)
            .env("PHONEGATE_DATABASE_URL", &url)
            .envs(env.iter().map(|f| ("PHONEGATE_SECRET_FILE", f)))
            .env_remove("PHONEGATE_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["migrate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pending: 1, 2"), "{}", text(&out));
    assert!(run(&["migrate"]).status.success());
    let out = run(&["migrate", "--check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no migration pending"));

    // A newer release migrated it: this binary refuses to start on it, saying why.
    let newer = phonegate_store::latest_schema_version() + 1;
    let sql = if url.starts_with("sqlite:") {
        format!("PRAGMA user_version = {newer}")
    } else {
        format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ({newer}, 'from the future', true, '\\x00', 0)"
        )
    };
    phonegate_store::testing::execute(&url, &sql).await.unwrap();
    for args in [&["migrate"][..], &["migrate", "--check"][..]] {
        let out = run(args);
        assert!(!out.status.success());
        assert!(text(&out).contains(&format!("schema is version {newer}, newer than this release knows")), "{}", text(&out));
    }
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "database_url = \"postgres://app:hunter2@db.internal/phonegate\"\nsecret_file = \"/etc/phonegate/phonegate-secret\"\n\
         [providers.tw]\nkind = \"twilio\"\naccount_sid = \"AC0123\"\nauth_token = \"tok-very-secret\"\nfrom = \"+15005550006\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["config", "check", file.to_str().unwrap()])
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains("hunter2") && !shown.contains("tok-very-secret"), "{shown}");
    assert!(shown.contains("AC0123") && shown.contains("auth_token = \"***\"") && shown.contains("listen = \"127.0.0.1:8080\""), "{shown}");
    toml::from_str::<toml::Value>(&shown).expect("the output is TOML");

    std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["config", "check", file.to_str().unwrap()])
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("listen"), "{}", text(&out));
}

#[test]
fn backup_and_restore_on_postgresql_give_the_pg_dump_procedure() {
    for args in [["backup", "x.dump"], ["restore", "x.dump"]] {
        let out = phonegate("postgres://phonegate@db.invalid:5432/phonegate", &args);
        assert!(!out.status.success());
        assert!(text(&out).contains("pg_dump --format=custom") && text(&out).contains("pg_restore"), "{}", text(&out));
    }
}
