/*
 * fs_tree.c - the kinds of the tree's own folders and files: the root,
 * experiments, runs and the registry as folders (and their writes: mkdir,
 * rmdir, mv, the registry's ln -s), the links (runs/, aliases, a run's
 * logged models, a version's artifacts), the folders of MLflow 3's logged
 * models, and the files rendered from the store (run.json, status, a
 * version's stage, .mlflowfs/ ...).  Keys are fs_keys.c's, artifacts and a
 * logged model's files fs_art.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "fs-internal.h"
#include "log.h"
#include "options.h"
#include "provenance.h"

static int dir_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	fs_fill_stat(fs, st, DIR_MODE, 0, fs_node_ms(fs, t));
	return 0;
}

/* The root, .mlflowfs/, models/M/, models/M/versions/N/: fixed entries only.
 * What they refuse, the handlers' defaults refuse (fs.c). */
const struct kind_ops fs_fixed_dir_ops = {
	.getattr = dir_getattr,
};

/* ---- experiments ----------------------------------------------------- */

static int experiment_cb(void *ctx, const struct store_experiment *e)
{
	struct listing *l = ctx;
	struct stat st;

	fs_fill_stat(fs_get(), &st, DIR_MODE, 0, e->last_update_time);
	return listing_add_encoded(l, e->name, &st);
}

static int experiments_list(struct fs *fs, struct target *t, struct listing *l)
{
	(void)t;
	return store_list_experiments(fs->store, experiment_cb, l);
}

const struct kind_ops fs_experiments_ops = {
	.getattr = dir_getattr,
	.list = experiments_list,
};

static int run_cb(void *ctx, const struct store_run *r)
{
	struct listing *l = ctx;
	struct stat st;

	fs_fill_stat(fs_get(), &st, DIR_MODE, 0, r->last_change);
	return listing_add_encoded(l, r->folder, &st);
}

static int experiment_list(struct fs *fs, struct target *t, struct listing *l)
{
	return store_list_runs(fs->store, t->exp.id, run_cb, l);
}

static int experiment_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	int err;

	(void)mode;
	if (!t->missing)
		return -EEXIST;
	err = fs_name_check(t->path, "experiment", STORE_EXP_NAME_MAX);
	if (!err && (err = store_create_experiment(fs->store, NULL, t->n.experiment, NULL)))
		err = log_refusal(t->path, -err, "cannot create experiment '%s': %s",
				  t->n.experiment, fs_store_why(err));
	return err;
}

static int experiment_rmdir(struct fs *fs, struct target *t)
{
	int err = store_delete_experiment(fs->store, NULL, t->exp.id);

	if (err)
		err = log_refusal(t->path, -err, "cannot delete experiment '%s': %s", t->exp.name,
				  fs_store_why(err));
	return err;
}

static int experiment_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	int err;

	(void)flags; /* the new name is refused if taken, with or without NOREPLACE */
	if (b->n.kind != NODE_EXPERIMENT)
		return fs_refuse_move(a->path, b->path);
	if (!b->missing && strcmp(a->exp.id, b->exp.id))
		return log_refusal(b->path, EEXIST, "an experiment named '%s' exists",
				   b->n.experiment);
	err = fs_name_check(b->path, "experiment", STORE_EXP_NAME_MAX);
	if (!err && (err = store_rename_experiment(fs->store, NULL, a->exp.id, b->n.experiment)))
		err = log_refusal(a->path, -err, "cannot rename the experiment: %s",
				  fs_store_why(err));
	return err;
}

const struct kind_ops fs_experiment_ops = {
	.getattr = dir_getattr,
	.list = experiment_list,
	.mkdir = experiment_mkdir,
	.rmdir = experiment_rmdir,
	.rename = experiment_rename,
};

/* ---- runs ------------------------------------------------------------ */

/*
 * The tags MLflow's client sets on a run it starts, besides mlflow.user:
 * where the run comes from (provenance.h).  In the run's batch, so the local
 * store commits them with it; a remote store sends each, and one it refuses
 * is logged without failing the mkdir that made the run.
 */
