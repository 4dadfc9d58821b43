#!/usr/bin/env bash
# run-all.sh - builds the helpers and runs every mlflowfs benchmark in turn (ingest.py,
# shell.sh, read.py, scale.py), printing to the terminal and saving the output and the raw
# samples under OUT (default /tmp/mlflowfs-bench/<date-time>/). By hand only, never in CI:
# each script takes a few minutes and needs a quiet machine. Extra arguments go to the three
# Python scripts (e.g. --reps 5); SCALE_ARGS to scale.py alone (e.g. "--points 200000" for
# a shorter run). Env: MLFLOWFS (binary; 'none': peers only), MLFLOW_PY, REPS (shell.sh),
# KEEP=1. Exit status: 0 when every script ran and verified its data.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
PY=${MLFLOW_PY:-/tmp/venv318/bin/python}
OUT=${OUT:-/tmp/mlflowfs-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

"$BENCH/build.sh" || exit 1
status=0
{
	echo "mlflowfs benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), commit" \
		"$(git -C "$BENCH" rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo
	"$PY" "$BENCH/ingest.py" --json "$OUT/ingest.json" "$@" || status=1
	echo
	"$BENCH/shell.sh" || status=1
	echo
	"$PY" "$BENCH/read.py" --json "$OUT/read.json" "$@" || status=1
	echo
	# shellcheck disable=SC2086 # SCALE_ARGS is a list of options
	"$PY" "$BENCH/scale.py" --json "$OUT/scale.json" "$@" ${SCALE_ARGS:-} || status=1
	exit $status
} 2>&1 | tee "$OUT/results.txt"
status=${PIPESTATUS[0]}
echo
echo "run-all.sh: output and raw samples in $OUT (exit status $status)"
exit "$status"
