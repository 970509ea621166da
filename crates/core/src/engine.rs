//! The verification engine: starts, resends, checks, cancels and expires verifications. Each use
//! case is one unit of work: it loads the record (locked until commit), applies the state machine
//! and writes the record and its message in the same transaction.
use crate::audit::AuditKind;
use crate::budget::{Budgets, Charge};
use crate::clock::Clock;
use crate::code::{Code, ServerKeys};
use crate::error::VerifyError;
use crate::model::caller::Caller;
use crate::model::ids::new_id;
use crate::model::message::{DeliveryStatus, Message};
use crate::model::phone::{PhoneNumber, PhonePolicy};
use crate::model::service::{DEFAULT_SERVICE, Service, ServiceSettings};
use crate::model::verification::{CancelRefusal, Channel, Status, Verification};
use crate::ports::{self, Lease, Observer, SmsSender, Store, StoreError, Tx};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

mod check;
pub(crate) use check::Guess;
pub(crate) use start::AlsoInUnit;
mod silent;
mod start;

pub use silent::{CoverageAnswer, SilentOutcome};

pub use crate::model::verification::Limits;

/// Cheap to clone: every part is shared, so a send can continue in the background.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) sender: Arc<dyn SmsSender>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) keys: ServerKeys,
    phones: PhonePolicy,
    limits: Limits,
    pub(crate) budgets: Arc<Budgets>,
    pub(crate) recent_audits: Arc<crate::audit::Recent>,
    pub(crate) delivery: DeliveryTimes,
    /// Services by id and by name. Services never change once created, so entries stay valid
    /// on every instance.
    services: Arc<std::sync::RwLock<std::collections::HashMap<String, Service>>>,
    /// Silent providers and their routing (none: `silent` is refused, `auto` is SMS).
    pub(crate) silent: Arc<crate::silent::SilentRoutes>,
    /// The service whose budgets a decoy's silent check charges (see `VerifierParts`).
    decoy_service: Arc<str>,
}

/// Bounds on sending.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryTimes {
    /// How long a start request waits for the first provider answer before returning 201 and
    /// leaving the send to the background.
    pub send_wait: Duration,
    /// How long a claimed message is held before another worker may take it over.
    pub lease: chrono::Duration,
}

