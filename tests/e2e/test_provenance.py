"""Where a run made through the mount comes from (mlflowfs(1), PROVENANCE),
on both stores: the system tags MLflow's client sets on a run it starts,
for a shell script that runs mkdir and for a program that calls mkdir(2)
itself, in a real git repository (a branch, packed refs, a linked worktree,
a detached HEAD) and outside one.  Read back with MlflowClient."""
import os
import subprocess
import sys

import pytest

from conftest import have, run_id_of

pytestmark = pytest.mark.skipif(not have("git"), reason="git is not installed")

ORIGIN = "https://example.com/team/churn.git"


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def make_repo(path):
    """A repository with a training script that makes its run with mkdir."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "remote", "add", "origin", ORIGIN)
    (path / "train.sh").write_text('set -e\nmkdir "$1"\necho 0.1 > "$1/params/lr"\n')
    git(path, "add", "train.sh")
    git(path, "commit", "-q", "-m", "first")
    return path


def tags_of(client, run_dir):
    return client.get_run(run_id_of(run_dir)).data.tags


def test_a_script_in_a_git_repository_records_its_commit(mount, client, tmp_path):
    repo = make_repo(tmp_path / "proj")
    run = mount.run("E", "r1")
    os.makedirs(run.parent)
    subprocess.run(["bash", "train.sh", str(run)], cwd=repo, check=True)
    tags = tags_of(client, run)
    assert tags["mlflow.source.type"] == "LOCAL"
    # The script, as MLflow's client records a Python script (sys.argv[0]).
    assert tags["mlflow.source.name"] == "train.sh"
    assert tags["mlflow.user"] == client.get_run(run_id_of(run)).info.user_id
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == ORIGIN
    assert (run / "tags" / "mlflow.source.git.branch").read_text() == "main\n"

    # A new commit, packed refs (as git gc leaves them), a second run: the
    # two runs' tags differ by the commit alone.
    (repo / "train.sh").write_text((repo / "train.sh").read_text() + "# faster\n")
    git(repo, "commit", "-q", "-am", "second")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    run2 = mount.run("E", "r2")
    subprocess.run(["bash", "train.sh", str(run2)], cwd=repo, check=True)
    tags2 = tags_of(client, run2)
    assert tags2["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    diff = subprocess.run(["diff", "-r", str(run / "tags"), str(run2 / "tags")],
                          capture_output=True, text=True)
    changed = sorted(line.split()[-1].rsplit("/", 1)[-1]
                     for line in diff.stdout.splitlines() if line.startswith("diff "))
    assert "Only in" not in diff.stdout
    assert changed == ["mlflow.runName", "mlflow.source.git.commit"]


def test_a_worktree_and_a_detached_head(mount, client, tmp_path):
    repo = make_repo(tmp_path / "proj")
    git(repo, "branch", "feature")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "feature")
    os.makedirs(mount.exp("E"))
    run = mount.run("E", "wt")
    subprocess.run(["bash", "train.sh", str(run)], cwd=wt, check=True)
    tags = tags_of(client, run)
    assert tags["mlflow.source.git.branch"] == "feature"
    assert tags["mlflow.source.git.commit"] == git(wt, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.repoURL"] == ORIGIN

    git(repo, "checkout", "-q", "--detach")
    run = mount.run("E", "detached")
    subprocess.run(["bash", "train.sh", str(run)], cwd=repo, check=True)
    tags = tags_of(client, run)
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert "mlflow.source.git.branch" not in tags


def test_a_program_that_makes_its_run_itself_outside_git(mount, client, tmp_path):
    prog = tmp_path / "fit.py"
    prog.write_text("import os, sys\nos.makedirs(sys.argv[1])\n")
    run = mount.run("E", "py")
    subprocess.run([sys.executable, str(prog), str(run)], cwd=tmp_path, check=True)
    tags = tags_of(client, run)
    assert tags["mlflow.source.name"] == str(prog)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert not [k for k in tags if k.startswith("mlflow.source.git")]
