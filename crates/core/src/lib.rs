//! phonegate's domain core: phone numbers, one-time codes, services and the verification state
//! machine. It knows nothing of HTTP or SQL; adapters call it and implement its ports.
pub mod accounts;
pub mod apikey;
pub mod audit;
pub mod budget;
pub mod caller;
pub mod clock;
pub mod code;
pub mod delivery;
pub mod duration;
pub mod engine;
pub mod error;
pub mod ids;
pub mod integrations;
pub mod locales;
pub mod message;
pub mod outbox;
pub mod phone;
pub mod ports;
pub mod psd2;
pub mod service;
pub mod silent;
pub mod traffic;
pub mod verification;

pub use caller::{Caller, Scope};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{DeliveryTimes, Limits, StartOptions, StartRequest, Started, Verifier};
pub use error::VerifyError;
pub use phone::{NumberKind, PhoneError, PhoneNumber, PhonePolicy};
pub use ports::{Store, StoreError};
pub use service::Service;
pub use verification::{Channel, CheckOutcome, Status, Verification};
