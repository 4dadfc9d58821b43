/*
 * run.c - `mlflowfs run`: wraps a program as a new MLflow run.  Everything
 * goes through a mounted mlflowfs tree with ordinary file operations (mkdir
 * the run, write params/, tags/, metrics/, status, artifacts/stdout.log),
 * so there is one code path to the store: an existing mount of the store
 * when the user has one, else a private mount on a temporary folder, made by
 * the same binary as a child and unmounted at the end.  The process is
 * single-threaded; signal handlers only forward and record.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "metric.h"
#include "options.h"
#include "path.h"
#include "provenance.h"
#include "run.h"

/* A line longer than this is passed on and kept, never a scalar. */
#define LINE_MAX_LEN 4096
/* Metric files kept open at once; more keys are opened per line. */
#define OPEN_METRICS_MAX 256
/* Metric keys remembered; a program that prints ever new keys must not
 * grow the wrapper, so later ones are opened per line, unremembered. */
#define METRIC_KEYS_MAX 1024
/* Refusals of unremembered keys said on stderr, at most. */
#define TRANSIENT_WARN_MAX 10
/* How long a private mount may take to appear, in milliseconds. */
#define MOUNT_WAIT_MS 30000

/* ---- pure parts ------------------------------------------------------- */

static int flag_set(struct run_flag **flags, size_t *n, const char *key, size_t key_len,
		    const char *value)
{
	struct run_flag *more;
	char *k = strndup(key, key_len), *v = strdup(value);
	size_t i;

	if (!k || !v)
		goto nomem;
	for (i = 0; i < *n; i++) {
		if (!strcmp((*flags)[i].key, k)) {
			free(k);
			free((*flags)[i].value);
			(*flags)[i].value = v;
			return 0;
		}
	}
	more = realloc(*flags, (*n + 1) * sizeof(**flags));
	if (!more)
		goto nomem;
	*flags = more;
	more[*n].key = k;
	more[*n].value = v;
	(*n)++;
	return 0;
nomem:
	free(k);
	free(v);
	return -ENOMEM;
}

int run_flags_parse(int argc, char *const argv[], struct run_flag **out, size_t *n)
{
	int i, err = 0;

	*out = NULL;
	*n = 0;
	for (i = 1; i < argc && !err; i++) {
		const char *a = argv[i], *eq;

		if (!strcmp(a, "--"))
			break;
		if (strncmp(a, "--", 2) || !a[2])
			continue;
		a += 2;
		eq = strchr(a, '=');
		if (eq)
			err = eq > a ? flag_set(out, n, a, (size_t)(eq - a), eq + 1) : 0;
		else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
			err = flag_set(out, n, a, strlen(a), argv[++i]);
		else
			err = flag_set(out, n, a, strlen(a), "true");
	}
	if (err) {
		run_flags_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return err;
}

void run_flags_free(struct run_flag *flags, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(flags[i].key);
		free(flags[i].value);
	}
	free(flags);
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of the number at s (up to end), by Guild's number rule, or 0. */
static size_t number_len(const char *s, const char *end)
{
	const char *p = s;
	size_t digits = 0;

	if (p < end && (*p == '+' || *p == '-'))
		p++;
	if (end - p >= 3 && !strncasecmp(p, "inf", 3))
		return (size_t)(p + 3 - s);
	/* nan takes no sign */
	if (p == s && end - p >= 3 && !strncasecmp(p, "nan", 3))
		return 3;
	for (; p < end && is_digit(*p); p++)
		digits++;
	if (p < end && *p == '.')
		for (p++; p < end && is_digit(*p); p++)
			digits++;
	if (!digits)
		return 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *q = p + 1;

		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && is_digit(*q)) {
			while (q < end && is_digit(*q))
				q++;
			p = q;
		}
	}
	return (size_t)(p - s);
}

/* The number of len bytes at s as a double (it matched number_len). */
static int number_value(const char *s, size_t len, double *v)
{
	char tmp[64];

	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	*v = strtod(tmp, NULL);
	return 0;
}

