/*
 * art.c - the artifact API's one door: the registry maps a URI scheme to the
 * repository that serves it, and each art_*() wrapper finds that repository,
 * turns a missing optional operation into -ENOTSUP and forwards.  Nothing
 * else knows repository names.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "art.h"
#include "options.h"

/* The longest scheme looked up; longer ones are served by no repository. */
#define SCHEME_MAX 32

struct art_scheme {
	char name[SCHEME_MAX]; /* lower case; "" for absolute paths */
	struct art_repo *repo; /* borrowed from repos */
};

struct art_registry {
	struct art_repo **repos; /* owned */
	size_t nrepos;
	struct art_scheme *schemes;
	size_t nschemes;
};

static _Thread_local char errmsg[512];

void art_set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

const char *art_errmsg(void)
{
	return errmsg;
}

static struct art_registry *registry_alloc(void)
{
	return calloc(1, sizeof(struct art_registry));
}

int art_registry_add(struct art_registry *reg, struct art_repo *repo, const char *const *schemes)
{
	struct art_repo **repos;
	struct art_scheme *tab;
	size_t n = 0, i;

	if (!repo)
		return -ENOMEM;
	while (schemes[n])
		n++;
	repos = realloc(reg->repos, (reg->nrepos + 1) * sizeof(*repos));
	if (repos)
		reg->repos = repos;
	tab = repos ? realloc(reg->schemes, (reg->nschemes + n) * sizeof(*tab)) : NULL;
	if (!tab) {
		repo->ops->free(repo);
		return -ENOMEM;
	}
	reg->schemes = tab;
	reg->repos[reg->nrepos++] = repo;
	for (i = 0; i < n; i++) {
		struct art_scheme *s = &reg->schemes[reg->nschemes++];
		size_t j;

		for (j = 0; schemes[i][j] && j + 1 < sizeof(s->name); j++)
			s->name[j] = (char)tolower((unsigned char)schemes[i][j]);
		s->name[j] = '\0';
		s->repo = repo;
	}
	return 0;
}

struct art_registry *art_registry_new(const char *artifact_root, const struct mfs_config *cfg)
{
	/* mlflow-artifacts: URIs map into the local store's artifact root,
	 * when there is one (a tracking server's default destination).  A
	 * remote store's go through its artifact API, which a server started
	 * with an http(s) artifact root names by its URL. */
	static const char *const local_schemes[] = { "", "file", "mlflow-artifacts", NULL };
	static const char *const proxy_schemes[] = { "mlflow-artifacts", "http", "https", NULL };
	struct art_registry *reg = registry_alloc();
	const char *const *schemes = local_schemes;
	const char *const no_proxy[] = { "", "file", NULL };
	int remote = cfg && cfg->tracking_uri &&
		     (!strncmp(cfg->tracking_uri, "http://", 7) ||
		      !strncmp(cfg->tracking_uri, "https://", 8));

	if (!reg)
		return NULL;
	if (!artifact_root)
		schemes = no_proxy;
	if (art_registry_add(reg, art_local_new(artifact_root), schemes) ||
	    (!artifact_root && remote &&
	     art_registry_add(reg, art_proxy_new(cfg), proxy_schemes))) {
		art_registry_free(reg);
		return NULL;
	}
	return reg;
}

int art_describe(struct art_registry *reg, struct buf *out)
{
	size_t i;
	int err = 0;

	for (i = 0; !err && i < reg->nrepos; i++)
		if (reg->repos[i]->ops->describe)
			err = reg->repos[i]->ops->describe(reg->repos[i], out);
	return err;
}

void art_registry_free(struct art_registry *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = 0; i < reg->nrepos; i++)
		reg->repos[i]->ops->free(reg->repos[i]);
	free(reg->repos);
	free(reg->schemes);
	free(reg);
}

/*
 * The repository serving uri: by its scheme (RFC 3986: a letter, then
 * letters, digits, '+', '-', '.', up to ':'), or "" for an absolute path.
 * NULL, with a message, when none does.
 */
static struct art_repo *repo_for(struct art_registry *reg, const char *uri)
{
	char scheme[SCHEME_MAX], *shown;
	size_t n = 0, i;

