#!/usr/bin/env bash
# Distributed train through torchrun (gloo CPU processes without GPUs).
#   tools/dist_train.sh <config> <num gpus> [train.py args]
# Options from the environment: see tools/_launch.sh.
exec bash "$(dirname "$0")/_launch.sh" dist train "$@"