impl Default for DeliveryTimes {
    fn default() -> Self {
        Self { send_wait: Duration::from_secs(5), lease: chrono::Duration::seconds(60) }
    }
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Service id or name; the default service when absent.
    pub service: Option<String>,
    pub to: String,
    pub channel: Channel,
    pub locale: Option<String>,
    /// Options for a new verification (ignored when a pending one is re-sent); each is
    /// validated against the same bounds as service settings.
    pub options: StartOptions,
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Digits in the code, 4 to 10 (default: the service's).
    pub code_length: Option<u8>,
    /// Code lifetime in seconds, 60 to 86400 (default: the service's).
    pub ttl_secs: Option<i64>,
    /// Check attempts, 1 to the server's limit (default: that limit).
    pub max_attempts: Option<u32>,
    /// Name shown in the message instead of the service's name.
    pub brand: Option<String>,
    /// Android SMS Retriever app hash: 11 characters of base64 (`A-Z a-z 0-9 + /`).
    pub app_hash: Option<String>,
    /// The code itself, 4 to 10 digits, where the service allows custom codes.
    pub custom_code: Option<String>,
    /// A payment code's amount and payee, where the service sends PSD2 codes.
    pub psd2: Option<crate::model::psd2::Psd2>,
    /// ISO 3166 region for a number written in national format.
    pub region: Option<String>,
    /// When a verification is already pending for the number: report it as
    /// `VerifyError::AlreadyPending` instead of re-sending its code (Vonage's behaviour).
    pub refuse_if_pending: bool,
    /// phonegate's own page a silent check's device returns to (a login flow's page).
    pub silent_return: Option<String>,
    /// Answer as soon as the message is queued, without waiting for the provider (the send
    /// goes on in the background).
    pub background: bool,
    /// Runs the start's unit of work and rolls it back: nothing is stored or sent. What a decoy
    /// does, so that it costs the same work and time as a real start (the answer is
    /// `VerifyError::Rehearsed`). The budgets are left out: the decoy takes them in its own unit,
    /// as a real flow's start does in this one.
    pub rehearse: bool,
    /// Asked by a recognised device of the number's holder (`accounts::device`): the number's
    /// send budget is its own (`budget::Guesser`), and strangers' resends of the pending code do
    /// not use up its sends.
    pub recognised: bool,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub verification: Verification,
    /// True when an already pending verification was sent again instead of a new one.
    pub resent: bool,
    /// The message this start queued (`SM…`; none while a silent check waits for the device)
    /// and when.
    pub message_id: Option<String>,
    pub queued_at: DateTime<Utc>,
    /// The silent check of a `silent` or `auto` verification, and the path of the device's
    /// `check_url` (given out only here, and only while the check waits for the device).
    pub silent: Option<crate::silent::SilentCheck>,
    pub check_url: Option<String>,
}

pub struct VerifierParts {
    pub store: Arc<dyn Store>,
    pub sender: Arc<dyn SmsSender>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    pub keys: ServerKeys,
    pub phones: PhonePolicy,
    pub limits: Limits,
    pub budgets: Budgets,
    pub delivery: DeliveryTimes,
    pub silent: crate::silent::SilentRoutes,
    /// The service whose budgets a decoy's silent check charges: the service of the flows that
    /// make decoys (the accounts service), so a decoy costs what a real check there would.
    pub decoy_service: String,
}

/// A verification the caller may see; another tenant's does not exist for it.
pub(crate) fn visible(caller: &Caller, v: Option<Verification>) -> Result<Verification, VerifyError> {
    v.filter(|v| caller.may_see(&v.service_id)).ok_or(VerifyError::VerificationNotFound)
}

/// Refuses what cannot be a code of any verification, before any is looked up.
/// The text of a verification's message: the service's template (a payment code's text for
/// PSD2) in its language, and the Android SMS Retriever hash alone on the last line.
fn message_body(service: &Service, v: &Verification, code: &Code) -> String {
    let name = v.brand.as_deref().unwrap_or(&service.name);
    let body = match &v.psd2 {
        None => service.render_as(name, &v.locale, code.expose()),
        Some(p) => crate::model::locales::psd2(&v.locale)
            .replace("{service}", name)
            .replace("{amount}", &p.amount)
            .replace("{payee}", &p.payee)
            .replace("{code}", code.expose()),
    };
    match &v.app_hash {
        Some(hash) => format!("{body}\n\n{hash}"),
        None => body,
    }
}

impl Verifier {
    /// The automatic prefix throttle, for a code to a new number: refused while the current or
    /// the previous window sent many codes into the prefix and few were used; else counted.
    fn throttle(&self, tx: &mut dyn Tx, (new, approved): &(Charge, Charge), now: DateTime<Utc>) -> Result<(), VerifyError> {
        let (start, end) = new.rate.window(now);
        let windows = [start, start - new.rate.secs];
        let [sent, used] = tx.budgets_used(new, approved, windows)?;
        for (i, window) in windows.into_iter().enumerate() {
            if self.budgets.trips_throttle(sent[i], used[i]) {
                let until = if window == start { end + chrono::Duration::seconds(new.rate.secs) } else { end };
                tracing::warn!(prefix = %new.subject, sent = sent[i], "prefix throttled: many codes, few used");
                return Err(VerifyError::OverBudget {
                    budget: crate::budget::Budget::PrefixThrottled,
                    retry_after_secs: (until - now).num_seconds().max(1),
                });
            }
        }
        count(tx, new, now)
    }
}

/// Adds one to a limitless counter the throttle reads, kept for two windows (it looks back one).
fn count(tx: &mut dyn Tx, c: &Charge, now: DateTime<Utc>) -> Result<(), VerifyError> {
    let (start, end) = c.rate.window(now);
    tx.take_budget(c, start, rand::random::<u32>() % crate::budget::SHARDS, end + chrono::Duration::seconds(c.rate.secs))?;
    Ok(())
}

/// Takes one from each charge's counter, or refuses with the first budget that has nothing left
/// (the unit's rollback returns what was taken before it).
pub(crate) fn charge(tx: &mut dyn Tx, charges: &[Charge], now: DateTime<Utc>) -> Result<(), VerifyError> {
    for c in charges {
        let (start, end) = c.rate.window(now);
        let shard = rand::random::<u32>() % crate::budget::SHARDS;
        if !tx.take_budget(c, start, shard, end)? {
            tracing::info!(budget = c.budget.as_str(), rate = %c.rate, "over budget");
            return Err(c.refusal(now));
        }
    }
    Ok(())
}

impl Verifier {
    pub fn new(p: VerifierParts) -> Self {
        Self {
            store: p.store,
            sender: p.sender,
            clock: p.clock,
            observer: p.observer,
            keys: p.keys,
            phones: p.phones,
            limits: p.limits,
            budgets: Arc::new(p.budgets),
            recent_audits: Default::default(),
            delivery: p.delivery,
            services: Default::default(),
            silent: Arc::new(p.silent),
            decoy_service: p.decoy_service.into(),
        }
    }

