#!/usr/bin/env bash
# Set up the environment if needed (idempotent; the first run builds mmcv,
# about 27 minutes on 2 cores), then run the test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k dino`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tools/setup_env.py
VENV="${MMBCSSL_VENV:-.venv}"
# Tests marked `slow` are covered by faster ones and stay out of CI.
exec "$VENV/bin/python" -m pytest -m "not slow" -q "$@"
