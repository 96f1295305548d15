#!/usr/bin/env bash
# Distributed k-NN evaluation through torchrun: each process extracts a
# share of the images, the features are all-gathered, rank 0 classifies.
#   tools/dist_knn_eval.sh <config> <num gpus> [knn_eval.py args]
# Options from the environment: see tools/_launch.sh.
exec bash "$(dirname "$0")/_launch.sh" dist knn_eval "$@"
