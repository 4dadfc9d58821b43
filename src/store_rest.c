/*
 * store_rest.c - the remote backend: an MLflow tracking server through its
 * REST API 2.0 (http.c carries the requests, jansson the JSON).  Params,
 * tags and names are sent as they are written and acknowledged before the
 * call returns; metric points go to a sender thread that sends them in
 * log-batch requests, and a batch's commit waits for its own.  The cache
 * in front (cache.c) keeps listings and runs for cache_ttl: this store
 * asks the server every time.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "metric.h"
#include "options.h"
#include "store-internal.h"

#define REST_PAGE	  1000	/* runs, experiments, models a page */
#define REST_HISTORY_PAGE 25000 /* points a page, as MLflow's client asks */
#define REST_BATCH	  1000	/* metrics a log-batch request, MLflow's limit */

/* Metric points a write() handed over, waiting for the sender. */
struct chunk {
	struct rest_batch *batch; /* whose close waits for them */
	char run_id[STORE_RUN_ID_MAX];
	char *key;
	struct metric_point *pts;
	size_t n;
	uint64_t seq; /* handed over as the seq-th */
	struct chunk *next;
};

struct rest_store {
	struct store base;
	struct http *http;
	char *display; /* the URI without credentials */
	/*
	 * The points in the background: queued by log_metrics, sent in
	 * log-batch requests by the sender thread.  queue, tail, queued,
	 * sending, stop and every batch's outstanding and err: protected by
	 * lock; work wakes the sender, done its waiters.
	 */
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct chunk *queue, *tail;
	size_t queued;			    /* points in the queue */
	size_t sending;			    /* chunks taken by the sender, not answered yet */
	char sending_run[STORE_RUN_ID_MAX]; /* their run */
	uint64_t sending_seq;		    /* the oldest of them */
	uint64_t seq;			    /* the last chunk handed over */
	int waiting;			    /* commits and reads waiting for points */
	int stop;
	pthread_t sender;
	uint64_t points_sent, points_failed;
	/*
	 * The history read last, for cache_ttl: a cat of history/<key> looks
	 * its size up, opens it and fstats it, each a read of every point.
	 * Replaced, and dropped when this mount sends points of its metric:
	 * protected by lock; the points themselves are shared by reference.
	 */
	struct history *kept;
	long ttl_ms;
	int lm_missing; /* the server has no logged-model API: said; protected by lock */
};

/* A metric's points, sorted, with the size of history/<key>'s text. */
struct history {
	char run_id[STORE_RUN_ID_MAX];
	char *key;
	struct point *v;
	size_t n;
	uint64_t bytes;
	int64_t at_ms; /* when it was read, clock_mono_ms() */
	int refs;      /* protected by the store's lock */
};

struct rest_batch {
	struct store_batch base;
	size_t outstanding; /* chunks queued or being sent */
	int err;	    /* a chunk of it failed since its last commit */
	char why[256];	    /* and why */
};

static const struct store_ops rest_ops;

static struct rest_store *to_rest(struct store *s)
{
	if (s->ops != &rest_ops) {
		log_error("internal error: a %s store passed to the rest backend", s->ops->name);
		abort();
	}
	return (struct rest_store *)s;
}

/* ---- errors ----------------------------------------------------------- */

int rest_error_to_errno(long status, const char *code, const char *message)
{
	static const struct {
		const char *code;
		int err;
	} codes[] = {
		{ "RESOURCE_DOES_NOT_EXIST", ENOENT },
		{ "NOT_FOUND", ENOENT },
		{ "ENDPOINT_NOT_FOUND", ENOENT },
		{ "RESOURCE_ALREADY_EXISTS", EEXIST },
		{ "ALREADY_EXISTS", EEXIST },
		{ "INVALID_PARAMETER_VALUE", EINVAL },
		{ "BAD_REQUEST", EINVAL },
		{ "UNAUTHENTICATED", EACCES },
		{ "CUSTOMER_UNAUTHORIZED", EACCES },
		{ "PERMISSION_DENIED", EACCES },
		{ "NOT_IMPLEMENTED", ENOTSUP },
		{ "DEADLINE_EXCEEDED", ETIMEDOUT },
	};
	size_t i;

	if (message && strstr(message, "Changing param values is not allowed"))
		return EPERM;
	if (message && strstr(message, "must be in the 'active' state"))
		return ENOENT;
	for (i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i].code))
			return codes[i].err;
	if (status == 401 || status == 403)
		return EACCES;
	if (status == 404)
		return ENOENT;
	if (status == 400)
		return EINVAL;
	if (status == 501)
		return ENOTSUP;
	return EIO;
}

/*
 * The one line a failed answer leaves in store_errmsg(): status, code,
 * message.  *no_route (if not NULL) says whether the server has no such
 * endpoint at all: a server older than the endpoint answers a bare 404
 * (Flask's page) or MLflow's ENDPOINT_NOT_FOUND, never
 * RESOURCE_DOES_NOT_EXIST, which names a missing object.
 */
static int answer_error(const char *what, const struct http_reply *r, int *no_route)
{
	json_t *doc = json_loads(buf_str(&r->body), 0, NULL);
	const char *code = NULL, *message = NULL;
	char shown[300];
	int err;

	if (json_is_object(doc)) {
		code = json_string_value(json_object_get(doc, "error_code"));
		message = json_string_value(json_object_get(doc, "message"));
	}
	if (!message) {
		/* Plain text (the auth layer, a proxy): its first line. */
		size_t n = strcspn(buf_str(&r->body), "\r\n");

		log_escape(shown, sizeof(shown), buf_str(&r->body), n < 200 ? n : 200);
	} else {
		log_escape(shown, sizeof(shown), message, strlen(message));
	}
	err = rest_error_to_errno(r->status, code, message);
	if (no_route)
		*no_route = r->status == 404 && (!code || !strcmp(code, "ENDPOINT_NOT_FOUND"));
	if (r->status == 403 && strstr(shown, "Invalid Host header"))
		store_set_errmsg("%s: HTTP 403: the server refuses this host name (start it with "
				 "--allowed-hosts naming it): %s",
				 what, shown);
	else
		store_set_errmsg("%s: HTTP %ld%s%s: %s", what, r->status, code ? " " : "",
				 code ? code : "", shown[0] ? shown : "(no message)");
	json_decref(doc);
	return -err;
}

/*
 * One call: method and API path (after /api/2.0/mlflow), a JSON body for
 * POST (stolen), and the parsed answer in *out (NULL: not wanted).
 * Returns 0 or a negative errno, with store_errmsg() saying why; with
 * no_route not NULL, *no_route says whether the server lacks the endpoint.
 */
static int call_route(struct rest_store *rs, const char *what, const char *method, const char *path,
		      json_t *body, int flags, json_t **out, int *no_route)
{
	struct http_reply r;
	char *json = NULL, *full = NULL;
	int err;

	if (out)
		*out = NULL;
	if (no_route)
		*no_route = 0;
	if (body) {
		json = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!json)
			return -ENOMEM;
	}
	if (asprintf(&full, "/api/2.0/mlflow/%s", path) < 0) {
		free(json);
		return -ENOMEM;
	}
	err = http_request(rs->http, method, full, json, flags, &r);
	free(json);
	free(full);
	if (err) {
		store_set_errmsg("%s: %s", what, http_errmsg());
		/* No answer: the server is unreachable or failing. */
		return err == -ETIMEDOUT || err == -ENOMEM ? err : -EIO;
	}
	if (r.status < 200 || r.status > 299) {
		err = answer_error(what, &r, no_route);
	} else if (out) {
		json_error_t je;

		*out = json_loads(buf_str(&r.body), 0, &je);
		if (!json_is_object(*out)) {
			store_set_errmsg("%s: the server's answer is not a JSON object: %s", what,
					 je.text);
			json_decref(*out);
			*out = NULL;
			err = -EIO;
		}
	}
	buf_release(&r.body);
	return err;
}

static int call(struct rest_store *rs, const char *what, const char *method, const char *path,
		json_t *body, int flags, json_t **out)
{
	return call_route(rs, what, method, path, body, flags, out, NULL);
}

/* A GET path with query parameters: fmt holds %s for each escaped value. */
static char *query(const char *fmt, ...)
{
	const char *args[4];
	char *esc[4] = { 0 }, *out = NULL;
	va_list ap;
	int i, n = 0;
	const char *p;

	for (p = fmt; (p = strstr(p, "%s")); p += 2)
		n++;
	if (n > 4)
		return NULL;
	va_start(ap, fmt);
	for (i = 0; i < n; i++)
		args[i] = va_arg(ap, const char *);
	va_end(ap);
	for (i = 0; i < n; i++)
		if (!(esc[i] = http_escape(args[i])))
			goto out;
	switch (n) {
	case 1:
		if (asprintf(&out, fmt, esc[0]) < 0)
			out = NULL;
		break;
	case 2:
		if (asprintf(&out, fmt, esc[0], esc[1]) < 0)
			out = NULL;
		break;
	case 3:
		if (asprintf(&out, fmt, esc[0], esc[1], esc[2]) < 0)
			out = NULL;
		break;
	default:
		out = strdup(fmt);
	}
out:
	for (i = 0; i < n; i++)
		free(esc[i]);
	return out;
}

static int get(struct rest_store *rs, const char *what, char *path, json_t **out)
{
	int err;

	if (!path)
		return -ENOMEM;
	err = call(rs, what, "GET", path, NULL, HTTP_IDEMPOTENT, out);
	free(path);
	return err;
}

/* ---- JSON fields ------------------------------------------------------ */

static const char *str_field(json_t *o, const char *name)
{
	const char *s = json_string_value(json_object_get(o, name));

	return s ? s : "";
}

