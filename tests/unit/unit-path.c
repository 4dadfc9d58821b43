/*
 * unit-path.c - path_parse() and the name encoding of path.c.  Most cases are
 * tables in tests/unit/data/path-parse.tsv and path-codec.tsv (found through
 * $top_srcdir); what a table cannot say (long names, buffer limits, release
 * safety, the small enum helpers) is here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "buf.h"
#include "path.h"
#include "tap.h"

struct kind_name {
	const char *name;
	enum node_kind kind;
	int is_key;
};

static const struct kind_name kinds[] = {
	{ "ROOT", NODE_ROOT, 0 },
	{ "EXPERIMENTS", NODE_EXPERIMENTS, 0 },
	{ "EXPERIMENT", NODE_EXPERIMENT, 0 },
	{ "EXP_JSON", NODE_EXP_JSON, 0 },
	{ "EXP_TAGS", NODE_EXP_TAGS, 1 },
	{ "RUNS_TABLE", NODE_RUNS_TABLE, 0 },
	{ "PLOTS", NODE_PLOTS, 1 },
	{ "RUN", NODE_RUN, 0 },
	{ "RUN_ID", NODE_RUN_ID, 0 },
	{ "STATUS", NODE_STATUS, 0 },
	{ "RUN_JSON", NODE_RUN_JSON, 0 },
	{ "PARAMS", NODE_PARAMS, 1 },
	{ "METRICS", NODE_METRICS, 1 },
	{ "HISTORY", NODE_HISTORY, 1 },
	{ "TAGS", NODE_TAGS, 1 },
	{ "ARTIFACTS", NODE_ARTIFACTS, 0 },
	{ "RUN_MODELS", NODE_RUN_MODELS, 0 },
	{ "RUN_MODEL", NODE_RUN_MODEL, 0 },
	{ "LOGGED_MODELS", NODE_LOGGED_MODELS, 0 },
	{ "LOGGED_MODEL", NODE_LOGGED_MODEL, 0 },
	{ "LM_STATUS", NODE_LM_STATUS, 0 },
	{ "LM_PARAMS", NODE_LM_PARAMS, 1 },
	{ "LM_METRICS", NODE_LM_METRICS, 1 },
	{ "LM_TAGS", NODE_LM_TAGS, 1 },
	{ "LM_FILE", NODE_LM_FILE, 0 },
	{ "RUNS", NODE_RUNS, 0 },
	{ "RUNS_LINK", NODE_RUNS_LINK, 0 },
	{ "CONTROL", NODE_CONTROL, 0 },
	{ "CONTROL_STATUS", NODE_CONTROL_STATUS, 0 },
	{ "CONTROL_ERRORS", NODE_CONTROL_ERRORS, 0 },
	{ "CONTROL_PARSED", NODE_CONTROL_PARSED, 0 },
	{ "MODELS", NODE_MODELS, 0 },
	{ "MODEL", NODE_MODEL, 0 },
	{ "MODEL_DESC", NODE_MODEL_DESC, 0 },
	{ "MODEL_TAGS", NODE_MODEL_TAGS, 1 },
	{ "MODEL_ALIASES", NODE_MODEL_ALIASES, 0 },
	{ "MODEL_ALIAS", NODE_MODEL_ALIAS, 0 },
	{ "MODEL_VERSIONS", NODE_MODEL_VERSIONS, 0 },
	{ "VERSION", NODE_VERSION, 0 },
	{ "VERSION_FIELD", NODE_VERSION_FIELD, 0 },
	{ "VERSION_TAGS", NODE_VERSION_TAGS, 1 },
	{ "VERSION_ARTIFACTS", NODE_VERSION_ARTIFACTS, 0 },
};

#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Written out here rather than taken from path.c, so the test checks it. */
static const char *const field_names[] = { "source", "run_id", "status", "stage", "description" };

#define NFIELDS (sizeof(field_names) / sizeof(field_names[0]))

/* What one line of path-parse.tsv expects. */
struct want {
	int err;
	enum node_kind kind;
	const char *experiment, *run, *key, *subpath, *run_id, *model, *alias, *logged_model;
	int64_t version;
	int field;
};

