/*
 * unit-art.c - the local artifact repository through the public API of
 * art.h: which URIs it serves (absolute paths, file:, mlflow-artifacts:
 * below the artifact root) and which none does, then every operation on
 * names and on open files, new names given to the caller, and paths longer
 * than PATH_MAX made by walking.  Each effect is checked on disk with plain
 * system calls.  Everything happens in one temporary folder, removed at the
 * end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "art.h"
#include "options.h"
#include "tap.h"

static char top[PATH_MAX]; /* the temporary folder */
static char run_uri[PATH_MAX + 16];
static struct art_registry *reg;
static const struct art_caller me = { 0, 0, 022 };

static struct art_loc at(const char *path)
{
	struct art_loc loc = { run_uri, path };

	return loc;
}

/* The disk path of a name in the run's folder. */
static const char *disk(const char *rel)
{
	static char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s/run%s%s", top, rel[0] ? "/" : "", rel);
	return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int list_count;
static char list_seen[512];

static int list_cb(void *ctx, const char *name, const struct stat *st)
{
	(void)ctx;
	list_count++;
	snprintf(list_seen + strlen(list_seen), sizeof(list_seen) - strlen(list_seen), "%s%s:%c",
		 list_seen[0] ? " " : "", name,
		 S_ISDIR(st->st_mode)	? 'd'
		 : S_ISLNK(st->st_mode) ? 'l'
					: 'f');
	return 0;
}

static int stop_cb(void *ctx, const char *name, const struct stat *st)
{
	(void)ctx;
	(void)name;
	(void)st;
	return 7;
}

/* The sorted listing of a folder, as "name:kind ...". */
static const char *listing(const char *rel)
{
	struct art_loc loc = at(rel);
	static char sorted[512];
	char *words[32], *w, *save = NULL;
	int n = 0, i, j, err;

	list_count = 0;
	list_seen[0] = '\0';
	err = art_list(reg, &loc, list_cb, NULL);
	if (err)
		return strerror(-err);
	for (w = strtok_r(list_seen, " ", &save); w && n < 32; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(words[j - 1], words[j]) > 0; j--) {
			w = words[j];
			words[j] = words[j - 1];
			words[j - 1] = w;
		}
	sorted[0] = '\0';
	for (i = 0; i < n; i++)
		snprintf(sorted + strlen(sorted), sizeof(sorted) - strlen(sorted), "%s%s",
			 i ? " " : "", words[i]);
	return sorted;
}

/* ---- URIs -------------------------------------------------------------- */

static void test_uris(void)
{
	static const char *const forms[] = { "%s/uri", "file:%s/uri", "file://%s/uri",
					     "file://localhost%s/uri" };
	char uri[PATH_MAX + 64];
	struct art_loc loc = { uri, "f" };
	struct art_file *f;
	struct stat st;
	size_t i;
	int err;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(uri, sizeof(uri), forms[i], top);
		err = art_open(reg, &loc, O_WRONLY | O_CREAT, 0644, &me, &f);
		is_int(err, 0, uri);
		art_close(f);
		snprintf(uri, sizeof(uri), "%s/uri/f", top);
		is_int(stat(uri, &st), 0, "  ... makes the file in that folder");
		unlink(uri);
	}
	/* Percent-encoded file: URIs are decoded. */
	snprintf(uri, sizeof(uri), "file://%s/sp%%20ace", top);
	is_int(art_mkdir(reg, &loc, 0755, &me), 0, "file: URIs are percent-decoded");
	snprintf(uri, sizeof(uri), "%s/sp ace/f", top);
	ok(stat(uri, &st) == 0 && S_ISDIR(st.st_mode), "  ... into 'sp ace'");

	/* mlflow-artifacts: under the artifact root, with or without a host. */
	snprintf(uri, sizeof(uri), "mlflow-artifacts:/1/abc/artifacts");
	is_int(art_mkdir(reg, &loc, 0755, &me), 0, "mlflow-artifacts:/PATH");
	snprintf(uri, sizeof(uri), "%s/mlartifacts/1/abc/artifacts/f", top);
	ok(stat(uri, &st) == 0 && S_ISDIR(st.st_mode), "  ... is below the artifact root");
	snprintf(uri, sizeof(uri), "mlflow-artifacts://server:5000/1/abc/artifacts");
	is_int(art_stat(reg, &loc, &st), 0, "mlflow-artifacts://HOST/PATH: the same folder");

	/* What no repository serves. */
	snprintf(uri, sizeof(uri), "s3://bucket/1/abc/artifacts");
	is_int(art_stat(reg, &loc, &st), -ENOTSUP, "s3: is served by no repository");
	ok(strstr(art_errmsg(), "'s3:'") != NULL, "  ... and the message says which scheme: %s",
	   art_errmsg());
	snprintf(uri, sizeof(uri), "https://user:secret@host/x");
	is_int(art_list(reg, &loc, list_cb, NULL), -ENOTSUP, "https: is served by no repository");
	ok(!strstr(art_errmsg(), "secret"), "  ... and the message shows no password: %s",
	   art_errmsg());
	snprintf(uri, sizeof(uri), "file://otherhost/x");
	is_int(art_stat(reg, &loc, &st), -ENOTSUP, "file://HOST/ of another host");
	ok(art_errmsg()[0] != '\0', "  ... with a message: %s", art_errmsg());
	snprintf(uri, sizeof(uri), "relative/path");
	is_int(art_stat(reg, &loc, &st), -ENOTSUP, "a relative path is no URI");
	is_int(art_rename(reg, &(struct art_loc){ run_uri, "a" }, &loc, 0), -ENOTSUP,
	       "rename to a URI no repository serves");
}

