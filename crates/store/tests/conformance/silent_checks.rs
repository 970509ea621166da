//! Silent checks: every field round trips, uniqueness, the sweep's due checks.
use super::*;

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
