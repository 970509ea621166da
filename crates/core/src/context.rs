//! What every service of the core shares: the store, the clock, the server keys, the observer,
//! the number policy and the budgets. Each service holds a clone (every part is shared), so the
//! services stay cheap to clone and a background send can carry its own.
use crate::budget::Budgets;
use crate::clock::Clock;
use crate::code::ServerKeys;
use crate::error::VerifyError;
use crate::model::phone::{PhoneNumber, PhonePolicy};
use crate::model::test_numbers::TestNumbers;
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
    /// Numbers with a fixed code that nothing is ever sent to (`[test_numbers]`).
    pub(crate) test_numbers: TestNumbers,
    /// Woken when a workflow step became due before its time (its message failed): the worker
    /// starts the next step at once instead of at its next round.
    pub steps_due: Arc<tokio::sync::Notify>,
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
        test_numbers: TestNumbers,
    ) -> Self {
        Self(Arc::new(Shared {
            store,
            clock,
            observer,
            keys,
            phones: Arc::new(phones),
            budgets: Arc::new(budgets),
            test_numbers,
            steps_due: Default::default(),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A number as the configured policy reads it (region for national formats, kinds allowed).
    /// A configured test number is taken as it is: nothing is ever sent to it.
    pub fn parse_phone(&self, raw: &str) -> Result<PhoneNumber, VerifyError> {
        self.parse_phone_with(&self.phones, raw)
    }

    /// A recipient named by an API: an e-mail address (it holds an `@`), else a number.
    pub fn parse_recipient(&self, raw: &str) -> Result<crate::model::recipient::Recipient, VerifyError> {
        match raw.contains('@') {
            true => Ok(crate::model::recipient::Recipient::Email(crate::model::recipient::EmailAddress::parse(raw)?)),
            false => Ok(self.parse_phone(raw)?.into()),
        }
    }

    /// `parse_phone` under another policy (a request's own region).
    pub(crate) fn parse_phone_with(&self, policy: &PhonePolicy, raw: &str) -> Result<PhoneNumber, VerifyError> {
        match policy.parse(raw) {
            Ok(n) => Ok(n),
            Err(e) => match policy.normalize(raw).filter(|n| self.test_numbers.is_test(n)) {
                Some(n) => Ok(n),
                None => Err(e.into()),
            },
        }
    }

    /// The configured test numbers.
    pub fn test_numbers(&self) -> &TestNumbers {
        &self.test_numbers
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), VerifyError> {
        Ok(self.store.ping().await?)
    }
}
