#!/usr/bin/env bash
# Run the product: all four services in one process (embedded mode), on http://127.0.0.1:8000.
# Installs what it needs into .venv on first use. Arguments go to `crm dev` (e.g. --port 9000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/deploy/venv.sh" runtime
exec "${CRM_VENV:-$ROOT/.venv}/bin/crm" dev "$@"
