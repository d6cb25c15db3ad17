#!/usr/bin/env bash
# The real search of tuning/README.md: ResNet-20 on CIFAR-10, PSConv2D's cyclic interval and
# pattern, TreeConv2D's depth and TreeAttention's group size (one choice for the whole network,
# comparable with the papers' choices), Hyperband with rounds of 1, 3 and 9 epochs (23 trials,
# 75 epochs of 10,000 images in all).
#
# Resumable: run the same command again after an interruption; KerasTuner reloads the project
# folder and re-runs the trial that was interrupted. Extra arguments are appended (later ones
# win), e.g. a smoke run of the real configuration on a small subset:
#
#   RUN_DIR=/tmp/smoke tuning/run_search.sh --max-trials 1 --epochs 1 --train-subset 512
#
# Environment: RUN_DIR (default tuning/runs/resnet20_cifar10), PYTHON (default .venv/bin/python),
# NICE (default 10), KERAS_STRUCTCONV_DATA (the folder holding cifar10/train.npz, test.npz).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-tuning/runs/resnet20_cifar10}
exec nice -n "${NICE:-10}" "${PYTHON:-.venv/bin/python}" -m keras_structconv.cli tune \
    --backbone ResNet20 --operators psconv,treeconv,tam --global \
    --tuner hyperband --epochs 9 --max-trials 40 \
    --data cifar10 --train-subset 10000 --val-size 5000 --data-seed 0 \
    --batch-size 128 --learning-rate 0.1 --weight-decay 5e-4 --seed 0 \
    --dir "$RUN_DIR" --project resnet20_cifar10 \
    "$@"
