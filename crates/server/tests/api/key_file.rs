//! The key file: the secrets that seal codes and bodies and sign tokens live outside the
//! database, so a copy of the database alone opens nothing; a database from before key files has
//! its secret moved out and erased from its files; a missing or foreign key file is refused by
//! name; `phonegate secret rotate` adds a key while old data still opens.
use crate::helpers::{Server, TestApp, cli_key, fresh_number, phonegate};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn db_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("sqlite://").unwrap())
}

/// The keys in a key file, oldest first.
fn keys_in(file: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines = text.lines().filter(|l| l.starts_with("v1 "));
    lines.map(|l| base64::engine::general_purpose::STANDARD.decode(l.split(' ').nth(1).unwrap()).unwrap()).collect()
}

/// The database file and its WAL, as a thief copying them would get them.
fn disk_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_copy_of_the_database_alone_holds_no_code_body_token_or_key() {
    if phonegate_store::testing::postgres_url().is_some() {
        return; // the files of a SQLite database are what this reads
    }
    let app = TestApp::spawn().await;
    let db = db_path(&app.database_url);
    let key_file = db.parent().unwrap().join("phonegate-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("the key file is made next to the database").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        for file in [db.clone(), db.with_extension("db-wal")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{} is its owner's only", file.display());
        }
    }
    let phone = fresh_number();
    let started = app.start(&phone).await;
    let outbox = app.outbox(&phone).await;
    let body = outbox[0]["body"].as_str().unwrap().to_string();
    let code = body.rsplit(' ').next().unwrap().to_string();
    let member = fresh_number();
    let signed = app.sign_up("keeper", &member, Some("a long passphrase 1")).await;
    let (access, refresh) = (signed["access_token"].as_str().unwrap(), signed["refresh_token"].as_str().unwrap());
    // Everything is on disk: the answers came after their commits; a checkpoint moves the WAL in.
    phonegate_store::testing::execute(&app.database_url, "PRAGMA wal_checkpoint(FULL)").await.unwrap();
    let copy = disk_bytes(&db);
    assert!(contains(&copy, started["id"].as_str().unwrap().as_bytes()), "the copy holds the verification");
    let key = &keys_in(&key_file)[0];
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the message body", body.clone().into_bytes()),
        ("the API key secret", app.secret.clone().into_bytes()),
        ("the access token", access.as_bytes().to_vec()),
        ("the refresh token", refresh.as_bytes().to_vec()),
        ("the key", key.clone()),
        ("the key in base64", base64::engine::general_purpose::STANDARD.encode(key).into_bytes()),
    ];
    for text in [&body, access, refresh] {
        // No part of a body or token either (a token's secret half, the text around a code).
        secrets.extend(text.split(['.', ' ', ':']).filter(|p| p.len() >= 12).map(|p| ("a part of a secret", p.as_bytes().to_vec())));
    }
    for (what, secret) in &secrets {
        assert!(!contains(&copy, secret), "{what} is in the database's files");
    }
    // The code is six digits, common in any file: the check is that it is not in clear next to
    // its verification, its message or its number.
    for context in [started["id"].as_str().unwrap(), &phone] {
        let window = 512;
        let at = copy.windows(context.len()).enumerate().filter(|(_, w)| *w == context.as_bytes()).map(|(i, _)| i);
        for i in at.collect::<Vec<_>>() {
            let near = &copy[i.saturating_sub(window)..(i + window).min(copy.len())];
            assert!(!contains(near, code.as_bytes()), "the code is stored in clear near {context}");
        }
    }
}

