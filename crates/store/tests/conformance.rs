//! The store conformance suite: every backend must behave the same. Runs on SQLite always and on
//! PostgreSQL too when `TEST_POSTGRES_URL` is set (each test in its own schema).
use chrono::{DateTime, Duration, TimeZone, Utc};
use phonegate_core::apikey;
use phonegate_core::message::{DeliveryStatus, InboundMessage, Message};
use phonegate_core::ports::{self, Lease, MessageResult, Store, StoreError};
use phonegate_core::service::ServiceSettings;
use phonegate_core::silent::{self, CheckState, Reason, SilentCheck};
use phonegate_core::{Channel, PhoneNumber, Status, Verification};
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
        to: PhoneNumber::from_trusted(to.into()),
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
        write!(s, [approved], |tx| tx.update_verification(&approved)).unwrap();
        let stale = write!(s, [approved], |tx| tx.update_verification(&approved));
        assert!(matches!(stale, Err(StoreError::Conflict)), "{}: a stale version must lose", b.name);
        let stored = get(s, "VE1").await.unwrap();
        assert_eq!((stored.status, stored.attempts, stored.version, stored.approved_at), (Status::Approved, 1, 1, approved.approved_at));
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
            tx.insert_message(&message("SMatom", "VEatom"), None)?;
            Err(Refused::ByTheUseCase)
        });
        assert_eq!(failed, Err(Refused::ByTheUseCase));
        assert_eq!(get(s, "VEatom").await, None, "{}: nothing of a failed unit is kept", b.name);
        let messages = read!(s, [], |tx| tx.messages_for_verification("VEatom")).unwrap();
        assert!(messages.is_empty(), "{}", b.name);
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
        let names: Vec<String> = read!(s, [], |tx| tx.services()).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["Alpha", "Shop"]);

        let (key, secret) = apikey::generate("ci", apikey::KeyScope::Services(vec![id.clone(), "VAother".into()]), t0());
        write!(s, [key], |tx| tx.insert_api_key(&key)).unwrap();
        assert_eq!(apikey::authenticate_secret(s, &secret).await.unwrap().map(|k| k.id), Some(key.id.clone()));
        assert_eq!(apikey::authenticate_pair(s, &key.id, &secret).await.unwrap().map(|k| k.name), Some("ci".into()));
        let scope = apikey::authenticate_secret(s, &secret).await.unwrap().unwrap().scope;
        assert_eq!(scope, apikey::KeyScope::Services(vec![id.clone(), "VAother".into()]), "{}: the scope round-trips", b.name);
        assert!(apikey::authenticate_pair(s, &key.id, "wrong").await.unwrap().is_none());
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

fn message(id: &str, verification_id: &str) -> Message {
    Message {
        id: id.into(),
        verification_id: Some(verification_id.into()),
        service: Some("q".into()),
        to: PhoneNumber::from_trusted("+4915100000009".into()),
        body_sealed: vec![9, 9],
        resend: false,
        status: DeliveryStatus::Queued,
        provider: None,
        provider_message_id: None,
        error: None,
        claims: 0,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn queue(s: &dyn Store, m: Message, lease: Option<Lease>) {
    write!(s, [], |tx| tx.insert_message(&m, lease.as_ref())).unwrap()
}

async fn claim(s: &dyn Store, now: DateTime<Utc>, queued_before: DateTime<Utc>, until: DateTime<Utc>, token: &str, n: u32) -> Vec<Message> {
    let token = token.to_string();
    write!(s, [], |tx| tx.claim_due_messages(now, queued_before, until, &token, n)).unwrap()
}

#[tokio::test]
async fn the_message_queue_claims_leases_and_receipts() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "q").await;
        assert!(insert(s, &verification("VEq", &svc, "+4915100000009")).await);
        // SMa is written already claimed by its sender (tok1), SMb queued.
        let tok1 = Lease { token: "tok1".into(), until: t0() + Duration::seconds(60) };
        queue(s, Message { status: DeliveryStatus::Sending, claims: 1, ..message("SMa", "VEq") }, Some(tok1)).await;
        queue(s, message("SMb", "VEq"), None).await;
        let lease = t0() + Duration::seconds(60);

        let due: Vec<String> = claim(s, t0(), t0(), lease, "tok3", 10).await.into_iter().map(|m| m.id).collect();
        assert_eq!(due, ["SMb"], "{}: SMa is held by tok1", b.name);
        queue(s, Message { created_at: t0() + Duration::seconds(5), ..message("SMc", "VEq") }, None).await;
        let young = claim(s, t0() + Duration::seconds(5), t0(), lease, "tok5", 10).await;
        assert!(young.is_empty(), "{}: a message newer than queued_before is left to its sender", b.name);

        // After the lease, another sender may take it over; the old holder can no longer finish.
        let later = t0() + Duration::seconds(61);
        let taken = claim(s, later, later, later + Duration::seconds(60), "tok4", 10).await;
        assert_eq!(taken.len(), 3, "{}", b.name);
        let sent = MessageResult {
            status: DeliveryStatus::Sent,
            provider: Some("tw".into()),
            provider_message_id: Some("P1".into()),
            error: None,
        };
        assert!(!write!(s, [sent], |tx| tx.finish_message("SMa", "tok1", &sent, later)).unwrap(), "{}: stale token", b.name);
        assert!(write!(s, [sent], |tx| tx.finish_message("SMa", "tok4", &sent, later)).unwrap());

        let receipt = async |pmid: &'static str, status| write!(s, [], |tx| tx.apply_receipt(pmid, status, None, later));
        let delivered = receipt("P1", DeliveryStatus::Delivered).await.unwrap().unwrap();
        assert_eq!((delivered.status, delivered.provider.as_deref()), (DeliveryStatus::Delivered, Some("tw")));
        assert!(receipt("P1", DeliveryStatus::Sent).await.unwrap().is_none(), "{}: never backwards", b.name);
        assert!(receipt("unknown", DeliveryStatus::Delivered).await.unwrap().is_none());
        let listed: Vec<(String, DeliveryStatus)> =
            read!(s, [], |tx| tx.messages_for_verification("VEq")).unwrap().into_iter().map(|m| (m.id, m.status)).collect();
        assert_eq!(
            listed,
            [
                ("SMa".to_string(), DeliveryStatus::Delivered),
                ("SMb".to_string(), DeliveryStatus::Sending),
                ("SMc".to_string(), DeliveryStatus::Sending)
            ]
        );
    }
}