static int64_t int_field(json_t *o, const char *name, int64_t dflt)
{
	json_t *v = json_object_get(o, name);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v)) /* int64 may come as a string (proto JSON) */
		return strtoll(json_string_value(v), NULL, 10);
	return dflt;
}

/*
 * A double as MLflow sends it: a number, or "NaN", "Infinity", "-Infinity".
 * A SQL store behind the server keeps infinities as the largest doubles:
 * they read as infinities, as in the local store.
 */
static double num_field(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	const char *s;

	if (json_is_number(v))
		return metric_from_store(json_number_value(v), 0);
	s = json_string_value(v);
	if (!s)
		return 0;
	if (!strcmp(s, "Infinity"))
		return INFINITY;
	if (!strcmp(s, "-Infinity"))
		return -INFINITY;
	if (!strcmp(s, "NaN"))
		return NAN;
	return strtod(s, NULL);
}

/* A double for MLflow: JSON has no NaN or infinities, MLflow takes strings. */
static json_t *num_json(double v)
{
	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "Infinity" : "-Infinity");
	return json_real(v);
}

/* Fills e from an Experiment; strings borrowed from o. */
static void read_experiment(json_t *o, struct store_experiment *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", str_field(o, "experiment_id"));
	e->name = (char *)str_field(o, "name");
	e->artifact_location = (char *)str_field(o, "artifact_location");
	e->deleted = !strcmp(str_field(o, "lifecycle_stage"), "deleted");
	e->creation_time = int_field(o, "creation_time", -1);
	e->last_update_time = int_field(o, "last_update_time", -1);
}

/* Fills r from a Run; strings borrowed from o. */
static void read_run(json_t *o, struct store_run *r)
{
	json_t *info = json_object_get(o, "info"), *m;
	size_t i;

	memset(r, 0, sizeof(*r));
	snprintf(r->run_id, sizeof(r->run_id), "%s", str_field(info, "run_id"));
	snprintf(r->experiment_id, sizeof(r->experiment_id), "%s",
		 str_field(info, "experiment_id"));
	snprintf(r->status, sizeof(r->status), "%s", str_field(info, "status"));
	r->name = (char *)str_field(info, "run_name");
	r->user_id = (char *)str_field(info, "user_id");
	r->artifact_uri = (char *)str_field(info, "artifact_uri");
	r->deleted = !strcmp(str_field(info, "lifecycle_stage"), "deleted");
	r->start_time = int_field(info, "start_time", -1);
	r->end_time = int_field(info, "end_time", -1);
	r->last_change = r->start_time > r->end_time ? r->start_time : r->end_time;
	json_array_foreach(json_object_get(json_object_get(o, "data"), "metrics"), i, m)
	{
		int64_t t = int_field(m, "timestamp", -1);

		if (t > r->last_change)
			r->last_change = t;
	}
}

/* ---- searches, page by page ------------------------------------------ */

/* Called for each item of a page; returns as a listing's callback does. */
typedef int item_fn(json_t *o, void *ctx);

/*
 * Every page of a search: a POST of body (borrowed; its copy for each page
 * gets the page token) or, with body NULL, a GET of path (a query, to which
 * the page token is added).  Calls item for each element of the answer's
 * array field; stops at the first page without any, or when item stops.
 * *no_route as call_route() sets it (no_route may be NULL).
 */
static int pages_route(struct rest_store *rs, const char *what, const char *path, json_t *body,
		       const char *field, item_fn *item, void *ctx, int *no_route)
{
	char *token = NULL;
	int err;

	do {
		json_t *doc = NULL, *o, *b = NULL;
		char *p = NULL, *esc = NULL;
		size_t i;

		if (body) {
			b = json_deep_copy(body);
			if (b && token)
				json_object_set_new(b, "page_token", json_string(token));
			err = b ? call_route(rs, what, "POST", path, b, HTTP_IDEMPOTENT, &doc,
					     no_route)
				: -ENOMEM;
		} else {
			if (!token)
				p = strdup(path);
			else if (!(esc = http_escape(token)) ||
				 asprintf(&p, "%s&page_token=%s", path, esc) < 0)
				p = NULL;
			free(esc);
			err = p ? call_route(rs, what, "GET", p, NULL, HTTP_IDEMPOTENT, &doc,
					     no_route)
				: -ENOMEM;
			free(p);
		}
		free(token);
		token = NULL;
		if (err)
			break;
		json_array_foreach(json_object_get(doc, field), i, o)
		{
			err = item(o, ctx);
			if (err)
				break;
		}
		if (!err && json_array_size(json_object_get(doc, field)) &&
		    json_string_value(json_object_get(doc, "next_page_token"))) {
			token = strdup(str_field(doc, "next_page_token"));
			if (!token)
				err = -ENOMEM;
		}
		json_decref(doc);
	} while (!err && token);
	free(token);
	return err;
}

static int pages(struct rest_store *rs, const char *what, const char *path, json_t *body,
		 const char *field, item_fn *item, void *ctx)
{
	return pages_route(rs, what, path, body, field, item, ctx, NULL);
}

/* ---- batches ---------------------------------------------------------- */

static struct store_batch *rest_batch_new(struct store *s)
{
	struct rest_batch *b = calloc(1, sizeof(*b));

	(void)s;
	if (!b)
		return NULL;
	b->base.owner = &rest_ops;
	return &b->base;
}

static struct rest_batch *to_batch(struct store_batch *b)
{
	if (b->owner != &rest_ops) {
		log_error("internal error: a batch of another store passed to the rest backend");
		abort();
	}
	return (struct rest_batch *)b;
}

/* Waits until every point of b is answered; lock held. */
static void wait_sent(struct rest_store *rs, struct rest_batch *b)
{
	rs->waiting++;
	while (b->outstanding) {
		pthread_cond_signal(&rs->work);
		pthread_cond_wait(&rs->done, &rs->lock);
	}
	rs->waiting--;
}

/* Returns once the server has acknowledged every point the batch's writes
 * handed over (params and tags are acknowledged when written). */
static int rest_batch_commit(struct store *s, struct store_batch *sb, int durable)
{
	struct rest_store *rs = to_rest(s);
	struct rest_batch *b = to_batch(sb);
	int err;

	(void)durable; /* the server decides how safe what it took is */
	pthread_mutex_lock(&rs->lock);
	wait_sent(rs, b);
	err = b->err;
	b->err = 0;
	if (err)
		store_set_errmsg("%s", b->why);
	pthread_mutex_unlock(&rs->lock);
	return err;
}

/* What the batch handed over is sent still: only then may it go. */
static void rest_batch_free(struct store *s, struct store_batch *sb)
{
	struct rest_store *rs = to_rest(s);
	struct rest_batch *b = to_batch(sb);

	pthread_mutex_lock(&rs->lock);
	wait_sent(rs, b);
	pthread_mutex_unlock(&rs->lock);
	free(b);
}

/* Whether a point of run_id (NULL: any run) handed over as the upto-th or
 * before is not answered yet; lock held. */
static int pending_upto(struct rest_store *rs, const char *run_id, uint64_t upto)
{
	struct chunk *c;

	if (rs->sending && rs->sending_seq <= upto && (!run_id || !strcmp(rs->sending_run, run_id)))
		return 1;
	for (c = rs->queue; c && c->seq <= upto; c = c->next)
		if (!run_id || !strcmp(c->run_id, run_id))
			return 1;
	return 0;
}

/*
 * Waits until the server has every point of run_id (NULL: of every run)
 * handed over so far: a read of what the server keeps must show this
 * mount's own writes.  Points written meanwhile are not waited for, so a
 * busy writer cannot hold a reader up.
 */
static void flush_points(struct rest_store *rs, const char *run_id)
{
	uint64_t upto;

	pthread_mutex_lock(&rs->lock);
	upto = rs->seq;
	rs->waiting++;
	while (pending_upto(rs, run_id, upto)) {
		pthread_cond_signal(&rs->work);
		pthread_cond_wait(&rs->done, &rs->lock);
	}
	rs->waiting--;
	pthread_mutex_unlock(&rs->lock);
}

/* ---- experiments ------------------------------------------------------ */

struct rows {
	union {
		store_experiment_cb *exp;
		store_run_cb *run;
		store_model_cb *model;
		store_version_cb *version;
	} cb;
	void *ctx;
};

static int experiment_item(json_t *o, void *ctx)
{
	struct rows *r = ctx;
	struct store_experiment e;

	read_experiment(o, &e);
	return r->cb.exp(r->ctx, &e);
}

static int rest_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	struct rows r = { .cb.exp = cb, .ctx = ctx };
	json_t *body =
		json_pack("{s:i, s:s}", "max_results", REST_PAGE, "view_type", "ACTIVE_ONLY");
	int err = body ? pages(to_rest(s), "cannot list experiments", "experiments/search", body,
			       "experiments", experiment_item, &r)
		       : -ENOMEM;

	json_decref(body);
	return err;
}

/* An experiment answer into out, copied; -ENOENT for a deleted one unless any. */
static int take_experiment(json_t *doc, struct store_experiment *out, int any)
{
	struct store_experiment e;

	read_experiment(json_object_get(doc, "experiment"), &e);
	if (!e.id[0])
		return -EIO;
	if (e.deleted && !any) {
		store_set_errmsg("experiment '%s' was deleted", e.name);
		return -ENOENT;
	}
	return store_experiment_copy(out, &e);
}

static int rest_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	json_t *doc = NULL;
	int err = get(to_rest(s), "cannot read an experiment",
		      query("experiments/get-by-name?experiment_name=%s", name), &doc);

	if (!err)
		err = take_experiment(doc, out, 0);
	json_decref(doc);
	return err;
}