    /// Creates the default service if it does not exist yet.
    pub async fn ensure_default_service(&self) -> Result<Service, VerifyError> {
        let caller = Caller::system("start-up");
        match self.create_service(&caller, ServiceSettings { name: DEFAULT_SERVICE.into(), ..Default::default() }).await {
            Ok(s) => Ok(s),
            Err(VerifyError::ServiceNameTaken) => self.service(&caller, Some(DEFAULT_SERVICE)).await,
            Err(e) => Err(e),
        }
    }

    pub async fn create_service(&self, caller: &Caller, settings: ServiceSettings) -> Result<Service, VerifyError> {
        caller.require_admin()?;
        let service = settings.into_service(self.clock.now())?;
        let s = service.clone();
        ports::write(self.store.as_ref(), move |tx| if tx.insert_service(&s)? { Ok(()) } else { Err(VerifyError::ServiceNameTaken) })
            .await?;
        self.audit(caller, AuditKind::ServiceCreated, Some(&service.id), "service created").await;
        Ok(service)
    }

    /// Creates a service, or, when one of that name exists with the same settings and the caller
    /// may see it, answers that one: an app that creates its service at every boot (as Twilio
    /// allows) keeps working. A name in use with other settings is still `ServiceNameTaken`.
    pub async fn create_or_reuse_service(&self, caller: &Caller, settings: ServiceSettings) -> Result<Service, VerifyError> {
        let wanted = settings.clone().into_service(self.clock.now())?;
        match self.create_service(caller, settings).await {
            Err(VerifyError::ServiceNameTaken) => {
                let existing = self.service(caller, Some(&wanted.name)).await.map_err(|_| VerifyError::ServiceNameTaken)?;
                let same = existing.name == wanted.name
                    && existing.code_length == wanted.code_length
                    && existing.code_ttl_secs == wanted.code_ttl_secs
                    && existing.templates == wanted.templates;
                if same { Ok(existing) } else { Err(VerifyError::ServiceNameTaken) }
            }
            other => other,
        }
    }

    /// A service by id or name, as the caller may see it (another tenant's does not exist for
    /// it); for `None`, the default service, or a service key's first service.
    pub async fn service(&self, caller: &Caller, id_or_name: Option<&str>) -> Result<Service, VerifyError> {
        let key = match (id_or_name, &caller.scope) {
            (Some(k), _) => k.to_string(),
            (None, crate::model::caller::Scope::Services(ids)) => ids.first().cloned().ok_or(VerifyError::ServiceNotFound)?,
            (None, _) => DEFAULT_SERVICE.to_string(),
        };
        let cached = self.services.read().ok().and_then(|m| m.get(&key).cloned());
        let service = match cached {
            Some(s) => s,
            None => {
                let s = ports::read(self.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.service(&key)?))
                    .await?
                    .ok_or(VerifyError::ServiceNotFound)?;
                self.remember_service(&s);
                s
            }
        };
        if !caller.may_see(&service.id) {
            return Err(VerifyError::ServiceNotFound);
        }
        Ok(service)
    }

