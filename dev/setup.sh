#!/usr/bin/env bash
# Creates (or reuses) .venv and installs recdistill with the pinned stack from constraints.txt.
# Idempotent: when setup.py and constraints.txt are unchanged since the last install, it only
# checks the venv and returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.recdistill-install
want=$(cat setup.py constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade "pip==26.3" >/dev/null
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
echo "recdistill installed in $(pwd)/.venv"