static int rest_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out)
{
	json_t *doc = NULL;
	int err = get(to_rest(s), "cannot read an experiment",
		      query("experiments/get?experiment_id=%s", id), &doc);

	/* A malformed id is an unknown one. */
	if (err == -EINVAL)
		err = -ENOENT;
	if (!err)
		err = take_experiment(doc, out, 1);
	json_decref(doc);
	return err;
}

static int rest_create_experiment(struct store *s, struct store_batch *b, const char *name,
				  struct store_experiment *out)
{
	struct rest_store *rs = to_rest(s);
	json_t *doc = NULL;
	int err;

	(void)b;
	err = call(rs, "cannot create the experiment", "POST", "experiments/create",
		   json_pack("{s:s}", "name", name), 0, &doc);
	if (err == -EEXIST) {
		/* Which one holds the name: a deleted experiment keeps it
		 * until 'mlflow gc', and ls does not show it. */
		json_t *held = NULL;
		struct store_experiment e;

		if (!get(rs, "cannot read an experiment",
			 query("experiments/get-by-name?experiment_name=%s", name), &held)) {
			read_experiment(json_object_get(held, "experiment"), &e);
			if (e.id[0] && e.deleted)
				store_set_errmsg(
					"a deleted experiment is named '%s': restore it in "
					"MLflow, or remove it for good with 'mlflow gc'",
					name);
			else
				store_set_errmsg("an experiment named '%s' exists", name);
		}
		json_decref(held);
	}
	if (!err && out)
		err = rest_get_experiment_by_id(s, str_field(doc, "experiment_id"), out);
	json_decref(doc);
	return err;
}

static int rest_rename_experiment(struct store *s, struct store_batch *b, const char *id,
				  const char *new_name)
{
	(void)b;
	return call(to_rest(s), "cannot rename the experiment", "POST", "experiments/update",
		    json_pack("{s:s, s:s}", "experiment_id", id, "new_name", new_name),
		    HTTP_IDEMPOTENT, NULL);
}

/* A runs/search of an experiment's active runs, oldest first (MLflow then
 * orders by run id), at most max a page; a new JSON body. */
static json_t *runs_query(const char *experiment_id, int max)
{
	return json_pack("{s:[s], s:i, s:s, s:[s]}", "experiment_ids", experiment_id, "max_results",
			 max, "run_view_type", "ACTIVE_ONLY", "order_by",
			 "attributes.start_time ASC");
}

static int rest_delete_experiment(struct store *s, struct store_batch *b, const char *id)
{
	struct rest_store *rs = to_rest(s);
	json_t *doc = NULL;
	int err;

	(void)b;
	/* MLflow would delete the runs with it: a folder with runs is not empty. */
	err = call(rs, "cannot list runs", "POST", "runs/search", runs_query(id, 1),
		   HTTP_IDEMPOTENT, &doc);
	if (!err && json_array_size(json_object_get(doc, "runs"))) {
		store_set_errmsg("the experiment still has runs");
		err = -ENOTEMPTY;
	}
	json_decref(doc);
	if (!err)
		err = call(rs, "cannot delete the experiment", "POST", "experiments/delete",
			   json_pack("{s:s}", "experiment_id", id), HTTP_IDEMPOTENT, NULL);
	return err;
}

/* ---- runs ------------------------------------------------------------- */

static int snapshot_of(json_t *run, unsigned want, struct store_snapshot **out);

/* A searched run comes whole: its sections go along for the cache. */
static int run_item(json_t *o, void *ctx)
{
	struct rows *r = ctx;
	struct store_snapshot *snap = NULL;
	struct store_run run;
	int err;

	read_run(o, &run);
	if (snapshot_of(o, SNAP_ALL, &snap))
		snap = NULL; /* without memory for it, the run alone */
	run.snap = snap;
	err = r->cb.run(r->ctx, &run);
	store_snapshot_put(snap);
	return err;
}

static int rest_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct rows r = { .cb.run = cb, .ctx = ctx };

	flush_points(to_rest(s), NULL);
	json_t *body = runs_query(experiment_id, REST_PAGE);
	int err = body ? pages(to_rest(s), "cannot list runs", "runs/search", body, "runs",
			       run_item, &r)
		       : -ENOMEM;

	json_decref(body);
	return err;
}

static int get_run_doc(struct rest_store *rs, const char *run_id, json_t **doc)
{
	int err = get(rs, "cannot read a run", query("runs/get?run_id=%s", run_id), doc);

	if (err == -EINVAL)
		err = -ENOENT;
	return err;
}

static int rest_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	struct store_run r;
	json_t *doc = NULL;
	int err = get_run_doc(to_rest(s), run_id, &doc);

	if (!err) {
		read_run(json_object_get(doc, "run"), &r);
		err = store_run_copy(out, &r);
	}
	json_decref(doc);
	return err;
}

static int rest_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
			   const char *name, const char *user, struct store_run *out)
{
	struct rest_store *rs = to_rest(s);
	struct store_run r;
	json_t *doc = NULL;
	int err;

	(void)b;
	/* The tags MLflow's client sets on every run it creates. */
	err = call(rs, "cannot create the run", "POST", "runs/create",
		   json_pack("{s:s, s:s, s:s, s:I, s:[{s:s, s:s}, {s:s, s:s}]}", "experiment_id",
			     experiment_id, "run_name", name, "user_id", user, "start_time",
			     (json_int_t)clock_wall_ms(), "tags", "key", "mlflow.runName", "value",
			     name, "key", "mlflow.user", "value", user),
		   0, &doc);
	if (!err) {
		read_run(json_object_get(doc, "run"), &r);
		err = r.run_id[0] ? store_run_copy(out, &r) : -EIO;
	}
	json_decref(doc);
	return err;
}

static int rest_rename_run(struct store *s, struct store_batch *b, const char *run_id,
			   const char *new_name)
{
	(void)b;
	return call(to_rest(s), "cannot rename the run", "POST", "runs/update",
		    json_pack("{s:s, s:s}", "run_id", run_id, "run_name", new_name),
		    HTTP_IDEMPOTENT, NULL);
}

static int rest_delete_run(struct store *s, struct store_batch *b, const char *run_id)
{
	(void)b;
	return call(to_rest(s), "cannot delete the run", "POST", "runs/delete",
		    json_pack("{s:s}", "run_id", run_id), HTTP_IDEMPOTENT, NULL);
}

static int rest_set_status(struct store *s, struct store_batch *b, const char *run_id,
			   const char *status)
{
	json_t *body = json_pack("{s:s, s:s}", "run_id", run_id, "status", status);

	(void)b;
	/* MLflow sets the end time when a run terminates and leaves it otherwise. */
	if (body && strcmp(status, "RUNNING") && strcmp(status, "SCHEDULED"))
		json_object_set_new(body, "end_time", json_integer((json_int_t)clock_wall_ms()));
	return call(to_rest(s), "cannot set the status", "POST", "runs/update", body,
		    HTTP_IDEMPOTENT, NULL);
}

/* ---- keys ------------------------------------------------------------- */

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_kv *)a)->key, ((const struct store_kv *)b)->key);
}

/* Metrics by key, then as MLflow picks a key's latest point: by step,
 * then time, then value (a NaN below every number). */
static int kv_point_cmp(const void *a, const void *b)
{
	const struct store_kv *p = a, *q = b;
	int c = strcmp(p->key, q->key);

	if (c)
		return c;
	if (p->step != q->step)
		return p->step < q->step ? -1 : 1;
	if (p->timestamp != q->timestamp)
		return p->timestamp < q->timestamp ? -1 : 1;
	if (!isnan(p->num) != !isnan(q->num))
		return isnan(p->num) ? -1 : 1;
	return p->num < q->num ? -1 : p->num > q->num;
}

/*
 * A JSON array of {key, value} (or of Metrics) into a new kvs sorted by
 * key, keeping those that start with prefix (NULL: all).  A metric given
 * several times (a logged model's: every point of it) keeps its latest.
 */
static int kvs_from(json_t *arr, int metric, const char *prefix, struct store_kvs **out)
{
	size_t n = json_array_size(arr), i, plen = prefix ? strlen(prefix) : 0, k = 0;
	struct store_kv *v = calloc(n ? n : 1, sizeof(*v));
	struct store_kvs *kvs = store_kvs_new(n);
	json_t *o;
	int err = 0;

	if (!v || !kvs) {
		free(v);
		store_kvs_put(kvs);
		return -ENOMEM;
	}
	json_array_foreach(arr, i, o)
	{
		struct store_kv *kv = &v[k];

		kv->key = (char *)str_field(o, "key");
		if (!kv->key[0] || (prefix && strncmp(kv->key, prefix, plen)))
			continue;
		if (metric) {
			kv->num = num_field(o, "value");
			kv->step = int_field(o, "step", 0);
			kv->timestamp = int_field(o, "timestamp", -1);
		} else {
			kv->value = (char *)str_field(o, "value");
			kv->timestamp = -1;
		}
		k++;
	}
	qsort(v, k, sizeof(*v), metric ? kv_point_cmp : kv_cmp);
	for (i = 0; i < k && !err; i++)
		if (!metric || i + 1 == k || strcmp(v[i].key, v[i + 1].key))
			err = store_kvs_add(kvs, &v[i]);
	free(v);
	if (err) {
		store_kvs_put(kvs);
		return err;
	}
	*out = kvs;
	return 0;
}