static void test_registry_without_artifact_root(void)
{
	struct art_registry *r2;
	struct art_loc loc = { "mlflow-artifacts:/x", "" };
	struct stat st;

	r2 = art_registry_new(NULL, NULL);
	ok(r2 != NULL, "a registry without an artifact root");
	is_int(art_stat(r2, &loc, &st), -ENOTSUP, "  ... serves no mlflow-artifacts: URI");
	loc.uri = top;
	is_int(art_stat(r2, &loc, &st), 0, "  ... but absolute paths");
	art_registry_free(r2);
}

static void test_two_repositories(void)
{
	static const char *const other[] = { "other", NULL };
	struct art_registry *r2;
	struct art_loc a = { top, "x" }, b = { "OTHER:/x", "y" };

	r2 = art_registry_new(NULL, NULL);
	is_int(art_registry_add(r2, art_local_new(NULL), other), 0, "a second repository");
	is_int(art_rename(r2, &a, &b, 0), -EXDEV, "  ... rename between two repositories: EXDEV");
	is_int(art_link(r2, &a, &b), -EXDEV, "  ... link too");
	art_registry_free(r2);
}

/* ---- names ----------------------------------------------------------- */

static void test_root(void)
{
	struct art_loc root = at("");
	struct stat st;

	is_int(art_stat(reg, &root, &st), -ENOENT, "a run without artifacts has no folder yet");
	is_int(art_list(reg, &root, list_cb, NULL), -ENOENT, "  ... nor a listing");
	is_int(art_remove(reg, &root, 1), -EBUSY, "the run's folder cannot be removed");
	is_int(art_mkdir(reg, &root, 0755, &me), -EEXIST, "  ... nor made");
	is_int(art_utimens(reg, &root, NULL, (struct timespec[2]){ { 5, 0 }, { 7, 0 } }), 0,
	       "utimens of the run's folder makes it");
	ok(stat(disk(""), &st) == 0 && st.st_mtime == 7, "  ... and sets its times");
	is_int(art_chmod(reg, &root, NULL, 0700), 0, "chmod of the run's folder");
	ok(stat(disk(""), &st) == 0 && (st.st_mode & 07777) == 0700, "  ... on disk");
	is_int(art_access(reg, &root, R_OK | W_OK), 0, "access of the run's folder");
	is_str(listing(""), "", "an empty folder lists nothing");
}