#[tokio::test]
async fn the_outbox_lists_the_messages_the_outbox_provider_took_newest_first() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "o").await;
        assert!(insert(s, &verification("VEo", &svc, "+4915100000009")).await);
        let lease = Lease { token: "t".into(), until: t0() + Duration::seconds(60) };
        let to = |n: &str| PhoneNumber::from_trusted(n.into());
        for (i, (number, provider)) in
            [("+4915100000009", "outbox"), ("+4915100000008", "outbox"), ("+4915100000009", "outbox"), ("+4915100000009", "tw")]
                .into_iter()
                .enumerate()
        {
            let id = format!("SMo{i}");
            let m = Message {
                to: to(number),
                status: DeliveryStatus::Sending,
                created_at: t0() + Duration::seconds(i as i64),
                ..message(&id, "VEo")
            };
            queue(s, m, Some(lease.clone())).await;
            let done = MessageResult {
                status: DeliveryStatus::Sent,
                provider: Some(provider.into()),
                provider_message_id: Some(id.clone()),
                error: None,
            };
            assert!(write!(s, [id, done], |tx| tx.finish_message(&id, "t", &done, t0())).unwrap());
        }
        queue(s, Message { to: to("+4915100000009"), ..message("SMqueued", "VEo") }, None).await;
        let ids = async |number: Option<&'static str>, limit| -> Vec<String> {
            read!(s, [], |tx| tx.outbox(number, limit)).unwrap().into_iter().map(|m| m.id).collect()
        };
        assert_eq!(ids(Some("+4915100000009"), 10).await, ["SMo2", "SMo0"], "{}: the outbox's own, newest first", b.name);
        assert_eq!(ids(None, 2).await, ["SMo2", "SMo1"], "{}", b.name);
    }
}

#[tokio::test]
async fn parallel_claims_never_hand_out_a_message_twice() {
    for b in backends().await {
        let svc = service(b.store.as_ref(), "pq").await;
        assert!(insert(b.store.as_ref(), &verification("VEpq", &svc, "+4915100000010")).await);
        for i in 0..30 {
            queue(b.store.as_ref(), message(&format!("SM{i:02}"), "VEpq"), None).await;
        }
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = b.store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = claim(store.as_ref(), t0(), t0(), t0() + Duration::seconds(60), &format!("w{w}"), 3).await;
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|m| m.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let unique: std::collections::BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!((all.len(), unique.len()), (30, 30), "{}", b.name);
    }
}

