#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/db -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The locked versions (with hashes), then the package itself without re-resolving anything.
.venv/bin/python -m pip install --quiet -r requirements-dev.lock
.venv/bin/python -m pip install --quiet --no-deps -e .

# Browser tests drive Debian's Chromium (never a downloaded browser build).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

# The PgBouncer tests drive Debian's pgbouncer; without it (no apt, no network) they are
# skipped with that reason, so a failed install does not stop the run.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  { $as_root apt-get update -qq \
      && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } \
    || echo "pgbouncer could not be installed: its tests will be skipped" >&2
fi

exec .venv/bin/pytest "$@"
