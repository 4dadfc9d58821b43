/*
 * path.c - the mount tree's shape: which absolute path names which node, and
 * the percent-encoding that lets any MLflow name be one file-name component.
 * It knows the fixed names of the tree (mlflowfs(1), THE TREE) and nothing about what exists; the
 * store decides that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "path.h"

/*
 * The tree (mlflowfs(1), THE TREE) as data: every kind of node, the folder it is in, its
 * fixed name (NULL: any other name there, decoded into one of the node's
 * fields), and what may follow it.  path_parse() walks it, and listings
 * show a folder's fixed entries from it, in this order.
 */
const struct node_def path_nodes[] = {
	{ NODE_ROOT, NODE_ROOT, NULL, SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_EXPERIMENTS, NODE_ROOT, "experiments", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_RUNS, NODE_ROOT, "runs", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_MODELS, NODE_ROOT, "models", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_CONTROL, NODE_ROOT, ".mlflowfs", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_EXPERIMENT, NODE_EXPERIMENTS, NULL, SLOT_EXPERIMENT, BELOW_CHILDREN, 0 },
	/* Raw dot names cannot be runs: a run named ".tags" is listed as "%2Etags". */
	{ NODE_EXP_JSON, NODE_EXPERIMENT, ".experiment.json", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_EXP_TAGS, NODE_EXPERIMENT, ".tags", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_RUNS_TABLE, NODE_EXPERIMENT, ".runs.csv", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_RUNS_TABLE, NODE_EXPERIMENT, ".runs.tsv", SLOT_NONE, BELOW_NOTHING, 1 },
	{ NODE_PLOTS, NODE_EXPERIMENT, ".plots", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_RUN, NODE_EXPERIMENT, NULL, SLOT_RUN, BELOW_CHILDREN, 0 },
	{ NODE_RUN_ID, NODE_RUN, "run_id", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_STATUS, NODE_RUN, "status", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_RUN_JSON, NODE_RUN, "run.json", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_PARAMS, NODE_RUN, "params", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_METRICS, NODE_RUN, "metrics", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_HISTORY, NODE_RUN, "history", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_TAGS, NODE_RUN, "tags", SLOT_NONE, BELOW_KEYS, 0 },
	/* Real file names: not decoded. */
	{ NODE_ARTIFACTS, NODE_RUN, "artifacts", SLOT_NONE, BELOW_SUBPATH, 0 },
	/* MLflow 3's logged models: the run's, and the experiment's. */
	{ NODE_RUN_MODELS, NODE_RUN, "models", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_RUN_MODEL, NODE_RUN_MODELS, NULL, SLOT_LOGGED_MODEL, BELOW_NOTHING, 0 },
	{ NODE_LOGGED_MODELS, NODE_EXPERIMENT, ".models", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_LOGGED_MODEL, NODE_LOGGED_MODELS, NULL, SLOT_LOGGED_MODEL, BELOW_CHILDREN, 0 },
	{ NODE_LM_PARAMS, NODE_LOGGED_MODEL, "params", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_LM_METRICS, NODE_LOGGED_MODEL, "metrics", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_LM_TAGS, NODE_LOGGED_MODEL, "tags", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_LM_STATUS, NODE_LOGGED_MODEL, "status", SLOT_NONE, BELOW_NOTHING, 0 },
	/* Any other name there is one of its files: real names, not decoded. */
	{ NODE_LM_FILE, NODE_LOGGED_MODEL, NULL, SLOT_SUBPATH, BELOW_SUBPATH, 0 },
	/* A link: nothing can be below it from our side of the mount. */
	{ NODE_RUNS_LINK, NODE_RUNS, NULL, SLOT_RUN_ID, BELOW_NOTHING, 0 },
	{ NODE_CONTROL_STATUS, NODE_CONTROL, "status", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_CONTROL_ERRORS, NODE_CONTROL, "errors", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_CONTROL_PARSED, NODE_CONTROL, "parsed", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_MODEL, NODE_MODELS, NULL, SLOT_MODEL, BELOW_CHILDREN, 0 },
	{ NODE_MODEL_DESC, NODE_MODEL, "description", SLOT_NONE, BELOW_NOTHING, 0 },
	{ NODE_MODEL_TAGS, NODE_MODEL, "tags", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_MODEL_ALIASES, NODE_MODEL, "aliases", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_MODEL_VERSIONS, NODE_MODEL, "versions", SLOT_NONE, BELOW_CHILDREN, 0 },
	{ NODE_MODEL_ALIAS, NODE_MODEL_ALIASES, NULL, SLOT_ALIAS, BELOW_NOTHING, 0 },
	{ NODE_VERSION, NODE_MODEL_VERSIONS, NULL, SLOT_VERSION, BELOW_CHILDREN, 0 },
	{ NODE_VERSION_FIELD, NODE_VERSION, "source", SLOT_NONE, BELOW_NOTHING, VF_SOURCE },
	{ NODE_VERSION_FIELD, NODE_VERSION, "run_id", SLOT_NONE, BELOW_NOTHING, VF_RUN_ID },
	{ NODE_VERSION_FIELD, NODE_VERSION, "status", SLOT_NONE, BELOW_NOTHING, VF_STATUS },
	{ NODE_VERSION_FIELD, NODE_VERSION, "stage", SLOT_NONE, BELOW_NOTHING, VF_STAGE },
	{ NODE_VERSION_FIELD, NODE_VERSION, "description", SLOT_NONE, BELOW_NOTHING,
	  VF_DESCRIPTION },
	{ NODE_VERSION_TAGS, NODE_VERSION, "tags", SLOT_NONE, BELOW_KEYS, 0 },
	{ NODE_VERSION_ARTIFACTS, NODE_VERSION, "artifacts", SLOT_NONE, BELOW_NOTHING, 0 },
};

