/*
 * unit-buf.c - the bounded growable buffer of buf.c: plain and formatted
 * appends, the length limit (a refused append leaves the buffer exactly as it
 * was), positioned writes with their NUL-filled gaps, truncate, consume,
 * detach, and the empty-buffer and reset-keeps-memory promises of buf.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"

/* True when the buffer holds exactly the len bytes of want and a NUL after
 * them: buf.h promises the terminator after every change. */
static int holds(const struct buf *b, const void *want, size_t len)
{
	return b->len == len && b->data && memcmp(b->data, want, len) == 0 &&
	       b->data[len] == '\0' && b->cap > len;
}

/* A snapshot of a buffer, to prove that a refused call changed nothing. */
struct snap {
	char *data;
	size_t len, cap;
	char *copy;
};

static void snap_take(struct snap *sn, const struct buf *b)
{
	sn->data = b->data;
	sn->len = b->len;
	sn->cap = b->cap;
	sn->copy = malloc(b->len + 1);
	if (sn->copy && b->data)
		memcpy(sn->copy, b->data, b->len + 1);
}

/* Frees the snapshot and says whether b is still what it was. */
static int snap_same(struct snap *sn, const struct buf *b)
{
	int same = sn->copy && b->data == sn->data && b->len == sn->len && b->cap == sn->cap &&
		   (!b->data || memcmp(b->data, sn->copy, b->len + 1) == 0);

	free(sn->copy);
	sn->copy = NULL;
	return same;
}

/* Goes through buf_vaddf() the way every printf-like caller in the program does. */
__attribute__((format(printf, 2, 3))) static int via_vaddf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return err;
}

static void test_empty(void)
{
	struct buf b = BUF_INIT;
	struct buf c;

	ok(b.data == NULL && b.len == 0 && b.cap == 0 && b.max == 0, "BUF_INIT is empty");
	is_str(buf_str(&b), "", "str of a never-used buffer is \"\"");
	buf_init(&c, 0);
	ok(c.data == NULL && c.len == 0, "buf_init gives an empty buffer");
	is_str(buf_str(&c), "", "str after buf_init is \"\"");
	buf_truncate(&c, 0);
	buf_consume(&c, 5);
	buf_reset(&c);
	ok(c.data == NULL && c.len == 0, "truncate/consume/reset of an unused buffer are no-ops");
	buf_release(&c);
	buf_release(&b);
	ok(b.data == NULL, "release of an unused buffer is harmless");
}

static void test_append(void)
{
	struct buf b = BUF_INIT;
	char big[1000];
	size_t i;

	is_int(buf_adds(&b, "abc"), 0, "adds returns 0");
	ok(holds(&b, "abc", 3), "adds stores the string with a NUL after it");
	is_int(buf_addch(&b, 'd'), 0, "addch returns 0");
	is_int(buf_add(&b, "e\0f", 3), 0, "add of bytes with a NUL returns 0");
	ok(holds(&b, "abcde\0f", 7), "add keeps embedded NUL bytes and counts them");
	is_int(buf_add(&b, "zzz", 0), 0, "add of nothing returns 0");
	ok(holds(&b, "abcde\0f", 7), "add of nothing changes nothing");
	is_int(buf_adds(&b, ""), 0, "adds of \"\" returns 0");
	is_int(b.len, 7, "adds of \"\" adds nothing");
	buf_release(&b);
	ok(b.data == NULL && b.len == 0 && b.cap == 0, "release empties the buffer");

	/* Past the first allocation, and many times over, so growth is exercised. */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	for (i = 0; i < sizeof(big); i++)
		if (buf_addch(&b, big[i]))
			break;
	is_int(i, sizeof(big), "1000 addch calls all succeed");
	ok(holds(&b, big, sizeof(big)), "the grown buffer holds every byte in order");
	for (i = 0; i < 100; i++)
		if (buf_add(&b, big, sizeof(big)))
			break;
	is_int(b.len, 101 * sizeof(big), "100 more appends of 1000 bytes");
	ok(b.data[b.len] == '\0' && memcmp(b.data + 100 * sizeof(big), big, sizeof(big)) == 0,
	   "the last block is intact and terminated");
	buf_release(&b);
	is_int(buf_adds(&b, "again"), 0, "a released buffer is reusable");
	is_str(buf_str(&b), "again", "content after reuse");
	buf_release(&b);
}