/* A snapshot (new) of a Run object, with the sections in want. */
static int snapshot_of(json_t *run, unsigned want, struct store_snapshot **out)
{
	struct store_snapshot *snap = store_snapshot_new();
	json_t *data = json_object_get(run, "data");
	struct store_kvs *kvs;
	int err = 0;

	if (!snap)
		return -ENOMEM;
	if (!(want & SNAP_RUN_KNOWN)) {
		struct store_run r;

		read_run(run, &r);
		err = store_run_copy(&snap->run, &r);
	}
	if (!err && (want & SNAP_PARAMS) &&
	    !(err = kvs_from(json_object_get(data, "params"), 0, NULL, &kvs)))
		snap->params = kvs;
	if (!err && (want & SNAP_METRICS) &&
	    !(err = kvs_from(json_object_get(data, "metrics"), 1, NULL, &kvs)))
		snap->metrics = kvs;
	if (!err && (want & SNAP_TAGS) &&
	    !(err = kvs_from(json_object_get(data, "tags"), 0, NULL, &kvs)))
		snap->tags = kvs;
	if (err) {
		store_snapshot_put(snap);
		return err;
	}
	snap->have = want & SNAP_ALL;
	*out = snap;
	return 0;
}

static int rest_get_snapshot(struct store *s, const char *run_id, unsigned want,
			     struct store_snapshot **out)
{
	json_t *doc = NULL;
	int err;

	flush_points(to_rest(s), run_id);
	/* One answer holds it all: the sections agree with each other. */
	err = get_run_doc(to_rest(s), run_id, &doc);

	if (!err)
		err = snapshot_of(json_object_get(doc, "run"), want, out);
	json_decref(doc);
	return err;
}

static int logged_model_doc(struct rest_store *rs, const char *id, json_t **doc);

/* The tags of an experiment, a registered model or a model version, or a
 * section of a logged model. */
static int tags_of(struct rest_store *rs, enum store_section sec, const struct store_ref *ref,
		   const char *prefix, struct store_kvs **out)
{
	char version[24];
	json_t *doc = NULL, *owner = NULL, *keys;
	int err;

	switch (sec) {
	case SEC_EXP_TAGS:
		err = get(rs, "cannot read an experiment",
			  query("experiments/get?experiment_id=%s", ref->experiment_id), &doc);
		owner = json_object_get(doc, "experiment");
		break;
	case SEC_MODEL_TAGS:
		err = get(rs, "cannot read a registered model",
			  query("registered-models/get?name=%s", ref->model), &doc);
		owner = json_object_get(doc, "registered_model");
		break;
	case SEC_VERSION_TAGS:
		snprintf(version, sizeof(version), "%lld", (long long)ref->version);
		err = get(rs, "cannot read a model version",
			  query("model-versions/get?name=%s&version=%s", ref->model, version),
			  &doc);
		owner = json_object_get(doc, "model_version");
		break;
	case SEC_LM_PARAMS:
	case SEC_LM_METRICS:
	case SEC_LM_TAGS:
		/* One answer holds its three sections. */
		err = logged_model_doc(rs, ref->logged_model, &doc);
		owner = json_object_get(doc, "model");
		break;
	default:
		store_set_errmsg("a run's keys are in its snapshot");
		return -EINVAL;
	}
	if (sec == SEC_LM_PARAMS)
		keys = json_object_get(json_object_get(owner, "data"), "params");
	else if (sec == SEC_LM_METRICS)
		keys = json_object_get(json_object_get(owner, "data"), "metrics");
	else if (sec == SEC_LM_TAGS)
		keys = json_object_get(json_object_get(owner, "info"), "tags");
	else
		keys = json_object_get(owner, "tags");
	if (!err)
		err = kvs_from(keys, sec == SEC_LM_METRICS, prefix, out);
	json_decref(doc);
	return err;
}

static int rest_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			const char *prefix, store_kv_cb *cb, void *ctx)
{
	struct store_kvs *kvs;
	size_t i;
	int err = tags_of(to_rest(s), sec, ref, prefix, &kvs);

	if (err)
		return err;
	for (i = 0; !err && i < kvs->n; i++)
		err = cb(ctx, &kvs->v[i]);
	store_kvs_put(kvs);
	return err;
}

static int rest_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		       const char *key, struct store_kv *out)
{
	struct store_kvs *kvs;
	const struct store_kv *kv;
	int err = tags_of(to_rest(s), sec, ref, NULL, &kvs);

	if (err)
		return err;
	kv = store_kvs_find(kvs, key);
	if (!kv) {
		err = -ENOENT;
	} else {
		out->key = strdup(kv->key);
		out->value = kv->value ? strdup(kv->value) : NULL;
		out->num = kv->num;
		out->step = kv->step;
		out->timestamp = kv->timestamp;
		if (!out->key || (kv->value && !out->value)) {
			store_kv_release(out);
			err = -ENOMEM;
		}
	}
	store_kvs_put(kvs);
	return err;
}

/* A tag of an experiment, a model or a version, into *out; ENOENT (said
 * so) when the owner has no such key. */
static int tag_value(struct store *s, enum store_section sec, const struct store_ref *ref,
		     const char *key, struct store_kv *out)
{
	int err = rest_get_kv(s, sec, ref, key, out);

	if (err == -ENOENT && !store_errmsg()[0])
		store_set_errmsg("no tag '%s'", key);
	return err;
}

static int registry_tag(struct rest_store *rs, enum store_section sec, const struct store_ref *ref,
			const char *key, const char *value);

static int rest_log_param(struct store *s, struct store_batch *b, const char *run_id,
			  const char *key, const char *value)
{
	(void)b;
	/* The same value again is accepted by MLflow: safe to resend. */
	return call(to_rest(s), "cannot log the param", "POST", "runs/log-parameter",
		    json_pack("{s:s, s:s, s:s}", "run_id", run_id, "key", key, "value", value),
		    HTTP_IDEMPOTENT, NULL);
}

/* MLflow's client could change a logged model's keys; mlflowfs only shows
 * them.  -EROFS for a logged model's section, else 0. */
static int lm_read_only(enum store_section sec, const struct store_ref *ref)
{
	if (sec != SEC_LM_PARAMS && sec != SEC_LM_METRICS && sec != SEC_LM_TAGS)
		return 0;
	store_set_errmsg("logged model '%s' is read-only", ref->logged_model);
	return -EROFS;
}

static int rest_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
			const struct store_ref *ref, const char *key, const char *value)
{
	(void)b;
	if (lm_read_only(sec, ref))
		return -EROFS;
	if (sec == SEC_RUN_TAGS)
		return call(to_rest(s), "cannot set the tag", "POST", "runs/set-tag",
			    json_pack("{s:s, s:s, s:s}", "run_id", ref->run_id, "key", key, "value",
				      value),
			    HTTP_IDEMPOTENT, NULL);
	if (sec == SEC_EXP_TAGS)
		return call(to_rest(s), "cannot set the tag", "POST",
			    "experiments/set-experiment-tag",
			    json_pack("{s:s, s:s, s:s}", "experiment_id", ref->experiment_id, "key",
				      key, "value", value),
			    HTTP_IDEMPOTENT, NULL);
	return registry_tag(to_rest(s), sec, ref, key, value);
}

static int rest_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
			   const struct store_ref *ref, const char *key)
{
	struct store_kv old = { 0 };
	int err;

	(void)b;
	if (lm_read_only(sec, ref))
		return -EROFS;
	/* Resent after a lost answer, a delete finds nothing: ENOENT then
	 * means done, so it is not resent. */
	if (sec == SEC_RUN_TAGS)
		return call(to_rest(s), "cannot delete the tag", "POST", "runs/delete-tag",
			    json_pack("{s:s, s:s}", "run_id", ref->run_id, "key", key), 0, NULL);
	if (sec == SEC_EXP_TAGS)
		return call(
			to_rest(s), "cannot delete the tag", "POST",
			"experiments/delete-experiment-tag",
			json_pack("{s:s, s:s}", "experiment_id", ref->experiment_id, "key", key), 0,
			NULL);
	/* MLflow takes a registry tag that is not there as deleted: it is
	 * looked for first. */
	err = tag_value(s, sec, ref, key, &old);
	store_kv_release(&old);
	return err ? err : registry_tag(to_rest(s), sec, ref, key, NULL);
}

/* MLflow has no rename of a tag: the value goes to the new key, then the
 * old key goes (a failure between the two leaves both, never neither). */
static int rest_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
			   const struct store_ref *ref, const char *from, const char *to)
{
	struct store_kv old = { 0 };
	int err;

	if (lm_read_only(sec, ref))
		return -EROFS;
	if (sec == SEC_RUN_TAGS) {
		struct store_snapshot *snap;
		const struct store_kv *kv;

		err = rest_get_snapshot(s, ref->run_id, SNAP_TAGS | SNAP_RUN_KNOWN, &snap);
		if (err)
			return err;
		kv = store_kvs_find(snap->tags, from);
		old.value = kv ? strdup(kv->value) : NULL;
		err = !kv ? -ENOENT : !old.value ? -ENOMEM : 0;
		store_snapshot_put(snap);
	} else {
		err = tag_value(s, sec, ref, from, &old);
	}
	if (!err && strcmp(from, to)) {
		err = rest_set_tag(s, b, sec, ref, to, old.value);
		/* The old key was just seen: no second look before it goes. */
		if (!err && sec != SEC_RUN_TAGS && sec != SEC_EXP_TAGS)
			err = registry_tag(to_rest(s), sec, ref, from, NULL);
		else if (!err)
			err = rest_delete_tag(s, b, sec, ref, from);
	}
	store_kv_release(&old);
	return err;
}

/* ---- metrics ---------------------------------------------------------- */

static int rest_next_step(struct store *s, const char *run_id, const char *key, int64_t *next)
{
	struct store_snapshot *snap;
	const struct store_kv *kv;
	int err = rest_get_snapshot(s, run_id, SNAP_METRICS | SNAP_RUN_KNOWN, &snap);

	if (err)
		return err;
	/* The latest point MLflow keeps is the one of the highest step. */
	kv = store_kvs_find(snap->metrics, key);
	*next = !kv ? INT64_MIN : kv->step == INT64_MAX ? INT64_MAX : kv->step + 1;
	store_snapshot_put(snap);
	return 0;
}

