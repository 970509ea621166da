//! Status callbacks: a verification started by a key with an application that has a status URL
//! is watched; once it ends, the application gets Vonage's `summary`, and a silent check waiting
//! for the device gets an `event` at once. Rows are queued in the database, claimed with a lease
//! (two instances never send one twice at once) and retried with growing pauses until the app
//! answers 2xx, as account events are.
use super::VonageV2;
use crate::caller::Caller;
use crate::error::VerifyError;
use crate::model::ids::new_id;
use crate::model::message::Message;
use crate::model::verification::{Channel, Status, Verification};
use crate::model::vonage::{CallbackKind, VonageApp, VonageCallback, request_id};
use crate::ports;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tracing::Instrument;

/// Where callbacks go: POSTs `body` to `url`, signed with `secret` when there is one.
#[async_trait]
pub trait CallbackSink: Send + Sync {
    /// An error (for the logs, never with a secret) means "try again later".
    async fn deliver(&self, url: &str, application_id: &str, secret: Option<&SecretString>, body: &str) -> Result<(), String>;
}

/// What a summary tells beyond the verification itself.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Watch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    pub channel_timeout: u32,
    /// The workflow's channels as the request named them (`silent_auth`, `sms`…).
    pub channels: Vec<String>,
    /// The app checked the code a matched silent check's device was handed.
    #[serde(default)]
    pub redeemed: bool,
}