static void test_addf(void)
{
	struct buf b = BUF_INIT;
	char want[400];

	is_int(buf_addf(&b, "%s=%d", "n", 42), 0, "addf returns 0");
	is_str(buf_str(&b), "n=42", "addf formats");
	is_int(b.len, 4, "addf counts what it wrote");
	is_int(buf_addf(&b, ";%.3f;%x", 0.5, 255u), 0, "a second addf returns 0");
	is_str(buf_str(&b), "n=42;0.500;ff", "addf appends after what was there");
	is_int(buf_addf(&b, "%s", ""), 0, "addf of nothing returns 0");
	is_int(b.len, 13, "addf of nothing adds nothing");
	/* Longer than the first allocation, so vsnprintf must run after growing. */
	is_int(buf_addf(&b, "%0300d", 7), 0, "a 300-character addf returns 0");
	snprintf(want, sizeof(want), "n=42;0.500;ff%0300d", 7);
	is_str(buf_str(&b), want, "the long addf is complete");
	is_int(b.len, strlen(want), "its length is counted");
	buf_reset(&b);
	is_int(via_vaddf(&b, "[%s|%c|%lld]", "v", 'x', -5LL), 0, "vaddf returns 0");
	is_str(buf_str(&b), "[v|x|-5]", "vaddf formats from a va_list");
	buf_release(&b);
}

static void test_limit(void)
{
	struct buf b;
	struct snap sn;

	buf_init(&b, 8);
	is_int(b.max, 8, "buf_init keeps the limit");
	is_int(buf_adds(&b, "12345"), 0, "an append under the limit is accepted");
	snap_take(&sn, &b);
	is_int(buf_adds(&b, "6789"), -EFBIG, "an append past the limit fails with -EFBIG");
	ok(snap_same(&sn, &b), "the refused append left the buffer unchanged");
	is_str(buf_str(&b), "12345", "content after the refused append");
	snap_take(&sn, &b);
	is_int(buf_addf(&b, "%d", 1234), -EFBIG, "a formatted append past the limit fails");
	ok(snap_same(&sn, &b), "the refused addf left the buffer unchanged");
	is_int(buf_adds(&b, "678"), 0, "an append up to exactly the limit is accepted");
	ok(holds(&b, "12345678", 8), "the full buffer holds 8 bytes");
	snap_take(&sn, &b);
	is_int(buf_addch(&b, '9'), -EFBIG, "one byte past the limit fails");
	is_int(buf_add(&b, "", 0), 0, "appending nothing to a full buffer is fine");
	ok(snap_same(&sn, &b), "the full buffer is unchanged");
	snap_take(&sn, &b);
	is_int(buf_write_at(&b, 6, "abc", 3), -EFBIG, "a write_at ending past the limit fails");
	ok(snap_same(&sn, &b), "the refused write_at left the buffer unchanged");
	is_int(buf_write_at(&b, 5, "abc", 3), 0, "a write_at ending at the limit is accepted");
	is_str(buf_str(&b), "12345abc", "it overwrote in place");
	buf_consume(&b, 4);
	is_int(buf_adds(&b, "wxyz"), 0, "consuming makes room under the limit again");
	is_str(buf_str(&b), "5abcwxyz", "content after consume and append");
	buf_release(&b);

	/* A limit refusal on a buffer that never held anything. */
	buf_init(&b, 3);
	is_int(buf_addf(&b, "%s", "four"), -EFBIG, "a first addf past the limit fails");
	ok(b.len == 0, "the empty buffer stays empty");
	is_str(buf_str(&b), "", "and reads as \"\"");
	is_int(buf_write_at(&b, 2, "xy", 2), -EFBIG, "a first write_at past the limit fails");
	is_int(b.len, 0, "the buffer is still empty");
	buf_release(&b);
}

