#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU.
#   tools/slurm_train.sh <partition> <job name> <config> <num gpus> [train.py args]
# GPUS_PER_NODE (default 8), CPUS_PER_TASK (5) and SRUN_ARGS are read from
# the environment.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 <partition> <job name> <config> <num gpus> [train.py args]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
shift 2
CONFIG=$1
GPUS=$2
shift 2
source "$(dirname "$0")/_python.sh"
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "$@"
