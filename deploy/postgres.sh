#!/usr/bin/env bash
# Private PostgreSQL instance for development and tests: its own data dir,
# listening only on PG_HOST:PG_PORT, unix socket inside the data dir.
#
#   deploy/postgres.sh start|stop|status|reset
#
# Environment (defaults):
#   PG_HOST=127.0.0.1   PG_PORT=55432   PG_USER=crm   PG_PASSWORD=crm
#   PG_DATA_DIR=<repo>/.infra/postgres-$PG_PORT
#   PG_BIN=<dir with initdb/pg_ctl>  (default: newest /usr/lib/postgresql/*/bin,
#                                     else initdb on PATH)
#
# `start` prints exactly one line on stdout, PG_URL=postgresql://...;
# everything else goes to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"

PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-55432}"
PG_USER="${PG_USER:-crm}"
PG_PASSWORD="${PG_PASSWORD:-crm}"
PG_DATA_DIR="${PG_DATA_DIR:-$REPO_DIR/.infra/postgres-$PG_PORT}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$PG_DATA_DIR" in
    /*) ;;
    *) PG_DATA_DIR="$(pwd -P)/$PG_DATA_DIR" ;;
esac
LOG_FILE="$PG_DATA_DIR/postgres.log"
SUPERUSER=postgres   # bootstrap superuser, reached over the private unix socket

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1

# --- binaries ----------------------------------------------------------------

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] && { echo "$PG_BIN"; return 0; }
        return 1
    fi
    local d
    # Debian/Ubuntu keep the server binaries off PATH, one dir per major.
    # shellcheck disable=SC2012  # plain version dirs, sorted by version
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
        echo "$d"; return 0
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

install_postgres() {
    local sudo=()
    if [[ $IS_ROOT != 1 ]]; then
        command -v sudo >/dev/null 2>&1 || die "PostgreSQL server binaries (initdb, pg_ctl) not found and not root/no sudo; install the 'postgresql' package or set PG_BIN"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries not found and no apt-get; install PostgreSQL or set PG_BIN"
    log "PostgreSQL server binaries not found; running: ${sudo[*]:+${sudo[*]} }apt-get update && apt-get install -y postgresql"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
}

resolve_bin() {
    if ! PG_BIN="$(find_pg_bin)"; then
        [[ -z "${PG_BIN:-}" ]] || die "PG_BIN=$PG_BIN has no initdb/pg_ctl"
        install_postgres
        PG_BIN="$(find_pg_bin)" || die "initdb/pg_ctl still not found after installing postgresql"
    fi
}

# Run a server binary as the data dir's owner: initdb and pg_ctl refuse root,
# so as root everything runs as the `postgres` OS user.
as_owner() {
    if [[ $IS_ROOT == 1 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# --- state -------------------------------------------------------------------

# pid of the postmaster if this data dir's server is running.
live_pid() {
    [[ -f "$PG_DATA_DIR/postmaster.pid" ]] || return 1
    local pid
    pid="$(head -n 1 "$PG_DATA_DIR/postmaster.pid" | tr -dc '0-9')"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q postgres || return 1
    fi
    echo "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Make sure the postgres OS user can traverse every parent of the data dir.
ensure_reachable() {
    local d
    d="$(dirname "$PG_DATA_DIR")"
    while [[ "$d" != "/" ]]; do
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            log "granting search permission (chmod o+x) on $d so the postgres user can reach $PG_DATA_DIR"
            chmod o+x "$d"
        fi
        d="$(dirname "$d")"
    done
}

prepare_data_dir() {
    if [[ $IS_ROOT == 1 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user to own the cluster"
    fi
    mkdir -p "$(dirname "$PG_DATA_DIR")"
    if [[ ! -f "$PG_DATA_DIR/PG_VERSION" ]]; then
        if [[ -d "$PG_DATA_DIR" ]] && [[ -n "$(ls -A "$PG_DATA_DIR")" ]]; then
            die "$PG_DATA_DIR exists, is not empty and is not a PostgreSQL data dir"
        fi
        mkdir -p "$PG_DATA_DIR"
        chmod 700 "$PG_DATA_DIR"
        if [[ $IS_ROOT == 1 ]]; then
            chown postgres:postgres "$PG_DATA_DIR"
            ensure_reachable
        fi
        log "initdb $PG_DATA_DIR ($("$PG_BIN/initdb" --version))"
        as_owner "$PG_BIN/initdb" -D "$PG_DATA_DIR" -U "$SUPERUSER" \
            --encoding=UTF8 --no-locale \
            --auth-local=trust --auth-host=scram-sha-256 >&2
        # Only the data dir's owner can open the socket, so local trust is safe;
        # TCP (127.0.0.1 only) needs a password.
        as_owner sh -c "cat > '$PG_DATA_DIR/pg_hba.conf'" <<'EOF'
# generated by deploy/postgres.sh
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
EOF
        as_owner sh -c "printf '\n# deploy/postgres.sh: listen address, port, socket dir\ninclude_if_exists = '\''crm.conf'\''\n' >> '$PG_DATA_DIR/postgresql.conf'"
    elif [[ $IS_ROOT == 1 ]]; then
        ensure_reachable
    fi
    # Rewritten on every start so PG_HOST/PG_PORT changes take effect.
    as_owner sh -c "cat > '$PG_DATA_DIR/crm.conf'" <<EOF
# generated by deploy/postgres.sh on every start
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_DATA_DIR'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
EOF
}

ensure_role() {
    as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DATA_DIR" -p "$PG_PORT" \
        -U "$SUPERUSER" -d postgres -v user="$PG_USER" -v pw="$PG_PASSWORD" >&2 <<'EOF'
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN CREATEDB PASSWORD :'pw';
EOF
}

urlencode() {
    local s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [a-zA-Z0-9._~-]) out+="$c" ;;
            *) out+="$(printf '%%%02X' "'$c")" ;;
        esac
    done
    printf '%s' "$out"
}

print_url() {
    echo "PG_URL=postgresql://$(urlencode "$PG_USER"):$(urlencode "$PG_PASSWORD")@$PG_HOST:$PG_PORT/postgres"
}

# --- commands ----------------------------------------------------------------

cmd_start() {
    resolve_bin
    local pid
    if pid="$(live_pid)"; then
        log "postgres already running at $PG_HOST:$PG_PORT (pid $pid)"
        ensure_role
        print_url
        return 0
    fi
    if port_open "$PG_HOST" "$PG_PORT"; then
        die "port $PG_HOST:$PG_PORT is already in use by another process (not the server of $PG_DATA_DIR)"
    fi
    local sock="$PG_DATA_DIR/.s.PGSQL.$PG_PORT"
    (( ${#sock} < 108 )) || die "unix socket path $sock is too long (max 107 bytes); use a shorter PG_DATA_DIR"

    prepare_data_dir
    log "starting PostgreSQL at $PG_HOST:$PG_PORT (data $PG_DATA_DIR)"
    if ! as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR" -l "$LOG_FILE" -w -t "$PG_START_TIMEOUT" start >&2; then
        log "pg_ctl start failed; last 40 lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
        exit 1
    fi
    local deadline=$((SECONDS + PG_START_TIMEOUT))
    until "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -d postgres; do
        if (( SECONDS >= deadline )); then
            tail -n 40 "$LOG_FILE" >&2 || true
            die "pg_isready did not succeed within ${PG_START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    ensure_role
    log "postgres ready at $PG_HOST:$PG_PORT (pid $(live_pid || echo '?'))"
    print_url
}

cmd_stop() {
    if ! live_pid >/dev/null; then
        log "not running"
        return 0
    fi
    resolve_bin
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR" -m fast -w stop >&2
}

cmd_status() {
    local pid
    if pid="$(live_pid)"; then
        echo "running pid $pid at $PG_HOST:$PG_PORT"
        return 0
    fi
    echo "not running"
    return 3
}

cmd_reset() {
    cmd_stop
    if [[ -d "$PG_DATA_DIR" ]]; then
        if [[ -f "$PG_DATA_DIR/PG_VERSION" || -z "$(ls -A "$PG_DATA_DIR")" ]]; then
            rm -rf "$PG_DATA_DIR"
            log "deleted $PG_DATA_DIR"
        else
            die "$PG_DATA_DIR does not look like a PostgreSQL data dir; not deleting"
        fi
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
