/*
 * provenance.c - where a run made through the mount comes from: the
 * program, from /proc, and its git work tree, from the repository's own
 * files (HEAD, loose and packed refs, config; a linked worktree's .git
 * file and commondir).  Nothing here runs a program.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "provenance.h"

/* MLflow's limit on a run tag's value, in characters. */
#define SOURCE_NAME_MAX 8000
/* Files read here are small; a bigger one is not what it should be. */
#define SMALL_MAX (1 << 20)

/* The content of a small file, NUL-terminated (a new string; *len its
 * length), or NULL. */
static char *read_small(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *data = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t got;

		if (cap - n < 4096) {
			char *more = cap >= SMALL_MAX ? NULL : realloc(data, cap + 4096 + 1);

			if (!more) {
				free(data);
				data = NULL;
				break;
			}
			data = more;
			cap += 4096;
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	if (data) {
		data[n] = '\0';
		if (len)
			*len = n;
	}
	return data;
}

/* s without trailing white space, in place. */
static char *rtrim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int is_hex40(const char *s)
{
	size_t i;

	for (i = 0; i < 40; i++)
		if (!strchr("0123456789abcdef", s[i]) || !s[i])
			return 0;
	return s[40] == '\0' || s[40] == '\n' || s[40] == ' ';
}

/* dir/name, or rel itself when it is absolute: a new string or NULL. */
static char *join(const char *dir, const char *rel)
{
	char *out;

	if (rel[0] == '/')
		return strdup(rel);
	if (asprintf(&out, "%s/%s", dir, rel) < 0)
		return NULL;
	return out;
}

/* The commit ref names, from a loose ref in gitdir or common, else from
 * common's packed-refs; symbolic refs are followed a few levels. */
static char *resolve_ref(const char *gitdir, const char *common, const char *ref, int depth)
{
	const char *dirs[] = { gitdir, common };
	char *path, *text, *out = NULL;
	size_t i, rlen = strlen(ref);

	if (depth > 4 || strstr(ref, ".."))
		return NULL;
	for (i = 0; i < 2; i++) {
		path = join(dirs[i], ref);
		text = path ? read_small(path, NULL) : NULL;
		free(path);
		if (!text)
			continue;
		rtrim(text);
		if (!strncmp(text, "ref: ", 5))
			out = resolve_ref(gitdir, common, text + 5, depth + 1);
		else if (is_hex40(text))
			out = strndup(text, 40);
		free(text);
		return out;
	}
	path = join(common, "packed-refs");
	text = path ? read_small(path, NULL) : NULL;
	free(path);
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* "<40 hex> <ref>"; '#' starts the header, '^' a peeled tag */
		if (is_hex40(line) && line[40] == ' ' && !strncmp(line + 41, ref, rlen) &&
		    (line[41 + rlen] == '\0' || line[41 + rlen] == '\r')) {
			out = strndup(line, 40);
			break;
		}
	}
	free(text);
	return out;
}

/* The url of [remote "origin"] in a git config file's text. */
static char *origin_url(char *config)
{
	int in_origin = 0;

	for (char *line = config, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		rtrim(line);
		if (*line == '[') {
			in_origin = !strcmp(line, "[remote \"origin\"]");
			continue;
		}
		if (in_origin && !strncmp(line, "url", 3)) {
			char *v = line + 3;

			while (*v == ' ' || *v == '\t')
				v++;
			if (*v++ != '=')
				continue;
			while (*v == ' ' || *v == '\t')
				v++;
			return strdup(v);
		}
	}
	return NULL;
}

/* Whether path is skip or below it. */
static int below(const char *path, const char *skip)
{
	size_t n = skip ? strlen(skip) : 0;

	return n && !strncmp(path, skip, n) && (path[n] == '/' || path[n] == '\0');
}

/* The repository folder (.git, or where a worktree's .git file points)
 * of the work tree dir is in: a new string, or NULL. */
static char *find_gitdir(const char *dir, const char *skip_below)
{
	char *d = strdup(dir), *slash;
	struct stat st;

	while (d) {
		if (!below(d, skip_below)) {
			char *dotgit = join(d[1] ? d : "", ".git");
			int found = dotgit && !lstat(dotgit, &st);

			if (found && S_ISDIR(st.st_mode)) {
				free(d);
				return dotgit;
			}
			if (found && S_ISREG(st.st_mode)) {
				char *text = read_small(dotgit, NULL), *out = NULL;

				if (text && !strncmp(rtrim(text), "gitdir: ", 8))
					out = join(d[1] ? d : "", text + 8);
				free(text);
				free(dotgit);
				free(d);
				return out;
			}
			free(dotgit);
		}
		if (!strcmp(d, "/"))
			break;
		slash = strrchr(d, '/');
		if (slash == d)
			d[1] = '\0';
		else
			*slash = '\0';
	}
	free(d);
	return NULL;
}

int provenance_git(const char *dir, const char *skip_below, struct provenance *out)
{
	char *gitdir = find_gitdir(dir, skip_below), *common = NULL, *text, *path;

	if (!gitdir)
		return 0;
	path = join(gitdir, "commondir");
	text = path ? read_small(path, NULL) : NULL;
	free(path);
	common = text ? join(gitdir, rtrim(text)) : strdup(gitdir);
	free(text);
	path = join(gitdir, "HEAD");
	text = path ? read_small(path, NULL) : NULL;
	free(path);
	if (common && text) {
		rtrim(text);
		if (!strncmp(text, "ref: ", 5)) {
			out->git_commit = resolve_ref(gitdir, common, text + 5, 0);
			if (!strncmp(text + 5, "refs/heads/", 11))
				out->git_branch = strdup(text + 16);
		} else if (is_hex40(text)) {
			out->git_commit = strndup(text, 40);
		}
	}
	free(text);
	/* A repository without a commit yet has no provenance to give. */
	if (out->git_commit && common) {
		path = join(common, "config");
		text = path ? read_small(path, NULL) : NULL;
		free(path);
		if (text)
			out->git_repo_url = origin_url(text);
		free(text);
	} else {
		free(out->git_branch);
		out->git_branch = NULL;
	}
	free(common);
	free(gitdir);
	return 0;
}