/* The most points waiting at once: a write() beyond waits for the sender,
 * so memory does not grow with a fast writer. */
#define QUEUE_MAX 50000

/* Hands the points to the sender: the batch's commit waits for them. */
static int rest_log_metrics(struct store *s, struct store_batch *sb, const char *run_id,
			    const char *key, const struct metric_point *pts, size_t n)
{
	struct rest_store *rs = to_rest(s);
	struct chunk *c = calloc(1, sizeof(*c));

	if (!c || !(c->key = strdup(key)) || !(c->pts = malloc(n * sizeof(*pts)))) {
		if (c)
			free(c->key);
		free(c);
		return -ENOMEM;
	}
	memcpy(c->pts, pts, n * sizeof(*pts));
	c->n = n;
	snprintf(c->run_id, sizeof(c->run_id), "%s", run_id);
	c->batch = to_batch(sb);
	pthread_mutex_lock(&rs->lock);
	while (rs->queued >= QUEUE_MAX && !rs->stop)
		pthread_cond_wait(&rs->done, &rs->lock);
	c->batch->outstanding++;
	c->seq = ++rs->seq;
	if (rs->tail)
		rs->tail->next = c;
	else
		rs->queue = c;
	rs->tail = c;
	rs->queued += n;
	pthread_cond_signal(&rs->work);
	pthread_mutex_unlock(&rs->lock);
	return 0;
}

static void chunk_free(struct chunk *c)
{
	free(c->key);
	free(c->pts);
	free(c);
}

/*
 * Takes from the queue the chunks of the first one's run, up to MLflow's
 * 1,000 metrics a request (a chunk larger than that goes alone, in several
 * requests); lock held.  Other runs' chunks keep their places.
 */
static struct chunk *take_run(struct rest_store *rs)
{
	struct chunk **pp = &rs->queue, *taken = NULL, **tail = &taken, *c;
	const char *run = rs->queue->run_id;
	size_t points = 0;

	snprintf(rs->sending_run, sizeof(rs->sending_run), "%s", run);
	while ((c = *pp) && points < REST_BATCH) {
		if (strcmp(c->run_id, run) || (points && points + c->n > REST_BATCH)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = NULL;
		*tail = c;
		tail = &c->next;
		points += c->n;
		rs->queued -= c->n;
		if (!rs->sending++)
			rs->sending_seq = c->seq; /* the first taken is the oldest */
	}
	rs->tail = NULL;
	for (c = rs->queue; c; c = c->next)
		rs->tail = c;
	return taken;
}

/* One log-batch request of a run's metrics (arr, stolen). */
static int post_batch(struct rest_store *rs, const char *run_id, json_t *arr)
{
	json_t *body = json_pack("{s:s, s:o}", "run_id", run_id, "metrics", arr);

	/* An exact point sent twice is kept once: a request may be resent. */
	return body ? call(rs, "cannot log the metric", "POST", "runs/log-batch", body,
			   HTTP_IDEMPOTENT, NULL)
		    : -ENOMEM;
}

/* The points of the chunks (of one run), in requests of MLflow's 1,000. */
static int send_points(struct rest_store *rs, struct chunk *list)
{
	json_t *arr = NULL;
	struct chunk *c;
	size_t i;
	int err = 0;

	for (c = list; c && !err; c = c->next) {
		for (i = 0; i < c->n && !err; i++) {
			if (!arr && !(arr = json_array()))
				return -ENOMEM;
			if (json_array_append_new(
				    arr, json_pack("{s:s, s:o, s:I, s:I}", "key", c->key, "value",
						   num_json(c->pts[i].value), "timestamp",
						   (json_int_t)c->pts[i].timestamp, "step",
						   (json_int_t)c->pts[i].step)))
				err = -ENOMEM;
			else if (json_array_size(arr) == REST_BATCH) {
				err = post_batch(rs, list->run_id, arr);
				arr = NULL;
			}
		}
	}
	if (!err && arr)
		return post_batch(rs, list->run_id, arr);
	json_decref(arr);
	return err;
}

/*
 * A program writing line by line hands over a point at a time: while
 * nobody waits for the points (no close, fsync or read) the sender lets
 * them gather, up to FILL_MS, into fuller requests; a server takes 1,000
 * points in about the time of a few.  Lock held.
 */
#define FILL_MS 20

static void fill_wait(struct rest_store *rs)
{
	struct timespec until;
	size_t before;

	clock_deadline(CLOCK_REALTIME, FILL_MS, &until);
	do {
		before = rs->queued;
		if (rs->waiting || rs->stop || before >= REST_BATCH)
			return;
	} while (!pthread_cond_timedwait(&rs->work, &rs->lock, &until) || rs->queued != before);
}

static void history_free(struct history *h)
{
	free(h->key);
	free(h->v);
	free(h);
}

/* Drops a reference to h (NULL is fine); lock held.  The caller frees what
 * this returns, after unlocking. */
static struct history *history_unref(struct history *h)
{
	return h && !--h->refs ? h : NULL;
}

static void history_put(struct rest_store *rs, struct history *h)
{
	pthread_mutex_lock(&rs->lock);
	h = history_unref(h);
	pthread_mutex_unlock(&rs->lock);
	if (h)
		history_free(h);
}

/* This mount sent points of run_id's key: the kept history of it is old;
 * lock held. */
static void drop_kept(struct rest_store *rs, const char *run_id, const char *key)
{
	struct history *h = rs->kept;

	if (h && !strcmp(h->run_id, run_id) && !strcmp(h->key, key)) {
		rs->kept = NULL;
		/* Someone reads it still, or it is freed here: never both. */
		if (!--h->refs)
			history_free(h);
	}
}

/* The sender: sends what is queued, run by run, as long as there is any. */
static void *sender(void *arg)
{
	struct rest_store *rs = arg;

	pthread_mutex_lock(&rs->lock);
	for (;;) {
		struct chunk *list, *c, *next;
		size_t points = 0;
		int err;

		while (!rs->queue && !rs->stop)
			pthread_cond_wait(&rs->work, &rs->lock);
		if (!rs->queue)
			break;
		fill_wait(rs);
		list = take_run(rs);
		pthread_mutex_unlock(&rs->lock);
		err = send_points(rs, list);
		/* Failed in the background: said in the log and in
		 * .mlflowfs/errors now, and to the close that waits for it.
		 * A run deleted meanwhile or a user who may not write is
		 * that close's errno, as a write in the local store gives
		 * it; anything else could not be made safe: EIO. */
		if (err && err != -ENOENT && err != -EACCES)
			err = -EIO;
		if (err) {
			char path[STORE_RUN_ID_MAX + 64];

			snprintf(path, sizeof(path), "/runs/%s/metrics/%.40s", list->run_id,
				 list->key);
			log_refusal(path, -err, "%s", store_errmsg());
		}
		pthread_mutex_lock(&rs->lock);
		for (c = list; c; c = next) {
			next = c->next;
			points += c->n;
			if (err && !c->batch->err) {
				c->batch->err = err;
				snprintf(c->batch->why, sizeof(c->batch->why), "%s",
					 store_errmsg());
			}
			c->batch->outstanding--;
			rs->sending--;
			drop_kept(rs, c->run_id, c->key);
			chunk_free(c);
		}
		if (err)
			rs->points_failed += points;
		else
			rs->points_sent += points;
		pthread_cond_broadcast(&rs->done);
	}
	pthread_mutex_unlock(&rs->lock);
	return NULL;
}

struct point {
	double value;
	int64_t step, timestamp;
};

static int point_cmp(const void *a, const void *b)
{
	const struct point *p = a, *q = b;

	if (p->step != q->step)
		return p->step < q->step ? -1 : 1;
	if (p->timestamp != q->timestamp)
		return p->timestamp < q->timestamp ? -1 : 1;
	if (p->value != q->value)
		return p->value < q->value ? -1 : 1;
	return 0;
}

struct points {
	struct point *v;
	size_t n, cap;
};

static int point_item(json_t *m, void *ctx)
{
	struct points *p = ctx;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct point *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n].value = num_field(m, "value");
	p->v[p->n].step = int_field(m, "step", 0);
	p->v[p->n].timestamp = int_field(m, "timestamp", 0);
	p->n++;
	return 0;
}

/*
 * Every point of a metric, in the store's order (step, time, value), with
 * its text's size: a reference the caller drops with history_put().  The
 * server pages by time, so the points are gathered and sorted here: a
 * history costs 24 bytes a point while it is read, and the one read last
 * is kept for cache_ttl (unless this mount logs to it meanwhile).
 */
