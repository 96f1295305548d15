#!/usr/bin/env bash
# Train on a Slurm cluster through srun, one task per GPU.
#   tools/slurm_train.sh <partition> <job name> <config> <num gpus> [train.py args]
# Options from the environment: see tools/_launch.sh.
exec bash "$(dirname "$0")/_launch.sh" slurm train "$@"