	errmsg[0] = '\0';
	if (!uri)
		uri = "";
	if (uri[0] != '/') {
		while (isalnum((unsigned char)uri[n]) || (n && strchr("+-.", uri[n])))
			n++;
		if (!n || uri[n] != ':' || !isalpha((unsigned char)uri[0]) || n >= sizeof(scheme))
			goto none;
	}
	for (i = 0; i < n; i++)
		scheme[i] = (char)tolower((unsigned char)uri[i]);
	scheme[n] = '\0';
	for (i = 0; i < reg->nschemes; i++)
		if (!strcmp(reg->schemes[i].name, scheme))
			return reg->schemes[i].repo;
none:
	shown = options_redact_uri(uri);
	if (n && uri[n] == ':')
		art_set_errmsg("the artifacts at '%s' are not reachable: no artifact repository "
			       "serves '%.*s:' URIs",
			       shown ? shown : "?", (int)n, uri);
	else
		art_set_errmsg("the artifacts at '%s' are not reachable: not a path nor a URI",
			       shown ? shown : "?");
	free(shown);
	return NULL;
}

/* A wrapper's prologue: the repository for loc, or return -ENOTSUP. */
#define REPO_OR_FAIL(r, reg, loc)                  \
	do {                                       \
		(r) = repo_for((reg), (loc)->uri); \
		if (!(r))                          \
			return -ENOTSUP;           \
	} while (0)

int art_stat(struct art_registry *reg, const struct art_loc *loc, struct stat *st)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return r->ops->stat(r, loc, st);
}

int art_list(struct art_registry *reg, const struct art_loc *loc, art_list_cb *cb, void *ctx)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return r->ops->list(r, loc, cb, ctx);
}

int art_open(struct art_registry *reg, const struct art_loc *loc, int flags, mode_t mode,
	     const struct art_caller *c, struct art_file **out)
{
	struct art_repo *r;

	*out = NULL;
	REPO_OR_FAIL(r, reg, loc);
	if (!loc->path[0])
		return -EISDIR;
	return r->ops->open(r, loc, flags, mode, c, out);
}

ssize_t art_read(struct art_file *f, void *buf, size_t size, off_t off)
{
	errmsg[0] = '\0';
	return f->repo->ops->read(f, buf, size, off);
}

ssize_t art_write(struct art_file *f, const void *buf, size_t size, off_t off)
{
	errmsg[0] = '\0';
	return f->repo->ops->write(f, buf, size, off);
}

int art_fstat(struct art_file *f, struct stat *st)
{
	errmsg[0] = '\0';
	return f->repo->ops->fstat(f, st);
}

int art_ftruncate(struct art_file *f, off_t size)
{
	errmsg[0] = '\0';
	return size < 0 ? -EINVAL : f->repo->ops->ftruncate(f, size);
}

int art_fallocate(struct art_file *f, int mode, off_t off, off_t len)
{
	const struct art_ops *ops = f->repo->ops;

	errmsg[0] = '\0';
	return ops->fallocate ? ops->fallocate(f, mode, off, len) : -ENOTSUP;
}

int art_sync(struct art_file *f, enum art_sync how)
{
	errmsg[0] = '\0';
	return f->repo->ops->sync(f, how);
}

int art_close(struct art_file *f)
{
	errmsg[0] = '\0';
	return f ? f->repo->ops->close(f) : 0;
}

int art_truncate(struct art_registry *reg, const struct art_loc *loc, off_t size)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return size < 0 ? -EINVAL : r->ops->truncate(r, loc, size);
}

/* The repository an attribute call goes to: f's, else loc's. */
static struct art_repo *attr_repo(struct art_registry *reg, const struct art_loc *loc,
				  struct art_file *f)
{
	errmsg[0] = '\0';
	return f ? f->repo : repo_for(reg, loc->uri);
}

int art_chmod(struct art_registry *reg, const struct art_loc *loc, struct art_file *f, mode_t mode)
{
	struct art_repo *r = attr_repo(reg, loc, f);

	if (!r)
		return -ENOTSUP;
	return r->ops->chmod ? r->ops->chmod(r, loc, f, mode) : -ENOTSUP;
}

