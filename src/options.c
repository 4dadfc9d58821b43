/*
 * options.c - command line and environment into struct mfs_config.  Options
 * are data (a fuse_opt table over offsetof); the store-selection order
 * (mlflowfs(1), STORES) and the URI forms live in options_resolve().
 */
#include <errno.h>
#include <fuse.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_SINGLE,
	KEY_DISCARD,
	KEY_READ_ONLY,
	KEY_ALLOW_OTHER,
};

#define MFS_OPT(t, f)                                \
	{                                            \
		t, offsetof(struct mfs_config, f), 1 \
	}

static const struct fuse_opt option_table[] = {
	MFS_OPT("--tracking-uri=%s", tracking_uri), MFS_OPT("tracking_uri=%s", tracking_uri),
	MFS_OPT("--artifact-root=%s", artifact_root), MFS_OPT("artifact_root=%s", artifact_root),
	MFS_OPT("cache_ttl=%lf", cache_ttl), MFS_OPT("lock_timeout=%lf", lock_timeout),
	MFS_OPT("noparse", noparse), FUSE_OPT_KEY("-h", KEY_HELP), FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND), FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG), FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("ro", KEY_READ_ONLY), FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	/* fstab words that mean something to mount(8), nothing to us. */
	FUSE_OPT_KEY("noauto", KEY_DISCARD), FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("user", KEY_DISCARD), FUSE_OPT_KEY("users", KEY_DISCARD),
	FUSE_OPT_KEY("nouser", KEY_DISCARD), FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD), FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("x-systemd.", KEY_DISCARD), FUSE_OPT_END
};

/* fuse_opt_parse() hands the same pointer to the table's offsets and to
 * option_proc(), so the config must be the first member. */
struct parse_state {
	struct mfs_config cfg;
	char *error; /* first problem found, a new string */
};

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *st = data;
	struct mfs_config *cfg = &st->cfg;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		/* "mlflowfs [URI] MOUNTPOINT": with two, the first is the store. */
		cfg->nonopt_count++;
		if (cfg->nonopt_count == 1) {
			cfg->mountpoint = strdup(arg);
		} else if (cfg->nonopt_count == 2) {
			cfg->uri_arg = cfg->mountpoint;
			cfg->mountpoint = strdup(arg);
		} else if (!st->error) {
			if (asprintf(&st->error, "too many arguments: '%s'", arg) < 0)
				st->error = NULL;
		}
		return 0;
	case KEY_HELP:
		cfg->show_help = 1;
		return 0;
	case KEY_VERSION:
		cfg->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		cfg->foreground = 1;
		return 0;
	case KEY_DEBUG:
		/* As with libfuse's -d, debugging implies the foreground. */
		cfg->debug = 1;
		cfg->foreground = 1;
		return 0;
	case KEY_SINGLE:
		cfg->single_thread = 1;
		return 0;
	case KEY_DISCARD:
		return 0;
	case KEY_READ_ONLY:
		cfg->read_only = 1;
		return 1; /* and the kernel mounts read-only */
	case KEY_ALLOW_OTHER:
		cfg->allow_other = 1;
		return 1; /* and libfuse passes it on */
	default:
		/* Everything else is a FUSE option: keep it for fuse_new(). */
		return 1;
	}
}

/*
 * fuse_opt runs every template that matches an argument, and "--opt %s"
 * also matches "--opt=VALUE" (keeping the "="), so only the "=" templates
 * are in the table: "--opt VALUE" is joined into one argument here.
 */
static int join_long_options(struct fuse_args *args)
{
	static const char *const names[] = { "--tracking-uri", "--artifact-root" };
	struct fuse_args out = FUSE_ARGS_INIT(0, NULL);
	char *joined;
	int i, j, err = 0;

	for (i = 0; i < args->argc && !err; i++) {
		for (j = 0; j < 2 && strcmp(args->argv[i], names[j]); j++)
			;
		if (j == 2 || i + 1 == args->argc) {
			err = fuse_opt_add_arg(&out, args->argv[i]);
			continue;
		}
		if (asprintf(&joined, "%s=%s", names[j], args->argv[++i]) < 0)
			return -1;
		err = fuse_opt_add_arg(&out, joined);
		free(joined);
	}
	if (err) {
		fuse_opt_free_args(&out);
		return -1;
	}
	fuse_opt_free_args(args);
	*args = out;
	return 0;
}

