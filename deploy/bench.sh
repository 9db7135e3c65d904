#!/usr/bin/env bash
# Benchmark the product in embedded and distributed mode, each scenario against a baseline measured in
# the same run, and write var/bench/report.md and report.json.
#
#   deploy/bench.sh [bench options, e.g. --duration 5 --events 2000 --scenario relay]
#
# Makes sure .venv holds the dev dependencies, installs wrk from Debian packages when missing, starts a
# Kafka broker and a PostgreSQL server of its own through deploy/kafka.sh and deploy/postgres.sh (and
# stops them again at the end, also on failure or Ctrl-C; servers that were already running are left
# running), then runs `python -m services.bench --mode both`. Arguments go to the bench command.
#
# Environment (defaults):
#   BENCH_KAFKA_PORT=29092                 BENCH_KAFKA_CONTROLLER_PORT=29093
#   BENCH_POSTGRES_PORT=56432
#   BENCH_KAFKA_DATA_DIR=<repo>/.infra/bench-kafka
#   BENCH_POSTGRES_DATA_DIR=<repo>/.infra/bench-postgres
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${CRM_VENV:-$ROOT/.venv}/bin"

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/install_packages.sh
source "$ROOT/deploy/lib/install_packages.sh"

KAFKA_ENV=(
    KAFKA_PORT="${BENCH_KAFKA_PORT:-29092}"
    KAFKA_CONTROLLER_PORT="${BENCH_KAFKA_CONTROLLER_PORT:-29093}"
    KAFKA_DATA_DIR="${BENCH_KAFKA_DATA_DIR:-$ROOT/.infra/bench-kafka}"
)
PG_ENV=(
    PG_PORT="${BENCH_POSTGRES_PORT:-56432}"
    PG_DATA_DIR="${BENCH_POSTGRES_DATA_DIR:-$ROOT/.infra/bench-postgres}"
)
kafka() { env "${KAFKA_ENV[@]}" "$ROOT/deploy/kafka.sh" "$@"; }
postgres() { env "${PG_ENV[@]}" "$ROOT/deploy/postgres.sh" "$@"; }

# Where the report goes: the last --out among the arguments, as the bench command reads it.
OUT=var/bench
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --out) OUT="${args[i + 1]:-$OUT}" ;;
        --out=*) OUT="${args[i]#--out=}" ;;
    esac
done

STARTED=()
RUN_STAMP="$(mktemp)"   # a report newer than this was written by this run
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local what
    for what in "${STARTED[@]}"; do
        "$what" stop || log "could not stop $what"
    done
    if [[ "$OUT/report.md" -nt "$RUN_STAMP" ]]; then
        log "report: $OUT/report.md (and report.json; server logs in $OUT/logs)"
    fi
    rm -f "$RUN_STAMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ROOT/deploy/venv.sh" dev
install_packages wrk wrk

# Remember what this run starts before starting it, so that a start failing half-way is cleaned up too.
kafka status >/dev/null 2>&1 || STARTED+=(kafka)
KAFKA_BOOTSTRAP="$(kafka start | sed -n 's/^KAFKA_BOOTSTRAP=//p')"
[[ -n "$KAFKA_BOOTSTRAP" ]] || die "deploy/kafka.sh start printed no KAFKA_BOOTSTRAP"
postgres status >/dev/null 2>&1 || STARTED+=(postgres)
PG_URL="$(postgres start | sed -n 's/^PG_URL=//p')"
[[ -n "$PG_URL" ]] || die "deploy/postgres.sh start printed no PG_URL"

"$BIN/python" -m services.bench --mode both --kafka "$KAFKA_BOOTSTRAP" --postgres "$PG_URL" "$@"
