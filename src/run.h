/*
 * run.h - `mlflowfs run`: runs a program as a new MLflow run, made and fed
 * through a mounted mlflowfs tree with plain file operations (an existing
 * mount of the store, or a private one for the program's lifetime).  The
 * pure parts, the program's flags and its scalar output lines, are here for
 * the unit tests.
 */
#ifndef MFS_RUN_H
#define MFS_RUN_H

#include <stddef.h>
#include <stdint.h>

/* mlflowfs run [OPTIONS] -- PROGRAM ARGS...: argv[1] is "run".  Returns the
 * exit status: the program's (128+N for a signal), or 125 when the wrapper
 * itself failed before starting it. */
int run_main(int argc, char *argv[]);

/* The exit status of a wrapper that could not start the program. */
#define RUN_EXIT_SETUP 125

struct run_flag {
	char *key;   /* "lr" of "--lr 0.1": a new string */
	char *value; /* "0.1"; "true" for a bare switch: a new string */
};

/*
 * The params a program's arguments (argv[1..argc-1], argv[0] being the
 * program) give: "--k v" and "--k=v" set k to v, a bare "--k" before
 * another "--x" or the end sets k to "true"; "-x" options are not params,
 * and nothing after a lone "--" is.  A key given twice keeps its last value,
 * as argparse does.  Returns 0 with *out a new array of *n flags (free with
 * run_flags_free), or -ENOMEM.
 */
int run_flags_parse(int argc, char *const argv[], struct run_flag **out, size_t *n);
void run_flags_free(struct run_flag *flags, size_t n);

struct run_scalar {
	const char *key; /* into the parsed line, not NUL-terminated */
	size_t key_len;
	double value;
	int64_t step; /* valid when has_step: the "(step N)" suffix */
	int has_step;
};

/*
 * Whether a line of output (without its newline) is a scalar, by Guild's
 * default rule: "key: number", optionally followed by a parenthesised
 * comment, where "(step N)" or "(N)" gives the line's step; also a line
 * that is exactly "key=number".  key is a letter or '_' and then any
 * non-blank characters; number a decimal or exponent number, nan or a
 * signed inf (any case).  Blanks around the line are ignored.  Returns 1
 * and fills *out, or 0.
 */
int run_scalar_parse(const char *line, size_t len, struct run_scalar *out);

#endif
