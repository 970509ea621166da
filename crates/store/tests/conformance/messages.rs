//! The message queue, opt-outs, inbound messages, retention and budget counters.
use super::*;

pub(crate) fn message(id: &str, verification_id: &str) -> Message {
    Message {
        id: id.into(),
        verification_id: Some(verification_id.into()),
        service: Some("q".into()),
        to: Recipient::from_trusted("+4915100000009".into()),
        channel: Channel::Sms,
        step: None,
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
async fn the_outbox_lists_the_messages_the_outbox_provider_took_and_test_numbers_were_given_newest_first() {
    for b in backends().await {
        let s = b.store.as_ref();
        let svc = service(s, "o").await;
        assert!(insert(s, &verification("VEo", &svc, "+4915100000009")).await);
        let lease = Lease { token: "t".into(), until: t0() + Duration::seconds(60) };
        let to = |n: &str| PhoneNumber::from_trusted(n.into());
        for (i, (number, provider)) in [
            ("+4915100000009", "outbox"),
            ("+4915100000008", "outbox"),
            ("+4915100000009", "outbox"),
            ("+4915100000009", "tw"),
            ("+4915100000009", "test"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("SMo{i}");
            let m = Message {
                to: to(number).into(),
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
        queue(s, Message { to: to("+4915100000009").into(), ..message("SMqueued", "VEo") }, None).await;
        let ids = async |number: Option<&'static str>, limit| -> Vec<String> {
            read!(s, [], |tx| tx.outbox(number, limit)).unwrap().into_iter().map(|m| m.id).collect()
        };
        assert_eq!(ids(Some("+4915100000009"), 10).await, ["SMo4", "SMo2", "SMo0"], "{}: the outbox's own, newest first", b.name);
        assert_eq!(ids(None, 2).await, ["SMo4", "SMo2"], "{}", b.name);
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