/* Kinds that some table line parsed to, so a missing kind is caught. */
static int kind_seen[NKINDS];

static FILE *open_data(const char *name)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/unit/data/%s", top && *top ? top : ".", name);
	f = fopen(path, "r");
	if (!f)
		tap_diag("cannot open '%s'", path);
	return f;
}

/*
 * Splits line in place at tabs into at most max fields; returns how many.
 * Fields may be empty, which is how the tables spell "".
 */
static size_t split_tabs(char *line, char **fields, size_t max)
{
	size_t n = 0;

	while (n < max) {
		char *tab = strchr(line, '\t');

		fields[n++] = line;
		if (!tab)
			break;
		*tab = '\0';
		line = tab + 1;
	}
	return n;
}

/* Reads the next data line (not blank, not a comment) without its newline. */
static ssize_t next_line(FILE *f, char **line, size_t *cap, int *lineno)
{
	ssize_t len;

	while ((len = getline(line, cap, f)) >= 0) {
		(*lineno)++;
		if (len > 0 && (*line)[len - 1] == '\n')
			(*line)[--len] = '\0';
		if (len == 0 || (*line)[0] == '#')
			continue;
		return len;
	}
	return -1;
}

static int lookup_kind(const char *name, enum node_kind *kind)
{
	size_t i;

	for (i = 0; i < NKINDS; i++) {
		if (strcmp(kinds[i].name, name) == 0) {
			*kind = kinds[i].kind;
			return 0;
		}
	}
	return -1;
}

