#!/bin/sh
# build.sh - builds the benchmark helpers noopfs, passfs, writer and sqlfloor into this folder
# (gitignored). Run by hand or by run-all.sh; not part of the project's build or CI.
# CC and CFLAGS may be overridden from the environment.
set -eu
cd "$(dirname "$0")"
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -g -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Wwrite-strings -Wvla"}

# shellcheck disable=SC2086 # CFLAGS and pkg-config output are word lists
$CC $CFLAGS $(pkg-config --cflags fuse3) -o noopfs noopfs.c $(pkg-config --libs fuse3)
# shellcheck disable=SC2086
$CC $CFLAGS $(pkg-config --cflags fuse3) -o passfs passfs.c $(pkg-config --libs fuse3)
# shellcheck disable=SC2086
$CC $CFLAGS -o writer writer.c
# shellcheck disable=SC2086
$CC $CFLAGS $(pkg-config --cflags sqlite3) -o sqlfloor sqlfloor.c $(pkg-config --libs sqlite3)
echo "built: $(pwd)/noopfs $(pwd)/passfs $(pwd)/writer $(pwd)/sqlfloor"
