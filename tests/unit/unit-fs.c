/*
 * unit-fs.c - the FUSE layer's handlers (fs_operations) driven without a
 * kernel, against the counting fake store (fake-store.h).  For each everyday
 * operation the exact store calls it costs, in all and per operation, so
 * that one more round trip fails a test; then what needs no kernel to check:
 * refusals and their errnos with nothing written, a failed store call passed
 * up and logged, a failed commit that fails the close of its own descriptor
 * only, steps for metric lines without one.  Every case starts from a fresh
 * world.
 *
 * The handlers find their state through fuse_get_context(): this binary
 * defines it, and fuse_invalidate_path(), so the linker takes them instead
 * of libfuse's (which would answer NULL outside a FUSE loop); the first case
 * checks that it did.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "art.h"
#include "buf.h"
#include "fake-store.h"
#include "fs-internal.h"
#include "fs.h"
#include "log.h"
#include "options.h"
#include "tap.h"

/* ---- what libfuse would provide --------------------------------------- */

static struct fuse_context fuse_ctx;
static unsigned long ctx_calls;

struct fuse_context *fuse_get_context(void)
{
	ctx_calls++;
	return &fuse_ctx;
}

static unsigned long inval_calls;
static struct buf inval_paths = BUF_INIT; /* "PATH\n" per call */

int fuse_invalidate_path(struct fuse *f, const char *path)
{
	(void)f;
	inval_calls++;
	if (buf_adds(&inval_paths, path) || buf_addch(&inval_paths, '\n'))
		return -ENOMEM;
	return 0;
}

/* ---- the fixture: a fresh world, the fs over it --------------------------- */

static char mountpoint[] = "/mnt/unit-fs";
static char fake_uri[] = "fake:";

struct fx {
	struct fake_store *f;
	struct art_registry *art; /* the local repository only */
	struct fs *fs;
	struct mfs_config cfg;
};

static int fx_open(struct fx *x)
{
	memset(x, 0, sizeof(*x));
	x->cfg.tracking_uri = fake_uri;
	x->cfg.display_uri = fake_uri;
	x->cfg.mountpoint = mountpoint;
	x->cfg.cwd = mountpoint;
	x->cfg.cache_ttl = 2.0;
	x->cfg.umask = 022;
	x->f = fake_store_new();
	x->art = art_registry_new(NULL, NULL);
	x->fs = x->f && x->art ? fs_new(&x->f->base, x->art, &x->cfg) : NULL;
	if (!x->fs) {
		if (x->f)
			store_close(&x->f->base);
		art_registry_free(x->art);
		return -1;
	}
	memset(&fuse_ctx, 0, sizeof(fuse_ctx));
	fuse_ctx.uid = getuid();
	fuse_ctx.gid = getgid();
	fuse_ctx.pid = getpid();
	fuse_ctx.umask = 022;
	fuse_ctx.private_data = x->fs;
	inval_calls = 0;
	buf_reset(&inval_paths);
	return 0;
}

/* Frees the fs (which frees what the kernel left open), then the store.
 * Returns the contract breaches and batches left live, for the caller. */
static unsigned fx_close(struct fx *x, const char *name)
{
	unsigned bad = 0, live;

	fs_free(x->fs);
	fuse_ctx.private_data = NULL;
	live = fake_store_live_batches(x->f);
	if (live)
		tap_diag("%s: %u batches never freed", name, live);
	if (x->f->violations)
		tap_diag("%s: %u breaches of the store contract (see stderr)", name,
			 x->f->violations);
	bad = live + x->f->violations;
	store_close(&x->f->base);
	art_registry_free(x->art);
	memset(x, 0, sizeof(*x));
	return bad;
}

/* ---- store calls ------------------------------------------------------- */

/* Checks the calls d against a budget: total, and exactly spec per op. */
static void is_calls(const struct fake_counts *d, unsigned long total, const char *spec,
		     const char *name)
{
	struct buf got = BUF_INIT;
	struct fake_counts want;
	int same;

	if (fake_counts_parse(spec, &want) || want.total != total) {
		ok(0, "%s: the table's budget '%s' (%lu) reads", name, spec, total);
		return;
	}
	same = d->total == total && !memcmp(d->op, want.op, sizeof(want.op));
	if (!ok(same, "%s: %lu store calls (%s)", name, total, spec[0] ? spec : "none")) {
		fake_counts_format(d, &got);
		tap_diag("got %lu: %s", d->total, buf_str(&got));
	}
	buf_release(&got);
}

/* The calls of the operations that write (or reserve) anything. */
static unsigned long write_calls(const struct fake_counts *d)
{
	static const enum fake_op writes[] = {
		FAKE_batch_new,		FAKE_batch_commit,	FAKE_create_experiment,
		FAKE_rename_experiment, FAKE_delete_experiment, FAKE_create_run,
		FAKE_rename_run,	FAKE_delete_run,	FAKE_set_status,
		FAKE_log_param,		FAKE_set_tag,		FAKE_delete_tag,
		FAKE_rename_tag,	FAKE_reserve_steps,	FAKE_log_metrics,
	};
	unsigned long n = 0;
	size_t i;

	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		n += d->op[writes[i]];
	return n;
}

/* ---- driving the handlers as the kernel does ----------------------------- */

static int getattr(const char *path, struct stat *st)
{
	return fs_operations.getattr(path, st, NULL);
}

static int fill_name(void *ctx, const char *name, const struct stat *st, off_t off,
		     enum fuse_fill_dir_flags flags)
{
	struct buf *names = ctx;

	(void)st;
	(void)off;
	(void)flags;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	return (names->len && buf_addch(names, ' ')) || buf_adds(names, name);
}

/* opendir, one readdirplus from offset 0, releasedir: names joined by ' '. */
static int list_dir(const char *path, struct buf *names)
{
	struct fuse_file_info fi = { 0 };
	int err = fs_operations.opendir(path, &fi);

	if (err)
		return err;
	err = fs_operations.readdir(path, names, fill_name, 0, &fi, FUSE_READDIR_PLUS);
	fs_operations.releasedir(path, &fi);
	return err;
}

/* open O_RDONLY, read to the end, release (no flush: no_rofd_flush). */
static int read_file(const char *path, struct buf *out)
{
	struct fuse_file_info fi = { .flags = O_RDONLY };
	char chunk[4096];
	off_t off = 0;
	int n, err = fs_operations.open(path, &fi);

	if (err)
		return err;
	while ((n = fs_operations.read(path, chunk, sizeof(chunk), off, &fi)) > 0) {
		if (buf_add(out, chunk, (size_t)n))
			break;
		off += n;
	}
	fs_operations.release(path, &fi);
	return n < 0 ? n : 0;
}

/*
 * What a shell redirection makes the kernel do: open (or create) with
 * flags, one write of data, flush, release.  The first error, else 0.
 */
static int write_file(const char *path, int flags, int create, const char *data)
{
	struct fuse_file_info fi = { .flags = flags };
	size_t len = strlen(data);
	int err, w;

	err = create ? fs_operations.create(path, 0644, &fi) : fs_operations.open(path, &fi);
	if (err)
		return err;
	w = fs_operations.write(path, data, len, 0, &fi);
	err = w < 0 ? w : (size_t)w == len ? 0 : -EIO;
	w = fs_operations.flush(path, &fi);
	if (!err)
		err = w;
	fs_operations.release(path, &fi);
	return err;
}

enum act {
	GETATTR,
	READDIR,
	READ,	    /* open O_RDONLY, read, release */
	APPEND,	    /* echo arg >> path: open O_WRONLY|O_APPEND, write, flush, release */
	APPEND_NEW, /* the same on a name not there yet: create O_WRONLY|O_APPEND */
	PUT,	    /* echo arg > path: open O_WRONLY|O_TRUNC, ... */
	PUT_NEW,    /* echo arg > path, a new name: create O_WRONLY|O_TRUNC, ... */
	MKDIR,
	RMDIR,
	RENAME, /* arg: the new path */
	UNLINK,
	READLINK,
};

