#!/usr/bin/env bash
# Thin wrapper: scripts/deploy/restart.sh --env ENV [options]; see `python -m release restart --help`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "${HELIONYX_PYTHON:-$root/.venv/bin/python}" -m release --repo "$root" restart "$@"
