/*
 * faultfs: a fault-injecting FUSE passthrough filesystem for sanlock tests.
 *
 * It mirrors a backing directory at a mount point and can make the I/O on it
 * fail or hang on command, so a sanlock daemon whose lease directory is the
 * mount point sees its storage break for real (renewal failure, killpath,
 * recovery), while a second sanlock daemon given the backing directory itself
 * keeps working storage.
 *
 * Build (libfuse 3.12 or newer; Debian 12: apt-get install libfuse3-dev fuse3):
 *   gcc -O2 -Wall -o faultfs faultfs.c $(pkg-config --cflags --libs fuse3) -lpthread
 *
 * Run (as root; always in the foreground, no daemonizing):
 *   faultfs [-o OPT[,OPT...]] BACKING_DIR MOUNTPOINT
 *     -o mode=ok|eio|hang    initial mode (default ok)
 *     -o ctl=NAME            name of the control file in the mount root
 *                            (default .faultfs)
 *     -o hang_intr           a hung request whose caller got a signal (FUSE
 *                            INTERRUPT) returns EINTR; default: it stays hung,
 *                            like real storage (the caller is in D state)
 *     -o max_threads=N       worker thread limit (default 4096; a hung
 *                            request holds one thread)
 *     -o max_background=N    kernel limit of async (aio) requests in flight
 *                            (default 1024 instead of the kernel's 12, so
 *                            hung aio requests do not make new ones queue
 *                            in the kernel)
 *     -d                     libfuse debug output on stderr
 *     other -o options go to libfuse (e.g. allow_other, auto_unmount)
 *
 * Readiness: "READY\n" is printed (and flushed) on stdout once the kernel's
 * FUSE_INIT has been answered, i.e. the mount is up and serving.  Before
 * that, requests on the mount point wait.  Exit status 0 after SIGTERM/SIGINT
 * or an unmount; faultfs unmounts on the way out (root: lazy, MNT_DETACH).
 *
 * Control: the file MOUNTPOINT/.faultfs (not listed by readdir; lookup, open,
 * read and write always work, in every mode).
 *   echo eio  > MNT/.faultfs   every open/create/truncate/read/write/fsync/
 *                              fallocate on other files returns EIO
 *   echo hang > MNT/.faultfs   every read/write/fsync/fallocate blocks until
 *                              the mode changes; then it proceeds under the
 *                              new mode (ok: passes through, eio: EIO)
 *   echo hangmeta > MNT/.faultfs  as hang, and every stat/lookup of a path
 *                              other than the root blocks too (a dead NFS
 *                              server: even stat(2) of a file never returns)
 *   echo hang NAME > MNT/.faultfs  as hang, but only for the file NAME (the
 *                              last component of its path): other files'
 *                              I/O passes through (e.g. one lease file hangs
 *                              while the lockspace is renewed); NAME ending
 *                              in '*' is a prefix (every file whose name
 *                              starts with the rest)
 *   echo ok   > MNT/.faultfs   pass through; releases hung requests
 *   cat MNT/.faultfs           "mode=hang hung=3 hung_total=17 eio_total=0
 *                               io_total=412\n" (hung = blocked right now)
 * The write(2) returns only after the mode is switched (the request is
 * served synchronously by faultfs), so "echo hang > MNT/.faultfs" returning is
 * the moment the fault starts: no race with the test.  An unknown word gives
 * EINVAL.  Metadata (lookup, getattr, readdir, statfs, chmod, chown, unlink,
 * rename, link, mkdir, utimens) always passes through, so the directory stays
 * visible while I/O fails.
 * From C++: open(MNT/.faultfs, O_WRONLY) + write("eio\n") + close.
 *
 * All files are opened with fi->direct_io (FOPEN_DIRECT_IO): no page cache on
 * the mount, so O_DIRECT opens and libaio (io_submit/io_getevents, as sanlock
 * does) work, and reads see writes made by another host to the backing files.
 * The backing files are opened without O_DIRECT (pread/pwrite).  Attribute,
 * entry and negative timeouts are 0 for the same reason.
 *
 * Pitfalls (verified with sanlock 3.8.5, see tests/support/README.md):
 * - A hung request that faultfs has received cannot be killed away: a
 *   process waiting for it stays in D state even after SIGKILL (unless
 *   -o hang_intr and the request is synchronous), and a process with hung aio
 *   cannot finish exiting (sanlock after SIGKILL: state "Zl" until the I/O
 *   ends).  Free them by switching to ok or eio, or by stopping faultfs
 *   (SIGTERM: hung requests fail with EIO, then it unmounts; SIGKILL: the
 *   kernel fails them with ECONNABORTED/ENOTCONN).
 * - In hang mode `sanlock client shutdown -f 1 -w 1` never returns and the
 *   daemon does not exit: switch to ok/eio first, then stop sanlock, then
 *   faultfs.  `fusermount3 -u MNT` fails with EBUSY while sanlock has the
 *   lease files open; `fusermount3 -u -z MNT` detaches lazily.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <fuse.h>
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_OK, MODE_EIO, MODE_HANG, MODE_HANG_META };
static const char *mode_names[] = { "ok", "eio", "hang", "hangmeta" };
#define N_MODES 4

#define CTL_FH UINT64_MAX

static struct {
	char *backing;
	char *mode;
	char *ctl;
	int hang_intr;
	unsigned max_threads;
	unsigned max_background;
} opts = { .max_threads = 4096, .max_background = 1024 };

static int backing_fd = -1;
static char ctl_path[NAME_MAX + 2];
static struct fuse_session *session;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mode_changed;
static enum mode cur_mode = MODE_OK;
static char only_name[NAME_MAX + 1]; /* "hang NAME": only this file hangs */
static unsigned long hung_now, hung_total, eio_total, io_total;

