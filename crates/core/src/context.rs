//! What every service of the core shares: the store, the clock, the server keys, the observer,
//! the number policy and the budgets. Each service holds a clone (every part is shared), so the
//! services stay cheap to clone and a background send can carry its own.
use crate::budget::Budgets;
use crate::clock::Clock;
use crate::code::ServerKeys;
use crate::error::VerifyError;
use crate::model::phone::{PhoneNumber, PhonePolicy};
use crate::ports::{Observer, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Cloning shares one allocation (the server keys hold expanded cipher keys: copying them with
/// every service, request or background send measurably slowed every request).
#[derive(Clone)]
pub struct Context(Arc<Shared>);

pub struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) keys: ServerKeys,
    pub(crate) phones: Arc<PhonePolicy>,
    pub(crate) budgets: Arc<Budgets>,
}

impl std::ops::Deref for Context {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Context {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn Observer>,
        keys: ServerKeys,
        phones: PhonePolicy,
        budgets: Budgets,
    ) -> Self {
        Self(Arc::new(Shared { store, clock, observer, keys, phones: Arc::new(phones), budgets: Arc::new(budgets) }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A number as the configured policy reads it (region for national formats, kinds allowed).
    pub fn parse_phone(&self, raw: &str) -> Result<PhoneNumber, VerifyError> {
        Ok(self.phones.parse(raw)?)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), VerifyError> {
        Ok(self.store.ping().await?)
    }
}
