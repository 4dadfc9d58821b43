/*
 * provenance.h - where a run made through the mount comes from, as MLflow's
 * client records it for a run it starts: the program (its command line, from
 * /proc) and, when that program's working folder is in a git work tree, the
 * commit, branch and remote URL, read from the repository's files without
 * running git.
 */
#ifndef MFS_PROVENANCE_H
#define MFS_PROVENANCE_H

#include <sys/types.h>

struct provenance {
	char *source_name;  /* the program's command line; NULL if unreadable */
	char *git_commit;   /* 40 hex digits; NULL outside a git work tree */
	char *git_branch;   /* NULL when HEAD is detached */
	char *git_repo_url; /* remote "origin"'s url; NULL when there is none */
};

/*
 * The provenance of the process pid made a run's folder from: the mkdir(1)
 * a script runs stands for its parent, the script; any other process for
 * itself.  A folder at or below skip_below (the mountpoint) is never
 * looked into: asking the mount from inside the daemon could wait on
 * itself.  Fields that cannot be read stay NULL; returns 0, or -ENOMEM.
 */
int provenance_of(pid_t pid, const char *skip_below, struct provenance *out);

/* A run tag, by MLflow's name; value NULL when it is not known (not set). */
struct provenance_tag {
	const char *key;
	const char *value; /* borrowed from the provenance, or static */
};

#define PROVENANCE_NTAGS 5

/* The tags p gives a run: mlflow.source.type (LOCAL), mlflow.source.name
 * and the three git tags, in that order. */
void provenance_tags(const struct provenance *p, struct provenance_tag out[PROVENANCE_NTAGS]);
void provenance_release(struct provenance *p);

/*
 * What MLflow's client records as the source of a run it starts, from a
 * command line (len bytes of NUL-terminated arguments, as /proc shows it):
 * the program's first argument, as sys.argv[0] of a Python script is the
 * script as it was given.  An interpreter (sh, bash, python3.11, perl,
 * node...) stands for the script it runs: its first argument that is not an
 * option, or the module of python -m; with code on its command line (-c,
 * -e), itself.  So every run of one script has one source name whatever its
 * arguments, and diff -r of two runs shows only what differs.  A new
 * string of valid UTF-8 ('?' for a byte that is not), or NULL.
 */
char *provenance_source_name(const char *args, size_t len);

/*
 * The git facts of the work tree that folder dir is in (NULL fields when it
 * is in none); skip_below as above.  For tests, and provenance_of.
 */
int provenance_git(const char *dir, const char *skip_below, struct provenance *out);

#endif