#define FS_OPT(t, p) { t, offsetof(__typeof__(opts), p), 1 }
static const struct fuse_opt faultfs_opts[] = {
	FS_OPT("mode=%s", mode),
	FS_OPT("ctl=%s", ctl),
	FS_OPT("hang_intr", hang_intr),
	FS_OPT("max_threads=%u", max_threads),
	FS_OPT("max_background=%u", max_background),
	FUSE_OPT_END
};

static int parse_mode(const char *s, size_t n, enum mode *m)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' ||
		     s[n - 1] == '\r' || s[n - 1] == '\0'))
		n--;
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	for (int i = 0; i < N_MODES; i++)
		if (strlen(mode_names[i]) == n && !memcmp(s, mode_names[i], n)) {
			*m = i;
			return 0;
		}
	return -1;
}

static void set_mode(enum mode m)
{
	pthread_mutex_lock(&mu);
	cur_mode = m;
	pthread_cond_broadcast(&mode_changed);
	pthread_mutex_unlock(&mu);
	fprintf(stderr, "faultfs: mode %s\n", mode_names[m]);
}

static int hangs(enum mode m, int meta, const char *path)
{
	if (m == MODE_HANG && !meta && only_name[0]) {
		const char *base = path ? strrchr(path, '/') : NULL;
		size_t n = strlen(only_name);
		if (base && only_name[n - 1] == '*')
			return !strncmp(base + 1, only_name, n - 1);
		return base && !strcmp(base + 1, only_name);
	}
	return m == MODE_HANG_META || (m == MODE_HANG && !meta);
}

/*
 * Gate for data I/O (meta 0) and for lookups (meta 1): waits while the mode
 * is hang (data only) or hangmeta (both), then fails with EIO in eio mode
 * (data only).  Returns 0 (go ahead) or a negative errno.
 */
