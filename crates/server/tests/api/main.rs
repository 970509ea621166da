//! HTTP integration tests: each starts the real server on port 0 with its own SQLite file and a
//! manual clock, and talks to it over real sockets. One test binary; modules by behaviour.
mod helpers;
mod integrations;
mod invites;

mod accounts;
mod admin;
mod audit;
mod auth;
mod bad_input;
mod bench;
mod budgets;
mod cli;
mod client_ip;
mod compat_twilio;
mod compat_vonage;
mod concurrency;
mod connections;
mod crash;
mod delivery;
mod multi_instance;
mod openapi;
mod ops;
mod outbox;
mod pages;
mod resilience;
mod schema;
mod secrets;
mod services;
mod silent;
mod silent_providers;
mod tenants;
mod tls;
mod tokens;
mod vendor_specs;
mod verifications;
mod webhooks;
