#!/usr/bin/env bash
# shell.sh - the cost of logging from a shell loop: NLINES (1000) x `echo $i >> metrics/x`
# on mlflowfs, against the same loop on a tmpfs file (/dev/shm) and on noopfs with direct_io
# (the floor FUSE imposes with open + write + flush + release per line). Timed inside bash with
# $EPOCHREALTIME, `seq` run before the timer starts; REPS (5) rounds, round-robin.
# Each mlflowfs round logs into a new run and checks with sqlite3 that all NLINES points
# arrived. Prints ms per 1,000 lines (min / median / max) and ratios of medians. Target:
# mlflowfs / noopfs (direct_io) at most TARGET (1.5), printed with a check or cross mark.
# For information, the commit floor: the same NLINES points put into the same database by
# sqlfloor one per transaction (close() commits what the descriptor wrote: mlflowfs(1),
# WHEN DATA IS SAFE), and mlflowfs against noopfs plus that floor.
# Env: MLFLOWFS (binary; 'none': peers only), MLFLOW_PY (MLflow venv python), REPS,
# NLINES, BENCH_TIMEOUT (s, per command; 300), KEEP=1 (keep the work folder).
set -euo pipefail
export LC_ALL=C

BENCH=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-5}
NLINES=${NLINES:-1000}
TARGET=1.5 # mlflowfs / noopfs(direct_io), times: at most
CMD_TIMEOUT=${BENCH_TIMEOUT:-300}
PY=${MLFLOW_PY:-/tmp/venv318/bin/python}
NOOPFS=$BENCH/noopfs
SQLFLOOR=$BENCH/sqlfloor

die() {
	echo "shell.sh: $*" >&2
	exit 1
}

find_mlflowfs() {
	local d=$BENCH/../build-dev/src/mlflowfs
	if [[ ${MLFLOWFS:-} == none ]]; then
		return 0
	elif [[ -n ${MLFLOWFS:-} ]]; then
		command -v "$MLFLOWFS" || die "MLFLOWFS='$MLFLOWFS' is not an executable"
	elif [[ -x $d ]]; then
		realpath "$d"
	else
		command -v mlflowfs || true
	fi
}

[[ -x $NOOPFS ]] || die "'$NOOPFS' is missing: run bench/build.sh first"
[[ -x $PY ]] || die "no MLflow python at '$PY' (set MLFLOW_PY)"
command -v sqlite3 >/dev/null || die "the sqlite3 command is needed to check the points"
MLFLOWFS_BIN=$(find_mlflowfs)

WORK=$(mktemp -d /tmp/mlflowfs-bench-shell.XXXXXX)
SHM=$(mktemp -d /dev/shm/mlflowfs-bench-shell.XXXXXX)
MOUNTS=() # mountpoints, and the pids of their daemons at the same index
PIDS=()
MLFLOWFS_PID= NOOP_PID=

# is_mounted DIR: from /proc/self/mountinfo, never by a stat() a hung daemon would block
is_mounted() {
	awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# unmount MNT PID: unmount, and if that fails (busy, or the daemon hangs) kill the daemon,
# our own child, which ends its connection, then unmount again.
unmount() {
	local mnt=$1 pid=$2 i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		is_mounted "$mnt" || break
		timeout 10 fusermount3 -u "$mnt" 2>/dev/null || sleep 0.3
	done
	if is_mounted "$mnt"; then
		echo "shell.sh: cannot unmount '$mnt', killing daemon $pid" >&2
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"
	fi
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	wait "$pid" 2>/dev/null
}

cleanup() {
	local i
	set +e
	for i in "${!MOUNTS[@]}"; do
		unmount "${MOUNTS[$i]}" "${PIDS[$i]}"
	done
	rm -rf "$SHM"
	if [[ ${KEEP:-} == 1 ]]; then
		echo "shell.sh: kept $WORK" >&2
	elif grep -q " $WORK/" /proc/self/mountinfo; then
		echo "shell.sh: not removing $WORK: still mounted there" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# mount_fs MNT READY LOG CMD... : start a daemon in the foreground, wait for READY;
# on failure say why and return 1 (cleanup unmounts and stops it).
mount_fs() {
	local mnt=$1 ready=$2 log=$3 pid i
	shift 3
	mkdir -p "$mnt"
	"$@" >>"$log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	MOUNTS+=("$mnt")
	for i in $(seq 1500); do
		if is_mounted "$mnt" && [[ -e $ready ]]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "shell.sh: '$1' exited before mounting: $(tail -5 "$log")" >&2
			return 1
		fi
		sleep 0.01
	done
	echo "shell.sh: '$ready' did not appear within 15 s: $(tail -5 "$log")" >&2
	return 1
}

# guarded PID CMD...: CMD, given at most CMD_TIMEOUT seconds. A process stuck in a request
# to a hung daemon survives even SIGKILL, so the watchdog also kills the daemon PID (our child).
guarded() {
	local dpid=$1 cp wp rc=0
	shift
	"$@" &
	cp=$!
	(
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$CMD_TIMEOUT" &
		sp=$!
		wait "$sp"
		echo "shell.sh: '$1' took over $CMD_TIMEOUT s: killing it and the daemon" >&2
		kill -9 "$cp" "$dpid" 2>/dev/null
	) >/dev/null &
	wp=$!
	wait "$cp" || rc=$?
	kill "$wp" 2>/dev/null
	wait "$wp" 2>/dev/null
	return "$rc"
}

# loop_us FILE: microseconds for NLINES x `echo $i >> FILE`
loop_us() {
	local f=$1 s t0 t1 i
	s=$(seq "$NLINES")
	t0=$EPOCHREALTIME
	for i in $s; do
		echo "$i" >>"$f"
	done
	t1=$EPOCHREALTIME
	echo $((${t1/./} - ${t0/./}))
}

# stats MS...: "min median max" of the numbers given
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
		      printf "%.1f %.1f %.1f\n", v[1], m, v[NR] }'
}

