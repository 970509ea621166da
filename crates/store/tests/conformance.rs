//! The store conformance suite: every backend must behave the same. Runs on SQLite always and on
//! PostgreSQL too when `TEST_POSTGRES_URL` is set (each test in its own schema).
use chrono::{DateTime, Duration, TimeZone, Utc};
use phonegate_core::apikey;
use phonegate_core::message::{DeliveryStatus, InboundMessage, Message};
use phonegate_core::outbox::OutboxMessage;
use phonegate_core::ports::{Lease, MessageResult, Store, StoreError};
use phonegate_core::service::ServiceSettings;
use phonegate_core::{Channel, PhoneNumber, Status, Verification};
use std::sync::Arc;

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

/// SQLite, and PostgreSQL when configured.
async fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    out.push(Backend { name: "sqlite", store: phonegate_store::connect(&url, 4).await.unwrap(), _dir: dir });
    if phonegate_store::testing::postgres_url().is_some() {
        let dir = tempfile::tempdir().unwrap();
        let url = phonegate_store::testing::fresh_database_url(dir.path()).await.unwrap();
        out.push(Backend { name: "postgres", store: phonegate_store::connect(&url, 8).await.unwrap(), _dir: dir });
    }
    out
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

async fn service(store: &dyn Store, name: &str) -> String {
    let s = ServiceSettings { name: name.into(), ..Default::default() }.into_service(t0()).unwrap();
    store.insert_service(&s).await.unwrap();
    s.id
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

#[tokio::test]
async fn verifications_round_trip_and_compare_and_swap() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "a").await;
        let v = verification("VE1", &svc, "+4915100000001");
        s.insert_verification(&v).await.unwrap();
        assert_eq!(s.get_verification("VE1").await.unwrap().as_ref(), Some(&v), "{}", b.name);
        assert_eq!(s.get_verification("VE404").await.unwrap(), None);

        // A second pending verification for the same service and number is refused.
        let twin = verification("VE2", &svc, "+4915100000001");
        assert!(matches!(s.insert_verification(&twin).await, Err(StoreError::Conflict)), "{}", b.name);
        assert_eq!(s.find_pending_verification(&svc, &v.to).await.unwrap().map(|v| v.id), Some("VE1".into()));

        let mut approved = v.clone();
        approved.attempts = 1;
        approved.status = Status::Approved;
        approved.approved_at = Some(t0() + Duration::seconds(3));
        assert!(s.update_verification(&approved, 0).await.unwrap());
        assert!(!s.update_verification(&approved, 0).await.unwrap(), "{}: a stale version must lose", b.name);
        let stored = s.get_verification("VE1").await.unwrap().unwrap();
        assert_eq!((stored.status, stored.attempts, stored.version, stored.approved_at), (Status::Approved, 1, 1, approved.approved_at));
        // Not pending any more: the number is free for a new one.
        assert_eq!(s.find_pending_verification(&svc, &v.to).await.unwrap(), None);
        s.insert_verification(&twin).await.unwrap();
    }
}

