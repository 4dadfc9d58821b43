/*
 * http.c - libcurl behind http.h.  libcurl's rule is one easy handle per
 * thread at a time, so every thread that sends a request gets its own handle
 * (kept in thread-specific data and reused, so its connection stays open
 * between requests); the client keeps a list of them to free at the end.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "clock.h"
#include "http.h"
#include "log.h"

/* The most of a reply body kept: MLflow answers are JSON documents, and a
 * page of 1,000 runs with their data stays well below this. */
#define HTTP_BODY_MAX (256u << 20)

struct handle {
	CURL *curl;
	struct http *owner;
	struct handle *next; /* in owner->handles, under owner->lock */
};

struct http {
	char *base;
	char *userpwd; /* "user:password", or NULL */
	char *bearer;  /* "Authorization: Bearer ...", or NULL */
	char *ca_path;
	int insecure;
	long connect_timeout_ms, stall_timeout_ms, retry_budget_ms;
	int max_tries;
	pthread_key_t key; /* this thread's struct handle */
	/* Every handle made, so http_free can free those of threads still
	 * alive; and the counters.  Protected by lock. */
	pthread_mutex_t lock;
	struct handle *handles;
	struct http_stats stats;
};

static _Thread_local char errmsg[512];

const char *http_errmsg(void)
{
	return errmsg;
}

static void set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

static void handle_free(struct handle *hd)
{
	curl_easy_cleanup(hd->curl);
	free(hd);
}

