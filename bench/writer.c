/*
 * writer.c - the "program" of the ingest benchmarks: appends N metric points to one file.
 *
 *     writer line|chunk PATH N [step|value]
 *
 * The text ("STEP VALUE\n" lines by default, "VALUE\n" with "value") is built in memory
 * first, so only the I/O is timed. "line" makes one write() per line; "chunk" writes 64 KiB
 * pieces that hold whole lines only (the last may be shorter). The file is opened once with
 * O_WRONLY|O_APPEND|O_CREAT, as a shell's >> does, and closed at the end; the time runs from
 * before open() to after close(), since on mlflowfs close() returns only when the points are
 * safe in the store. Point i has step i and value 1/(1+i/1000) printed with %.6g; sqlfloor.c
 * and the Python peers log the same points. Prints one line of key=value results.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WRITER_CHUNK 65536

static double writer_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Returns the text of n points, a new buffer the caller frees; *len gets its length. */
static char *writer_payload(long n, int with_step, size_t *len)
{
	size_t cap = (size_t)n * 40 + 1, used = 0;
	char *buf = malloc(cap);
	long i;

	if (!buf)
		return NULL;
	for (i = 0; i < n; i++) {
		double v = 1.0 / (1.0 + (double)i / 1000.0);
		int k = with_step ? snprintf(buf + used, cap - used, "%ld %.6g\n", i, v)
				  : snprintf(buf + used, cap - used, "%.6g\n", v);

		used += (size_t)k;
	}
	*len = used;
	return buf;
}

/* Length of the longest run of whole lines in [p, p + max), or of all that is left. */
static size_t writer_chunk_len(const char *p, size_t left, size_t max)
{
	size_t k;

	if (left <= max)
		return left;
	for (k = max; k > 0; k--)
		if (p[k - 1] == '\n')
			return k;
	return max; /* a line longer than a chunk: cannot happen with our lines */
}

static int writer_usage(void)
{
	fprintf(stderr, "usage: writer line|chunk PATH N [step|value]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *mode, *path;
	double t0, t1, t2, t3;
	size_t len, done = 0;
	long n, writes = 0;
	int chunk, with_step = 1, fd;
	char *payload, *end;

	if (argc < 4 || argc > 5)
		return writer_usage();
	mode = argv[1];
	path = argv[2];
	if (!strcmp(mode, "line"))
		chunk = 0;
	else if (!strcmp(mode, "chunk"))
		chunk = 1;
	else
		return writer_usage();
	n = strtol(argv[3], &end, 10);
	if (*end || n < 1)
		return writer_usage();
	if (argc == 5 && !strcmp(argv[4], "value"))
		with_step = 0;
	else if (argc == 5 && strcmp(argv[4], "step"))
		return writer_usage();

	payload = writer_payload(n, with_step, &len);
	if (!payload) {
		fprintf(stderr, "writer: out of memory\n");
		return 1;
	}

	t0 = writer_now();
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0) {
		fprintf(stderr, "writer: cannot open '%s': %s\n", path, strerror(errno));
		return 1;
	}
	t1 = writer_now();
	while (done < len) {
		const char *p = payload + done;
		size_t k;
		ssize_t r;

		if (chunk) {
			k = writer_chunk_len(p, len - done, WRITER_CHUNK);
		} else {
			const char *nl = memchr(p, '\n', len - done);

			k = nl ? (size_t)(nl - p) + 1 : len - done;
		}
		r = write(fd, p, k);
		if (r < 0) {
			fprintf(stderr, "writer: write %ld to '%s' failed: %s\n", writes + 1, path,
				strerror(errno));
			return 1;
		}
		if ((size_t)r != k) {
			fprintf(stderr, "writer: short write %ld to '%s': %zd of %zu bytes\n",
				writes + 1, path, r, k);
			return 1;
		}
		done += k;
		writes++;
	}
	t2 = writer_now();
	if (close(fd)) {
		fprintf(stderr, "writer: close of '%s' failed: %s\n", path, strerror(errno));
		return 1;
	}
	t3 = writer_now();

	printf("writer mode=%s n=%ld bytes=%zu writes=%ld seconds=%.6f points_per_s=%.0f "
	       "open_ms=%.3f close_ms=%.3f\n",
	       mode, n, len, writes, t3 - t0, (double)n / (t3 - t0), (t1 - t0) * 1e3,
	       (t3 - t2) * 1e3);
	free(payload);
	return 0;
}