static void set_provenance(struct fs *fs, struct store_batch *b, const char *path,
			   const char *run_id)
{
	struct store_ref ref = { .run_id = run_id };
	struct provenance_tag tags[PROVENANCE_NTAGS];
	struct provenance p;
	size_t i;
	int err;

	if (provenance_of(fuse_get_context()->pid, fs->cfg->mountpoint, &p))
		return;
	provenance_tags(&p, tags);
	for (i = 0; i < PROVENANCE_NTAGS; i++) {
		if (!tags[i].value)
			continue;
		err = store_set_tag(fs->store, b, SEC_RUN_TAGS, &ref, tags[i].key, tags[i].value);
		if (err)
			log_warn("%s: the run is made without tag %s: %s", path, tags[i].key,
				 fs_store_why(err));
	}
	provenance_release(&p);
}

static int run_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	struct store_batch *b;
	struct store_run r;
	char user[256];
	int err;

	(void)mode;
	if (!t->missing)
		return -EEXIST;
	err = fs_name_check(t->path, "run", STORE_RUN_NAME_MAX);
	if (err)
		return err;
	fs_caller_name(user, sizeof(user));
	b = store_batch_new(fs->store);
	if (!b)
		return -ENOMEM;
	err = store_create_run(fs->store, b, t->exp.id, t->n.run, user, &r);
	if (!err) {
		set_provenance(fs, b, t->path, r.run_id);
		store_run_release(&r);
		err = store_batch_commit(fs->store, b, 0);
	}
	store_batch_free(fs->store, b);
	if (err)
		return log_refusal(t->path, -err, "cannot create run '%s': %s", t->n.run,
				   fs_store_why(err));
	return 0;
}

static int run_rmdir(struct fs *fs, struct target *t)
{
	/* MLflow's soft delete: the run goes to the experiment's trash. */
	int err = store_delete_run(fs->store, NULL, t->run.run_id);

	if (err)
		err = log_refusal(t->path, -err, "cannot delete run '%s': %s", t->run.run_id,
				  fs_store_why(err));
	return err;
}

static int run_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	int err;

	(void)flags; /* the new name is refused if taken, with or without NOREPLACE */
	if (b->n.kind != NODE_RUN)
		return fs_refuse_move(a->path, b->path);
	if (strcmp(a->n.experiment, b->n.experiment))
		return log_refusal(a->path, EPERM, "a run cannot move to another experiment");
	if (!b->missing && strcmp(a->run.run_id, b->run.run_id))
		return log_refusal(b->path, EEXIST, "a run named '%s' exists", b->n.run);
	err = fs_name_check(b->path, "run", STORE_RUN_NAME_MAX);
	if (!err && (err = store_rename_run(fs->store, NULL, a->run.run_id, b->n.run)))
		err = log_refusal(a->path, -err, "cannot rename the run: %s", fs_store_why(err));
	return err;
}

const struct kind_ops fs_run_ops = {
	.getattr = dir_getattr,
	.mkdir = run_mkdir,
	.rmdir = run_rmdir,
	.rename = run_rename,
};

/* ---- links ----------------------------------------------------------- */

/* "<up>experiments/<E>/<R>", names encoded. */
static int run_link_target(const struct store_experiment *e, const struct store_run *r,
			   const char *up, struct buf *out)
{
	int err = buf_adds(out, up);

	if (!err)
		err = buf_adds(out, "experiments/");
	if (!err)
		err = path_encode(out, e->name);
	if (!err)
		err = buf_addch(out, '/');
	return err ? err : path_encode(out, r->folder);
}

/* ---- MLflow 3's logged models ------------------------------------------ */

struct lm_find {
	const char *id;		     /* find the folder of this model, or */
	const char *run_id;	     /* list the models of this run: */
	struct listing *l;	     /* into l, named as its models/ shows them */
	const char *name;	     /* or find the one named so */
	struct buf *out;	     /* the folder found */
	struct store_lm_names names; /* the run's, so far */
};

static int lm_find_cb(void *ctx, const struct store_logged_model *m)
{
	struct lm_find *f = ctx;
	struct buf target = BUF_INIT;
	struct stat st;
	char *name = NULL;
	int err;

	if (f->id)
		return strcmp(m->id, f->id) ? 0 : path_encode(f->out, m->folder) ? -ENOMEM : 1;
	if (strcmp(m->source_run_id, f->run_id))
		return 0;
	/* Named among the run's models as the folders are among the
	 * experiment's. */
	err = store_lm_name(&f->names, m, &name);
	if (!err && !(err = buf_adds(&target, "../../.models/")))
		err = path_encode(&target, m->folder);
	if (!err && f->l) {
		fs_fill_stat(fs_get(), &st, LINK_MODE, (off_t)target.len, m->last_updated_time);
		err = listing_add_encoded(f->l, name, &st);
	} else if (!err && !strcmp(name, f->name)) {
		err = buf_add(f->out, target.data, target.len) ? -ENOMEM : 1;
	}
	free(name);
	buf_release(&target);
	return err;
}

