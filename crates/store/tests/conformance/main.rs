//! The store conformance suite: every backend must behave the same. Runs on SQLite always and on
//! PostgreSQL too when `TEST_POSTGRES_URL` is set (each test in its own schema).
use chrono::{DateTime, Duration, TimeZone, Utc};
use phonegate_core::apikey;
use phonegate_core::message::{DeliveryStatus, InboundMessage, Message};
use phonegate_core::ports::{self, Lease, MessageResult, Store, StoreError};
use phonegate_core::service::ServiceSettings;
use phonegate_core::silent::{self, CheckState, Reason, SilentCheck};
use phonegate_core::{Channel, PhoneNumber, Recipient, Status, Verification};
use std::sync::Arc;

struct Backend {
    name: &'static str,
    url: String,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// SQLite, and PostgreSQL when configured.
async fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    out.push(Backend { name: "sqlite", store: phonegate_store::connect(&url, 4).await.unwrap(), url, _dir: dir });
    if phonegate_store::testing::postgres_url().is_some() {
        let dir = tempfile::tempdir().unwrap();
        let url = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
        out.push(Backend { name: "postgres", store: phonegate_store::connect(&url, 8).await.unwrap(), url, _dir: dir });
    }
    out
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

/// Runs the statements in `$body` (with `tx` in scope) as one write unit; what they use is
/// cloned in first.
macro_rules! write {
    ($s:expr, [$($v:ident),*], |$tx:ident| $body:expr) => {{
        $(let $v = $v.clone();)*
        ports::write($s, move |$tx| $body).await
    }};
}

/// The same as read-only work.
macro_rules! read {
    ($s:expr, [$($v:ident),*], |$tx:ident| $body:expr) => {{
        $(let $v = $v.clone();)*
        ports::read($s, move |$tx| $body).await
    }};
}

async fn service(store: &dyn Store, name: &str) -> String {
    let s = ServiceSettings { name: name.into(), ..Default::default() }.into_service(t0()).unwrap();
    let id = s.id.clone();
    assert!(write!(store, [s], |tx| tx.insert_service(&s)).unwrap());
    id
}

fn verification(id: &str, service_id: &str, to: &str) -> Verification {
    Verification {
        id: id.into(),
        service_id: service_id.into(),
        to: Recipient::from_trusted(to.into()),
        workflow: Default::default(),
        step: 0,
        step_due_at: None,
        channel: Channel::Sms,
        locale: "de".into(),
        status: Status::Pending,
        code_length: 6,
        code_digest: vec![1, 2, 3],
        code_sealed: vec![4, 5, 6],
        attempts: 0,
        max_attempts: 3,
        brand: Some("Brand".into()),
        app_hash: Some("FA+9qCX9VSu".into()),
        psd2: Some(phonegate_core::psd2::Psd2 { amount: "€9.99".into(), payee: "Shop".into() }),
        email_from: Some("Shop <codes@shop.example>".into()),
        send_digits: Some("ww123#".into()),
        sends: 1,
        send_window_started_at: t0(),
        created_at: t0(),
        updated_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        approved_at: None,
        canceled_at: None,
        expired_at: None,
        max_attempts_reached_at: None,
        failed_at: None,
        failure_reason: None,
        test: false,
        manual_steps: false,
        key_id: None,
        texts: Some(phonegate_core::verification::StartTexts {
            name: "Shop".into(),
            templates: [("de".into(), "{code}".into())].into(),
            voice_name: Some("Shopp".into()),
        }),
        version: 0,
    }
}

async fn get(s: &dyn Store, id: &str) -> Option<Verification> {
    let id = id.to_string();
    read!(s, [], |tx| tx.verification(&id)).unwrap()
}

async fn insert(s: &dyn Store, v: &Verification) -> bool {
    let v = v.clone();
    write!(s, [], |tx| tx.insert_verification(&v)).unwrap()
}

#[tokio::test]
async fn verifications_round_trip_with_one_pending_per_number() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "a").await;
        let v = verification("VE1", &svc, "+4915100000001");
        assert!(insert(s, &v).await);
        assert_eq!(get(s, "VE1").await.as_ref(), Some(&v), "{}", b.name);
        assert_eq!(get(s, "VE404").await, None);
        let test = Verification { test: true, ..verification("VE3", &svc, "+4915100000002") };
        assert!(insert(s, &test).await);
        assert_eq!(get(s, "VE3").await.as_ref(), Some(&test), "{}: a test number's verification says so", b.name);

        // A second pending verification for the same service and number is not written.
        let twin = verification("VE2", &svc, "+4915100000001");
        assert!(!insert(s, &twin).await, "{}", b.name);
        let (svc2, to) = (svc.clone(), v.to.clone());
        let pending = read!(s, [svc2, to], |tx| tx.pending_verification(&svc2, &to)).unwrap();
        assert_eq!(pending.map(|v| v.id), Some("VE1".into()));

        let mut approved = v.clone();
        approved.attempts = 1;
        approved.status = Status::Approved;
        approved.approved_at = Some(t0() + Duration::seconds(3));
        // A later start's e-mail sender and call digits replace the first one's.
        approved.email_from = Some("codes@other.example".into());
        approved.send_digits = None;
        write!(s, [approved], |tx| tx.update_verification(&approved)).unwrap();
        let stale = write!(s, [approved], |tx| tx.update_verification(&approved));
        assert!(matches!(stale, Err(StoreError::Conflict)), "{}: a stale version must lose", b.name);
        let stored = get(s, "VE1").await.unwrap();
        assert_eq!((stored.status, stored.attempts, stored.version, stored.approved_at), (Status::Approved, 1, 1, approved.approved_at));
        assert_eq!((stored.email_from.as_deref(), stored.send_digits), (Some("codes@other.example"), None), "{}", b.name);
        // Not pending any more: the number is free for a new one.
        assert_eq!(read!(s, [svc2, to], |tx| tx.pending_verification(&svc2, &to)).unwrap(), None);
        assert!(insert(s, &twin).await);
    }
}

