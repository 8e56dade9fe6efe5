#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (run after changing a dependency; commit both).
# requirements.lock: what `serve` needs; requirements-dev.lock: that plus the s3 and dev extras.
# Needs uv (`pip install uv`); versions resolve for Python 3.11 on every platform.
set -euo pipefail
cd "$(dirname "$0")/.."

compile() {
  uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
    --no-header --quiet "$@"
}
compile -o requirements.lock
compile --extra s3 --extra dev -o requirements-dev.lock
