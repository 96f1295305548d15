#!/usr/bin/env bash
# The launcher behind tools/{dist,slurm}_{train,test}.sh and
# tools/dist_knn_eval.sh:
#   _launch.sh <dist|slurm> <train|test> [<partition> <job>] <config> [<checkpoint>] <gpus> [args]
# dist: torchrun, one process per GPU (gloo CPU processes without GPUs);
#   multi-node through NNODES, NODE_RANK, MASTER_ADDR, PORT.
# slurm: srun, one task per GPU; GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS.
set -euo pipefail
MODE=$1
KIND=$2
shift 2
USAGE="<config> <num gpus> [$KIND.py args]"
NEED=2
if [ "$KIND" = test ]; then
    USAGE="<config> <checkpoint> <num gpus> [$KIND.py args]"
    NEED=3
fi
if [ "$MODE" = slurm ]; then
    USAGE="<partition> <job name> $USAGE"
    NEED=$(( NEED + 2 ))
fi
if [ $# -lt $NEED ]; then
    echo "usage: tools/${MODE}_${KIND}.sh $USAGE" >&2
    exit 2
fi
if [ "$MODE" = slurm ]; then
    PARTITION=$1
    JOB_NAME=$2
    shift 2
fi
TOOL_ARGS=("$1")  # config (and checkpoint)
shift
if [ "$KIND" = test ]; then
    TOOL_ARGS+=("$1")
    shift
fi
GPUS=$1
shift
case "$GPUS" in
    ''|*[!0-9]*|0)
        echo "error: <num gpus> must be a positive integer, got '$GPUS' (usage: tools/${MODE}_${KIND}.sh $USAGE)" >&2
        exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"

if [ "$MODE" = dist ]; then
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$GPUS" \
        "$ROOT/tools/$KIND.py" "${TOOL_ARGS[@]}" --launcher pytorch "$@"
fi
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "$PYTHON" -u "$ROOT/tools/$KIND.py" "${TOOL_ARGS[@]}" --launcher slurm "$@"
