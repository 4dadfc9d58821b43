/*
 * path.c - the mount tree's shape: which absolute path names which node, and
 * the percent-encoding that lets any MLflow name be one file-name component.
 * It knows the fixed names of SPEC §2 and nothing about what exists; the
 * store decides that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "path.h"

/* What may follow a fixed name in a folder. */
enum path_below {
	PATH_LEAF,   /* a file or link: nothing below it */
	PATH_KEYS,   /* a key folder: the rest is a key */
	PATH_SUBPATH /* the artifacts folder: the rest is passed on raw */
};

struct path_child {
	const char *name;
	enum node_kind kind;
	enum path_below below;
};

static const struct path_child path_run_children[] = {
	{ "run_id", NODE_RUN_ID, PATH_LEAF },
	{ "status", NODE_STATUS, PATH_LEAF },
	{ "run.json", NODE_RUN_JSON, PATH_LEAF },
	{ "params", NODE_PARAMS, PATH_KEYS },
	{ "metrics", NODE_METRICS, PATH_KEYS },
	{ "history", NODE_HISTORY, PATH_KEYS },
	{ "tags", NODE_TAGS, PATH_KEYS },
	{ "artifacts", NODE_ARTIFACTS, PATH_SUBPATH }, /* real file names: not decoded */
};

static const struct path_child path_control_children[] = {
	{ "status", NODE_CONTROL_STATUS, PATH_LEAF },
	{ "errors", NODE_CONTROL_ERRORS, PATH_LEAF },
};

/* Indexed by enum version_field. */
static const char *const path_version_fields[] = { "source", "run_id", "status", "stage",
						   "description" };
#define PATH_NFIELDS (sizeof(path_version_fields) / sizeof(path_version_fields[0]))

/*
 * Walks the components of a checked path.  pos is at the '/' before the next
 * component, or at the terminating NUL once all are consumed, so the raw rest
 * of the path (for artifacts) is always at hand.
 */
struct path_iter {
	const char *pos;
};

static int path_next(struct path_iter *it, const char **comp, size_t *len)
{
	if (*it->pos == '\0')
		return 0;
	*comp = it->pos + 1;
	*len = strcspn(*comp, "/");
	it->pos = *comp + *len;
	return 1;
}

static int path_at_end(const struct path_iter *it)
{
	return *it->pos == '\0';
}

static int path_is(const char *comp, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(comp, name, len) == 0;
}

/*
 * FUSE hands over canonical paths; anything else (relative, "//", a trailing
 * '/', "." or "..") is refused here once, so the parsers below need not care
 * and a raw artifacts subpath can never climb out of its folder.
 */
static int path_check(const char *path)
{
	struct path_iter it = { path };
	const char *comp;
	size_t len;

	if (!path || path[0] != '/')
		return -ENOENT;
	if (path[1] == '\0')
		return 0;
	while (path_next(&it, &comp, &len)) {
		if (len == 0 || path_is(comp, len, ".") || path_is(comp, len, ".."))
			return -ENOENT;
	}
	return 0;
}

static int path_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte an escape at s (len bytes left) stands for, or 0 if it is none. */
static char path_unescape(const char *s, size_t len, int all)
{
	int hi, lo;

	if (len < 3 || s[0] != '%')
		return 0;
	hi = path_hexval(s[1]);
	lo = path_hexval(s[2]);
	if (hi < 0 || lo < 0)
		return 0;
	if (all)
		return (char)(hi * 16 + lo);
	switch (hi * 16 + lo) {
	case '/':
		return '/';
	case '%':
		return '%';
	case '.':
		return '.';
	default:
		return 0;
	}
}

int path_encode(struct buf *out, const char *name)
{
	size_t start = out->len, i, run = 0;
	int err = 0;

	for (i = 0; name[i]; i++) {
		const char *esc;

		if (name[i] == '/')
			esc = "%2F";
		else if (name[i] == '%')
			esc = "%25";
		else if (name[i] == '.' && i == 0)
			esc = "%2E";
		else
			continue;
		/* Copy the plain bytes before the escape in one go. */
		err = buf_add(out, name + run, i - run);
		if (err)
			goto out;
		err = buf_add(out, esc, 3);
		if (err)
			goto out;
		run = i + 1;
	}
	err = buf_add(out, name + run, i - run);
out:
	/* All or nothing: a caller may retry or report without a stray half name. */
	if (err)
		buf_truncate(out, start);
	return err;
}

