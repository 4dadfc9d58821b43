/*
 * options.h - the daemon's configuration: a fuse_opt table fills struct
 * mfs_config from the command line, then options_resolve() applies the
 * store-selection order of mlflowfs(1), STORES (argument/option, MLFLOW_TRACKING_URI,
 * the embedded default) and makes every path absolute before daemonising.
 */
#ifndef MFS_OPTIONS_H
#define MFS_OPTIONS_H

#include <stdio.h>
#include <sys/types.h>

struct fuse_args;

struct mfs_config {
	char *tracking_uri;  /* after options_resolve(): never NULL */
	char *display_uri;   /* tracking_uri without credentials: the one to show */
	char *artifact_root; /* --artifact-root, absolute after resolve; NULL: the store's default
			      */
	char *mountpoint;    /* absolute after options_resolve() */
	char *cwd;	     /* the folder mlflowfs started in, set by options_resolve() */
	char *uri_arg;	     /* the TRACKING_URI positional argument, if any */
	double cache_ttl;    /* remote store: seconds */
	double lock_timeout; /* local store: seconds a write waits for another's lock */
	int foreground;
	int debug;
	int single_thread;
	int read_only;	 /* -o ro */
	int allow_other; /* -o allow_other: implies default_permissions */
	int noparse;	 /* -o noparse: files in artifacts/ are not parsed */
	int show_help;
	int show_version;
	int nonopt_count; /* positional arguments seen */
	mode_t umask;	  /* the user's umask, for folders the daemon makes itself */
};

/*
 * Parses argv in args (removing what is ours, leaving FUSE's own -o options
 * for fuse_new).  Returns 0, or -1 with *errmsg a new string the caller frees.
 */
int options_parse(struct fuse_args *args, struct mfs_config *cfg, char **errmsg);

/* Picks the tracking URI, checks its form and makes paths absolute.  Returns
 * 0, or -1 with *errmsg set as above.  Reads the environment. */
int options_resolve(struct mfs_config *cfg, char **errmsg);

/* uri without what may be a credential: the userinfo ("user:password@")
 * and query parameters named like a password or token.  A new string, or
 * NULL without memory.  Every message that shows a URI shows this. */
char *options_redact_uri(const char *uri);

/* The embedded default store's URI, sqlite:///$XDG_DATA_HOME/mlflowfs/mlflow.db
 * (or under ~/.local/share): a new string, or NULL when neither HOME nor
 * XDG_DATA_HOME gives a place. */
char *options_default_uri(void);

void options_usage(FILE *out, const char *progname);
void options_release(struct mfs_config *cfg);

#endif