/* A version field's name, or the runs table's format: "tsv" is 1. */
static int lookup_field(const char *name)
{
	size_t i;

	if (strcmp(name, "tsv") == 0)
		return 1;
	for (i = 0; i < NFIELDS; i++) {
		if (strcmp(field_names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

/* Fills w from the fields after the path; -1 on a malformed line. */
static int parse_want(char **fields, size_t n, struct want *w)
{
	size_t i;

	memset(w, 0, sizeof(*w));
	if (n < 2)
		return -1;
	if (strcmp(fields[1], "ENOENT") == 0)
		w->err = -ENOENT;
	else if (lookup_kind(fields[1], &w->kind) < 0)
		return -1;
	for (i = 2; i < n; i++) {
		char *eq = strchr(fields[i], '=');
		const char *v;

		if (!eq)
			return -1;
		*eq = '\0';
		v = eq + 1;
		if (strcmp(fields[i], "experiment") == 0)
			w->experiment = v;
		else if (strcmp(fields[i], "run") == 0)
			w->run = v;
		else if (strcmp(fields[i], "key") == 0)
			w->key = v;
		else if (strcmp(fields[i], "subpath") == 0)
			w->subpath = v;
		else if (strcmp(fields[i], "run_id") == 0)
			w->run_id = v;
		else if (strcmp(fields[i], "model") == 0)
			w->model = v;
		else if (strcmp(fields[i], "alias") == 0)
			w->alias = v;
		else if (strcmp(fields[i], "logged_model") == 0)
			w->logged_model = v;
		else if (strcmp(fields[i], "version") == 0)
			w->version = strtoll(v, NULL, 10);
		else if (strcmp(fields[i], "field") == 0)
			w->field = lookup_field(v);
		else
			return -1;
		if (w->field < 0)
			return -1;
	}
	return 0;
}

/* Notes a string field that differs in diag; returns 1 if it does. */
static int differs(struct buf *diag, const char *what, const char *got, const char *want)
{
	if (got && want ? strcmp(got, want) == 0 : got == want)
		return 0;
	buf_addf(diag, " %s: got %s%s%s, want %s%s%s;", what, got ? "'" : "", got ? got : "NULL",
		 got ? "'" : "", want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return 1;
}

/* One test per path: the result and every field of the node. */
static void check_parse(int lineno, const char *path, const struct want *w)
{
	struct buf diag = BUF_INIT;
	struct node n;
	int err, bad = 0;

	err = path_parse(path, &n);
	if (err != w->err) {
		buf_addf(&diag, " result: got %d, want %d;", err, w->err);
		bad = 1;
	}
	if (!err && n.kind != w->kind) {
		buf_addf(&diag, " kind: got %d, want %d;", (int)n.kind, (int)w->kind);
		bad = 1;
	}
	/* On failure every field must be zero: that is what makes release safe. */
	bad |= differs(&diag, "experiment", n.experiment, w->experiment);
	bad |= differs(&diag, "run", n.run, w->run);
	bad |= differs(&diag, "key", n.key, w->key);
	bad |= differs(&diag, "subpath", n.subpath, w->subpath);
	bad |= differs(&diag, "run_id", n.run_id, w->run_id);
	bad |= differs(&diag, "model", n.model, w->model);
	bad |= differs(&diag, "alias", n.alias, w->alias);
	bad |= differs(&diag, "logged_model", n.logged_model, w->logged_model);
	if (n.version != w->version) {
		buf_addf(&diag, " version: got %" PRId64 ", want %" PRId64 ";", n.version,
			 w->version);
		bad = 1;
	}
	if ((int)n.field != w->field) {
		buf_addf(&diag, " field: got %d, want %d;", (int)n.field, w->field);
		bad = 1;
	}
	if (!ok(!bad, "parse:%d '%s'", lineno, path))
		tap_diag("%s", buf_str(&diag));
	if (!err)
		kind_seen[n.kind] = 1;
	path_release(&n);
	buf_release(&diag);
}

static void test_parse_table(void)
{
	FILE *f = open_data("path-parse.tsv");
	char *line = NULL, *fields[16];
	size_t cap = 0, i, nf;
	int lineno = 0, lines = 0;
	struct want w;

	if (!ok(f != NULL, "path-parse.tsv opens"))
		return;
	while (next_line(f, &line, &cap, &lineno) >= 0) {
		nf = split_tabs(line, fields, sizeof(fields) / sizeof(fields[0]));
		if (parse_want(fields, nf, &w) < 0) {
			ok(0, "path-parse.tsv:%d is well formed", lineno);
			continue;
		}
		check_parse(lineno, fields[0], &w);
		lines++;
	}
	free(line);
	fclose(f);
	ok(lines > 100, "path-parse.tsv has its cases (%d)", lines);
	for (i = 0; i < NKINDS; i++)
		ok(kind_seen[kinds[i].kind], "some table path parses to %s", kinds[i].name);
}

static void check_codec(int lineno, const char *op, const char *in, const char *want)
{
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	int err;

	if (strcmp(op, "encode") == 0) {
		err = path_encode(&enc, in);
		ok(!err && strcmp(buf_str(&enc), want) == 0, "codec:%d encode '%s' -> '%s'", lineno,
		   in, want);
		if (err || strcmp(buf_str(&enc), want) != 0)
			tap_diag("got '%s' (%d)", buf_str(&enc), err);
	} else if (strcmp(op, "decode") == 0) {
		err = path_decode(&dec, in, strlen(in));
		ok(!err && strcmp(buf_str(&dec), want) == 0, "codec:%d decode '%s' -> '%s'", lineno,
		   in, want);
		if (err || strcmp(buf_str(&dec), want) != 0)
			tap_diag("got '%s' (%d)", buf_str(&dec), err);
	} else {
		err = path_encode(&enc, in);
		if (!err)
			err = path_decode(&dec, enc.data, enc.len);
		ok(!err && strcmp(buf_str(&dec), in) == 0 && !strchr(buf_str(&enc), '/') &&
			   buf_str(&enc)[0] != '.',
		   "codec:%d round trip '%s' via '%s'", lineno, in, buf_str(&enc));
	}
	buf_release(&enc);
	buf_release(&dec);
}

static void test_codec_table(void)
{
	FILE *f = open_data("path-codec.tsv");
	char *line = NULL, *fields[4];
	size_t cap = 0, nf;
	int lineno = 0, lines = 0;

	if (!ok(f != NULL, "path-codec.tsv opens"))
		return;
	while (next_line(f, &line, &cap, &lineno) >= 0) {
		nf = split_tabs(line, fields, sizeof(fields) / sizeof(fields[0]));
		if (nf == 3 &&
		    (strcmp(fields[0], "encode") == 0 || strcmp(fields[0], "decode") == 0))
			check_codec(lineno, fields[0], fields[1], fields[2]);
		else if (nf == 2 && strcmp(fields[0], "roundtrip") == 0)
			check_codec(lineno, fields[0], fields[1], NULL);
		else
			ok(0, "path-codec.tsv:%d is well formed", lineno);
		lines++;
	}
	free(line);
	fclose(f);
	ok(lines > 40, "path-codec.tsv has its cases (%d)", lines);
}

/* A 255-byte name (NAME_MAX) survives encoding and parsing unchanged. */
static void test_long_names(void)
{
	struct buf enc = BUF_INIT, dec = BUF_INIT, path = BUF_INIT;
	char name[256];
	struct node n;
	size_t i;
	int err;

	for (i = 0; i < 255; i++)
		name[i] = "ab/%.c"[i % 6];
	name[255] = '\0';
	err = path_encode(&enc, name);
	is_int(err, 0, "encode a 255-byte name");
	/* 43 '/' and 42 '%' grow by two bytes each: longer than NAME_MAX. */
	is_int(enc.len, 255 + 2 * (43 + 42), "encoded 255-byte name has the expected length");
	err = path_decode(&dec, enc.data, enc.len);
	ok(!err && dec.len == 255 && memcmp(dec.data, name, 255) == 0, "255-byte name round trips");

	buf_addf(&path, "/experiments/%s/R/metrics/%s", buf_str(&enc), buf_str(&enc));
	err = path_parse(buf_str(&path), &n);
	ok(!err && n.kind == NODE_METRICS && n.experiment && strcmp(n.experiment, name) == 0 &&
		   n.key && strcmp(n.key, name) == 0,
	   "255-byte names parse as experiment and key");
	path_release(&n);

	memset(name, 'x', 255);
	buf_reset(&enc);
	buf_reset(&dec);
	err = path_encode(&enc, name);
	ok(!err && enc.len == 255 && memcmp(enc.data, name, 255) == 0,
	   "a plain 255-byte name encodes to itself");
	err = path_decode(&dec, enc.data, enc.len);
	ok(!err && dec.len == 255 && memcmp(dec.data, name, 255) == 0,
	   "a plain 255-byte name decodes to itself");

	buf_release(&enc);
	buf_release(&dec);
	buf_release(&path);
}

static void test_codec_buffers(void)
{
	struct buf b = BUF_INIT, small;
	int err;

	/* Encoding appends; it does not replace. */
	buf_adds(&b, "/experiments/");
	err = path_encode(&b, "a/b");
	ok(!err && strcmp(buf_str(&b), "/experiments/a%2Fb") == 0, "encode appends");
	/* The leading dot is the name's own first byte, not the buffer's. */
	err = path_encode(&b, ".x");
	ok(!err && strcmp(buf_str(&b), "/experiments/a%2Fb%2Ex") == 0,
	   "leading dot is per name, not per buffer");
	buf_release(&b);

	/* Decoding reads exactly len bytes, never up to a NUL. */
	err = path_decode(&b, "a%2Fb", 3);
	ok(!err && strcmp(buf_str(&b), "a%2") == 0, "decode stops at len, even mid-escape");
	buf_reset(&b);
	err = path_decode(&b, "x%2Fy/z", 4);
	ok(!err && strcmp(buf_str(&b), "x/") == 0, "decode of a prefix");
	buf_reset(&b);
	err = path_decode(&b, "", 0);
	ok(!err && b.len == 0, "decode of nothing");
	buf_reset(&b);
	buf_adds(&b, "k=");
	err = path_decode(&b, "%2Ea", 4);
	ok(!err && strcmp(buf_str(&b), "k=.a") == 0, "decode appends");
	buf_release(&b);

	/* A bounded buffer that cannot take the whole result is left as it was. */
	buf_init(&small, 8);
	buf_adds(&small, "abc");
	err = path_encode(&small, "de/f");
	is_int(err, -EFBIG, "encode past the buffer's limit fails");
	is_str(buf_str(&small), "abc", "failed encode leaves the buffer as it was");
	err = path_decode(&small, "d%2Fefgh", 8);
	is_int(err, -EFBIG, "decode past the buffer's limit fails");
	is_str(buf_str(&small), "abc", "failed decode leaves the buffer as it was");
	err = path_encode(&small, "d/");
	ok(!err && strcmp(buf_str(&small), "abcd%2F") == 0, "encode that fits the limit");
	buf_release(&small);
}

static void test_release(void)
{
	struct node n;
	int err;

	memset(&n, 0, sizeof(n));
	path_release(&n);
	ok(1, "release of a zeroed node");

	/* A node full of garbage is fine: path_parse does not read it. */
	memset(&n, 0x5a, sizeof(n));
	err = path_parse("/experiments/E/R/metrics/a/b", &n);
	ok(!err && n.kind == NODE_METRICS && strcmp(n.key, "a/b") == 0 && !n.subpath && !n.model &&
		   !n.alias && !n.run_id,
	   "parse into an uninitialised node");
	path_release(&n);
	ok(!n.experiment && !n.run && !n.key && n.kind == NODE_ROOT, "release zeroes the node");
	path_release(&n);
	ok(1, "second release is harmless");

	/* Failures deep in a path, after names were already allocated. */
	memset(&n, 0x5a, sizeof(n));
	err = path_parse("/experiments/E/R/run_id/x", &n);
	ok(err == -ENOENT && !n.experiment && !n.run && !n.key, "failed parse leaves no names");
	path_release(&n);
	err = path_parse("/models/M/versions/1/tags/k/../x", &n);
	ok(err == -ENOENT && !n.model && !n.key && n.version == 0,
	   "failed parse leaves no model, key or version");
	path_release(&n);
	ok(1, "release after a failed parse");

	/* The same node can be parsed into again after a release. */
	err = path_parse("/models/M/aliases/a%2Fb", &n);
	ok(!err && n.kind == NODE_MODEL_ALIAS && strcmp(n.alias, "a/b") == 0,
	   "reuse after release");
	path_release(&n);
}

static void test_key_kinds(void)
{
	size_t i;

	for (i = 0; i < NKINDS; i++)
		is_int(!!path_is_key_kind(kinds[i].kind), kinds[i].is_key, kinds[i].name);
}

static void test_version_fields(void)
{
	static const char *const bad[] = { "Source",  "runid", "source ",
					   "sourcex", "stag",  "descriptions" };
	char path[128];
	struct node n;
	size_t i;
	int err;

	for (i = 0; i < NFIELDS; i++) {
		snprintf(path, sizeof(path), "/models/M/versions/1/%s", field_names[i]);
		err = path_parse(path, &n);
		ok(!err && n.kind == NODE_VERSION_FIELD && n.field == (enum version_field)i,
		   "%s names version field %zu", path, i);
		path_release(&n);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "/models/M/versions/1/%s", bad[i]);
		err = path_parse(path, &n);
		ok(err || n.kind != NODE_VERSION_FIELD, "%s is no version field", path);
		path_release(&n);
	}
}

/* URI paths (file: artifact locations) decode every escape, unlike names. */
static void test_uri_decode(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "/a%20b/c", "/a b/c" },     { "/caf%C3%A9", "/caf\xc3\xa9" },
		{ "/50%25", "/50%" },	      { "/x%2Fy", "/x/y" },
		{ "/bad%zz%2", "/bad%zz%2" }, { "/nul%00", "/nul%00" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT;

		is_int(path_uri_decode(&b, cases[i].in, strlen(cases[i].in)), 0, "uri decode");
		is_str(buf_str(&b), cases[i].out, cases[i].in);
		buf_release(&b);
	}
}

int main(void)
{
	test_uri_decode();
	test_parse_table();
	test_codec_table();
	test_long_names();
	test_codec_buffers();
	test_release();
	test_key_kinds();
	test_version_fields();
	return tap_done();
}
