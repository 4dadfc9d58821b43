/*
 * unit-provenance.c - the git facts read from a repository's own files:
 * loose and packed refs, a detached HEAD, a branch with no commit yet, a
 * linked worktree (a .git file and commondir), the origin's URL among other
 * remotes, a work tree found from a folder deep inside it, and folders
 * below the mountpoint never looked into; the source name a command line
 * gives, and this process's own; the tags a provenance sets.  The repositories are written by hand in a
 * temporary folder, so each case says exactly which files git would have
 * left.  The same is checked against a real git repository end to end
 * (tests/e2e/test_provenance.py).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provenance.h"
#include "tap.h"

#define C1 "1111111111111111111111111111111111111111"
#define C2 "2222222222222222222222222222222222222222"
#define C3 "3333333333333333333333333333333333333333"

static char top[] = "/tmp/unit-provenance-XXXXXX";

/* Writes text to top/rel, making the folders above it. */
static void put(const char *rel, const char *text)
{
	char path[4096], *p;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	for (p = path + strlen(top) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void dir(const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s/.keep", top, rel);
	put(path + strlen(top) + 1, "");
}

/* provenance_git of top/rel, skipping below top/skip (NULL: nothing). */
static struct provenance git_of(const char *rel, const char *skip)
{
	struct provenance p = { 0 };
	char path[4096], skip_path[4096];

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	snprintf(skip_path, sizeof(skip_path), "%s/%s", top, skip ? skip : "");
	if (provenance_git(path, skip ? skip_path : NULL, &p))
		ok(0, "provenance_git failed");
	return p;
}

static void test_loose_ref_and_origin(void)
{
	struct provenance p;

	put("plain/.git/HEAD", "ref: refs/heads/main\n");
	put("plain/.git/refs/heads/main", C1 "\n");
	put("plain/.git/config",
	    "[core]\n\tbare = false\n"
	    "[remote \"upstream\"]\n\turl = https://example.com/up.git\n"
	    "[remote \"origin\"]\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
	    "\turl = git@example.com:team/proj.git\n");
	dir("plain/src/deep");
	p = git_of("plain/src/deep", NULL);
	is_str(p.git_commit, C1, "loose ref: the commit HEAD's branch names");
	is_str(p.git_branch, "main", "loose ref: the branch");
	is_str(p.git_repo_url, "git@example.com:team/proj.git",
	       "origin's url, not another remote's");
	provenance_release(&p);
	p = git_of("plain", NULL);
	is_str(p.git_commit, C1, "the work tree's own top folder");
	provenance_release(&p);
}

static void test_packed_ref(void)
{
	struct provenance p;

	put("packed/.git/HEAD", "ref: refs/heads/release/1.0\n");
	put("packed/.git/packed-refs",
	    "# pack-refs with: peeled fully-peeled sorted \n" C3 " refs/heads/release/1.0-rc\n" C2
	    " refs/heads/release/1.0\n^" C3 "\n");
	put("packed/.git/config", "[core]\n");
	p = git_of("packed", NULL);
	is_str(p.git_commit, C2, "packed ref: the exact ref's line, not a longer one's");
	is_str(p.git_branch, "release/1.0", "packed ref: a branch name with a slash");
	is_str(p.git_repo_url, NULL, "no origin: no url");
	provenance_release(&p);
}

static void test_detached_and_unborn(void)
{
	struct provenance p;

	put("detached/.git/HEAD", C3 "\n");
	p = git_of("detached", NULL);
	is_str(p.git_commit, C3, "detached HEAD: its commit");
	is_str(p.git_branch, NULL, "detached HEAD: no branch");
	provenance_release(&p);

	put("unborn/.git/HEAD", "ref: refs/heads/main\n");
	put("unborn/.git/config", "[remote \"origin\"]\n\turl = /srv/x.git\n");
	p = git_of("unborn", NULL);
	ok(!p.git_commit && !p.git_branch && !p.git_repo_url,
	   "a repository without a commit gives nothing");
	provenance_release(&p);
}

static void test_worktree(void)
{
	struct provenance p;
	char text[4200];

	put("main/.git/HEAD", "ref: refs/heads/main\n");
	put("main/.git/refs/heads/main", C1 "\n");
	put("main/.git/refs/heads/feature", C2 "\n");
	put("main/.git/config", "[remote \"origin\"]\n\turl = https://example.com/w.git\n");
	put("main/.git/worktrees/wt/HEAD", "ref: refs/heads/feature\n");
	put("main/.git/worktrees/wt/commondir", "../..\n");
	/* Relative, as git writes it with worktree.useRelativePaths; and absolute. */
	put("wt/.git", "gitdir: ../main/.git/worktrees/wt\n");
	p = git_of("wt", NULL);
	is_str(p.git_commit, C2, "worktree: its own HEAD, the shared refs");
	is_str(p.git_branch, "feature", "worktree: its branch");
	is_str(p.git_repo_url, "https://example.com/w.git", "worktree: the shared config");
	provenance_release(&p);
	snprintf(text, sizeof(text), "gitdir: %s/main/.git/worktrees/wt\n", top);
	put("wt2/.git", text);
	p = git_of("wt2", NULL);
	is_str(p.git_commit, C2, "worktree with an absolute gitdir");
	provenance_release(&p);
}

static void test_skip_and_none(void)
{
	struct provenance p;

	/* A repository inside the mountpoint is never read... */
	put("outer/.git/HEAD", "ref: refs/heads/main\n");
	put("outer/.git/refs/heads/main", C1 "\n");
	put("outer/mnt/.git/HEAD", C3 "\n");
	dir("outer/mnt/experiments/E");
	p = git_of("outer/mnt/experiments/E", "outer/mnt");
	/* ...but the one the mountpoint is in is. */
	is_str(p.git_commit, C1, "below the mountpoint: nothing read there, the tree around it is");
	provenance_release(&p);

	dir("none/a/b");
	p = git_of("none/a/b", NULL);
	/* /tmp itself is in no repository on these machines. */
	ok(!p.git_commit && !p.git_branch && !p.git_repo_url, "no repository: nothing");
	provenance_release(&p);
}

static void test_source_names(void)
{
	static const struct {
		const char *args; /* '|' for each NUL */
		const char *want, *what;
	} cases[] = {
		{ "./trainer|--lr|3|", "./trainer", "a program: itself, as given" },
		{ "/bin/bash|./train.sh|runs/a|", "./train.sh", "a shell script (a #! line)" },
		{ "bash|-e|-o|pipefail|train.sh|x|", "train.sh",
		  "options and their values skipped" },
		{ "/usr/bin/python3.11|-u|-W|ignore|fit.py|--lr|1|", "fit.py", "python3.11" },
		{ "python3|-m|pkg.train|--x|", "pkg.train", "python -m: the module" },
		{ "sh|-c|mkdir runs/a|", "sh", "code on the command line: the interpreter" },
		{ "node|--|x.js|", "node", "-- before the script: the interpreter" },
		{ "perl|-e|print 1|", "perl", "perl -e: the interpreter" },
		{ "pythonic|x.py|", "pythonic", "not an interpreter's name" },
		{ "./t\xffx|a|", "./t?x", "a byte that is not UTF-8: '?'" },
		{ "./caf\xc3\xa9|", "./caf\xc3\xa9", "UTF-8 kept" },
	};
	char raw[256];
	size_t i, j, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got;

		n = strlen(cases[i].args);
		for (j = 0; j < n; j++)
			raw[j] = cases[i].args[j] == '|' ? '\0' : cases[i].args[j];
		got = provenance_source_name(raw, n);
		is_str(got, cases[i].want, cases[i].what);
		free(got);
	}
}

static void test_own_command_line(const char *argv0)
{
	struct provenance p;
	int err = provenance_of(getpid(), NULL, &p);

	is_int(err, 0, "provenance_of this process");
	is_str(p.source_name, argv0, "this program's source name: its argv[0], from /proc");
	provenance_release(&p);
}

static void test_tags(void)
{
	struct provenance p = { .source_name = (char *)"train.py", .git_commit = (char *)C1 };
	struct provenance_tag t[PROVENANCE_NTAGS];

	provenance_tags(&p, t);
	is_str(t[0].key, "mlflow.source.type", "tag 0: the source type");
	is_str(t[0].value, "LOCAL", "LOCAL, as MLflow's client says for a local program");
	is_str(t[1].key, "mlflow.source.name", "tag 1: the source name");
	is_str(t[1].value, "train.py", "its value borrowed from the provenance");
	is_str(t[2].key, "mlflow.source.git.commit", "tag 2: the commit");
	is_str(t[2].value, C1, "the commit");
	is_str(t[3].key, "mlflow.source.git.branch", "tag 3: the branch");
	ok(!t[3].value, "a branch not known is NULL: not set");
	is_str(t[4].key, "mlflow.source.git.repoURL", "tag 4: the remote's URL");
	ok(!t[4].value, "no remote: NULL");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	test_loose_ref_and_origin();
	test_packed_ref();
	test_detached_and_unborn();
	test_worktree();
	test_skip_and_none();
	test_source_names();
	test_own_command_line(argv[0]);
	test_tags();
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
