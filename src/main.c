/*
 * main.c - mlflowfs: options, then (unless -f) a fork whose child opens the
 * store, mounts and only then tells the waiting parent it may exit 0; any
 * failure before that is printed by the child and the parent exits 1, so the
 * shell never gets its prompt back over a half-made mount.  Teardown is a
 * labelled ladder in reverse order of set-up.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <malloc.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "art.h"
#include "cache.h"
#include "fs.h"
#include "log.h"
#include "options.h"
#include "run.h"
#include "store.h"

/* The 3.12 loop takes a config; FUSE_USE_VERSION 31 hides its prototype, and
 * the 3.1 wrapper prints a bogus warning about max_threads. */
int fuse_loop_mt_312(struct fuse *f, struct fuse_loop_config *config);

/* Tells the parent how mounting went: one byte, 0 for success. */
static void report(int fd, int ok)
{
	char c = ok ? 0 : 1;

	if (fd >= 0) {
		if (write(fd, &c, 1) < 0)
			log_debug("cannot report to the parent: %s", strerror(errno));
		close(fd);
	}
}

/* Forks; the parent waits for the child's report and exits with it. */
static int daemonize(int *report_fd)
{
	int pfd[2], status;
	ssize_t n;
	pid_t pid;
	char c;

	if (pipe(pfd) < 0) {
		fprintf(stderr, "mlflowfs: cannot create a pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mlflowfs: cannot fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(pfd[1]);
		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1 && c == 0)
			_exit(0);
		waitpid(pid, &status, 0);
		_exit(1);
	}
	close(pfd[0]);
	*report_fd = pfd[1];
	if (setsid() < 0)
		log_debug("setsid: %s", strerror(errno));
	return 0;
}

/* Adds the subtype and fsname options: the store's URI, commas escaped. */
static int add_mount_names(struct fuse_args *args, const char *uri)
{
	char *fsname, *opts = NULL;
	int err;

	if (asprintf(&fsname, "fsname=%s", uri) < 0)
		return -1;
	err = fuse_opt_add_opt_escaped(&opts, fsname);
	if (!err)
		err = fuse_opt_add_opt(&opts, "subtype=mlflowfs");
	if (!err)
		err = fuse_opt_add_arg(args, "-o");
	if (!err)
		err = fuse_opt_add_arg(args, opts);
	free(fsname);
	free(opts);
	return err;
}

