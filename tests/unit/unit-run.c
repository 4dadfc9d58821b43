/*
 * unit-run.c - the pure parts of `mlflowfs run`: which of a program's
 * arguments are params (--k v, --k=v, bare switches, short options, a lone
 * "--"), and which output lines are scalars by Guild's default rule and the
 * "key=number" form, with their steps.  The wrapper end to end, on both
 * stores, is tests/e2e/test_run.py.
 */
#include <math.h>
#include <string.h>

#include "run.h"
#include "tap.h"

/* The flags of a command line given as one string split at spaces, as
 * "k=v;k=v" in order. */
static void flags_are(const char *cmd, const char *want)
{
	char copy[512], *argv[32], *save = NULL, got[512] = "";
	struct run_flag *f;
	size_t n, i;
	int argc = 0;

	snprintf(copy, sizeof(copy), "%s", cmd);
	for (char *t = strtok_r(copy, " ", &save); t && argc < 31; t = strtok_r(NULL, " ", &save))
		argv[argc++] = strcmp(t, "''") ? t : (char *)"";
	argv[argc] = NULL;
	if (run_flags_parse(argc, argv, &f, &n)) {
		ok(0, "flags of '%s': out of memory", cmd);
		return;
	}
	for (i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s=%s", i ? ";" : "",
			 f[i].key, f[i].value);
	run_flags_free(f, n);
	is_str(got, want, cmd);
}

/* Whether line is a scalar, and which: "key value [step]". */
static void scalar_is(const char *line, const char *want)
{
	struct run_scalar s;
	char got[256] = "-";

	if (run_scalar_parse(line, strlen(line), &s)) {
		snprintf(got, sizeof(got), "%.*s %g", (int)s.key_len, s.key, s.value);
		if (s.has_step)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), " %lld",
				 (long long)s.step);
	}
	is_str(got, want, line);
}

int main(void)
{
	struct run_scalar s;

	/* flags */
	flags_are("train.py --lr 0.1 --epochs=3", "lr=0.1;epochs=3");
	flags_are("train.py --verbose --lr 0.1", "verbose=true;lr=0.1");
	flags_are("train.py --lr 0.1 --verbose", "lr=0.1;verbose=true");
	flags_are("train.py --shift -1", "shift=-1");
	flags_are("train.py -v -x 3 --a 1 data.csv", "a=1");
	flags_are("train.py --a 1 -- --b 2", "a=1");
	flags_are("train.py --a --", "a=true");
	flags_are("train.py --a=1 --a=2", "a=2");
	flags_are("train.py --empty= --x=a=b", "empty=;x=a=b");
	flags_are("train.py --=3 -- ", "");
	flags_are("train.py", "");
	flags_are("train.py --name ''", "name=");

	/* Guild's "key: number" lines */
	scalar_is("loss: 0.25", "loss 0.25");
	scalar_is("  val/loss:\t1e-3  ", "val/loss 0.001");
	scalar_is("acc: 0.9 (step 4)", "acc 0.9 4");
	scalar_is("acc: 0.9 (7)", "acc 0.9 7");
	scalar_is("acc: 0.9 (best so far)", "acc 0.9");
	scalar_is("_x: -2", "_x -2");
	scalar_is("top@1: .5", "top@1 0.5");
	scalar_is("a:b: 3", "a:b 3");
	scalar_is("loss: nan", "loss nan");
	scalar_is("loss: -Inf", "loss -inf");
	scalar_is("loss: +INF", "loss inf");
	scalar_is("loss: 5.", "loss 5");
	scalar_is("loss: 1E+2", "loss 100");
	scalar_is("step: 10", "step 10");
	scalar_is("loss: 0.2\r", "loss 0.2");
	/* not scalars */
	scalar_is("loss: 0.25 extra", "-");
	scalar_is("loss: 0.25 (", "-");
	scalar_is("loss:0.25", "-");
	scalar_is("loss: abc", "-");
	scalar_is("loss: -nan", "-");
	scalar_is("loss: 0x10", "-");
	scalar_is("1loss: 2", "-");
	scalar_is(": 2", "-");
	scalar_is("Epoch 1/10", "-");
	scalar_is("the loss: 0.2", "-");
	scalar_is("loss: ", "-");
	scalar_is("", "-");
	scalar_is("loss: 1e", "-");
	scalar_is("loss: 0.1 (step x)", "loss 0.1");
	/* "key=number" lines */
	scalar_is("acc=0.93", "acc 0.93");
	scalar_is("  acc=1e3 ", "acc 1000");
	scalar_is("acc=nan", "acc nan");
	scalar_is("acc = 0.93", "-");
	scalar_is("acc=0.93 x", "-");
	scalar_is("acc=", "-");
	scalar_is("lr=0.1,momentum=0.9", "-");
	scalar_is("x=1=2", "-");

	ok(run_scalar_parse("acc: 0.5 (step 3)", 9, &s) && s.key_len == 3 && !s.has_step,
	   "only len bytes are read");
	ok(run_scalar_parse("a: nan", 6, &s) && isnan(s.value), "nan is NaN");
	return tap_done();
}