count_points() { # DB EXPERIMENT RUN KEY
	sqlite3 -cmd ".timeout 30000" "$1" "SELECT count(*) FROM metrics m
		JOIN runs r ON r.run_uuid = m.run_uuid
		JOIN experiments e ON e.experiment_id = r.experiment_id
		WHERE e.name = '$2' AND r.name = '$3' AND m.key = '$4'
		AND r.lifecycle_stage = 'active'"
}

echo "== shell: $NLINES x 'echo \$i >> metrics/x' in bash"
echo "machine: $(python3 "$BENCH/benchlib.py" machine)"
echo "each configuration ${REPS}x, round-robin interleaved; min / median / max;" \
	"ratios are median over median"

NOOP_MNT=$WORK/mnt-noop
NOOPFS_LOG=$WORK/noopfs.log
# direct_io, as mlflowfs opens its files: like for like
NOOP_NDIR=0 NOOP_DIO=1 mount_fs "$NOOP_MNT" "$NOOP_MNT/d" "$NOOPFS_LOG" "$NOOPFS" -f "$NOOP_MNT" ||
	die "noopfs did not mount"
NOOP_PID=${PIDS[-1]}

FAILED=
if [[ -n $MLFLOWFS_BIN ]]; then
	echo "mlflowfs: $MLFLOWFS_BIN"
	if ldd "$MLFLOWFS_BIN" 2>/dev/null | grep -qE 'lib(asan|ubsan|tsan)'; then
		echo "WARNING: '$MLFLOWFS_BIN' links a sanitizer: timings are not representative"
	fi
	DB=$WORK/db/mlflow.db
	mkdir -p "$WORK/db"
	"$PY" "$BENCH/mlflow_peer.py" template "$DB" >/dev/null 2>"$WORK/template.log" ||
		die "MLflow could not create the database: $(tail -5 "$WORK/template.log")"
	MNT=$WORK/mnt-mlflowfs
	MLFLOWFS_LOG=$WORK/mlflowfs.log
	if mount_fs "$MNT" "$MNT/experiments" "$MLFLOWFS_LOG" \
		"$MLFLOWFS_BIN" -f "sqlite:///$DB" "$MNT"; then
		MLFLOWFS_PID=${PIDS[-1]}
		guarded "$MLFLOWFS_PID" mkdir "$MNT/experiments/shell" || FAILED="mkdir of the experiment failed"
	else
		FAILED="mount failed (daemon log: $MLFLOWFS_LOG)"
		MLFLOWFS_BIN=
	fi
else
	echo "mlflowfs: pending (no binary, or MLFLOWFS=none)"
fi