/* experiments/E/R/models/NAME: "../../.models/<its folder>". */
static int run_model_target(struct fs *fs, const struct target *t, struct buf *out)
{
	struct lm_find f = { .run_id = t->run.run_id, .name = t->n.logged_model, .out = out };
	int err = store_list_logged_models(fs->store, t->exp.id, lm_find_cb, &f);

	store_lm_names_release(&f.names);
	return err < 0 ? err : err ? 0 : -ENOENT;
}

static int run_models_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct lm_find f = { .run_id = t->run.run_id, .l = l };
	int err = store_list_logged_models(fs->store, t->exp.id, lm_find_cb, &f);

	store_lm_names_release(&f.names);
	return err;
}

static int lm_folder_cb(void *ctx, const struct store_logged_model *m)
{
	struct listing *l = ctx;
	struct stat st;

	fs_fill_stat(fs_get(), &st, DIR_MODE, 0, m->last_updated_time);
	return listing_add_encoded(l, m->folder, &st);
}

static int logged_models_list(struct fs *fs, struct target *t, struct listing *l)
{
	return store_list_logged_models(fs->store, t->exp.id, lm_folder_cb, l);
}

/* experiments/E/R/models/: links to the models the run made. */
const struct kind_ops fs_run_models_ops = {
	.getattr = dir_getattr,
	.list = run_models_list,
};

/* experiments/E/.models/: the experiment's logged models. */
const struct kind_ops fs_logged_models_ops = {
	.getattr = dir_getattr,
	.list = logged_models_list,
};

/* A version registered from a logged model (source models:/<id>) points
 * at its folder: "../../../../experiments/<E>/.models/<folder>". */
static int version_model_target(struct fs *fs, const char *id, struct buf *out)
{
	struct store_logged_model m;
	struct store_experiment e = { 0 };
	struct lm_find f = { .id = id, .out = out };
	int err = store_get_logged_model(fs->store, id, &m);

	if (err)
		return err;
	err = store_get_experiment_by_id(fs->store, m.experiment_id, &e);
	if (!err && e.deleted)
		err = -ENOENT;
	if (!err && !(err = buf_adds(out, "../../../../experiments/")) &&
	    !(err = path_encode(out, e.name)) && !(err = buf_adds(out, "/.models/"))) {
		err = store_list_logged_models(fs->store, m.experiment_id, lm_find_cb, &f);
		err = err < 0 ? err : err ? 0 : -ENOENT;
	}
	store_experiment_release(&e);
	store_logged_model_release(&m);
	return err;
}

/*
 * Where versions/<n>/artifacts points: the run's artifact folder in this
 * mount, with the path below it that the version's source names; or the
 * logged model's folder, for a version made from one.
 */
static int version_link_target(struct fs *fs, const struct target *t, struct buf *out)
{
	const struct store_version *v = &t->version;
	struct store_experiment e = { 0 };
	struct store_run r = { 0 };
	const char *sub = NULL;
	size_t n;
	int err;

	if (!strncmp(v->source, "models:/m-", 10) && !strchr(v->source + 8, '/'))
		return version_model_target(fs, v->source + 8, out);
	if (!v->run_id[0])
		return -ENOENT;
	err = store_get_run(fs->store, v->run_id, &r);
	if (err)
		return err;
	if (!r.folder) {
		err = -ENOENT;
		goto out;
	}
	n = strlen(r.run_id);
	if (!strncmp(v->source, "runs:/", 6) && !strncmp(v->source + 6, r.run_id, n) &&
	    (v->source[6 + n] == '/' || !v->source[6 + n]))
		sub = v->source + 6 + n;
	n = strlen(r.artifact_uri);
	if (!sub && !strncmp(v->source, r.artifact_uri, n) &&
	    (v->source[n] == '/' || !v->source[n]))
		sub = v->source + n;
	if (!sub) {
		err = -ENOENT;
		goto out;
	}
	err = store_get_experiment_by_id(fs->store, r.experiment_id, &e);
	if (!err)
		err = run_link_target(&e, &r, "../../../../", out);
	if (!err)
		err = buf_adds(out, "/artifacts");
	if (!err)
		err = buf_adds(out, sub);
	store_experiment_release(&e);
out:
	store_run_release(&r);
	return err;
}

