/*
 * log.c - message output and the ring of recent refusals (.mlflowfs/errors).
 * Every line written, to stderr, syslog or the ring, has its control
 * characters escaped, so a name or a metric line cannot forge a line.
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

/* The length of the UTF-8 sequence at s (at most len bytes) that is a
 * printable character, or 0 for a control character or a broken sequence. */
static size_t printable_char(const unsigned char *s, size_t len)
{
	size_t n, i;

	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!n || n > len)
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* C1 controls (U+0080..U+009F) move terminals as C0 ones do. */
	if (s[0] == 0xc2 && s[1] < 0xa0)
		return 0;
	return n;
}

size_t log_escape(char *out, size_t size, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0, n;

	if (!size)
		return 0;
	while (i < len) {
		char esc[5];
		const char *add = esc;
		size_t add_len;

		n = printable_char(p + i, len - i);
		if (n) {
			add = s + i;
			add_len = n;
		} else {
			n = 1;
			if (p[i] == '\n')
				add = "\\n";
			else if (p[i] == '\r')
				add = "\\r";
			else if (p[i] == '\t')
				add = "\\t";
			else
				snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			add_len = strlen(add);
		}
		if (o + add_len >= size)
			break; /* cut at a whole character or escape */
		memcpy(out + o, add, add_len);
		o += add_len;
		i += n;
	}
	out[o] = '\0';
	return o;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char raw[1024], line[4096];
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);

	/* Names and lines come from users: none may start a line of its own. */
	log_escape(line, sizeof(line), raw,
		   n < 0		     ? 0
		   : (size_t)n < sizeof(raw) ? (size_t)n
					     : sizeof(raw) - 1);
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
	path = path ? path : "-";
	log_escape(r->path, sizeof(r->path), path, strlen(path));
	log_escape(r->reason, sizeof(r->reason), reason, strlen(reason));
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