static int history(struct rest_store *rs, const char *run_id, const char *key, struct history **out)
{
	char line[METRIC_HISTORY_LINE_MAX];
	struct points p = { 0 };
	struct history *h, *old = NULL;
	char page[24], *path;
	uint64_t sent;
	size_t i;
	int err;

	flush_points(rs, run_id);
	pthread_mutex_lock(&rs->lock);
	h = rs->kept;
	if (h && !strcmp(h->run_id, run_id) && !strcmp(h->key, key) &&
	    clock_mono_ms() - h->at_ms < rs->ttl_ms) {
		h->refs++;
		pthread_mutex_unlock(&rs->lock);
		*out = h;
		return 0;
	}
	sent = rs->points_sent + rs->points_failed;
	pthread_mutex_unlock(&rs->lock);

	h = calloc(1, sizeof(*h));
	if (!h || !(h->key = strdup(key))) {
		free(h);
		return -ENOMEM;
	}
	snprintf(h->run_id, sizeof(h->run_id), "%s", run_id);
	h->at_ms = clock_mono_ms();
	h->refs = 1;
	/* Always max_results: without it some MLflow 3 servers answer no points. */
	snprintf(page, sizeof(page), "%d", REST_HISTORY_PAGE);
	path = query("metrics/get-history?run_id=%s&metric_key=%s&max_results=%s", run_id, key,
		     page);
	err = path ? pages(rs, "cannot read a metric's history", path, NULL, "metrics", point_item,
			   &p)
		   : -ENOMEM;
	free(path);
	if (err) {
		free(p.v);
		history_free(h);
		return err;
	}
	qsort(p.v, p.n, sizeof(*p.v), point_cmp);
	h->v = p.v;
	h->n = p.n;
	for (i = 0; i < h->n; i++)
		h->bytes +=
			metric_history_line(line, h->v[i].value, h->v[i].step, h->v[i].timestamp);
	/* Kept only if no point of this mount was answered while it was read:
	 * one of its metric might be missing from it. */
	pthread_mutex_lock(&rs->lock);
	if (rs->ttl_ms > 0 && sent == rs->points_sent + rs->points_failed) {
		old = history_unref(rs->kept);
		rs->kept = h;
		h->refs++;
	}
	pthread_mutex_unlock(&rs->lock);
	if (old)
		history_free(old);
	*out = h;
	return 0;
}

static int rest_metric_history(struct store *s, const char *run_id, const char *key,
			       store_point_cb *cb, void *ctx)
{
	struct rest_store *rs = to_rest(s);
	struct history *h;
	size_t i;
	int err = history(rs, run_id, key, &h);

	if (err)
		return err;
	for (i = 0; !err && i < h->n; i++)
		err = cb(ctx, h->v[i].value, h->v[i].step, h->v[i].timestamp);
	history_put(rs, h);
	return err;
}

static int rest_history_stat(struct store *s, const char *run_id, const char *key,
			     struct store_history_stat *out)
{
	struct rest_store *rs = to_rest(s);
	struct history *h;
	int err = history(rs, run_id, key, &h);

	if (err)
		return err;
	out->points = h->n;
	out->bytes = h->bytes;
	history_put(rs, h);
	return 0;
}

/* ---- the registry: reads ---------------------------------------------- */

static void read_model(json_t *o, struct store_model *m)
{
	m->name = (char *)str_field(o, "name");
	m->description = (char *)str_field(o, "description");
	m->creation_time = int_field(o, "creation_timestamp", -1);
	m->last_updated_time = int_field(o, "last_updated_timestamp", -1);
}

static void read_version(json_t *o, struct store_version *v)
{
	v->model = (char *)str_field(o, "name");
	v->version = int_field(o, "version", 0);
	v->description = (char *)str_field(o, "description");
	v->source = (char *)str_field(o, "source");
	v->run_id = (char *)str_field(o, "run_id");
	v->status = (char *)str_field(o, "status");
	v->stage = (char *)str_field(o, "current_stage");
	v->storage_location = (char *)str_field(o, "storage_location");
	v->creation_time = int_field(o, "creation_timestamp", -1);
	v->last_updated_time = int_field(o, "last_updated_timestamp", -1);
}

static int model_row(json_t *o, void *ctx)
{
	struct rows *r = ctx;
	struct store_model m;

	read_model(o, &m);
	return r->cb.model(r->ctx, &m);
}

static int version_row(json_t *o, void *ctx)
{
	struct rows *r = ctx;
	struct store_version v;

	read_version(o, &v);
	return r->cb.version(r->ctx, &v);
}

static int rest_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	struct rows r = { .cb.model = cb, .ctx = ctx };

	return pages(to_rest(s), "cannot list registered models",
		     "registered-models/search?max_results=1000", NULL, "registered_models",
		     model_row, &r);
}

static int rest_get_model(struct store *s, const char *name, struct store_model *out)
{
	struct store_model m;
	json_t *doc = NULL;
	int err = get(to_rest(s), "cannot read a registered model",
		      query("registered-models/get?name=%s", name), &doc);

	if (!err) {
		read_model(json_object_get(doc, "registered_model"), &m);
		out->name = strdup(m.name);
		out->description = strdup(m.description);
		out->creation_time = m.creation_time;
		out->last_updated_time = m.last_updated_time;
		if (!out->name || !out->description) {
			store_model_release(out);
			err = -ENOMEM;
		}
	}
	json_decref(doc);
	return err;
}

static int rest_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	struct rows r = { .cb.version = cb, .ctx = ctx };
	char quote = strchr(model, '\'') ? '"' : '\'', *filter, *path;
	int err;

	/* MLflow's filter has no escape inside a quoted name. */
	if (strchr(model, '\'') && strchr(model, '"')) {
		store_set_errmsg("a model name with both quote characters cannot be searched");
		return -ENOTSUP;
	}
	if (asprintf(&filter, "name=%c%s%c", quote, model, quote) < 0)
		return -ENOMEM;
	path = query("model-versions/search?max_results=1000&filter=%s", filter);
	free(filter);
	if (!path)
		return -ENOMEM;
	err = pages(to_rest(s), "cannot list model versions", path, NULL, "model_versions",
		    version_row, &r);
	free(path);
	return err;
}

static int rest_get_version(struct store *s, const char *model, int64_t version,
			    struct store_version *out)
{
	struct store_version v;
	char num[24];
	json_t *doc = NULL;
	int err;

	snprintf(num, sizeof(num), "%lld", (long long)version);
	err = get(to_rest(s), "cannot read a model version",
		  query("model-versions/get?name=%s&version=%s", model, num), &doc);
	if (!err) {
		read_version(json_object_get(doc, "model_version"), &v);
		out->version = v.version;
		out->creation_time = v.creation_time;
		out->last_updated_time = v.last_updated_time;
		out->model = strdup(v.model);
		out->description = strdup(v.description);
		out->source = strdup(v.source);
		out->run_id = strdup(v.run_id);
		out->status = strdup(v.status);
		out->stage = strdup(v.stage);
		out->storage_location = strdup(v.storage_location);
		if (!out->model || !out->description || !out->source || !out->run_id ||
		    !out->status || !out->stage || !out->storage_location) {
			store_version_release(out);
			err = -ENOMEM;
		}
	}
	json_decref(doc);
	return err;
}

static int rest_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	json_t *doc = NULL, *a;
	size_t i;
	int err = get(to_rest(s), "cannot read a registered model",
		      query("registered-models/get?name=%s", model), &doc);

	if (err)
		return err;
	json_array_foreach(json_object_get(json_object_get(doc, "registered_model"), "aliases"), i,
			   a)
	{
		err = cb(ctx, str_field(a, "alias"), int_field(a, "version", 0));
		if (err)
			break;
	}
	json_decref(doc);
	return err;
}

/* ---- MLflow 3's logged models ----------------------------------------- */

/*
 * A server without the logged-model API (MLflow 2.x) has none to show:
 * said once in the log, not at every listing.
 */
static void lm_no_api(struct rest_store *rs)
{
	int first;

	pthread_mutex_lock(&rs->lock);
	first = !rs->lm_missing;
	rs->lm_missing = 1;
	pthread_mutex_unlock(&rs->lock);
	if (first)
		log_info("'%s' has no logged-model API (an MLflow 2 server): experiments show "
			 "no logged models",
			 rs->display);
}

/* MLflow's LoggedModelStatus, by name (proto JSON) or by number. */
static const char *lm_status(json_t *v)
{
	static const struct {
		const char *name, *shown;
	} names[] = {
		{ "LOGGED_MODEL_STATUS_UNSPECIFIED", "UNSPECIFIED" },
		{ "LOGGED_MODEL_PENDING", "PENDING" },
		{ "LOGGED_MODEL_READY", "READY" },
		{ "LOGGED_MODEL_UPLOAD_FAILED", "FAILED" },
	};
	const char *s = json_string_value(v);
	size_t i;

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < (json_int_t)(sizeof(names) / sizeof(names[0])))
		return names[json_integer_value(v)].shown;
	for (i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].shown;
	return "UNSPECIFIED";
}

/*
 * Fills m from a LoggedModel; strings borrowed from o.  -EIO for one whose
 * id or experiment does not fit (cut short, it would name another).
 */
static int read_logged_model(json_t *o, struct store_logged_model *m)
{
	json_t *info = json_object_get(o, "info");
	const char *id = str_field(info, "model_id"), *exp = str_field(info, "experiment_id");

	memset(m, 0, sizeof(*m));
	if (!id[0] || strlen(id) >= sizeof(m->id) || strlen(exp) >= sizeof(m->experiment_id))
		return -EIO;
	memcpy(m->id, id, strlen(id) + 1);
	memcpy(m->experiment_id, exp, strlen(exp) + 1);
	m->name = (char *)str_field(info, "name");
	m->source_run_id = (char *)str_field(info, "source_run_id");
	m->artifact_location = (char *)str_field(info, "artifact_uri");
	m->model_type = (char *)str_field(info, "model_type");
	m->status = lm_status(json_object_get(info, "status"));
	m->creation_time = int_field(info, "creation_timestamp_ms", -1);
	m->last_updated_time = int_field(info, "last_updated_timestamp_ms", -1);
	return 0;
}

/* The models of every page, held until sorted. */
struct lm_gathered {
	json_t **v;
	size_t n, cap;
};

static int lm_gather(json_t *o, void *ctx)
{
	struct lm_gathered *g = ctx;

	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 64;
		json_t **v = realloc(g->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n++] = json_incref(o);
	return 0;
}

