#!/bin/sh
# Workflow 3, a reproducible project: a git repository with a training
# script; each run records the commit and branch it was made from
# (mlflowfs(1), Provenance), so after a change and a new commit, diff -r of
# the two runs' tags shows which code made which run.
#
#   sh 3-project.sh [MOUNTPOINT [EXPERIMENT [REPO]]]
#
# REPO is made as a new git repository (./demo-project); EXPERIMENT is made
# if missing (project-demo).
set -eu
mnt=${1:-$HOME/mlruns}
exp=$mnt/experiments/${2:-project-demo}
repo=${3:-./demo-project}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$repo" "$exp"
cp "$here/train.py" "$repo/"
cat > "$repo/run.sh" <<'SCRIPT'
#!/bin/sh
# Makes a run folder and trains into it: mkdir records this script's commit.
set -eu
mkdir "$1"
python3 train.py --epochs "${EPOCHS:-5}" "$1"
SCRIPT
cd "$repo"
git init -q -b main
git add train.py run.sh
git -c user.name=demo -c user.email=demo@example.com commit -q -m "train for 5 epochs"
sh run.sh "$exp/first"

sed -i 's/EPOCHS:-5/EPOCHS:-15/' run.sh
git -c user.name=demo -c user.email=demo@example.com commit -q -am "train for 15 epochs"
sh run.sh "$exp/second"

# What differs between the runs' tags: the commit (and their names).
diff -r "$exp/first/tags" "$exp/second/tags" || true