static int path_decode_escapes(struct buf *out, const char *enc, size_t len, int all)
{
	size_t start = out->len, i = 0, run = 0;
	int err = 0;

	while (i < len) {
		char c = path_unescape(enc + i, len - i, all);

		if (!c) {
			i++;
			continue;
		}
		err = buf_add(out, enc + run, i - run);
		if (err)
			goto out;
		err = buf_addch(out, c);
		if (err)
			goto out;
		i += 3;
		run = i;
	}
	err = buf_add(out, enc + run, len - run);
out:
	if (err)
		buf_truncate(out, start);
	return err;
}

int path_decode(struct buf *out, const char *enc, size_t len)
{
	return path_decode_escapes(out, enc, len, 0);
}

int path_uri_decode(struct buf *out, const char *s, size_t len)
{
	return path_decode_escapes(out, s, len, 1);
}

static int path_dup_decoded(char **dst, const char *comp, size_t len)
{
	struct buf b = BUF_INIT;
	int err;

	err = path_decode(&b, comp, len);
	if (err)
		goto out;
	*dst = buf_detach(&b);
	if (!*dst)
		err = -ENOMEM;
out:
	buf_release(&b);
	return err;
}

static int path_dup_raw(char **dst, const char *s, size_t len)
{
	*dst = strndup(s, len);
	return *dst ? 0 : -ENOMEM;
}

/* The raw rest of the path, relative ("a/b.txt", or "" when nothing is left). */
static int path_dup_rest(struct path_iter *it, char **dst)
{
	const char *rest = *it->pos == '/' ? it->pos + 1 : it->pos;

	it->pos += strlen(it->pos);
	return path_dup_raw(dst, rest, strlen(rest));
}

/* The rest of the path as one key: each component decoded, joined by '/'. */
static int path_parse_key(struct path_iter *it, struct node *n)
{
	struct buf b = BUF_INIT;
	const char *comp;
	size_t len;
	int err = 0;

	if (path_at_end(it))
		return 0; /* the folder itself: key stays NULL */
	while (path_next(it, &comp, &len)) {
		if (b.len) {
			err = buf_addch(&b, '/');
			if (err)
				goto out;
		}
		err = path_decode(&b, comp, len);
		if (err)
			goto out;
	}
	n->key = buf_detach(&b);
	if (!n->key)
		err = -ENOMEM;
out:
	buf_release(&b);
	return err;
}

/* Looks comp up among a folder's fixed names and parses what follows it. */
static int path_parse_child(struct path_iter *it, struct node *n, const char *comp, size_t len,
			    const struct path_child *tab, size_t count)
{
	size_t i;

	for (i = 0; i < count; i++) {
		if (!path_is(comp, len, tab[i].name))
			continue;
		n->kind = tab[i].kind;
		switch (tab[i].below) {
		case PATH_LEAF:
			return path_at_end(it) ? 0 : -ENOENT;
		case PATH_KEYS:
			return path_parse_key(it, n);
		case PATH_SUBPATH:
			return path_dup_rest(it, &n->subpath);
		}
	}
	return -ENOENT;
}

static int path_parse_experiments(struct path_iter *it, struct node *n)
{
	const char *comp;
	size_t len;
	int err;

	n->kind = NODE_EXPERIMENTS;
	if (!path_next(it, &comp, &len))
		return 0;
	err = path_dup_decoded(&n->experiment, comp, len);
	if (err)
		return err;
	n->kind = NODE_EXPERIMENT;
	if (!path_next(it, &comp, &len))
		return 0;
	/* Raw dot names cannot be runs: a run named ".tags" is listed as "%2Etags". */
	if (path_is(comp, len, ".experiment.json")) {
		n->kind = NODE_EXP_JSON;
		return path_at_end(it) ? 0 : -ENOENT;
	}
	if (path_is(comp, len, ".tags")) {
		n->kind = NODE_EXP_TAGS;
		return path_parse_key(it, n);
	}
	err = path_dup_decoded(&n->run, comp, len);
	if (err)
		return err;
	n->kind = NODE_RUN;
	if (!path_next(it, &comp, &len))
		return 0;
	return path_parse_child(it, n, comp, len, path_run_children,
				sizeof(path_run_children) / sizeof(path_run_children[0]));
}

static int path_parse_runs(struct path_iter *it, struct node *n)
{
	const char *comp;
	size_t len;

	n->kind = NODE_RUNS;
	if (!path_next(it, &comp, &len))
		return 0;
	n->kind = NODE_RUNS_LINK;
	/* A link: nothing can be below it from our side of the mount. */
	if (!path_at_end(it))
		return -ENOENT;
	return path_dup_raw(&n->run_id, comp, len);
}

static int path_parse_control(struct path_iter *it, struct node *n)
{
	const char *comp;
	size_t len;

	n->kind = NODE_CONTROL;
	if (!path_next(it, &comp, &len))
		return 0;
	return path_parse_child(it, n, comp, len, path_control_children,
				sizeof(path_control_children) / sizeof(path_control_children[0]));
}

