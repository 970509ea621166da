#!/usr/bin/env bash
# Runs the official Twilio and Vonage client libraries (Python and Node), and the OpenID Connect
# relying parties openid-client (Node) and Authlib (Python), against a real phonegate server over
# HTTPS, the way an unmodified app would call them. Installs the libraries itself.
# Prints `sdk: N passed, M failed` last. Usage: sdk-tests/run.sh PATH_TO_PHONEGATE_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${1:?usage: run.sh PATH_TO_PHONEGATE_BINARY}
work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The client libraries first, while pip and npm trust only the system's certificates.
venv="$root/target/sdk-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/python/requirements.txt"
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

export PHONEGATE_DATABASE_URL="sqlite://$work/sdk.db"
key=$("$bin" keys create --name sdk-tests --json)
export SDK_KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$key")
export SDK_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$key")
# Free ports: the server's, and one per language for its Verify v2 application's status URL,
# where that language's tests listen for the callbacks.
read -r port SDK_V2_NODE_CALLBACK_PORT SDK_V2_PY_CALLBACK_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export SDK_BASE="https://127.0.0.1:$port" SDK_V2_NODE_CALLBACK_PORT SDK_V2_PY_CALLBACK_PORT
# Vonage Verify v2: an application per language, each on a key of its own (whose id and secret
# are its Basic credentials; the keys are made once the server runs, below). Both take the public half of one RSA key pair (the tests sign their
# JWTs with the private half) and one secret that signs their callbacks.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/app.key" 2>/dev/null
openssl pkey -in "$work/app.key" -pubout -out "$work/app.pub"
export SDK_V2_PRIVATE_KEY="$work/app.key"
export SDK_V2_SIGNATURE_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
# The OpenID Connect tests' clients (a confidential, a public and a resource server's per
# language; nothing listens at their redirect URIs: the tests' scripted browser stops there), and
# test numbers with a fixed code for the users they sign in. Refresh tokens without a reuse
# interval, so that a spent one fails at once.
export SDK_OIDC_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
export SDK_TEST_CODE=246810
rp=http://127.0.0.1:3000
{
    echo "public_url = \"$SDK_BASE\""
    echo
    echo "[accounts]"
    echo "refresh_reuse = \"0s\""
    echo
    echo "[test_numbers]"
    echo "\"+447700900*\" = \"$SDK_TEST_CODE\""
    for lang in node py; do
        cat <<TOML

[oidc_clients.$lang-web]
client_id = "$lang-web"
client_secret = "$SDK_OIDC_SECRET"
redirect_uris = ["$rp/$lang-web/callback"]
post_logout_redirect_uris = ["$rp/$lang-web/"]

[oidc_clients.$lang-spa]
client_id = "$lang-spa"
public = true
first_party = true
redirect_uris = ["$rp/$lang-spa/callback"]
post_logout_redirect_uris = ["$rp/$lang-spa/"]
id_token_signed_response_alg = "$([ $lang = py ] && echo ES256 || echo RS256)"

[oidc_clients.$lang-rs]
client_id = "$lang-rs"
client_secret = "$SDK_OIDC_SECRET"
redirect_uris = ["$rp/$lang-rs/callback"]
TOML
    done
} >"$work/phonegate.toml"
# Vonage refuses cancels in a verification's first 30 s; the SDK tests should not wait that long.
# The silent simulator answers Twilio's SNA verifications (the dev outbox sends the SMS ones).
PHONEGATE_COMPAT__VONAGE_MIN_CANCEL=0s PHONEGATE_SILENT__SIMULATOR=true "$bin" serve --config "$work/phonegate.toml" \
    --listen "127.0.0.1:$port" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" >"$work/server.log" 2>&1 &
server=$!
up=""
for _ in $(seq 100); do
    kill -0 "$server" 2>/dev/null || break
    python3 -c "import ssl, sys, urllib.request; urllib.request.urlopen(sys.argv[1], context=ssl.create_default_context(cafile=sys.argv[2]), timeout=1)" \
        "$SDK_BASE/healthz" "$work/cert.pem" 2>/dev/null && { up=1; break; }
    sleep 0.1
done
if [ -z "$up" ]; then
    echo "phonegate did not start:"; cat "$work/server.log"; echo "sdk: 0 passed, 1 failed"; exit 1
fi
# The test certificate is trusted by the tests only.
ca="$work/cert.pem"

# A service that allows custom PINs and PSD2 payment codes, and a key scoped to it (Vonage enables
# these per account; phonegate per service).
python3 - "$SDK_BASE/api/services" "$SDK_SECRET" "$ca" <<'PY'
import json, ssl, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"name": "bank", "custom_codes": True, "psd2": True}).encode(),
                             headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=sys.argv[3]), timeout=10)
PY
bank=$("$bin" keys create --name bank --scope service --service bank --json)
export SDK_BANK_KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$bank")
export SDK_BANK_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$bank")
# The applications' keys use the bank service too: Vonage's custom `code` needs custom codes.
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
v2_app() {
    "$bin" keys create --name "$1" --scope service --service bank --vonage-application-public-key "$work/app.pub" \
        --vonage-status-url "http://127.0.0.1:$2/vonage/status" --vonage-signature-secret "$SDK_V2_SIGNATURE_SECRET" --json
}
node_app=$(v2_app sdk-v2-node "$SDK_V2_NODE_CALLBACK_PORT")
export SDK_V2_NODE_APP_ID=$(field application_id <<<"$node_app")
export SDK_V2_NODE_KEY_ID=$(field id <<<"$node_app")
export SDK_V2_NODE_KEY_SECRET=$(field secret <<<"$node_app")
py_app=$(v2_app sdk-v2-py "$SDK_V2_PY_CALLBACK_PORT")
export SDK_V2_PY_APP_ID=$(field application_id <<<"$py_app")
export SDK_V2_PY_KEY_ID=$(field id <<<"$py_app")
export SDK_V2_PY_KEY_SECRET=$(field secret <<<"$py_app")

passed=0
failed=0

# Python: the `twilio`, `vonage` and `Authlib` packages, in a virtualenv under target/.
set +e
(cd "$here/python" && REQUESTS_CA_BUNDLE="$ca" "$venv/bin/python" -m pytest -q -p no:cacheprovider . 2>&1) | tee "$work/pytest.log"
set -e
# pytest's summary line: "2 failed, 6 passed in 1.23s" (errors count as failures).
read -r p f < <(awk '/ in [0-9.]+s/ { p = 0; f = 0; for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p = $i; if ($(i+1) ~ /^(failed|error)/) f += $i } } END { print p + 0, f + 0 }' "$work/pytest.log")
passed=$((passed + p)); failed=$((failed + f))

# Node: the `twilio`, `@vonage/server-sdk` and `openid-client` packages, from the committed lockfile.
set +e
(cd "$here/node" && NODE_EXTRA_CA_CERTS="$ca" node --test 2>&1) | tee "$work/node.log"
set -e
p=$(grep -E '^# pass ' "$work/node.log" | grep -Eo '[0-9]+' || echo 0)
f=$(grep -E '^# fail ' "$work/node.log" | grep -Eo '[0-9]+' || echo 0)
passed=$((passed + p)); failed=$((failed + f))

if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    echo "--- server log ---"; tail -50 "$work/server.log"
fi
echo "sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
