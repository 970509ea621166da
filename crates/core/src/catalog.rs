//! The services (tenants): created, changed and deleted by admins, read by id or name through a
//! short-lived cache on every instance.
//!
//! **The cache.** A service read by id or name is kept for [`CACHE_TTL`]; the instance that
//! changes or deletes one drops it at once (and a read that raced the change is not kept), so every
//! instance sees a change within `CACHE_TTL`. That staleness cannot reach a running verification:
//! it keeps what its start read (`Verification::texts`, its code length and deadline), and a start
//! holds its service in its own unit (`ServiceWrites::hold_service`), so no verification starts
//! for a service once its delete has committed, whatever a cache still says.
use crate::audit::{Audit, AuditKind};
use crate::caller::Caller;
use crate::context::Context;
use crate::error::{StoreError, VerifyError};
use crate::model::service::{DEFAULT_SERVICE, Service, ServiceSettings};
use crate::model::verification::Status;
use crate::ports;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long an instance keeps a service it read: the longest another instance's change takes to
/// be seen here.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// The services the server itself finds by name (the default one, the accounts' and the
/// integrations'): they are neither deleted nor renamed.
pub const RESERVED: [&str; 3] = [DEFAULT_SERVICE, "accounts", "integrations"];

/// A change of a service's settings: what is `None` stays as it is; the rest is validated as on
/// create.
#[derive(Clone, Debug, Default)]
pub struct ServiceChanges {
    pub name: Option<String>,
    pub code_length: Option<u8>,
    pub code_ttl_secs: Option<i64>,
    /// Replaces the templates as a whole (an empty map removes them).
    pub templates: Option<BTreeMap<String, String>>,
    pub custom_codes: Option<bool>,
    pub psd2: Option<bool>,
    /// The default workflow, the e-mail sender and Reply-To, and whether calls wait for a key.
    pub workflow: Option<crate::model::workflow::Workflow>,
    pub email_from: Option<String>,
    pub email_reply_to: Option<String>,
    pub voice_key_press: Option<bool>,
    /// What a call says for its name, and its WhatsApp sender.
    pub voice_name: Option<String>,
    pub whatsapp_from: Option<String>,
    /// A `name` another service has is no refusal: the service takes a distinct name of its own
    /// (`Name-2`…) and is shown as `name` (Twilio allows two services of one FriendlyName). A
    /// `name` it is shown as already changes nothing.
    pub name_may_be_shared: bool,
}

struct Cached {
    service: Service,
    until: Instant,
}

#[derive(Clone)]
pub struct Catalog {
    ctx: Context,
    audit: Audit,
    /// Services by id and by name.
    cache: Arc<RwLock<HashMap<String, Cached>>>,
    /// Bumped by every change made here: a read begun before it is not cached.
    generation: Arc<AtomicU64>,
}

impl Catalog {
    pub fn new(ctx: Context, audit: Audit) -> Self {
        Self { ctx, audit, cache: Default::default(), generation: Default::default() }
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
        self.insert(caller, settings.into_service(self.ctx.now())?).await
    }