int options_parse(struct fuse_args *args, struct mfs_config *cfg, char **errmsg)
{
	struct parse_state st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.cfg.cache_ttl = 2.0;
	st.cfg.lock_timeout = 30.0;
	*errmsg = NULL;
	rc = join_long_options(args);
	if (!rc)
		rc = fuse_opt_parse(args, &st, option_table, option_proc);
	*cfg = st.cfg;
	if (rc == -1) {
		free(st.error);
		*errmsg = strdup("invalid options");
		return -1;
	}
	if (st.error) {
		*errmsg = st.error;
		return -1;
	}
	return 0;
}

/* An absolute version of path, resolved against the folder cwd. */
static char *absolute(const char *cwd, const char *path)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&out, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
		return NULL;
	return out;
}

static int fail(char **errmsg, const char *fmt, const char *arg)
{
	if (asprintf(errmsg, fmt, arg) < 0)
		*errmsg = NULL;
	return -1;
}

/* Query parameters whose value may be a secret, by a part of their name. */
static int secret_param(const char *name, size_t len)
{
	static const char *const words[] = { "user",   "pass", "pwd",	    "token",
					     "secret", "auth", "credential" };
	size_t i, j, w;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		w = strlen(words[i]);
		for (j = 0; j + w <= len; j++)
			if (!strncasecmp(name + j, words[i], w))
				return 1;
	}
	return 0;
}

char *options_redact_uri(const char *uri)
{
	const char *scheme = strstr(uri, "://");
	const char *auth = scheme ? scheme + 3 : uri;
	size_t auth_len = strcspn(auth, "/?#"), i;
	const char *at = NULL, *q;
	char *out = malloc(strlen(uri) + 1), *o;
	int first = 1;

	if (!out)
		return NULL;
	/* The last '@' of the authority ends the userinfo (a password may hold '@'). */
	for (i = 0; i < auth_len; i++)
		if (auth[i] == '@')
			at = auth + i;
	o = out;
	memcpy(o, uri, (size_t)(auth - uri));
	o += auth - uri;
	q = at ? at + 1 : auth;
	while (*q && *q != '?')
		*o++ = *q++;
	if (*q == '?') {
		q++;
		while (*q && *q != '#') {
			size_t n = strcspn(q, "&#"), name = strcspn(q, "=&#");

			if (!secret_param(q, name)) {
				*o++ = first ? '?' : '&';
				memcpy(o, q, n);
				o += n;
				first = 0;
			}
			q += n;
			if (*q == '&')
				q++;
		}
	}
	strcpy(o, q);
	return out;
}

/* The embedded default: $XDG_DATA_HOME/mlflowfs/mlflow.db. */
char *options_default_uri(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char *uri;
	int n;

	if (xdg && xdg[0] == '/')
		n = asprintf(&uri, "sqlite:///%s/mlflowfs/mlflow.db", xdg);
	else if (home && home[0])
		n = asprintf(&uri, "sqlite:///%s/.local/share/mlflowfs/mlflow.db", home);
	else
		return NULL;
	return n < 0 ? NULL : uri;
}

