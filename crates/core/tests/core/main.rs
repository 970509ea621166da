//! The core's rules tested on the core itself: no HTTP, a real store, a clock the test moves and
//! a sender that records every message (`harness`). Each rule is one short test; the HTTP suite
//! (the server's `tests/api`) covers the adapters.
mod audit;
mod budgets;
mod channel_options;
mod flows;
mod harness;
mod integrations;
mod silent;
mod test_numbers;
mod verifications;