/* "(step N)" or "(N)" exactly, from s to end: N into *step. */
static int step_suffix(const char *s, const char *end, int64_t *step)
{
	const char *p = s + 1;
	char *stop;
	char tmp[32];
	size_t n;

	if (end - s < 3 || *s != '(' || end[-1] != ')')
		return 0;
	if (end - p > 4 && !strncmp(p, "step", 4) && is_blank(p[4])) {
		p += 4;
		while (is_blank(*p))
			p++;
	}
	n = (size_t)(end - 1 - p);
	if (!n || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	if (!is_digit(tmp[0]) && !(tmp[0] == '-' && is_digit(tmp[1])))
		return 0;
	errno = 0;
	*step = strtoll(tmp, &stop, 10);
	return !*stop && !errno;
}

int run_scalar_parse(const char *line, size_t len, struct run_scalar *out)
{
	const char *p = line, *end = line + len, *key, *num;
	size_t klen, nlen;

	while (p < end && is_blank(*p))
		p++;
	while (end > p && is_blank(end[-1]))
		end--;
	if (p == end || !(is_letter(*p) || *p == '_'))
		return 0;
	key = p;
	memset(out, 0, sizeof(*out));
	/* "key=number": the whole line */
	for (klen = 0; key + klen < end && !is_blank(key[klen]) && key[klen] != '='; klen++)
		;
	if (key + klen < end && key[klen] == '=') {
		num = key + klen + 1;
		nlen = number_len(num, end);
		if (nlen && num + nlen == end && !number_value(num, nlen, &out->value)) {
			out->key = key;
			out->key_len = klen;
			return 1;
		}
	}
	/* "key: number [(comment)]": the key is what precedes ": " */
	for (klen = 0; key + klen < end && !is_blank(key[klen]); klen++)
		;
	if (klen < 2 || key[klen - 1] != ':' || key + klen == end)
		return 0;
	num = key + klen;
	while (num < end && is_blank(*num))
		num++;
	nlen = number_len(num, end);
	if (!nlen || number_value(num, nlen, &out->value))
		return 0;
	p = num + nlen;
	if (p < end) {
		if (!is_blank(*p))
			return 0;
		while (is_blank(*p))
			p++;
		if (*p != '(' || end[-1] != ')')
			return 0;
		out->has_step = step_suffix(p, end, &out->step);
	}
	out->key = key;
	out->key_len = klen - 1;
	return 1;
}

/* ---- signals ---------------------------------------------------------- */

/*
 * Written by the signal handler, read by the one thread: the program's pid
 * while it runs (0 otherwise) and the last signal that asked us to stop.
 */
static volatile sig_atomic_t program_pid;
static volatile sig_atomic_t stop_signal;
/* Set by the handler when our terminal's size changed; cleared by pump(). */
static volatile sig_atomic_t resized;

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
	(void)uctx;
	stop_signal = sig;
	/*
	 * A key typed at the terminal signals the whole foreground process
	 * group, the program included; only what was sent to the wrapper
	 * alone (kill, a supervisor) is passed on, so the program gets each
	 * signal once.
	 */
	if (program_pid > 0 && info->si_code <= 0)
		kill((pid_t)program_pid, sig);
}

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP };

