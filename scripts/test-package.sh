#!/usr/bin/env bash
# The Debian package, end to end: builds it with cargo-deb from the debug binary the test run
# already built, installs it with dpkg, checks its files and their permissions, verifies the
# systemd units, starts the installed binary exactly as phonegate.service would (its user, state
# directory, credentials directory, environment, umask, no capabilities, ExecStart read from the
# unit), checks /readyz with `phonegate healthcheck`, stops it with SIGTERM, then purges the
# package. Ends with `packaging: N passed, M failed`.
#
# It installs and removes a system package and a system user: run it as root on a throwaway
# machine (CI, a container) without systemd as PID 1, never on a host where phonegate is installed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
check() { # check DESCRIPTION COMMAND...: runs COMMAND, counts and reports the result
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok - $what"
    else
        failed=$((failed + 1))
        echo "FAIL - $what" >&2
    fi
}
finish() {
    echo "packaging: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit
}
abort() {
    echo "packaging: $*" >&2
    failed=$((failed + 1))
    finish
}

[ "$(id -u)" -eq 0 ] || abort "must run as root (it installs a package)"
[ -d /run/systemd/system ] && abort "systemd runs this machine: the package's postinst would start the real service; run this in CI or a container"
dpkg -s phonegate >/dev/null 2>&1 && abort "phonegate is installed here already; this test would purge it"
getent passwd phonegate >/dev/null && abort "a user phonegate exists here already"
[ -e /var/lib/phonegate ] && abort "/var/lib/phonegate exists here already"

# What the test needs: systemd's tools (systemd-analyze, -sysusers, -tmpfiles; not running),
# setpriv, curl, and cargo-deb (pinned: it builds from the dev profile, which it may refuse later).
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        abort "cannot install ${missing[*]}"
fi
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet || abort "cannot install cargo-deb"
fi

work=$(mktemp -d)
server=""
credstore_made=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    if dpkg -s phonegate >/dev/null 2>&1; then dpkg --purge phonegate >/dev/null 2>&1; fi
    rm -rf /var/lib/phonegate /var/backups/phonegate "$work"
    [ -n "$credstore_made" ] && rm -rf /etc/credstore
    getent passwd phonegate >/dev/null && userdel phonegate
    getent group phonegate >/dev/null && groupdel phonegate
}
trap cleanup EXIT

# --- build and install -------------------------------------------------------------------------
target=${CARGO_TARGET_DIR:-target}
[ -x "$target/debug/phonegate" ] || cargo build -q -p phonegate --bin phonegate || abort "cannot build phonegate"
check "cargo deb builds the package from the debug binary" \
    cargo deb -p phonegate --no-build --profile dev --fast --quiet --output "$work/phonegate.deb" >/dev/null