/* Oldest first: creation time, then id. */
static int lm_cmp(const void *a, const void *b)
{
	json_t *p = json_object_get(*(json_t *const *)a, "info");
	json_t *q = json_object_get(*(json_t *const *)b, "info");
	int64_t tp = int_field(p, "creation_timestamp_ms", -1);
	int64_t tq = int_field(q, "creation_timestamp_ms", -1);

	if (tp != tq)
		return tp < tq ? -1 : 1;
	return strcmp(str_field(p, "model_id"), str_field(q, "model_id"));
}

/* Logged models a page: each carries every point of its metrics. */
#define REST_LM_PAGE 100

/*
 * Asked oldest first, so that a model made while the pages are read comes
 * last, behind the offset MLflow's page token holds, and no model is seen
 * twice or missed; sorted here as well, because the folders' names hang
 * on the order and a server owes it only when it honours order_by.
 */
static int rest_list_logged_models(struct store *s, const char *experiment_id,
				   store_logged_model_cb *cb, void *ctx)
{
	struct rest_store *rs = to_rest(s);
	struct lm_gathered g = { 0 };
	struct store_logged_model m;
	json_t *body;
	size_t i;
	int err, no_route = 0;

	body = json_pack("{s:[s], s:i, s:[{s:s, s:b}, {s:s, s:b}]}", "experiment_ids",
			 experiment_id, "max_results", REST_LM_PAGE, "order_by", "field_name",
			 "creation_timestamp_ms", "ascending", 1, "field_name", "model_id",
			 "ascending", 1);
	err = body ? pages_route(rs, "cannot list logged models", "logged-models/search", body,
				 "models", lm_gather, &g, &no_route)
		   : -ENOMEM;
	json_decref(body);
	if (err && no_route) {
		lm_no_api(rs);
		store_set_errmsg("%s", "");
		err = 0;
	}
	if (!err && g.n)
		qsort(g.v, g.n, sizeof(*g.v), lm_cmp);
	for (i = 0; !err && i < g.n; i++) {
		if (read_logged_model(g.v[i], &m)) {
			log_warn("'%s': not listing a logged model of experiment %s: its id is "
				 "too long",
				 rs->display, experiment_id);
			continue;
		}
		err = cb(ctx, &m);
	}
	for (i = 0; i < g.n; i++)
		json_decref(g.v[i]);
	free(g.v);
	return err;
}

/* A LoggedModel answer by id: active ones only (MLflow hides deleted ones
 * unless asked with allow_deleted). */
static int logged_model_doc(struct rest_store *rs, const char *id, json_t **doc)
{
	char *esc = http_escape(id), *path = NULL;
	int err, no_route = 0;

	if (!esc || asprintf(&path, "logged-models/%s", esc) < 0) {
		free(esc);
		return -ENOMEM;
	}
	free(esc);
	err = call_route(rs, "cannot read a logged model", "GET", path, NULL, HTTP_IDEMPOTENT, doc,
			 &no_route);
	free(path);
	/* Not taken as a server without the API: an id with a slash finds
	 * no route either. */
	if (err && no_route) {
		store_set_errmsg("no logged model '%s'", id);
		err = -ENOENT;
	}
	/* A malformed id is an unknown one. */
	if (err == -EINVAL)
		err = -ENOENT;
	return err;
}

static int rest_get_logged_model(struct store *s, const char *id, struct store_logged_model *out)
{
	struct store_logged_model m;
	json_t *doc = NULL;
	int err = logged_model_doc(to_rest(s), id, &doc);

	if (!err)
		err = read_logged_model(json_object_get(doc, "model"), &m);
	if (!err)
		err = store_logged_model_copy(out, &m);
	json_decref(doc);
	return err;
}

/* ---- the registry: writes --------------------------------------------- */

/*
 * Nothing of the registry is kept here (nor in the cache in front): every
 * read after a write asks the server, which has the write by then.
 */

/* A version number as MLflow's registry requests carry it: a string. */
static const char *version_str(char buf[24], int64_t version)
{
	snprintf(buf, 24, "%lld", (long long)version);
	return buf;
}

/*
 * A registry request whose body was just packed: jansson packs nothing
 * (NULL) from text that is not UTF-8, which MLflow could not take either.
 */
static int registry_call(struct rest_store *rs, const char *what, const char *method,
			 const char *path, json_t *body, int flags, json_t **out)
{
	if (!body) {
		store_set_errmsg("%s: a name or text is not valid UTF-8", what);
		return -EINVAL;
	}
	return call(rs, what, method, path, body, flags, out);
}

/* A registered model as the server has it now: the answer in *doc (the
 * caller drops it), the model in *model (borrowed from *doc). */
static int model_doc(struct rest_store *rs, const char *name, json_t **doc, json_t **model)
{
	int err = get(rs, "cannot read a registered model",
		      query("registered-models/get?name=%s", name), doc);

	*model = json_object_get(*doc, "registered_model");
	return err;
}

static int rest_create_model(struct store *s, struct store_batch *b, const char *name)
{
	(void)b;
	/* Not resent: a second try after a lost answer would find it (EEXIST). */
	return registry_call(to_rest(s), "cannot create the registered model", "POST",
			     "registered-models/create", json_pack("{s:s}", "name", name), 0, NULL);
}

static int rest_rename_model(struct store *s, struct store_batch *b, const char *name,
			     const char *new_name)
{
	(void)b;
	/* Not resent: a second try would find the old name gone (ENOENT). */
	return registry_call(to_rest(s), "cannot rename the registered model", "POST",
			     "registered-models/rename",
			     json_pack("{s:s, s:s}", "name", name, "new_name", new_name), 0, NULL);
}

/*
 * MLflow deletes a model's versions with it: a model with versions is not
 * empty.  Its latest_versions hold the newest version of each stage, and
 * never a deleted one, so they are empty exactly when it has no version;
 * unlike a search by name they need no quoting of the name.  A version
 * made between the look and the delete goes with the model.
 */
static int rest_delete_model(struct store *s, struct store_batch *b, const char *name)
{
	struct rest_store *rs = to_rest(s);
	json_t *doc = NULL, *model;
	int err;

	(void)b;
	err = model_doc(rs, name, &doc, &model);
	if (!err && json_array_size(json_object_get(model, "latest_versions"))) {
		store_set_errmsg("registered model '%s' still has versions", name);
		err = -ENOTEMPTY;
	}
	json_decref(doc);
	/* Not resent: a second try would find nothing (ENOENT). */
	if (!err)
		err = registry_call(rs, "cannot delete the registered model", "DELETE",
				    "registered-models/delete", json_pack("{s:s}", "name", name), 0,
				    NULL);
	return err;
}

static int rest_set_description(struct store *s, struct store_batch *b, const char *model,
				int64_t version, const char *text)
{
	char num[24];

	(void)b;
	if (!version)
		return registry_call(to_rest(s), "cannot set the description", "PATCH",
				     "registered-models/update",
				     json_pack("{s:s, s:s}", "name", model, "description", text),
				     HTTP_IDEMPOTENT, NULL);
	return registry_call(to_rest(s), "cannot set the description", "PATCH",
			     "model-versions/update",
			     json_pack("{s:s, s:s, s:s}", "name", model, "version",
				       version_str(num, version), "description", text),
			     HTTP_IDEMPOTENT, NULL);
}

/* The logged model's id in a models:/<id> source, else NULL (a registered
 * model's models:/<name>/<version> or models:/<name>@<alias> has none). */
static const char *source_model_id(const char *source)
{
	const char *id = source + strlen("models:/");

	if (strncmp(source, "models:/", strlen("models:/")) || !id[0] || strpbrk(id, "/@"))
		return NULL;
	return id;
}

/*
 * A models:/<id> source goes with model_id, which MLflow 3's server
 * requires to name that very model; it then records the model's artifact
 * location as the version's storage location, its source run as the
 * version's run (unless run_id names one) and the version in the model's
 * mlflow.modelVersions tag, as mlflow.register_model() does.
 */
static int rest_create_version(struct store *s, struct store_batch *b, const char *model,
			       const char *source, const char *run_id, int64_t *version)
{
	json_t *body = json_pack("{s:s, s:s}", "name", model, "source", source), *doc = NULL;
	const char *model_id = source_model_id(source);
	int err;

	(void)b;
	/* The server answers a deleted or unknown one with an internal
	 * error: looked for first, it is ENOENT. */
	if (model_id && (err = logged_model_doc(to_rest(s), model_id, &doc))) {
		json_decref(body);
		return err;
	}
	json_decref(doc);
	doc = NULL;
	if (body && ((run_id && json_object_set_new(body, "run_id", json_string(run_id))) ||
		     (model_id && json_object_set_new(body, "model_id", json_string(model_id))))) {
		json_decref(body);
		body = NULL;
	}
	/* Never resent: a second try would make a second version. */
	err = registry_call(to_rest(s), "cannot create the model version", "POST",
			    "model-versions/create", body, 0, &doc);
	if (!err) {
		*version = int_field(json_object_get(doc, "model_version"), "version", 0);
		if (*version <= 0) {
			store_set_errmsg("cannot create the model version: the server's answer "
					 "has no version number");
			err = -EIO;
		}
	}
	json_decref(doc);
	return err;
}

static int rest_delete_version(struct store *s, struct store_batch *b, const char *model,
			       int64_t version)
{
	char num[24];

	(void)b;
	/* MLflow drops the aliases that point at it.  Not resent: a second
	 * try would find it gone (ENOENT). */
	return registry_call(
		to_rest(s), "cannot delete the model version", "DELETE", "model-versions/delete",
		json_pack("{s:s, s:s}", "name", model, "version", version_str(num, version)), 0,
		NULL);
}

