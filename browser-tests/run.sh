#!/usr/bin/env bash
# Drives phonegate's web pages (sign-up, login, code, account; docs/accounts.md) in headless
# Debian Chromium with playwright-core, against five real servers on temporary SQLite databases
# (the second with a 60 s code lifetime for the expired-code test, the third an invite-only group
# with an admin made by `phonegate admin create`; group.test.js and admin.test.js, the fourth with
# the silent simulator; silent.test.js, the fifth with the Auth0 step for the stand-in tenant
# `tenant.example`; auth0.test.js), and two more with an OpenID Connect client, a small demo app
# (oidc-demo.js) started beside each (the second with the silent simulator; oidc.test.js), partly
# through a small forward-auth proxy (proxy.js). Installs Chromium and the npm packages itself. Full-page
# screenshots of every page visited go to target/browser-artifacts/.
# Prints `browser: N passed, M failed` last. Usage: browser-tests/run.sh PATH_TO_PHONEGATE_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=$(realpath "${1:?usage: run.sh PATH_TO_PHONEGATE_BINARY}")
started=$SECONDS
work=$(mktemp -d)
servers=()
cleanup() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

# Debian's Chromium (playwright's own browser download does not work here), then playwright-core
# from the committed lockfile.
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

artifacts="$root/target/browser-artifacts"
rm -rf "$artifacts"
mkdir -p "$artifacts"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# [PORT=N] start NAME [ENV=VALUE…]: a server on its own database and port with an admin key for
# the outbox; sets base_NAME and secret_NAME.
start() {
    local name=$1; shift
    local db="sqlite://$work/$name.db" port key pid up=""
    port=${PORT:-$(free_port)}
    key=$(env "$@" PHONEGATE_DATABASE_URL="$db" "$bin" keys create --name browser --json) ||
        { echo "phonegate ($name) could not make an API key"; echo "browser: 0 passed, 1 failed"; exit 1; }
    env "$@" PHONEGATE_DATABASE_URL="$db" "$bin" serve --listen "127.0.0.1:$port" >"$work/$name.log" 2>&1 &
    pid=$!
    servers+=("$pid")
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "http://127.0.0.1:$port/healthz" 2>/dev/null && { up=1; break; }
        sleep 0.1
    done
    if [ -z "$up" ]; then
        echo "phonegate ($name) did not start:"; cat "$work/$name.log"; echo "browser: 0 passed, 1 failed"; exit 1
    fi
    printf -v "base_$name" 'http://127.0.0.1:%s' "$port"
    printf -v "secret_$name" '%s' "$(json_field secret <<<"$key")"
}
# The login workflow offers a call (channels.test.js: "Call me instead").
start main PHONEGATE_ACCOUNTS__WORKFLOW=sms:120,voice
start short_ttl PHONEGATE_ACCOUNTS__CODE_TTL=1m
# Silent verification through the local simulator (silent.test.js).
start silent PHONEGATE_SILENT__SIMULATOR=true
# An invite-only group whose first admin the operator's command made. Codes go to the dev outbox;
# a Twilio account is configured only so that its signed inbound-SMS webhook (an invitee texting
# the invite code) is accepted, which needs the public URL, hence the port chosen first.
group_admin="+4915199000001"
group_port=$(free_port)
twilio_account=AC0000000000000000000000000000b0
twilio_token=browser-test-token
PHONEGATE_DATABASE_URL="sqlite://$work/group.db" "$bin" admin create --username chief --phone "$group_admin" >/dev/null
PORT=$group_port start group PHONEGATE_ACCOUNTS__REGISTRATION=invite_only PHONEGATE_PUBLIC_URL="http://127.0.0.1:$group_port" \
    PHONEGATE_PROVIDERS__OUTBOX__KIND=outbox PHONEGATE_ROUTING__PROVIDERS='["outbox"]' \
    PHONEGATE_PROVIDERS__TWILIO__KIND=twilio PHONEGATE_PROVIDERS__TWILIO__ACCOUNT_SID="$twilio_account" \
    PHONEGATE_PROVIDERS__TWILIO__AUTH_TOKEN="$twilio_token" PHONEGATE_PROVIDERS__TWILIO__FROM='"+15005550006"'
# The Auth0 step for the tenant `tenant.example`, which the browser never reaches: auth0.test.js
# answers it with a stand-in of Auth0's Action API (auth0-standin.js). The shared secret is the
# Action's PHONEGATE_SECRET.
auth0_port=$(free_port)
auth0_secret=browser-test-auth0-shared-secret-0123456789abcdef
PORT=$auth0_port start auth0 PHONEGATE_AUTH0__DOMAIN=tenant.example PHONEGATE_AUTH0__SECRET="$auth0_secret" \
    PHONEGATE_PUBLIC_URL="http://127.0.0.1:$auth0_port"