[ -f "$work/phonegate.deb" ] || abort "no package was built"
install_package() { dpkg -i "$work/phonegate.deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; false; }; }
check "dpkg -i installs it" install_package

# --- files and permissions -----------------------------------------------------------------------
owner_mode() { [ "$(stat -c '%U:%G %a' "$1")" = "$2" ] || { echo "$1: $(stat -c '%U:%G %a' "$1"), expected $2" >&2; false; }; }
unit_dir=/usr/lib/systemd/system
check "the binary: /usr/bin/phonegate, root 755" owner_mode /usr/bin/phonegate "root:root 755"
check "the configuration: root:phonegate 640 (it may hold provider tokens)" owner_mode /etc/phonegate/phonegate.toml "root:phonegate 640"
check "the configuration is a conffile" grep -qx /etc/phonegate/phonegate.toml /var/lib/dpkg/info/phonegate.conffiles
for unit in phonegate.service phonegate-backup.service phonegate-backup.timer; do
    check "unit $unit: root 644" owner_mode "$unit_dir/$unit" "root:root 644"
done
check "a system user phonegate without a login shell" \
    bash -c '[ "$(getent passwd phonegate | cut -d: -f7)" = /usr/sbin/nologin ] && [ "$(id -u phonegate)" -lt 1000 ]'
check "the backup directory: phonegate 700" owner_mode /var/backups/phonegate "phonegate:phonegate 700"
check "the server and the backup timer are enabled" test -L /etc/systemd/system/multi-user.target.wants/phonegate.service \
    -a -L /etc/systemd/system/timers.target.wants/phonegate-backup.timer
check "the documentation is installed" test -f /usr/share/doc/phonegate/deployment.md

# --- the units ------------------------------------------------------------------------------------
# A warning (an unknown key, a bad syscall group, a missing binary) fails the check too.
verify_quietly() {
    local out
    out=$(systemd-analyze verify "$@" 2>&1) && [ -z "$out" ] || { echo "$out" >&2; false; }
}
check "systemd-analyze verify accepts the units without a warning" \
    verify_quietly "$unit_dir/phonegate.service" "$unit_dir/phonegate-backup.service" "$unit_dir/phonegate-backup.timer"
exposure() { # the unit's exposure score by `systemd-analyze security` (0 best, 10 worst)
    systemd-analyze security --offline=yes "$1" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
check "the server's hardening scores below 2 (systemd-analyze security)" \
    awk -v s="$(exposure $unit_dir/phonegate.service)" 'BEGIN { exit !(s != "" && s < 2) }'

# --- run it as the unit would ----------------------------------------------------------------------
# The unit's values of KEY ([Service] keys are unique in these units; Environment= may repeat).
unit_values() { sed -n "s/^$2=//p" "$1"; }
# ExecStart as arguments: systemd's quoting is the shell's for what these units use; `%%` is a
# percent sign and `$$` a dollar sign (they appear inside single quotes only, so nothing expands).
# Any other specifier or variable is refused rather than misread.
exec_args() {
    local line
    line=$(unit_values "$1" "$2" | head -1)
    local bare=${line//%%/}
    bare=${bare//\$\$/}
    case "$bare" in *%* | *\$*) echo "unsupported specifier or variable in $2=$line" >&2; return 1 ;; esac
    line=${line//%%/%}
    printf '%s\n' "${line//\$\$/\$}"
}

# Starts a command of UNIT (KEY: ExecStart, ExecStartPost) in the background as systemd would,
# with its output in LOG; sets `unit_pid`. Extra VAR=value arguments are added to its environment
# (this test's one change: the port).
run_as_unit() {
    local unit=$1 key=$2 log=$3
    shift 3
    local user group umask state state_mode nofile cmd id path creds
    user=$(unit_values "$unit" User)
    group=$(unit_values "$unit" Group)
    umask=$(unit_values "$unit" UMask)
    state=/var/lib/$(unit_values "$unit" StateDirectory)
    state_mode=$(unit_values "$unit" StateDirectoryMode)
    nofile=$(unit_values "$unit" LimitNOFILE)
    cmd=$(exec_args "$unit" "$key") || return 1
    # StateDirectory=: created, owned by the unit's user, with its mode.
    install -d -o "$user" -g "$group" -m "${state_mode:-0755}" "$state" || return 1
    # LoadCredential=ID[:PATH]: a bare ID is looked up in the credential stores and skipped when
    # missing; a path must exist. The directory and files belong to the unit's user, read-only.
    # Like systemd's /run/credentials/UNIT: the unit's user can reach it (mktemp's 700 would
    # hide it), and only that user can read inside.
    creds="$work/credentials/$(basename "$unit")"
    rm -rf "$creds" && mkdir -p "$creds" && chmod 0711 "$work" "$work/credentials"
    while IFS= read -r entry; do
        id=${entry%%:*}
        path=${entry#*:}
        if [ "$path" = "$entry" ]; then
            path=""
            for store in /etc/credstore /run/credstore /usr/lib/credstore; do
                [ -f "$store/$id" ] && path=$store/$id && break
            done
            [ -n "$path" ] || continue
        fi
        install -o "$user" -g "$group" -m 0400 "$path" "$creds/$id" || return 1
    done < <(unit_values "$unit" LoadCredential)
    chown "$user:$group" "$creds" && chmod 0500 "$creds"
    local -a env=(
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" LOGNAME="$user" SHELL=/usr/sbin/nologin
        STATE_DIRECTORY="$state" CREDENTIALS_DIRECTORY="$creds"
    )
    while IFS= read -r e; do env+=("$e"); done < <(unit_values "$unit" Environment)
    env+=("$@")
    (
        cd /
        umask "${umask:-0022}"
        [ -z "$nofile" ] || ulimit -n "$nofile"
        eval "set -- $cmd"
        # User=, Group=, NoNewPrivileges=, an empty CapabilityBoundingSet= and AmbientCapabilities=.
        exec setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
            --bounding-set=-all --inh-caps=-all --ambient-caps=-all \
            env -i "${env[@]}" "$@"
    ) >>"$log" 2>&1 &
    unit_pid=$!
}

# This test's one change to the unit: a free port instead of the configuration's 8080. Below the
# kernel's range for outgoing connections' ports, so no other process's client takes it meanwhile.
free_port() {
    local port low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for port in $(shuf -i 20000-$((low - 1)) -n 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}
listen="PHONEGATE_LISTEN=127.0.0.1:$(free_port)"
server_unit=$unit_dir/phonegate.service
server_log=$work/server.log

# `phonegate healthcheck` as the service's user with the unit's configuration.
healthcheck() {
    setpriv --reuid=phonegate --regid=phonegate --init-groups env -i "$listen" \
        /usr/bin/phonegate --config /etc/phonegate/phonegate.toml healthcheck --timeout 2s
}
start_server() { # starts it and waits until `phonegate healthcheck` says ready
    run_as_unit "$server_unit" ExecStart "$server_log" "$listen" || return 1
    server=$unit_pid
    for _ in $(seq 120); do
        healthcheck >/dev/null 2>&1 && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.5
    done
    cat "$server_log" >&2
    return 1
}
stop_server() { # SIGTERM, as `systemctl stop` sends: it must exit 0
    kill -TERM "$server" && wait "$server"
    local status=$?
    server=""
    [ "$status" -eq 0 ] || { echo "exit status $status" >&2; tail -5 "$server_log" >&2; false; }
}
process_user() { [ "$(ps -o user= -p "$server")" = phonegate ]; }
ready_json() { curl -fsS "http://${listen#*=}/readyz" | grep -q '"status":"ready"'; }
logged() { grep -q "$1" "$server_log" || { echo "not in the log: $1" >&2; false; }; }

check "the server starts as the unit would and is ready (phonegate healthcheck)" start_server
[ -n "$server" ] || abort "the server did not start"
check "it runs as the user phonegate" process_user
check "GET /readyz answers ready" ready_json
check "it read /etc/phonegate/phonegate.toml (its database is in the state directory)" logged "sqlite:///var/lib/phonegate/phonegate.db"
check "the state directory: phonegate 700" owner_mode /var/lib/phonegate "phonegate:phonegate 700"
check "the database: phonegate 600 (UMask=0077)" owner_mode /var/lib/phonegate/phonegate.db "phonegate:phonegate 600"
check "SIGTERM stops it cleanly" stop_server
not_ready() { ! healthcheck >/dev/null 2>&1; }
check "phonegate healthcheck fails when nothing answers" not_ready

# The key file and `phonegate backup`.
check "the server created its key file next to the database: phonegate 600" \
    owner_mode /var/lib/phonegate/phonegate-secret "phonegate:phonegate 600"
# Kept elsewhere, the key reaches the server as the credential phonegate-secret: without it
# this database would not open.
mkdir -p -m 0700 /etc/credstore && credstore_made=1
mv /var/lib/phonegate/phonegate-secret /etc/credstore/phonegate-secret && chmod 0600 /etc/credstore/phonegate-secret
check "with the key only in /etc/credstore, LoadCredential= hands it to the server: ready" start_server
[ -z "$server" ] || check "SIGTERM stops it cleanly" stop_server
mv /etc/credstore/phonegate-secret /var/lib/phonegate/phonegate-secret
backup_unit=$unit_dir/phonegate-backup.service
backup() {
    run_as_unit "$backup_unit" ExecStart "$work/backup.log" && wait "$unit_pid" &&
        run_as_unit "$backup_unit" ExecStartPost "$work/backup.log" && wait "$unit_pid" ||
        { cat "$work/backup.log" >&2; false; }
}
check "phonegate-backup.service writes a backup" backup
made=$(find /var/backups/phonegate -name 'phonegate-*.db' | head -1)
check "the backup: phonegate 600" owner_mode "${made:-/nonexistent}" "phonegate:phonegate 600"

# --- purge --------------------------------------------------------------------------------------------
purge() { dpkg --purge phonegate >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; false; }; }
gone() { local f; for f in "$@"; do [ ! -e "$f" ] && [ ! -L "$f" ] || { echo "still there: $f" >&2; return 1; }; done; }
check "dpkg --purge removes it" purge
check "its files are gone" gone /usr/bin/phonegate /etc/phonegate "$unit_dir/phonegate.service" \
    "$unit_dir/phonegate-backup.service" "$unit_dir/phonegate-backup.timer" /usr/lib/sysusers.d/phonegate.conf \
    /usr/lib/tmpfiles.d/phonegate.conf /usr/share/doc/phonegate \
    /etc/systemd/system/multi-user.target.wants/phonegate.service /etc/systemd/system/timers.target.wants/phonegate-backup.timer
check "the data stays, and the purge says so" bash -c "[ -f /var/lib/phonegate/phonegate.db ] && grep -q '/var/lib/phonegate is kept' '$work/purge.log'"

finish
