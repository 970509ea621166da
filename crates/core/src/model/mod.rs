//! The core's words: the data types every use case, port and adapter shares (phone numbers,
//! verifications and their messages, services, API keys and callers, users, sessions, flows,
//! invites, events, audit events, silent checks, budget charges) and the rules that belong to one
//! value alone (a number's format, a username's characters, a status's transitions).
//!
//! The bottom layer: a module here imports nothing of the core but other modules here (and the
//! leaves `clock` and `code`). `error` stands on this layer. Ports sit above it, use cases above both.
pub mod account_event;
pub mod api_key;
pub mod audit;
pub mod budget;
pub mod email;
pub mod flow;
pub mod ids;
pub mod invalid;
pub mod invite;
pub mod jwt_key;
pub mod locales;
pub mod message;
pub mod oidc;
pub mod phone;
pub mod psd2;
pub mod recipient;
pub mod service;
pub mod session;
pub mod silent;
pub mod test_numbers;
pub mod user;
pub mod verification;
pub mod vonage;
pub mod workflow;