/*
 * A version number as MLflow prints it: digits only, no sign, no leading zero,
 * so that each version has exactly one name.
 */
static int path_parse_number(const char *comp, size_t len, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || comp[0] == '0')
		return -ENOENT;
	for (i = 0; i < len; i++) {
		int d = comp[i] - '0';

		if (d < 0 || d > 9)
			return -ENOENT;
		if (v > (INT64_MAX - d) / 10)
			return -ENOENT;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int path_parse_version(struct path_iter *it, struct node *n)
{
	const char *comp;
	size_t len, f;

	n->kind = NODE_VERSION;
	if (!path_next(it, &comp, &len))
		return 0;
	if (path_is(comp, len, "tags")) {
		n->kind = NODE_VERSION_TAGS;
		return path_parse_key(it, n);
	}
	if (path_is(comp, len, "artifacts")) {
		n->kind = NODE_VERSION_ARTIFACTS;
		return path_at_end(it) ? 0 : -ENOENT;
	}
	for (f = 0; f < PATH_NFIELDS; f++) {
		if (path_is(comp, len, path_version_fields[f])) {
			n->kind = NODE_VERSION_FIELD;
			n->field = (enum version_field)f;
			return path_at_end(it) ? 0 : -ENOENT;
		}
	}
	return -ENOENT;
}

static int path_parse_models(struct path_iter *it, struct node *n)
{
	const char *comp;
	size_t len;
	int err;

	n->kind = NODE_MODELS;
	if (!path_next(it, &comp, &len))
		return 0;
	err = path_dup_decoded(&n->model, comp, len);
	if (err)
		return err;
	n->kind = NODE_MODEL;
	if (!path_next(it, &comp, &len))
		return 0;
	if (path_is(comp, len, "description")) {
		n->kind = NODE_MODEL_DESC;
		return path_at_end(it) ? 0 : -ENOENT;
	}
	if (path_is(comp, len, "tags")) {
		n->kind = NODE_MODEL_TAGS;
		return path_parse_key(it, n);
	}
	if (path_is(comp, len, "aliases")) {
		n->kind = NODE_MODEL_ALIASES;
		if (!path_next(it, &comp, &len))
			return 0;
		n->kind = NODE_MODEL_ALIAS;
		if (!path_at_end(it))
			return -ENOENT;
		return path_dup_decoded(&n->alias, comp, len);
	}
	if (path_is(comp, len, "versions")) {
		n->kind = NODE_MODEL_VERSIONS;
		if (!path_next(it, &comp, &len))
			return 0;
		err = path_parse_number(comp, len, &n->version);
		if (err)
			return err;
		return path_parse_version(it, n);
	}
	return -ENOENT;
}

int path_parse(const char *path, struct node *n)
{
	struct path_iter it = { path };
	const char *comp;
	size_t len;
	int err;

	memset(n, 0, sizeof(*n));
	err = path_check(path);
	if (err)
		return err;
	n->kind = NODE_ROOT;
	/* "/" is the one path whose last '/' starts no component. */
	if (path[1] == '\0' || !path_next(&it, &comp, &len))
		return 0;
	if (path_is(comp, len, "experiments"))
		err = path_parse_experiments(&it, n);
	else if (path_is(comp, len, "runs"))
		err = path_parse_runs(&it, n);
	else if (path_is(comp, len, ".mlflowfs"))
		err = path_parse_control(&it, n);
	else if (path_is(comp, len, "models"))
		err = path_parse_models(&it, n);
	else
		err = -ENOENT;
	/* The sub-parsers fill n as they go; a failure must not leave half a node. */
	if (err)
		path_release(n);
	return err;
}

void path_release(struct node *n)
{
	free(n->experiment);
	free(n->run);
	free(n->key);
	free(n->subpath);
	free(n->run_id);
	free(n->model);
	free(n->alias);
	/* Zeroed, so a second release (or a release after a failed parse) is harmless. */
	memset(n, 0, sizeof(*n));
}

int path_is_key_kind(enum node_kind kind)
{
	switch (kind) {
	case NODE_EXP_TAGS:
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
	case NODE_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		return 1;
	default:
		return 0;
	}
}

const char *path_version_field_name(enum version_field f)
{
	size_t i = (size_t)f;

	if (i >= PATH_NFIELDS)
		return NULL;
	return path_version_fields[i];
}

int path_version_field_parse(const char *name)
{
	size_t i;

	for (i = 0; i < PATH_NFIELDS; i++) {
		if (strcmp(name, path_version_fields[i]) == 0)
			return (int)i;
	}
	return -1;
}
