#!/usr/bin/env bash
# Run every check: lint, strict types, and all test suites against a real PostgreSQL and a real Kafka
# broker, which the test fixtures start through deploy/postgres.sh and deploy/kafka.sh (installing
# PostgreSQL, Java and Maven from Debian packages, and the Kafka jars from Maven Central, when missing).
# Arguments go to pytest, e.g. `deploy/test.sh -m "not kafka"` or `deploy/test.sh tests/contract`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/deploy/venv.sh" dev
BIN="${CRM_VENV:-$ROOT/.venv}/bin"

echo "== ruff (lint and format)"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
echo "== mypy --strict (shared, services, tests)"
"$BIN/mypy"
"$BIN/mypy" tests
echo "== pytest"
exec "$BIN/python" -m pytest -ra "$@"