struct alias_find {
	const char *alias;
	int64_t version;
};

static int alias_find_cb(void *ctx, const char *alias, int64_t version)
{
	struct alias_find *a = ctx;

	if (strcmp(alias, a->alias))
		return 0;
	a->version = version;
	return 1;
}

static int link_readlink(struct fs *fs, struct target *t, struct buf *out)
{
	struct alias_find a = { t->n.alias, 0 };
	int err;

	switch (t->n.kind) {
	case NODE_RUNS_LINK:
		return run_link_target(&t->exp, &t->run, "../", out);
	case NODE_RUN_MODEL:
		return run_model_target(fs, t, out);
	case NODE_MODEL_ALIAS:
		err = store_list_aliases(fs->store, t->n.model, alias_find_cb, &a);
		if (err <= 0)
			return err < 0 ? err : -ENOENT;
		return buf_addf(out, "../versions/%" PRId64, a.version);
	default:
		return version_link_target(fs, t, out);
	}
}

static int link_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct buf text = BUF_INIT;
	int err = link_readlink(fs, t, &text);

	if (!err)
		fs_fill_stat(fs, st, LINK_MODE, (off_t)text.len,
			     t->has_run ? t->run.last_change : t->model.last_updated_time);
	buf_release(&text);
	return err;
}

/* runs/<id>, models/M/versions/N/artifacts */
const struct kind_ops fs_link_ops = {
	.getattr = link_getattr,
	.readlink = link_readlink,
};

static int alias_symlink(struct fs *fs, const char *text, struct target *t);
static int alias_unlink(struct fs *fs, struct target *t);
static int alias_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags);

/* models/M/aliases/A */
const struct kind_ops fs_alias_ops = {
	.getattr = link_getattr,
	.readlink = link_readlink,
	.symlink = alias_symlink,
	.unlink = alias_unlink,
	.rename = alias_rename,
};

struct all_runs {
	struct fs *fs;
	struct listing *l;
	const struct store_experiment *exp;
};

static int all_runs_cb(void *ctx, const struct store_run *r)
{
	struct all_runs *a = ctx;
	struct buf target = BUF_INIT;
	struct stat st;
	int err = run_link_target(a->exp, r, "../", &target);

	if (!err) {
		fs_fill_stat(a->fs, &st, LINK_MODE, (off_t)target.len, r->last_change);
		err = listing_add(a->l, r->run_id, &st);
	}
	buf_release(&target);
	return err;
}

static int all_experiments_cb(void *ctx, const struct store_experiment *e)
{
	struct all_runs *a = ctx;

	a->exp = e;
	return store_list_runs(a->fs->store, e->id, all_runs_cb, a);
}

static int runs_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct all_runs a = { fs, l, NULL };

	(void)t;
	return store_list_experiments(fs->store, all_experiments_cb, &a);
}

const struct kind_ops fs_runs_ops = {
	.getattr = dir_getattr,
	.list = runs_list,
};

/* ---- the registry ------------------------------------------------------ */

/* MLflow's model name rule beyond the tree's: no '/' or ':', not blank. */
#define MODEL_NAME_MAX 256

static int model_name_check(const char *path, const char *name)
{
	const char *p;
	int err = fs_name_check(path, "model", MODEL_NAME_MAX);

	if (err)
		return err;
	if (strpbrk(name, "/:"))
		return log_refusal(path, EINVAL, "MLflow's model names cannot contain '/' or ':'");
	for (p = name; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	if (!*p || !strcmp(name, ".") || !strcmp(name, ".."))
		return log_refusal(path, EINVAL, "'%s' is not a model name MLflow takes", name);
	return 0;
}

static int model_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	int err;

	(void)mode;
	if (!t->missing)
		return -EEXIST;
	err = model_name_check(t->path, t->n.model);
	if (!err && (err = store_create_model(fs->store, NULL, t->n.model)))
		err = log_refusal(t->path, -err, "cannot create model '%s': %s", t->n.model,
				  fs_store_why(err));
	return err;
}

static int model_rmdir(struct fs *fs, struct target *t)
{
	int err = store_delete_model(fs->store, NULL, t->n.model);

	if (err == -ENOTEMPTY)
		return log_refusal(t->path, ENOTEMPTY, "model '%s' has versions", t->n.model);
	if (err)
		err = log_refusal(t->path, -err, "cannot delete model '%s': %s", t->n.model,
				  fs_store_why(err));
	return err;
}

