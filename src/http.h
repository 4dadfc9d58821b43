/*
 * http.h - the HTTP client a remote store talks through: libcurl with one
 * easy handle (and so one keep-alive connection) per thread, connect and
 * low-speed timeouts, and retries with exponential backoff and jitter,
 * bounded in count and in time.  It knows HTTP, not MLflow: the caller
 * reads the status and the body, and maps them to an errno.
 */
#ifndef MFS_HTTP_H
#define MFS_HTTP_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct http;

/* How requests are made; the strings are copied by http_new(). */
struct http_opts {
	const char *base;     /* scheme://host[:port][/prefix], no userinfo, no trailing / */
	const char *username; /* Basic auth, with password; NULL: none */
	const char *password;
	const char *token;   /* Bearer auth, if no username; NULL: none */
	const char *ca_path; /* a CA bundle (PEM) that verifies the server; NULL: the system's */
	int insecure;	     /* do not verify the server's certificate */
	long connect_timeout_ms;
	/* A request whose transfer stays below 1 byte/s this long has failed. */
	long stall_timeout_ms;
	int max_tries;	      /* attempts per request, the first included */
	long retry_budget_ms; /* no retry starts after this long */
};

/* The request is safe to send twice: the server's state ends the same. */
#define HTTP_IDEMPOTENT 1

struct http_reply {
	long status;	 /* the HTTP status of the last attempt */
	struct buf body; /* its body, NUL-terminated; buf_release() it */
	int tries;	 /* attempts made */
};

/* A new client, or NULL and *errmsg (a new string the caller frees). */
struct http *http_new(const struct http_opts *o, char **errmsg);

/*
 * A client for an MLflow tracking server's URI (scheme://[user:password@]
 * host[:port][/prefix]) that asks as MLflow's client does: Basic auth from
 * MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, else from the URI,
 * else a bearer MLFLOW_TRACKING_TOKEN; TLS verified with
 * MLFLOW_TRACKING_SERVER_CERT_PATH's CA, or not at all when
 * MLFLOW_TRACKING_INSECURE_TLS is true; the timeouts and retries of
 * mlflowfs(1), REMOTE STORE.  NULL and *errmsg (new) on failure.
 */
struct http *http_for_tracking_uri(const char *uri, char **errmsg);
void http_free(struct http *h);

/* The base every path is sent to: scheme://host[:port][/prefix], without
 * userinfo or a trailing '/'. */
const char *http_base(const struct http *h);

/*
 * Sends method (GET POST PATCH DELETE PUT) to base + path (path starts with
 * '/' and carries any query string, already escaped), with a JSON body if
 * json is not NULL.  Retries connection failures, 408, 429 and 5xx; a
 * request that is not HTTP_IDEMPOTENT only when it cannot have reached the
 * server (the connection was refused or never made).
 *
 * Returns 0 when the server answered (whatever the status: see out), or a
 * negative errno when it did not, after the retries: -ETIMEDOUT (no answer
 * in time), -ECONNREFUSED, -EHOSTUNREACH (no connection), -EPROTO (TLS:
 * the server's certificate was refused), -EIO (anything else).  Then *out
 * holds no body and http_errmsg() says why.
 */
int http_request(struct http *h, const char *method, const char *path, const char *json, int flags,
		 struct http_reply *out);

/*
 * A file as a request's body or an answer's: PUT sends the first size bytes
 * of fd; GET writes a successful answer's body into fd from its start
 * (truncated first, also before a retry: fd must be a regular file), and
 * keeps any other answer's body in out->body.  Memory does not grow with
 * the file.  Both are resent like an idempotent request; a failed read or
 * write of fd is its negative errno.
 */
int http_put_file(struct http *h, const char *path, int fd, off_t size, struct http_reply *out);
int http_get_file(struct http *h, const char *path, int fd, struct http_reply *out);

/*
 * A body made while it is sent.  read() copies up to n bytes from pos into
 * buf, waiting for them while they are still to come, and returns how many;
 * 0 at the end; a negative errno ends the request with that error.  It is
 * asked from pos 0 again when the request is resent, so the bytes must stay
 * readable until the end.  stopped(), asked about once a second while the
 * transfer waits for the server, ends it when it returns nonzero.
 */
struct http_source {
	ssize_t (*read)(void *ctx, char *buf, size_t n, off_t pos);
	int (*stopped)(void *ctx);
	void *ctx;
};

/*
 * PUTs src's bytes with chunked transfer encoding, resent like an
 * idempotent request; the retry budget counts from the first failure, not
 * from the start, which may be long before.  An end by read() or stopped()
 * with -ECANCELED is not counted as a failure.
 */
int http_put_stream(struct http *h, const char *path, const struct http_source *src,
		    struct http_reply *out);

/* Why the calling thread's last request failed; "" if it did not. */
const char *http_errmsg(void);

/* s escaped for a query string or a path segment: a new string, or NULL. */
char *http_escape(const char *s);

/* Counts since http_new, for .mlflowfs/status. */
struct http_stats {
	uint64_t requests; /* attempts, retries included */
	uint64_t retries;
	uint64_t failures; /* requests that got no answer, after the retries */
};
void http_get_stats(struct http *h, struct http_stats *out);

#endif
