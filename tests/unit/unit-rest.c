/*
 * unit-rest.c - the remote store's plumbing below MLflow: the one table
 * from an answer to an errno, and http.c's promises about retries against
 * real sockets on loopback: a port nothing listens on (refused: retried,
 * also for a request that is not idempotent, within the bound), a server
 * that answers 503 then 200 (retried until it answers), one that closes
 * every connection it takes (a request that may have reached it is not
 * resent unless idempotent), and one that answers 404 (not retried).
 * Then the remote store's logged models against a fake MLflow 3 that
 * answers from canned JSON (pages out of order, statuses, every point of
 * a metric) and a fake MLflow 2 that has no such endpoint.
 * What the server side of MLflow does is tested end to end against the
 * real server (tests/e2e/test_remote.py).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "http.h"
#include "options.h"
#include "store-internal.h"
#include "tap.h"

/* ---- the errno table -------------------------------------------------- */

static void test_errors(void)
{
	static const struct {
		long status;
		const char *code, *message;
		int want;
	} cases[] = {
		{ 404, "RESOURCE_DOES_NOT_EXIST", "Run with id=x not found", ENOENT },
		{ 400, "RESOURCE_ALREADY_EXISTS", "Experiment(name=e) already exists", EEXIST },
		{ 400, "INVALID_PARAMETER_VALUE", "Invalid value", EINVAL },
		{ 400, "INVALID_PARAMETER_VALUE",
		  "Changing param values is not allowed. Param with key='lr' was already logged",
		  EPERM },
		{ 400, "INVALID_PARAMETER_VALUE",
		  "The run x must be in the 'active' state. Current state is deleted.", ENOENT },
		{ 401, NULL, NULL, EACCES },
		{ 403, NULL, "Permission denied", EACCES },
		{ 403, "PERMISSION_DENIED", "no", EACCES },
		{ 501, "NOT_IMPLEMENTED", "no", ENOTSUP },
		{ 504, "DEADLINE_EXCEEDED", "slow", ETIMEDOUT },
		{ 500, "INTERNAL_ERROR", "boom", EIO },
		{ 503, "TEMPORARILY_UNAVAILABLE", "database is locked", EIO },
		{ 502, NULL, NULL, EIO },
		{ 404, NULL, "<html>not found</html>", ENOENT },
		{ 400, NULL, NULL, EINVAL },
		{ 409, "RESOURCE_CONFLICT", "conflict", EIO },
		/* The registry's answers. */
		{ 400, "RESOURCE_ALREADY_EXISTS", "Registered Model (name=m) already exists.",
		  EEXIST },
		{ 404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=m not found",
		  ENOENT },
		{ 404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=m, version=3) not found",
		  ENOENT },
		{ 400, "INVALID_PARAMETER_VALUE",
		  "'latest' alias name (case insensitive) is reserved.", EINVAL },
	};
	char name[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "errno: HTTP %ld %s %.30s", cases[i].status,
			 cases[i].code ? cases[i].code : "(no code)",
			 cases[i].message ? cases[i].message : "");
		is_int(rest_error_to_errno(cases[i].status, cases[i].code, cases[i].message),
		       cases[i].want, name);
	}
}

/* ---- a loopback server that answers by a script ----------------------- */

enum script { ANSWER_503_THEN_200, CLOSE_EVERY_TIME, ANSWER_404, MLFLOW_3, MLFLOW_2 };

struct server {
	int fd;
	int port;
	enum script script;
	int accepted;		/* connections taken; written by the thread, read after join */
	int searches;		/* MLFLOW_3: logged-model searches; read after the store's call */
	char last_search[1024]; /* MLFLOW_3: the body of the last one */
	int stop;
	pthread_t thread;
};

/* Reads one request's head (and its body, by Content-Length) into buf, or
 * fails. */
static int read_request(int c, char *buf, size_t size)
{
	size_t n = 0;
	long body = 0;
	char *end, *cl;

	while (n < size - 1) {
		ssize_t r = read(c, buf + n, size - 1 - n);

		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(buf, "Content-Length:");
		body = cl ? strtol(cl + 15, NULL, 10) : 0;
		if ((long)(n - (size_t)(end + 4 - buf)) >= body)
			return 0;
	}
	return -1;
}

static void answer(int c, int status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, strlen(body));

	if (write(c, head, (size_t)n) < 0 || write(c, body, strlen(body)) < 0)
		return;
}

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/*
 * A logged model as MLflow 3's server sends it; metrics: the JSON of its
 * points.  Every field the store reads, spelt as the proto's JSON has it.
 */