#[tokio::test]
async fn opt_outs_and_inbound_deduplication() {
    for b in backends().await {
        let s = b.store.as_ref();
        let n = PhoneNumber::from_trusted("+4915100000011".into());
        let opted_out = async || read!(s, [n], |tx| tx.is_opted_out(&n));
        assert!(!opted_out().await.unwrap());
        write!(s, [n], |tx| tx.set_opted_out(&n, true, t0())).unwrap();
        write!(s, [n], |tx| tx.set_opted_out(&n, true, t0())).unwrap();
        assert!(opted_out().await.unwrap(), "{}", b.name);
        write!(s, [n], |tx| tx.set_opted_out(&n, false, t0())).unwrap();
        assert!(!opted_out().await.unwrap());

        let inbound = InboundMessage {
            id: "IM1".into(),
            provider: "twilio".into(),
            provider_message_id: "SMx".into(),
            from: n.clone(),
            to: "+1".into(),
            body: "STOP".into(),
            received_at: t0(),
        };
        assert!(write!(s, [inbound], |tx| tx.insert_inbound(&inbound)).unwrap());
        let again = InboundMessage { id: "IM2".into(), body: "START".into(), ..inbound.clone() };
        assert!(!write!(s, [again], |tx| tx.insert_inbound(&again)).unwrap(), "{}: a duplicate is not stored", b.name);
        let other_provider = InboundMessage { id: "IM3".into(), provider: "vonage".into(), ..inbound.clone() };
        assert!(write!(s, [other_provider], |tx| tx.insert_inbound(&other_provider)).unwrap());

        // Retention clears what an inbound message said, never that it was seen: a captured
        // webhook replayed after retention is still a duplicate.
        write!(s, [], |tx| tx.purge_before(t0() + Duration::days(400), 100)).unwrap();
        let replay = InboundMessage { id: "IM4".into(), ..inbound };
        assert!(!write!(s, [replay], |tx| tx.insert_inbound(&replay)).unwrap(), "{}: a replay after retention", b.name);
        let kept = phonegate_store::testing::count(&b.url, "SELECT count(*) FROM inbound_messages WHERE body <> '' OR from_number <> ''");
        assert_eq!(kept.await.unwrap(), 0, "{}: the old messages' text and sender are gone", b.name);
    }
}

#[tokio::test]
async fn retention_deletes_only_old_ended_verifications_with_their_messages() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "ret").await;
        let mut old = verification("VEold", &svc, "+4915100000020");
        old.status = Status::Approved;
        old.approved_at = Some(t0());
        assert!(insert(s, &old).await);
        queue(s, message("SMold", "VEold"), None).await;
        assert!(insert(s, &verification("VEpending", &svc, "+4915100000021")).await);
        let mut recent = verification("VErecent", &svc, "+4915100000022");
        recent.status = Status::Expired;
        recent.updated_at = t0() + Duration::days(40);
        assert!(insert(s, &recent).await);

        let cutoff = t0() + Duration::days(30);
        let purged = write!(s, [], |tx| tx.purge_before(cutoff, 100)).unwrap();
        assert_eq!(purged, 1, "{}", b.name);
        assert!(get(s, "VEold").await.is_none());
        assert!(read!(s, [], |tx| tx.messages_for_verification("VEold")).unwrap().is_empty());
        assert!(get(s, "VEpending").await.is_some(), "{}: pending rows stay", b.name);
        assert!(get(s, "VErecent").await.is_some());
    }
}

#[tokio::test]
async fn early_receipts_are_held_until_a_message_carries_their_id() {
    for b in backends().await {
        let s = b.store.as_ref();
        let hold =
            async |pmid: &'static str, status, error: Option<&'static str>| write!(s, [], |tx| tx.hold_receipt(pmid, status, error, t0()));
        let take = async |pmid: &'static str| write!(s, [], |tx| tx.take_held_receipt(pmid));
        assert!(hold("P9", DeliveryStatus::Sent, None).await.unwrap(), "{}", b.name);
        assert!(hold("P9", DeliveryStatus::Delivered, Some("late")).await.unwrap(), "{}: the latest wins", b.name);
        assert_eq!(take("P9").await.unwrap(), Some((DeliveryStatus::Delivered, Some("late".into()))));
        assert_eq!(take("P9").await.unwrap(), None, "{}: taken once", b.name);

        let svc = service(s, "er").await;
        assert!(insert(s, &verification("VEer", &svc, "+4915100000030")).await);
        queue(s, Message { provider_message_id: Some("P10".into()), status: DeliveryStatus::Sent, ..message("SMer", "VEer") }, None).await;
        assert!(!hold("P10", DeliveryStatus::Delivered, None).await.unwrap(), "{}: a message carries P10", b.name);
        assert_eq!(take("P10").await.unwrap(), None);
    }
}

/// Units of this database waiting for the advisory lock on provider message id `Prr` (a bigint
/// key shows its low half in `objid`).
const WAITING_FOR_PRR: &str = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND objid::text::bigint = (hashtextextended('Prr', 0) & 4294967295)";