static void signals_catch(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	/* A reader that went away is noticed by write's EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_winch;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGWINCH, &sa, NULL);
}

/* In a child about to exec: what it inherits should be the defaults. */
static void signals_default(void)
{
	size_t i;

	for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		signal(forwarded[i], SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGWINCH, SIG_DFL);
}

/* ---- small I/O -------------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Up to size-1 bytes of a small file, NUL-terminated; its length or -1. */
static ssize_t read_text(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (got + 1 < size) {
		n = read(fd, out + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	out[got] = '\0';
	return (ssize_t)got;
}

/* Writes value and a newline to path (made if missing) and closes it: 0,
 * or an errno value. */
static int write_value(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666), err = 0;

	if (fd < 0)
		return errno;
	if (write_all(fd, value, strlen(value)) || write_all(fd, "\n", 1))
		err = errno ? errno : EIO;
	if (close(fd) && !err)
		err = errno;
	return err;
}

/* ---- the run's folder ------------------------------------------------- */

struct metric_file {
	char *key;
	int fd; /* -1: refused (warned once), -2: not kept open */
};

struct runner {
	/* chosen store and mount */
	char *uri;	 /* the store asked for (NULL: none named) */
	char *mnt;	 /* the mount used */
	char *store_uri; /* what MLFLOW_TRACKING_URI becomes */
	pid_t daemon;	 /* the private mount's daemon, or 0 */
	int daemon_log;	 /* its stderr, an unlinked file, or -1 */
	/* the run */
	char *exp_name, *exp_id, *run_dir, *run_id;
	struct run_flag *flags;
	size_t nflags;
	struct metric_file *metrics;
	size_t nmetrics;
	struct metric_file transient; /* a key beyond METRIC_KEYS_MAX, for one line */
	int transient_warned;
	int64_t step; /* set by a "step:" line */
	int has_step;
	int log_fd; /* artifacts/stdout.log */
};

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
	va_list ap;

	fputs("mlflowfs run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* dir/SECTION/KEY with each '/'-separated part of key encoded, the
 * folders of a nested key made; a new string, or NULL (errno set: EINVAL
 * for a key with an empty part). */
static char *key_path(const char *dir, const char *section, const char *key)
{
	struct buf b = BUF_INIT;
	const char *p = key;

	if (!key[0] || key[0] == '/' || key[strlen(key) - 1] == '/' || strstr(key, "//")) {
		errno = EINVAL;
		return NULL;
	}
	if (buf_addf(&b, "%s/%s", dir, section))
		goto nomem;
	for (;;) {
		const char *slash = strchr(p, '/');
		char *part = slash ? strndup(p, (size_t)(slash - p)) : strdup(p);
		int err;

		if (!part)
			goto nomem;
		err = buf_addch(&b, '/');
		if (!err)
			err = path_encode(&b, part);
		free(part);
		if (err)
			goto nomem;
		if (!slash)
			break;
		/* the folder of a nested key; one already there is fine */
		if (mkdir(b.data, 0777) && errno != EEXIST) {
			buf_release(&b);
			return NULL;
		}
		p = slash + 1;
	}
	return buf_detach(&b);
nomem:
	buf_release(&b);
	errno = ENOMEM;
	return NULL;
}

/* Sets params/KEY or tags/KEY; a refusal is a warning, not a failure. */
static void set_key(struct runner *r, const char *section, const char *key, const char *value)
{
	char *path = key_path(r->run_dir, section, key);
	int err = path ? write_value(path, value) : errno;

	if (err)
		warn("%s '%s' not logged: %s", strcmp(section, "params") ? "tag" : "param", key,
		     strerror(err));
	free(path);
}

static int is_flag(const struct runner *r, const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < r->nflags; i++)
		if (strlen(r->flags[i].key) == len && !strncmp(r->flags[i].key, key, len))
			return 1;
	return 0;
}

/* The open metrics/<key> of key, made on first use; -1 when refused. */
static int metric_fd(struct runner *r, const char *key, size_t len, struct metric_file **mf)
{
	struct metric_file *more;
	char *path;
	size_t i;
	int fd;

	for (i = 0; i < r->nmetrics; i++) {
		if (strlen(r->metrics[i].key) == len && !strncmp(r->metrics[i].key, key, len)) {
			*mf = &r->metrics[i];
			if (r->metrics[i].fd != -2)
				return r->metrics[i].fd;
			goto open;
		}
	}
	if (r->nmetrics >= METRIC_KEYS_MAX) {
		*mf = &r->transient;
		free(r->transient.key);
	} else {
		more = realloc(r->metrics, (r->nmetrics + 1) * sizeof(*more));
		if (!more)
			return -1;
		r->metrics = more;
		*mf = &more[r->nmetrics];
	}
	(*mf)->key = strndup(key, len);
	(*mf)->fd = -2;
	if (!(*mf)->key)
		return -1;
	if (*mf != &r->transient)
		r->nmetrics++;
open:
	path = key_path(r->run_dir, "metrics", (*mf)->key);
	fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666) : -1;
	free(path);
	if (fd < 0) {
		if (*mf != &r->transient || r->transient_warned++ < TRANSIENT_WARN_MAX)
			warn("metric '%s' not logged: %s", (*mf)->key, strerror(errno));
		(*mf)->fd = -1;
		return -1;
	}
	if (*mf != &r->transient && r->nmetrics <= OPEN_METRICS_MAX)
		(*mf)->fd = fd;
	return fd;
}

/* Logs one scalar line of the program's output as a metric point. */
static void log_scalar(struct runner *r, const struct run_scalar *s)
{
	struct metric_file *mf = NULL;
	char line[METRIC_VALUE_MAX + 32];
	int64_t step = s->has_step ? s->step : r->step;
	size_t n;
	int fd;

	if (s->key_len == 4 && !strncmp(s->key, "step", 4)) {
		/* sets the step of the lines that follow; not a metric */
		if (isfinite(s->value) && s->value >= -9e18 && s->value <= 9e18) {
			r->step = (int64_t)s->value;
			r->has_step = 1;
		}
		return;
	}
	/* A flag printed back is the param, not a metric (Guild's rule). */
	if (is_flag(r, s->key, s->key_len))
		return;
	fd = metric_fd(r, s->key, s->key_len, &mf);
	if (fd < 0)
		return;
	n = 0;
	if (s->has_step || r->has_step)
		n = (size_t)snprintf(line, sizeof(line), "%lld ", (long long)step);
	n += metric_format_value(s->value, line + n);
	line[n++] = '\n';
	if (write_all(fd, line, n)) {
		warn("metric '%s': a point is lost: %s", mf->key, strerror(errno));
		close(fd);
		mf->fd = -1;
		return;
	}
	if (mf->fd == -2)
		close(fd);
}

/* ---- the store and its mount ------------------------------------------ */

/* The path of a mountinfo field, its \ooo escapes undone, in place. */
static char *unescape(char *s)
{
	char *o = s, *p = s;

	while (*p) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 4;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return s;
}

/* The "uri:" line of a mount's .mlflowfs/status: a new string, or NULL. */
static char *mount_uri(const char *mnt)
{
	char path[PATH_MAX], text[4096], *line, *nl;

	if ((size_t)snprintf(path, sizeof(path), "%s/.mlflowfs/status", mnt) >= sizeof(path) ||
	    read_text(path, text, sizeof(text)) <= 0)
		return NULL;
	for (line = text; line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "uri: ", 5))
			return strdup(line + 5);
	}
	return NULL;
}

/* Whether two URIs name one store: one database file, or one server. */
static int same_store(const char *asked, const char *mounted)
{
	struct stat a, b;
	char *red;
	size_t la, lb;
	int same;

	if (!strncmp(asked, "sqlite:///", 10) && !strncmp(mounted, "sqlite:///", 10))
		return !stat(asked + 10, &a) && !stat(mounted + 10, &b) && a.st_dev == b.st_dev &&
		       a.st_ino == b.st_ino;
	/* a mount shows its URI without credentials */
	red = options_redact_uri(asked);
	if (!red)
		return 0;
	la = strlen(red);
	lb = strlen(mounted);
	while (la && red[la - 1] == '/')
		la--;
	while (lb && mounted[lb - 1] == '/')
		lb--;
	same = la == lb && !strncmp(red, mounted, la);
	free(red);
	return same;
}

/* A mlflowfs mount of store uri this user can reach: a new string, or NULL. */
static char *find_mount(const char *uri)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	while (!found && getline(&line, &cap, f) > 0) {
		char *fields[5], *sep = strstr(line, " - "), *save = NULL, *fstype, *mu;
		int i;

		if (!sep)
			continue;
		fstype = strtok_r(sep + 3, " ", &save);
		if (!fstype || strcmp(fstype, "fuse.mlflowfs"))
			continue;
		*sep = '\0';
		save = NULL;
		for (i = 0; i < 5; i++)
			fields[i] = strtok_r(i ? NULL : line, " ", &save);
		if (!fields[4])
			continue;
		mu = mount_uri(unescape(fields[4]));
		if (mu && same_store(uri, mu))
			found = strdup(fields[4]);
		free(mu);
	}
	free(line);
	fclose(f);
	return found;
}

