#!/usr/bin/env bash
# Test on a Slurm cluster through srun, one task per GPU.
#   tools/slurm_test.sh <partition> <job name> <config> <checkpoint> <num gpus> [test.py args]
# Options from the environment: see tools/_launch.sh.
exec bash "$(dirname "$0")/_launch.sh" slurm test "$@"
