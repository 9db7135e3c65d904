#!/usr/bin/env bash
# Single-node KRaft Kafka (combined broker + controller) assembled from Maven
# Central jars -- no Docker, no release tarball.
#
#   deploy/kafka.sh start|stop|status|restart|reset
#
# Environment (defaults):
#   KAFKA_VERSION=4.1.1          KAFKA_HOST=127.0.0.1
#   KAFKA_PORT=9092              KAFKA_CONTROLLER_PORT=9093
#   KAFKA_PARTITIONS=3           KAFKA_DATA_DIR=<repo>/.infra/kafka-$KAFKA_PORT
#   CRM_CACHE_DIR=$HOME/.cache/crm   (jars in $CRM_CACHE_DIR/kafka-$KAFKA_VERSION/libs)
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx1g"
#   KAFKA_START_TIMEOUT=120      KAFKA_STOP_TIMEOUT=30   (seconds)
#
# `start` prints exactly one line on stdout, KAFKA_BOOTSTRAP=HOST:PORT;
# everything else goes to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-3}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO_DIR/.infra/kafka-$KAFKA_PORT}"
CRM_CACHE_DIR="${CRM_CACHE_DIR:-$HOME/.cache/crm}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J2_CONFIG="$SCRIPT_DIR/kafka/log4j2.properties"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA="java"
fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/install_packages.sh
source "$SCRIPT_DIR/lib/install_packages.sh"

# Absolute paths, whatever the caller's cwd.
abspath() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
    esac
}
KAFKA_DATA_DIR="$(abspath "$KAFKA_DATA_DIR")"
CRM_CACHE_DIR="$(abspath "$CRM_CACHE_DIR")"

CACHE_DIR="$CRM_CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS_DIR="$CACHE_DIR/libs"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DATA_DIR/kafka.log"
PROPS_FILE="$KAFKA_DATA_DIR/server.properties"
CLUSTER_ID_FILE="$KAFKA_DATA_DIR/cluster.id"
LOG_DIRS="$KAFKA_DATA_DIR/logs"

# --- process helpers ---------------------------------------------------------

# Prints the pid from the pid file if it names a live broker for this data dir.
live_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must be our broker.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$PROPS_FILE" || return 1
    fi
    printf '%s\n' "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

with_lock() {
    # Serialise start/stop on one data dir (two callers racing on `start`).
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$KAFKA_DATA_DIR/.lock"
        flock 9
    fi
}

# --- classpath ---------------------------------------------------------------

