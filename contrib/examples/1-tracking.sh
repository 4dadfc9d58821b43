#!/bin/sh
# Workflow 1, tracking: train a tiny model three times with plain file
# writes (train.py imports nothing of MLflow), compare two runs with diff -r,
# pick the best with grep and sort, and copy its model out.
#
#   sh 1-tracking.sh [MOUNTPOINT [EXPERIMENT [OUT]]]
#
# MOUNTPOINT is an mlflowfs mount (~/mlruns); EXPERIMENT is made if missing
# (tracking-demo); the best model is copied to OUT (./best-model).
set -eu
mnt=${1:-$HOME/mlruns}
exp=$mnt/experiments/${2:-tracking-demo}
out=${3:-./best-model}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$exp"
for lr in 0.5 0.05 0.005; do
	mkdir "$exp/lr=$lr"                       # a run, RUNNING
	python3 "$here/train.py" --lr "$lr" --epochs 8 "$exp/lr=$lr"
done
diff -r "$exp/lr=0.5/params" "$exp/lr=0.05/params" || true
best=$(grep -H . "$exp"/*/metrics/acc | sort -t: -k2 -g | tail -n 1)
best=${best%%/metrics/acc:*}
echo "best run: ${best##*/}, acc $(cat "$best/metrics/acc")"
rm -rf "$out"
cp -r "$best/artifacts/model" "$out"