/// PostgreSQL, READ COMMITTED: a receipt held by a unit that has not committed yet must still be
/// found by the send's result that names its message id, and not be left held forever.
#[tokio::test]
async fn a_receipt_held_while_the_send_result_is_stored_is_not_lost() {
    for b in backends().await.into_iter().filter(|b| b.name == "postgres") {
        let s = b.store.clone();
        let svc = service(s.as_ref(), "race-r").await;
        assert!(insert(s.as_ref(), &verification("VErr", &svc, "+4915100000050")).await);
        let lease = Lease { token: "tokr".into(), until: t0() + Duration::seconds(60) };
        queue(s.as_ref(), Message { status: DeliveryStatus::Sending, claims: 1, ..message("SMrr", "VErr") }, Some(lease)).await;

        let (held_tx, held) = tokio::sync::oneshot::channel::<()>();
        let receipt = tokio::spawn({
            let (s, url) = (s.clone(), b.url.clone());
            async move {
                write!(s.as_ref(), [], |tx| {
                    assert!(tx.apply_receipt("Prr", DeliveryStatus::Delivered, None, t0())?.is_none());
                    assert!(tx.hold_receipt("Prr", DeliveryStatus::Delivered, None, t0())?);
                    let _ = held_tx.send(());
                    // Commit only once the send's result is seen waiting for this unit's lock on the
                    // id (or, were it not to wait, after 30 s: then it has looked and missed it).
                    // (A unit on PostgreSQL runs on the blocking pool, where the test can wait.)
                    let (rt, deadline) =
                        (tokio::runtime::Handle::current(), std::time::Instant::now() + std::time::Duration::from_secs(30));
                    while rt.block_on(phonegate_store::testing::count(&url, WAITING_FOR_PRR))? == 0 && std::time::Instant::now() < deadline
                    {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Ok::<_, StoreError>(())
                })
            }
        });
        held.await.unwrap();
        let sent = MessageResult {
            status: DeliveryStatus::Sent,
            provider: Some("tw".into()),
            provider_message_id: Some("Prr".into()),
            error: None,
        };
        let taken = write!(s.as_ref(), [sent], |tx| {
            assert!(tx.finish_message("SMrr", "tokr", &sent, t0())?);
            tx.take_held_receipt("Prr")
        })
        .unwrap();
        receipt.await.unwrap().unwrap();
        assert_eq!(taken, Some((DeliveryStatus::Delivered, None)), "the held receipt was missed");
    }
}

#[tokio::test]
async fn budget_counters_take_within_the_limit() {
    use phonegate_core::budget::{Budget, Charge};
    for b in backends().await {
        let s = b.store.as_ref();
        let exact = Charge { budget: Budget::FailedChecksPerNumber, subject: "+4915100000009".into(), rate: "2/1h".parse().unwrap() };
        let shared = Charge { budget: Budget::SendsPerPrefix, subject: "+49151".into(), rate: "3/1h".parse().unwrap() };
        let take = async |c: &Charge, shard: u32| {
            let c = c.clone();
            write!(s, [], |tx| tx.take_budget(&c, 3600, shard, t0())).unwrap()
        };
        assert!(take(&exact, 0).await && take(&exact, 0).await, "{}", b.name);
        assert!(!take(&exact, 0).await, "{}: the third is over the limit", b.name);
        let left = async |c: &Charge, window: i64| {
            let c = c.clone();
            write!(s, [], |tx| tx.budget_left(&c, window)).unwrap()
        };
        assert!(!left(&exact, 3600).await, "{}", b.name);
        assert!(left(&exact, 7200).await, "{}: another window", b.name);
        for shard in [1, 5, 1] {
            assert!(take(&shared, shard).await, "{}", b.name);
        }
        assert!(!take(&shared, 2).await, "{}: the shards' sum is at the limit", b.name);
    }
}

#[tokio::test]
async fn two_counters_in_two_windows_are_read_at_once() {
    use phonegate_core::budget::{Budget, Charge};
    for b in backends().await {
        let s = b.store.as_ref();
        let charge = |budget| Charge { budget, subject: "+49157".into(), rate: "4294967295/1h".parse().unwrap() };
        let (new, approved) = (charge(Budget::PrefixNewNumbers), charge(Budget::PrefixApprovals));
        for (c, window, times) in [(&new, 3600, 3), (&new, 0, 2), (&approved, 3600, 1)] {
            for shard in 0..times {
                let c = c.clone();
                assert!(write!(s, [], |tx| tx.take_budget(&c, window, shard, t0())).unwrap());
            }
        }
        let (a, b2) = (new.clone(), approved.clone());
        let used = read!(s, [], |tx| tx.budgets_used(&a, &b2, [3600, 0])).unwrap();
        assert_eq!(used, [[3, 2], [1, 0]], "{}", b.name);
    }
}

/// A silent check with every optional field set (a `silent` verification whose device has gone
/// on to the provider and timed out).
fn silent_check(id: &str, verification_id: &str, token: &str) -> SilentCheck {
    SilentCheck {
        id: id.into(),
        verification_id: verification_id.into(),
        provider: "camara".into(),
        provider_ref: Some(format!("ref-{id}")),
        device_url_sealed: Some(vec![0, 1, 2, 0xfe, 0xff, 0]),
        token_digest: silent::token_digest(token),
        state: CheckState::Failed,
        reason: Some(Reason::Timeout),
        fallback: true,
        return_path: Some("/login/LF123?step=silent&x=é".into()),
        created_at: t0() + Duration::milliseconds(1),
        expires_at: t0() + Duration::milliseconds(120_002),
        opened_at: Some(t0() + Duration::milliseconds(5_003)),
        finished_at: Some(t0() + Duration::milliseconds(120_004)),
    }
}

/// The same with every optional field empty, as `start` writes it before the provider answered.
fn bare_silent_check(id: &str, verification_id: &str, token: &str) -> SilentCheck {
    SilentCheck {
        provider_ref: None,
        device_url_sealed: None,
        state: CheckState::Created,
        reason: None,
        fallback: false,
        return_path: None,
        opened_at: None,
        finished_at: None,
        ..silent_check(id, verification_id, token)
    }
}

async fn insert_silent(s: &dyn Store, c: &SilentCheck) -> Result<(), StoreError> {
    let c = c.clone();
    write!(s, [], |tx| tx.insert_silent_check(&c))
}

async fn update_silent(s: &dyn Store, c: &SilentCheck) {
    let c = c.clone();
    write!(s, [], |tx| tx.update_silent_check(&c)).unwrap()
}

/// The check found each way it can be: by verification, by token digest and (when it has one) by
/// provider reference, in read-only work and, locking, in a write; all four must agree.
async fn silent_lookups(s: &dyn Store, c: &SilentCheck) -> Vec<Option<SilentCheck>> {
    let (vid, digest) = (c.verification_id.clone(), c.token_digest.clone());
    let mut found = vec![
        read!(s, [vid], |tx| tx.silent_check_of(&vid)).unwrap(),
        write!(s, [vid], |tx| tx.silent_check_of(&vid)).unwrap(),
        read!(s, [digest], |tx| tx.silent_check_by_token(&digest)).unwrap(),
        write!(s, [digest], |tx| tx.silent_check_by_token(&digest)).unwrap(),
    ];
    if let Some(r) = c.provider_ref.clone() {
        let p = c.provider.clone();
        found.push(read!(s, [p, r], |tx| tx.silent_check_by_ref(&p, &r)).unwrap());
        found.push(write!(s, [p, r], |tx| tx.silent_check_by_ref(&p, &r)).unwrap());
    }
    found
}

#[tokio::test]
async fn silent_checks_round_trip_every_field() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "silent").await;
        for (vid, to) in [("VEs1", "+4915100000060"), ("VEs2", "+4915100000061")] {
            assert!(insert(s, &verification(vid, &svc, to)).await);
        }

        // Every optional field set…
        let full = silent_check("SCfull", "VEs1", "tok-full");
        insert_silent(s, &full).await.unwrap();
        for (i, got) in silent_lookups(s, &full).await.into_iter().enumerate() {
            assert_eq!(got.as_ref(), Some(&full), "{}: lookup {i} of the full check", b.name);
        }
        // …and none.
        let bare = bare_silent_check("SCbare", "VEs2", "tok-bare");
        insert_silent(s, &bare).await.unwrap();
        for (i, got) in silent_lookups(s, &bare).await.into_iter().enumerate() {
            assert_eq!(got.as_ref(), Some(&bare), "{}: lookup {i} of the bare check", b.name);
        }

        // Nothing is found by what no check has.
        let none = read!(s, [], |tx| {
            Ok::<_, StoreError>([
                tx.silent_check_of("VE404")?,
                tx.silent_check_by_token(&silent::token_digest("tok-404"))?,
                tx.silent_check_by_token(&[])?,
                tx.silent_check_by_ref("camara", "ref-404")?,
                tx.silent_check_by_ref("vonage", "ref-SCfull")?,
                tx.silent_check_by_ref("camara", "")?,
            ])
        })
        .unwrap();
        assert_eq!(none, [None, None, None, None, None, None], "{}", b.name);

        // The provider answered: the bare check gets its reference and device URL, then is opened.
        let mut c = bare.clone();
        c.provider_ref = Some("R-77".into());
        c.device_url_sealed = Some((0..=255).collect());
        update_silent(s, &c).await;
        assert_eq!(silent_lookups(s, &c).await, vec![Some(c.clone()); 6], "{}: after the provider answered", b.name);
        c.state = CheckState::Opened;
        c.opened_at = Some(t0() + Duration::milliseconds(9_999));
        update_silent(s, &c).await;
        assert_eq!(silent_lookups(s, &c).await, vec![Some(c.clone()); 6], "{}: after the device opened it", b.name);
        // Every end it can come to, each reason, a match.
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            c.state = CheckState::Failed;
            c.reason = Some(reason);
            c.finished_at = Some(t0() + Duration::milliseconds(10_000));
            update_silent(s, &c).await;
            let got = read!(s, [], |tx| tx.silent_check_of("VEs2")).unwrap();
            assert_eq!(got.as_ref(), Some(&c), "{}: reason {reason:?}", b.name);
        }
        c.state = CheckState::Matched;
        c.reason = None;
        update_silent(s, &c).await;
        assert_eq!(read!(s, [], |tx| tx.silent_check_of("VEs2")).unwrap().as_ref(), Some(&c), "{}", b.name);
        // Empty sealed bytes are still bytes, not NULL.
        c.device_url_sealed = Some(Vec::new());
        update_silent(s, &c).await;
        let got = read!(s, [], |tx| tx.silent_check_of("VEs2")).unwrap().unwrap();
        assert_eq!(got.device_url_sealed, Some(Vec::new()), "{}", b.name);
        // An update may clear what it set.
        c.provider_ref = None;
        c.device_url_sealed = None;
        c.opened_at = None;
        c.finished_at = None;
        update_silent(s, &c).await;
        assert_eq!(silent_lookups(s, &c).await, vec![Some(c.clone()); 4], "{}: cleared again", b.name);
        assert_eq!(read!(s, [], |tx| tx.silent_check_by_ref("camara", "R-77")).unwrap(), None, "{}", b.name);

        // An update writes only what it may change: id, verification, provider, token, fallback,
        // return path and the two creation times stay as inserted.
        let mut other = full.clone();
        other.verification_id = "VEs2".into();
        other.provider = "vonage".into();
        other.token_digest = silent::token_digest("tok-other");
        other.fallback = false;
        other.return_path = None;
        other.created_at = t0();
        other.expires_at = t0();
        update_silent(s, &other).await;
        let stored = read!(s, [], |tx| tx.silent_check_of("VEs1")).unwrap();
        assert_eq!(stored.as_ref(), Some(&full), "{}: the immutable fields of SCfull", b.name);

        // The full check's fields, stored exactly (the bytes of the sealed URL, including NULs).
        let stored = stored.unwrap();
        assert_eq!(stored.device_url_sealed.as_deref(), Some(&[0u8, 1, 2, 0xfe, 0xff, 0][..]), "{}", b.name);
        assert_eq!((stored.fallback, stored.reason, stored.state), (true, Some(Reason::Timeout), CheckState::Failed), "{}", b.name);
        assert_eq!(stored.return_path.as_deref(), Some("/login/LF123?step=silent&x=é"), "{}", b.name);
        assert_eq!(stored.expires_at.timestamp_millis(), full.expires_at.timestamp_millis(), "{}: milliseconds kept", b.name);
    }
}