ensure_jars() {
    if [[ -f "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        return 0
    fi
    # Maven is needed once, to fetch the Kafka jars into the cache.
    install_packages mvn maven
    mkdir -p "$CACHE_DIR"
    local have_lock=0
    if command -v flock >/dev/null 2>&1; then
        exec 8>"$CACHE_DIR/.lock"
        flock 8
        have_lock=1
    fi
    # Another broker may have fetched the jars while we waited for the lock.
    if [[ ! -f "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        log "fetching Kafka $KAFKA_VERSION jars from Maven Central (first run only)"
        local tmp
        tmp="$(mktemp -d "$CACHE_DIR/.fetch.XXXXXX")"
        # Run Maven on a copy of the pom so nothing (target/) lands in the repo.
        cp "$POM" "$tmp/pom.xml"
        # (sed strips the bare ANSI resets Maven 3.8 prints even with -q)
        if ! mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
            "$DEP_PLUGIN:copy-dependencies" \
            -DincludeScope=runtime -DoutputDirectory="$tmp/libs" 2>&1 |
            sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
            rm -rf "$tmp"
            die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
        fi
        [[ -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
        rm -rf "$LIBS_DIR"
        mv "$tmp/libs" "$LIBS_DIR"   # atomic: a half download never looks complete
        rm -rf "$tmp"
        log "cached $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $LIBS_DIR"
    fi
    if [[ $have_lock == 1 ]]; then
        exec 8>&-
    fi
}

java_cmd() {
    # shellcheck disable=SC2206
    local heap=($KAFKA_HEAP_OPTS)
    printf '%s\0' "$JAVA" "${heap[@]}" \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J2_CONFIG" \
        -Dkafka.logs.dir="$KAFKA_DATA_DIR" \
        -cp "$LIBS_DIR/*"
}

run_tool() {
    local cmd=()
    while IFS= read -r -d '' a; do cmd+=("$a"); done < <(java_cmd)
    "${cmd[@]}" "$@"
}

# --- config and storage ------------------------------------------------------

write_properties() {
    local major="${KAFKA_VERSION%%.*}"
    {
        echo "# generated by deploy/kafka.sh -- rewritten on every start"
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
        echo "listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
        echo "advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "controller.listener.names=CONTROLLER"
        echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        echo "log.dirs=$LOG_DIRS"
        echo "num.partitions=$KAFKA_PARTITIONS"
        echo "auto.create.topics.enable=true"
        # As the product creates its topics: a topic made by a first publish has append times too.
        echo "log.message.timestamp.type=LogAppendTime"
        echo "default.replication.factor=1"
        echo "min.insync.replicas=1"
        echo "offsets.topic.replication.factor=1"
        echo "offsets.topic.num.partitions=1"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        if [[ "$major" =~ ^[0-9]+$ ]] && (( major >= 4 )); then
            echo "share.coordinator.state.topic.replication.factor=1"
            echo "share.coordinator.state.topic.min.isr=1"
        fi
        echo "group.initial.rebalance.delay.ms=0"
    } >"$PROPS_FILE"
}

format_storage() {
    local cid
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cid="$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")"
    else
        cid="$(run_tool kafka.tools.StorageTool random-uuid 2>>"$LOG_FILE" | tail -n 1 | tr -d '[:space:]')"
        [[ -n "$cid" ]] || die "kafka.tools.StorageTool random-uuid produced no id (see $LOG_FILE)"
        printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
    fi
    if ! run_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS_FILE" --ignore-formatted >>"$LOG_FILE" 2>&1; then
        tail -n 40 "$LOG_FILE" >&2
        die "storage format failed"
    fi
}

# --- commands ----------------------------------------------------------------

cmd_start() {
    mkdir -p "$KAFKA_DATA_DIR"
    with_lock
    local pid
    if pid="$(live_pid)"; then
        log "kafka already running at $KAFKA_HOST:$KAFKA_PORT (pid $pid)"
        echo "KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT"
        return 0
    fi
    rm -f "$PID_FILE"
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$KAFKA_HOST" "$p"; then
            die "port $KAFKA_HOST:$p is already in use by another process (not the broker of $KAFKA_DATA_DIR)"
        fi
    done
    [[ "$JAVA" == java ]] && install_packages java openjdk-17-jre-headless
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Java 17+ required)"

    local t0=$SECONDS
    ensure_jars
    mkdir -p "$LOG_DIRS"
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
    : >"$LOG_FILE"
    write_properties
    format_storage

    log "starting Kafka $KAFKA_VERSION at $KAFKA_HOST:$KAFKA_PORT (data $KAFKA_DATA_DIR)"
    local cmd=()
    while IFS= read -r -d '' a; do cmd+=("$a"); done < <(java_cmd)
    cmd+=(kafka.Kafka "$PROPS_FILE")
    # New session so the broker survives the calling shell; the child writes
    # its own pid before exec'ing java, so the pid file names the JVM.
    local launcher=(nohup)
    command -v setsid >/dev/null 2>&1 && launcher=(setsid nohup)
    # shellcheck disable=SC2016  # $$ and $@ are for the child shell
    "${launcher[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" "${cmd[@]}" \
        </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
    local waited=0
    while [[ ! -s "$PID_FILE" ]] && (( waited < 50 )); do sleep 0.1; waited=$((waited + 1)); done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || die "broker process did not start"

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker exited during startup; last 40 log lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            exit 1
        fi
        if grep -qF "Kafka Server started" "$LOG_FILE" && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
            break
        fi
        if (( SECONDS >= deadline )); then
            log "broker not ready after ${KAFKA_START_TIMEOUT}s; last 40 log lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        sleep 0.2
    done
    log "kafka ready at $KAFKA_HOST:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
    echo "KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT"
}

cmd_stop() {
    [[ -d "$KAFKA_DATA_DIR" ]] || { log "not running"; return 0; }
    with_lock
    local pid
    if ! pid="$(live_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping kafka pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(live_pid)"; then
        echo "running pid $pid at $KAFKA_HOST:$KAFKA_PORT"
        return 0
    fi
    echo "not running"
    return 3
}

cmd_reset() {
    cmd_stop
    if [[ -d "$KAFKA_DATA_DIR" ]]; then
        # Only delete something that looks like a data dir this script made.
        if [[ -f "$PROPS_FILE" || -f "$CLUSTER_ID_FILE" || -f "$KAFKA_DATA_DIR/.lock" ]]; then
            rm -rf "$KAFKA_DATA_DIR"
            log "deleted $KAFKA_DATA_DIR"
        else
            die "$KAFKA_DATA_DIR does not look like a kafka.sh data dir; not deleting"
        fi
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop; cmd_start ;;
    reset) cmd_reset ;;
    *) echo "usage: $0 start|stop|status|restart|reset" >&2; exit 2 ;;
esac