/// Deliveries given up after this many attempts (pauses of 30 s doubling to 6 h: about 14.5 hours).
const MAX_ATTEMPTS: u32 = 12;
/// How long a key's application is read from memory.
const APP_CACHE: std::time::Duration = std::time::Duration::from_secs(2);
/// A claim's lease: far longer than a round (the sink's timeout, with every callback sent at once).
const LEASE_SECS: i64 = 120;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl VonageV2 {
    /// The application of the caller's key, when it has a status URL.
    /// Read through a short-lived cache: a start costs no read for it, and a change made at
    /// another instance applies there within `APP_CACHE` (at once here).
    async fn notified_app(&self, caller: &Caller) -> Result<Option<VonageApp>, VerifyError> {
        let Some(key) = caller.key_id.clone() else { return Ok(None) };
        let cached =
            self.apps_of_keys.lock().ok().and_then(|m| m.get(&key).filter(|(_, at)| at.elapsed() < APP_CACHE).map(|(a, _)| a.clone()));
        let app = match cached {
            Some(app) => app,
            None => {
                let k = key.clone();
                let app = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.vonage_app_of_key(&k)?)).await?;
                if let Ok(mut m) = self.apps_of_keys.lock() {
                    if m.len() > 10_000 {
                        m.clear();
                    }
                    m.insert(key, (app.clone(), std::time::Instant::now()));
                }
                app
            }
        };
        Ok(app.filter(|a| a.status_url.is_some()))
    }

    /// Watches a verification the caller started: its summary goes to the caller's application
    /// once it ends (nothing when the key has no application with a status URL).
    pub async fn watch(&self, caller: &Caller, verification_id: &str, watch: &Watch) -> Result<(), VerifyError> {
        let Some(app) = self.notified_app(caller).await? else { return Ok(()) };
        let payload = serde_json::to_string(watch).unwrap_or_default();
        self.queue(app, verification_id, CallbackKind::Summary, payload).await
    }

    /// Sends an `event` about a verification the caller started, at once.
    pub async fn event(&self, caller: &Caller, verification_id: &str, mut body: Value) -> Result<(), VerifyError> {
        let Some(app) = self.notified_app(caller).await? else { return Ok(()) };
        body["request_id"] = request_id(verification_id).into();
        body["triggered_at"] = time(self.ctx.now()).into();
        body["type"] = "event".into();
        self.queue(app, verification_id, CallbackKind::Event, body.to_string()).await
    }

    async fn queue(&self, app: VonageApp, verification_id: &str, kind: CallbackKind, payload: String) -> Result<(), VerifyError> {
        let now = self.ctx.now();
        let c = VonageCallback {
            id: new_id("CB"),
            app_id: app.id,
            verification_id: verification_id.to_string(),
            kind,
            payload,
            created_at: now,
            attempts: 0,
        };
        ports::write(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.insert_vonage_callback(&c, now)?)).await
    }

    /// Delivers up to `batch` callbacks that can go now, all at once (each within the sink's
    /// timeout, far inside the claim's lease, so no other instance takes one meanwhile); returns
    /// how many were delivered.
    pub async fn deliver_callbacks(&self, batch: u32) -> Result<usize, VerifyError> {
        let Some(sink) = self.sink.clone() else { return Ok(0) };
        let (now, token) = (self.ctx.now(), new_id("LT"));
        let lease_until = now + chrono::Duration::seconds(LEASE_SECS);
        let t = token.clone();
        let due = ports::write(self.ctx.store.as_ref(), move |tx| {
            Ok::<_, VerifyError>(tx.claim_vonage_callbacks(now, lease_until, &t, batch)?)
        })
        .await?;
        let rounds = due.into_iter().map(|c| {
            let (this, sink, token) = (self.clone(), sink.clone(), token.clone());
            let span = tracing::debug_span!(parent: None, "vonage.deliver_callback", callback = %c.id, kind = c.kind.as_str(), attempt = c.attempts + 1);
            tokio::spawn(async move { this.deliver_and_record(sink.as_ref(), &c, &token, now).await }.instrument(span))
        });
        let mut delivered = 0;
        for round in rounds.collect::<Vec<_>>() {
            match round.await {
                Ok(Ok(true)) => delivered += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "a status callback's attempt could not be recorded"),
                Err(e) => tracing::warn!(error = %e, "a status callback's delivery stopped"),
            }
        }
        Ok(delivered)
    }

    /// One claimed callback: sent (or held back), and the attempt recorded by the claim holder.
    async fn deliver_and_record(
        &self,
        sink: &dyn CallbackSink,
        c: &VonageCallback,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, VerifyError> {
        let result = self.deliver_one(sink, c).await;
        let (attempts, done, due_at) = match &result {
            Ok(Sent::Yes) => (c.attempts + 1, true, now),
            // Not to be told yet: due again then, no attempt spent.
            Ok(Sent::Later(at)) => (c.attempts, false, *at),
            Err(e) => {
                let attempts = c.attempts + 1;
                tracing::warn!(callback = %c.id, attempts, error = %e, "status callback not delivered");
                // 30 s, 1 min, 2 min… capped at 6 h; given up after MAX_ATTEMPTS.
                let pause = 30i64 << (attempts - 1).min(10);
                (attempts, attempts >= MAX_ATTEMPTS, now + chrono::Duration::seconds(pause.min(6 * 3600)))
            }
        };
        let (id, t, finished) = (c.id.clone(), token.to_string(), self.ctx.now());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            Ok::<_, VerifyError>(tx.finish_vonage_callback(&id, &t, attempts, due_at, done.then_some(finished))?)
        })
        .await?;
        Ok(matches!(result, Ok(Sent::Yes)))
    }

    async fn deliver_one(&self, sink: &dyn CallbackSink, c: &VonageCallback) -> Result<Sent, String> {
        let (app_id, vid) = (c.app_id.clone(), c.verification_id.clone());
        let found = ports::read(self.ctx.store.as_ref(), move |tx| {
            let app = tx.vonage_app(&app_id)?;
            let v = tx.verification(&vid)?;
            let messages = tx.messages_for_verification(&vid)?;
            let silent = tx.silent_check_of(&vid)?;
            Ok::<_, VerifyError>((app, v, messages, silent))
        })
        .await
        .map_err(|e| format!("reading the callback's verification failed: {e}"))?;
        let (Some(app), v, messages, silent) = found else { return Ok(Sent::Yes) };
        let Some(url) = app.status_url.clone() else { return Ok(Sent::Yes) };
        let now = self.ctx.now();
        let body = match (c.kind, v) {
            (CallbackKind::Event, _) => c.payload.clone(),
            (CallbackKind::Summary, Some(v)) => {
                let watch: Watch = serde_json::from_str(&c.payload).unwrap_or_default();
                // Matched by the operator, the request completes when the app checks the code
                // its device was handed (`silent.rs`): until then, or its end, nothing to tell.
                let matched = silent.is_some_and(|s| s.state == crate::silent::CheckState::Matched);
                let unredeemed = matched && v.status == Status::Approved && !watch.redeemed;
                if unredeemed && now < v.expires_at {
                    return Ok(Sent::Later(v.expires_at));
                }
                summary(&v, &messages, &watch, unredeemed, now).to_string()
            }
            // Its verification was deleted (retention): nothing to tell.
            (CallbackKind::Summary, None) => return Ok(Sent::Yes),
        };
        let secret = app.signature_secret_sealed.as_deref().and_then(|s| self.ctx.keys.open_text(&app.id, s)).map(SecretString::from);
        sink.deliver(&url, &app.id, secret.as_ref(), &body).await.map(|()| Sent::Yes)
    }
}