static int model_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	int err;

	(void)flags; /* the new name is refused if taken, with or without NOREPLACE */
	if (b->n.kind != NODE_MODEL)
		return fs_refuse_move(a->path, b->path);
	if (!b->missing && strcmp(a->n.model, b->n.model))
		return log_refusal(b->path, EEXIST, "a model named '%s' exists", b->n.model);
	err = model_name_check(b->path, b->n.model);
	if (!err && (err = store_rename_model(fs->store, NULL, a->n.model, b->n.model)))
		err = log_refusal(a->path, -err, "cannot rename the model: %s", fs_store_why(err));
	return err;
}

/* models/M/ */
const struct kind_ops fs_model_ops = {
	.getattr = dir_getattr,
	.mkdir = model_mkdir,
	.rmdir = model_rmdir,
	.rename = model_rename,
};

static int model_cb(void *ctx, const struct store_model *m)
{
	struct listing *l = ctx;
	struct stat st;

	fs_fill_stat(fs_get(), &st, DIR_MODE, 0, m->last_updated_time);
	return listing_add_encoded(l, m->name, &st);
}

static int models_list(struct fs *fs, struct target *t, struct listing *l)
{
	(void)t;
	return store_list_models(fs->store, model_cb, l);
}

const struct kind_ops fs_models_ops = {
	.getattr = dir_getattr,
	.list = models_list,
};

struct alias_list {
	struct fs *fs;
	struct listing *l;
	int64_t ms;
};

static int alias_cb(void *ctx, const char *alias, int64_t version)
{
	struct alias_list *a = ctx;
	char target[48];
	struct stat st;
	int n = snprintf(target, sizeof(target), "../versions/%" PRId64, version);

	fs_fill_stat(a->fs, &st, LINK_MODE, n, a->ms);
	return listing_add_encoded(a->l, alias, &st);
}

static int aliases_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct alias_list a = { fs, l, t->model.last_updated_time };

	return store_list_aliases(fs->store, t->n.model, alias_cb, &a);
}

const struct kind_ops fs_aliases_ops = {
	.getattr = dir_getattr,
	.list = aliases_list,
};

/* MLflow's alias rule: letters, digits, '_' and '-' (ASCII here), at most
 * 255, neither "latest" nor a version's name (v3). */
static int alias_check(const char *path, const char *alias)
{
	size_t i, n = strlen(alias);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)alias[i];

		if (c > 127 || (!isalnum(c) && c != '_' && c != '-'))
			return log_refusal(path, EINVAL,
					   "an alias has letters, digits, '_' and '-' only");
	}
	if (!n || n > 255)
		return log_refusal(path, n ? ENAMETOOLONG : EINVAL,
				   "an alias has 1 to 255 characters");
	if (!strcasecmp(alias, "latest"))
		return log_refusal(path, EINVAL, "MLflow keeps the alias 'latest' for itself");
	if ((alias[0] == 'v' || alias[0] == 'V') && n > 1 &&
	    strspn(alias + 1, "0123456789") == n - 1)
		return log_refusal(path, EINVAL, "MLflow keeps aliases like '%s' for versions",
				   alias);
	return 0;
}

/* The version an alias has, or -ENOENT. */
static int alias_version(struct fs *fs, const char *model, const char *alias, int64_t *version)
{
	struct alias_find a = { alias, 0 };
	int err = store_list_aliases(fs->store, model, alias_find_cb, &a);

	if (err < 0)
		return err;
	if (!err)
		return -ENOENT;
	*version = a.version;
	return 0;
}

/* ln -s ../versions/N aliases/A (ln -sfn replaces it): points A at N. */
static int alias_symlink(struct fs *fs, const char *text, struct target *t)
{
	struct buf to = BUF_INIT;
	struct node n;
	int64_t had;
	int err = alias_check(t->path, t->n.alias);

	memset(&n, 0, sizeof(n));
	if (err)
		return err;
	if (!alias_version(fs, t->n.model, t->n.alias, &had))
		return -EEXIST;
	err = fs_link_resolve(fs, t->path, text, &to);
	if (!err)
		err = path_parse(buf_str(&to), &n);
	if (err == -ENOMEM)
		goto out;
	if (err || n.kind != NODE_VERSION || !n.version || strcmp(n.model, t->n.model)) {
		err = log_refusal(
			t->path, EINVAL,
			"an alias points at a version of its model: ../versions/N, not '%s'", text);
		goto out;
	}
	err = store_set_alias(fs->store, NULL, t->n.model, t->n.alias, n.version);
	if (err)
		err = log_refusal(t->path, -err, "cannot set alias '%s': %s", t->n.alias,
				  fs_store_why(err));
out:
	path_release(&n);
	buf_release(&to);
	return err;
}

