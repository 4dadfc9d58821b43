/*
 * unit-rest.c - the remote store's plumbing below MLflow: the one table
 * from an answer to an errno, and http.c's promises about retries against
 * real sockets on loopback: a port nothing listens on (refused: retried,
 * also for a request that is not idempotent, within the bound), a server
 * that answers 503 then 200 (retried until it answers), one that closes
 * every connection it takes (a request that may have reached it is not
 * resent unless idempotent), and one that answers 404 (not retried).
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

#include "http.h"
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

enum script { ANSWER_503_THEN_200, CLOSE_EVERY_TIME, ANSWER_404 };

struct server {
	int fd;
	int port;
	enum script script;
	int accepted; /* connections taken; written by the thread, read after join */
	int stop;
	pthread_t thread;
};

/* Reads one request's head (and its body, by Content-Length) or fails. */
static int read_request(int c)
{
	char buf[8192];
	size_t n = 0;
	long body = 0;
	char *end, *cl;

	while (n < sizeof(buf) - 1) {
		ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);

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

static void *serve(void *p)
{
	struct server *s = p;

	for (;;) {
		int c = accept(s->fd, NULL, NULL);

		if (c < 0 || s->stop) {
			if (c >= 0)
				close(c);
			return NULL;
		}
		s->accepted++;
		if (s->script == CLOSE_EVERY_TIME) {
			read_request(c);
			close(c); /* after the request arrived: it may have been acted on */
			continue;
		}
		if (read_request(c) == 0) {
			if (s->script == ANSWER_404)
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

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_errors();
	test_escape();
	test_refused();
	test_transient();
	test_dropped();
	test_not_retried();
	curl_global_cleanup();
	return tap_done();
}
