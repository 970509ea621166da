//! The audit log's pages: positions (time, then id) bound them exactly, events of the same
//! millisecond included, with the time range and filters still applied.
use super::{backends, t0};
use chrono::Duration;
use phonegate_core::audit::{AuditEvent, AuditPosition, AuditQuery};
use phonegate_core::ports;

fn event(id: &str, ms: i64, kind: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        at: t0() + Duration::milliseconds(ms),
        kind: kind.into(),
        key_id: None,
        actor: None,
        ip: None,
        request_id: "rq".into(),
        subject: None,
        detail: "test".into(),
    }
}

#[tokio::test]
async fn audit_events_page_by_position_before_and_after() {
    for b in backends().await {
        let s = b.store.as_ref();
        // AU1..AU3 at 0 ms, AU4..AU6 at 1 ms, AU7 (another kind) at 2 ms; newest first: 7, 6, 5…
        let events: Vec<AuditEvent> = (1..=7).map(|i| event(&format!("AU{i}"), (i - 1) / 3, if i == 7 { "x" } else { "login" })).collect();
        ports::write(s, move |tx| events.iter().try_for_each(|e| tx.insert_audit_event(e))).await.unwrap();
        let ids = |q: AuditQuery| async move {
            let events = ports::read(s, move |tx| tx.audit_events(&q)).await.unwrap();
            events.into_iter().map(|e| e.id).collect::<Vec<_>>()
        };
        let at = |id: &str, ms: i64| Some(AuditPosition { at: t0() + Duration::milliseconds(ms), id: id.into() });

        assert_eq!(
            ids(AuditQuery { limit: 10, ..Default::default() }).await,
            ["AU7", "AU6", "AU5", "AU4", "AU3", "AU2", "AU1"],
            "{}",
            b.name
        );
        // Before AU5 (1 ms): AU4 of the same millisecond, then the older ones.
        assert_eq!(ids(AuditQuery { limit: 3, before: at("AU5", 1), ..Default::default() }).await, ["AU4", "AU3", "AU2"], "{}", b.name);
        // After AU2 (0 ms): the three just newer, still newest first.
        assert_eq!(ids(AuditQuery { limit: 3, after: at("AU2", 0), ..Default::default() }).await, ["AU5", "AU4", "AU3"], "{}", b.name);
        // Both at once: between them.
        let between = AuditQuery { limit: 10, before: at("AU6", 1), after: at("AU2", 0), ..Default::default() };
        assert_eq!(ids(between).await, ["AU5", "AU4", "AU3"], "{}", b.name);
        // With the filters and the time range.
        let login = AuditQuery { kind: Some("login".into()), limit: 10, before: at("AU7", 2), ..Default::default() };
        assert_eq!(ids(login.clone()).await.len(), 6, "{}", b.name);
        let until = Some(t0() + Duration::milliseconds(1));
        assert_eq!(ids(AuditQuery { until, ..login }).await, ["AU3", "AU2", "AU1"], "{}", b.name);
        assert!(ids(AuditQuery { limit: 10, before: at("AU1", 0), ..Default::default() }).await.is_empty(), "{}", b.name);
    }
}
