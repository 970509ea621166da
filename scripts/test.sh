#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, unit, property and HTTP integration tests,
# then the official Twilio and Vonage client libraries against a running server, and the web pages
# in headless Chromium.
# Installs what it needs itself, so it works the same on a fresh machine and in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# PostgreSQL (127.0.0.1:5432, trust auth): start it if it is installed but down, then give this
# run a fresh database; every test makes its own schema in it.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS phonegate_test WITH (FORCE)" -c "CREATE DATABASE phonegate_test"
pg_url="postgres://postgres@127.0.0.1:5432/phonegate_test"

# The e-mail tests send through a real SMTP server: Python's aiosmtpd, in a virtualenv under
# target/ (crates/server/tests/api/support/smtp.rs finds it there, or by SMTP_TEST_PYTHON).
smtp_venv="$PWD/target/smtp-venv"
[ -x "$smtp_venv/bin/python" ] || python3 -m venv "$smtp_venv"
"$smtp_venv/bin/pip" install -q --disable-pip-version-check -r crates/server/tests/api/support/requirements.txt
export SMTP_TEST_PYTHON="$smtp_venv/bin/python"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Everything on SQLite (the embedded default)… This also builds phonegate-bench (crates/bench),
# which the API suite's smoke test runs from the same target directory.
cargo test --workspace --all-targets 2>&1 | tee "$log"
# …then the store conformance suite, the core-level tests and the whole HTTP suite again on
# PostgreSQL. HTTP tests that
# only make sense on PostgreSQL are #[ignore = "postgres only: …"] (the SQLite pass lists them as
# ignored); this pass runs them too, so no ignored test may be there for any other reason.
TEST_POSTGRES_URL="$pg_url" cargo test -p phonegate-store --test conformance 2>&1 | tee -a "$log"
TEST_POSTGRES_URL="$pg_url" cargo test -p phonegate-core --test core 2>&1 | tee -a "$log"
if grep -rn '#\[ignore' crates/server/tests/api | grep -v '#\[ignore = "postgres only'; then
    echo "only PostgreSQL-only tests may be ignored in the HTTP suite (see above)" >&2
    exit 1
fi
TEST_POSTGRES_URL="$pg_url" cargo test -p phonegate --test api -- --include-ignored 2>&1 | tee -a "$log"
bash sdk-tests/run.sh target/debug/phonegate 2>&1 | tee -a "$log"
bash browser-tests/run.sh target/debug/phonegate 2>&1 | tee -a "$log"
# The Debian package from the same debug binary: built, installed, run as its unit would, purged.
bash scripts/test-package.sh 2>&1 | tee -a "$log"

# One closing line for the whole run: cargo prints one per test binary, the SDK, browser and
# packaging runners their own.
awk '/^test result:/ { p += $4; f += $6 }
     /^sdk: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     /^browser: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     /^packaging: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (p == 0 || f > 0) }' "$log"
