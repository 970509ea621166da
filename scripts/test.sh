#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit, property and HTTP integration tests,
# then the official Twilio and Vonage client libraries against a running server.
# Installs what it needs itself, so it works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets 2>&1 | tee "$log"
bash sdk-tests/run.sh target/debug/phonegate 2>&1 | tee -a "$log"

# One closing line for the whole run: cargo prints one per test binary, the SDK runner its own.
awk '/^test result:/ { p += $4; f += $6 }
     /^sdk: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