/* A thread ends: its handle goes. */
static void handle_destroy(void *p)
{
	struct handle *hd = p, **pp;
	struct http *h = hd->owner;

	pthread_mutex_lock(&h->lock);
	for (pp = &h->handles; *pp; pp = &(*pp)->next) {
		if (*pp == hd) {
			*pp = hd->next;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	handle_free(hd);
}

static char *dup_or_null(const char *s, int *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

struct http *http_new(const struct http_opts *o, char **errmsg_out)
{
	struct http *h = calloc(1, sizeof(*h));
	int failed = 0;

	*errmsg_out = NULL;
	if (!h)
		goto nomem;
	h->base = dup_or_null(o->base, &failed);
	h->ca_path = dup_or_null(o->ca_path, &failed);
	if (o->username &&
	    asprintf(&h->userpwd, "%s:%s", o->username, o->password ? o->password : "") < 0) {
		h->userpwd = NULL;
		failed = 1;
	}
	if (!o->username && o->token &&
	    asprintf(&h->bearer, "Authorization: Bearer %s", o->token) < 0) {
		h->bearer = NULL;
		failed = 1;
	}
	if (failed || !h->base)
		goto nomem;
	h->insecure = o->insecure;
	h->connect_timeout_ms = o->connect_timeout_ms;
	h->stall_timeout_ms = o->stall_timeout_ms;
	h->retry_budget_ms = o->retry_budget_ms;
	h->max_tries = o->max_tries > 0 ? o->max_tries : 1;
	pthread_mutex_init(&h->lock, NULL);
	if (pthread_key_create(&h->key, handle_destroy)) {
		pthread_mutex_destroy(&h->lock);
		goto nomem;
	}
	return h;
nomem:
	if (h) {
		free(h->base);
		free(h->ca_path);
		free(h->userpwd);
		free(h->bearer);
		free(h);
	}
	if (asprintf(errmsg_out, "out of memory") < 0)
		*errmsg_out = NULL;
	return NULL;
}

void http_free(struct http *h)
{
	struct handle *hd, *next;

	if (!h)
		return;
	/* Threads still alive keep a pointer to their handle; deleting the
	 * key first means no destructor runs for it later. */
	pthread_key_delete(h->key);
	for (hd = h->handles; hd; hd = next) {
		next = hd->next;
		handle_free(hd);
	}
	pthread_mutex_destroy(&h->lock);
	if (h->userpwd)
		memset(h->userpwd, 0, strlen(h->userpwd));
	if (h->bearer)
		memset(h->bearer, 0, strlen(h->bearer));
	free(h->base);
	free(h->ca_path);
	free(h->userpwd);
	free(h->bearer);
	free(h);
}

const char *http_base(const struct http *h)
{
	return h->base;
}

static struct handle *thread_handle(struct http *h)
{
	struct handle *hd = pthread_getspecific(h->key);

	if (hd)
		return hd;
	hd = calloc(1, sizeof(*hd));
	if (!hd)
		return NULL;
	hd->curl = curl_easy_init();
	if (!hd->curl) {
		free(hd);
		return NULL;
	}
	hd->owner = h;
	if (pthread_setspecific(h->key, hd)) {
		handle_free(hd);
		return NULL;
	}
	pthread_mutex_lock(&h->lock);
	hd->next = h->handles;
	h->handles = hd;
	pthread_mutex_unlock(&h->lock);
	return hd;
}

/* A file sent or received instead of a body in memory. */
struct io {
	int fd;			       /* -1: none */
	int upload;		       /* send fd's first size bytes; else receive into fd */
	off_t size;		       /* upload: bytes to send */
	off_t pos;		       /* where the transfer is in fd, or in src */
	const struct http_source *src; /* upload: the body, instead of fd */
	CURL *curl;		       /* to ask the status while receiving */
	struct buf *body;
	int io_errno; /* a failed read or write of fd */
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct io *io = ctx;
	long status = 0;
	size_t len = size * n, done = 0;

	/* Returning less than given makes libcurl fail the transfer. */
	if (io->fd < 0 || io->upload)
		return buf_add(io->body, data, len) ? 0 : len;
	/* Only a success is the file; an error's body is for the message. */
	curl_easy_getinfo(io->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299)
		return buf_add(io->body, data, len) ? 0 : len;
	while (done < len) {
		ssize_t w = pwrite(io->fd, data + done, len - done, io->pos);

		if (w <= 0) {
			io->io_errno = w < 0 ? errno : EIO;
			return 0;
		}
		done += (size_t)w;
		io->pos += w;
	}
	return len;
}

static size_t on_send(char *data, size_t size, size_t n, void *ctx)
{
	struct io *io = ctx;
	size_t want = size * n;
	ssize_t r;

	if (io->src) {
		r = io->src->read(io->src->ctx, data, want, io->pos);
		if (r < 0) {
			io->io_errno = (int)-r;
			return CURL_READFUNC_ABORT;
		}
		io->pos += r;
		return (size_t)r;
	}
	if ((off_t)want > io->size - io->pos)
		want = (size_t)(io->size - io->pos);
	if (!want)
		return 0;
	r = pread(io->fd, data, want, io->pos);
	if (r <= 0) {
		io->io_errno = r < 0 ? errno : EIO; /* the file shrank meanwhile */
		return CURL_READFUNC_ABORT;
	}
	io->pos += r;
	return (size_t)r;
}

/* Asked while a source's transfer runs: nonzero ends it. */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct io *io = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (!io->src->stopped(io->src->ctx))
		return 0;
	io->io_errno = ECANCELED;
	return 1;
}

/* A statistically independent jitter per thread, without a shared state. */
static unsigned next_random(void)
{
	static _Thread_local unsigned seed;

	if (!seed)
		seed = (unsigned)clock_mono_ms() ^ (unsigned)(uintptr_t)&seed;
	return (unsigned)rand_r(&seed);
}

/* Full jitter: a uniform wait in [0, min(cap, base * 2^try)). */
static long backoff_ms(int try)
{
	long ceiling = 100L << (try < 6 ? try : 6);

	if (ceiling > 5000)
		ceiling = 5000;
	return (long)(next_random() % (unsigned)ceiling) + 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Whether the transfer failed before anything was sent. */
static int never_sent(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_COULDNT_RESOLVE_PROXY;
}

static int transport_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	default:
		return -EIO;
	}
}

static int transient_status(long status)
{
	return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
	       status == 504;
}

/* An attempt made (a retry if not the first), or a request given up. */
static void count(struct http *h, int tries, int gave_up)
{
	pthread_mutex_lock(&h->lock);
	if (gave_up) {
		h->stats.failures++;
	} else {
		h->stats.requests++;
		h->stats.retries += tries > 1;
	}
	pthread_mutex_unlock(&h->lock);
}

/* Appends a header; on failure frees the list and returns NULL. */
static struct curl_slist *add_header(struct curl_slist *list, const char *header)
{
	struct curl_slist *more = curl_slist_append(list, header);

	if (!more)
		curl_slist_free_all(list);
	return more;
}

static int transfer(struct http *h, const char *method, const char *path, const char *json,
		    int flags, struct io *io, struct http_reply *out)
{
	struct handle *hd = thread_handle(h);
	struct curl_slist *headers = NULL;
	char curl_err[CURL_ERROR_SIZE], *url = NULL;
	int64_t start = clock_mono_ms();
	long stall_s = h->stall_timeout_ms > 1000 ? (h->stall_timeout_ms + 999) / 1000 : 1;
	CURLcode rc = CURLE_OK;
	int err = 0;

	errmsg[0] = '\0';
	buf_init(&out->body, HTTP_BODY_MAX);
	out->status = 0;
	out->tries = 0;
	if (!hd || asprintf(&url, "%s%s", h->base, path) < 0) {
		url = NULL;
		set_errmsg("out of memory");
		return -ENOMEM;
	}
	/* No "Expect: 100-continue" round trip before a body. */
	if (!(headers = add_header(headers, "Expect:")) ||
	    (json && !(headers = add_header(headers, "Content-Type: application/json"))) ||
	    (h->bearer && !(headers = add_header(headers, h->bearer))) ||
	    (io->src && !(headers = add_header(headers, "Transfer-Encoding: chunked")))) {
		free(url);
		set_errmsg("out of memory");
		return -ENOMEM;
	}

	for (;;) {
		CURL *c = hd->curl;

		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (!strcmp(method, "GET"))
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		if (json) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		io->curl = c;
		io->body = &out->body;
		io->pos = 0;
		io->io_errno = 0;
		if (io->src) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_send);
			curl_easy_setopt(c, CURLOPT_READDATA, io);
			/* Each read is one chunk on the wire: the server's cost is
			 * per chunk, so they are as big as libcurl allows. */
			curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
			curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
			curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
			curl_easy_setopt(c, CURLOPT_XFERINFODATA, io);
		} else if (io->fd >= 0 && io->upload) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, on_send);
			curl_easy_setopt(c, CURLOPT_READDATA, io);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)io->size);
		} else if (io->fd >= 0 && ftruncate(io->fd, 0)) {
			io->io_errno = errno; /* a retry starts the file afresh */
			rc = CURLE_WRITE_ERROR;
			break;
		}
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, io);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "mlflowfs/" PACKAGE_VERSION);
		if (h->userpwd) {
			curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(c, CURLOPT_USERPWD, h->userpwd);
		}
		if (h->ca_path)
			curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_path);
		if (h->insecure) {
			curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		}
		curl_err[0] = '\0';
		buf_reset(&out->body);
		out->tries++;
		rc = curl_easy_perform(c);
		count(h, out->tries, 0);
		if (rc == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
			if (!transient_status(out->status))
				break;
		} else {
			out->status = 0;
			if (io->io_errno || rc == CURLE_WRITE_ERROR || rc == CURLE_OUT_OF_MEMORY ||
			    rc == CURLE_URL_MALFORMAT || transport_errno(rc) == -EPROTO)
				break; /* trying again would fail the same way */
			if (!(flags & HTTP_IDEMPOTENT) && !never_sent(rc))
				break;
		}
		/* A stream may have run long before it failed. */
		if (io->src && out->tries == 1)
			start = clock_mono_ms();
		if (out->tries >= h->max_tries || clock_mono_ms() - start >= h->retry_budget_ms)
			break;
		{
			long wait = backoff_ms(out->tries - 1);
			long left = h->retry_budget_ms - (long)(clock_mono_ms() - start);

			sleep_ms(wait < left ? wait : left > 0 ? left : 0);
		}
	}

	if (rc != CURLE_OK) {
		err = io->io_errno		? -io->io_errno
		      : rc == CURLE_WRITE_ERROR ? -EFBIG
						: transport_errno(rc);
		set_errmsg("%s %s: %s (after %d %s)", method, path,
			   io->io_errno	 ? strerror(io->io_errno)
			   : curl_err[0] ? curl_err
					 : curl_easy_strerror(rc),
			   out->tries, out->tries == 1 ? "try" : "tries");
		buf_release(&out->body);
		if (io->io_errno != ECANCELED || !io->src)
			count(h, out->tries, 1);
	}
	curl_slist_free_all(headers);
	free(url);
	return err;
}

