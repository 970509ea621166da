//! phonegate's domain core: phone numbers, one-time codes, services and the verification state
//! machine. It knows nothing of HTTP or SQL; adapters call it and implement its ports.
pub mod accounts;
pub mod apikey;
pub mod audit;
pub mod budget;
pub mod caller;
pub mod catalog;
pub mod clock;
pub mod code;
pub mod context;
pub mod delivery;
pub mod duration;
pub mod engine;
pub mod error;
pub mod integrations;
pub mod model;
pub mod oidc;
pub mod outbox;
pub mod ports;
pub mod silent;
pub(crate) mod spans;
pub mod startup;
pub mod traffic;
pub mod vonage;

// The model's modules, at the short paths the adapters name them by.
pub use model::oidc as oidc_model;
pub use model::vonage as vonage_model;
pub use model::{email, ids, locales, message, phone, psd2, recipient, service, test_numbers, verification, workflow};

pub use caller::{Caller, Scope};
pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::DeliveryTimes;
pub use engine::{Limits, StartOptions, StartRequest, Started, StepState, Verifier};
pub use error::VerifyError;
pub use phone::{NumberKind, PhoneError, PhoneNumber, PhonePolicy};
pub use ports::{Store, StoreError};
pub use recipient::{EmailAddress, Recipient};
pub use service::Service;
pub use verification::{Channel, CheckOutcome, Status, Verification};

/// The core's services over one shared context, each owning one concern: the audit log, the
/// service catalog, API keys, the delivery queue, the verifications engine, the dev outbox and the
/// traffic reports. Accounts and the redirect step are built on top (`accounts::Accounts::new`,
/// `integrations::Integrations::new`). Cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub ctx: context::Context,
    pub audit: audit::Audit,
    pub catalog: catalog::Catalog,
    pub api_keys: apikey::ApiKeys,
    pub delivery: delivery::Delivery,
    pub verifier: Verifier,
    pub outbox: outbox::Outbox,
    pub traffic: traffic::TrafficReports,
}

/// What the core is made of.
pub struct CoreParts {
    pub store: std::sync::Arc<dyn Store>,
    pub sender: std::sync::Arc<dyn ports::MessageSender>,
    pub clock: std::sync::Arc<dyn Clock>,
    pub observer: std::sync::Arc<dyn ports::Observer>,
    pub keys: code::ServerKeys,
    pub phones: PhonePolicy,
    pub limits: Limits,
    pub budgets: budget::Budgets,
    /// Numbers with a fixed code that nothing is sent to (`[test_numbers]`; empty: none).
    pub test_numbers: model::test_numbers::TestNumbers,
    pub delivery: DeliveryTimes,
    pub silent: silent::SilentRoutes,
    /// The service whose budgets a decoy's silent check charges: the service of the flows that
    /// make decoys (the accounts service), so a decoy costs what a real check there would.
    pub decoy_service: String,
}

impl Core {
    pub fn new(p: CoreParts) -> Self {
        let ctx = context::Context::new(p.store, p.clock, p.observer, p.keys, p.phones, p.budgets, p.test_numbers);
        let audit = audit::Audit::new(ctx.clone());
        let catalog = catalog::Catalog::new(ctx.clone(), audit.clone());
        let api_keys = apikey::ApiKeys::new(ctx.clone(), audit.clone(), catalog.clone());
        let delivery = delivery::Delivery::new(ctx.clone(), p.sender, p.delivery);
        let verifier = Verifier::new(ctx.clone(), audit.clone(), catalog.clone(), delivery.clone(), p.limits, p.silent, &p.decoy_service);
        let outbox = outbox::Outbox::new(ctx.clone(), catalog.clone());
        let traffic = traffic::TrafficReports::new(ctx.clone());
        Self { ctx, audit, catalog, api_keys, delivery, verifier, outbox, traffic }
    }
}
