//! phonegate's domain core: phone numbers, one-time codes, services and the verification state
//! machine. It knows nothing of HTTP or SQL; adapters call it and implement its ports.
pub mod accounts;
pub mod apikey;
pub mod audit;
pub mod budget;
pub mod clock;
pub mod code;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod integrations;
pub mod model;
pub mod outbox;
pub mod ports;
pub mod silent;
pub mod startup;
pub mod traffic;

// The model's modules, at the short paths the adapters name them by.
pub use model::{caller, ids, locales, message, phone, psd2, service, verification};

pub use caller::{Caller, Scope};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{DeliveryTimes, Limits, StartOptions, StartRequest, Started, Verifier};
pub use error::VerifyError;
pub use phone::{NumberKind, PhoneError, PhoneNumber, PhonePolicy};
pub use ports::{Store, StoreError};
pub use service::Service;
pub use verification::{Channel, CheckOutcome, Status, Verification};