static int gate_wait(int meta, const char *path)
{
	int rv = 0;

	pthread_mutex_lock(&mu);
	io_total++;
	if (hangs(cur_mode, meta, path)) {
		hung_now++;
		hung_total++;
		while (hangs(cur_mode, meta, path)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 200 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&mode_changed, &mu, &ts);
			if (session && fuse_session_exited(session)) {
				rv = -EIO;
				break;
			}
			if (opts.hang_intr && fuse_interrupted()) {
				rv = -EINTR;
				break;
			}
		}
		hung_now--;
	}
	if (!rv && cur_mode == MODE_EIO && !meta)
		rv = -EIO;
	if (rv == -EIO)
		eio_total++;
	pthread_mutex_unlock(&mu);
	return rv;
}

static int gate_io(const char *path)
{
	return gate_wait(0, path);
}

/* Gate for open/create/truncate: EIO in eio mode, never hangs. */
static int gate_open(void)
{
	int rv = 0;
	pthread_mutex_lock(&mu);
	io_total++;
	if (cur_mode == MODE_EIO) {
		eio_total++;
		rv = -EIO;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

static int is_ctl(const char *path)
{
	return path && !strcmp(path, ctl_path);
}

/* path relative to the backing directory fd */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 1;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	conn->want |= conn->capable & FUSE_CAP_ASYNC_DIO;
	if (opts.max_background) {
		conn->max_background = opts.max_background;
		conn->congestion_threshold = opts.max_background * 3 / 4;
	}
	/* our own stdout line: the mount is up and FUSE_INIT is being answered */
	printf("READY\n");
	fflush(stdout);
	return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_ctl(path)) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_ino = 0x7fffffff;
		return 0;
	}
	/* hangmeta: a stat (lookup) of anything but the root hangs too, like a
	 * dead NFS server's, for tests of callers that name a path on it. */
	if (strcmp(path, "/")) {
		int g = gate_wait(1, path);
		if (g < 0)
			return g;
	}
	int rv = (fi && fi->fh != CTL_FH) ? fstat(fi->fh, st)
					  : fstatat(backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
	return rv < 0 ? -errno : 0;
}