static void test_files(void)
{
	struct art_loc a = at("a.txt"), sub = at("sub"), b = at("sub/b.txt");
	struct art_file *f = NULL, *g = NULL;
	char buf[64];
	struct stat st;
	ssize_t n;

	is_int(art_open(reg, &a, O_RDWR | O_CREAT | O_EXCL, 0640, &me, &f), 0, "create a file");
	is_int(art_write(f, "hello world", 11, 0), 11, "write");
	is_int(art_write(f, "W", 1, 6), 1, "write in the middle");
	n = art_read(f, buf, sizeof(buf), 0);
	is_int(n, 11, "read");
	buf[n > 0 ? n : 0] = '\0';
	is_str(buf, "hello World", "  ... what was written");
	is_int(art_fstat(f, &st), 0, "fstat");
	ok(st.st_size == 11 && (st.st_mode & 07777) == 0640, "  ... size and mode");
	is_int(art_ftruncate(f, 5), 0, "ftruncate");
	is_int(art_ftruncate(f, -1), -EINVAL, "ftruncate to a negative size");
	is_int(art_sync(f, ART_SYNC_CLOSE), 0, "sync at close");
	is_int(art_sync(f, ART_SYNC_ALL), 0, "fsync");
	is_int(art_fallocate(f, 0, 0, 4096), 0, "fallocate");
	is_int(art_fstat(f, &st), 0, "fstat again");
	is_int(st.st_size, 4096, "  ... fallocate grew it");
	is_int(art_ftruncate(f, 5), 0, "ftruncate back");
	is_int(art_chmod(reg, NULL, f, 0600), 0, "fchmod");
	is_int(art_utimens(reg, NULL, f, (struct timespec[2]){ { 1, 0 }, { 2, 0 } }), 0,
	       "futimens");
	ok(stat(disk("a.txt"), &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_mtime == 2 &&
		   st.st_size == 5,
	   "  ... on disk: mode, time, size");
	is_int(art_close(f), 0, "close");
	is_int(art_close(NULL), 0, "close of NULL");

	is_int(art_open(reg, &a, O_RDWR | O_CREAT | O_EXCL, 0640, &me, &f), -EEXIST,
	       "O_EXCL of an existing file");
	is_int(art_open(reg, &b, O_RDONLY, 0, &me, &f), -ENOENT, "open in a missing folder");
	is_int(art_open(reg, &(struct art_loc){ run_uri, "" }, O_RDONLY, 0, &me, &f), -EISDIR,
	       "open of the run's folder");
	is_int(art_mkdir(reg, &sub, 0750, &me), 0, "mkdir");
	ok(stat(disk("sub"), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0750,
	   "  ... on disk, with its mode");
	is_int(art_mkdir(reg, &sub, 0750, &me), -EEXIST, "mkdir of an existing name");
	is_int(art_open(reg, &b, O_WRONLY | O_CREAT | O_TRUNC, 0644, &me, &g), 0,
	       "create in a folder");
	is_int(art_write(g, "0123456789", 10, 0), 10, "  ... write");
	art_close(g);
	is_int(art_truncate(reg, &b, 3), 0, "truncate by name");
	ok(stat(disk("sub/b.txt"), &st) == 0 && st.st_size == 3, "  ... on disk");
	is_int(art_truncate(reg, &b, -1), -EINVAL, "truncate to a negative size");
	is_int(art_truncate(reg, &sub, 0), -EISDIR, "truncate of a folder");
	is_int(art_stat(reg, &b, &st), 0, "stat");
	ok(S_ISREG(st.st_mode) && st.st_size == 3, "  ... a file of 3 bytes");
	is_str(listing(""), "a.txt:f sub:d", "list the run's folder");
	is_str(listing("sub"), "b.txt:f", "list a folder");
	is_int(art_list(reg, &sub, stop_cb, NULL), 7, "a callback stops a listing");
	is_int(art_access(reg, &b, F_OK), 0, "access");
	is_int(art_access(reg, &(struct art_loc){ run_uri, "nope" }, F_OK), -ENOENT,
	       "access of a missing name");

	/* Removing. */
	is_int(art_remove(reg, &sub, 1), -ENOTEMPTY, "rmdir of a folder that is not empty");
	is_int(art_remove(reg, &sub, 0), -EISDIR, "unlink of a folder");
	is_int(art_remove(reg, &b, 1), -ENOTDIR, "rmdir of a file");
	is_int(art_remove(reg, &b, 0), 0, "unlink");
	is_int(art_remove(reg, &sub, 1), 0, "rmdir");
	is_str(listing(""), "a.txt:f", "  ... both gone");
}

static void test_renames(void)
{
	struct art_loc a = at("a.txt"), c = at("c.txt"), d = at("d"), dc = at("d/c.txt");
	struct art_file *f;
	struct stat st;

	is_int(art_rename(reg, &a, &c, 0), 0, "rename");
	ok(stat(disk("c.txt"), &st) == 0 && stat(disk("a.txt"), &st) < 0, "  ... on disk");
	is_int(art_mkdir(reg, &d, 0755, &me), 0, "mkdir d");
	is_int(art_rename(reg, &c, &dc, 0), 0, "rename into a folder");
	is_int(art_open(reg, &c, O_WRONLY | O_CREAT, 0644, &me, &f), 0, "a new c.txt");
	art_close(f);
	is_int(art_rename(reg, &c, &dc, RENAME_NOREPLACE), -EEXIST, "RENAME_NOREPLACE");
	is_int(art_rename(reg, &c, &d, RENAME_EXCHANGE), 0, "RENAME_EXCHANGE");
	ok(stat(disk("c.txt"), &st) == 0 && S_ISDIR(st.st_mode) && stat(disk("d"), &st) == 0 &&
		   S_ISREG(st.st_mode),
	   "  ... swapped a file and a folder");
	is_int(art_rename(reg, &c, &(struct art_loc){ run_uri, "" }, 0), -EBUSY,
	       "rename onto the run's folder");
	is_int(art_remove(reg, &d, 0), 0, "clean up: d");
	is_int(art_remove(reg, &(struct art_loc){ run_uri, "c.txt/c.txt" }, 0), 0,
	       "  ... c.txt/c.txt");
	is_int(art_remove(reg, &c, 1), 0, "  ... c.txt");
}

static void test_links_and_special_files(void)
{
	struct art_loc t = at("t"), l = at("l"), h = at("h"), p = at("p"), missing = at("nope");
	struct art_file *f;
	struct stat st, st2;
	char buf[64];

	is_int(art_open(reg, &t, O_WRONLY | O_CREAT, 0644, &me, &f), 0, "a file t");
	art_close(f);
	is_int(art_symlink(reg, "t", &l, &me), 0, "symlink");
	is_int(art_stat(reg, &l, &st), 0, "stat of a symlink");
	ok(S_ISLNK(st.st_mode), "  ... is the link itself");
	is_int(art_readlink(reg, &l, buf, sizeof(buf)), 0, "readlink");
	is_str(buf, "t", "  ... its target");
	is_int(art_readlink(reg, &l, buf, 1), 0, "readlink into a small buffer");
	is_str(buf, "", "  ... cut, with its NUL");
	is_int(art_readlink(reg, &l, buf, 0), -EINVAL, "readlink into no buffer");
	is_int(art_readlink(reg, &t, buf, sizeof(buf)), -EINVAL, "readlink of a file");
	is_int(art_symlink(reg, "x", &l, &me), -EEXIST, "symlink onto an existing name");
	is_int(art_utimens(reg, &l, NULL, (struct timespec[2]){ { 3, 0 }, { 4, 0 } }), 0,
	       "utimens of a symlink");
	ok(lstat(disk("l"), &st) == 0 && st.st_mtime == 4 && stat(disk("t"), &st2) == 0 &&
		   st2.st_mtime != 4,
	   "  ... changes the link, not its target");
	is_int(art_link(reg, &t, &h), 0, "hard link");
	ok(stat(disk("h"), &st) == 0 && stat(disk("t"), &st2) == 0 && st.st_ino == st2.st_ino &&
		   st.st_nlink == 2,
	   "  ... one file, two names");
	is_int(art_link(reg, &missing, &(struct art_loc){ run_uri, "m" }), -ENOENT,
	       "hard link of a missing file");
	is_int(art_mknod(reg, &p, S_IFIFO | 0600, 0, &me), 0, "mknod of a fifo");
	ok(lstat(disk("p"), &st) == 0 && S_ISFIFO(st.st_mode), "  ... on disk");
	is_str(listing(""), "h:f l:l p:f t:f", "list shows them");
	art_remove(reg, &t, 0);
	art_remove(reg, &h, 0);
	art_remove(reg, &l, 0);
	art_remove(reg, &p, 0);
}

/* New names belong to the caller when the repository runs as root. */
static void test_owner(void)
{
	struct art_caller c = { 4242, 4343, 022 };
	struct art_loc f = at("owned"), d = at("sgid"), df = at("sgid/in"), s = at("suid");
	struct art_file *fp;
	struct stat st;

	if (geteuid() != 0) {
		ok(1, "# SKIP new names are given to the caller only by root");
		return;
	}
	is_int(art_open(reg, &f, O_WRONLY | O_CREAT, 0644, &c, &fp), 0, "create for a caller");
	art_close(fp);
	ok(stat(disk("owned"), &st) == 0 && st.st_uid == 4242 && st.st_gid == 4343,
	   "  ... the caller owns it");
	is_int(art_mkdir(reg, &d, 0775, &c), 0, "mkdir for a caller");
	ok(stat(disk("sgid"), &st) == 0 && st.st_uid == 4242 && st.st_gid == 4343,
	   "  ... the caller owns it");
	chown(disk("sgid"), 4242, 5555);
	chmod(disk("sgid"), 02775);
	is_int(art_mknod(reg, &df, S_IFIFO | 0644, 0, &c), 0, "mknod in a set-group-ID folder");
	ok(stat(disk("sgid/in"), &st) == 0 && st.st_uid == 4242 && st.st_gid == 5555,
	   "  ... takes the folder's group");
	is_int(art_open(reg, &s, O_WRONLY | O_CREAT, 04755, &c, &fp), 0,
	       "create a set-user-ID file for a caller");
	art_close(fp);
	ok(stat(disk("suid"), &st) == 0 && st.st_uid == 4242 && (st.st_mode & 07777) == 04755,
	   "  ... keeps its mode");
	is_int(art_open(reg, &f, O_WRONLY | O_CREAT, 0600, &me, &fp), 0,
	       "open O_CREAT of an existing file");
	art_close(fp);
	ok(stat(disk("owned"), &st) == 0 && st.st_uid == 4242, "  ... does not take it over");
	is_int(art_chown(reg, &f, NULL, 1, (gid_t)-1), 0, "chown by name");
	ok(stat(disk("owned"), &st) == 0 && st.st_uid == 1 && st.st_gid == 4343,
	   "  ... -1 keeps the group");
	art_remove(reg, &df, 0);
	art_remove(reg, &d, 1);
	art_remove(reg, &f, 0);
	art_remove(reg, &s, 0);
}

static void test_statfs(void)
{
	struct art_loc loc = at("");
	struct statvfs a, b;

	is_int(art_statfs(reg, &loc, &a), 0, "statfs");
	ok(statvfs(top, &b) == 0 && a.f_blocks == b.f_blocks && a.f_bsize == b.f_bsize,
	   "  ... of the file system that holds the folder");
	loc.uri = "/nonexistent/deep/folder";
	is_int(art_statfs(reg, &loc, &a), 0, "statfs of a folder still to be made");
}

/* Paths longer than PATH_MAX: made a folder at a time, reached by walking. */
static void test_long_paths(void)
{
	char seg[201], path[6000], name[6100];
	struct art_file *f = NULL;
	struct art_loc loc;
	struct stat st;
	char buf[16];
	int depth = 0, err = 0, fd, next;

	memset(seg, 'd', 200);
	seg[200] = '\0';
	path[0] = '\0';
	while (strlen(path) < PATH_MAX + 500 && !err) {
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s%s", depth ? "/" : "",
			 seg);
		loc = at(path);
		err = art_mkdir(reg, &loc, 0755, &me);
		depth++;
	}
	is_int(err, 0, "mkdir, level by level, past PATH_MAX");
	snprintf(name, sizeof(name), "%s/leaf", path);
	loc = at(name);
	ok(strlen(name) > PATH_MAX, "the path is %zu bytes", strlen(name));
	is_int(art_open(reg, &loc, O_RDWR | O_CREAT, 0644, &me, &f), 0, "create at the bottom");
	is_int(art_write(f, "deep", 4, 0), 4, "  ... write");
	art_close(f);
	is_int(art_stat(reg, &loc, &st), 0, "stat at the bottom");
	is_int(st.st_size, 4, "  ... its size");
	loc = at(path);
	is_str(listing(path), "leaf:f", "list the bottom folder");
	snprintf(name, sizeof(name), "%s/leaf", path);
	{
		char to[6100];
		struct art_loc from = at(name), dst;

		snprintf(to, sizeof(to), "%s/moved", path);
		dst = at(to);
		is_int(art_rename(reg, &from, &dst, 0), 0, "rename at the bottom");
		is_int(art_symlink(reg, "moved", &from, &me), 0, "symlink at the bottom");
		is_int(art_readlink(reg, &from, buf, sizeof(buf)), 0, "readlink at the bottom");
		is_str(buf, "moved", "  ... its target");
		is_int(art_remove(reg, &from, 0), 0, "unlink the link");
		from = dst;
		is_int(art_truncate(reg, &from, 2), 0, "truncate at the bottom");
	}
	/* The same file on disk, reached the same way. */
	fd = open(disk(""), O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < depth && fd >= 0; i++) {
		next = openat(fd, seg, O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = next;
	}
	ok(fd >= 0 && fstatat(fd, "moved", &st, 0) == 0 && st.st_size == 2,
	   "  ... on disk, %d folders down", depth);
	if (fd >= 0)
		close(fd);
	snprintf(name, sizeof(name), "%s/%s", path, seg);
	loc = at(name);
	is_int(art_stat(reg, &loc, &st), -ENOENT, "a missing name at the bottom");
	{
		char bad[6400];

		snprintf(bad, sizeof(bad), "%s/%s%s/x", path, seg, seg);
		loc = at(bad);
		is_int(art_stat(reg, &loc, &st), -ENAMETOOLONG, "a component over NAME_MAX");
	}
}

int main(void)
{
	char root[PATH_MAX + 16];

	snprintf(top, sizeof(top), "%s/unit-art-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(top)) {
		printf("Bail out! cannot make a temporary folder\n");
		return 1;
	}
	snprintf(run_uri, sizeof(run_uri), "file://%s/run", top);
	snprintf(root, sizeof(root), "%s/mlartifacts", top);
	reg = art_registry_new(root, NULL);
	if (!reg) {
		printf("Bail out! no registry\n");
		return 1;
	}
	test_uris();
	test_registry_without_artifact_root();
	test_two_repositories();
	test_root();
	test_files();
	test_renames();
	test_links_and_special_files();
	test_owner();
	test_statfs();
	test_long_paths();
	art_registry_free(reg);
	nftw(top, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