int art_chown(struct art_registry *reg, const struct art_loc *loc, struct art_file *f, uid_t uid,
	      gid_t gid)
{
	struct art_repo *r = attr_repo(reg, loc, f);

	if (!r)
		return -ENOTSUP;
	return r->ops->chown ? r->ops->chown(r, loc, f, uid, gid) : -ENOTSUP;
}

int art_utimens(struct art_registry *reg, const struct art_loc *loc, struct art_file *f,
		const struct timespec tv[2])
{
	struct art_repo *r = attr_repo(reg, loc, f);

	if (!r)
		return -ENOTSUP;
	return r->ops->utimens ? r->ops->utimens(r, loc, f, tv) : -ENOTSUP;
}

int art_mkdir(struct art_registry *reg, const struct art_loc *loc, mode_t mode,
	      const struct art_caller *c)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return loc->path[0] ? r->ops->mkdir(r, loc, mode, c) : -EEXIST;
}

int art_remove(struct art_registry *reg, const struct art_loc *loc, int dir)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	if (!loc->path[0])
		return dir ? -EBUSY : -EISDIR;
	return r->ops->remove(r, loc, dir);
}

/* The repository two locations share, or NULL with *err set. */
static struct art_repo *pair_repo(struct art_registry *reg, const struct art_loc *from,
				  const struct art_loc *to, int *err)
{
	struct art_repo *a = repo_for(reg, from->uri), *b;

	*err = -ENOTSUP;
	if (!a)
		return NULL;
	b = repo_for(reg, to->uri);
	if (!b)
		return NULL;
	if (a != b) {
		*err = -EXDEV;
		return NULL;
	}
	if (!from->path[0] || !to->path[0]) {
		*err = -EBUSY; /* the run's root itself stays where it is */
		return NULL;
	}
	return a;
}

int art_rename(struct art_registry *reg, const struct art_loc *from, const struct art_loc *to,
	       unsigned int flags)
{
	struct art_repo *r;
	int err;

	r = pair_repo(reg, from, to, &err);
	if (!r)
		return err;
	return r->ops->rename ? r->ops->rename(r, from, to, flags) : -ENOTSUP;
}

int art_readlink(struct art_registry *reg, const struct art_loc *loc, char *buf, size_t size)
{
	struct art_repo *r;

	errmsg[0] = '\0';
	if (size == 0)
		return -EINVAL;
	REPO_OR_FAIL(r, reg, loc);
	return r->ops->readlink ? r->ops->readlink(r, loc, buf, size) : -ENOTSUP;
}

int art_link(struct art_registry *reg, const struct art_loc *from, const struct art_loc *to)
{
	struct art_repo *r;
	int err;

	r = pair_repo(reg, from, to, &err);
	if (!r)
		return err == -EBUSY ? -EPERM : err;
	return r->ops->link ? r->ops->link(r, from, to) : -ENOTSUP;
}

int art_symlink(struct art_registry *reg, const char *target, const struct art_loc *loc,
		const struct art_caller *c)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	if (!loc->path[0])
		return -EEXIST;
	return r->ops->symlink ? r->ops->symlink(r, target, loc, c) : -ENOTSUP;
}

int art_mknod(struct art_registry *reg, const struct art_loc *loc, mode_t mode, dev_t dev,
	      const struct art_caller *c)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	if (!loc->path[0])
		return -EEXIST;
	return r->ops->mknod ? r->ops->mknod(r, loc, mode, dev, c) : -ENOTSUP;
}

int art_access(struct art_registry *reg, const struct art_loc *loc, int mask)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return r->ops->access ? r->ops->access(r, loc, mask) : -ENOTSUP;
}

int art_statfs(struct art_registry *reg, const struct art_loc *loc, struct statvfs *st)
{
	struct art_repo *r;

	REPO_OR_FAIL(r, reg, loc);
	return r->ops->statfs ? r->ops->statfs(r, loc, st) : -ENOTSUP;
}
