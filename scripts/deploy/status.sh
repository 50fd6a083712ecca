#!/usr/bin/env bash
# Thin wrapper: scripts/deploy/status.sh --env ENV [options]; see `python -m release status --help`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "${HELIONYX_PYTHON:-$root/.venv/bin/python}" -m release --repo "$root" status "$@"