/* uri with a relative sqlite path made absolute: a new string or NULL. */
static char *absolute_uri(const char *uri)
{
	char cwd[PATH_MAX], *out;

	if (strncmp(uri, "sqlite:///", 10) || uri[10] == '/')
		return strdup(uri);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "sqlite:///%s/%s", strcmp(cwd, "/") ? cwd : "", uri + 10) < 0)
		return NULL;
	return out;
}

/* Runs fusermount3 with args; its exit status, or -1. */
static int fusermount(const char *opt, const char *mnt)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDERR_FILENO);
		signals_default();
		execlp("fusermount3", "fusermount3", opt, mnt, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Copies what the private mount's daemon printed to our stderr. */
static void daemon_log_show(struct runner *r)
{
	char text[4096];
	ssize_t n;

	if (r->daemon_log < 0 || lseek(r->daemon_log, 0, SEEK_SET) < 0)
		return;
	while ((n = read(r->daemon_log, text, sizeof(text))) > 0)
		write_all(STDERR_FILENO, text, (size_t)n);
}

/*
 * Unmounts the private mount and reaps its daemon.  The daemon may be held
 * busy for a moment by a process the program left behind; then the mount is
 * detached lazily rather than left.
 */
static void unmount_private(struct runner *r)
{
	int status = 0, i;

	if (!r->daemon)
		return;
	for (i = 0; i < 20 && fusermount("-u", r->mnt); i++)
		sleep_ms(100);
	if (i == 20)
		fusermount("-uz", r->mnt);
	for (i = 0; i < 200; i++) {
		pid_t w = waitpid(r->daemon, &status, WNOHANG);

		if (w == r->daemon || (w < 0 && errno != EINTR))
			break;
		if (i == 100)
			kill(r->daemon, SIGTERM);
		sleep_ms(50);
	}
	if (i == 200) {
		kill(r->daemon, SIGKILL);
		waitpid(r->daemon, &status, 0);
	}
	/* A daemon that did not end cleanly may have lost something: say why. */
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		warn("the private mount's daemon ended badly; its log follows");
		daemon_log_show(r);
	}
	r->daemon = 0;
	if (rmdir(r->mnt))
		warn("cannot remove the temporary mountpoint '%s': %s", r->mnt, strerror(errno));
}

/*
 * Mounts the store on a new temporary folder: this same binary, in the
 * foreground, in a process group of its own (a key typed at the terminal is
 * for the program, not the mount), ended by the kernel if we die.  0, or -1
 * after saying why.
 */
