#!/usr/bin/env bash
# Make sure .venv holds the locked dependencies and the project itself.
#
#   deploy/venv.sh runtime   # what `crm` needs to run (requirements/runtime.txt)
#   deploy/venv.sh dev       # plus test, lint and type-check tools (requirements/dev.txt)
#
# Needs only Python 3.11+ with its venv module. Pins and hashes come from the lock file; a second run
# with an unchanged lock does nothing. Set PYTHON to choose the interpreter, CRM_VENV to move the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIND="${1:-runtime}"
LOCK="$ROOT/requirements/$KIND.txt"
VENV="${CRM_VENV:-$ROOT/.venv}"

log() { printf 'venv.sh: %s\n' "$*" >&2; }
[[ -f "$LOCK" ]] || { log "no lock file $LOCK (kinds: runtime, dev)"; exit 2; }

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    python=$(find_python) || { log "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)"; exit 2; }
    log "creating $VENV with $($python --version)"
    "$python" -m venv "$VENV" || {
        log "could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv"
        exit 2
    }
fi

stamp="$VENV/.crm-$KIND.lock-sha256"
wanted=$(cat "$LOCK" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    exit 0
fi

log "installing locked $KIND dependencies into $VENV (first run only)"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/python" -m pip install --quiet --require-hashes -r "$LOCK"
"$VENV/bin/python" -m pip install --quiet --no-deps -e "$ROOT"
echo "$wanted" > "$stamp"
