//! Paging through the audit log: pages of older events follow each other without a repeat or a
//! gap (events of the same millisecond too), pages of newer events lead back the same way, and
//! the filters hold on every page.
use crate::harness::{Core, admin};
use chrono::Duration;
use phonegate_core::audit::{AuditKind, AuditPage, AuditQuery};

/// 23 events, three of each millisecond: `login` events and every fourth an `invite_created`.
async fn log(core: &Core) {
    for i in 0..23 {
        let kind = if i % 4 == 0 { AuditKind::InviteCreated } else { AuditKind::Login };
        core.services.audit.record(&admin(), kind, Some(&format!("subject{i}")), "test").await;
        if i % 3 == 2 {
            core.advance(Duration::milliseconds(1));
        }
    }
}

fn ids(page: &AuditPage) -> Vec<String> {
    page.events.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn pages_of_the_audit_log_neither_repeat_nor_skip_an_event() {
    let core = Core::new().await;
    log(&core).await;
    let audit = &core.services.audit;
    let all = audit.events(&admin(), AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert!(all.len() >= 23, "the test's events and what the setup recorded");
    let all: Vec<String> = all.into_iter().map(|e| e.id).collect();

    // Older and older, five at a time; the last page has no older one.
    let mut pages = vec![audit.page(&admin(), AuditQuery { limit: 5, ..Default::default() }).await.unwrap()];
    assert_eq!(pages[0].newer, None, "the first page is the newest");
    while let Some(older) = pages.last().unwrap().older.clone() {
        pages.push(audit.page(&admin(), AuditQuery { limit: 5, before: Some(older), ..Default::default() }).await.unwrap());
    }
    let sizes: Vec<usize> = all.chunks(5).map(<[String]>::len).collect();
    assert_eq!(pages.iter().map(|p| p.events.len()).collect::<Vec<_>>(), sizes);
    assert_eq!(pages.iter().flat_map(ids).collect::<Vec<_>>(), all);

    // Newer and newer from the last page: the same pages again, up to the first.
    let mut back = vec![pages.last().unwrap().clone()];
    while let Some(newer) = back.last().unwrap().newer.clone() {
        back.push(audit.page(&admin(), AuditQuery { limit: 5, after: Some(newer), ..Default::default() }).await.unwrap());
    }
    back.reverse();
    assert_eq!(back.iter().map(ids).collect::<Vec<_>>(), pages.iter().map(ids).collect::<Vec<_>>());

    // A filter holds on every page: 6 invites, in pages of 4 and 2.
    let invites = AuditQuery { kind: Some("invite_created".into()), limit: 4, ..Default::default() };
    let first = audit.page(&admin(), invites.clone()).await.unwrap();
    let second = audit.page(&admin(), AuditQuery { before: first.older.clone(), ..invites }).await.unwrap();
    assert_eq!((first.events.len(), second.events.len(), second.older.clone()), (4, 2, None));
    assert!(first.events.iter().chain(&second.events).all(|e| e.kind == "invite_created"));
}

#[tokio::test]
async fn a_page_of_newer_events_that_reaches_the_newest_is_the_first_page() {
    let core = Core::new().await;
    log(&core).await;
    let audit = &core.services.audit;
    let first = audit.page(&admin(), AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    // From the third event, only two are newer: the first page (ten events) again.
    let third = phonegate_core::audit::AuditPosition::of(&first.events[2]);
    let page = audit.page(&admin(), AuditQuery { limit: 10, after: Some(third), ..Default::default() }).await.unwrap();
    assert_eq!(page, first);
    // Reading the log is for admins.
    let user = phonegate_core::Caller::end_user(None, "tests");
    assert!(audit.page(&user, AuditQuery { limit: 10, ..Default::default() }).await.is_err());
}
