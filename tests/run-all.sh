#!/bin/sh
# run-all.sh - the README's test command: on a fresh Debian 12 machine,
# installs everything the tests need (Debian packages, the pinned MLflow from
# PyPI in .venv, an older MLflow in .venv-old), builds, and runs every test:
# the C unit tests through automake's harness, then the end-to-end tests.
#
#   tests/run-all.sh                 build in build/, run all tests
#   tests/run-all.sh --sanitizers    the same with ASan+UBSan, in build-san/
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=build
configure_flags="--enable-werror"
if [ "${1:-}" = "--sanitizers" ]; then
	build=build-san
	configure_flags="$configure_flags --enable-sanitizers"
fi

packages="build-essential autoconf automake pkg-config libfuse3-dev fuse3 \
libsqlite3-dev libcurl4-openssl-dev libjansson-dev libyaml-dev groff-base sqlite3 rsync \
python3 python3-venv python3-dev perl openssl bindfs nginx-light postgresql chromium"
"$top/contrib/install-packages.sh" $packages

# The virtual environments are made once and kept; a changed requirements
# file makes them again.
venv() {
	dir=$1 req=$2
	stamp="$dir/.requirements"
	if ! cmp -s "$req" "$stamp" 2>/dev/null; then
		echo "run-all: installing $req into $dir"
		rm -rf "$dir"
		python3 -m venv "$dir"
		"$dir/bin/pip" install -q --disable-pip-version-check -r "$req"
		cp "$req" "$stamp"
	fi
}
venv .venv tests/requirements.txt
venv .venv-old tests/requirements-old.txt

# pjdfstest (tests/e2e/test_pjdfstest.py) from the vendored source, where CI
# keeps it beside the repository: built once per tarball into .cache/, which
# both runs (plain and --sanitizers) share, as they share its bindfs count.
pjd_tar="$top/../shared/vendor/pjdfstest-85a8aea.tar.gz"
if [ -f "$pjd_tar" ]; then
	pjd="$top/.cache/pjdfstest-$(sha256sum "$pjd_tar" | cut -c1-16)"
	if [ ! -x "$pjd/pjdfstest" ]; then
		echo "run-all: building pjdfstest in $pjd"
		rm -rf "$pjd.tmp"
		mkdir -p "$pjd.tmp"
		tar xzf "$pjd_tar" -C "$pjd.tmp" --strip-components=1
		(cd "$pjd.tmp" && autoreconf -ifs >/dev/null 2>&1 && ./configure -q >/dev/null &&
			make -s pjdfstest >/dev/null)
		rm -rf "$pjd"
		mv "$pjd.tmp" "$pjd"
	fi
	PJDFSTEST_DIR=$pjd
	export PJDFSTEST_DIR
else
	echo "run-all: $pjd_tar is missing: the pjdfstest test will be skipped"
fi

[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi
mkdir -p "$build"
cd "$build"
[ -f Makefile ] && [ config.status -nt ../configure ] || ../configure -q $configure_flags
make -j"$(nproc)"

status=0
make -j"$(nproc)" check || { status=$?; cat test-suite.log; }

# One worker per core (pytest-xdist): most of a test is waiting for a
# daemon, a server or a client, so the suite takes little more than half
# the time.  Each module stays on one worker: its server starts once.
MLFLOWFS="$PWD/src/mlflowfs" MLFLOWFS_OLD_VENV="$top/.venv-old" \
	"$top/.venv/bin/python" -m pytest -q -p no:cacheprovider -n auto --dist loadscope \
	"$top/tests/e2e" || status=$?
exit $status
