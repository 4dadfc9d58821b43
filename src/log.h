/*
 * log.h - one-line messages, to stderr in the foreground and to syslog once
 * daemonised, and the ring of recent refusals behind .mlflowfs/errors.
 *
 * Messages follow git's style: lower case, no full stop, the subject quoted,
 * what went wrong first.  Debug messages appear only with -d.
 */
#ifndef MFS_LOG_H
#define MFS_LOG_H

#include <stddef.h>

struct buf;

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* use_syslog: send messages to syslog(3) instead of stderr; debug: emit
 * LOG_LVL_DEBUG messages.  May be called again (after daemonising). */
void log_setup(int use_syslog, int debug);

int log_debug_enabled(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                       \
	do {                                                 \
		if (log_debug_enabled())                     \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

/*
 * Records a refusal or failure of an operation on path with errno err (a
 * positive value) and why, logs it at the default level, and keeps it in the
 * ring shown by .mlflowfs/errors.  Returns -err, so a handler can end with
 * `return log_refusal(path, EPERM, "...")`.
 */
int log_refusal(const char *path, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Appends the recorded refusals, oldest first, one line each:
 * "TIME PATH ERRNO_NAME REASON". */
int log_render_errors(struct buf *out);

/*
 * Copies len bytes of s to out (size bytes, NUL-terminated) with control
 * characters (C0, DEL, C1), NUL and broken UTF-8 written as escapes: \n \r
 * \t or \xHH.  Cuts at a whole character when out is full.  Returns the
 * length written.  For text that may hold a NUL, which "%s" would end at.
 */
size_t log_escape(char *out, size_t size, const char *s, size_t len);

/* The symbolic name of an errno value ("EPERM"), or "E?" if unknown. */
const char *log_errno_name(int err);

#endif