#[tokio::test]
async fn parallel_compare_and_swap_has_exactly_one_winner() {
    for b in backends().await {
        let svc = service(b.store.as_ref(), "race").await;
        let v = verification("VErace", &svc, "+4915100000002");
        b.store.insert_verification(&v).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = b.store.clone();
                let mut mine = v.clone();
                mine.attempts = i + 1;
                tokio::spawn(async move { store.update_verification(&mine, 0).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += t.await.unwrap() as u32;
        }
        assert_eq!(winners, 1, "{}", b.name);
    }
}

#[tokio::test]
async fn expiry_sweep_takes_only_overdue_pending_rows() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "exp").await;
        let mut early = verification("VEearly", &svc, "+4915100000003");
        early.expires_at = t0() + Duration::minutes(1);
        s.insert_verification(&early).await.unwrap();
        s.insert_verification(&verification("VElate", &svc, "+4915100000004")).await.unwrap();
        let expired = s.expire_due_verifications(t0() + Duration::minutes(2), 100).await.unwrap();
        assert_eq!(expired, vec![(svc.clone(), Channel::Sms)], "{}", b.name);
        let e = s.get_verification("VEearly").await.unwrap().unwrap();
        assert_eq!((e.status, e.expired_at, e.version), (Status::Expired, Some(early.expires_at), 1));
        assert_eq!(s.get_verification("VElate").await.unwrap().unwrap().status, Status::Pending);
        assert!(s.expire_due_verifications(t0() + Duration::minutes(2), 100).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn services_keys_secrets_and_outbox() {
    for b in backends().await {
        let s = b.store.as_ref();
        let id = service(s, "Shop").await;
        assert_eq!(s.get_service("Shop").await.unwrap().unwrap().id, id);
        assert_eq!(s.get_service(&id).await.unwrap().unwrap().name, "Shop");
        let dup = ServiceSettings { name: "Shop".into(), ..Default::default() }.into_service(t0()).unwrap();
        assert!(matches!(s.insert_service(&dup).await, Err(StoreError::Conflict)), "{}", b.name);
        service(s, "Alpha").await;
        let names: Vec<String> = s.list_services().await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["Alpha", "Shop"]);

        let (key, secret) = apikey::generate("ci", t0());
        s.insert_api_key(&key).await.unwrap();
        assert_eq!(apikey::authenticate_secret(s, &secret).await.unwrap().map(|k| k.id), Some(key.id.clone()));
        assert_eq!(apikey::authenticate_pair(s, &key.id, &secret).await.unwrap().map(|k| k.name), Some("ci".into()));
        assert!(apikey::authenticate_pair(s, &key.id, "wrong").await.unwrap().is_none());
        assert!(s.revoke_api_key(&key.id, t0()).await.unwrap());
        assert!(!s.revoke_api_key(&key.id, t0()).await.unwrap());
        assert!(apikey::authenticate_secret(s, &secret).await.unwrap().is_none());
        assert_eq!(s.list_api_keys().await.unwrap()[0].revoked_at, Some(t0()));

        let first = s.get_or_create_secret("k", b"one").await.unwrap();
        assert_eq!(first, b"one");
        assert_eq!(s.get_or_create_secret("k", b"two").await.unwrap(), b"one", "{}", b.name);

        for (i, to) in ["+491", "+492", "+491"].iter().enumerate() {
            let m = OutboxMessage {
                id: format!("SM{i}"),
                to: to.to_string(),
                body: format!("body {i}"),
                verification_id: None,
                created_at: t0(),
            };
            s.push_outbox(&m).await.unwrap();
        }
        let bodies: Vec<String> = s.list_outbox(Some("+491"), 10).await.unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["body 2", "body 0"], "{}: newest first", b.name);
        assert_eq!(s.list_outbox(None, 2).await.unwrap().len(), 2);
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

#[tokio::test]
async fn the_message_queue_claims_leases_and_receipts() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "q").await;
        s.insert_verification(&verification("VEq", &svc, "+4915100000009")).await.unwrap();
        // SMa is written already claimed by its sender (tok1), SMb queued.
        let tok1 = Lease { token: "tok1".into(), until: t0() + Duration::seconds(60) };
        s.insert_message(&Message { status: DeliveryStatus::Sending, claims: 1, ..message("SMa", "VEq") }, Some(&tok1)).await.unwrap();
        s.insert_message(&message("SMb", "VEq"), None).await.unwrap();
        let lease = t0() + Duration::seconds(60);

        let due: Vec<String> = s.claim_due_messages(t0(), t0(), lease, "tok3", 10).await.unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(due, ["SMb"], "{}: SMa is held by tok1", b.name);
        s.insert_message(&Message { created_at: t0() + Duration::seconds(5), ..message("SMc", "VEq") }, None).await.unwrap();
        let young = s.claim_due_messages(t0() + Duration::seconds(5), t0(), lease, "tok5", 10).await.unwrap();
        assert!(young.is_empty(), "{}: a message newer than queued_before is left to its sender", b.name);

        // After the lease, another sender may take it over; the old holder can no longer finish.
        let later = t0() + Duration::seconds(61);
        let taken = s.claim_due_messages(later, later, later + Duration::seconds(60), "tok4", 10).await.unwrap();
        assert_eq!(taken.len(), 3, "{}", b.name);
        let sent = MessageResult {
            status: DeliveryStatus::Sent,
            provider: Some("tw".into()),
            provider_message_id: Some("P1".into()),
            error: None,
        };
        assert!(!s.finish_message("SMa", "tok1", &sent, later).await.unwrap(), "{}: stale token", b.name);
        assert!(s.finish_message("SMa", "tok4", &sent, later).await.unwrap());

        let delivered = s.apply_receipt("P1", DeliveryStatus::Delivered, None, later).await.unwrap().unwrap();
        assert_eq!((delivered.status, delivered.provider.as_deref()), (DeliveryStatus::Delivered, Some("tw")));
        assert!(s.apply_receipt("P1", DeliveryStatus::Sent, None, later).await.unwrap().is_none(), "{}: never backwards", b.name);
        assert!(s.apply_receipt("unknown", DeliveryStatus::Delivered, None, later).await.unwrap().is_none());
        let listed: Vec<(String, DeliveryStatus)> =
            s.list_messages_for_verification("VEq").await.unwrap().into_iter().map(|m| (m.id, m.status)).collect();
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
async fn parallel_claims_never_hand_out_a_message_twice() {
    for b in backends().await {
        let svc = service(b.store.as_ref(), "pq").await;
        b.store.insert_verification(&verification("VEpq", &svc, "+4915100000010")).await.unwrap();
        for i in 0..30 {
            b.store.insert_message(&message(&format!("SM{i:02}"), "VEpq"), None).await.unwrap();
        }
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = b.store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = store.claim_due_messages(t0(), t0(), t0() + Duration::seconds(60), &format!("w{w}"), 3).await.unwrap();
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
        assert!(!s.is_opted_out(&n).await.unwrap());
        s.set_opted_out(&n, true, t0()).await.unwrap();
        s.set_opted_out(&n, true, t0()).await.unwrap();
        assert!(s.is_opted_out(&n).await.unwrap(), "{}", b.name);
        s.set_opted_out(&n, false, t0()).await.unwrap();
        assert!(!s.is_opted_out(&n).await.unwrap());

        let inbound = InboundMessage {
            id: "IM1".into(),
            provider: "twilio".into(),
            provider_message_id: "SMx".into(),
            from: n.clone(),
            to: "+1".into(),
            body: "STOP".into(),
            received_at: t0(),
        };
        s.insert_inbound(&inbound, Some(true)).await.unwrap();
        assert!(s.is_opted_out(&n).await.unwrap(), "{}: stored and applied together", b.name);
        let again = InboundMessage { id: "IM2".into(), body: "START".into(), ..inbound.clone() };
        assert!(matches!(s.insert_inbound(&again, Some(false)).await, Err(StoreError::Conflict)), "{}", b.name);
        assert!(s.is_opted_out(&n).await.unwrap(), "{}: a duplicate changes nothing", b.name);
        let other_provider = InboundMessage { id: "IM3".into(), provider: "vonage".into(), ..inbound };
        s.insert_inbound(&other_provider, Some(false)).await.unwrap();
        assert!(!s.is_opted_out(&n).await.unwrap());
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
        s.insert_verification(&old).await.unwrap();
        s.insert_message(&message("SMold", "VEold"), None).await.unwrap();
        s.insert_verification(&verification("VEpending", &svc, "+4915100000021")).await.unwrap();
        let mut recent = verification("VErecent", &svc, "+4915100000022");
        recent.status = Status::Expired;
        recent.updated_at = t0() + Duration::days(40);
        s.insert_verification(&recent).await.unwrap();

        let purged = s.purge_before(t0() + Duration::days(30), 100).await.unwrap();
        assert_eq!(purged, 1, "{}", b.name);
        assert!(s.get_verification("VEold").await.unwrap().is_none());
        assert!(s.list_messages_for_verification("VEold").await.unwrap().is_empty());
        assert!(s.get_verification("VEpending").await.unwrap().is_some(), "{}: pending rows stay", b.name);
        assert!(s.get_verification("VErecent").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn early_receipts_are_held_until_a_message_carries_their_id() {
    for b in backends().await {
        let s = b.store.as_ref();
        assert!(s.hold_receipt("P9", DeliveryStatus::Sent, None, t0()).await.unwrap(), "{}", b.name);
        assert!(s.hold_receipt("P9", DeliveryStatus::Delivered, Some("late"), t0()).await.unwrap(), "{}: the latest wins", b.name);
        assert_eq!(s.take_held_receipt("P9").await.unwrap(), Some((DeliveryStatus::Delivered, Some("late".into()))));
        assert_eq!(s.take_held_receipt("P9").await.unwrap(), None, "{}: taken once", b.name);

        let svc = service(s, "er").await;
        s.insert_verification(&verification("VEer", &svc, "+4915100000030")).await.unwrap();
        s.insert_message(
            &Message { provider_message_id: Some("P10".into()), status: DeliveryStatus::Sent, ..message("SMer", "VEer") },
            None,
        )
        .await
        .unwrap();
        assert!(!s.hold_receipt("P10", DeliveryStatus::Delivered, None, t0()).await.unwrap(), "{}: a message carries P10", b.name);
        assert_eq!(s.take_held_receipt("P10").await.unwrap(), None);
    }
}