#define LOGGED_MODEL(id, exp, name, created, status, extra, metrics)                           \
	"{\"info\": {\"model_id\": \"" id "\", \"experiment_id\": \"" exp "\", "               \
	"\"name\": \"" name "\", \"creation_timestamp_ms\": " #created ", "                    \
	"\"last_updated_timestamp_ms\": 5000, \"artifact_uri\": \"mlflow-artifacts:/" exp      \
	"/models/" id "/artifacts\", \"status\": " status extra                                \
	", \"tags\": [{\"key\": \"team\", \"value\": \"" name "\"}]}, \"data\": {\"params\": " \
	"[{\"key\": \"lr\", \"value\": \"0.1\"}, {\"key\": \"alpha\", \"value\": \"2\"}], "    \
	"\"metrics\": [" metrics "]}}"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccc"
#define ID_A  "m-" HEX_A
#define ID_B  "m-" HEX_B
#define ID_C  "m-" HEX_C

/* A's metrics: acc at step 2 twice (the later one wins), loss once. */
#define POINTS_A                                                                   \
	"{\"key\": \"acc\", \"value\": 0.9, \"timestamp\": 100, \"step\": 1}, "    \
	"{\"key\": \"acc\", \"value\": 0.7, \"timestamp\": 300, \"step\": 2}, "    \
	"{\"key\": \"acc\", \"value\": 0.95, \"timestamp\": 200, \"step\": 2}, "   \
	"{\"key\": \"acc\", \"value\": 0.1, \"timestamp\": 900, \"step\": 0}, "    \
	"{\"key\": \"loss\", \"value\": \"NaN\", \"timestamp\": 50, \"step\": 0, " \
	"\"model_id\": \"" ID_A "\", \"run_id\": \"r\"}"

/*
 * MLflow 3: two pages of experiment 1's models, the newest first (a server
 * that ignores order_by), then get by id; no deleted model is ever sent,
 * as MLflow sends none.
 */
static void answer_mlflow3(struct server *s, int c, const char *req)
{
	static const char page1[] = "{\"models\": [" LOGGED_MODEL(
		ID_C, "1", "model", 3000, "\"LOGGED_MODEL_PENDING\"", ", \"model_type\": \"agent\"",
		"") ", " LOGGED_MODEL(ID_B, "1", "model", 1000, "\"LOGGED_MODEL_UPLOAD_FAILED\"",
				      "", "") "], \"next_page_token\": \"p2\"}";
	static const char page2[] = "{\"models\": [" LOGGED_MODEL(
		ID_A, "1", "model", 1000, "2", ", \"source_run_id\": \"0123\"", POINTS_A) "]}";
	static const char model_a[] =
		"{\"model\": " LOGGED_MODEL(ID_A, "1", "model", 1000, "\"LOGGED_MODEL_READY\"",
					    ", \"source_run_id\": \"0123\"", POINTS_A) "}";
	const char *body = strstr(req, "\r\n\r\n");

	body = body ? body + 4 : "";
	if (starts(req, "POST /api/2.0/mlflow/experiments/search ")) {
		answer(c, 200, "{}");
	} else if (starts(req, "POST /api/2.0/mlflow/logged-models/search ")) {
		s->searches++;
		snprintf(s->last_search, sizeof(s->last_search), "%s", body);
		answer(c, 200, strstr(body, "\"page_token\"") ? page2 : page1);
	} else if (starts(req, "GET /api/2.0/mlflow/logged-models/" ID_A " ")) {
		answer(c, 200, model_a);
	} else {
		answer(c, 404,
		       "{\"error_code\": \"RESOURCE_DOES_NOT_EXIST\", \"message\": \"Logged "
		       "model not found.\"}");
	}
}

/* MLflow 2: a store opens, and no logged-model route is there (Flask's page). */
static void answer_mlflow2(int c, const char *req)
{
	if (starts(req, "POST /api/2.0/mlflow/experiments/search "))
		answer(c, 200, "{}");
	else
		answer(c, 404, "<!doctype html>\n<title>404 Not Found</title>");
}

