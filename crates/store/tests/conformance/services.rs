//! Services change and are deleted: a deleted one is found by nothing, its name is free, its
//! pending verifications are canceled with it, and a unit that holds it takes turns with its
//! delete.
use super::*;
use phonegate_core::Service;

async fn stored(s: &dyn Store, id_or_name: &str) -> Option<Service> {
    let key = id_or_name.to_string();
    read!(s, [key], |tx| tx.service(&key)).unwrap()
}

#[tokio::test]
async fn services_are_updated_and_deleted_with_their_pending_verifications() {
    for b in backends().await {
        let s = b.store.as_ref();
        let id = service(s, "Shop").await;
        service(s, "Alpha").await;
        let locked = write!(s, [id], |tx| tx.lock_service(&id)).unwrap().unwrap();
        assert_eq!(locked.name, "Shop");

        let changed = Service {
            code_length: 8,
            templates: [("de".to_string(), "Code {code}".to_string())].into(),
            friendly_name: Some("Shop!".into()),
            psd2: true,
            updated_at: t0() + Duration::minutes(1),
            ..locked.clone()
        };
        assert!(write!(s, [changed], |tx| tx.update_service(&changed)).unwrap(), "{}", b.name);
        assert_eq!(stored(s, &id).await.as_ref(), Some(&changed), "{}: every setting round-trips", b.name);
        let taken = Service { name: "Alpha".into(), ..changed.clone() };
        assert!(matches!(write!(s, [taken], |tx| tx.update_service(&taken)), Err(StoreError::Conflict)), "{}", b.name);
        let nobody = Service { id: "VAnobody".into(), ..changed.clone() };
        assert!(!write!(s, [nobody], |tx| tx.update_service(&nobody)).unwrap());

        // One pending, one pending past its deadline, one ended.
        let now = t0() + Duration::minutes(5);
        insert(s, &verification("VEsvc1", &id, "+4915100000201")).await;
        let mut overdue = verification("VEsvc2", &id, "+4915100000202");
        overdue.expires_at = now;
        insert(s, &overdue).await;
        let mut ended = verification("VEsvc3", &id, "+4915100000203");
        ended.status = Status::Approved;
        insert(s, &ended).await;

        assert!(write!(s, [id], |tx| tx.hold_service(&id)).unwrap());
        let canceled = write!(s, [id], |tx| tx.delete_service(&id, now)).unwrap();
        assert_eq!(canceled, Some(vec![Channel::Sms]), "{}", b.name);
        let v = get(s, "VEsvc1").await.unwrap();
        assert_eq!((v.status, v.canceled_at, v.updated_at, v.version), (Status::Canceled, Some(now), now, 1), "{}", b.name);
        assert_eq!(get(s, "VEsvc2").await.unwrap().status, Status::Pending, "{}: the sweep expires it", b.name);
        assert_eq!(get(s, "VEsvc3").await.unwrap().status, Status::Approved);

        assert_eq!((stored(s, &id).await, stored(s, "Shop").await), (None, None), "{}", b.name);
        let names: Vec<String> = read!(s, [], |tx| tx.services()).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["Alpha"]);
        assert!(!write!(s, [id], |tx| tx.hold_service(&id)).unwrap());
        assert_eq!(write!(s, [id], |tx| tx.lock_service(&id)).unwrap(), None);
        assert_eq!(write!(s, [id], |tx| tx.delete_service(&id, now)).unwrap(), None, "{}: deleted once", b.name);
        assert!(!write!(s, [changed], |tx| tx.update_service(&changed)).unwrap());

        // The name is free again, and two deleted services of one name do not collide.
        let again = service(s, "Shop").await;
        assert!(write!(s, [again], |tx| tx.delete_service(&again, now)).unwrap().is_some(), "{}", b.name);
        service(s, "Shop").await;
    }
}

/// A unit holding a service and its delete take turns, in either order: no verification is left
/// pending for a deleted service.
#[tokio::test]
async fn a_held_service_and_its_delete_take_turns() {
    for b in backends().await {
        // The holder first: the delete waits for it, then cancels what it started.
        let id = service(b.store.as_ref(), "held").await;
        let (opened, open) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let (s, id) = (b.store.clone(), id.clone());
            async move {
                write!(s.as_ref(), [], |tx| {
                    assert!(tx.hold_service(&id)?);
                    let _ = opened.send(());
                    let _ = released.recv();
                    tx.insert_verification(&verification("VEheld", &id, "+4915100000211"))
                })
            }
        });
        open.await.unwrap();
        let delete = tokio::spawn({
            let (s, id) = (b.store.clone(), id.clone());
            async move { write!(s.as_ref(), [], |tx| tx.delete_service(&id, t0() + Duration::minutes(1))) }
        });
        // Gives the delete time to reach the lock (it passes either way once released).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        release.send(()).unwrap();
        assert!(holder.await.unwrap().unwrap());
        assert_eq!(delete.await.unwrap().unwrap(), Some(vec![Channel::Sms]), "{}", b.name);
        assert_eq!(get(b.store.as_ref(), "VEheld").await.unwrap().status, Status::Canceled, "{}", b.name);

        // The delete first: the holder waits for it, then finds the service gone.
        let id = service(b.store.as_ref(), "deleting").await;
        let (opened, open) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let delete = tokio::spawn({
            let (s, id) = (b.store.clone(), id.clone());
            async move {
                write!(s.as_ref(), [], |tx| {
                    tx.lock_service(&id)?;
                    let canceled = tx.delete_service(&id, t0());
                    let _ = opened.send(());
                    let _ = released.recv();
                    canceled
                })
            }
        });
        open.await.unwrap();
        let holder = tokio::spawn({
            let (s, id) = (b.store.clone(), id.clone());
            async move { write!(s.as_ref(), [], |tx| tx.hold_service(&id)) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        release.send(()).unwrap();
        assert_eq!(delete.await.unwrap().unwrap(), Some(vec![]));
        assert!(!holder.await.unwrap().unwrap(), "{}: the holder sees the committed delete", b.name);
    }
}
