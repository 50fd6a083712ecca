#!/usr/bin/env bash
# Thin wrapper: scripts/deploy/deploy.sh --env ENV [options]; see `python -m release deploy --help`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "${HELIONYX_PYTHON:-$root/.venv/bin/python}" -m release --repo "$root" deploy "$@"