static int rest_set_stage(struct store *s, struct store_batch *b, const char *model,
			  int64_t version, const char *stage)
{
	char num[24];

	(void)b;
	/* Other versions keep their stages: nothing is archived. */
	return registry_call(to_rest(s), "cannot set the stage", "POST",
			     "model-versions/transition-stage",
			     json_pack("{s:s, s:s, s:s, s:b}", "name", model, "version",
				       version_str(num, version), "stage", stage,
				       "archive_existing_versions", 0),
			     HTTP_IDEMPOTENT, NULL);
}

static int rest_set_alias(struct store *s, struct store_batch *b, const char *model,
			  const char *alias, int64_t version)
{
	char num[24];

	(void)b;
	return registry_call(to_rest(s), "cannot set the alias", "POST", "registered-models/alias",
			     json_pack("{s:s, s:s, s:s}", "name", model, "alias", alias, "version",
				       version_str(num, version)),
			     HTTP_IDEMPOTENT, NULL);
}

/* MLflow answers success for an alias the model does not have: it is
 * looked for first, which also makes the delete safe to resend. */
static int rest_delete_alias(struct store *s, struct store_batch *b, const char *model,
			     const char *alias)
{
	struct rest_store *rs = to_rest(s);
	json_t *doc = NULL, *m, *a;
	int err, found = 0;
	size_t i;

	(void)b;
	err = model_doc(rs, model, &doc, &m);
	json_array_foreach(json_object_get(m, "aliases"), i, a)
	{
		if (!strcmp(str_field(a, "alias"), alias))
			found = 1;
	}
	json_decref(doc);
	if (!err && !found) {
		store_set_errmsg("registered model '%s' has no alias '%s'", model, alias);
		err = -ENOENT;
	}
	if (!err)
		err = registry_call(rs, "cannot delete the alias", "DELETE",
				    "registered-models/alias",
				    json_pack("{s:s, s:s}", "name", model, "alias", alias),
				    HTTP_IDEMPOTENT, NULL);
	return err;
}

/* Characters in UTF-8 text, as MLflow's limits count them: code points. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/*
 * Sets (value) or deletes (value NULL) a tag of a registered model or a
 * model version.  Both are safe to resend: MLflow upserts a tag, and takes
 * a delete of a key that is not there as done.  A key or value beyond
 * MLflow's limits is refused here, with the errno a local store gives.
 */
static int registry_tag(struct rest_store *rs, enum store_section sec, const struct store_ref *ref,
			const char *key, const char *value)
{
	int version = sec == SEC_VERSION_TAGS;
	char num[24];
	json_t *body;

	if (sec != SEC_MODEL_TAGS && sec != SEC_VERSION_TAGS) {
		store_set_errmsg("internal error: section %d has no tags", (int)sec);
		return -EINVAL;
	}
	if (value && utf8_chars(key) > STORE_KEY_MAX) {
		store_set_errmsg(
			"cannot set the tag: its key is longer than MLflow's %d characters",
			STORE_KEY_MAX);
		return -ENAMETOOLONG;
	}
	if (value && utf8_chars(value) > REGISTRY_TAG_VALUE_MAX) {
		store_set_errmsg("cannot set the tag: its value is longer than MLflow's %d "
				 "characters",
				 REGISTRY_TAG_VALUE_MAX);
		return -EFBIG;
	}
	body = json_pack("{s:s, s:s}", "name", ref->model, "key", key);
	if (body &&
	    ((value && json_object_set_new(body, "value", json_string(value))) ||
	     (version &&
	      json_object_set_new(body, "version", json_string(version_str(num, ref->version)))))) {
		json_decref(body);
		body = NULL;
	}
	if (value)
		return registry_call(rs, "cannot set the tag", "POST",
				     version ? "model-versions/set-tag"
					     : "registered-models/set-tag",
				     body, HTTP_IDEMPOTENT, NULL);
	return registry_call(rs, "cannot delete the tag", "DELETE",
			     version ? "model-versions/delete-tag" : "registered-models/delete-tag",
			     body, HTTP_IDEMPOTENT, NULL);
}

/* ---- open, close ------------------------------------------------------ */

static int rest_describe(struct store *s, struct buf *out)
{
	struct rest_store *rs = to_rest(s);
	struct http_stats st;

	size_t queued;
	uint64_t sent, failed;

	http_get_stats(rs->http, &st);
	pthread_mutex_lock(&rs->lock);
	queued = rs->queued;
	sent = rs->points_sent;
	failed = rs->points_failed;
	pthread_mutex_unlock(&rs->lock);
	return buf_addf(out,
			"store: rest\n"
			"uri: %s\n"
			"read_only: %s\n"
			"pending_points: %zu\n"
			"points_sent: %llu\n"
			"points_failed: %llu\n"
			"requests: %llu\n"
			"retries: %llu\n"
			"failed_requests: %llu\n",
			rs->display, rs->base.read_only ? "yes" : "no", queued,
			(unsigned long long)sent, (unsigned long long)failed,
			(unsigned long long)st.requests, (unsigned long long)st.retries,
			(unsigned long long)st.failures);
}

static void rest_close(struct store *s)
{
	struct rest_store *rs = to_rest(s);

	/* What is queued is sent first: an unmount loses no point. */
	pthread_mutex_lock(&rs->lock);
	rs->stop = 1;
	pthread_cond_signal(&rs->work);
	pthread_mutex_unlock(&rs->lock);
	pthread_join(rs->sender, NULL);
	if (rs->kept && !--rs->kept->refs)
		history_free(rs->kept);
	pthread_cond_destroy(&rs->work);
	pthread_cond_destroy(&rs->done);
	pthread_mutex_destroy(&rs->lock);
	http_free(rs->http);
	free(rs->display);
	free(rs);
}

struct store *store_rest_open(const struct mfs_config *cfg, char **errmsg)
{
	struct rest_store *rs = calloc(1, sizeof(*rs));
	json_t *doc = NULL;
	int err;

	*errmsg = NULL;
	if (!rs)
		goto nomem;
	rs->base.ops = &rest_ops;
	rs->base.read_only = cfg->read_only;
	rs->display = strdup(cfg->display_uri);
	rs->ttl_ms = (long)(cfg->cache_ttl * 1000);
	if (!rs->display)
		goto nomem;
	rs->http = http_for_tracking_uri(cfg->tracking_uri, errmsg);
	if (!rs->http)
		goto fail;
	pthread_mutex_init(&rs->lock, NULL);
	pthread_cond_init(&rs->work, NULL);
	pthread_cond_init(&rs->done, NULL);
	/* The server answers and takes our credentials, or no mount. */
	err = call(rs, "cannot use the tracking server", "POST", "experiments/search",
		   json_pack("{s:i}", "max_results", 1), HTTP_IDEMPOTENT, &doc);
	json_decref(doc);
	if (err) {
		if (asprintf(errmsg, "cannot mount '%s': %s%s", rs->display, store_errmsg(),
			     err == -EACCES ? " (check MLFLOW_TRACKING_USERNAME and "
					      "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)"
			     : err == -EIO && strstr(store_errmsg(), "certificate")
				     ? " (MLFLOW_TRACKING_SERVER_CERT_PATH names a CA that "
				       "verifies it; MLFLOW_TRACKING_INSECURE_TLS=true skips the "
				       "check)"
				     : "") < 0)
			*errmsg = NULL;
		goto fail;
	}
	if (pthread_create(&rs->sender, NULL, sender, rs)) {
		if (asprintf(errmsg, "cannot start a thread") < 0)
			*errmsg = NULL;
		goto fail;
	}
	return &rs->base;
nomem:
	if (asprintf(errmsg, "out of memory") < 0)
		*errmsg = NULL;
fail:
	if (rs && rs->http) {
		pthread_cond_destroy(&rs->work);
		pthread_cond_destroy(&rs->done);
		pthread_mutex_destroy(&rs->lock);
	}
	if (rs) {
		http_free(rs->http);
		free(rs->display);
		free(rs);
	}
	return NULL;
}

static const struct store_ops rest_ops = {
	.name = "rest",
	.close = rest_close,
	.describe = rest_describe,
	.artifact_root = NULL,
	.others_version = NULL,
	.batch_new = rest_batch_new,
	.batch_commit = rest_batch_commit,
	.batch_free = rest_batch_free,
	.list_experiments = rest_list_experiments,
	.get_experiment = rest_get_experiment,
	.get_experiment_by_id = rest_get_experiment_by_id,
	.create_experiment = rest_create_experiment,
	.rename_experiment = rest_rename_experiment,
	.delete_experiment = rest_delete_experiment,
	.list_runs = rest_list_runs,
	.find_run = NULL,
	.get_run = rest_get_run,
	.create_run = rest_create_run,
	.rename_run = rest_rename_run,
	.delete_run = rest_delete_run,
	.set_status = rest_set_status,
	.get_snapshot = rest_get_snapshot,
	.list_kv = rest_list_kv,
	.get_kv = rest_get_kv,
	.log_param = rest_log_param,
	.set_tag = rest_set_tag,
	.delete_tag = rest_delete_tag,
	.rename_tag = rest_rename_tag,
	.next_step = rest_next_step,
	.reserve_steps = NULL,
	.log_metrics = rest_log_metrics,
	.metric_history = rest_metric_history,
	.history_stat = rest_history_stat,
	.list_models = rest_list_models,
	.get_model = rest_get_model,
	.list_versions = rest_list_versions,
	.get_version = rest_get_version,
	.list_aliases = rest_list_aliases,
	.list_logged_models = rest_list_logged_models,
	.get_logged_model = rest_get_logged_model,
	.create_model = rest_create_model,
	.rename_model = rest_rename_model,
	.delete_model = rest_delete_model,
	.set_description = rest_set_description,
	.create_version = rest_create_version,
	.delete_version = rest_delete_version,
	.set_stage = rest_set_stage,
	.set_alias = rest_set_alias,
	.delete_alias = rest_delete_alias,
};