const size_t path_nnodes = sizeof(path_nodes) / sizeof(path_nodes[0]);

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

/* The raw rest of the path, relative ("a/b.txt", or "" when nothing is left). */
static int path_dup_rest(struct path_iter *it, char **dst)
{
	const char *rest = *it->pos == '/' ? it->pos + 1 : it->pos;

	it->pos += strlen(it->pos);
	*dst = strdup(rest);
	return *dst ? 0 : -ENOMEM;
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

/* Keeps a named component in the node field its entry says. */
static int path_fill_slot(struct node *n, enum path_slot slot, const char *comp, size_t len)
{
	switch (slot) {
	case SLOT_EXPERIMENT:
		return path_dup_decoded(&n->experiment, comp, len);
	case SLOT_RUN:
		return path_dup_decoded(&n->run, comp, len);
	case SLOT_RUN_ID:
		n->run_id = strndup(comp, len);
		return n->run_id ? 0 : -ENOMEM;
	case SLOT_MODEL:
		return path_dup_decoded(&n->model, comp, len);
	case SLOT_ALIAS:
		return path_dup_decoded(&n->alias, comp, len);
	case SLOT_LOGGED_MODEL:
		return path_dup_decoded(&n->logged_model, comp, len);
	case SLOT_SUBPATH:
		n->subpath = strndup(comp, len);
		return n->subpath ? 0 : -ENOMEM;
	case SLOT_VERSION:
		/* Another name there is one ln -s makes a version under. */
		if (path_parse_number(comp, len, &n->version))
			n->version = 0;
		return 0;
	default:
		return 0;
	}
}

/* The entry of comp in folder kind: a fixed name first, else the named one. */
static const struct node_def *path_child(enum node_kind kind, const char *comp, size_t len)
{
	const struct node_def *named = NULL;
	size_t i;

	for (i = 1; i < path_nnodes; i++) {
		const struct node_def *d = &path_nodes[i];

		if (d->parent != kind)
			continue;
		if (!d->name)
			named = d;
		else if (path_is(comp, len, d->name))
			return d;
	}
	return named;
}

int path_parse(const char *path, struct node *n)
{
	const struct node_def *d = &path_nodes[0];
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
	if (path[1] == '\0')
		return 0;
	for (;;) {
		if (d->below == BELOW_KEYS) {
			err = path_parse_key(&it, n);
			break;
		}
		if (d->below == BELOW_SUBPATH && d->slot == SLOT_SUBPATH) {
			/* The rest joins the first component the slot kept. */
			char *rest = NULL, *joined;

			err = path_dup_rest(&it, &rest);
			if (!err && rest[0]) {
				err = asprintf(&joined, "%s/%s", n->subpath, rest) < 0 ? -ENOMEM
										       : 0;
				if (!err) {
					free(n->subpath);
					n->subpath = joined;
				}
			}
			free(rest);
			break;
		}
		if (d->below == BELOW_SUBPATH) {
			err = path_dup_rest(&it, &n->subpath);
			break;
		}
		if (!path_next(&it, &comp, &len))
			break;
		if (n->kind == NODE_VERSION && !n->version) {
			err = -ENOENT; /* not a version: nothing below it */
			break;
		}
		d = d->below == BELOW_CHILDREN ? path_child(n->kind, comp, len) : NULL;
		if (!d) {
			err = -ENOENT;
			break;
		}
		n->kind = d->kind;
		n->field = (enum version_field)d->field;
		err = path_fill_slot(n, d->slot, comp, len);
		if (err)
			break;
	}
	/* A failure must not leave half a node. */
	if (err)
		path_release(n);
	return err;
}

const struct node_def *path_fixed_child(enum node_kind parent, size_t *pos)
{
	while (*pos < path_nnodes) {
		const struct node_def *d = &path_nodes[(*pos)++];

		if (d->parent == parent && d->name && d->kind != NODE_ROOT)
			return d;
	}
	return NULL;
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
	free(n->logged_model);
	/* Zeroed, so a second release (or a release after a failed parse) is harmless. */
	memset(n, 0, sizeof(*n));
}

int path_is_key_kind(enum node_kind kind)
{
	size_t i;

	for (i = 0; i < path_nnodes; i++)
		if (path_nodes[i].kind == kind)
			return path_nodes[i].below == BELOW_KEYS;
	return 0;
}

/*
 * Whether MLflow's path check refuses key: Python's posixpath.normpath(key)
 * must equal the key, and not be "." nor begin with ".." or "/".  That is
 * the same as refusing a leading '/', an empty segment ("a//b", "a/"), any
 * "." or ".." segment, and a key that begins with "..".
 */
int path_key_refused(const char *key)
{
	const char *seg = key;

	if (key[0] == '/' || !strncmp(key, "..", 2))
		return 1;
	for (;;) {
		size_t n = strcspn(seg, "/");

		if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && !strncmp(seg, "..", 2)))
			return 1;
		if (!seg[n])
			return 0;
		seg += n + 1;
	}
}
