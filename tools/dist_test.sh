#!/usr/bin/env bash
# Distributed test through torchrun (gloo CPU processes without GPUs).
#   tools/dist_test.sh <config> <checkpoint> <num gpus> [test.py args]
# Options from the environment: see tools/_launch.sh.
exec bash "$(dirname "$0")/_launch.sh" dist test "$@"
