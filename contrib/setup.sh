#!/bin/sh
# setup.sh - the README's first command: on a fresh Debian 12 machine,
# installs the build dependencies, builds mlflowfs, and mounts the embedded
# default store (~/.local/share/mlflowfs/mlflow.db) at MOUNTPOINT (default
# ~/mlruns).
#
#   contrib/setup.sh [MOUNTPOINT]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
mnt=${1:-$HOME/mlruns}

packages="build-essential autoconf automake pkg-config libfuse3-dev fuse3 \
libsqlite3-dev libcurl4-openssl-dev libjansson-dev libyaml-dev"
"$top/contrib/install-packages.sh" $packages

cd "$top"
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q
make -j"$(nproc)" >/dev/null

mkdir -p "$mnt"
if mountpoint -q "$mnt"; then
	echo "setup: '$mnt' is already mounted"
else
	src/mlflowfs "$mnt"
fi
cat <<MSG
mlflowfs is mounted at $mnt (store: ~/.local/share/mlflowfs/mlflow.db)

  mkdir -p $mnt/experiments/demo/run1
  echo 0.01 > $mnt/experiments/demo/run1/params/lr
  echo 0.93 >> $mnt/experiments/demo/run1/metrics/acc
  cat $mnt/experiments/demo/run1/run.json

The binary is $top/build/src/mlflowfs (or run 'make install' in build/).
Unmount with: fusermount3 -u $mnt
MSG