/* Whether an environment variable says yes, as MLflow reads booleans. */
static int env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

static const char *env_str(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] ? v : NULL;
}

/*
 * The URI's parts: base without userinfo and without a trailing '/', and
 * the userinfo's user and password (percent-decoded), if any.  New strings.
 */
static int split_uri(const char *uri, char **base, char **user, char **password)
{
	const char *rest = strstr(uri, "://") + 3;
	const char *slash = rest + strcspn(rest, "/?#");
	const char *at = memchr(rest, '@', (size_t)(slash - rest));
	size_t n;

	*user = *password = NULL;
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));

		*user = curl_easy_unescape(NULL, rest, (int)((colon ? colon : at) - rest), NULL);
		*password = colon ? curl_easy_unescape(NULL, colon + 1, (int)(at - colon - 1), NULL)
				  : NULL;
		rest = at + 1;
	}
	if (asprintf(base, "%.*s%.*s", (int)(strstr(uri, "://") + 3 - uri), uri,
		     (int)strcspn(rest, "?#"), rest) < 0)
		return -ENOMEM;
	n = strlen(*base);
	while (n > 0 && (*base)[n - 1] == '/')
		(*base)[--n] = '\0';
	return 0;
}

/* Requests to a tracking server: how long a connection may take, a stalled
 * transfer may last, and how often and how long one request is tried
 * (mlflowfs(1), REMOTE STORE). */
