#!/usr/bin/env bash
# Set up the environment if needed (idempotent), generate the built-in demo
# data and run the demo pipeline on it. Outputs go to work_dirs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tools/setup_env.py
VENV="${MMBCSSL_VENV:-.venv}"
exec "$VENV/bin/python" tools/run_demo.py "$@"