/// A database made the way releases before key files made them: the secret in
/// `server_secrets`, no key file.
async fn make_legacy(url: &str, key_file: &Path) -> Vec<u8> {
    let secret = keys_in(key_file).remove(0);
    std::fs::remove_file(key_file).unwrap();
    let sql =
        format!("DELETE FROM server_secrets; INSERT INTO server_secrets (name, value) VALUES ('code_keys', X'{}')", hex::encode(&secret));
    phonegate_store::testing::execute(url, &sql).await.unwrap();
    phonegate_store::testing::execute(url, "PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
    secret
}

async fn code_of(client: &reqwest::Client, base: &str, key: &str, phone: &str) -> String {
    let r = client.get(format!("{base}/api/dev/outbox")).query(&[("to", phone)]).bearer_auth(key).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    v["messages"][0]["body"].as_str().unwrap().rsplit(' ').next().unwrap().to_string()
}

async fn start(client: &reqwest::Client, base: &str, key: &str, phone: &str) -> String {
    let r = client.post(format!("{base}/api/verifications")).bearer_auth(key).json(&json!({ "to": phone })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

async fn check(client: &reqwest::Client, base: &str, key: &str, id: &str, code: &str) -> String {
    let r =
        client.post(format!("{base}/api/verifications/{id}/check")).bearer_auth(key).json(&json!({ "code": code })).send().await.unwrap();
    r.json::<Value>().await.unwrap()["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_release_s_secret_moves_to_the_key_file_and_leaves_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let (db, key_file) = (dir.path().join("p.db"), dir.path().join("phonegate-secret"));
    let client = reqwest::Client::new();
    let key = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli_key(&url, "legacy")
    })
    .await
    .unwrap();
    let server = Server::start(&url).await;
    let phone = fresh_number();
    let id = start(&client, &server.base, &key, &phone).await;
    let code = code_of(&client, &server.base, &key, &phone).await;
    server.stopped().await;
    let secret = make_legacy(&url, &key_file).await;
    assert!(contains(&disk_bytes(&db), &secret), "the legacy secret is in the file before the move");
    // A one-shot command does not carry the secret off (it may run in a throwaway container).
    let out = phonegate(&url, &["keys", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("start `phonegate serve` once"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!key_file.exists());
    assert_eq!(phonegate_store::testing::count(&url, "SELECT COUNT(*) FROM server_secrets WHERE name = 'code_keys'").await.unwrap(), 1);

    let server = Server::start(&url).await;
    assert!(server.logs.contains("moved the server secret out of the database into the key file"), "{}", server.logs);
    assert_eq!(keys_in(&key_file), vec![secret.clone()], "the key file holds the database's secret");
    let bytes = disk_bytes(&db);
    assert!(!contains(&bytes, &secret), "the secret's bytes are gone from the database and its WAL");
    assert_eq!(check(&client, &server.base, &key, &id, &code).await, "approved", "what the old secret sealed still opens");
    server.stopped().await;
    assert_eq!(phonegate_store::testing::count(&url, "SELECT COUNT(*) FROM server_secrets WHERE name = 'code_keys'").await.unwrap(), 0);
    let pending = "SELECT COUNT(*) FROM server_secrets WHERE name = 'erase-pending'";
    assert_eq!(phonegate_store::testing::count(&url, pending).await.unwrap(), 0, "the erase finished");

    // An erase a crash cut short (its marker still there) is finished by the next start.
    phonegate_store::testing::execute(&url, "INSERT INTO server_secrets (name, value) VALUES ('erase-pending', x'')").await.unwrap();
    let server = Server::start(&url).await;
    assert!(server.logs.contains("finished erasing"), "{}", server.logs);
    server.stopped().await;
    assert_eq!(phonegate_store::testing::count(&url, pending).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_foreign_key_file_is_refused_by_name_and_rotation_keeps_old_codes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let key_file = dir.path().join("phonegate-secret");
    let client = reqwest::Client::new();
    let key = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli_key(&url, "rotation")
    })
    .await
    .unwrap();
    let server = Server::start(&url).await;
    let phone = fresh_number();
    let id = start(&client, &server.base, &key, &phone).await;
    let code = code_of(&client, &server.base, &key, &phone).await;
    server.stopped().await;

    // Missing: refused, naming the file.
    let original = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let out = phonegate(&url, &["keys", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&key_file.display().to_string()) && err.contains("missing"), "{err}");
    assert!(!key_file.exists(), "no new key was made for a database with sealed data");

    // Another database's key file: refused.
    let other = tempfile::tempdir().unwrap();
    let other_url = format!("sqlite://{}", other.path().join("o.db").display());
    assert!(phonegate(&other_url, &["keys", "list"]).status.success());
    std::fs::copy(other.path().join("phonegate-secret"), &key_file).unwrap();
    let out = phonegate(&url, &["keys", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not hold key"), "{err}");

    // The right file back, then a rotation: two keys, the old code still checks.
    std::fs::write(&key_file, &original).unwrap();
    let out = phonegate(&url, &["secret", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let keys = keys_in(&key_file);
    assert_eq!(keys.len(), 2);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&phonegate_core::code::key_id(&keys[1])));
    let server = Server::start(&url).await;
    assert_eq!(check(&client, &server.base, &key, &id, &code).await, "approved");
    let fresh = fresh_number();
    let new_id = start(&client, &server.base, &key, &fresh).await;
    let new_code = code_of(&client, &server.base, &key, &fresh).await;
    assert_eq!(check(&client, &server.base, &key, &new_id, &new_code).await, "approved");
    server.stopped().await;

    // The file without the new key: the database knows it, so the server refuses.
    std::fs::write(&key_file, &original).unwrap();
    let out = phonegate(&url, &["keys", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&phonegate_core::code::key_id(&keys[1])));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "postgres only: instances on one database, each with its own key file"]
async fn a_second_instance_with_another_key_file_refuses_to_start() {
    let admin = phonegate_store::testing::postgres_url().expect("TEST_POSTGRES_URL");
    let url = phonegate_store::testing::fresh_postgres_schema(&admin, "keys").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a"), dir.path().join("b"));
    let run_on = |url: &str, file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_phonegate"))
            .args(["keys", "list"])
            .env("PHONEGATE_DATABASE_URL", url)
            .env("PHONEGATE_SECRET_FILE", file)
            .env_remove("PHONEGATE_CONFIG")
            .output()
            .unwrap()
    };
    let run = |file: &Path| run_on(&url, file);
    // `b` is a key file of its own (made for another database).
    let elsewhere = phonegate_store::testing::fresh_postgres_schema(&admin, "keys").await.unwrap();
    assert!(run_on(&elsewhere, &second).status.success());
    let without =
        Command::new(env!("CARGO_BIN_EXE_phonegate")).args(["keys", "list"]).env("PHONEGATE_DATABASE_URL", &url).output().unwrap();
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("secret_file"), "PostgreSQL needs secret_file named");
    assert!(run(&first).status.success());
    let out = run(&second);
    assert!(!out.status.success(), "a second key file on the same database is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not hold key"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(&first, &second).unwrap();
    assert!(run(&second).status.success(), "the same file on another instance is accepted");
}

#[test]
fn rotations_at_the_same_time_keep_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    assert!(phonegate(&url, &["keys", "list"]).status.success());
    let rotations: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_phonegate"))
                .args(["secret", "rotate"])
                .env("PHONEGATE_DATABASE_URL", &url)
                .env_remove("PHONEGATE_CONFIG")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in rotations {
        assert!(r.wait().unwrap().success());
    }
    assert_eq!(keys_in(&dir.path().join("phonegate-secret")).len(), 5, "the first key and four new ones");
    let out = phonegate(&url, &["keys", "list"]);
    assert!(out.status.success(), "every key the database recorded is in the file: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "postgres only: the PostgreSQL erase (VACUUM FULL, checked)"]
async fn on_postgresql_an_earlier_release_s_secret_moves_to_the_key_file() {
    let admin = phonegate_store::testing::postgres_url().expect("TEST_POSTGRES_URL");
    let url = phonegate_store::testing::fresh_postgres_schema(&admin, "legacy").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("phonegate-secret");
    let run = Command::new(env!("CARGO_BIN_EXE_phonegate"))
        .args(["keys", "list"])
        .env("PHONEGATE_DATABASE_URL", &url)
        .env("PHONEGATE_SECRET_FILE", &file)
        .env_remove("PHONEGATE_CONFIG")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let secret = keys_in(&file).remove(0);
    std::fs::remove_file(&file).unwrap();
    let sql = format!(
        "DELETE FROM server_secrets; INSERT INTO server_secrets (name, value) VALUES ('code_keys', '\\x{}'::bytea)",
        hex::encode(&secret)
    );
    phonegate_store::testing::execute(&url, &sql).await.unwrap();
    let server = tokio::task::spawn_blocking({
        let (url, file) = (url.clone(), file.display().to_string());
        move || Server::spawn(&url, &[("PHONEGATE_SECRET_FILE", &file)])
    })
    .await
    .unwrap();
    assert!(server.logs.contains("moved the server secret out of the database"), "{}", server.logs);
    server.stopped().await;
    assert_eq!(keys_in(&file), vec![secret]);
    let left = "SELECT COUNT(*) FROM server_secrets WHERE name IN ('code_keys', 'erase-pending')";
    assert_eq!(phonegate_store::testing::count(&url, left).await.unwrap(), 0);
}