    async fn insert(&self, caller: &Caller, service: Service) -> Result<Service, VerifyError> {
        let s = service.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| if tx.insert_service(&s)? { Ok(()) } else { Err(VerifyError::ServiceNameTaken) })
            .await?;
        self.audit.record_once(caller, AuditKind::ServiceCreated, Some(&service.id), "service created").await;
        Ok(service)
    }

    /// Creates a service as Twilio does, where two services may have one name. When one the
    /// caller may see is shown under that name with the same settings, that one is answered: an
    /// app that creates its service at every boot keeps working. Otherwise the new service takes
    /// the name, or, when another service has it, a distinct one (`Name-2`…) and is shown under
    /// the name asked for (`Service::friendly_name`).
    pub async fn create_or_reuse_service(&self, caller: &Caller, settings: ServiceSettings) -> Result<Service, VerifyError> {
        let wanted = settings.clone().into_service(self.ctx.now())?;
        match self.create_service(caller, settings.clone()).await {
            Err(VerifyError::ServiceNameTaken) => {}
            other => return other,
        }
        let all = self.services(caller).await?;
        if let Some(same) = all.iter().find(|s| s.shown_name() == wanted.name && same_settings(s, &wanted)) {
            return Ok(same.clone());
        }
        let taken: HashSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        for attempt in 0..4 {
            let name = distinct_name(&wanted.name, &taken, attempt);
            let service = Service {
                friendly_name: Some(wanted.name.clone()),
                ..ServiceSettings { name, ..settings.clone() }.into_service(self.ctx.now())?
            };
            match self.insert(caller, service).await {
                Err(VerifyError::ServiceNameTaken) => continue,
                other => return other,
            }
        }
        Err(VerifyError::ServiceNameTaken)
    }

    /// Changes a service's settings (admins only; for anyone else, another tenant's service does
    /// not exist). Validated as on create; a name another service has is `ServiceNameTaken`
    /// (unless `name_may_be_shared`), and the reserved services keep their names
    /// (`ServiceReserved`). Verifications already started keep their rules.
    pub async fn update_service(&self, caller: &Caller, id_or_name: &str, changes: ServiceChanges) -> Result<Service, VerifyError> {
        let current = self.service(caller, Some(id_or_name)).await?;
        caller.require_admin()?;
        let names: Vec<(String, Option<String>)> = match &changes.name {
            Some(n) if changes.name_may_be_shared && n.trim() == current.shown_name() => vec![keep(&current)],
            Some(n) if changes.name_may_be_shared => {
                let all = self.services(caller).await?;
                let taken: HashSet<&str> = all.iter().filter(|s| s.id != current.id).map(|s| s.name.as_str()).collect();
                let wanted = n.trim().to_string();
                let mut names = vec![(wanted.clone(), None)];
                names.extend((0..4).map(|attempt| (distinct_name(&wanted, &taken, attempt), Some(wanted.clone()))));
                names
            }
            Some(n) => vec![(n.clone(), None)],
            None => vec![keep(&current)],
        };
        let last = names.len() - 1;
        for (i, (name, friendly_name)) in names.into_iter().enumerate() {
            match self.write_update(&current.id, &changes, name, friendly_name).await {
                Err(VerifyError::ServiceNameTaken) if i < last => continue,
                Ok(updated) => {
                    self.forget(&current.id);
                    self.audit.record(caller, AuditKind::ServiceUpdated, Some(&updated.id), "service updated").await;
                    return Ok(updated);
                }
                Err(e) => return Err(e),
            }
        }
        Err(VerifyError::ServiceNameTaken)
    }

    /// One update's unit: the service locked, the changes applied to it and validated, written.
    async fn write_update(
        &self,
        id: &str,
        changes: &ServiceChanges,
        name: String,
        friendly_name: Option<String>,
    ) -> Result<Service, VerifyError> {
        let (id, changes, now) = (id.to_string(), changes.clone(), self.ctx.now());
        ports::write(self.ctx.store.as_ref(), move |tx| {
            let current = tx.lock_service(&id)?.ok_or(VerifyError::ServiceNotFound)?;
            let updated = apply(&current, &changes, name, friendly_name, now)?;
            if updated.name != current.name && RESERVED.contains(&current.name.as_str()) {
                return Err(VerifyError::ServiceReserved);
            }
            match tx.update_service(&updated) {
                Ok(true) => Ok(updated),
                Ok(false) => Err(VerifyError::ServiceNotFound),
                Err(StoreError::Conflict) => Err(VerifyError::ServiceNameTaken),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Deletes a service (admins only; the reserved ones are `ServiceReserved`). In the same unit
    /// its pending verifications are canceled; from then on no API finds the service, none
    /// starts a verification for it, and its name is free. Its ended verifications stay readable
    /// by id (and are purged with the others).
    pub async fn delete_service(&self, caller: &Caller, id_or_name: &str) -> Result<Service, VerifyError> {
        let current = self.service(caller, Some(id_or_name)).await?;
        caller.require_admin()?;
        let (id, now) = (current.id.clone(), self.ctx.now());
        let canceled = ports::write(self.ctx.store.as_ref(), move |tx| {
            let service = tx.lock_service(&id)?.ok_or(VerifyError::ServiceNotFound)?;
            if RESERVED.contains(&service.name.as_str()) {
                return Err(VerifyError::ServiceReserved);
            }
            tx.delete_service(&id, now)?.ok_or(VerifyError::ServiceNotFound)
        })
        .await?;
        self.forget(&current.id);
        for channel in canceled {
            self.ctx.observer.verification_entered(&current.id, channel, Status::Canceled);
        }
        self.audit.record(caller, AuditKind::ServiceDeleted, Some(&current.id), "service deleted").await;
        Ok(current)
    }

    /// A service by id or name, as the caller may see it (another tenant's does not exist for
    /// it); for `None`, the default service, or a service key's first service.
    pub async fn service(&self, caller: &Caller, id_or_name: Option<&str>) -> Result<Service, VerifyError> {
        let key = match (id_or_name, &caller.scope) {
            (Some(k), _) => k.to_string(),
            (None, crate::caller::Scope::Services(ids)) => ids.first().cloned().ok_or(VerifyError::ServiceNotFound)?,
            (None, _) => DEFAULT_SERVICE.to_string(),
        };
        let now = Instant::now();
        let cached = self.cache.read().ok().and_then(|m| m.get(&key).filter(|c| c.until > now).map(|c| c.service.clone()));
        let service = match cached {
            Some(s) => s,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let s = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.service(&key)?))
                    .await?
                    .ok_or(VerifyError::ServiceNotFound)?;
                self.remember_service(&s, generation);
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
        let all = ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.services()?)).await?;
        Ok(all.into_iter().filter(|s| caller.may_see(&s.id)).collect())
    }

    /// Keeps `s` for `CACHE_TTL`, unless this instance changed a service since the read that
    /// found it began (it may be older than the change).
    fn remember_service(&self, s: &Service, read_at_generation: u64) {
        let Ok(mut m) = self.cache.write() else { return };
        if self.generation.load(Ordering::SeqCst) != read_at_generation {
            return;
        }
        if m.len() > 10_000 {
            m.clear();
        }
        let until = Instant::now() + CACHE_TTL;
        m.insert(s.id.clone(), Cached { service: s.clone(), until });
        // A name shaped like an id must not shadow another service's id.
        if !crate::model::ids::is_id("VA", &s.name) {
            m.insert(s.name.clone(), Cached { service: s.clone(), until });
        }
    }

    /// Drops service `id` from this instance's cache, under every key.
    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.cache.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            m.retain(|_, c| c.service.id != id);
        }
    }
}