#[tokio::test]
async fn silent_checks_are_unique_per_verification_token_and_provider_reference() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "silent-u").await;
        for i in 0..8 {
            assert!(insert(s, &verification(&format!("VEu{i}"), &svc, &format!("+491510000007{i}"))).await);
        }
        let first = silent_check("SCu0", "VEu0", "tok-u0");
        insert_silent(s, &first).await.unwrap();

        // A second check for the same verification, or with the same token, is a conflict.
        let same_verification = silent_check("SCu1", "VEu0", "tok-u1");
        assert!(matches!(insert_silent(s, &same_verification).await, Err(StoreError::Conflict)), "{}: same verification", b.name);
        let same_token = bare_silent_check("SCu1", "VEu1", "tok-u0");
        assert!(matches!(insert_silent(s, &same_token).await, Err(StoreError::Conflict)), "{}: same token", b.name);
        let same_id = bare_silent_check("SCu0", "VEu1", "tok-u1");
        assert!(matches!(insert_silent(s, &same_id).await, Err(StoreError::Conflict)), "{}: same id", b.name);
        // The same provider reference at the same provider, too; at another provider it is free.
        let same_ref = SilentCheck { provider_ref: first.provider_ref.clone(), ..bare_silent_check("SCu1", "VEu1", "tok-u1") };
        assert!(matches!(insert_silent(s, &same_ref).await, Err(StoreError::Conflict)), "{}: same provider reference", b.name);
        // Nothing of a refused insert was kept.
        let refused = read!(s, [], |tx| tx.silent_check_of("VEu1")).unwrap();
        assert_eq!(refused, None, "{}", b.name);
        let elsewhere = SilentCheck { provider: "vonage".into(), ..same_ref.clone() };
        insert_silent(s, &elsewhere).await.unwrap();
        let (p0, p1) = (
            read!(s, [], |tx| tx.silent_check_by_ref("camara", "ref-SCu0")).unwrap().map(|c| c.id),
            read!(s, [], |tx| tx.silent_check_by_ref("vonage", "ref-SCu0")).unwrap().map(|c| c.id),
        );
        assert_eq!((p0.as_deref(), p1.as_deref()), (Some("SCu0"), Some("SCu1")), "{}", b.name);

        // Checks the provider has not answered yet have no reference: any number of them, at one
        // provider, must be allowed.
        for i in 2..6 {
            let c = bare_silent_check(&format!("SCu{i}"), &format!("VEu{i}"), &format!("tok-u{i}"));
            let inserted = insert_silent(s, &c).await;
            assert!(inserted.is_ok(), "{}: check {i} without a provider reference: {inserted:?}", b.name);
        }
        let unanswered = phonegate_store::testing::count(
            &b.url,
            "SELECT count(*) FROM silent_checks WHERE provider = 'camara' AND provider_ref IS NULL",
        );
        assert_eq!(unanswered.await.unwrap(), 4, "{}", b.name);

        // Giving a check a reference another check of its provider has is a conflict as well,
        // and the refused update leaves the row as it was.
        let mut late = bare_silent_check("SCu2", "VEu2", "tok-u2");
        late.provider_ref = Some("ref-SCu0".into());
        let updated = write!(s, [late], |tx| tx.update_silent_check(&late));
        assert!(matches!(updated, Err(StoreError::Conflict)), "{}: update to a taken reference: {updated:?}", b.name);
        let kept = read!(s, [], |tx| tx.silent_check_of("VEu2")).unwrap().unwrap();
        assert_eq!(kept.provider_ref, None, "{}", b.name);
        late.provider_ref = Some("ref-SCu2".into());
        write!(s, [late], |tx| tx.update_silent_check(&late)).unwrap();

        // A failed unit keeps none of its silent rows.
        let failed: Result<(), Refused> = write!(s, [], |tx| {
            tx.insert_silent_check(&bare_silent_check("SCu6", "VEu6", "tok-u6"))?;
            Err(Refused::ByTheUseCase)
        });
        assert_eq!(failed, Err(Refused::ByTheUseCase));
        assert_eq!(read!(s, [], |tx| tx.silent_check_of("VEu6")).unwrap(), None, "{}", b.name);
    }
}