# OpenID Connect (oidc.test.js): two servers whose configuration file (PHONEGATE_CONFIG, i.e.
# --config) gives the public URL and the demo app (oidc-demo.js) as the third-party client `demo`,
# the second with the silent simulator; each has its own demo app, on a port chosen first.
oidc_secret=browser-test-oidc-demo-client-secret-0123456789
# oidc_server NAME [ENV=VALUE…]: the configuration file, the server and its demo app; sets
# base_NAME, secret_NAME and demo_NAME.
oidc_server() {
    local name=$1; shift
    local port demo_port up=""
    port=$(free_port)
    demo_port=$(free_port)
    cat >"$work/$name.toml" <<TOML
public_url = "http://127.0.0.1:$port"

[oidc_clients.demo]
client_id = "demo"
client_secret = "$oidc_secret"
redirect_uris = ["http://127.0.0.1:$demo_port/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:$demo_port/"]
scopes = ["openid", "profile", "phone", "email", "offline_access"]
first_party = false
TOML
    PORT=$port start "$name" PHONEGATE_CONFIG="$work/$name.toml" "$@"
    node "$here/oidc-demo.js" --issuer "http://127.0.0.1:$port" --client-id demo --client-secret "$oidc_secret" \
        --port "$demo_port" >"$work/${name}_demo.log" 2>&1 &
    servers+=("$!")
    for _ in $(seq 100); do
        python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "http://127.0.0.1:$demo_port/" 2>/dev/null && { up=1; break; }
        sleep 0.1
    done
    if [ -z "$up" ]; then
        echo "the OIDC demo app ($name) did not start:"; cat "$work/${name}_demo.log"; echo "browser: 0 passed, 1 failed"; exit 1
    fi
    printf -v "demo_$name" 'http://127.0.0.1:%s' "$demo_port"
}
oidc_server oidc
oidc_server oidc_silent PHONEGATE_SILENT__SIMULATOR=true

export PHONEGATE_BASE=$base_main PHONEGATE_SECRET=$secret_main
export PHONEGATE_SHORT_TTL_BASE=$base_short_ttl PHONEGATE_SHORT_TTL_SECRET=$secret_short_ttl
export PHONEGATE_SILENT_BASE=$base_silent PHONEGATE_SILENT_SECRET=$secret_silent
export PHONEGATE_GROUP_BASE=$base_group PHONEGATE_GROUP_SECRET=$secret_group PHONEGATE_GROUP_ADMIN_PHONE=$group_admin
export PHONEGATE_GROUP_TWILIO_ACCOUNT=$twilio_account PHONEGATE_GROUP_TWILIO_TOKEN=$twilio_token
export PHONEGATE_AUTH0_BASE=$base_auth0 PHONEGATE_AUTH0_SECRET=$secret_auth0 PHONEGATE_AUTH0_TENANT_SECRET=$auth0_secret
export PHONEGATE_OIDC_BASE=$base_oidc PHONEGATE_OIDC_SECRET=$secret_oidc PHONEGATE_OIDC_DEMO=$demo_oidc
export PHONEGATE_OIDC_SILENT_BASE=$base_oidc_silent PHONEGATE_OIDC_SILENT_SECRET=$secret_oidc_silent
export PHONEGATE_OIDC_SILENT_DEMO=$demo_oidc_silent
export BROWSER_ARTIFACTS=$artifacts

# Readable progress on stdout, TAP (counted below) in a file. (--test-force-exit would cut the
# file's summary off; the tests close what they open, and `timeout` guards against a hang.)
set +e
(cd "$here" && timeout 300 node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$work/tap.log" 2>&1)
set -e
# TAP's summary: "# pass N", "# fail N", "# cancelled N" (a cancelled test counts as failed).
read -r passed failed < <(awk '/^# pass [0-9]+$/ { p = $3 } /^# (fail|cancelled) [0-9]+$/ { f += $3 }
    END { print p + 0, f + 0 }' "$work/tap.log" 2>/dev/null || echo 0 0)
cp "$work"/main.log "$work"/short_ttl.log "$work"/group.log "$work"/silent.log "$work"/auth0.log "$artifacts/" 2>/dev/null || true
cp "$work"/oidc.log "$work"/oidc_demo.log "$work"/oidc_silent.log "$work"/oidc_silent_demo.log "$artifacts/" 2>/dev/null || true

if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    echo "--- server log (main) ---"; tail -40 "$work/main.log"
    echo "--- server log (short_ttl) ---"; tail -20 "$work/short_ttl.log"
    echo "--- OIDC demo app logs ---"; tail -n 20 "$work/oidc_demo.log" "$work/oidc_silent_demo.log"
    [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1
fi
echo "screenshots and server logs: $artifacts ($((SECONDS - started)) s)"
echo "browser: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
