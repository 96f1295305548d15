#!/usr/bin/env bash
# A suite whose evaluations each run on <num gpus> processes through
# tools/dist_{train,test,knn_eval}.sh (gloo CPU processes without GPUs).
#   tools/dist_suite.sh <backbone config> <checkpoint> <num gpus> [run_suite.py args]
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: tools/dist_suite.sh <backbone config> <checkpoint> <num gpus> [run_suite.py args]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
exec "$PYTHON" "$ROOT/tools/run_suite.py" "$CONFIG" "$CHECKPOINT" --gpus "$GPUS" "$@"