#[tokio::test]
async fn due_silent_checks_are_the_live_overdue_ones_oldest_first() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "silent-d").await;
        let now = t0() + Duration::minutes(10);
        // (id, state, expires relative to now in seconds): inserted out of order.
        let rows = [
            ("SCd0", CheckState::Opened, -30),
            ("SCd1", CheckState::Created, -90),
            ("SCd2", CheckState::Matched, -600),
            ("SCd3", CheckState::Failed, -300),
            ("SCd4", CheckState::Created, 0),
            ("SCd5", CheckState::Created, 1),
            ("SCd6", CheckState::Opened, -60),
            ("SCd7", CheckState::Opened, 60),
        ];
        for (i, (id, state, secs)) in rows.into_iter().enumerate() {
            let vid = format!("VEd{i}");
            assert!(insert(s, &verification(&vid, &svc, &format!("+491510000008{i}"))).await);
            let c = SilentCheck {
                state,
                reason: (state == CheckState::Failed).then_some(Reason::Mismatch),
                expires_at: now + Duration::seconds(secs),
                ..bare_silent_check(id, &vid, &format!("tok-{id}"))
            };
            insert_silent(s, &c).await.unwrap();
        }
        let due = async |at: DateTime<Utc>, limit: u32| -> Vec<String> {
            write!(s, [], |tx| tx.due_silent_checks(at, limit)).unwrap().into_iter().map(|c| c.id).collect()
        };
        assert_eq!(due(now, 100).await, ["SCd1", "SCd6", "SCd0", "SCd4"], "{}: live, expires_at <= now, oldest first", b.name);
        assert_eq!(due(now, 2).await, ["SCd1", "SCd6"], "{}: at most limit", b.name);
        assert_eq!(due(now, 0).await, Vec::<String>::new(), "{}: limit 0", b.name);
        assert_eq!(due(now - Duration::minutes(30), 100).await, Vec::<String>::new(), "{}: none due yet", b.name);
        assert_eq!(due(now + Duration::hours(1), 100).await, ["SCd1", "SCd6", "SCd0", "SCd4", "SCd5", "SCd7"], "{}", b.name);
        // Whole rows come back.
        let first = write!(s, [], |tx| tx.due_silent_checks(now, 1)).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0], read!(s, [], |tx| tx.silent_check_of("VEd1")).unwrap().unwrap(), "{}", b.name);

        // A check the sweep ends is no longer due.
        let mut ended = first[0].clone();
        assert!(ended.finish(phonegate_core::silent::SilentResult::Failed(Reason::Timeout), now));
        update_silent(s, &ended).await;
        assert_eq!(due(now, 100).await, ["SCd6", "SCd0", "SCd4"], "{}", b.name);
    }
}

