/*
 * log.c - message output and the ring of recent refusals (.mlflowfs/errors).
 * The ring is the only shared state here; ring_lock protects it.  Output
 * settings are written once at start-up and after daemonising, before any
 * worker thread exists, so they need no lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "buf.h"
#include "log.h"

#define RING_SIZE 64

struct refusal {
	struct timespec when;
	int err;
	char path[512];
	char reason[384];
};

static int use_syslog_out;
static int debug_on;

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct refusal ring[RING_SIZE]; /* protected by ring_lock */
static unsigned ring_next;	       /* protected by ring_lock; entries written so far */

void log_setup(int use_syslog, int debug)
{
	if (use_syslog && !use_syslog_out)
		openlog("mlflowfs", LOG_PID, LOG_DAEMON);
	use_syslog_out = use_syslog;
	debug_on = debug;
}

int log_debug_enabled(void)
{
	return debug_on;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (use_syslog_out) {
		syslog(prio[level], "%s", line);
		return;
	}
	/* One fprintf per line keeps lines from threads whole. */
	fprintf(stderr, "mlflowfs: %s\n", line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level == LOG_LVL_DEBUG && !debug_on)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

const char *log_errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "E?";
}

int log_refusal(const char *path, int err, const char *fmt, ...)
{
	struct refusal *r;
	char reason[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_WARN, "%s: %s (%s)", path ? path : "-", reason, log_errno_name(err));

	pthread_mutex_lock(&ring_lock);
	r = &ring[ring_next % RING_SIZE];
	clock_gettime(CLOCK_REALTIME, &r->when);
	r->err = err;
	snprintf(r->path, sizeof(r->path), "%s", path ? path : "-");
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	ring_next++;
	pthread_mutex_unlock(&ring_lock);
	return -err;
}

int log_render_errors(struct buf *out)
{
	unsigned i, first;
	int err = 0;

	pthread_mutex_lock(&ring_lock);
	first = ring_next > RING_SIZE ? ring_next - RING_SIZE : 0;
	for (i = first; i < ring_next && !err; i++) {
		const struct refusal *r = &ring[i % RING_SIZE];
		struct tm tm;
		char stamp[32];

		gmtime_r(&r->when.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		err = buf_addf(out, "%s.%03ldZ %s %s %s\n", stamp, r->when.tv_nsec / 1000000L,
			       r->path, log_errno_name(r->err), r->reason);
	}
	pthread_mutex_unlock(&ring_lock);
	return err;
}