/* Runs one operation; what it shows (names, content) goes to out. */
static int act_run(enum act act, const char *path, const char *arg, struct buf *out)
{
	struct stat st;
	char link[1024];
	int err;

	switch (act) {
	case GETATTR:
		return getattr(path, &st);
	case READDIR:
		return list_dir(path, out);
	case READ:
		return read_file(path, out);
	case APPEND:
		return write_file(path, O_WRONLY | O_APPEND, 0, arg);
	case APPEND_NEW:
		return write_file(path, O_WRONLY | O_APPEND | O_CREAT, 1, arg);
	case PUT:
		return write_file(path, O_WRONLY | O_TRUNC, 0, arg);
	case PUT_NEW:
		return write_file(path, O_WRONLY | O_CREAT | O_TRUNC, 1, arg);
	case MKDIR:
		return fs_operations.mkdir(path, 0755);
	case RMDIR:
		return fs_operations.rmdir(path);
	case RENAME:
		return fs_operations.rename(path, arg, 0);
	case UNLINK:
		return fs_operations.unlink(path);
	default:
		err = fs_operations.readlink(path, link, sizeof(link));
		if (!err)
			buf_adds(out, link);
		return err;
	}
}

/* ---- the refusal log ------------------------------------------------------ */

static char *errors_now(void)
{
	struct buf b = BUF_INIT;

	log_render_errors(&b);
	return buf_detach(&b);
}

/* Whether a line for path with errno err was logged after before was taken:
 * the newest line names both. */
static int logged_since(const char *before, const char *path, int err)
{
	char *now = errors_now(), *last, want[600];
	int found = 0;

	if (now && strcmp(now, before ? before : "")) {
		size_t len = strlen(now);

		if (len && now[len - 1] == '\n')
			now[--len] = '\0';
		last = strrchr(now, '\n');
		last = last ? last + 1 : now;
		snprintf(want, sizeof(want), " %s %s ", path, log_errno_name(err));
		found = strstr(last, want) != NULL;
		if (!found)
			tap_diag("the newest refusal is '%s'", last);
	}
	free(now);
	return found;
}

/* ---- the case that makes the others mean something ----------------------- */

/*
 * The handlers must reach this binary's fuse_get_context: libfuse's would
 * answer NULL here (no FUSE loop), and the first handler would crash.  In a
 * child, so that a crash fails this check rather than the whole run.
 */
static void test_context_is_ours(void)
{
	struct fx x;
	pid_t pid;
	int status = 0;

	if (!ok(fx_open(&x) == 0, "context: a fake store and an fs over it"))
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		unsigned long before = ctx_calls;
		struct stat st;
		int good = fs_get() == x.fs && ctx_calls == before + 1;

		good = good && getattr("/experiments/vision", &st) == 0 && st.st_uid == getuid();
		_exit(good ? 0 : 1);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		   WEXITSTATUS(status) == 0,
	   "context: the handlers call this binary's fuse_get_context, not libfuse's");
	ok(fx_close(&x, "context") == 0, "context: no batch left, no contract broken");
}

/* ---- what each everyday operation costs ----------------------------------- */

#define EXP	"/experiments/vision"
#define RUN	EXP "/baseline"
#define RUN_B	EXP "/baseline@b0b1b2b3"
#define HISTORY "0 0.9 1700000000010\n1 0.5 1700000000020\n2 0.25 1700000000030\n"
#define EXP_JSON                                                                        \
	"{\n  \"artifact_location\": \"/nonexistent/mlflowfs-unit-fs/1\",\n"            \
	"  \"creation_time\": 1699999999000,\n  \"experiment_id\": \"1\",\n"            \
	"  \"last_update_time\": 1699999999500,\n  \"lifecycle_stage\": \"active\",\n"  \
	"  \"name\": \"vision\",\n  \"tags\": {\n    \"mlflow.note.content\": \"about " \
	"vision\",\n    \"team\": \"cv\"\n  }\n}\n"

struct cost_case {
	const char *what;
	enum act act;
	const char *path;
	const char *arg;     /* the data written, or rename's new path */
	int err;	     /* what the handler answers */
	unsigned long total; /* store calls, in all */
	const char *calls;   /* and per operation: "op op=N ..." */
	const char *shows;   /* READDIR: the names; READ, READLINK: the content; NULL: unchecked */
};

/*
 * The budget of each operation as the code stands, every number checked by
 * hand against the handlers: resolving a run path is get_experiment +
 * find_run; a key of a run needs the run's snapshot; a write is a batch of
 * its own (batch_new, the write, batch_commit, batch_free) unless its
 * descriptor has one.
 */
