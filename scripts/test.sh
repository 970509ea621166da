#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit, property and HTTP integration tests.
# Installs what it needs itself, so it works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