/* Programs that run a script named on their command line. */
static const char *const interpreters[] = {
	"sh",	"bash", "dash",	  "zsh",     "ksh",   "mksh", "fish", "python", "perl",
	"ruby", "node", "nodejs", "Rscript", "julia", "lua",  "php",  "tclsh",	"pwsh",
};

/* Whether name (a program's base name) is an interpreter: "python3.11"
 * is python's. */
static int is_interpreter(const char *name)
{
	size_t i, n;

	for (i = 0; i < sizeof(interpreters) / sizeof(interpreters[0]); i++) {
		n = strlen(interpreters[i]);
		if (!strncmp(name, interpreters[i], n) &&
		    (!name[n] || strspn(name + n, "0123456789.") == strlen(name + n)))
			return 1;
	}
	return 0;
}

/* Options of interpreters whose value is the next argument. */
static int takes_value(const char *opt)
{
	return !strcmp(opt, "-W") || !strcmp(opt, "-X") || !strcmp(opt, "-o") ||
	       !strcmp(opt, "+o") || !strcmp(opt, "-O") || !strcmp(opt, "-I") ||
	       !strcmp(opt, "-r") || !strcmp(opt, "--require");
}

char *provenance_source_name(const char *args, size_t len)
{
	const char *argv0 = args, *pick = args, *base, *end = args + len, *a;
	struct buf b = BUF_INIT;
	size_t i, n;

	base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	if (is_interpreter(base)) {
		for (a = argv0 + strlen(argv0) + 1; a < end; a += strlen(a) + 1) {
			if (!strcmp(a, "-m") && a + 3 < end) {
				pick = a + 3;
				break;
			}
			/* Code on the command line (a shell's -e is errexit): the
			 * interpreter itself. */
			if (!strcmp(a, "-c") || !strcmp(a, "--") ||
			    (!strcmp(a, "-e") && !strchr("bdkmz", base[0]) && strcmp(base, "sh")))
				break;
			if (takes_value(a) && a + strlen(a) + 1 < end) {
				a += strlen(a) + 1;
				continue;
			}
			if (a[0] != '-' && a[0] != '+') {
				pick = a;
				break;
			}
		}
	}
	n = strnlen(pick, (size_t)(end - pick));
	for (i = 0; i < n && i < SOURCE_NAME_MAX;) {
		unsigned char c = (unsigned char)pick[i];
		size_t k, m = c < 0x80		   ? 1
			      : (c & 0xe0) == 0xc0 ? 2
			      : (c & 0xf0) == 0xe0 ? 3
			      : (c & 0xf8) == 0xf0 ? 4
						   : 0;

		for (k = 1; m && k < m; k++)
			if (i + k >= n || ((unsigned char)pick[i + k] & 0xc0) != 0x80)
				m = 0;
		if (!m || (m == 2 && c < 0xc2))
			m = 0;
		if (m ? buf_add(&b, pick + i, m) : buf_addch(&b, '?')) {
			buf_release(&b);
			return NULL;
		}
		i += m ? m : 1;
	}
	return buf_detach(&b);
}

/* The parent of process pid, or 0. */
static pid_t parent_of(pid_t pid)
{
	char path[64], *text, *end;
	pid_t ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	text = read_small(path, NULL);
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
	end = text ? strrchr(text, ')') : NULL;
	if (end)
		sscanf(end + 1, " %*c %d", &ppid);
	free(text);
	return ppid;
}

int provenance_of(pid_t pid, const char *skip_below, struct provenance *out)
{
	char path[64], cwd[PATH_MAX], *text;
	size_t len;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	text = read_small(path, NULL);
	if (text && !strcmp(rtrim(text), "mkdir")) {
		pid_t ppid = parent_of(pid);

		if (ppid > 1)
			pid = ppid;
	}
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	text = read_small(path, &len);
	if (text && len) {
		out->source_name = provenance_source_name(text, len);
		if (!out->source_name) {
			free(text);
			return -ENOMEM;
		}
	}
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	n = readlink(path, cwd, sizeof(cwd) - 1);
	if (n > 0 && cwd[0] == '/') {
		cwd[n] = '\0';
		return provenance_git(cwd, skip_below, out);
	}
	return 0;
}

void provenance_tags(const struct provenance *p, struct provenance_tag out[PROVENANCE_NTAGS])
{
	out[0] = (struct provenance_tag){ "mlflow.source.type", "LOCAL" };
	out[1] = (struct provenance_tag){ "mlflow.source.name", p->source_name };
	out[2] = (struct provenance_tag){ "mlflow.source.git.commit", p->git_commit };
	out[3] = (struct provenance_tag){ "mlflow.source.git.branch", p->git_branch };
	out[4] = (struct provenance_tag){ "mlflow.source.git.repoURL", p->git_repo_url };
}

void provenance_release(struct provenance *p)
{
	free(p->source_name);
	free(p->git_commit);
	free(p->git_branch);
	free(p->git_repo_url);
	memset(p, 0, sizeof(*p));
}