/// PostgreSQL: the sweep passes over a check another unit holds (`FOR UPDATE SKIP LOCKED`), and
/// the callback that holds it is not blocked by the sweep.
#[tokio::test]
async fn the_silent_sweep_skips_checks_another_unit_holds() {
    for b in backends().await.into_iter().filter(|b| b.name == "postgres") {
        let s = b.store.clone();
        let svc = service(s.as_ref(), "silent-l").await;
        for (i, id) in ["SCl0", "SCl1"].into_iter().enumerate() {
            let vid = format!("VEl{i}");
            assert!(insert(s.as_ref(), &verification(&vid, &svc, &format!("+491510000009{i}"))).await);
            let c = SilentCheck { expires_at: t0() + Duration::seconds(i as i64), ..bare_silent_check(id, &vid, &format!("tok-{id}")) };
            insert_silent(s.as_ref(), &c).await.unwrap();
        }
        let (held_tx, held) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn({
            let s = s.clone();
            async move {
                write!(s.as_ref(), [], |tx| {
                    let digest = silent::token_digest("tok-SCl0");
                    assert!(tx.silent_check_by_token(&digest)?.is_some());
                    let _ = held_tx.send(());
                    let _ = release.blocking_recv();
                    Ok::<_, StoreError>(())
                })
            }
        });
        held.await.unwrap();
        let later = t0() + Duration::minutes(5);
        let due = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            write!(s.as_ref(), [], |tx| tx.due_silent_checks(later, 10)).unwrap()
        })
        .await
        .expect("the sweep waited for a held row");
        assert_eq!(due.into_iter().map(|c| c.id).collect::<Vec<_>>(), ["SCl1"]);
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let due = write!(s.as_ref(), [], |tx| tx.due_silent_checks(later, 10)).unwrap();
        assert_eq!(due.into_iter().map(|c| c.id).collect::<Vec<_>>(), ["SCl0", "SCl1"]);
    }
}