/* Once mounted: no terminal, no cwd holding a file system busy. */
static void detach(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (chdir("/") < 0)
		log_debug("chdir: %s", strerror(errno));
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	log_setup(1, 0);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_loop_config *loop_cfg = NULL;
	struct art_registry *art;
	struct mfs_config cfg;
	struct store *store;
	struct fuse *fuse;
	struct fs *fs;
	char *msg = NULL;
	int report_fd = -1, ret = 1, curl = 0;

	/* The wrapper is a client of a mount, not a daemon: none of what follows. */
	if (argc > 1 && !strcmp(argv[1], "run"))
		return run_main(argc, argv);
	log_setup(0, 0);
	/*
	 * Each FUSE thread would get a malloc arena of its own, and the pages
	 * freed in one are not reused by another: two keep the daemon's memory
	 * near what it holds, not what it has seen.
	 */
	mallopt(M_ARENA_MAX, 2);
	if (options_parse(&args, &cfg, &msg)) {
		fprintf(stderr, "mlflowfs: %s\nTry 'mlflowfs --help'.\n",
			msg ? msg : "bad options");
		goto out_args;
	}
	if (cfg.show_help) {
		options_usage(stdout, "mlflowfs");
		printf("\nFUSE options:\n");
		fflush(stdout);
		fuse_lib_help(&args);
		ret = 0;
		goto out_opts;
	}
	if (cfg.show_version) {
		printf("mlflowfs %s (libfuse %s, SQLite %s)\n", PACKAGE_VERSION, fuse_pkgversion(),
		       sqlite3_libversion());
		ret = 0;
		goto out_opts;
	}
	if (options_resolve(&cfg, &msg)) {
		fprintf(stderr, "mlflowfs: %s\n", msg ? msg : "bad options");
		goto out_opts;
	}
	log_setup(0, cfg.debug);
	/*
	 * libcurl's global state, made once before any thread, and only for
	 * the remote store: it starts libcurl's TLS libraries, some 2 MB of
	 * the daemon's memory that a local store would never use.
	 */
	if (strncmp(cfg.tracking_uri, "sqlite:", 7)) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
			fprintf(stderr, "mlflowfs: cannot initialise libcurl\n");
			goto out_opts;
		}
		curl = 1;
	}
	/*
	 * Other users are checked as a bind mount checks them: by the kernel,
	 * against the owner and mode each getattr shows.  Without it a daemon
	 * running as root would serve every caller with root's rights.
	 */
	if (cfg.allow_other && fuse_opt_add_arg(&args, "-odefault_permissions")) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_opts;
	}
	/* mount(8) shows "sqlite:///... on MNT type fuse.mlflowfs". */
	if (add_mount_names(&args, cfg.display_uri)) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_opts;
	}
	if (!cfg.foreground && daemonize(&report_fd))
		goto out_opts;

	store = store_open(&cfg, &msg);
	if (!store) {
		fprintf(stderr, "mlflowfs: %s\n", msg ? msg : "cannot open the store");
		goto out_report;
	}
	/* The stack: the cache in front of the backend (it closes it too). */
	store = cache_wrap(store, &cfg);
	if (!store) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_report;
	}
	/* A store that cannot be written makes the mount read-only: the kernel
	 * then answers EROFS to every change. */
	if (store_read_only(store) && !cfg.read_only && fuse_opt_add_arg(&args, "-oro")) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_store;
	}
	/*
	 * The kernel has applied the caller's umask to every mode it passes
	 * on; ours must not apply again to artifacts made for the caller.
	 */
	cfg.umask = umask(0);
	/* Artifacts are reached by their URI's scheme, whatever the store. */
	art = art_registry_new(store_artifact_root(store), &cfg);
	if (!art) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_store;
	}
	fs = fs_new(store, art, &cfg);
	if (!fs) {
		fprintf(stderr, "mlflowfs: out of memory\n");
		goto out_art;
	}
	fuse = fuse_new(&args, &fs_operations, sizeof(fs_operations), fs);
	if (!fuse)
		goto out_fs; /* fuse_new printed why */
	if (fuse_mount(fuse, cfg.mountpoint)) {
		fprintf(stderr, "mlflowfs: cannot mount on '%s'\n", cfg.mountpoint);
		goto out_fuse;
	}
	if (fuse_set_signal_handlers(fuse_get_session(fuse))) {
		fprintf(stderr, "mlflowfs: cannot set signal handlers\n");
		goto out_unmount;
	}
	if (cfg.foreground)
		log_info("mounted '%s' on '%s'%s", cfg.display_uri, cfg.mountpoint,
			 store_read_only(store) ? " read-only" : "");
	if (!cfg.foreground) {
		report(report_fd, 1);
		report_fd = -1;
		detach();
	}

	if (cfg.single_thread) {
		ret = fuse_loop(fuse) ? 1 : 0;
	} else {
		loop_cfg = fuse_loop_cfg_create();
		if (!loop_cfg) {
			log_error("out of memory");
			goto out_signals;
		}
		fuse_loop_cfg_set_clone_fd(loop_cfg, 0);
		/*
		 * Workers stay once made: with few allowed idle, a burst of
		 * requests (grep over 10,000 runs) made and ended threads all
		 * the time, a clone and a stack each.
		 */
		fuse_loop_cfg_set_max_threads(loop_cfg, 16);
		fuse_loop_cfg_set_idle_threads(loop_cfg, 16);
		ret = fuse_loop_mt_312(fuse, loop_cfg) ? 1 : 0;
		fuse_loop_cfg_destroy(loop_cfg);
	}
	log_info("unmounting '%s'", cfg.mountpoint);
	/* No kernel notifications once the loop is gone (they could hang). */
	fs_stop(fs);

out_signals:
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_fuse:
	fuse_destroy(fuse);
out_fs:
	fs_free(fs);
out_art:
	art_registry_free(art);
out_store:
	/* Commits what is still open: an unmount loses nothing acknowledged. */
	store_close(store);
out_report:
	report(report_fd, 0);
out_opts:
	options_release(&cfg);
out_args:
	free(msg);
	fuse_opt_free_args(&args);
	if (curl)
		curl_global_cleanup();
	return ret;
}