/// The service's own name and friendly name, unchanged.
fn keep(s: &Service) -> (String, Option<String>) {
    (s.name.clone(), s.friendly_name.clone())
}

/// `current` with `changes`, named `name` and shown as `friendly_name`, validated as a new
/// service's settings are.
fn apply(
    current: &Service,
    changes: &ServiceChanges,
    name: String,
    friendly_name: Option<String>,
    now: DateTime<Utc>,
) -> Result<Service, VerifyError> {
    // Every setting listed: a new one must be decided here too.
    let settings = ServiceSettings {
        name,
        code_length: Some(changes.code_length.unwrap_or(current.code_length)),
        code_ttl_secs: Some(changes.code_ttl_secs.unwrap_or(current.code_ttl_secs)),
        templates: changes.templates.clone().unwrap_or_else(|| current.templates.clone()),
        custom_codes: changes.custom_codes.unwrap_or(current.custom_codes),
        psd2: changes.psd2.unwrap_or(current.psd2),
        channels: crate::model::service::ChannelSettings {
            workflow: changes.workflow.clone().unwrap_or_else(|| current.channels.workflow.clone()),
            email_from: changes.email_from.clone().or_else(|| current.channels.email_from.clone()),
            email_reply_to: changes.email_reply_to.clone().or_else(|| current.channels.email_reply_to.clone()),
            voice_key_press: changes.voice_key_press.unwrap_or(current.channels.voice_key_press),
            voice_name: changes.voice_name.clone().or_else(|| current.channels.voice_name.clone()),
            whatsapp_from: changes.whatsapp_from.clone().or_else(|| current.channels.whatsapp_from.clone()),
        },
    };
    let validated = settings.into_service(now)?;
    Ok(Service { id: current.id.clone(), created_at: current.created_at, friendly_name, ..validated })
}

/// Whether two services would make the same verifications.
fn same_settings(a: &Service, b: &Service) -> bool {
    a.code_length == b.code_length
        && a.code_ttl_secs == b.code_ttl_secs
        && a.templates == b.templates
        && a.custom_codes == b.custom_codes
        && a.psd2 == b.psd2
}

/// A name for a service that wants `wanted`, which is taken: the first `wanted-N` (N from 2) not
/// in `taken`, or after a first attempt lost a race, `wanted-` and six random hex digits; at most
/// 64 characters.
fn distinct_name(wanted: &str, taken: &HashSet<&str>, attempt: usize) -> String {
    let with = |suffix: String| {
        let base: String = wanted.chars().take(64 - suffix.chars().count()).collect();
        format!("{}{suffix}", base.trim_end())
    };
    if attempt == 0
        && let Some(name) = (2..1000).map(|n| with(format!("-{n}"))).find(|n| !taken.contains(n.as_str()))
    {
        return name;
    }
    with(format!("-{:06x}", rand::random::<u32>() & 0xff_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_distinct_name_counts_up_and_stays_within_64_characters() {
        let taken: HashSet<&str> = ["Shop", "Shop-2"].into();
        assert_eq!(distinct_name("Shop", &taken, 0), "Shop-3");
        let long = "x".repeat(64);
        let name = distinct_name(&long, &HashSet::new(), 0);
        assert_eq!((name.chars().count(), name.ends_with("-2")), (64, true));
        let random = distinct_name("Shop", &taken, 1);
        assert!(random.starts_with("Shop-") && random.len() == 11, "{random}");
    }
}
