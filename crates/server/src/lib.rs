//! phonegate's server: configuration, the HTTP adapters and the commands of the binary.
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod secret;
pub mod telemetry;