static int alias_unlink(struct fs *fs, struct target *t)
{
	int err = store_delete_alias(fs->store, NULL, t->n.model, t->n.alias);

	if (err)
		err = log_refusal(t->path, -err, "cannot delete alias '%s': %s", t->n.alias,
				  fs_store_why(err));
	return err;
}

/* mv aliases/A aliases/B (as ln -sfn does, through a temporary name): B
 * takes A's version, and A goes. */
static int alias_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	int64_t version, had;
	int err;

	if (b->n.kind != NODE_MODEL_ALIAS || strcmp(a->n.model, b->n.model))
		return fs_refuse_move(a->path, b->path);
	err = alias_version(fs, a->n.model, a->n.alias, &version);
	if (err)
		return err;
	if (!strcmp(a->n.alias, b->n.alias))
		return 0;
	if ((flags & RENAME_NOREPLACE) && !alias_version(fs, b->n.model, b->n.alias, &had))
		return -EEXIST;
	err = alias_check(b->path, b->n.alias);
	if (!err && (err = store_set_alias(fs->store, NULL, b->n.model, b->n.alias, version)))
		return log_refusal(b->path, -err, "cannot set alias '%s': %s", b->n.alias,
				   fs_store_why(err));
	if (!err && (err = store_delete_alias(fs->store, NULL, a->n.model, a->n.alias)))
		err = log_refusal(a->path, -err, "cannot delete alias '%s': %s", a->n.alias,
				  fs_store_why(err));
	return err;
}

static int version_cb(void *ctx, const struct store_version *v)
{
	struct listing *l = ctx;
	char name[32];
	struct stat st;

	fs_fill_stat(fs_get(), &st, DIR_MODE, 0, v->last_updated_time);
	snprintf(name, sizeof(name), "%" PRId64, v->version);
	return listing_add(l, name, &st);
}

static int versions_list(struct fs *fs, struct target *t, struct listing *l)
{
	return store_list_versions(fs->store, t->n.model, version_cb, l);
}

const struct kind_ops fs_versions_ops = {
	.getattr = dir_getattr,
	.list = versions_list,
};

/*
 * The version the calling thread's last ln -s into versions/ made, and the
 * name it was made under: libfuse asks the new name's attributes right
 * after the symlink call, in the same thread, and fails the call unless it
 * answers.  The name is the version's for that one question; the kernel
 * asks again before it makes a name (the create lookup), so the next ln -s
 * to the same name works.
 */
static _Thread_local struct {
	char path[PATH_MAX]; /* "" when none */
	int64_t version;
} just_made;

static int version_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	char text[32];
	int n;

	if (t->has_version)
		return dir_getattr(fs, t, st);
	if (!just_made.path[0] || strcmp(just_made.path, t->path))
		return -ENOENT;
	n = snprintf(text, sizeof(text), "%" PRId64, just_made.version);
	fs_fill_stat(fs, st, LINK_MODE, n, fs_now_ms());
	just_made.path[0] = '\0';
	return 0;
}

static int version_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	(void)fs;
	(void)mode;
	if (t->has_version)
		return -EEXIST;
	return log_refusal(t->path, EPERM,
			   "a version is made with ln -s FOLDER versions/new, FOLDER under a "
			   "run's artifacts/");
}

static int version_rmdir(struct fs *fs, struct target *t)
{
	int err;

	if (!t->has_version)
		return -ENOENT;
	err = store_delete_version(fs->store, NULL, t->n.model, t->n.version);
	if (err)
		err = log_refusal(t->path, -err, "cannot delete version %" PRId64 " of '%s': %s",
				  t->n.version, t->n.model, fs_store_why(err));
	return err;
}

/*
 * ln -s PATH models/M/versions/NAME registers a version of M from PATH, a
 * folder under some run's artifacts/ in this mount: its source is the
 * run's artifact URI and the path below it, as MLflow's client records a
 * model registered from runs:/RUN/PATH.  NAME is not kept.
 */