static void *serve(void *p)
{
	struct server *s = p;
	char req[16384];

	for (;;) {
		int c = accept(s->fd, NULL, NULL);

		if (c < 0 || s->stop) {
			if (c >= 0)
				close(c);
			return NULL;
		}
		s->accepted++;
		if (s->script == CLOSE_EVERY_TIME) {
			read_request(c, req, sizeof(req));
			close(c); /* after the request arrived: it may have been acted on */
			continue;
		}
		if (read_request(c, req, sizeof(req)) == 0) {
			if (s->script == MLFLOW_3)
				answer_mlflow3(s, c, req);
			else if (s->script == MLFLOW_2)
				answer_mlflow2(c, req);
			else if (s->script == ANSWER_404)
				answer(c, 404,
				       "{\"error_code\": \"RESOURCE_DOES_NOT_EXIST\", "
				       "\"message\": \"nothing\"}");
			else if (s->accepted == 1)
				answer(c, 503, "{\"error_code\": \"TEMPORARILY_UNAVAILABLE\"}");
			else
				answer(c, 200, "{\"ok\": true}");
		}
		close(c);
	}
}

static int server_start(struct server *s, enum script script)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->script = script;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) || listen(s->fd, 16) ||
	    getsockname(s->fd, (struct sockaddr *)&a, &len))
		return -1;
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->thread, NULL, serve, s) ? -1 : 0;
}

