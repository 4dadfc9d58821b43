#!/bin/sh
# man-lint.sh - the man page must format without a single groff warning.
page="${top_builddir:-.}/man/mlflowfs.1"
echo "1..1"
if [ "${GROFF:-:}" = ":" ]; then
	echo "ok 1 - groff lint of mlflowfs.1 # SKIP groff is not installed"
	exit 0
fi
out=$("$GROFF" -man -ww -z "$page" 2>&1)
if [ -z "$out" ]; then
	echo "ok 1 - groff -man -ww -z mlflowfs.1 is silent"
else
	echo "not ok 1 - groff -man -ww -z mlflowfs.1 warns"
	printf '%s\n' "$out" | sed 's/^/# /'
fi