T_TMPFS=() T_NOOP=() T_MLFLOWFS=() T_FLOOR=()
for rep in $(seq "$REPS"); do
	printf 'round %d/%d: [tmpfs]' "$rep" "$REPS"
	rm -f "$SHM/x"
	T_TMPFS+=("$(loop_us "$SHM/x")")
	printf ' [noopfs]'
	T_NOOP+=("$(guarded "$NOOP_PID" loop_us "$NOOP_MNT/x")")
	if [[ -n $MLFLOWFS_BIN && -z $FAILED ]]; then
		printf ' [mlflowfs]'
		if ! guarded "$MLFLOWFS_PID" mkdir "$MNT/experiments/shell/r$rep"; then
			FAILED="round $rep: mkdir of the run failed (daemon log: $MLFLOWFS_LOG)"
		elif us=$(guarded "$MLFLOWFS_PID" loop_us "$MNT/experiments/shell/r$rep/metrics/x"); then
			got=$(count_points "$DB" shell "r$rep" x)
			if [[ $got == "$NLINES" ]]; then
				T_MLFLOWFS+=("$us")
			else
				FAILED="round $rep: $got points in the metrics table, expected $NLINES"
			fi
			# The commit floor, into the same run under another key.
			run=$(sqlite3 -cmd ".timeout 30000" "$DB" \
				"SELECT run_uuid FROM runs WHERE name = 'r$rep'")
			if [[ -x $SQLFLOOR && -n $run ]]; then
				printf ' [commit floor]'
				s=$("$SQLFLOOR" "$DB" "$run" "$NLINES" 1 floor |
					sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
				[[ -n $s ]] && T_FLOOR+=("$(awk -v s="$s" 'BEGIN { printf "%d", s * 1e6 }')")
			fi
		else
			FAILED="round $rep: the loop failed (daemon log: $MLFLOWFS_LOG)"
		fi
		[[ -n $FAILED ]] && printf ' FAILED'
	fi
	echo
done

# ms per 1,000 lines, from microseconds per NLINES
per_k() {
	local v out=()
	for v in "$@"; do
		out+=("$(awk -v u="$v" -v n="$NLINES" 'BEGIN { printf "%.3f", u / n }')")
	done
	stats "${out[@]}"
}

echo
echo "ms per 1,000 lines"
printf '  %-10s %10s %10s %10s\n' configuration min median max
read -r a b c <<<"$(per_k "${T_TMPFS[@]}")"
printf '  %-10s %10s %10s %10s\n' tmpfs "$a" "$b" "$c"
MED_TMPFS=$b
read -r a b c <<<"$(per_k "${T_NOOP[@]}")"
printf '  %-10s %10s %10s %10s\n' noopfs "$a" "$b" "$c"
MED_NOOP=$b
MED_MLFLOWFS=
if ((${#T_MLFLOWFS[@]} > 0)) && [[ -z $FAILED ]]; then
	read -r a b c <<<"$(per_k "${T_MLFLOWFS[@]}")"
	printf '  %-10s %10s %10s %10s\n' mlflowfs "$a" "$b" "$c"
	MED_MLFLOWFS=$b
fi
MED_FLOOR=
if ((${#T_FLOOR[@]} > 0)); then
	read -r a b c <<<"$(per_k "${T_FLOOR[@]}")"
	printf '  %-10s %10s %10s %10s   (info) sqlfloor, one point per transaction\n' \
		"commit" "$a" "$b" "$c"
	MED_FLOOR=$b
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3g", a / b }'; }
echo
echo "ratios (median / median; time, so lower is better)"
if [[ -n $MED_MLFLOWFS ]]; then
	printf '  %-34s %8s\n' "mlflowfs / tmpfs" "$(ratio "$MED_MLFLOWFS" "$MED_TMPFS")"
	r=$(ratio "$MED_MLFLOWFS" "$MED_NOOP")
	if awk -v r="$r" -v t="$TARGET" 'BEGIN { exit !(r <= t) }'; then mark=✔; else mark=✘; fi
	printf '  %-34s %8s   target <= %s %s\n' "mlflowfs / noopfs(direct_io)" "$r" "$TARGET" "$mark"
elif [[ -n $FAILED ]]; then
	printf '  %-34s %8s   %s\n' "mlflowfs / tmpfs" FAIL "$FAILED"
	printf '  %-34s %8s   target <= %s\n' "mlflowfs / noopfs(direct_io)" FAIL "$TARGET"
	[[ ${KEEP:-} == 1 ]] || echo "(the work folder is removed at exit: KEEP=1 keeps it)"
else
	printf '  %-34s %8s\n' "mlflowfs / tmpfs" pending
	printf '  %-34s %8s   target <= %s\n' "mlflowfs / noopfs(direct_io)" pending "$TARGET"
fi
printf '  %-34s %8s\n' "(info) noopfs / tmpfs" "$(ratio "$MED_NOOP" "$MED_TMPFS")"
if [[ -n $MED_MLFLOWFS && -n $MED_FLOOR ]]; then
	printf '  %-34s %8s\n' "(info) (noopfs + commit) / noopfs" \
		"$(awk -v n="$MED_NOOP" -v f="$MED_FLOOR" 'BEGIN { printf "%.3g", (n + f) / n }')"
	printf '  %-34s %8s\n' "(info) mlflowfs / (noopfs + commit)" \
		"$(awk -v m="$MED_MLFLOWFS" -v n="$MED_NOOP" -v f="$MED_FLOOR" \
			'BEGIN { printf "%.3g", m / (n + f) }')"
fi
[[ -z $FAILED ]]
