//! The services (tenants): created once, never changed, read by id or name through a cache that
//! every instance may keep (a service never changes once created).
use crate::audit::{Audit, AuditKind};
use crate::caller::Caller;
use crate::context::Context;
use crate::error::VerifyError;
use crate::model::service::{DEFAULT_SERVICE, Service, ServiceSettings};
use crate::ports;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct Catalog {
    ctx: Context,
    audit: Audit,
    /// Services by id and by name.
    cache: Arc<RwLock<HashMap<String, Service>>>,
}

impl Catalog {
    pub fn new(ctx: Context, audit: Audit) -> Self {
        Self { ctx, audit, cache: Default::default() }
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
        let service = settings.into_service(self.ctx.now())?;
        let s = service.clone();
        ports::write(self.ctx.store.as_ref(), move |tx| if tx.insert_service(&s)? { Ok(()) } else { Err(VerifyError::ServiceNameTaken) })
            .await?;
        self.audit.record_once(caller, AuditKind::ServiceCreated, Some(&service.id), "service created").await;
        Ok(service)
    }

    /// Creates a service, or, when one of that name exists with the same settings and the caller
    /// may see it, answers that one: an app that creates its service at every boot (as Twilio
    /// allows) keeps working. A name in use with other settings is still `ServiceNameTaken`.
    pub async fn create_or_reuse_service(&self, caller: &Caller, settings: ServiceSettings) -> Result<Service, VerifyError> {
        let wanted = settings.clone().into_service(self.ctx.now())?;
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
            (None, crate::caller::Scope::Services(ids)) => ids.first().cloned().ok_or(VerifyError::ServiceNotFound)?,
            (None, _) => DEFAULT_SERVICE.to_string(),
        };
        let cached = self.cache.read().ok().and_then(|m| m.get(&key).cloned());
        let service = match cached {
            Some(s) => s,
            None => {
                let s = ports::read(self.ctx.store.as_ref(), move |tx| Ok::<_, VerifyError>(tx.service(&key)?))
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
        let all = ports::read(self.ctx.store.as_ref(), |tx| Ok::<_, VerifyError>(tx.services()?)).await?;
        Ok(all.into_iter().filter(|s| caller.may_see(&s.id)).collect())
    }

    fn remember_service(&self, s: &Service) {
        if let Ok(mut m) = self.cache.write() {
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
}
