#!/bin/sh
# Workflow 2, the registry: register the best run's model, promote it (stage
# Production, alias champion), deploy by copying the champion out; then
# train a better one, register and promote it, and archive the old one.
#
#   sh 2-registry.sh [MOUNTPOINT [EXPERIMENT [MODEL [OUT]]]]
#
# EXPERIMENT holds runs made by 1-tracking.sh (tracking-demo); MODEL is
# made if missing (demo-model); the champion is deployed into OUT
# (./deployed).
set -eu
mnt=${1:-$HOME/mlruns}
exp=$mnt/experiments/${2:-tracking-demo}
model=$mnt/models/${3:-demo-model}
out=${4:-./deployed}
here=$(cd "$(dirname "$0")" && pwd)

# The newest version of the model, after an ln -s registered one.
newest() { ls "$model/versions" | sort -n | tail -n 1; }

best=$(grep -H . "$exp"/*/metrics/acc | sort -t: -k2 -g | tail -n 1)
best=${best%%/metrics/acc:*}
mkdir -p "$model"
ln -s "$best/artifacts/model" "$model/versions/new"
v=$(newest)
echo Production > "$model/versions/$v/stage"
ln -sfn "../versions/$v" "$model/aliases/champion"
rm -rf "$out" && cp -rL "$model/aliases/champion/artifacts" "$out"
echo "deployed version $v from ${best##*/}"

# A better one: the best run's settings, trained longer.
mkdir "$exp/longer"
python3 "$here/train.py" --lr "$(cat "$best/params/lr")" --epochs 40 "$exp/longer"
ln -s "$exp/longer/artifacts/model" "$model/versions/new"
v2=$(newest)
echo Archived > "$model/versions/$v/stage"
echo Production > "$model/versions/$v2/stage"
ln -sfn "../versions/$v2" "$model/aliases/champion"
rm -rf "$out" && cp -rL "$model/aliases/champion/artifacts" "$out"
echo "deployed version $v2 (acc $(cat "$exp/longer/metrics/acc")); version $v is $(cat "$model/versions/$v/stage")"
