//! Events for the app: `user.created`, `user.phone_changed`, `user.email_changed`,
//! `user.password_changed`, `user.deleted`. Written in the same
//! transaction as the change (so none is lost or invented), then delivered to the configured
//! webhook by the queue worker, retried with growing pauses until the app answers 2xx.
use super::{Accounts, User};
use crate::error::VerifyError;
pub use crate::model::account_event::AccountEvent;
use crate::model::ids::new_id;
use crate::ports::{self, Tx};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;

/// Where events go (the app's webhook).
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Delivers one event; an error (for the logs, never with a secret) means "try again later".
    async fn deliver(&self, event: &AccountEvent) -> Result<(), String>;
}

/// Deliveries given up after this many attempts (about two days of pauses).
const MAX_ATTEMPTS: u32 = 12;

impl Accounts {
    /// Queues an event about `user` inside the unit that changed it (nothing without a webhook).
    pub(super) fn emit(&self, tx: &mut dyn Tx, kind: &str, user: &User, now: DateTime<Utc>) -> Result<(), VerifyError> {
        if self.events.is_none() {
            return Ok(());
        }
        let id = new_id("ev");
        let payload = serde_json::json!({
            "id": id,
            "type": kind,
            "created_at": now,
            "data": {
                "user_id": user.id,
                "username": user.username,
                "phone_number": user.phone.as_str(),
                "email": user.email,
                "email_verified": user.email_verified,
            },
        });
        let event = AccountEvent { id, kind: kind.into(), payload: payload.to_string(), created_at: now, attempts: 0 };
        tx.insert_account_event(&event, now)?;
        Ok(())
    }

    /// Delivers up to `batch` due events; returns how many were delivered. Several instances
    /// never deliver the same event at once.
    pub async fn deliver_events(&self, batch: u32) -> Result<usize, VerifyError> {
        let Some(sink) = self.events.clone() else { return Ok(0) };
        let (now, token) = (self.now(), new_id("LT"));
        let lease_until = now + chrono::Duration::seconds(60);
        let t = token.clone();
        let due =
            ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.claim_account_events(now, lease_until, &t, batch)?))
                .await?;
        let mut delivered = 0;
        for event in due {
            // One trace per delivery (the worker's claim above is not traced on its own).
            let (kind, attempt) = (&event.kind, event.attempts + 1);
            let span = tracing::debug_span!(parent: None, "accounts.deliver_event", event = %event.id, %kind, attempt);
            let result = sink.deliver(&event).instrument(span.clone()).await;
            let attempts = event.attempts + 1;
            let (done, due_at) = match &result {
                Ok(()) => (true, now),
                Err(e) => {
                    tracing::warn!(event = %event.id, kind = %event.kind, attempts, error = %e, "account event not delivered");
                    // 30 s, 1 min, 2 min… capped at 6 h; given up after MAX_ATTEMPTS.
                    let pause = 30i64 << (attempts - 1).min(10);
                    (attempts >= MAX_ATTEMPTS, now + chrono::Duration::seconds(pause.min(6 * 3600)))
                }
            };
            delivered += usize::from(result.is_ok());
            let (id, t, finished) = (event.id.clone(), token.clone(), self.now());
            ports::write(self.ctx.store.as_ref(), move |tx| {
                Ok::<_, VerifyError>(tx.finish_account_event(&id, &t, attempts, due_at, done.then_some(finished))?)
            })
            .instrument(span)
            .await?;
        }
        Ok(delivered)
    }
}