static void server_stop(struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int c = socket(AF_INET, SOCK_STREAM, 0);

	/* Wake the accept() with one last connection. */
	s->stop = 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)s->port);
	if (c >= 0) {
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0)
			pthread_join(s->thread, NULL);
		close(c);
	}
	close(s->fd);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static struct http *client(int port, int tries, long budget_ms)
{
	char base[64], *msg = NULL;
	struct http_opts o = { 0 };
	struct http *h;

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	o.base = base;
	o.connect_timeout_ms = 2000;
	o.stall_timeout_ms = 2000;
	o.max_tries = tries;
	o.retry_budget_ms = budget_ms;
	h = http_new(&o, &msg);
	free(msg);
	return h;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_refused(void)
{
	struct http *h = client(closed_port(), 4, 10000);
	struct http_reply r;
	struct http_stats st;
	struct timespec t0;
	int err;

	if (!ok(h != NULL, "refused: a client"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Not idempotent, but a refused connection sent nothing: retried. */
	err = http_request(h, "POST", "/x", "{}", 0, &r);
	is_int(err, -ECONNREFUSED, "refused: -ECONNREFUSED after the tries");
	is_int(r.tries, 4, "refused: every try made");
	ok(elapsed_ms(&t0) < 5000, "refused: within the backoff's bound (%ld ms)", elapsed_ms(&t0));
	ok(strstr(http_errmsg(), "POST /x") && strstr(http_errmsg(), "4 tries"),
	   "refused: the message names the request and the tries: %s", http_errmsg());
	http_get_stats(h, &st);
	ok(st.requests == 4 && st.retries == 3 && st.failures == 1,
	   "refused: counted 4 attempts, 3 retries, 1 failure (%llu %llu %llu)",
	   (unsigned long long)st.requests, (unsigned long long)st.retries,
	   (unsigned long long)st.failures);
	http_free(h);

	/* The time bound ends the tries before their count does. */
	h = client(closed_port(), 1000, 300);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = http_request(h, "GET", "/x", NULL, HTTP_IDEMPOTENT, &r);
	is_int(err, -ECONNREFUSED, "budget: refused");
	ok(r.tries < 1000 && elapsed_ms(&t0) < 2000, "budget: %d tries in %ld ms", r.tries,
	   elapsed_ms(&t0));
	http_free(h);
}

static void test_transient(void)
{
	struct server s;
	struct http *h;
	struct http_reply r;
	int err;

	if (!ok(server_start(&s, ANSWER_503_THEN_200) == 0, "transient: a server"))
		return;
	h = client(s.port, 4, 10000);
	err = http_request(h, "POST", "/api", "{\"a\": 1}", HTTP_IDEMPOTENT, &r);
	is_int(err, 0, "transient: answered");
	is_int(r.status, 200, "transient: the 503 was retried, then 200");
	is_int(r.tries, 2, "transient: two tries");
	is_str(buf_str(&r.body), "{\"ok\": true}", "transient: the body of the last answer");
	buf_release(&r.body);
	http_free(h);
	server_stop(&s);
	is_int(s.accepted, 2, "transient: the server saw two requests");
}

static void test_dropped(void)
{
	struct server s;
	struct http *h;
	struct http_reply r;
	int err, seen;

	if (!ok(server_start(&s, CLOSE_EVERY_TIME) == 0, "dropped: a server"))
		return;
	h = client(s.port, 3, 10000);
	err = http_request(h, "POST", "/create", "{}", 0, &r);
	ok(err == -EIO, "dropped: a request without an answer fails -EIO (%d)", err);
	is_int(r.tries, 1, "dropped: not idempotent, so sent once");
	err = http_request(h, "POST", "/log", "{}", HTTP_IDEMPOTENT, &r);
	ok(err == -EIO, "dropped: idempotent, fails -EIO too (%d)", err);
	is_int(r.tries, 3, "dropped: but after every try");
	http_free(h);
	server_stop(&s);
	seen = s.accepted;
	is_int(seen, 4, "dropped: the server saw 1 + 3 connections");
}

static void test_not_retried(void)
{
	struct server s;
	struct http *h;
	struct http_reply r;

	if (!ok(server_start(&s, ANSWER_404) == 0, "404: a server"))
		return;
	h = client(s.port, 4, 10000);
	is_int(http_request(h, "GET", "/nothing", NULL, HTTP_IDEMPOTENT, &r), 0,
	       "404: an answer is a success of the transport");
	is_int(r.status, 404, "404: its status");
	is_int(r.tries, 1, "404: not retried");
	ok(strstr(buf_str(&r.body), "RESOURCE_DOES_NOT_EXIST") != NULL, "404: its body");
	buf_release(&r.body);
	http_free(h);
	server_stop(&s);
}

static void test_escape(void)
{
	char *e = http_escape("a b/c&d=é'");

	is_str(e, "a%20b%2Fc%26d%3D%C3%A9%27", "escape: a query value");
	free(e);
}

/* ---- logged models through the remote store --------------------------- */

static struct store *rest_store(int port)
{
	struct mfs_config cfg = { 0 };
	char uri[64], *msg = NULL;
	struct store *st;

	snprintf(uri, sizeof(uri), "http://127.0.0.1:%d", port);
	cfg.tracking_uri = uri;
	cfg.display_uri = uri;
	st = store_rest_open(&cfg, &msg);
	if (!st)
		tap_diag("store_rest_open: %s", msg ? msg : "(no message)");
	free(msg);
	return st;
}

struct listed {
	char lines[8][256];
	int n;
};

static int list_line(void *ctx, const struct store_logged_model *m)
{
	struct listed *l = ctx;

	if (l->n < 8)
		snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s %s %s %s %s [%s] [%s] %lld",
			 m->id + 2, m->folder, m->experiment_id, m->status, m->artifact_location,
			 m->source_run_id, m->model_type, (long long)m->creation_time);
	return 0;
}

static int kv_line(void *ctx, const struct store_kv *kv)
{
	struct buf *b = ctx;

	if (kv->value)
		return buf_addf(b, "%s=%s;", kv->key, kv->value);
	return buf_addf(b, "%s=%g@%lld/%lld;", kv->key, kv->num, (long long)kv->step,
			(long long)kv->timestamp);
}

static void test_logged_models(void)
{
	struct store_ref ref = { .logged_model = ID_A };
	struct store_logged_model m;
	struct listed l = { 0 };
	struct store_kv kv;
	struct buf b = BUF_INIT;
	struct server srv;
	struct store *st;

	if (!ok(server_start(&srv, MLFLOW_3) == 0, "lm: a fake MLflow 3") ||
	    !ok((st = rest_store(srv.port)) != NULL, "lm: a store on it"))
		return;
	is_int(store_list_logged_models(st, "1", list_line, &l), 0, "lm: listed");
	is_int(srv.searches, 2, "lm: every page asked for");
	ok(strstr(srv.last_search, "\"page_token\":\"p2\"") &&
		   strstr(srv.last_search, "\"experiment_ids\":[\"1\"]") &&
		   strstr(srv.last_search, "\"max_results\":") &&
		   strstr(srv.last_search, "creation_timestamp_ms"),
	   "lm: the second page by its token, of the experiment, oldest first: %s",
	   srv.last_search);
	is_int(l.n, 3, "lm: three models");
	/* Oldest first whatever the pages' order: A and B tie on time, A's id is first. */
	is_str(l.lines[0],
	       HEX_A " model 1 READY mlflow-artifacts:/1/models/" ID_A "/artifacts [0123] [] 1000",
	       "lm: the oldest (a numeric status), its folder the name");
	is_str(l.lines[1],
	       HEX_B " model@bbbbbbbb 1 FAILED mlflow-artifacts:/1/models/" ID_B
		     "/artifacts [] [] 1000",
	       "lm: the next of the name: its folder has its id's first digits");
	is_str(l.lines[2],
	       HEX_C " model@cccccccc 1 PENDING mlflow-artifacts:/1/models/" ID_C
		     "/artifacts [] [agent] 3000",
	       "lm: the newest, with its type");

	is_int(store_get_logged_model(st, ID_A, &m), 0, "lm: get by id");
	ok(!strcmp(m.id, ID_A) && !strcmp(m.status, "READY") && !strcmp(m.source_run_id, "0123") &&
		   !m.folder,
	   "lm: get: id, status, run; no folder from a backend");
	store_logged_model_release(&m);
	is_int(store_get_logged_model(st, ID_B "x", &m), -ENOENT, "lm: get: unknown is ENOENT");

	is_int(store_list_kv(st, SEC_LM_PARAMS, &ref, NULL, kv_line, &b), 0, "lm: params");
	is_str(buf_str(&b), "alpha=2;lr=0.1;", "lm: params by key");
	buf_reset(&b);
	is_int(store_list_kv(st, SEC_LM_TAGS, &ref, NULL, kv_line, &b), 0, "lm: tags");
	is_str(buf_str(&b), "team=model;", "lm: tags, from the model's info");
	buf_reset(&b);
	is_int(store_list_kv(st, SEC_LM_METRICS, &ref, NULL, kv_line, &b), 0, "lm: metrics");
	is_str(buf_str(&b), "acc=0.7@2/300;loss=nan@0/50;",
	       "lm: each metric's latest point: highest step, then time");
	is_int(store_get_kv(st, SEC_LM_METRICS, &ref, "acc", &kv), 0, "lm: get a metric");
	ok(kv.num == 0.7 && kv.step == 2 && kv.timestamp == 300 && !kv.value,
	   "lm: get: its value, step and time");
	store_kv_release(&kv);
	is_int(store_get_kv(st, SEC_LM_TAGS, &ref, "nope", &kv), -ENOENT, "lm: get: no such key");
	is_int(store_set_tag(st, NULL, SEC_LM_TAGS, &ref, "k", "v"), -EROFS,
	       "lm: a tag cannot be set");
	ok(strstr(store_errmsg(), "read-only") != NULL, "lm: and says why: %s", store_errmsg());
	is_int(store_delete_tag(st, NULL, SEC_LM_TAGS, &ref, "team"), -EROFS, "lm: nor deleted");
	is_int(store_rename_tag(st, NULL, SEC_LM_PARAMS, &ref, "lr", "x"), -EROFS,
	       "lm: nor renamed");
	buf_release(&b);
	store_close(st);
	server_stop(&srv);
}

/* Counts the lines a call writes to stderr (the log in the foreground). */
static int stderr_lines(struct store *st, int (*call)(struct store *))
{
	char path[] = "/tmp/unit-rest-XXXXXX", line[512];
	int fd = mkstemp(path), saved = dup(2), n = 0;
	FILE *f;

	if (fd < 0 || saved < 0)
		return -1;
	fflush(stderr);
	dup2(fd, 2);
	call(st);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	rewind(f);
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	unlink(path);
	return n;
}

static int ignore_model(void *ctx, const struct store_logged_model *m)
{
	(*(int *)ctx)++;
	(void)m;
	return 0;
}

static int list_twice(struct store *st)
{
	int n = 0;

	if (store_list_logged_models(st, "0", ignore_model, &n) ||
	    store_list_logged_models(st, "0", ignore_model, &n) || n)
		return -1;
	return 0;
}

static void test_no_logged_models(void)
{
	struct store_logged_model m;
	struct server srv;
	struct store *st;
	int n = 0;

	if (!ok(server_start(&srv, MLFLOW_2) == 0, "lm2: a fake MLflow 2") ||
	    !ok((st = rest_store(srv.port)) != NULL, "lm2: a store on it"))
		return;
	is_int(store_list_logged_models(st, "0", ignore_model, &n), 0,
	       "lm2: no logged-model API: the list is no error");
	is_int(n, 0, "lm2: and empty");
	store_close(st);
	if (!ok((st = rest_store(srv.port)) != NULL, "lm2: a new store on it")) {
		server_stop(&srv);
		return;
	}
	is_int(stderr_lines(st, list_twice), 1, "lm2: said once in the log, not at every list");
	is_int(store_get_logged_model(st, ID_A, &m), -ENOENT, "lm2: get is ENOENT");
	store_close(st);
	server_stop(&srv);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_errors();
	test_escape();
	test_refused();
	test_transient();
	test_dropped();
	test_not_retried();
	test_logged_models();
	test_no_logged_models();
	curl_global_cleanup();
	return tap_done();
}