#define TRACKING_CONNECT_MS 10000
#define TRACKING_STALL_MS   30000
#define TRACKING_TRIES	    6
#define TRACKING_BUDGET_MS  30000

struct http *http_for_tracking_uri(const char *uri, char **errmsg_out)
{
	char *base = NULL, *user = NULL, *password = NULL;
	struct http_opts o = { 0 };
	struct http *h;

	*errmsg_out = NULL;
	if (!strstr(uri, "://") || split_uri(uri, &base, &user, &password)) {
		if (asprintf(errmsg_out, "out of memory") < 0)
			*errmsg_out = NULL;
		return NULL;
	}
	/* As MLflow's client: the environment first, then the URI's userinfo. */
	o.base = base;
	o.username =
		env_str("MLFLOW_TRACKING_USERNAME") ? env_str("MLFLOW_TRACKING_USERNAME") : user;
	o.password = env_str("MLFLOW_TRACKING_USERNAME") ? env_str("MLFLOW_TRACKING_PASSWORD")
							 : password;
	o.token = env_str("MLFLOW_TRACKING_TOKEN");
	o.ca_path = env_str("MLFLOW_TRACKING_SERVER_CERT_PATH");
	o.insecure = env_true("MLFLOW_TRACKING_INSECURE_TLS");
	o.connect_timeout_ms = TRACKING_CONNECT_MS;
	o.stall_timeout_ms = TRACKING_STALL_MS;
	o.max_tries = TRACKING_TRIES;
	o.retry_budget_ms = TRACKING_BUDGET_MS;
	h = http_new(&o, errmsg_out);
	if (password)
		memset(password, 0, strlen(password));
	free(base);
	curl_free(user);
	curl_free(password);
	return h;
}

int http_request(struct http *h, const char *method, const char *path, const char *json, int flags,
		 struct http_reply *out)
{
	struct io io = { .fd = -1 };

	return transfer(h, method, path, json, flags, &io, out);
}

int http_put_file(struct http *h, const char *path, int fd, off_t size, struct http_reply *out)
{
	struct io io = { .fd = fd, .upload = 1, .size = size };

	return transfer(h, "PUT", path, NULL, HTTP_IDEMPOTENT, &io, out);
}

int http_put_stream(struct http *h, const char *path, const struct http_source *src,
		    struct http_reply *out)
{
	struct io io = { .fd = -1, .upload = 1, .src = src };

	return transfer(h, "PUT", path, NULL, HTTP_IDEMPOTENT, &io, out);
}

int http_get_file(struct http *h, const char *path, int fd, struct http_reply *out)
{
	struct io io = { .fd = fd };

	return transfer(h, "GET", path, NULL, HTTP_IDEMPOTENT, &io, out);
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *d;

	if (!e)
		return NULL;
	d = strdup(e); /* callers free() what we return, libcurl's needs curl_free() */
	curl_free(e);
	return d;
}

void http_get_stats(struct http *h, struct http_stats *out)
{
	pthread_mutex_lock(&h->lock);
	*out = h->stats;
	pthread_mutex_unlock(&h->lock);
}
