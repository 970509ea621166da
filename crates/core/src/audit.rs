//! The audit log: security events (budget breaches and lockouts, refused destinations, forged
//! webhooks, keys and services created or revoked), who caused them and when. Readable by admin
//! keys only. Events that an attacker can cause at will are recorded once per kind and subject
//! per minute on each instance, so the log cannot be turned into a write flood.
use crate::engine::Verifier;
use crate::error::VerifyError;
pub use crate::model::audit::{AuditEvent, AuditQuery};
use crate::model::caller::Caller;
use crate::model::ids::new_id;
use crate::ports;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// When each (kind, subject) was last recorded by this instance.
#[derive(Default)]
pub(crate) struct Recent(Mutex<HashMap<(String, String), DateTime<Utc>>>);

impl Recent {
    /// True when the event should be written now (not seen in the last minute).
    fn admit(&self, kind: &str, subject: &str, now: DateTime<Utc>) -> bool {
        let Ok(mut seen) = self.0.lock() else { return true };
        if seen.len() > 10_000 {
            seen.clear();
        }
        let key = (kind.to_string(), subject.to_string());
        match seen.get(&key) {
            Some(at) if now - *at < chrono::Duration::minutes(1) => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

impl Verifier {
    /// Records a security event (best effort: a failure to record is logged, never returned).
    pub async fn audit(&self, caller: &Caller, kind: &str, subject: Option<&str>, detail: &str) {
        if self.recent_audits.admit(kind, subject.unwrap_or_default(), self.clock.now()) {
            self.record(caller, kind, subject, detail).await;
        }
    }

    /// Records an event every time (for what a user does to their own account, which an
    /// attacker cannot repeat at will: sign-ups, logins, logouts).
    pub async fn record(&self, caller: &Caller, kind: &str, subject: Option<&str>, detail: &str) {
        let event = self.event(caller, kind, subject, detail);
        let written = ports::write(self.store.as_ref(), move |tx| tx.insert_audit_event(&event)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, kind, "an audit event could not be recorded");
        }
    }

    /// The event `audit` would record, for a unit of work to write with its own changes; `None`
    /// when the same event was recorded within the last minute.
    pub(crate) fn audit_in_unit(&self, caller: &Caller, kind: &str, subject: Option<&str>, detail: &str) -> Option<AuditEvent> {
        self.recent_audits.admit(kind, subject.unwrap_or_default(), self.clock.now()).then(|| self.event(caller, kind, subject, detail))
    }

    fn event(&self, caller: &Caller, kind: &str, subject: Option<&str>, detail: &str) -> AuditEvent {
        let now = self.clock.now();
        self.observer.audit_event(kind);
        tracing::info!(kind, request = %caller.request_id, "audit event");
        AuditEvent {
            id: new_id("AU"),
            at: now,
            kind: kind.into(),
            key_id: caller.key_id.clone(),
            actor: caller.actor(),
            ip: caller.end_user_ip.or(caller.ip).map(|ip| ip.to_string()),
            request_id: caller.request_id.clone(),
            subject: subject.map(str::to_string),
            detail: detail.into(),
        }
    }

    /// Passes `result` on, first recording what a refusal says about an attack, if anything.
    pub(crate) async fn audited<T>(&self, caller: &Caller, subject: &str, result: Result<T, VerifyError>) -> Result<T, VerifyError> {
        let Err(e) = &result else { return result };
        match e {
            VerifyError::OverBudget { budget: crate::budget::Budget::FailedChecksPerNumber, .. } => {
                self.audit(caller, "checks_locked", Some(subject), "too many wrong codes for this number").await;
            }
            VerifyError::OverBudget { budget: crate::budget::Budget::PrefixThrottled, .. } => {
                self.audit(caller, "prefix_throttled", Some(subject), "many codes sent into this prefix, few used").await;
            }
            VerifyError::OverBudget { budget, .. } => self.audit(caller, "budget_exceeded", Some(subject), budget.as_str()).await,
            VerifyError::Phone(crate::model::phone::PhoneError::DestinationNotAllowed) => {
                self.audit(caller, "destination_refused", Some(subject), "denied range or country").await;
            }
            _ => {}
        }
        result
    }

    /// The audit log, newest first. Admins only.
    pub async fn audit_events(&self, caller: &Caller, query: AuditQuery) -> Result<Vec<AuditEvent>, VerifyError> {
        caller.require_admin()?;
        let limit = query.limit.clamp(1, 1000);
        ports::read(self.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.audit_events(&AuditQuery { limit, ..query })?)).await
    }
}