#[tokio::test]
async fn retention_deletes_the_silent_check_of_a_purged_verification() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "silent-r").await;
        let mut old = verification("VEsold", &svc, "+4915100000100");
        old.channel = Channel::Silent;
        old.status = Status::Approved;
        old.approved_at = Some(t0());
        assert!(insert(s, &old).await);
        let mut pending = verification("VEspending", &svc, "+4915100000101");
        pending.channel = Channel::Auto;
        assert!(insert(s, &pending).await);
        let mut recent = verification("VEsrecent", &svc, "+4915100000102");
        recent.channel = Channel::Silent;
        recent.status = Status::Failed;
        recent.updated_at = t0() + Duration::days(40);
        assert!(insert(s, &recent).await);
        let checks = [
            SilentCheck { state: CheckState::Matched, ..silent_check("SCrold", "VEsold", "tok-old") },
            bare_silent_check("SCrpending", "VEspending", "tok-pending"),
            silent_check("SCrrecent", "VEsrecent", "tok-recent"),
        ];
        for c in &checks {
            insert_silent(s, c).await.unwrap();
        }

        let cutoff = t0() + Duration::days(30);
        let purged = write!(s, [], |tx| tx.purge_before(cutoff, 100)).unwrap();
        assert_eq!(purged, 1, "{}", b.name);
        assert!(get(s, "VEsold").await.is_none(), "{}", b.name);
        assert_eq!(silent_lookups(s, &checks[0]).await, vec![None; 6], "{}: the purged verification's check is gone", b.name);
        assert_eq!(silent_lookups(s, &checks[1]).await, vec![Some(checks[1].clone()); 4], "{}: a pending one's stays", b.name);
        assert_eq!(silent_lookups(s, &checks[2]).await, vec![Some(checks[2].clone()); 6], "{}: a recent one's stays", b.name);
        let left = phonegate_store::testing::count(&b.url, "SELECT count(*) FROM silent_checks");
        assert_eq!(left.await.unwrap(), 2, "{}", b.name);

        // Its token and reference are free again.
        insert_silent(s, &SilentCheck { verification_id: "VEspending2".into(), ..checks[0].clone() }).await.unwrap();
    }
}

#[tokio::test]
async fn a_token_is_used_once_until_retention_forgets_it_after_its_expiry() {
    for b in backends().await {
        let s = b.store.as_ref();
        let digest = vec![7u8; 32];
        let until = t0() + Duration::minutes(10);
        assert!(write!(s, [digest], |tx| tx.use_once(&digest, until)).unwrap(), "{}", b.name);
        assert!(!write!(s, [digest], |tx| tx.use_once(&digest, until)).unwrap(), "{}: a second use", b.name);
        let other = vec![8u8; 32];
        assert!(write!(s, [other], |tx| tx.use_once(&other, until)).unwrap(), "{}", b.name);
        // Retention forgets expired tokens only.
        write!(s, [], |tx| tx.purge_before(t0(), 100)).unwrap();
        assert!(!write!(s, [digest], |tx| tx.use_once(&digest, until)).unwrap(), "{}: kept until it expires", b.name);
        write!(s, [], |tx| tx.purge_before(until + Duration::minutes(1), 100)).unwrap();
        assert!(write!(s, [digest], |tx| tx.use_once(&digest, until)).unwrap(), "{}: forgotten after", b.name);
    }
}