/// What became of a claimed callback.
enum Sent {
    Yes,
    /// Held back until then.
    Later(DateTime<Utc>),
}

/// Vonage's status of an ended verification.
fn final_status(status: Status) -> &'static str {
    match status {
        Status::Approved => "completed",
        Status::Pending => "in_progress",
        Status::Expired => "expired",
        // Vonage's summary knows three outcomes: a cancelled request did not complete.
        Status::Canceled => "failed",
        Status::MaxAttemptsReached | Status::Failed => "failed",
    }
}

/// The `summary` body: the request's outcome and each workflow step's.
/// `unredeemed`: approved by the operator, but the app never checked the code: it expired.
pub(crate) fn summary(v: &Verification, messages: &[Message], watch: &Watch, unredeemed: bool, now: DateTime<Utc>) -> Value {
    let status = if unredeemed { Status::Expired } else { v.status_at(now) };
    let finalized = if status == Status::Pending { None } else { Some(v.status_changed_at().min(v.expires_at).max(v.created_at)) };
    let silent_first = watch.channels.first().is_some_and(|c| c == "silent_auth");
    let mut workflow = Vec::new();
    for (i, name) in watch.channels.iter().enumerate() {
        // The code steps are the engine's steps; a silent first step comes before them.
        let step = if silent_first { i.checked_sub(1) } else { Some(i) };
        let sent = step.and_then(|s| messages.iter().find(|m| m.step == Some(s as u32) || (m.step.is_none() && s == 0)));
        let initiated = match step {
            None => Some(v.created_at),
            Some(_) => sent.map(|m| m.created_at),
        };
        let running = match step {
            None => v.channel == Channel::Silent || (v.channel == Channel::Auto && messages.is_empty()),
            Some(s) => s as u32 == v.step && sent.is_some(),
        };
        let step_status = match (initiated, running) {
            (None, _) => "unused",
            (Some(_), true) => final_status(status),
            (Some(_), false) if step.is_none() => "failed",
            (Some(_), false) => "expired",
        };
        let mut item = json!({ "channel": name, "status": step_status });
        if let Some(t) = initiated {
            item["initiated_at"] = time(t).into();
        }
        workflow.push(item);
    }
    let mut body = json!({
        "request_id": request_id(&v.id),
        "submitted_at": time(v.created_at),
        "triggered_at": time(now),
        "type": "summary",
        "status": final_status(status),
        "channel_timeout": watch.channel_timeout,
        "workflow": workflow,
    });
    if let Some(t) = finalized {
        body["finalized_at"] = time(t).into();
    }
    if let Some(r) = &watch.client_ref {
        body["client_ref"] = r.clone().into();
    }
    body
}