#[derive(Debug, PartialEq)]
enum Refused {
    ByTheStore,
    ByTheUseCase,
}

impl From<StoreError> for Refused {
    fn from(_: StoreError) -> Self {
        Self::ByTheStore
    }
}

#[tokio::test]
async fn a_failing_unit_writes_nothing() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "atomic").await;
        let v = verification("VEatom", &svc, "+4915100000040");
        let failed: Result<(), Refused> = write!(s, [v], |tx| {
            assert!(tx.insert_verification(&v)?);
            tx.insert_message(&messages::message("SMatom", "VEatom"), None)?;
            Err(Refused::ByTheUseCase)
        });
        assert_eq!(failed, Err(Refused::ByTheUseCase));
        assert_eq!(get(s, "VEatom").await, None, "{}: nothing of a failed unit is kept", b.name);
        let messages = read!(s, [], |tx| tx.messages_for_verification("VEatom")).unwrap();
        assert!(messages.is_empty(), "{}", b.name);
    }
}

/// A write unit that panics is rolled back, its caller learns it failed (on PostgreSQL the panic
/// goes on in the caller, as if the unit ran there), and the next writes still work.
#[tokio::test]
async fn a_panicking_unit_is_rolled_back_and_writes_go_on() {
    for b in backends().await {
        let s = b.store.clone();
        let svc = service(s.as_ref(), "panics").await;
        let v = verification("VEpanic", &svc, "+4915100000041");
        let panicked = tokio::spawn(async move {
            let _: Result<(), StoreError> = ports::write(s.as_ref(), move |tx| {
                tx.insert_verification(&v)?;
                panic!("a bug in a unit");
            })
            .await;
        })
        .await;
        let s = b.store.as_ref();
        // SQLite answers the unit's caller with an error; PostgreSQL's caller panics with it.
        assert!(panicked.is_err() || b.name == "sqlite", "{}", b.name);
        assert_eq!(get(s, "VEpanic").await, None, "{}: nothing of a panicking unit is kept", b.name);
        let after = verification("VEafter", &svc, "+4915100000042");
        assert!(insert(s, &after).await, "{}: the store still writes", b.name);
        assert!(get(s, "VEafter").await.is_some(), "{}", b.name);
    }
}

/// While a write unit holds its transaction open, reads still answer: they see what was
/// committed (not the open unit's writes), and many at once all complete.
#[tokio::test]
async fn reads_answer_while_a_write_is_open() {
    for b in backends().await {
        let s = b.store.clone();
        let (committed, pending) = (PhoneNumber::from_trusted("+4915100000090".into()), PhoneNumber::from_trusted("+4915100000091".into()));
        write!(s.as_ref(), [committed], |tx| tx.set_opted_out(&committed, true, t0())).unwrap();
        let (opened, open) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = tokio::spawn({
            let (s, pending) = (s.clone(), pending.clone());
            async move {
                write!(s.as_ref(), [], |tx| {
                    tx.set_opted_out(&pending, true, t0())?;
                    let _ = opened.send(());
                    // Holds the transaction (and on SQLite the writer) until the reads are done.
                    let _ = released.recv();
                    Ok::<_, StoreError>(())
                })
            }
        });
        open.await.unwrap();
        let reads: Vec<_> = (0..64)
            .map(|_| {
                let (s, committed, pending) = (s.clone(), committed.clone(), pending.clone());
                tokio::spawn(async move {
                    read!(s.as_ref(), [], |tx| Ok::<_, StoreError>((tx.is_opted_out(&committed)?, tx.is_opted_out(&pending)?)))
                })
            })
            .collect();
        for r in reads {
            assert_eq!(r.await.unwrap().unwrap(), (true, false), "{}: a read sees only committed data", b.name);
        }
        release.send(()).unwrap();
        writer.await.unwrap().unwrap();
        assert!(read!(s.as_ref(), [pending], |tx| tx.is_opted_out(&pending)).unwrap(), "{}", b.name);
    }
}