static int mount_private(struct runner *r, const char *uri)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	char tmpl[PATH_MAX], path[PATH_MAX + 32];
	struct stat st;
	pid_t parent = getpid();
	int i, status;

	if (!base || base[0] != '/' || access(base, W_OK))
		base = getenv("TMPDIR");
	if (!base || base[0] != '/' || access(base, W_OK))
		base = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/mlflowfs-run-XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		warn("cannot make a temporary mountpoint in '%s': %s", base, strerror(errno));
		return -1;
	}
	r->mnt = strdup(tmpl);
	r->daemon_log = open(base, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (!r->mnt) {
		rmdir(tmpl);
		return -1;
	}
	r->daemon = fork();
	if (r->daemon < 0) {
		warn("cannot fork: %s", strerror(errno));
		r->daemon = 0;
		rmdir(tmpl);
		return -1;
	}
	if (r->daemon == 0) {
		int null = open("/dev/null", O_RDWR);
		int out = r->daemon_log >= 0 ? r->daemon_log : null;

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		signals_default();
		dup2(null, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
		execl("/proc/self/exe", "mlflowfs", "-f", "--tracking-uri", uri, r->mnt,
		      (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/.mlflowfs/status", r->mnt);
	for (i = 0; i < MOUNT_WAIT_MS / 20; i++) {
		if (!stat(path, &st))
			return 0;
		if (waitpid(r->daemon, &status, WNOHANG) == r->daemon) {
			r->daemon = 0;
			daemon_log_show(r);
			rmdir(r->mnt);
			return -1;
		}
		if (stop_signal)
			break;
		sleep_ms(20);
	}
	if (!stop_signal)
		warn("the store did not mount within %d s", MOUNT_WAIT_MS / 1000);
	unmount_private(r);
	return -1;
}

/*
 * Picks the store and the mount to use (mlflowfs(1), Running a program):
 * -m's mount, else a mount of the store the user named or the default one,
 * else a private mount.  0, or -1 after saying why.
 */
static int choose_mount(struct runner *r, const char *given_mnt, const char *given_uri)
{
	const char *env = getenv("MLFLOW_TRACKING_URI");
	char *mounted;

	if (given_uri)
		r->uri = absolute_uri(given_uri);
	else if (env && env[0])
		r->uri = absolute_uri(env);
	if ((given_uri || (env && env[0])) && !r->uri) {
		warn("out of memory");
		return -1;
	}
	if (given_mnt) {
		mounted = mount_uri(given_mnt);
		if (!mounted) {
			warn("'%s' is not a mlflowfs mount", given_mnt);
			return -1;
		}
		if (r->uri && !same_store(r->uri, mounted)) {
			char *red = options_redact_uri(r->uri);

			warn("'%s' mounts '%s', not the store asked for ('%s')", given_mnt, mounted,
			     red ? red : "?");
			free(red);
			free(mounted);
			return -1;
		}
		/* MLFLOWFS_RUN_DIR must hold wherever the program goes */
		r->mnt = realpath(given_mnt, NULL);
		/* the mount's own URI, unless the user's (with what it carries) names it */
		r->store_uri = r->uri ? strdup(r->uri) : mounted;
		if (r->uri)
			free(mounted);
		return r->mnt && r->store_uri ? 0 : -1;
	}
	if (!r->uri) {
		char *def = options_default_uri();

		if (!def) {
			warn("cannot find a place for the default store: set HOME or "
			     "XDG_DATA_HOME");
			return -1;
		}
		r->uri = def;
	}
	r->mnt = find_mount(r->uri);
	if (!r->mnt && mount_private(r, r->uri))
		return -1;
	/* a local store's URI as the mount shows it: absolute */
	r->store_uri = !strncmp(r->uri, "sqlite:", 7) ? mount_uri(r->mnt) : NULL;
	if (!r->store_uri)
		r->store_uri = strdup(r->uri);
	return r->store_uri ? 0 : -1;
}

/* ---- making the run --------------------------------------------------- */

/* Words for run names in MLflow's adjective-noun-NNN form (our own list). */
static const char *const adjectives[] = {
	"amber", "bold",   "brisk", "calm",  "clever", "crisp", "dapper", "eager",
	"fair",	 "gentle", "glad",  "keen",  "lively", "lucid", "merry",  "nimble",
	"proud", "quiet",  "rapid", "sleek", "steady", "sunny", "tidy",	  "witty",
};
static const char *const nouns[] = {
	"badger", "bison", "crane", "dove",  "eel",  "falcon", "finch", "gecko",
	"heron",  "ibis",  "koala", "lark",  "lynx", "marten", "newt",	"otter",
	"panda",  "quail", "raven", "robin", "seal", "stork",  "tapir", "wren",
};

static void random_name(char *out, size_t size, unsigned *seed)
{
	snprintf(out, size, "%s-%s-%03d",
		 adjectives[rand_r(seed) % (sizeof(adjectives) / sizeof(adjectives[0]))],
		 nouns[rand_r(seed) % (sizeof(nouns) / sizeof(nouns[0]))], rand_r(seed) % 1000);
}

/* mkdir of the experiment (if new) and the run: 0, or -1 after saying why. */
static int make_run(struct runner *r, const char *name)
{
	struct buf b = BUF_INIT;
	char tried[256], path[PATH_MAX], text[128];
	unsigned seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	json_t *exp;
	size_t exp_len;
	int i, err = -1;

	if (buf_addf(&b, "%s/experiments/", r->mnt) || path_encode(&b, r->exp_name))
		goto nomem;
	if (mkdir(b.data, 0777) && errno != EEXIST) {
		warn("cannot create experiment '%s': %s", r->exp_name, strerror(errno));
		goto out;
	}
	exp_len = b.len;
	/* A taken name is not an error: MLflow allows several runs of one name,
	 * a folder shows one, so the run gets the next free "NAME-N". */
	for (i = 0; i < 100; i++) {
		if (!name)
			random_name(tried, sizeof(tried), &seed);
		else if (i)
			snprintf(tried, sizeof(tried), "%.200s-%d", name, i + 1);
		else
			snprintf(tried, sizeof(tried), "%.250s", name);
		buf_truncate(&b, exp_len);
		if (buf_addch(&b, '/') || path_encode(&b, tried))
			goto nomem;
		if (!mkdir(b.data, 0777))
			break;
		if (errno != EEXIST) {
			warn("cannot create run '%s' in experiment '%s': %s", tried, r->exp_name,
			     strerror(errno));
			goto out;
		}
	}
	if (i == 100) {
		warn("cannot create a run: the name '%s' and its variants are taken",
		     name ? name : tried);
		goto out;
	}
	if (name && i)
		warn("a run named '%s' exists; this one is '%s'", name, tried);
	r->run_dir = strdup(b.data);
	snprintf(path, sizeof(path), "%s/run_id", r->run_dir);
	if (!r->run_dir || read_text(path, text, sizeof(text)) < 32) {
		warn("cannot read the new run's id: %s", strerror(errno));
		goto out;
	}
	text[strcspn(text, "\n")] = '\0';
	r->run_id = strdup(text);
	buf_truncate(&b, exp_len);
	if (buf_adds(&b, "/.experiment.json"))
		goto nomem;
	exp = json_load_file(b.data, 0, NULL);
	if (exp && json_is_string(json_object_get(exp, "experiment_id")))
		r->exp_id = strdup(json_string_value(json_object_get(exp, "experiment_id")));
	json_decref(exp);
	err = r->run_id ? 0 : -1;
	goto out;
nomem:
	warn("out of memory");
out:
	buf_release(&b);
	return err;
}

/* What MLflow's client records for a run it starts, describing the program
 * (argv) run from our working folder. */
static void set_provenance(struct runner *r, char *const argv[])
{
	struct provenance_tag tags[PROVENANCE_NTAGS];
	struct buf args = BUF_INIT;
	struct provenance p;
	size_t k;
	struct passwd *pw = getpwuid(getuid());
	char cwd[PATH_MAX];
	int i;

	memset(&p, 0, sizeof(p));
	for (i = 0; argv[i]; i++)
		if (buf_add(&args, argv[i], strlen(argv[i]) + 1))
			break;
	if (!argv[i])
		p.source_name = provenance_source_name(args.data, args.len);
	buf_release(&args);
	if (getcwd(cwd, sizeof(cwd)))
		provenance_git(cwd, r->mnt, &p);
	provenance_tags(&p, tags);
	for (k = 0; k < PROVENANCE_NTAGS; k++)
		if (tags[k].value)
			set_key(r, "tags", tags[k].key, tags[k].value);
	/* the daemon set it from the caller, us; the same user, said again */
	if (pw)
		set_key(r, "tags", "mlflow.user", pw->pw_name);
	provenance_release(&p);
}

/* ---- the program -------------------------------------------------------- */

struct stream {
	int fd;	 /* the read end of the program's pipe, or -1 at its end */
	int out; /* where it passes on to: our stdout or stderr */
	char line[LINE_MAX_LEN];
	size_t len;
	int overlong; /* the line so far did not fit: not a scalar */
	/* the start of a line not yet in stdout.log: a line is logged whole,
	 * so the other stream's output never lands inside it */
	char held[LINE_MAX_LEN];
	size_t held_len;
};

static void line_done(struct runner *r, struct stream *s)
{
	struct run_scalar sc;

	if (!s->overlong && run_scalar_parse(s->line, s->len, &sc))
		log_scalar(r, &sc);
	s->len = 0;
	s->overlong = 0;
}

static void log_bytes(struct runner *r, const char *data, size_t n)
{
	if (r->log_fd >= 0 && n && write_all(r->log_fd, data, n)) {
		warn("artifacts/stdout.log: output is no longer kept: %s", strerror(errno));
		close(r->log_fd);
		r->log_fd = -1;
	}
}

/* Appends what is held of a stream's unfinished line to stdout.log. */
static void stream_release(struct runner *r, struct stream *s)
{
	log_bytes(r, s->held, s->held_len);
	s->held_len = 0;
}

/*
 * Passes a chunk of output on at once, and into stdout.log up to its last
 * complete line (the rest is held for the next chunk; a line longer than
 * the hold goes in pieces), and through the line parser.
 */
static void stream_chunk(struct runner *r, struct stream *s, const char *data, size_t n)
{
	const char *nl = memrchr(data, '\n', n), *rest = data;
	size_t i, rest_len = n;

	/* a reader of ours that went away is the reader's business */
	write_all(s->out, data, n);
	if (nl) {
		stream_release(r, s);
		log_bytes(r, data, (size_t)(nl + 1 - data));
		rest = nl + 1;
		rest_len = n - (size_t)(rest - data);
	}
	if (s->held_len + rest_len > sizeof(s->held)) {
		stream_release(r, s);
		if (rest_len > sizeof(s->held)) {
			log_bytes(r, rest, rest_len);
			rest_len = 0;
		}
	}
	memcpy(s->held + s->held_len, rest, rest_len);
	s->held_len += rest_len;
	for (i = 0; i < n; i++) {
		if (data[i] == '\n')
			line_done(r, s);
		else if (s->len < sizeof(s->line))
			s->line[s->len++] = data[i];
		else
			s->overlong = 1;
	}
}

/*
 * Reads the program's two pipes until both end, or until the program has
 * ended and they are quiet (a process it left behind may hold them open),
 * and reaps it.  Returns its wait status.
 */
static int pump(struct runner *r, pid_t pid, int out_fd, int err_fd)
{
	struct stream s[2];
	char chunk[65536];
	int status = 0, exited = 0, i;

	s[0].fd = out_fd;
	s[0].out = STDOUT_FILENO;
	s[1].fd = err_fd;
	s[1].out = STDERR_FILENO;
	s[0].len = s[1].len = 0;
	s[0].held_len = s[1].held_len = 0;
	s[0].overlong = s[1].overlong = 0;
	while (s[0].fd >= 0 || s[1].fd >= 0) {
		struct pollfd pfd[2];
		int n;

		for (i = 0; i < 2; i++) {
			pfd[i].fd = s[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		n = poll(pfd, 2, exited ? 0 : 200);
		if (resized) {
			/* the program's pseudo-terminals follow our terminal's size */
			struct winsize ws;

			resized = 0;
			for (i = 0; i < 2; i++)
				if (s[i].fd >= 0 && isatty(s[i].out) &&
				    !ioctl(s[i].out, TIOCGWINSZ, &ws))
					ioctl(s[i].fd, TIOCSWINSZ, &ws);
		}
		if (n < 0 && errno != EINTR)
			break;
		if (n == 0 && exited)
			break;
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			program_pid = 0;
		}
		for (i = 0; n > 0 && i < 2; i++) {
			ssize_t got;

			if (s[i].fd < 0 || !pfd[i].revents)
				continue;
			got = read(s[i].fd, chunk, sizeof(chunk));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				stream_release(r, &s[i]);
				if (s[i].len)
					line_done(r, &s[i]);
				close(s[i].fd);
				s[i].fd = -1;
				continue;
			}
			stream_chunk(r, &s[i], chunk, (size_t)got);
		}
	}
	for (i = 0; i < 2; i++) {
		stream_release(r, &s[i]);
		if (s[i].len)
			line_done(r, &s[i]);
		if (s[i].fd >= 0)
			close(s[i].fd);
	}
	while (!exited && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	program_pid = 0;
	return status;
}

static int setenv_all(struct runner *r)
{
	return setenv("MLFLOW_TRACKING_URI", r->store_uri, 1) ||
	       setenv("MLFLOW_RUN_ID", r->run_id, 1) ||
	       setenv("MLFLOW_EXPERIMENT_NAME", r->exp_name, 1) ||
	       (r->exp_id && setenv("MLFLOW_EXPERIMENT_ID", r->exp_id, 1)) ||
	       setenv("MLFLOWFS_RUN_DIR", r->run_dir, 1) ||
	       /* Python flushes each line, so scalars and the tee keep pace */
	       setenv("PYTHONUNBUFFERED", "1", 0);
}

/*
 * Where the program's stream to our fd goes: fds[0] ours to read, fds[1]
 * its to write.  A pseudo-terminal when fd is a terminal, so the program
 * sees one as it would unwrapped (line-buffered output, colours, progress
 * bars), without output processing so the bytes arrive as written; else a
 * pipe.  0, or -1 with errno.
 */
static int channel_open(int fd, int fds[2])
{
	struct termios t;
	struct winsize ws;
	char name[128];

	if (!isatty(fd))
		return pipe2(fds, O_CLOEXEC);
	fds[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fds[0] < 0)
		return -1;
	if (grantpt(fds[0]) || unlockpt(fds[0]) || ptsname_r(fds[0], name, sizeof(name)))
		goto fail;
	fds[1] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fds[1] < 0)
		goto fail;
	if (!tcgetattr(fds[1], &t)) {
		t.c_oflag &= ~(tcflag_t)OPOST;
		t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | ISIG);
		tcsetattr(fds[1], TCSANOW, &t);
	}
	if (!ioctl(fd, TIOCGWINSZ, &ws))
		ioctl(fds[1], TIOCSWINSZ, &ws);
	return 0;
fail:
	close(fds[0]);
	return -1;
}

/*
 * Starts the program with its output on pipes (or pseudo-terminals) and
 * pumps them.  Returns its
 * wait status, or -1 when it could not be started (*exec_err the errno).
 */
static int run_program(struct runner *r, char *const argv[], int *exec_err)
{
	int out[2], err[2], ex[2], e = 0, status;
	ssize_t n;
	pid_t pid;

	*exec_err = 0;
	out[0] = out[1] = err[0] = err[1] = -1;
	if (channel_open(STDOUT_FILENO, out) || channel_open(STDERR_FILENO, err) ||
	    pipe2(ex, O_CLOEXEC)) {
		*exec_err = errno;
		for (int k = 0; k < 2; k++) {
			if (out[k] >= 0)
				close(out[k]);
			if (err[k] >= 0)
				close(err[k]);
		}
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		*exec_err = errno;
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		close(ex[0]);
		close(ex[1]);
		return -1;
	}
	if (pid == 0) {
		signals_default();
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		if (setenv_all(r))
			e = ENOMEM;
		else
			execvp(argv[0], argv);
		e = e ? e : errno;
		write_all(ex[1], (const char *)&e, sizeof(e));
		_exit(127);
	}
	program_pid = pid;
	/* a signal that came while we forked is passed on now */
	if (stop_signal)
		kill(pid, stop_signal);
	close(out[1]);
	close(err[1]);
	close(ex[1]);
	do
		n = read(ex[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(ex[0]);
	if (n == sizeof(e)) {
		*exec_err = e;
		close(out[0]);
		close(err[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		program_pid = 0;
		return -1;
	}
	return pump(r, pid, out[0], err[0]);
}

/* Closes the metric files and stdout.log: what they hold is then safe. */
static void close_outputs(struct runner *r)
{
	size_t i;

	for (i = 0; i < r->nmetrics; i++) {
		if (r->metrics[i].fd >= 0 && close(r->metrics[i].fd))
			warn("metric '%s': the last points may be lost: %s", r->metrics[i].key,
			     strerror(errno));
		free(r->metrics[i].key);
	}
	free(r->metrics);
	r->metrics = NULL;
	r->nmetrics = 0;
	free(r->transient.key);
	r->transient.key = NULL;
	if (r->log_fd >= 0 && close(r->log_fd))
		warn("artifacts/stdout.log may be incomplete: %s", strerror(errno));
	r->log_fd = -1;
}

static void runner_release(struct runner *r)
{
	close_outputs(r);
	unmount_private(r);
	if (r->daemon_log >= 0)
		close(r->daemon_log);
	run_flags_free(r->flags, r->nflags);
	free(r->uri);
	free(r->mnt);
	free(r->store_uri);
	free(r->exp_name);
	free(r->exp_id);
	free(r->run_dir);
	free(r->run_id);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mlflowfs run [OPTIONS] [--] PROGRAM [ARGS...]\n"
		"\n"
		"Runs PROGRAM as a new MLflow run: its --flag arguments become params,\n"
		"its stdout and stderr are passed on and kept in artifacts/stdout.log,\n"
		"its 'key: number' and 'key=number' lines become metrics, and its exit\n"
		"ends the run FINISHED (0), FAILED (other) or KILLED (a signal).\n"
		"The program sees MLFLOW_TRACKING_URI, MLFLOW_RUN_ID, MLFLOW_EXPERIMENT_ID,\n"
		"MLFLOW_EXPERIMENT_NAME and MLFLOWFS_RUN_DIR.\n"
		"\n"
		"options:\n"
		"    -e, --experiment NAME  the experiment (default: $MLFLOW_EXPERIMENT_NAME,\n"
		"                           else Default); made if missing\n"
		"    -n, --name NAME        the run's name (default: a random adjective-noun-NNN;\n"
		"                           a taken name gets a -2, -3... suffix)\n"
		"    -m, --mount DIR        use this mlflowfs mount\n"
		"    --tracking-uri URI     the store (default: $MLFLOW_TRACKING_URI, else the\n"
		"                           default store); a mount of it is used, else a\n"
		"                           private one for the program's lifetime\n"
		"    -h, --help             print this help and exit\n"
		"\n"
		"Exit status: the program's (128+N when killed by signal N); 125 when the\n"
		"run could not be made (the program is then not started); 126/127 when the\n"
		"program could not be run.\n");
}

/* The value of option argv[*i] ("-e X", "--experiment X", "--experiment=X"). */
static const char *opt_value(int argc, char *argv[], int *i, const char *s, const char *l)
{
	const char *a = argv[*i];
	size_t ll = strlen(l);

	if (!strcmp(a, s) || !strcmp(a, l)) {
		if (*i + 1 >= argc)
			return NULL;
		return argv[++*i];
	}
	if (!strncmp(a, l, ll) && a[ll] == '=')
		return a + ll + 1;
	return NULL;
}

static int is_opt(const char *a, const char *s, const char *l)
{
	size_t ll = strlen(l);

	return !strcmp(a, s) || !strcmp(a, l) || (!strncmp(a, l, ll) && a[ll] == '=');
}

int run_main(int argc, char *argv[])
{
	const char *exp = NULL, *name = NULL, *mnt = NULL, *uri = NULL, *status_word;
	struct runner r;
	char path[PATH_MAX];
	int i, status, exec_err, ret = RUN_EXIT_SETUP, err;
	const struct {
		const char *s, *l;
		const char **slot;
	} opts[] = {
		{ "-e", "--experiment", &exp },
		{ "-n", "--name", &name },
		{ "-m", "--mount", &mnt },
		{ "--tracking-uri", "--tracking-uri", &uri },
	};

	memset(&r, 0, sizeof(r));
	r.daemon_log = -1;
	r.log_fd = -1;
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		size_t o;

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		for (o = 0; o < sizeof(opts) / sizeof(opts[0]); o++)
			if (is_opt(a, opts[o].s, opts[o].l))
				break;
		if (o == sizeof(opts) / sizeof(opts[0])) {
			if (a[0] != '-')
				break;
			fprintf(stderr, "mlflowfs run: unknown option '%s'\n", a);
			goto usage_err;
		}
		*opts[o].slot = opt_value(argc, argv, &i, opts[o].s, opts[o].l);
		if (!*opts[o].slot) {
			fprintf(stderr, "mlflowfs run: option '%s' needs a value\n", a);
			goto usage_err;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "mlflowfs run: no program to run\n");
		goto usage_err;
	}
	if (name && !name[0]) {
		fprintf(stderr, "mlflowfs run: a run name cannot be empty\n");
		goto usage_err;
	}
	if (!exp)
		exp = getenv("MLFLOW_EXPERIMENT_NAME");
	if (!exp || !exp[0])
		exp = "Default";
	signals_catch();
	r.exp_name = strdup(exp);
	if (!r.exp_name || run_flags_parse(argc - i, argv + i, &r.flags, &r.nflags)) {
		warn("out of memory");
		goto out;
	}
	/* a signal before the run exists leaves nothing to end */
	if (choose_mount(&r, mnt, uri) || stop_signal || make_run(&r, name))
		goto out;
	for (size_t k = 0; k < r.nflags; k++)
		set_key(&r, "params", r.flags[k].key, r.flags[k].value);
	set_provenance(&r, argv + i);
	snprintf(path, sizeof(path), "%s/artifacts/stdout.log", r.run_dir);
	r.log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (r.log_fd < 0)
		warn("artifacts/stdout.log: output is not kept: %s", strerror(errno));
	if (stop_signal) {
		status_word = "KILLED";
		ret = 128 + stop_signal;
		goto end;
	}

	status = run_program(&r, argv + i, &exec_err);
	if (status < 0) {
		warn("cannot run '%s': %s", argv[i], strerror(exec_err));
		status_word = "FAILED";
		ret = exec_err == ENOENT ? 127 : 126;
	} else if (WIFSIGNALED(status)) {
		status_word = "KILLED";
		ret = 128 + WTERMSIG(status);
	} else {
		ret = WEXITSTATUS(status);
		status_word = ret ? "FAILED" : "FINISHED";
	}
end:
	close_outputs(&r);
	snprintf(path, sizeof(path), "%s/status", r.run_dir);
	err = write_value(path, status_word);
	if (err)
		warn("cannot end run '%s' %s: %s", r.run_id, status_word, strerror(err));
out:
	runner_release(&r);
	/* stopped before the program started: as a shell reports the signal */
	if (ret == RUN_EXIT_SETUP && stop_signal)
		ret = 128 + stop_signal;
	return ret;
usage_err:
	fprintf(stderr, "Try 'mlflowfs run --help'.\n");
	return RUN_EXIT_SETUP;
}