int options_resolve(struct mfs_config *cfg, char **errmsg)
{
	const char *env = getenv("MLFLOW_TRACKING_URI");
	struct stat st;
	char *p;

	*errmsg = NULL;
	if (!cfg->mountpoint)
		return fail(
			errmsg, "%s",
			"missing mountpoint (usage: mlflowfs [OPTIONS] [TRACKING_URI] MOUNTPOINT)");
	if (cfg->uri_arg && cfg->tracking_uri && strcmp(cfg->uri_arg, cfg->tracking_uri)) {
		p = options_redact_uri(cfg->uri_arg);
		fail(errmsg, "two different tracking URIs given: '%s' and --tracking-uri",
		     p ? p : "?");
		free(p);
		return -1;
	}
	if (cfg->uri_arg && !cfg->tracking_uri) {
		cfg->tracking_uri = cfg->uri_arg;
		cfg->uri_arg = NULL;
	}
	if (!cfg->tracking_uri && env && env[0]) {
		cfg->tracking_uri = strdup(env);
		if (!cfg->tracking_uri)
			return fail(errmsg, "%s", "out of memory");
	}
	if (!cfg->tracking_uri) {
		cfg->tracking_uri = options_default_uri();
		if (!cfg->tracking_uri)
			return fail(errmsg, "%s",
				    "cannot find a place for the default store: set HOME or "
				    "XDG_DATA_HOME");
	}
	cfg->display_uri = options_redact_uri(cfg->tracking_uri);
	if (!cfg->display_uri)
		return fail(errmsg, "%s", "out of memory");

	/* At most a day: both become milliseconds in 64 bits, and a wait or an
	 * entry kept longer is a mistake, not a choice. */
	if (!(cfg->cache_ttl >= 0) || cfg->cache_ttl > 86400 || !(cfg->lock_timeout >= 0) ||
	    cfg->lock_timeout > 86400)
		return fail(errmsg, "%s",
			    "cache_ttl and lock_timeout are seconds, from 0 to 86400");
	/* Each backend reads its own URI (store_open), after the daemon left
	 * this folder: relative paths in it are relative to cwd. */
	cfg->cwd = getcwd(NULL, 0);
	if (!cfg->cwd)
		return fail(errmsg, "%s", "cannot find the current folder");
	if (cfg->artifact_root && (!strncasecmp(cfg->tracking_uri, "http://", 7) ||
				   !strncasecmp(cfg->tracking_uri, "https://", 8)))
		return fail(errmsg, "%s",
			    "--artifact-root is for the local store: a tracking server puts "
			    "artifacts where its own --default-artifact-root says");
	if (cfg->artifact_root) {
		p = absolute(cfg->cwd, cfg->artifact_root);
		if (!p)
			return fail(errmsg, "%s", "out of memory");
		free(cfg->artifact_root);
		cfg->artifact_root = p;
	}

	p = absolute(cfg->cwd, cfg->mountpoint);
	if (!p)
		return fail(errmsg, "%s", "out of memory");
	free(cfg->mountpoint);
	cfg->mountpoint = p;
	if (stat(cfg->mountpoint, &st) < 0) {
		if (asprintf(errmsg, "cannot mount on '%s': %s", cfg->mountpoint, strerror(errno)) <
		    0)
			*errmsg = NULL;
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return fail(errmsg, "cannot mount on '%s': not a directory", cfg->mountpoint);
	return 0;
}

void options_usage(FILE *out, const char *progname)
{
	fprintf(out,
		"usage: %s [OPTIONS] [TRACKING_URI] MOUNTPOINT\n"
		"   or: %s run [-e EXPERIMENT] [-n NAME] [--] PROGRAM [ARGS...]\n"
		"\n"
		"Mounts an MLflow tracking store as a directory tree.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n"
		"\n"
		"TRACKING_URI (first match wins: the argument or --tracking-uri, then\n"
		"$MLFLOW_TRACKING_URI, then sqlite:///$XDG_DATA_HOME/mlflowfs/mlflow.db):\n"
		"    sqlite:///relative.db, sqlite:////absolute/path.db\n"
		"\n"
		"options:\n"
		"    --tracking-uri URI     the store (also -o tracking_uri=URI)\n"
		"    --artifact-root DIR    local store: where new experiments keep artifacts\n"
		"                           (default: DB_DIR/mlartifacts; -o artifact_root=DIR)\n"
		"    -f                     stay in the foreground\n"
		"    -d                     debug messages (implies -f)\n"
		"    -s                     single-threaded\n"
		"    -o cache_ttl=SECONDS   remote store: how long listings are cached\n"
		"    -o lock_timeout=SECONDS  local store: how long a write waits for\n"
		"                           another program's lock (default 30)\n"
		"    -o noparse             files in a run's artifacts/ are only stored, not\n"
		"                           also logged as metrics and params\n"
		"    -o OPT[,OPT...]        FUSE mount options (allow_other, ro, ...);\n"
		"                           allow_other implies default_permissions\n"
		"    -V, --version          print the version and exit\n"
		"    -h, --help             print this help and exit\n"
		"\n"
		"'%s run' runs PROGRAM as a new MLflow run; '%s run --help' says how.\n",
		progname, progname, progname, progname);
}

void options_release(struct mfs_config *cfg)
{
	free(cfg->tracking_uri);
	free(cfg->display_uri);
	free(cfg->artifact_root);
	free(cfg->mountpoint);
	free(cfg->cwd);
	free(cfg->uri_arg);
	memset(cfg, 0, sizeof(*cfg));
}
