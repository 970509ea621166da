//! Helpers that run real outside servers for the tests.
pub mod smtp;
