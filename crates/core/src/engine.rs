//! The verification engine: starts, resends, checks, cancels and expires verifications by
//! loading a record, applying the state machine and writing it back with compare-and-swap.
use crate::clock::Clock;
use crate::code::{self, Code, ServerKeys};
use crate::delivery::DispatchOutcome;
use crate::error::VerifyError;
use crate::ids::new_id;
use crate::phone::{PhoneNumber, PhonePolicy};
use crate::ports::{Observer, SmsSender, Store, StoreError};
use crate::service::{self, DEFAULT_SERVICE, Service, ServiceSettings};
use crate::verification::{CancelRefusal, Channel, CheckOutcome, SendRefusal, Status, Verification};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

pub use crate::verification::Limits;

/// How often a write that lost a race is retried before the caller is told to retry.
const MAX_RACES: usize = 64;

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
    pub(crate) delivery: DeliveryTimes,
    /// Services by id and by name. Services never change once created, so entries stay valid
    /// on every instance.
    services: Arc<std::sync::RwLock<std::collections::HashMap<String, Service>>>,
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
    /// ISO 3166 region for a number written in national format.
    pub region: Option<String>,
    /// When a verification is already pending for the number: report it as
    /// `VerifyError::AlreadyPending` instead of re-sending its code (Vonage's behaviour).
    pub refuse_if_pending: bool,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub verification: Verification,
    /// True when an already pending verification was sent again instead of a new one.
    pub resent: bool,
    /// The message this start queued (`SM…`) and when.
    pub message_id: String,
    pub queued_at: DateTime<Utc>,
}