static int version_symlink(struct fs *fs, const char *text, struct target *t)
{
	struct buf to = BUF_INIT, source = BUF_INIT;
	struct target r;
	int64_t version;
	int err;

	memset(&r, 0, sizeof(r));
	if (t->has_version)
		return -EEXIST;
	err = fs_link_resolve(fs, t->path, text, &to);
	if (err == -EINVAL)
		err = log_refusal(t->path, EINVAL, "'%s' is not a path in this mount", text);
	if (err)
		goto out;
	err = fs_resolve(fs, buf_str(&to), &r, 0);
	if (!err && r.n.kind == NODE_LOGGED_MODEL) {
		/* An MLflow 3 logged model: registered as MLflow's client does. */
		err = buf_addf(&source, "models:/%s", r.lm.id);
		if (err)
			goto out;
		err = store_create_version(fs->store, NULL, t->n.model, buf_str(&source),
					   r.lm.source_run_id[0] ? r.lm.source_run_id : NULL,
					   &version);
		goto made;
	}
	if (err == -ENOENT && r.parsed &&
	    (r.n.kind == NODE_ARTIFACTS || r.n.kind == NODE_LOGGED_MODEL))
		err = log_refusal(t->path, ENOENT, "'%s' does not exist", text);
	else if (err || r.n.kind != NODE_ARTIFACTS)
		err = log_refusal(t->path, EINVAL,
				  "a version is registered from a folder under a run's artifacts/, "
				  "or from a logged model's folder, not from '%s'",
				  text);
	if (!err && (err = fs_art_folder(fs, &r)))
		err = log_refusal(t->path, -err, "'%s' is not a folder of the run's artifacts",
				  text);
	if (!err)
		err = buf_adds(&source, r.run.artifact_uri);
	if (!err && r.n.subpath[0])
		err = buf_addf(&source, "/%s", r.n.subpath);
	if (err)
		goto out;
	err = store_create_version(fs->store, NULL, t->n.model, buf_str(&source), r.run.run_id,
				   &version);
made:
	if (err) {
		err = log_refusal(t->path, -err, "cannot register a version of '%s': %s",
				  t->n.model, fs_store_why(err));
		goto out;
	}
	log_info("%s: registered version %" PRId64 " of '%s' from %s", t->path, version, t->n.model,
		 buf_str(&source));
	snprintf(just_made.path, sizeof(just_made.path), "%s", t->path);
	just_made.version = version;
out:
	fs_target_release(&r);
	buf_release(&to);
	buf_release(&source);
	return err;
}

/* models/M/versions/N, and a new name there */
const struct kind_ops fs_version_ops = {
	.getattr = version_getattr,
	.mkdir = version_mkdir,
	.rmdir = version_rmdir,
	.symlink = version_symlink,
};

/* ---- rendered files -------------------------------------------------- */

static const char *version_field(const struct store_version *v, enum version_field f)
{
	switch (f) {
	case VF_SOURCE:
		return v->source;
	case VF_RUN_ID:
		return v->run_id;
	case VF_STATUS:
		return v->status;
	case VF_STAGE:
		return v->stage;
	default:
		return v->description;
	}
}

/* The content of a rendered file. */
static int render(struct fs *fs, struct target *t, struct buf *out)
{
	int err;

	switch (t->n.kind) {
	case NODE_EXP_JSON:
		return content_experiment_json(fs->store, &t->exp, out);
	case NODE_RUN_ID:
		return buf_addf(out, "%s\n", t->run.run_id);
	case NODE_STATUS:
		return buf_addf(out, "%s\n", t->run.status);
	case NODE_RUN_JSON:
		err = fs_target_snapshot(fs, t, SNAP_ALL);
		return err ? err : content_run_json(t->snap, out);
	case NODE_CONTROL_STATUS:
		err = buf_addf(
			out, "version: %s\nmountpoint: %s\nopen_files: %zu\nopen_folders: %zu\n",
			PACKAGE_VERSION, fs->cfg->mountpoint, fs_file_count(fs), fs_dir_count(fs));
		if (!err)
			err = store_describe(fs->store, out);
		if (!err)
			err = art_describe(fs->art, out);
		return err ? err : ingest_describe(fs->ingest, out);
	case NODE_CONTROL_ERRORS:
		return log_render_errors(out);
	case NODE_CONTROL_PARSED:
		return ingest_render(fs->ingest, out);
	case NODE_MODEL_DESC:
		return buf_addf(out, "%s\n", t->model.description);
	case NODE_LM_STATUS:
		return buf_addf(out, "%s\n", t->lm.status);
	default:
		return buf_addf(out, "%s\n", version_field(&t->version, t->n.field));
	}
}

