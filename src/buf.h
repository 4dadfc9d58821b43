/*
 * buf.h - one bounded, growable byte buffer for strings and file contents.
 *
 * Every text mlflowfs builds (a file's content, a JSON document, a log line)
 * grows in a struct buf.  The data is always NUL-terminated so it can be used
 * as a C string, but it may also hold bytes with embedded NULs.  A buffer may
 * carry a limit: an append that would make it longer fails with -EFBIG and
 * leaves the buffer as it was, which is how value-length limits are enforced.
 */
#ifndef MFS_BUF_H
#define MFS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated; NULL until the first append */
	size_t len; /* bytes in use, not counting the terminator */
	size_t cap; /* bytes allocated */
	size_t max; /* 0, or the largest len allowed */
};

#define BUF_INIT              \
	{                     \
		NULL, 0, 0, 0 \
	}

/* An empty buffer that will refuse to grow past max bytes (0: no limit). */
void buf_init(struct buf *b, size_t max);

/* Frees the data; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);

/* Empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);

/* Appends; each returns 0, -EFBIG past the limit, or -ENOMEM. */
int buf_add(struct buf *b, const void *data, size_t len);
int buf_adds(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);

/* Writes len bytes at offset off, growing with NUL bytes where needed. */
int buf_write_at(struct buf *b, size_t off, const void *data, size_t len);

/* Shortens to len bytes (no-op if already shorter). */
void buf_truncate(struct buf *b, size_t len);

/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* A C string for the content, "" when empty; borrowed until the next change. */
const char *buf_str(const struct buf *b);

/* Returns the data as a new string the caller frees (never NULL unless out
 * of memory) and leaves the buffer empty. */
char *buf_detach(struct buf *b);

#endif