static void test_write_at(void)
{
	struct buf b = BUF_INIT;
	static const char gap[] = "\0\0\0\0xy";
	size_t i;
	int zeros;

	is_int(buf_write_at(&b, 4, "xy", 2), 0, "write_at past the end of an empty buffer");
	ok(holds(&b, gap, 6), "the gap before it is NUL bytes, and the length is off+len");
	is_int(buf_write_at(&b, 0, "ab", 2), 0, "write_at at the start");
	ok(holds(&b, "ab\0\0xy", 6), "it overwrote the first bytes only");
	buf_release(&b);

	buf_adds(&b, "hello world");
	is_int(buf_write_at(&b, 6, "W", 1), 0, "write_at in the middle");
	ok(holds(&b, "hello World", 11), "overwrote one byte, length unchanged");
	is_int(buf_write_at(&b, 9, "LD!!", 4), 0, "write_at that overlaps the end");
	ok(holds(&b, "hello WorLD!!", 13), "overwrote the tail and grew by the rest");
	is_int(buf_write_at(&b, 13, "?", 1), 0, "write_at exactly at the end appends");
	ok(holds(&b, "hello WorLD!!?", 14), "content after the appending write_at");
	is_int(buf_write_at(&b, 3, "", 0), 0, "a write_at of nothing inside the buffer");
	is_int(b.len, 14, "changes nothing");

	/* A far write: the buffer grows many times over, the gap is all NUL. */
	is_int(buf_write_at(&b, 5000, "end", 3), 0, "write_at far past the end");
	is_int(b.len, 5003, "the length is off+len");
	for (zeros = 1, i = 14; i < 5000; i++)
		if (b.data[i])
			zeros = 0;
	ok(zeros, "every byte of the gap is NUL");
	ok(memcmp(b.data, "hello WorLD!!?", 14) == 0 && memcmp(b.data + 5000, "end", 3) == 0 &&
		   b.data[5003] == '\0',
	   "the old content and the new bytes are in place, terminated");
	is_int(buf_write_at(&b, SIZE_MAX, "ab", 2), -EFBIG, "an offset that overflows fails");
	is_int(b.len, 5003, "and changes nothing");
	buf_release(&b);
}

static void test_truncate_consume(void)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "0123456789");
	buf_truncate(&b, 20);
	ok(holds(&b, "0123456789", 10), "truncate to a longer length is a no-op");
	buf_truncate(&b, 10);
	ok(holds(&b, "0123456789", 10), "truncate to the same length is a no-op");
	buf_truncate(&b, 4);
	ok(holds(&b, "0123", 4), "truncate shortens and terminates");
	buf_truncate(&b, 0);
	ok(holds(&b, "", 0), "truncate to 0 empties");
	is_str(buf_str(&b), "", "str after truncate to 0");

	buf_reset(&b);
	buf_add(&b, "ab\0cdef", 7);
	buf_consume(&b, 0);
	ok(holds(&b, "ab\0cdef", 7), "consume of 0 bytes is a no-op");
	buf_consume(&b, 2);
	ok(holds(&b, "\0cdef", 5), "consume removes the first bytes, NUL bytes included after");
	buf_consume(&b, 1);
	ok(holds(&b, "cdef", 4), "consume of one byte");
	buf_consume(&b, 4);
	ok(b.len == 0 && buf_str(&b)[0] == '\0', "consume of everything empties");
	buf_adds(&b, "xyz");
	buf_consume(&b, 100);
	ok(b.len == 0 && buf_str(&b)[0] == '\0', "consume of more than there is empties");
	is_int(buf_adds(&b, "next"), 0, "the buffer is usable after consume");
	ok(holds(&b, "next", 4), "content after consume and append");
	buf_release(&b);
}

static void test_detach_reset(void)
{
	struct buf b = BUF_INIT;
	char *s, *data;
	size_t cap;

	buf_adds(&b, "detach me");
	data = b.data;
	s = buf_detach(&b);
	is_str(s, "detach me", "detach returns the content");
	ok(s == data, "detach hands over the buffer's own memory, no copy");
	ok(b.data == NULL && b.len == 0 && b.cap == 0, "detach leaves the buffer empty");
	is_str(buf_str(&b), "", "str after detach is \"\"");
	free(s);
	is_int(buf_adds(&b, "re"), 0, "the buffer is usable after detach");
	is_str(buf_str(&b), "re", "content after reuse");
	buf_release(&b);

	s = buf_detach(&b);
	ok(s != NULL, "detach of an empty buffer gives a string, not NULL");
	is_str(s, "", "that string is \"\"");
	free(s);

	buf_adds(&b, "some content that takes room");
	data = b.data;
	cap = b.cap;
	buf_reset(&b);
	is_int(b.len, 0, "reset empties");
	is_str(buf_str(&b), "", "str after reset is \"\"");
	ok(b.data == data && b.cap == cap, "reset keeps the memory");
	buf_adds(&b, "short");
	ok(b.data == data && b.cap == cap, "an append after reset reuses that memory");
	is_str(buf_str(&b), "short", "content after reset and append");
	buf_release(&b);
}

int main(void)
{
	test_empty();
	test_append();
	test_addf();
	test_limit();
	test_write_at();
	test_truncate_consume();
	test_detach_reset();
	return tap_done();
}