/* The handle a writer of a rendered file gets; H_READ: the file is read-only. */
static enum handle_kind writer_of(const struct target *t)
{
	switch (t->n.kind) {
	case NODE_STATUS:
		return H_STATUS;
	case NODE_MODEL_DESC:
		return H_DESCRIPTION;
	case NODE_VERSION_FIELD:
		return t->n.field == VF_STAGE	      ? H_STAGE
		       : t->n.field == VF_DESCRIPTION ? H_DESCRIPTION
						      : H_READ;
	default:
		return H_READ;
	}
}

/* The registry's descriptions are 5,000 characters in MLflow's schema. */
#define DESCRIPTION_MAX 5000

static int file_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct buf text = BUF_INIT;
	off_t size;
	int err;

	if (t->n.kind == NODE_RUNS_TABLE) {
		err = fs_views_table_size(fs, t->exp.id, t->n.field, &size);
		if (!err)
			fs_fill_stat(fs, st, RO_MODE, size, fs_node_ms(fs, t));
		return err;
	}
	err = render(fs, t, &text);

	if (!err)
		fs_fill_stat(fs, st, writer_of(t) != H_READ ? RW_MODE : RO_MODE, (off_t)text.len,
			     t->has_exp || t->has_model || t->has_lm ? fs_node_ms(fs, t)
								     : fs_now_ms());
	buf_release(&text);
	return err;
}

/*
 * Opens a rendered file: readers get the content as it is now; a writer of
 * the status, a stage or a description a buffer that starts empty (O_TRUNC)
 * or with the value.
 */
static int file_open(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
		     mode_t mode)
{
	struct buf text = BUF_INIT;
	struct handle *h;
	int err;

	(void)mode;
	if (create)
		return -EEXIST;
	if (fs_open_writes(fi->flags) && writer_of(t) == H_READ)
		return log_refusal(t->path, EACCES, WHY_READ_ONLY);
	if (t->n.kind == NODE_RUNS_TABLE) {
		/* Into the handle's blob, which spills to a file past a size. */
		h = fs_handle_new(fs, H_READ, t->path);
		if (!h)
			return -ENOMEM;
		err = fs_views_table_copy(fs, t->exp.id, t->n.field, &h->content);
		return fs_handle_open_done(fs, h, fi, err);
	}
	err = render(fs, t, &text);
	if (err)
		goto out;
	h = fs_handle_new(fs, fs_open_writes(fi->flags) ? writer_of(t) : H_READ, t->path);
	if (!h) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(h->run_id, t->run.run_id, sizeof(h->run_id));
	h->append = !!(fi->flags & O_APPEND);
	h->value_max = DESCRIPTION_MAX;
	if (t->n.model && !(h->model = strdup(t->n.model)))
		err = -ENOMEM;
	h->version = t->n.kind == NODE_VERSION_FIELD ? t->n.version : 0;
	if (!err && (fi->flags & O_ACCMODE) != O_WRONLY)
		err = blob_add(&h->content, text.data, text.len);
	if (!err && h->kind != H_READ && !(fi->flags & O_TRUNC))
		err = buf_add(&h->wbuf, text.data, text.len);
	err = fs_handle_open_done(fs, h, fi, err);
out:
	buf_release(&text);
	return err;
}

static int ro_truncate(struct fs *fs, struct target *t, off_t size)
{
	(void)fs;
	(void)size;
	/* A value changes by a write: truncate(1) alone changes nothing. */
	if (writer_of(t) != H_READ)
		return 0;
	return log_refusal(t->path, EACCES, WHY_READ_ONLY);
}

const struct kind_ops fs_ro_file_ops = {
	.getattr = file_getattr,
	.open = file_open,
	.truncate = ro_truncate,
};

static int status_truncate(struct fs *fs, struct target *t, off_t size)
{
	/* A value changes by a write: truncate(1) alone changes nothing. */
	(void)fs;
	(void)t;
	(void)size;
	return 0;
}

const struct kind_ops fs_status_ops = {
	.getattr = file_getattr,
	.open = file_open,
	.truncate = status_truncate,
};