static int ff_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(backing_fd, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	int fd = openat(backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int root = !strcmp(rel(path), ".");
	while ((de = readdir(d))) {
		if (root && !strcmp(de->d_name, ctl_path + 1))
			continue;
		struct stat st = { .st_ino = de->d_ino, .st_mode = de->d_type << 12 };
		if (filler(buf, de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int ff_mkdir(const char *path, mode_t mode)
{
	return mkdirat(backing_fd, rel(path), mode) < 0 ? -errno : 0;
}

static int ff_unlink(const char *path)
{
	if (is_ctl(path))
		return -EPERM;
	return unlinkat(backing_fd, rel(path), 0) < 0 ? -errno : 0;
}

static int ff_rmdir(const char *path)
{
	return unlinkat(backing_fd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int ff_symlink(const char *target, const char *path)
{
	return symlinkat(target, backing_fd, rel(path)) < 0 ? -errno : 0;
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_ctl(from) || is_ctl(to))
		return -EPERM;
	return renameat2(backing_fd, rel(from), backing_fd, rel(to), flags) < 0 ? -errno : 0;
}

static int ff_link(const char *from, const char *to)
{
	if (is_ctl(from) || is_ctl(to))
		return -EPERM;
	return linkat(backing_fd, rel(from), backing_fd, rel(to), 0) < 0 ? -errno : 0;
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_ctl(path))
		return 0;
	int rv = (fi && fi->fh != CTL_FH) ? fchmod(fi->fh, mode)
					  : fchmodat(backing_fd, rel(path), mode, 0);
	return rv < 0 ? -errno : 0;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (is_ctl(path))
		return 0;
	int rv = (fi && fi->fh != CTL_FH)
			 ? fchown(fi->fh, uid, gid)
			 : fchownat(backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
	return rv < 0 ? -errno : 0;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fi->fh == CTL_FH))
		return 0;
	int rv = gate_open();
	if (rv)
		return rv;
	if (fi) {
		rv = ftruncate(fi->fh, size);
	} else {
		int fd = openat(backing_fd, rel(path), O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		rv = ftruncate(fd, size) < 0 ? -errno : 0;
		close(fd);
		return rv;
	}
	return rv < 0 ? -errno : 0;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (is_ctl(path))
		return 0;
	int rv = (fi && fi->fh != CTL_FH)
			 ? futimens(fi->fh, tv)
			 : utimensat(backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return rv < 0 ? -errno : 0;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (is_ctl(path)) {
		fi->fh = CTL_FH;
		fi->nonseekable = 1;
		return 0;
	}
	int rv = gate_open();
	if (rv)
		return rv;
	int fd = openat(backing_fd, rel(path),
			(fi->flags & ~(O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	fi->fh = fd;
	return 0;
}

static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	fi->direct_io = 1;
	if (is_ctl(path))
		return -EEXIST;
	int rv = gate_open();
	if (rv)
		return rv;
	int fd = openat(backing_fd, rel(path), (fi->flags & ~(O_DIRECT | O_NOCTTY)) | O_CLOEXEC,
			mode);
	if (fd < 0)
		return -errno;
	fi->fh = fd;
	return 0;
}

static int ctl_read(char *buf, size_t size, off_t off)
{
	char text[256];
	pthread_mutex_lock(&mu);
	int n = snprintf(text, sizeof(text),
			 "mode=%s hung=%lu hung_total=%lu eio_total=%lu io_total=%lu\n",
			 mode_names[cur_mode], hung_now, hung_total, eio_total, io_total);
	pthread_mutex_unlock(&mu);
	if (off >= n)
		return 0;
	if ((size_t)(n - off) < size)
		size = n - off;
	memcpy(buf, text + off, size);
	return size;
}

static int ff_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	if (fi->fh == CTL_FH)
		return ctl_read(buf, size, off);
	int rv = gate_io(path);
	if (rv)
		return rv;
	ssize_t n = pread(fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (fi->fh == CTL_FH) {
		enum mode m;
		size_t n = size;
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
			n--;
		if (n > 5 && !memcmp(buf, "hang ", 5) && n - 5 <= NAME_MAX &&
		    !memchr(buf + 5, '/', n - 5)) {
			pthread_mutex_lock(&mu);
			memcpy(only_name, buf + 5, n - 5);
			only_name[n - 5] = '\0';
			pthread_mutex_unlock(&mu);
			set_mode(MODE_HANG);
			return size;
		}
		if (parse_mode(buf, size, &m) < 0)
			return -EINVAL;
		pthread_mutex_lock(&mu);
		only_name[0] = '\0';
		pthread_mutex_unlock(&mu);
		set_mode(m);
		return size;
	}
	int rv = gate_io(path);
	if (rv)
		return rv;
	ssize_t n = pwrite(fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int ff_statfs(const char *path, struct statvfs *st)
{
	return fstatvfs(backing_fd, st) < 0 ? -errno : 0;
}

static int ff_flush(const char *path, struct fuse_file_info *fi)
{
	return 0;
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
	if (fi->fh != CTL_FH)
		close(fi->fh);
	return 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	if (fi->fh == CTL_FH)
		return 0;
	int rv = gate_io(path);
	if (rv)
		return rv;
	rv = datasync ? fdatasync(fi->fh) : fsync(fi->fh);
	return rv < 0 ? -errno : 0;
}

static int ff_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	if (fi->fh == CTL_FH)
		return -EOPNOTSUPP;
	int rv = gate_io(path);
	if (rv)
		return rv;
	return fallocate(fi->fh, mode, off, len) < 0 ? -errno : 0;
}

static int ff_flock(const char *path, struct fuse_file_info *fi, int op)
{
	if (fi->fh == CTL_FH)
		return 0;
	return flock(fi->fh, op) < 0 ? -errno : 0;
}

static int ff_access(const char *path, int mask)
{
	if (is_ctl(path))
		return 0;
	return faccessat(backing_fd, rel(path), mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static const struct fuse_operations ff_ops = {
	.init = ff_init,
	.getattr = ff_getattr,
	.readlink = ff_readlink,
	.readdir = ff_readdir,
	.mkdir = ff_mkdir,
	.unlink = ff_unlink,
	.rmdir = ff_rmdir,
	.symlink = ff_symlink,
	.rename = ff_rename,
	.link = ff_link,
	.chmod = ff_chmod,
	.chown = ff_chown,
	.truncate = ff_truncate,
	.utimens = ff_utimens,
	.open = ff_open,
	.create = ff_create,
	.read = ff_read,
	.write = ff_write,
	.statfs = ff_statfs,
	.flush = ff_flush,
	.release = ff_release,
	.fsync = ff_fsync,
	.fallocate = ff_fallocate,
	.flock = ff_flock,
	.access = ff_access,
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	if (key == FUSE_OPT_KEY_NONOPT && !opts.backing) {
		opts.backing = strdup(arg);
		return 0; /* consumed: the first non-option is the backing dir */
	}
	return 1;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-o mode=ok|eio|hang,ctl=NAME,hang_intr,max_threads=N,"
		"max_background=N,<fuse options>] [-d] BACKING_DIR MOUNTPOINT\n"
		"control: echo ok|eio|hang > MOUNTPOINT/.faultfs; cat it for the state\n",
		prog);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cl;
	pthread_condattr_t ca;
	int rv = 1;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&mode_changed, &ca);

	if (fuse_opt_parse(&args, &opts, faultfs_opts, opt_proc) < 0)
		return 1;
	if (fuse_parse_cmdline(&args, &cl) != 0)
		return 1;
	if (cl.show_help || cl.show_version || !opts.backing || !cl.mountpoint) {
		usage(argv[0]);
		if (cl.show_help)
			fuse_lib_help(&args);
		return cl.show_help || cl.show_version ? 0 : 2;
	}
	if (opts.mode) {
		enum mode m;
		if (parse_mode(opts.mode, strlen(opts.mode), &m) < 0) {
			fprintf(stderr, "faultfs: bad mode %s\n", opts.mode);
			return 2;
		}
		cur_mode = m;
	}
	const char *ctl = opts.ctl ? opts.ctl : ".faultfs";
	if (!*ctl || strchr(ctl, '/') || strlen(ctl) > NAME_MAX) {
		fprintf(stderr, "faultfs: bad ctl name %s\n", ctl);
		return 2;
	}
	snprintf(ctl_path, sizeof(ctl_path), "/%s", ctl);

	backing_fd = open(opts.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (backing_fd < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", opts.backing, strerror(errno));
		return 1;
	}
	/* fsname/subtype for /proc/mounts; callers' -o options come later and win */
	fuse_opt_insert_arg(&args, 1, "-ofsname=faultfs,subtype=faultfs");

	struct fuse *f = fuse_new(&args, &ff_ops, sizeof(ff_ops), NULL);
	if (!f)
		goto out;
	session = fuse_get_session(f);
	if (fuse_mount(f, cl.mountpoint) != 0)
		goto out_destroy;
	if (fuse_set_signal_handlers(session) != 0)
		goto out_unmount;

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, opts.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, 10);
	fprintf(stderr, "faultfs: %s on %s, mode %s, control %s%s\n", opts.backing,
		cl.mountpoint, mode_names[cur_mode], cl.mountpoint, ctl_path);
	rv = fuse_loop_mt(f, lc) ? 1 : 0;
	fuse_loop_cfg_destroy(lc);

	/* release anything still hung so its thread can finish */
	set_mode(MODE_EIO);
	fuse_remove_signal_handlers(session);
out_unmount:
	fuse_unmount(f);
out_destroy:
	fuse_destroy(f);
out:
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	return rv;
}