#[tokio::test]
async fn concurrent_units_on_one_row_take_turns() {
    for b in backends().await {
        let svc = service(b.store.as_ref(), "race").await;
        let v = verification("VErace", &svc, "+4915100000002");
        assert!(insert(b.store.as_ref(), &v).await);
        // Twenty units each read the row, add one attempt and write it back: none may be lost.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = b.store.clone();
                tokio::spawn(async move {
                    write!(store.as_ref(), [], |tx| {
                        let mut v = tx.verification("VErace")?.unwrap();
                        v.attempts += 1;
                        tx.update_verification(&v)
                    })
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stored = get(b.store.as_ref(), "VErace").await.unwrap();
        assert_eq!((stored.attempts, stored.version), (20, 20), "{}", b.name);
    }
}

#[tokio::test]
async fn expiry_sweep_takes_only_overdue_pending_rows() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "exp").await;
        let mut early = verification("VEearly", &svc, "+4915100000003");
        early.expires_at = t0() + Duration::minutes(1);
        assert!(insert(s, &early).await);
        assert!(insert(s, &verification("VElate", &svc, "+4915100000004")).await);
        let at = t0() + Duration::minutes(2);
        let expired = write!(s, [], |tx| tx.expire_due_verifications(at, 100)).unwrap();
        assert_eq!(expired, vec![(svc.clone(), Channel::Sms)], "{}", b.name);
        let e = get(s, "VEearly").await.unwrap();
        assert_eq!((e.status, e.expired_at, e.version), (Status::Expired, Some(early.expires_at), 1));
        assert_eq!(get(s, "VElate").await.unwrap().status, Status::Pending);
        assert!(write!(s, [], |tx| tx.expire_due_verifications(at, 100)).unwrap().is_empty());
    }
}

#[tokio::test]
async fn services_keys_and_secrets() {
    for b in backends().await {
        let s = b.store.as_ref();
        let id = service(s, "Shop").await;
        assert_eq!(read!(s, [], |tx| tx.service("Shop")).unwrap().unwrap().id, id);
        assert_eq!(read!(s, [id], |tx| tx.service(&id)).unwrap().unwrap().name, "Shop");
        let dup = ServiceSettings { name: "Shop".into(), ..Default::default() }.into_service(t0()).unwrap();
        assert!(!write!(s, [dup], |tx| tx.insert_service(&dup)).unwrap(), "{}", b.name);
        service(s, "Alpha").await;
        let mut settings = ServiceSettings { name: "Voice".into(), ..Default::default() };
        settings.channels.voice_name = Some("Vois".into());
        settings.channels.whatsapp_from = Some("+1 (500) 555-0006".into());
        let voice = settings.into_service(t0()).unwrap();
        assert!(write!(s, [voice], |tx| tx.insert_service(&voice)).unwrap());
        let stored = read!(s, [], |tx| tx.service("Voice")).unwrap().unwrap();
        assert_eq!(stored, voice, "{}", b.name);
        assert_eq!(stored.channels.whatsapp_from.as_deref(), Some("+15005550006"), "kept in E.164");
        let names: Vec<String> = read!(s, [], |tx| tx.services()).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["Alpha", "Shop", "Voice"]);

        let (key, secret) = apikey::generate("ci", apikey::KeyScope::Services(vec![id.clone(), "VAother".into()]), t0());
        write!(s, [key], |tx| tx.insert_api_key(&key)).unwrap();
        assert_eq!(apikey::authenticate_secret(s, &secret).await.unwrap().map(|k| k.id), Some(key.id.clone()));
        assert_eq!(apikey::authenticate_pair(s, &key.id, &secret).await.unwrap().map(|k| k.name), Some("ci".into()));
        let scope = apikey::authenticate_secret(s, &secret).await.unwrap().unwrap().scope;
        assert_eq!(scope, apikey::KeyScope::Services(vec![id.clone(), "VAother".into()]), "{}: the scope round-trips", b.name);
        assert!(apikey::authenticate_pair(s, &key.id, &"wrong".into()).await.unwrap().is_none());
        let kid = key.id.clone();
        assert!(write!(s, [kid], |tx| tx.revoke_api_key(&kid, t0())).unwrap());
        assert!(!write!(s, [kid], |tx| tx.revoke_api_key(&kid, t0())).unwrap());
        assert!(apikey::authenticate_secret(s, &secret).await.unwrap().is_none());
        assert_eq!(read!(s, [], |tx| tx.api_keys()).unwrap()[0].revoked_at, Some(t0()));

        assert_eq!(write!(s, [], |tx| tx.secret_or_insert("k", b"one")).unwrap(), b"one");
        assert_eq!(write!(s, [], |tx| tx.secret_or_insert("k", b"two")).unwrap(), b"one", "{}", b.name);

        s.ping().await.unwrap();
    }
}

mod audit;
mod messages;
mod services;
mod silent_checks;