static const struct cost_case costs[] = {
	/* getattr (lookup, stat) */
	{ "getattr /", GETATTR, "/", NULL, 0, 0, "", NULL },
	{ "getattr experiments/", GETATTR, "/experiments", NULL, 0, 0, "", NULL },
	{ "getattr an experiment", GETATTR, EXP, NULL, 0, 1, "get_experiment", NULL },
	{ "getattr a run folder", GETATTR, RUN, NULL, 0, 2, "get_experiment find_run", NULL },
	{ "getattr a run folder named name@id", GETATTR, RUN_B, NULL, 0, 2,
	  "get_experiment find_run", NULL },
	{ "getattr a run by its id", GETATTR, EXP "/" FAKE_RUN_A, NULL, 0, 2,
	  "get_experiment find_run", NULL },
	{ "getattr run_id", GETATTR, RUN "/run_id", NULL, 0, 2, "get_experiment find_run", NULL },
	{ "getattr status", GETATTR, RUN "/status", NULL, 0, 2, "get_experiment find_run", NULL },
	{ "getattr run.json", GETATTR, RUN "/run.json", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr params/", GETATTR, RUN "/params", NULL, 0, 2, "get_experiment find_run", NULL },
	{ "getattr a param", GETATTR, RUN "/params/lr", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr a metric", GETATTR, RUN "/metrics/loss", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr a history file", GETATTR, RUN "/history/loss", NULL, 0, 4,
	  "get_experiment find_run get_snapshot history_stat", NULL },
	/* A plot's size is that of its drawing: measured and drawn once. */
	{ "getattr a history plot", GETATTR, RUN "/history/loss.svg", NULL, 0, 6,
	  "get_experiment find_run get_snapshot history_stat metric_history=2", NULL },
	{ "getattr a missing history plot", GETATTR, RUN "/history/nope.svg", NULL, -ENOENT, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr .plots/", GETATTR, EXP "/.plots", NULL, 0, 1, "get_experiment", NULL },
	{ "getattr an experiment plot (runs A and B have loss)", GETATTR, EXP "/.plots/loss.svg",
	  NULL, 0, 13, "get_experiment list_runs=2 get_snapshot=4 history_stat=2 metric_history=4",
	  NULL },
	{ "getattr a folder of .plots/", GETATTR, EXP "/.plots/train", NULL, 0, 5,
	  "get_experiment list_runs get_snapshot=3", NULL },
	{ "getattr a missing experiment plot", GETATTR, EXP "/.plots/nope.svg", NULL, -ENOENT, 5,
	  "get_experiment list_runs get_snapshot=3", NULL },
	{ "getattr a metric's name under .plots/ (no .svg)", GETATTR, EXP "/.plots/loss", NULL,
	  -ENOENT, 5, "get_experiment list_runs get_snapshot=3", NULL },
	{ "getattr a tag", GETATTR, RUN "/tags/owner", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr an experiment tag", GETATTR, EXP "/.tags/team", NULL, 0, 2,
	  "get_experiment get_kv", NULL },
	{ "getattr .experiment.json", GETATTR, EXP "/.experiment.json", NULL, 0, 2,
	  "get_experiment list_kv", NULL },
	{ "getattr a key folder (train/ of train/loss)", GETATTR, RUN "/metrics/train", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr a missing key", GETATTR, RUN "/params/nope", NULL, -ENOENT, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "getattr a missing experiment tag", GETATTR, EXP "/.tags/nope", NULL, -ENOENT, 3,
	  "get_experiment get_kv list_kv", NULL },
	{ "getattr a missing run", GETATTR, EXP "/nope", NULL, -ENOENT, 2,
	  "get_experiment find_run", NULL },
	{ "getattr a missing experiment", GETATTR, "/experiments/nope", NULL, -ENOENT, 1,
	  "get_experiment", NULL },
	{ "getattr runs/<id>", GETATTR, "/runs/" FAKE_RUN_A, NULL, 0, 2,
	  "get_run get_experiment_by_id", NULL },
	{ "getattr runs/<id> of a deleted run", GETATTR, "/runs/" FAKE_RUN_D, NULL, -ENOENT, 1,
	  "get_run", NULL },
	{ "getattr artifacts/ with no artifact yet", GETATTR, RUN "/artifacts", NULL, 0, 2,
	  "get_experiment find_run", NULL },
	{ "getattr a model version's artifacts link", GETATTR,
	  "/models/resnet/versions/2/artifacts", NULL, 0, 4,
	  "get_run get_experiment_by_id get_model get_version", NULL },
	{ "getattr .mlflowfs/status", GETATTR, "/.mlflowfs/status", NULL, 0, 1, "describe", NULL },

	/* readdir (ls -l: opendir, readdirplus, releasedir) */
	{ "readdir /", READDIR, "/", NULL, 0, 0, "", "experiments runs models .mlflowfs" },
	{ "readdir experiments/", READDIR, "/experiments", NULL, 0, 1, "list_experiments",
	  "Default vision nlp" },
	{ "readdir an experiment", READDIR, EXP, NULL, 0, 3, "get_experiment list_runs list_kv",
	  ".experiment.json .tags .runs.csv .runs.tsv .plots .models baseline "
	  "baseline@b0b1b2b3 " FAKE_RUN_C },
	{ "readdir a run", READDIR, RUN, NULL, 0, 3, "get_experiment find_run get_snapshot",
	  "run_id status run.json params metrics history tags artifacts models" },
	{ "readdir params/", READDIR, RUN "/params", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", "epochs lr opt" },
	{ "readdir metrics/", READDIR, RUN "/metrics", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", "acc loss train" },
	/* A plot is listed without its size, which would cost drawing it. */
	{ "readdir history/ (one history_stat per metric shown, none per plot)", READDIR,
	  RUN "/history", NULL, 0, 5, "get_experiment find_run get_snapshot history_stat=2",
	  "acc acc.svg loss loss.svg train" },
	{ "readdir tags/", READDIR, RUN "/tags", NULL, 0, 3, "get_experiment find_run get_snapshot",
	  "mlflow.runName mlflow.user owner team" },
	{ "readdir a key folder (metrics/train/)", READDIR, RUN "/metrics/train", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", "acc loss" },
	{ "readdir .plots/ (a plot per metric of any run, none drawn)", READDIR, EXP "/.plots",
	  NULL, 0, 5, "get_experiment list_runs get_snapshot=3", "acc.svg loss.svg train" },
	{ "readdir a folder of .plots/", READDIR, EXP "/.plots/train", NULL, 0, 9,
	  "get_experiment list_runs=2 get_snapshot=6", "acc.svg loss.svg" },
	{ "readdir an experiment's .tags/", READDIR, EXP "/.tags", NULL, 0, 2,
	  "get_experiment list_kv", "mlflow.note.content team" },
	{ "readdir runs/ (one list_runs per experiment)", READDIR, "/runs", NULL, 0, 4,
	  "list_experiments list_runs=3", FAKE_RUN_A " " FAKE_RUN_B " " FAKE_RUN_C " " FAKE_RUN_E },
	{ "readdir models/", READDIR, "/models", NULL, 0, 1, "list_models", "resnet" },

	/* open, read, release (cat) */
	{ "cat a param", READ, RUN "/params/lr", NULL, 0, 3, "get_experiment find_run get_snapshot",
	  "0.01\n" },
	{ "cat a metric", READ, RUN "/metrics/loss", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", "0.25\n" },
	{ "cat run.json", READ, RUN "/run.json", NULL, 0, 3, "get_experiment find_run get_snapshot",
	  NULL },
	{ "cat a history", READ, RUN "/history/loss", NULL, 0, 4,
	  "get_experiment find_run get_snapshot metric_history", HISTORY },
	/* The deleted run "old" is left out; a run's own missing values are empty. */
	{ "cat .runs.csv", READ, EXP "/.runs.csv", NULL, 0, 10,
	  "others_version get_experiment list_runs=2 get_snapshot=6",
	  "run,run_id,status,start_time,end_time,duration,params.epochs,params.lr,params.opt/"
	  "name,metrics.acc,metrics.loss,metrics.train/acc,metrics.train/loss\n"
	  "baseline,a1b2c3d4e5f60718293a4b5c6d7e8f90,RUNNING,2023-11-14T22:13:20.000Z,,,10,0.01,"
	  "adam,0.75,0.25,0.6,1.25\n"
	  "baseline@b0b1b2b3,b0b1b2b3b4b5b6b7b8b9babbbcbdbebf,RUNNING,2023-11-14T22:13:20.100Z,,,,"
	  "0.1,,,0.8,,\n"
	  "c0ffee00c0ffee00c0ffee00c0ffee00,c0ffee00c0ffee00c0ffee00c0ffee00,RUNNING,2023-11-14T22:"
	  "13:20.200Z,,,,,,,,,\n" },
	{ "cat .runs.tsv", READ, EXP "/.runs.tsv", NULL, 0, 10,
	  "others_version get_experiment list_runs=2 get_snapshot=6",
	  "run\trun_id\tstatus\tstart_time\tend_time\tduration\tparams.epochs\tparams.lr\tparams."
	  "opt/name\tmetrics.acc\tmetrics.loss\tmetrics.train/acc\tmetrics.train/loss\n"
	  "baseline\ta1b2c3d4e5f60718293a4b5c6d7e8f90\tRUNNING\t2023-11-14T22:13:20."
	  "000Z\t\t\t10\t0.01\tadam\t0.75\t0.25\t0.6\t1.25\n"
	  "baseline@b0b1b2b3\tb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\tRUNNING\t2023-11-14T22:13:20."
	  "100Z\t\t\t\t0.1\t\t\t0.8\t\t\n"
	  "c0ffee00c0ffee00c0ffee00c0ffee00\tc0ffee00c0ffee00c0ffee00c0ffee00\tRUNNING\t2023-11-"
	  "14T22:13:20.200Z\t\t\t\t\t\t\t\t\t\n" },
	{ "cat a tag", READ, RUN "/tags/owner", NULL, 0, 3, "get_experiment find_run get_snapshot",
	  "alice\n" },
	{ "cat status", READ, RUN "/status", NULL, 0, 2, "get_experiment find_run", "RUNNING\n" },
	{ "cat an experiment tag", READ, EXP "/.tags/team", NULL, 0, 2, "get_experiment get_kv",
	  "cv\n" },
	{ "cat .experiment.json", READ, EXP "/.experiment.json", NULL, 0, 2,
	  "get_experiment list_kv", EXP_JSON },
	{ "readlink runs/<id>", READLINK, "/runs/" FAKE_RUN_A, NULL, 0, 2,
	  "get_run get_experiment_by_id", "../experiments/vision/baseline" },

	/* writes: open or create, write, flush, release */
	{ "echo 0.5 >> metrics/loss", APPEND, RUN "/metrics/loss", "0.5\n", 0, 8,
	  "get_experiment find_run get_snapshot reserve_steps batch_new log_metrics batch_commit "
	  "batch_free",
	  NULL },
	{ "echo '7 0.5' >> metrics/loss (a step given: none reserved)", APPEND, RUN "/metrics/loss",
	  "7 0.5\n", 0, 7,
	  "get_experiment find_run get_snapshot batch_new log_metrics batch_commit batch_free",
	  NULL },
	{ "echo 0.5 >> metrics/new (a new metric)", APPEND_NEW, RUN "/metrics/new", "0.5\n", 0, 8,
	  "get_experiment find_run get_snapshot reserve_steps batch_new log_metrics batch_commit "
	  "batch_free",
	  NULL },
	{ "echo v > params/p (a new param)", PUT_NEW, RUN "/params/p", "v\n", 0, 8,
	  "get_experiment find_run get_snapshot=2 batch_new log_param batch_commit batch_free",
	  NULL },
	{ "echo 0.01 > params/lr (the same value again)", PUT, RUN "/params/lr", "0.01\n", 0, 8,
	  "get_experiment find_run get_snapshot=2 batch_new log_param batch_commit batch_free",
	  NULL },
	{ "echo v > tags/owner", PUT, RUN "/tags/owner", "v\n", 0, 7,
	  "get_experiment find_run get_snapshot batch_new set_tag batch_commit batch_free", NULL },
	{ "echo v > tags/t (a new tag)", PUT_NEW, RUN "/tags/t", "v\n", 0, 7,
	  "get_experiment find_run get_snapshot batch_new set_tag batch_commit batch_free", NULL },
	{ "echo v >> .tags/team (an experiment tag)", APPEND, EXP "/.tags/team", "v\n", 0, 6,
	  "get_experiment get_kv batch_new set_tag batch_commit batch_free", NULL },
	{ "echo FINISHED > status", PUT, RUN "/status", "FINISHED\n", 0, 6,
	  "get_experiment find_run batch_new set_status batch_commit batch_free", NULL },

	/* names */
	{ "mkdir an experiment", MKDIR, "/experiments/new", NULL, 0, 5,
	  "get_experiment batch_new create_experiment batch_commit batch_free", NULL },
	/* With its provenance: a source type and name (no git where the
	 * tests run, see main). */
	{ "mkdir a run", MKDIR, EXP "/new", NULL, 0, 8,
	  "get_experiment find_run batch_new create_run set_tag=2 batch_commit batch_free", NULL },
	{ "mkdir an existing run", MKDIR, RUN, NULL, -EEXIST, 2, "get_experiment find_run", NULL },
	{ "mkdir a key folder (this mount only)", MKDIR, RUN "/params/group", NULL, 0, 3,
	  "get_experiment find_run get_snapshot", NULL },
	{ "rmdir a run", RMDIR, RUN, NULL, 0, 6,
	  "get_experiment find_run batch_new delete_run batch_commit batch_free", NULL },
	{ "rmdir an experiment with runs", RMDIR, EXP, NULL, -ENOTEMPTY, 4,
	  "get_experiment batch_new delete_experiment batch_free", NULL },
	{ "rename a run", RENAME, RUN, EXP "/renamed", 0, 8,
	  "get_experiment=2 find_run=2 batch_new rename_run batch_commit batch_free", NULL },
	{ "rename an experiment", RENAME, EXP, "/experiments/vision2", 0, 6,
	  "get_experiment=2 batch_new rename_experiment batch_commit batch_free", NULL },
	{ "rename a tag", RENAME, RUN "/tags/owner", RUN "/tags/maintainer", 0, 9,
	  "get_experiment=2 find_run=2 get_snapshot batch_new rename_tag batch_commit batch_free",
	  NULL },
	{ "unlink a tag", UNLINK, RUN "/tags/owner", NULL, 0, 7,
	  "get_experiment find_run get_snapshot batch_new delete_tag batch_commit batch_free",
	  NULL },
	{ "unlink an experiment tag", UNLINK, EXP "/.tags/team", NULL, 0, 6,
	  "get_experiment get_kv batch_new delete_tag batch_commit batch_free", NULL },
};

static void test_costs(void)
{
	size_t i;

	for (i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
		const struct cost_case *c = &costs[i];
		struct buf shows = BUF_INIT;
		struct fake_counts before, d;
		struct fx x;
		int err;

		if (!ok(fx_open(&x) == 0, "%s: a fresh world", c->what))
			continue;
		fake_counts_take(x.f, &before);
		err = act_run(c->act, c->path, c->arg, &shows);
		fake_counts_since(x.f, &before, &d);
		if (!ok(err == c->err, "%s: answers %s", c->what,
			c->err ? log_errno_name(-c->err) : "0"))
			tap_diag("got %d (%s)", err, err ? log_errno_name(-err) : "0");
		is_calls(&d, c->total, c->calls, c->what);
		if (c->shows)
			is_str(buf_str(&shows), c->shows, c->what);
		buf_release(&shows);
		ok(fx_close(&x, c->what) == 0, "%s: no batch left, no contract broken", c->what);
	}
}

/* ---- plots: drawn once for a stat and the read after it ------------------ */

static void test_plot_drawn_once(void)
{
	const char *path = RUN "/history/loss.svg";
	struct fake_counts before, d;
	struct buf text = BUF_INIT;
	struct stat st;
	struct fx x;

	if (!ok(fx_open(&x) == 0, "plot: a fresh world"))
		return;
	fake_counts_take(x.f, &before);
	is_int(getattr(path, &st), 0, "plot: stat");
	is_int(read_file(path, &text), 0, "plot: cat");
	fake_counts_since(x.f, &before, &d);
	/* Measured and drawn at the stat; the open takes that drawing. */
	is_calls(&d, 10,
		 "get_experiment=2 find_run=2 get_snapshot=2 history_stat=2 metric_history=2",
		 "plot: stat then cat draws it once");
	is_int(st.st_size, (long long)text.len, "plot: stat's size is what cat reads");
	ok(text.len > 0 && strstr(buf_str(&text), "<polyline") != NULL, "plot: cat reads an SVG");
	fake_counts_take(x.f, &before);
	is_int(getattr(path, &st), 0, "plot: stat again");
	fake_counts_since(x.f, &before, &d);
	is_calls(&d, 4, "get_experiment find_run get_snapshot history_stat",
		 "plot: a second stat of unchanged points draws nothing");
	buf_release(&text);
	ok(fx_close(&x, "plot") == 0, "plot: no batch left, no contract broken");
}

/* ---- the runs table: made once while the store stays as it was ---------- */

/* Stats .runs.csv; returns how many renderings that took (each is two
 * listings of the experiment's runs) and its size in *size. */
static unsigned long table_stat(struct fx *x, off_t *size)
{
	struct fake_counts before, d;
	struct stat st;

	fake_counts_take(x->f, &before);
	if (getattr(EXP "/.runs.csv", &st))
		return 99;
	fake_counts_since(x->f, &before, &d);
	*size = st.st_size;
	return d.op[FAKE_list_runs] / 2;
}

static void test_table_made_once(void)
{
	struct fake_counts before, d;
	struct buf text = BUF_INIT;
	off_t size, grown;
	struct fx x;

	if (!ok(fx_open(&x) == 0, "table: a fresh world"))
		return;
	fake_counts_take(x.f, &before);
	is_int(table_stat(&x, &size), 1, "table: a stat makes it");
	is_int(read_file(EXP "/.runs.csv", &text), 0, "table: cat");
	is_int(read_file(EXP "/.runs.tsv", &text), 0, "table: cat the TSV");
	fake_counts_since(x.f, &before, &d);
	is_int(d.op[FAKE_list_runs], 2, "table: one walk served the stat and both reads");
	is_int(table_stat(&x, &grown), 0, "table: a stat of an unchanged store makes nothing");
	is_int(write_file(RUN "/params/seed", O_WRONLY | O_CREAT | O_TRUNC, 1, "7\n"), 0,
	       "table: a param written through the mount");
	is_int(table_stat(&x, &grown), 1, "table: this mount's write makes it again");
	/* The header's column, the run's value, an empty field in each of the
	 * two other rows. */
	ok(grown == size + (off_t)strlen(",params.seed") + (off_t)strlen(",7") + 2,
	   "table: with the new column and value");
	fake_store_set_others_version(x.f, 7);
	is_int(table_stat(&x, &size), 1, "table: another client's commit makes it again");
	is_int(table_stat(&x, &size), 0, "table: then it is kept again");
	fake_store_fail(x.f, FAKE_others_version, -EAGAIN);
	is_int(table_stat(&x, &size), 1, "table: a store that cannot tell just now: made again");
	is_int(table_stat(&x, &size), 1, "table: ... and again");
	fake_store_fail(x.f, FAKE_others_version, -ENOSYS);
	is_int(table_stat(&x, &size), 1, "table: a store that never tells (remote): made");
	is_int(table_stat(&x, &size), 0, "table: and kept for the time bound");
	fake_store_fail(x.f, FAKE_others_version, 0);
	buf_release(&text);
	ok(fx_close(&x, "table") == 0, "table: no batch left, no contract broken");
}

/* ---- the shell loop: echo v >> metrics/x, step by step ------------------- */

static void test_append_steps(void)
{
	const char *path = RUN "/metrics/loss";
	struct fuse_file_info fi = { .flags = O_WRONLY | O_APPEND };
	struct fake_counts before, d;
	struct fx x;
	int round, err;

	if (!ok(fx_open(&x) == 0, "append: a fresh world"))
		return;
	for (round = 0; round < 3; round++) {
		fi.fh = 0;
		fake_counts_take(x.f, &before);
		err = fs_operations.open(path, &fi);
		fake_counts_since(x.f, &before, &d);
		is_int(err, 0, "append: open succeeds");
		/* Resolving the key needs the snapshot: that one, no other. */
		is_calls(&d, 3, "get_experiment find_run get_snapshot", "append: open");

		fake_counts_take(x.f, &before);
		is_int(fs_operations.write(path, "0.5\n", 4, 0, &fi), 4,
		       "append: write takes 4 bytes");
		fake_counts_since(x.f, &before, &d);
		/* The line is a point: it needs a step, not the current value. */
		is_calls(&d, 3, "reserve_steps batch_new log_metrics",
			 "append: write reads no value, logs the point");
		ok(x.f->nlogged == 1 && x.f->logged[0].step == 3 + round,
		   "append: the point gets step %d, after the highest", 3 + round);

		fake_counts_take(x.f, &before);
		inval_calls = 0;
		buf_reset(&inval_paths);
		is_int(fs_operations.flush(path, &fi), 0, "append: flush succeeds");
		fake_counts_since(x.f, &before, &d);
		is_calls(&d, 1, "batch_commit", "append: flush commits exactly once");
		is_int(inval_calls, 5, "append: flush invalidates five paths");
		is_str(buf_str(&inval_paths),
		       RUN "\n" RUN "/run.json\n" RUN "/history/loss\n" RUN
			   "/history/loss.svg\n" EXP "/.plots/loss.svg\n",
		       "append: the run, run.json, the history and the plots (its own file the "
		       "kernel redoes)");

		fake_counts_take(x.f, &before);
		is_int(fs_operations.release(path, &fi), 0, "append: release succeeds");
		fake_counts_since(x.f, &before, &d);
		is_calls(&d, 1, "batch_free", "append: release only frees the batch");
	}
	is_int(fake_store_metric_points(x.f, FAKE_RUN_A, "loss"), 6,
	       "append: three rounds, three more points");
	ok(fx_close(&x, "append") == 0, "append: no batch left, no contract broken");
}

/* ---- refusals: one errno, nothing written -------------------------------- */

struct refusal_case {
	const char *what;
	enum act act;
	const char *path;
	const char *arg;
	int err;
	int logged;	      /* in .mlflowfs/errors */
	const char *log_path; /* the path it names there; NULL: path */
};

static const struct refusal_case refusals[] = {
	{ "a different value to a logged param", PUT, RUN "/params/lr", "0.02\n", -EPERM, 1, NULL },
	{ "a param key MLflow refuses", PUT_NEW, RUN "/params/bad*key", "1\n", -EINVAL, 1, NULL },
	{ "a metric key MLflow refuses", APPEND_NEW, RUN "/metrics/x?y", "1\n", -EINVAL, 1, NULL },
	{ "a tag named '.x' (must be written %2Ex)", PUT_NEW, RUN "/tags/.x", "1\n", -EINVAL, 1,
	  NULL },
	{ "a key folder MLflow refuses", MKDIR, RUN "/params/bad*dir", NULL, -EINVAL, 1, NULL },
	{ "a tag renamed to a key MLflow refuses", RENAME, RUN "/tags/owner", RUN "/tags/bad*",
	  -EINVAL, 1, RUN "/tags/bad*" },
	{ "a metric line that is not one", APPEND, RUN "/metrics/loss", "abc\n", -EINVAL, 1, NULL },
	{ "a status that is not one", PUT, RUN "/status", "DONE\n", -EINVAL, 1, NULL },
	{ "a write to run_id", PUT, RUN "/run_id", "x\n", -EACCES, 1, NULL },
	{ "a write to a history", APPEND, RUN "/history/loss", "1\n", -EACCES, 1, NULL },
	{ "a write to a history plot", PUT, RUN "/history/loss.svg", "x\n", -EACCES, 1, NULL },
	{ "a write to an experiment plot", PUT, EXP "/.plots/loss.svg", "x\n", -EACCES, 1, NULL },
	{ "a new file in .plots/", PUT_NEW, EXP "/.plots/new.svg", "x\n", -EACCES, 1, NULL },
	{ "mkdir in .plots/", MKDIR, EXP "/.plots/new", NULL, -EACCES, 1, NULL },
	{ "unlink an experiment plot", UNLINK, EXP "/.plots/loss.svg", NULL, -EPERM, 1, NULL },
	{ "unlink a param", UNLINK, RUN "/params/lr", NULL, -EPERM, 1, NULL },
	{ "rename a metric", RENAME, RUN "/metrics/loss", RUN "/metrics/loss2", -EPERM, 1, NULL },
	{ "move a run to another experiment", RENAME, RUN, "/experiments/nlp/baseline", -EPERM, 1,
	  NULL },
	{ "rmdir params/", RMDIR, RUN "/params", NULL, -EPERM, 1, NULL },
	{ "a file in an experiment", PUT_NEW, EXP "/notes", "x\n", -EPERM, 1, NULL },
	{ "mkdir under models/", MKDIR, "/models/new", NULL, -EROFS, 1, NULL },
	{ "mkdir an existing run", MKDIR, RUN, NULL, -EEXIST, 0, NULL },
	{ "mkdir an existing experiment", MKDIR, EXP, NULL, -EEXIST, 0, NULL },
};

static void test_refusals(void)
{
	size_t i;

	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal_case *c = &refusals[i];
		struct buf shows = BUF_INIT;
		struct fake_counts before, d;
		char *log_before;
		struct fx x;
		int err;

		if (!ok(fx_open(&x) == 0, "%s: a fresh world", c->what))
			continue;
		log_before = errors_now();
		fake_counts_take(x.f, &before);
		err = act_run(c->act, c->path, c->arg, &shows);
		fake_counts_since(x.f, &before, &d);
		if (!ok(err == c->err, "%s: %s", c->what, log_errno_name(-c->err)))
			tap_diag("got %d (%s)", err, err ? log_errno_name(-err) : "0");
		if (!ok(write_calls(&d) == 0, "%s: nothing written", c->what)) {
			struct buf got = BUF_INIT;

			fake_counts_format(&d, &got);
			tap_diag("calls: %s", buf_str(&got));
			buf_release(&got);
		}
		if (c->logged)
			ok(logged_since(log_before, c->log_path ? c->log_path : c->path, -c->err),
			   "%s: the refusal is logged", c->what);
		free(log_before);
		buf_release(&shows);
		ok(fx_close(&x, c->what) == 0, "%s: no batch left, no contract broken", c->what);
	}
}

/* A value over MLflow's limit: EFBIG at write(), nothing logged at close. */
static void test_value_limit(void)
{
	const char *path = RUN "/tags/long";
	struct fuse_file_info fi = { .flags = O_WRONLY | O_CREAT | O_TRUNC };
	size_t len = STORE_TAG_VALUE_MAX + 1;
	char *value = malloc(len + 1);
	struct fake_counts before, d;
	struct fx x;

	if (!value || !ok(fx_open(&x) == 0, "limit: a fresh world")) {
		free(value);
		return;
	}
	memset(value, 'v', len);
	value[len] = '\0';
	fake_counts_take(x.f, &before);
	is_int(fs_operations.create(path, 0644, &fi), 0, "limit: a new tag is made");
	is_int(fs_operations.write(path, value, len, 0, &fi), -EFBIG,
	       "limit: a tag of 8001 characters is refused at write(), EFBIG");
	is_int(fs_operations.flush(path, &fi), -EFBIG, "limit: and its close fails the same");
	fs_operations.release(path, &fi);
	fake_counts_since(x.f, &before, &d);
	is_int(write_calls(&d), 0, "limit: nothing written");
	ok(fx_close(&x, "limit") == 0, "limit: no batch left, no contract broken");
	free(value);
}

/* ---- names removed, moved or made while open ----------------------------- */

static void test_open_names(void)
{
	struct fuse_file_info fi = { .flags = O_WRONLY | O_CREAT | O_TRUNC };
	struct fuse_file_info st_fi = { .flags = O_WRONLY };
	struct buf names = BUF_INIT;
	struct fake_counts before, d;
	struct stat st;
	char *v, *errs;
	struct fx x;

	if (!ok(fx_open(&x) == 0, "open names: a fresh world"))
		return;
	fake_counts_take(x.f, &before);
	is_int(fs_operations.create(RUN "/tags/t", 0644, &fi), 0, "a write past the end: made");
	is_int(fs_operations.write(RUN "/tags/t", "x", 1, (off_t)1 << 40, &fi), -EFBIG,
	       "a write at 1 TiB is refused at once with EFBIG, nothing allocated");
	fs_operations.release(RUN "/tags/t", &fi);
	is_int(fs_operations.open(RUN "/status", &st_fi), 0, "the status file opens for writing");
	is_int(fs_operations.write(RUN "/status", "FINISHED", 8, 4096, &st_fi), -EINVAL,
	       "a status written far past its start is refused, EINVAL");
	fs_operations.release(RUN "/status", &st_fi);
	fake_counts_since(x.f, &before, &d);
	is_int(write_calls(&d), 0, "nothing written by the refused writes");

	/* A tag removed while a descriptor of it is open. */
	fi = (struct fuse_file_info){ .flags = O_WRONLY | O_TRUNC };
	is_int(fs_operations.open(RUN "/tags/owner", &fi), 0, "an existing tag opens for writing");
	is_int(fs_operations.write(RUN "/tags/owner", "carol", 5, 0, &fi), 5, "and is written");
	is_int(fs_operations.unlink(RUN "/tags/owner"), 0, "then removed while open");
	is_int(fs_operations.getattr(NULL, &st, &fi), 0, "fstat() of the open descriptor answers");
	is_int(st.st_nlink, 0, "with no links left");
	is_int(fs_operations.flush(RUN "/tags/owner", &fi), 0, "its close succeeds");
	fs_operations.release(RUN "/tags/owner", &fi);
	v = fake_store_run_tag(x.f, FAKE_RUN_A, "owner");
	ok(!v, "the close does not bring the removed tag back (got '%s')", v ? v : "");
	free(v);

	/* A tag created and removed before anything was written. */
	fi = (struct fuse_file_info){ .flags = O_WRONLY | O_CREAT | O_TRUNC };
	is_int(fs_operations.create(RUN "/tags/fresh", 0644, &fi), 0, "a new tag is made");
	is_int(fs_operations.rmdir(RUN "/tags/fresh"), -ENOTDIR, "rmdir of it: ENOTDIR");
	is_int(fs_operations.unlink(RUN "/tags/fresh"), 0, "it is removed while still open");
	is_int(list_dir(RUN "/tags", &names), 0, "the tags list");
	ok(!strstr(buf_str(&names), "fresh"), "without the removed one: %s", buf_str(&names));
	is_int(getattr(RUN "/tags/fresh", &st), -ENOENT, "its name is gone");
	fs_operations.release(RUN "/tags/fresh", &fi);
	v = fake_store_run_tag(x.f, FAKE_RUN_A, "fresh");
	ok(!v, "and nothing was stored");
	free(v);

	/* Folders of keys. */
	is_int(fs_operations.mkdir(RUN "/tags/a", 0755), 0, "mkdir tags/a");
	is_int(fs_operations.mkdir(RUN "/tags/a/b", 0755), 0, "mkdir tags/a/b");
	is_int(fs_operations.rmdir(RUN "/tags/a"), -ENOTEMPTY,
	       "rmdir tags/a while a folder made in it is there: ENOTEMPTY");
	is_int(fs_operations.rmdir(RUN "/tags/a/b"), 0, "rmdir tags/a/b");
	is_int(fs_operations.rmdir(RUN "/tags/a"), 0, "then rmdir tags/a");
	fake_counts_take(x.f, &before);
	errs = errors_now();
	is_int(fs_operations.rename(RUN "/tags/team", RUN "/tags/group", 0), -EXDEV,
	       "mv of a folder of tags: EXDEV, so that mv moves it key by key");
	ok(logged_since(errs, RUN "/tags/team", EXDEV), "and the refusal is logged");
	free(errs);
	fake_counts_since(x.f, &before, &d);
	is_int(write_calls(&d), 0, "nothing written by it");
	v = fake_store_run_tag(x.f, FAKE_RUN_A, "team/lead");
	ok(v && !strcmp(v, "bob"), "team/lead is still there");
	free(v);
	buf_release(&names);
	ok(fx_close(&x, "open names") == 0, "open names: no batch left, no contract broken");
}

/* ---- a failed store call: its errno passes up, and is logged ----------- */

struct failure_case {
	const char *what;
	enum fake_op op; /* fails with err */
	enum act act;
	const char *path;
	const char *arg;
	int err;
};

static const struct failure_case failures[] = {
	{ "create_experiment fails", FAKE_create_experiment, MKDIR, "/experiments/new", NULL,
	  -EACCES },
	{ "create_run fails", FAKE_create_run, MKDIR, EXP "/new", NULL, -EIO },
	{ "delete_run fails", FAKE_delete_run, RMDIR, RUN, NULL, -EIO },
	{ "rename_run fails", FAKE_rename_run, RENAME, RUN, EXP "/renamed", -EIO },
	{ "rename_experiment fails", FAKE_rename_experiment, RENAME, EXP, "/experiments/v2",
	  -ENOSPC },
	{ "log_param fails", FAKE_log_param, PUT_NEW, RUN "/params/p", "v\n", -EIO },
	{ "set_tag fails", FAKE_set_tag, PUT, RUN "/tags/owner", "v\n", -EIO },
	{ "set_tag of an experiment fails", FAKE_set_tag, PUT, EXP "/.tags/team", "v\n", -EIO },
	{ "set_status fails", FAKE_set_status, PUT, RUN "/status", "FAILED\n", -EIO },
	{ "delete_tag fails", FAKE_delete_tag, UNLINK, RUN "/tags/owner", NULL, -EIO },
	{ "rename_tag fails", FAKE_rename_tag, RENAME, RUN "/tags/owner", RUN "/tags/o2", -EIO },
	{ "reserve_steps fails", FAKE_reserve_steps, APPEND, RUN "/metrics/loss", "1\n", -EIO },
	{ "log_metrics fails", FAKE_log_metrics, APPEND, RUN "/metrics/loss", "1\n", -EIO },
	{ "batch_commit fails", FAKE_batch_commit, APPEND, RUN "/metrics/loss", "1\n", -EIO },
	{ "the param check's snapshot fails", FAKE_get_snapshot, PUT, RUN "/params/lr", "0.01\n",
	  -EIO },
};

/* The second case of the snapshot: it fails at write(), not at open. */
static int snapshot_after_open(const struct failure_case *c, struct fake_store *f)
{
	struct fuse_file_info fi = { .flags = O_WRONLY | O_TRUNC };
	size_t len = strlen(c->arg);
	int err = fs_operations.open(c->path, &fi), w;

	if (err)
		return err;
	fake_store_fail(f, c->op, c->err);
	w = fs_operations.write(c->path, c->arg, len, 0, &fi);
	err = w < 0 ? w : 0;
	fake_store_fail(f, c->op, 0);
	fs_operations.flush(c->path, &fi);
	fs_operations.release(c->path, &fi);
	return err;
}

static void test_failures(void)
{
	size_t i;

	for (i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		const struct failure_case *c = &failures[i];
		struct buf shows = BUF_INIT;
		char *log_before;
		struct fx x;
		int err;

		if (!ok(fx_open(&x) == 0, "%s: a fresh world", c->what))
			continue;
		log_before = errors_now();
		if (c->op == FAKE_get_snapshot) {
			err = snapshot_after_open(c, x.f);
		} else {
			fake_store_fail(x.f, c->op, c->err);
			err = act_run(c->act, c->path, c->arg, &shows);
			fake_store_fail(x.f, c->op, 0);
		}
		if (!ok(err == c->err, "%s: the handler answers %s", c->what,
			log_errno_name(-c->err)))
			tap_diag("got %d (%s)", err, err ? log_errno_name(-err) : "0");
		ok(logged_since(log_before, c->path, -c->err), "%s: the failure is logged",
		   c->what);
		free(log_before);
		buf_release(&shows);
		ok(fx_close(&x, c->what) == 0, "%s: no batch left, no contract broken", c->what);
	}
}

/* A store read that fails: the errno passes up; is it logged? */
struct read_failure_case {
	const char *what;
	enum fake_op op;
	enum act act;
	const char *path;
};

static const struct read_failure_case read_failures[] = {
	{ "getattr, get_experiment fails", FAKE_get_experiment, GETATTR, RUN },
	{ "getattr, get_snapshot fails", FAKE_get_snapshot, GETATTR, RUN "/params/lr" },
	{ "readdir, list_runs fails", FAKE_list_runs, READDIR, EXP },
	{ "cat, metric_history fails", FAKE_metric_history, READ, RUN "/history/loss" },
};

static void test_read_failures(void)
{
	size_t i;

	for (i = 0; i < sizeof(read_failures) / sizeof(read_failures[0]); i++) {
		const struct read_failure_case *c = &read_failures[i];
		struct buf shows = BUF_INIT;
		char *log_before;
		struct fx x;
		int err;

		if (!ok(fx_open(&x) == 0, "%s: a fresh world", c->what))
			continue;
		log_before = errors_now();
		fake_store_fail(x.f, c->op, -EIO);
		err = act_run(c->act, c->path, NULL, &shows);
		fake_store_fail(x.f, c->op, 0);
		is_int(err, -EIO, c->what);
		ok(logged_since(log_before, c->path, EIO), "%s: the failure is logged", c->what);
		free(log_before);
		buf_release(&shows);
		ok(fx_close(&x, c->what) == 0, "%s: no batch left, no contract broken", c->what);
	}
}

/*
 * A close that failed stays failed: the release after it must not try the
 * write again (and succeed behind the caller's back, who saw EIO and may
 * write the line again: a point logged twice).
 */
struct retry_case {
	const char *what;
	enum fake_op op; /* fails at flush only */
	int flags, create;
	const char *path, *data;
};

static const struct retry_case retries[] = {
	{ "a param", FAKE_log_param, O_WRONLY | O_CREAT | O_TRUNC, 1, RUN "/params/p", "v\n" },
	{ "a tag", FAKE_set_tag, O_WRONLY | O_TRUNC, 0, RUN "/tags/owner", "v\n" },
	{ "a metric's unfinished line", FAKE_log_metrics, O_WRONLY | O_APPEND, 0,
	  RUN "/metrics/loss", "0.7" },
};

static void test_no_retry_at_release(void)
{
	size_t i;

	for (i = 0; i < sizeof(retries) / sizeof(retries[0]); i++) {
		const struct retry_case *c = &retries[i];
		struct fuse_file_info fi = { .flags = c->flags };
		size_t len = strlen(c->data);
		struct fake_counts before, d;
		struct fx x;
		int err;

		if (!ok(fx_open(&x) == 0, "retry, %s: a fresh world", c->what))
			continue;
		err = c->create ? fs_operations.create(c->path, 0644, &fi)
				: fs_operations.open(c->path, &fi);
		is_int(err, 0, "retry: open");
		is_int(fs_operations.write(c->path, c->data, len, 0, &fi), (long long)len,
		       "retry: write");
		fake_store_fail(x.f, c->op, -EIO);
		is_int(fs_operations.flush(c->path, &fi), -EIO, "retry: close fails with EIO");
		fake_store_fail(x.f, c->op, 0);
		fake_counts_take(x.f, &before);
		fs_operations.release(c->path, &fi);
		fake_counts_since(x.f, &before, &d);
		ok(d.op[c->op] == 0, "retry, %s: release does not write again after a failed close",
		   c->what);
		ok(fx_close(&x, c->what) == 0, "retry, %s: no batch left, no contract broken",
		   c->what);
	}
}

/* ---- a failed commit fails its own descriptor's close only ----------------- */

static void test_commit_isolation(void)
{
	const char *a = RUN "/metrics/loss", *b = RUN "/metrics/acc";
	struct fuse_file_info fa = { .flags = O_WRONLY | O_APPEND },
			      fb = { .flags = O_WRONLY | O_APPEND };
	char *log_before;
	struct fx x;

	if (!ok(fx_open(&x) == 0, "commit: a fresh world"))
		return;
	is_int(fs_operations.open(a, &fa), 0, "commit: open metrics/loss");
	is_int(fs_operations.open(b, &fb), 0, "commit: open metrics/acc");
	is_int(fs_operations.write(a, "1\n", 2, 0, &fa), 2, "commit: a line to loss");
	/* loss's descriptor made the batch just now: its commits fail. */
	x.f->fail_batch = fake_store_batches_made(x.f);
	is_int(fs_operations.write(b, "2\n", 2, 0, &fb), 2, "commit: a line to acc");
	ok(fake_store_batches_made(x.f) == x.f->fail_batch + 1,
	   "commit: each descriptor has a batch of its own");
	log_before = errors_now();
	is_int(fs_operations.flush(a, &fa), -EIO, "commit: close of loss fails with EIO");
	ok(logged_since(log_before, a, EIO), "commit: and the failure is logged");
	is_int(fs_operations.flush(b, &fb), 0, "commit: close of acc succeeds");
	is_int(fs_operations.release(a, &fa), 0, "commit: release loss");
	is_int(fs_operations.release(b, &fb), 0, "commit: release acc");
	free(log_before);
	ok(fx_close(&x, "commit") == 0, "commit: no batch left, no contract broken");
}

/* ---- steps for lines without one --------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_steps(void)
{
	static const char lines[] = "1.5\n2.5\n7 3.5\n4.5\n9 5.5 1600000000000\n";
	static const int64_t steps[] = { 3, 4, 7, 8, 9 };
	static const double values[] = { 1.5, 2.5, 3.5, 4.5, 5.5 };
	const char *path = RUN "/metrics/loss";
	struct fuse_file_info fi = { .flags = O_WRONLY | O_APPEND };
	struct fake_counts before, d;
	int64_t t0, t1;
	struct fx x;
	size_t i;
	int good = 1, err;

	if (!ok(fx_open(&x) == 0, "steps: a fresh world"))
		return;
	is_int(fs_operations.open(path, &fi), 0, "steps: open metrics/loss");
	fake_counts_take(x.f, &before);
	t0 = wall_ms();
	is_int(fs_operations.write(path, lines, sizeof(lines) - 1, 0, &fi),
	       (long long)sizeof(lines) - 1, "steps: five lines in one write");
	t1 = wall_ms();
	fake_counts_since(x.f, &before, &d);
	/* Two runs of lines without a step: two reservations, one log call. */
	is_calls(&d, 4, "reserve_steps=2 batch_new log_metrics",
		 "steps: each run of stepless lines reserves once");
	is_int(x.f->reserve_floor, 8, "steps: the second reservation starts above step 7");
	is_int(x.f->reserve_n, 1, "steps: and is for one step");
	is_str(x.f->logged_key, "loss", "steps: log_metrics gets the key");
	is_int(x.f->nlogged, 5, "steps: and every point of the write at once");
	for (i = 0; i < x.f->nlogged && i < 5; i++) {
		const struct metric_point *p = &x.f->logged[i];
		int64_t want_ts = i == 4 ? INT64_C(1600000000000) : -1;

		if (!p->has_step || !p->has_timestamp || p->step != steps[i] ||
		    p->value != values[i] ||
		    (want_ts >= 0 ? p->timestamp != want_ts
				  : p->timestamp < t0 || p->timestamp > t1)) {
			tap_diag("point %zu: step %" PRId64 " (has %d) value %g ts %" PRId64
				 " (has %d)",
				 i, p->step, p->has_step, p->value, p->timestamp, p->has_timestamp);
			good = 0;
		}
	}
	ok(good && x.f->nlogged == 5,
	   "steps: 3 4 (reserved) 7 (given) 8 (reserved above 7) 9 (given), each with a time");

	/* A partial line waits for close. */
	fake_counts_take(x.f, &before);
	is_int(fs_operations.write(path, "6.5", 3, 0, &fi), 3, "steps: a line without its end");
	fake_counts_since(x.f, &before, &d);
	is_int(d.total, 0, "steps: waits, no store call");
	fake_counts_take(x.f, &before);
	err = fs_operations.flush(path, &fi);
	fake_counts_since(x.f, &before, &d);
	is_int(err, 0, "steps: close logs the partial line");
	is_calls(&d, 3, "reserve_steps log_metrics batch_commit",
		 "steps: the partial line at close, then one commit");
	ok(x.f->nlogged == 1 && x.f->logged[0].step == 10,
	   "steps: the partial line gets the step after 9");
	fs_operations.release(path, &fi);

	/* More lines in one write than the points kept on the stack. */
	{
		char many[40 * 12];
		size_t len = 0;

		for (i = 0; i < 40; i++)
			len += (size_t)snprintf(many + len, sizeof(many) - len, "%zu %zu.5\n",
						100 + i, i);
		fi.fh = 0;
		is_int(fs_operations.open(path, &fi), 0, "steps: open again");
		is_int(fs_operations.write(path, many, len, 0, &fi), (long long)len,
		       "steps: forty lines in one write");
		good = x.f->nlogged == 40;
		for (i = 0; good && i < 40; i++)
			good = x.f->logged[i].step == (int64_t)(100 + i) &&
			       x.f->logged[i].value == (double)i + 0.5;
		ok(good, "steps: all forty logged at once, in order");
		fs_operations.release(path, &fi);
	}

	/* The first point of a new metric is step 0. */
	fi.flags = O_WRONLY | O_APPEND | O_CREAT;
	fi.fh = 0;
	is_int(write_file(RUN "/metrics/fresh", fi.flags, 1, "0.1\n"), 0, "steps: a new metric");
	ok(x.f->nlogged == 1 && x.f->logged[0].step == 0, "steps: its first point is step 0");
	ok(fx_close(&x, "steps") == 0, "steps: no batch left, no contract broken");
}

/* ---- effects: what the writes did to the world ------------------------------ */

static void is_owned(char *got, const char *want, const char *name)
{
	is_str(got, want, name);
	free(got);
}

static void test_effects(void)
{
	struct fx x;
	char *id;

	if (!ok(fx_open(&x) == 0, "effects: a fresh world"))
		return;
	is_int(act_run(PUT_NEW, RUN "/params/p", "v\n", NULL), 0, "effects: echo v > params/p");
	is_owned(fake_store_param(x.f, FAKE_RUN_A, "p"), "v", "effects: param p is 'v'");
	is_int(act_run(PUT, RUN "/tags/owner", "carol\r\n", NULL), 0,
	       "effects: a tag with a Windows line end");
	is_owned(fake_store_run_tag(x.f, FAKE_RUN_A, "owner"), "carol",
		 "effects: the tag is 'carol'");
	is_int(act_run(APPEND, EXP "/.tags/team", "vision\n", NULL), 0,
	       "effects: echo >> an experiment tag");
	is_owned(fake_store_exp_tag(x.f, "1", "team"), "cv\nvision",
		 "effects: >> appends to the tag's value");
	is_int(act_run(PUT, RUN "/status", "finished\n", NULL), 0,
	       "effects: echo finished > status");
	is_owned(fake_store_run_status(x.f, FAKE_RUN_A), "FINISHED",
		 "effects: the status is FINISHED");
	is_int(act_run(RENAME, RUN "/tags/owner", RUN "/tags/maintainer", NULL), 0,
	       "effects: rename a tag");
	is_owned(fake_store_run_tag(x.f, FAKE_RUN_A, "maintainer"), "carol",
		 "effects: the tag moved");
	ok(!fake_store_run_tag(x.f, FAKE_RUN_A, "owner"), "effects: the old key is gone");
	is_int(act_run(RENAME, RUN, EXP "/renamed", NULL), 0, "effects: rename a run");
	is_owned(fake_store_run_name(x.f, FAKE_RUN_A), "renamed", "effects: the run's new name");
	is_int(act_run(GETATTR, RUN_B, NULL, NULL), -ENOENT,
	       "effects: the other 'baseline' is no longer baseline@b0b1b2b3");
	is_int(act_run(GETATTR, EXP "/baseline", NULL, NULL), 0,
	       "effects: it is plain 'baseline' now");
	is_int(act_run(MKDIR, "/experiments/new", NULL, NULL), 0, "effects: mkdir an experiment");
	id = fake_store_experiment_id(x.f, "new");
	ok(id != NULL, "effects: experiment 'new' exists");
	free(id);
	is_int(act_run(MKDIR, "/experiments/new/r1", NULL, NULL), 0, "effects: mkdir a run in it");
	id = fake_store_experiment_id(x.f, "new");
	if (id) {
		char *run = fake_store_run_named(x.f, id, "r1");

		ok(run != NULL, "effects: run 'r1' exists");
		if (run) {
			is_int(act_run(RMDIR, "/experiments/new/r1", NULL, NULL), 0,
			       "effects: rmdir the run");
			ok(fake_store_run_deleted(x.f, run), "effects: the run is deleted");
		}
		free(run);
	}
	free(id);
	is_int(act_run(RMDIR, "/experiments/new", NULL, NULL), 0,
	       "effects: rmdir the empty experiment");
	id = fake_store_experiment_id(x.f, "new");
	ok(id == NULL, "effects: it is gone");
	free(id);
	ok(fx_close(&x, "effects") == 0, "effects: no batch left, no contract broken");
}

int main(void)
{
	/* Refusals are logged to stderr, which the TAP driver keeps apart. */
	log_setup(0, 0);
	/* A run's provenance reads the caller's work tree: this process's,
	 * which must be in no git repository for the counts to hold. */
	if (chdir("/")) {
		perror("chdir /");
		return 1;
	}
	test_context_is_ours();
	test_costs();
	test_plot_drawn_once();
	test_table_made_once();
	test_append_steps();
	test_refusals();
	test_value_limit();
	test_open_names();
	test_failures();
	test_read_failures();
	test_no_retry_at_release();
	test_commit_isolation();
	test_steps();
	test_effects();
	buf_release(&inval_paths);
	return tap_done();
}
