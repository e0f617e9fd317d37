#!/usr/bin/env bash
# Runs the whole test suite (slow tests included) in the project's venv, spread over
# RECDISTILL_TEST_WORKERS pytest-xdist processes (default 2, the CI's cores; 0 runs in this
# process). Whole files go to a worker (module fixtures such as a kfp.local run are built once),
# slow files first (tests/conftest.py orders them); the 30 slowest tests are listed at the end.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${RECDISTILL_TEST_WORKERS:-2}" \
  --dist loadfile --no-loadscope-reorder --durations=30 "$@"