    /// Every service the caller may see, by name.
    pub async fn services(&self, caller: &Caller) -> Result<Vec<Service>, VerifyError> {
        let all = ports::read(self.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.services()?)).await?;
        Ok(all.into_iter().filter(|s| caller.may_see(&s.id)).collect())
    }

    fn remember_service(&self, s: &Service) {
        if let Ok(mut m) = self.services.write() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(s.id.clone(), s.clone());
            // A name shaped like an id must not shadow another service's id.
            if !crate::model::ids::is_id("VA", &s.name) {
                m.insert(s.name.clone(), s.clone());
            }
        }
    }

    pub fn parse_phone(&self, raw: &str) -> Result<PhoneNumber, VerifyError> {
        Ok(self.phones.parse(raw)?)
    }

    /// Sends a text that is not a code (an invitation) to `to` for the service `service`: it
    /// costs what a code would in every send budget, and goes through the same queue.
    pub async fn send_text(&self, caller: &Caller, service: &Service, to: &PhoneNumber, body: String) -> Result<String, VerifyError> {
        if !self.budgets.destination_allowed(&service.name, to) {
            return Err(crate::model::phone::PhoneError::DestinationNotAllowed.into());
        }
        let now = self.clock.now();
        let budgets = self.budgets.for_service(&service.name);
        let charges = budgets.for_send(to.as_str(), &to.calling_code(), caller.key_id.as_deref(), &service.id);
        let (message, lease) = self.claimed_message(service, to, None, &body, false, now);
        let id = message.id.clone();
        let (m, l) = (message.clone(), lease.clone());
        ports::write(self.store.as_ref(), move |tx| {
            if tx.is_opted_out(&m.to)? {
                return Err(VerifyError::OptedOut);
            }
            charge(tx, &charges, now)?;
            tx.insert_message(&m, Some(&l))?;
            Ok(())
        })
        .await?;
        let this = self.clone();
        tokio::spawn(async move { this.send_claimed(message, &lease.token).await });
        Ok(id)
    }

    /// Writes the message carrying `code` for `v`, already claimed by the caller, who sends it
    /// right after the commit.
    fn queue(
        &self,
        tx: &mut dyn Tx,
        service: &Service,
        v: &Verification,
        code: &Code,
        resend: bool,
        now: DateTime<Utc>,
    ) -> Result<(Message, Lease), VerifyError> {
        let body = message_body(service, v, code);
        let (message, lease) = self.claimed_message(service, &v.to, Some(v.id.clone()), &body, resend, now);
        tx.insert_message(&message, Some(&lease))?;
        Ok((message, lease))
    }

    /// A new message, its body sealed, claimed by the caller (who sends it after the commit).
    fn claimed_message(
        &self,
        service: &Service,
        to: &PhoneNumber,
        verification_id: Option<String>,
        body: &str,
        resend: bool,
        now: DateTime<Utc>,
    ) -> (Message, Lease) {
        let id = new_id("SM");
        let lease = Lease { token: new_id("LT"), until: now + self.delivery.lease };
        let message = Message {
            body_sealed: self.keys.seal_text(&id, body),
            id,
            verification_id,
            service: Some(service.name.clone()),
            to: to.clone(),
            resend,
            status: DeliveryStatus::Sending,
            provider: None,
            provider_message_id: None,
            error: None,
            claims: 1,
            created_at: now,
            updated_at: now,
        };
        (message, lease)
    }

    /// The pending verification for a number in a service.
    pub async fn pending(&self, caller: &Caller, service: Option<&str>, to: &str) -> Result<Verification, VerifyError> {
        let to = self.parse_phone(to)?;
        let service = self.service(caller, service).await?;
        let now = self.clock.now();
        ports::read(self.store.as_ref(), move |tx| {
            let v = tx.pending_verification(&service.id, &to)?;
            v.filter(|v| v.status_at(now) == Status::Pending).ok_or(VerifyError::NoPendingVerification)
        })
        .await
    }

    /// The newest `silent` verification of a number in a service, whatever its status.
    pub async fn latest_silent(&self, caller: &Caller, service: Option<&str>, to: &str) -> Result<Verification, VerifyError> {
        let to = self.parse_phone(to)?;
        let service = self.service(caller, service).await?;
        let now = self.clock.now();
        let mut v = ports::read(self.store.as_ref(), move |tx| {
            tx.latest_silent_verification(&service.id, &to)?.ok_or(VerifyError::NoPendingVerification)
        })
        .await?;
        v.expire_if_due(now);
        Ok(v)
    }

    /// Reads a verification. One whose deadline has passed is reported expired (the sweep
    /// records it); reading never writes.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        let (id, caller) = (id.to_string(), caller.clone());
        let mut v = ports::read(self.store.as_ref(), move |tx| visible(&caller, tx.verification(&id)?)).await?;
        v.expire_if_due(self.clock.now());
        Ok(v)
    }

    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        self.transition(caller, id, |v, now| v.cancel(now).map_err(VerifyError::NotPending)).await
    }

    /// Cancels a verification only once it is at least `min_age` old (Vonage's rule).
    pub async fn cancel_once_older_than(&self, caller: &Caller, id: &str, min_age: chrono::Duration) -> Result<Verification, VerifyError> {
        self.transition(caller, id, move |v, now| {
            v.cancel_once_older_than(now, min_age).map_err(|refusal| match refusal {
                CancelRefusal::NotPending(status) => VerifyError::NotPending(status),
                CancelRefusal::TooEarly => VerifyError::TooEarlyToCancel { min_age_secs: min_age.num_seconds() },
            })
        })
        .await
    }

    /// Approves a pending verification without a code (an administrator's decision).
    pub async fn approve(&self, caller: &Caller, id: &str) -> Result<Verification, VerifyError> {
        self.transition(caller, id, |v, now| v.approve_out_of_band(now).map_err(VerifyError::NotPending)).await
    }

    /// Loads, applies `apply` and writes back, in one unit of work. A refusal writes nothing.
    async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        apply: impl FnOnce(&mut Verification, DateTime<Utc>) -> Result<(), VerifyError> + Send + 'static,
    ) -> Result<Verification, VerifyError> {
        let (id, now, caller) = (id.to_string(), self.clock.now(), caller.clone());
        let v = ports::write(self.store.as_ref(), move |tx| {
            let mut v = visible(&caller, tx.verification(&id)?)?;
            apply(&mut v, now)?;
            save(tx, &mut v)?;
            Ok::<_, VerifyError>(v)
        })
        .await?;
        self.observer.verification_entered(&v.service_id, v.channel, v.status);
        Ok(v)
    }

    /// Deletes ended verifications (and their messages) last changed more than `retention` ago.
    pub async fn purge_old(&self, retention: chrono::Duration, batch: u32) -> Result<u64, VerifyError> {
        let cutoff = self.clock.now() - retention;
        ports::write(self.store.as_ref(), move |tx| Ok(tx.purge_before(cutoff, batch)?)).await
    }

    /// Expires every overdue pending verification (the background sweep).
    pub async fn expire_due(&self, batch: u32) -> Result<usize, VerifyError> {
        let now = self.clock.now();
        let expired: Vec<(String, Channel)> =
            ports::write(self.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.expire_due_verifications(now, batch)?)).await?;
        for (service_id, channel) in &expired {
            self.observer.verification_entered(service_id, *channel, Status::Expired);
        }
        Ok(expired.len())
    }
}

/// Writes a verification the unit holds locked; the in-memory record carries the new version.
pub(crate) fn save(tx: &mut dyn Tx, v: &mut Verification) -> Result<(), StoreError> {
    tx.update_verification(v)?;
    v.version += 1;
    Ok(())
}