pub struct VerifierParts {
    pub store: Arc<dyn Store>,
    pub sender: Arc<dyn SmsSender>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    pub keys: ServerKeys,
    pub phones: PhonePolicy,
    pub limits: Limits,
    pub delivery: DeliveryTimes,
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
            delivery: p.delivery,
            services: Default::default(),
        }
    }

    /// Creates the default service if it does not exist yet.
    pub async fn ensure_default_service(&self) -> Result<Service, VerifyError> {
        match self.create_service(ServiceSettings { name: DEFAULT_SERVICE.into(), ..Default::default() }).await {
            Ok(s) => Ok(s),
            Err(VerifyError::ServiceNameTaken) => self.service(Some(DEFAULT_SERVICE)).await,
            Err(e) => Err(e),
        }
    }

    pub async fn create_service(&self, settings: ServiceSettings) -> Result<Service, VerifyError> {
        let service = settings.into_service(self.clock.now())?;
        match self.store.insert_service(&service).await {
            Ok(()) => Ok(service),
            Err(StoreError::Conflict) => Err(VerifyError::ServiceNameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// A service by id or name; the default service for `None`.
    pub async fn service(&self, id_or_name: Option<&str>) -> Result<Service, VerifyError> {
        let key = id_or_name.unwrap_or(DEFAULT_SERVICE);
        if let Some(s) = self.services.read().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(s);
        }
        let service = self.store.get_service(key).await?.ok_or(VerifyError::ServiceNotFound)?;
        self.remember_service(&service);
        Ok(service)
    }

    fn remember_service(&self, s: &Service) {
        if let Ok(mut m) = self.services.write() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(s.id.clone(), s.clone());
            // A name shaped like an id must not shadow another service's id.
            if !crate::ids::is_id("VA", &s.name) {
                m.insert(s.name.clone(), s.clone());
            }
        }
    }

    pub fn parse_phone(&self, raw: &str) -> Result<PhoneNumber, VerifyError> {
        Ok(self.phones.parse(raw)?)
    }

    /// Starts a verification, or re-sends the pending one for the same service and number
    /// (same id, same code) within the send limit.
    pub async fn start(&self, req: StartRequest) -> Result<Started, VerifyError> {
        let to = match &req.options.region {
            Some(region) => {
                let region = crate::phone::parse_region(region)
                    .ok_or_else(|| VerifyError::invalid("country", "must be an ISO 3166-1 region code"))?;
                PhonePolicy { default_region: Some(region), ..self.phones.clone() }.parse(&req.to)?
            }
            None => self.parse_phone(&req.to)?,
        };
        let opts = &req.options;
        if opts.code_length.is_some_and(|l| !(code::MIN_LENGTH..=code::MAX_LENGTH).contains(&l)) {
            return Err(VerifyError::invalid("code_length", "must be between 4 and 10"));
        }
        if opts.ttl_secs.is_some_and(|t| !(service::MIN_TTL_SECS..=service::MAX_TTL_SECS).contains(&t)) {
            return Err(VerifyError::invalid("ttl", "must be between 60 and 86400 seconds"));
        }
        if opts.max_attempts.is_some_and(|m| m == 0 || m > self.limits.max_attempts) {
            return Err(VerifyError::invalid("max_attempts", format!("must be between 1 and {}", self.limits.max_attempts)));
        }
        if opts.brand.as_deref().is_some_and(|b| b.trim().is_empty() || b.chars().count() > 64 || b.chars().any(char::is_control)) {
            return Err(VerifyError::invalid("brand", "must be 1 to 64 printable characters"));
        }
        let locale = req.locale.as_deref().map(service::normalize_locale).transpose()?;
        let service = self.service(req.service.as_deref()).await?;
        if self.store.is_opted_out(&to).await? {
            return Err(VerifyError::OptedOut);
        }
        for _ in 0..MAX_RACES {
            let now = self.clock.now();
            let code_length = opts.code_length.unwrap_or(service.code_length);
            let code = Code::generate(code_length);
            let id = new_id("VE");
            let fresh = Verification {
                code_digest: self.keys.digest(&id, code.expose()),
                code_sealed: self.keys.seal(&id, &code),
                id,
                service_id: service.id.clone(),
                to: to.clone(),
                channel: req.channel,
                locale: locale.clone().unwrap_or_else(|| "en".into()),
                status: Status::Pending,
                code_length,
                attempts: 0,
                max_attempts: opts.max_attempts.unwrap_or(self.limits.max_attempts),
                brand: opts.brand.clone(),
                sends: 1,
                send_window_started_at: now,
                created_at: now,
                updated_at: now,
                expires_at: now + opts.ttl_secs.map(chrono::Duration::seconds).unwrap_or_else(|| service.code_ttl()),
                approved_at: None,
                canceled_at: None,
                expired_at: None,
                max_attempts_reached_at: None,
                failed_at: None,
                failure_reason: None,
                version: 0,
            };
            // Most starts are for a number with nothing pending: try the insert first; the unique
            // index on pending verifications says when there is one.
            match self.store.insert_verification(&fresh).await {
                Ok(()) => {
                    self.observer.verification_entered(&service.id, fresh.channel, Status::Pending);
                    let (verification, message_id, queued_at) = self.deliver(&service, fresh, &code, false).await?;
                    return Ok(Started { verification, resent: false, message_id, queued_at });
                }
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            // A verification is pending for this number: send it again (or report it).
            if let Some(mut pending) = self.store.find_pending_verification(&service.id, &to).await? {
                if opts.refuse_if_pending && pending.status_at(now) == Status::Pending {
                    return Err(VerifyError::AlreadyPending { verification_id: pending.id });
                }
                let version = pending.version;
                match pending.register_send(now, &self.limits) {
                    Ok(()) => {}
                    Err(SendRefusal::TooManySends) => return Err(VerifyError::MaxSendsReached),
                    Err(SendRefusal::NotPending(_)) => {
                        // It expired just now: record that, then start afresh.
                        if self.write(&mut pending, version).await? {
                            self.observer.verification_entered(&pending.service_id, pending.channel, pending.status);
                        }
                        continue;
                    }
                }
                if let Some(l) = &locale {
                    pending.locale.clone_from(l);
                }
                if !self.write(&mut pending, version).await? {
                    continue;
                }
                let code = self
                    .keys
                    .open(&pending.id, &pending.code_sealed)
                    .ok_or_else(|| VerifyError::Store(StoreError::Other("sealed code does not open with the server secret".into())))?;
                let (verification, message_id, queued_at) = self.deliver(&service, pending, &code, true).await?;
                return Ok(Started { verification, resent: true, message_id, queued_at });
            }
        }
        Err(VerifyError::Busy)
    }

    /// Queues the message, then waits (boundedly) for the first provider answer. A first send
    /// that every provider refuses marks the verification failed; a failed resend leaves it
    /// pending (the earlier message may still arrive).
    async fn deliver(
        &self,
        service: &Service,
        v: Verification,
        code: &Code,
        resend: bool,
    ) -> Result<(Verification, String, DateTime<Utc>), VerifyError> {
        let body = service.render_as(v.brand.as_deref().unwrap_or(&service.name), &v.locale, code.expose());
        let (message, lease) = self.enqueue(&v, &service.name, &body, resend).await?;
        let (message_id, queued_at) = (message.id.clone(), message.created_at);
        let this = self.clone();
        let sending = tokio::spawn(async move { this.send_claimed(message, &lease.token).await });
        match tokio::time::timeout(self.delivery.send_wait, sending).await {
            Ok(Ok(Ok(DispatchOutcome::Failed(reason)))) => Err(VerifyError::DeliveryFailed { verification_id: v.id, reason }),
            Ok(Ok(Err(e))) => Err(e),
            // Sent, or still sending in the background.
            _ => Ok((v, message_id, queued_at)),
        }
    }

    /// Checks a code against a verification by id.
    pub async fn check(&self, id: &str, code: &str) -> Result<(Verification, CheckOutcome), VerifyError> {
        for _ in 0..MAX_RACES {
            let mut v = self.store.get_verification(id).await?.ok_or(VerifyError::VerificationNotFound)?;
            if !code::is_well_formed(code, v.code_length) {
                return Err(VerifyError::invalid("code", format!("must be {} digits", v.code_length)));
            }
            let before = v.clone();
            let matches = self.keys.matches(&v.id, code, &v.code_digest);
            let outcome = v.check(matches, self.clock.now());
            if v != before {
                if !self.write(&mut v, before.version).await? {
                    continue;
                }
                if v.status != before.status {
                    self.observer.verification_entered(&v.service_id, v.channel, v.status);
                }
            }
            return Ok((v, outcome));
        }
        Err(VerifyError::Busy)
    }

    /// Checks a code against the pending verification for a number.
    pub async fn check_number(&self, service: Option<&str>, to: &str, code: &str) -> Result<(Verification, CheckOutcome), VerifyError> {
        let to = self.parse_phone(to)?;
        let service = self.service(service).await?;
        let pending = self.store.find_pending_verification(&service.id, &to).await?;
        let v = pending.ok_or(VerifyError::NoPendingVerification)?;
        self.check(&v.id, code).await
    }

    /// Reads a verification, recording its expiry if the deadline has passed.
    pub async fn get(&self, id: &str) -> Result<Verification, VerifyError> {
        for _ in 0..MAX_RACES {
            let mut v = self.store.get_verification(id).await?.ok_or(VerifyError::VerificationNotFound)?;
            let version = v.version;
            if !v.expire_if_due(self.clock.now()) {
                return Ok(v);
            }
            if self.write(&mut v, version).await? {
                self.observer.verification_entered(&v.service_id, v.channel, v.status);
                return Ok(v);
            }
        }
        Err(VerifyError::Busy)
    }

    pub async fn cancel(&self, id: &str) -> Result<Verification, VerifyError> {
        self.transition(id, |v, now| v.cancel(now).map_err(VerifyError::NotPending)).await
    }

    /// Cancels a verification only once it is at least `min_age` old (Vonage's rule).
    pub async fn cancel_once_older_than(&self, id: &str, min_age: chrono::Duration) -> Result<Verification, VerifyError> {
        self.transition(id, |v, now| {
            v.cancel_once_older_than(now, min_age).map_err(|refusal| match refusal {
                CancelRefusal::NotPending(status) => VerifyError::NotPending(status),
                CancelRefusal::TooEarly => VerifyError::TooEarlyToCancel { min_age_secs: min_age.num_seconds() },
            })
        })
        .await
    }

    /// Approves a pending verification without a code (an administrator's decision).
    pub async fn approve(&self, id: &str) -> Result<Verification, VerifyError> {
        self.transition(id, |v, now| v.approve_out_of_band(now).map_err(VerifyError::NotPending)).await
    }

    async fn transition(
        &self,
        id: &str,
        apply: impl Fn(&mut Verification, DateTime<Utc>) -> Result<(), VerifyError>,
    ) -> Result<Verification, VerifyError> {
        for _ in 0..MAX_RACES {
            let mut v = self.store.get_verification(id).await?.ok_or(VerifyError::VerificationNotFound)?;
            let version = v.version;
            let expired = v.expire_if_due(self.clock.now());
            if let Err(refused) = apply(&mut v, self.clock.now()) {
                if expired && self.write(&mut v, version).await? {
                    self.observer.verification_entered(&v.service_id, v.channel, v.status);
                }
                return Err(refused);
            }
            if self.write(&mut v, version).await? {
                self.observer.verification_entered(&v.service_id, v.channel, v.status);
                return Ok(v);
            }
        }
        Err(VerifyError::Busy)
    }

    /// Deletes ended verifications (and their messages) last changed more than `retention` ago.
    pub async fn purge_old(&self, retention: chrono::Duration, batch: u32) -> Result<u64, VerifyError> {
        Ok(self.store.purge_before(self.clock.now() - retention, batch).await?)
    }

    /// Expires every overdue pending verification (the background sweep).
    pub async fn expire_due(&self, batch: u32) -> Result<usize, VerifyError> {
        let expired = self.store.expire_due_verifications(self.clock.now(), batch).await?;
        for (service_id, channel) in &expired {
            self.observer.verification_entered(service_id, *channel, Status::Expired);
        }
        Ok(expired.len())
    }

    /// Compare-and-swap write; on success the in-memory record carries the new version.
    async fn write(&self, v: &mut Verification, expected_version: i64) -> Result<bool, VerifyError> {
        let written = self.store.update_verification(v, expected_version).await?;
        if written {
            v.version = expected_version + 1;
        }
        Ok(written)
    }
}
