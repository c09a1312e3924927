/*
 * sanlock_probe: exercise exactly the raw sanlock calls vmlease makes, and
 * print return codes and timings.  Also serves as the "raw sanlock calls"
 * benchmark baseline (command `bench`).
 *
 * Build: gcc -O2 -Wall -o sanlock_probe sanlock_probe.c -lsanlock_client
 *        (-lsanlock works too; libsanlock_client is the daemon-client-only lib)
 *
 * The daemon is chosen by $SANLOCK_RUN_DIR (libsanlock reads it with getenv;
 * default /run/sanlock).
 *
 * Usage: sanlock_probe [options] COMMAND [ARGS]
 *   -d DIR     lease directory (default .)
 *   -i ID      host_id (default 1)
 *   -t SEC     io_timeout (default 10)
 *   -L NAME    lockspace name / file name (default __LIBVIRT__DISKS__)
 *   -s         shared lease (SANLK_RES_SHARED) for acquire commands
 *   -P         NOT persistent (default: SANLK_RES_PERSISTENT)
 *   -k PATH    killpath (default /bin/true), -a ARG killpath args (default "arg")
 *   -K         sanlock_killpath flag SANLK_KILLPATH_PID: sanlock appends the
 *              client pid as the last argument (without it, it does not)
 *   -m N       max_hosts for write_lockspace (default 0)
 *   -p N       join: poll inq(0) N times, 200 ms apart, before INQ_WAIT (default 0)
 *
 * Commands:
 *   init                 create <dir>/<ls> (O_EXCL, 1 MiB) + sanlock_write_lockspace
 *   join                 inq (before) / add ASYNC / inq / inq WAIT / add again
 *   leave                sanlock_rem_lockspace (blocking) + inq
 *   lease NAME           create <dir>/NAME (O_EXCL, 1 MiB) + sanlock_write_resource
 *   lease-link NAME      same, written under a temp name then link()ed to NAME
 *   acquire NAME MODE    register/killpath/restrict/acquire; MODE: release | exit
 *                        (persistent orphan) | hold SECS (then release)
 *   orphan NAME MODE     MODE adopt: acquire w/o ORPHAN, then with ORPHAN, release
 *                        MODE adopt-only: acquire with ORPHAN_ONLY, release
 *                        MODE release: REL_ORPHAN with sock -1 and with a registered sock
 *                        MODE release-sock: REL_ORPHAN with the registered sock only
 *                        MODE free: ORPHAN / ORPHAN_ONLY flags on a lease that is free
 *   owners NAME          sanlock_read_resource_owners + sanlock_get_hosts
 *   bench N [NAME-PREFIX]  create N leases, acquire each on one sock, release each
 *   sigterm NAME SECS    hold NAME with RESTRICT_SIGKILL; report every SIGTERM's
 *                        sender (signalfd ssi_pid, its comm and PPid) for SECS s,
 *                        then try a new acquire and release
 *   lockfail NAME SECS [release]
 *                        for lock-failure tests (tests/support/faultfs.c): hold
 *                        NAME (killpath -k/-a, RESTRICT_SIGKILL) for SECS s and
 *                        log every SIGTERM/SIGUSR1 with its wall-clock time
 *                        ("@<epoch s>", comparable with `date +%s.%N`) and
 *                        sender. With "release", the first SIGUSR1 (sent by
 *                        the killpath program, as vmlease-lockfailure tells
 *                        the agent) makes it sanlock_release the lease.
 *                        SIGKILL shows as exit status 137 to the caller.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <sanlock_rv.h>

#define LEASE_SIZE (1024 * 1024)

static const char *lease_dir = ".";
static uint64_t host_id = 1;
static uint32_t io_timeout = 10;
static const char *ls_name = "__LIBVIRT__DISKS__";
static int shared;
static int persistent = 1;
static const char *killpath = "/bin/true";
static const char *killargs = "arg";
static uint32_t killpath_flags; /* -K: SANLK_KILLPATH_PID */
static int max_hosts;   /* -m: write_lockspace max_hosts */
static int inq_polls;   /* -p: inq(0) polls (200 ms apart) before INQ_WAIT */

/* sanlock names need no terminating NUL: copy at most SANLK_NAME_LEN bytes */
static void set_name(char *dst, const char *src)
{
	size_t n = strlen(src);
	memcpy(dst, src, n < SANLK_NAME_LEN ? n : SANLK_NAME_LEN);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *rvstr(int rv)
{
	static char buf[128];
	if (rv >= 0)
		return "ok";
	if (rv <= -200)
		snprintf(buf, sizeof(buf), "sanlock %d", rv);
	else
		snprintf(buf, sizeof(buf), "%s", strerror(-rv));
	return buf;
}

#define REPORT(what, rv, t0) \
	printf("%-44s rv=%-5d (%s) %.1f ms\n", what, rv, rvstr(rv), now_ms() - (t0))

static void fill_lockspace(struct sanlk_lockspace *ls)
{
	memset(ls, 0, sizeof(*ls));
	set_name(ls->name, ls_name);
	ls->host_id = host_id;
	ls->flags = SANLK_LSF_ALIGN1M | SANLK_LSF_SECTOR512;
	snprintf(ls->host_id_disk.path, SANLK_PATH_LEN, "%s/%s", lease_dir, ls_name);
	ls->host_id_disk.offset = 0;
}

static struct sanlk_resource *new_res(const char *name, const char *path)
{
	struct sanlk_resource *res =
		calloc(1, sizeof(*res) + sizeof(struct sanlk_disk));
	set_name(res->lockspace_name, ls_name);
	set_name(res->name, name);
	res->num_disks = 1;
	if (path)
		snprintf(res->disks[0].path, SANLK_PATH_LEN, "%s", path);
	else
		snprintf(res->disks[0].path, SANLK_PATH_LEN, "%s/%s", lease_dir, name);
	res->disks[0].offset = 0;
	return res;
}

/* flags for acquire/release: persistent/shared per options */
static void set_acq_flags(struct sanlk_resource *res)
{
	res->flags = (persistent ? SANLK_RES_PERSISTENT : 0) |
		     (shared ? SANLK_RES_SHARED : 0);
}

static int create_file(const char *path)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0660);
	if (fd < 0)
		return -errno;
	int rv = ftruncate(fd, LEASE_SIZE) < 0 ? -errno : 0;
	close(fd);
	return rv;
}

/* ---- a: lockspace ---- */
static int cmd_init(void)
{
	struct sanlk_lockspace ls;
	double t0;
	int rv;

	fill_lockspace(&ls);
	t0 = now_ms();
	rv = create_file(ls.host_id_disk.path);
	REPORT("create lockspace file (O_EXCL, 1 MiB)", rv, t0);
	if (rv < 0 && rv != -EEXIST)
		return 1;
	t0 = now_ms();
	rv = sanlock_write_lockspace(&ls, max_hosts, 0, io_timeout);
	char what[64];
	snprintf(what, sizeof(what), "sanlock_write_lockspace(max_hosts %d)", max_hosts);
	REPORT(what, rv, t0);

	uint32_t iot = 0;
	struct sanlk_lockspace rd;
	memset(&rd, 0, sizeof(rd));
	rd.host_id_disk = ls.host_id_disk;
	t0 = now_ms();
	rv = sanlock_read_lockspace(&rd, 0, &iot);
	REPORT("sanlock_read_lockspace", rv, t0);
	printf("  name=%.48s flags=0x%x io_timeout=%u\n", rd.name, rd.flags, iot);
	return rv < 0;
}

/* ---- b: join ---- */
static int cmd_join(void)
{
	struct sanlk_lockspace ls;
	double t0, tj;
	int rv, n = 0;

	fill_lockspace(&ls);
	t0 = now_ms();
	rv = sanlock_inq_lockspace(&ls, 0);
	REPORT("inq_lockspace before add", rv, t0);

	tj = t0 = now_ms();
	rv = sanlock_add_lockspace_timeout(&ls, SANLK_ADD_ASYNC, io_timeout);
	REPORT("add_lockspace_timeout(ASYNC)", rv, t0);

	t0 = now_ms();
	rv = sanlock_inq_lockspace(&ls, 0);
	REPORT("inq_lockspace(0) right after add", rv, t0);

	/* poll with inq(0) for a while to see the transient value(s) */
	int last = rv;
	while (rv == -EINPROGRESS && n < inq_polls) {
		usleep(200000);
		rv = sanlock_inq_lockspace(&ls, 0);
		if (rv != last)
			printf("  inq(0) changed to %d after %.0f ms\n", rv, now_ms() - tj);
		last = rv;
		n++;
	}

	t0 = now_ms();
	rv = sanlock_inq_lockspace(&ls, SANLK_INQ_WAIT);
	REPORT("inq_lockspace(INQ_WAIT)", rv, t0);
	printf("  joined %.0f ms after add (io_timeout %u)\n", now_ms() - tj, io_timeout);

	t0 = now_ms();
	rv = sanlock_inq_lockspace(&ls, 0);
	REPORT("inq_lockspace(0) after join", rv, t0);

	t0 = now_ms();
	rv = sanlock_add_lockspace_timeout(&ls, SANLK_ADD_ASYNC, io_timeout);
	REPORT("add_lockspace_timeout(ASYNC) again", rv, t0);
	t0 = now_ms();
	rv = sanlock_add_lockspace_timeout(&ls, 0, io_timeout);
	REPORT("add_lockspace_timeout(sync) again", rv, t0);

	struct sanlk_lockspace other = ls;
	strcpy(other.name, "NEVER_ADDED");
	t0 = now_ms();
	rv = sanlock_inq_lockspace(&other, 0);
	REPORT("inq_lockspace(never added)", rv, t0);
	t0 = now_ms();
	rv = sanlock_inq_lockspace(&other, SANLK_INQ_WAIT);
	REPORT("inq_lockspace(never added, INQ_WAIT)", rv, t0);
	return 0;
}

static int cmd_leave(void)
{
	struct sanlk_lockspace ls;
	double t0;
	int rv;

	fill_lockspace(&ls);
	t0 = now_ms();
	rv = sanlock_rem_lockspace(&ls, 0);
	REPORT("rem_lockspace(0)", rv, t0);
	t0 = now_ms();
	rv = sanlock_inq_lockspace(&ls, 0);
	REPORT("inq_lockspace after rem", rv, t0);
	return 0;
}

/* ---- c: lease file ---- */
static int write_lease(const char *name, const char *path)
{
	struct sanlk_resource *res = new_res(name, path);
	double t0 = now_ms();
	int rv;

	res->flags = SANLK_RES_ALIGN1M | SANLK_RES_SECTOR512;
	rv = sanlock_write_resource(res, 0, 0, 0);
	REPORT("sanlock_write_resource", rv, t0);
	free(res);
	return rv;
}

static int read_lease(const char *name, const char *path)
{
	struct sanlk_resource *res = new_res(name, path);
	double t0 = now_ms();
	int rv = sanlock_read_resource(res, 0);
	REPORT("sanlock_read_resource", rv, t0);
	if (rv == 0)
		printf("  ls=%.48s res=%.48s lver=%" PRIu64 " flags=0x%x\n",
		       res->lockspace_name, res->name, res->lver, res->flags);
	free(res);
	return rv;
}

static int cmd_lease(const char *name, int via_link)
{
	char path[SANLK_PATH_LEN], tmp[SANLK_PATH_LEN];
	double t0;
	int rv;

	snprintf(path, sizeof(path), "%s/%s", lease_dir, name);
	if (!via_link) {
		t0 = now_ms();
		rv = create_file(path);
		REPORT("create lease file (O_EXCL, 1 MiB)", rv, t0);
		if (rv < 0)
			return 1;
		rv = write_lease(name, path);
	} else {
		snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%d", lease_dir, name, getpid());
		t0 = now_ms();
		rv = create_file(tmp);
		REPORT("create temp lease file", rv, t0);
		if (rv < 0)
			return 1;
		rv = write_lease(name, tmp);
		t0 = now_ms();
		int lrv = link(tmp, path) < 0 ? -errno : 0;
		REPORT("link(temp, final)", lrv, t0);
		unlink(tmp);
	}
	struct stat st;
	if (stat(path, &st) == 0)
		printf("  size=%lld\n", (long long)st.st_size);
	read_lease(name, path);
	return rv < 0;
}

/* ---- d: register / killpath / restrict ---- */
static int open_conn(void)
{
	double t0 = now_ms();
	int sock = sanlock_register();
	REPORT("sanlock_register", sock < 0 ? sock : 0, t0);
	if (sock < 0)
		return sock;
	t0 = now_ms();
	int rv = sanlock_killpath(sock, killpath_flags, killpath, (char *)killargs);
	REPORT("sanlock_killpath", rv, t0);
	t0 = now_ms();
	rv = sanlock_restrict(sock, SANLK_RESTRICT_SIGKILL);
	REPORT("sanlock_restrict(SIGKILL)", rv, t0);
	return sock;
}

static int do_acquire(int sock, struct sanlk_resource *res, uint32_t flags, const char *what)
{
	double t0 = now_ms();
	int rv = sanlock_acquire(sock, -1, flags, 1, &res, NULL);
	REPORT(what, rv, t0);
	return rv;
}

static int do_release(int sock, struct sanlk_resource *res, uint32_t flags, const char *what)
{
	double t0 = now_ms();
	int rv = sanlock_release(sock, -1, flags, 1, &res);
	REPORT(what, rv, t0);
	return rv;
}

static int cmd_acquire(const char *name, const char *mode, int secs)
{
	struct sanlk_resource *res = new_res(name, NULL);
	int sock = open_conn();
	if (sock < 0)
		return 1;
	set_acq_flags(res);
	printf("  res flags=0x%x (persistent=%d shared=%d) pid=%d\n",
	       res->flags, persistent, shared, getpid());
	int rv = do_acquire(sock, res, 0, "sanlock_acquire");
	fflush(stdout);
	if (rv < 0)
		return 2;
	if (!strcmp(mode, "exit")) {
		printf("  exiting without release\n");
		fflush(stdout);
		_exit(0);
	}
	if (!strcmp(mode, "hold"))
		sleep(secs);
	set_acq_flags(res);
	do_release(sock, res, 0, "sanlock_release");
	return 0;
}

/* ---- g: orphans ---- */
static int cmd_orphan(const char *name, const char *mode)
{
	struct sanlk_resource *res = new_res(name, NULL);
	int sock = open_conn();
	int rv;

	if (sock < 0)
		return 1;
	set_acq_flags(res);
	if (!strcmp(mode, "adopt")) {
		do_acquire(sock, res, 0, "acquire (no ORPHAN flag)");
		do_acquire(sock, res, SANLK_ACQUIRE_ORPHAN, "acquire(SANLK_ACQUIRE_ORPHAN)");
		do_acquire(sock, res, SANLK_ACQUIRE_ORPHAN, "acquire(ORPHAN) again, same sock");
		do_release(sock, res, 0, "release");
	} else if (!strcmp(mode, "adopt-only")) {
		do_acquire(sock, res, SANLK_ACQUIRE_ORPHAN_ONLY, "acquire(ORPHAN_ONLY)");
		do_release(sock, res, 0, "release");
	} else if (!strcmp(mode, "release") || !strcmp(mode, "release-sock")) {
		if (!strcmp(mode, "release"))
			do_release(-1, res, SANLK_REL_ORPHAN, "release(sock -1, REL_ORPHAN)");
		do_release(sock, res, SANLK_REL_ORPHAN, "release(sock, REL_ORPHAN)");
		do_release(sock, res, SANLK_REL_ORPHAN, "release(sock, REL_ORPHAN) again");
		/* REL_ORPHAN is asynchronous: retry until the lease is free */
		double t0 = now_ms();
		int tries = 0;
		do {
			rv = sanlock_acquire(sock, -1, 0, 1, &res, NULL);
			tries++;
			if (rv == -EAGAIN)
				usleep(10000);
		} while (rv == -EAGAIN && now_ms() - t0 < 10000);
		printf("%-44s rv=%-5d (%s) after %d tries, %.1f ms\n",
		       "acquire after orphan release (retry EAGAIN)", rv, rvstr(rv),
		       tries, now_ms() - t0);
		if (rv == 0)
			do_release(sock, res, 0, "release");
	} else if (!strcmp(mode, "free")) {
		/* the orphan flags on a lease that is not an orphan */
		if (do_acquire(sock, res, SANLK_ACQUIRE_ORPHAN, "acquire(ORPHAN) on a free lease") == 0)
			do_release(sock, res, 0, "release");
		if (do_acquire(sock, res, SANLK_ACQUIRE_ORPHAN_ONLY, "acquire(ORPHAN_ONLY) on a free lease") == 0)
			do_release(sock, res, 0, "release");
	} else {
		fprintf(stderr, "orphan mode: adopt | adopt-only | release | release-sock | free\n");
		return 1;
	}
	return 0;
}

/* ---- e: owners ---- */
static const char *host_state(uint32_t f)
{
	switch (f & SANLK_HOST_MASK) {
	case SANLK_HOST_UNKNOWN: return "UNKNOWN";
	case SANLK_HOST_FREE: return "FREE";
	case SANLK_HOST_LIVE: return "LIVE";
	case SANLK_HOST_FAIL: return "FAIL";
	case SANLK_HOST_DEAD: return "DEAD";
	default: return "?";
	}
}

static int cmd_owners(const char *name)
{
	struct sanlk_resource *res = new_res(name, NULL);
	struct sanlk_host *hss = NULL;
	int count = 0, i, rv;
	double t0 = now_ms();

	rv = sanlock_read_resource_owners(res, 0, &hss, &count);
	REPORT("sanlock_read_resource_owners", rv, t0);
	printf("  count=%d res.lver=%" PRIu64 " res.flags=0x%x\n", count, res->lver, res->flags);
	for (i = 0; i < count; i++)
		printf("  owner host_id=%" PRIu64 " generation=%" PRIu64
		       " timestamp=%" PRIu64 " io_timeout=%u flags=0x%x\n",
		       hss[i].host_id, hss[i].generation, hss[i].timestamp,
		       hss[i].io_timeout, hss[i].flags);
	uint64_t owner = count > 0 ? hss[0].host_id : host_id;
	free(hss);

	hss = NULL;
	count = 0;
	t0 = now_ms();
	rv = sanlock_get_hosts(ls_name, owner, &hss, &count, 0);
	REPORT("sanlock_get_hosts(owner)", rv, t0);
	for (i = 0; i < count; i++)
		printf("  host host_id=%" PRIu64 " generation=%" PRIu64
		       " timestamp=%" PRIu64 " io_timeout=%u flags=0x%x %s\n",
		       hss[i].host_id, hss[i].generation, hss[i].timestamp,
		       hss[i].io_timeout, hss[i].flags, host_state(hss[i].flags));
	free(hss);

	hss = NULL;
	count = 0;
	t0 = now_ms();
	rv = sanlock_get_hosts(ls_name, 0, &hss, &count, 0);
	REPORT("sanlock_get_hosts(all)", rv, t0);
	for (i = 0; i < count; i++)
		printf("  host host_id=%" PRIu64 " generation=%" PRIu64 " %s\n",
		       hss[i].host_id, hss[i].generation, host_state(hss[i].flags));
	free(hss);
	free(res);
	return 0;
}

/* ---- d: benchmark ---- */
static int cmd_bench(int n, const char *prefix)
{
	struct sanlk_resource **res = calloc(n, sizeof(*res));
	char name[64];
	double t0, tmin = 1e9, tmax = 0, tsum = 0, t;
	int i, rv, fails = 0;

	t0 = now_ms();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		res[i] = new_res(name, NULL);
		rv = create_file(res[i]->disks[0].path);
		if (rv == -EEXIST)
			continue;
		if (rv == 0) {
			res[i]->flags = SANLK_RES_ALIGN1M | SANLK_RES_SECTOR512;
			rv = sanlock_write_resource(res[i], 0, 0, 0);
		}
		if (rv < 0) {
			printf("  create/write %s: %d (%s)\n", name, rv, rvstr(rv));
			fails++;
		}
	}
	printf("%-44s n=%d fails=%d %.1f ms total, %.2f ms each\n",
	       "create+write_resource", n, fails, now_ms() - t0, (now_ms() - t0) / n);

	int sock = open_conn();
	if (sock < 0)
		return 1;

	fails = 0;
	double tall = now_ms();
	for (i = 0; i < n; i++) {
		set_acq_flags(res[i]);
		t0 = now_ms();
		rv = sanlock_acquire(sock, -1, 0, 1, &res[i], NULL);
		t = now_ms() - t0;
		if (rv < 0) {
			if (fails++ < 5)
				printf("  acquire #%d: %d (%s)\n", i, rv, rvstr(rv));
			continue;
		}
		tsum += t;
		tmin = t < tmin ? t : tmin;
		tmax = t > tmax ? t : tmax;
	}
	printf("%-44s n=%d fails=%d total %.1f ms; each min %.2f avg %.2f max %.2f ms\n",
	       "acquire (1 res per call, one sock)", n, fails, now_ms() - tall, tmin,
	       n > fails ? tsum / (n - fails) : 0, tmax);

	int count = 0;
	char *state = NULL;
	t0 = now_ms();
	rv = sanlock_inquire(sock, -1, 0, &count, &state);
	REPORT("sanlock_inquire", rv, t0);
	printf("  held=%d\n", count);
	free(state);

	fails = 0;
	tmin = 1e9; tmax = 0; tsum = 0;
	tall = now_ms();
	for (i = 0; i < n; i++) {
		t0 = now_ms();
		rv = sanlock_release(sock, -1, 0, 1, &res[i]);
		t = now_ms() - t0;
		if (rv < 0) {
			if (fails++ < 5)
				printf("  release #%d: %d (%s)\n", i, rv, rvstr(rv));
			continue;
		}
		tsum += t;
		tmin = t < tmin ? t : tmin;
		tmax = t > tmax ? t : tmax;
	}
	printf("%-44s n=%d fails=%d total %.1f ms; each min %.2f avg %.2f max %.2f ms\n",
	       "release (1 res per call)", n, fails, now_ms() - tall, tmin,
	       n > fails ? tsum / (n - fails) : 0, tmax);
	for (i = 0; i < n; i++)
		free(res[i]);
	free(res);
	return 0;
}

/* ---- h: SIGTERM from sanlock ---- */
static void describe_pid(pid_t pid, char *out, size_t len)
{
	char path[64], comm[64] = "?", line[256];
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if ((f = fopen(path, "r"))) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r"))) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "PPid: %d", &ppid) == 1)
				break;
		fclose(f);
	}
	snprintf(out, len, "pid %d comm=%s ppid=%d", pid, comm, ppid);
}

static int read_daemon_pid(void)
{
	const char *rd = getenv("SANLOCK_RUN_DIR");
	char path[1100];
	int pid = -1;
	snprintf(path, sizeof(path), "%s/sanlock.pid", rd ? rd : "/run/sanlock");
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = -1;
		fclose(f);
	}
	return pid;
}

static int cmd_sigterm(const char *name, int secs)
{
	struct sanlk_resource *res = new_res(name, NULL);
	sigset_t set;
	char desc[128];

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);

	int sock = open_conn();
	if (sock < 0)
		return 1;
	set_acq_flags(res);
	if (do_acquire(sock, res, 0, "sanlock_acquire") < 0)
		return 2;
	printf("  holding; my pid %d, daemon pid (run/sanlock.pid) %d\n", getpid(),
	       read_daemon_pid());
	fflush(stdout);

	double t0 = now_ms(), first = 0;
	int n = 0;
	while (now_ms() - t0 < secs * 1000.0) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		int left = (int)(secs * 1000.0 - (now_ms() - t0));
		if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (!n)
			first = now_ms();
		describe_pid(si.ssi_pid, desc, sizeof(desc));
		printf("  +%.0f ms SIGTERM #%d from %s (si_code %d)\n",
		       now_ms() - t0, ++n, desc, si.ssi_code);
		fflush(stdout);
	}
	printf("  %d SIGTERMs; first at +%.0f ms\n", n, n ? first - t0 : 0);

	/* a connection targeted for killing: can it still acquire? */
	struct sanlk_resource *r2 = new_res(name, NULL);
	set_acq_flags(r2);
	do_acquire(sock, r2, 0, "acquire on targeted sock (same res)");
	do_release(sock, res, 0, "release on targeted sock");
	int s2 = sanlock_register();
	printf("  new sanlock_register -> %d\n", s2);
	if (s2 >= 0)
		do_acquire(s2, r2, 0, "acquire on a new sock");
	fflush(stdout);
	return 0;
}

/* ---- i: lock failure (faultfs) ---- */
static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_lockfail(const char *name, int secs, int release_on_usr1)
{
	struct sanlk_resource *res = new_res(name, NULL);
	sigset_t set;
	char desc[128];

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);

	int sock = open_conn();
	if (sock < 0)
		return 1;
	set_acq_flags(res);
	if (do_acquire(sock, res, 0, "sanlock_acquire") < 0)
		return 2;
	printf("@%.3f holding %s; pid %d\n", wall_s(), name, getpid());

	double t0 = now_ms();
	int nterm = 0, nusr1 = 0, held = 1;
	while (now_ms() - t0 < secs * 1000.0) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		int left = (int)(secs * 1000.0 - (now_ms() - t0));
		if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		double w = wall_s();
		describe_pid(si.ssi_pid, desc, sizeof(desc));
		printf("@%.3f %s #%d from %s\n", w, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGUSR1",
		       si.ssi_signo == SIGTERM ? ++nterm : ++nusr1, desc);
		if (si.ssi_signo == SIGUSR1 && release_on_usr1 && held) {
			set_acq_flags(res);
			double t1 = now_ms();
			int rv = sanlock_release(sock, -1, 0, 1, &res);
			printf("@%.3f sanlock_release rv=%d (%s) %.1f ms\n", wall_s(), rv, rvstr(rv),
			       now_ms() - t1);
			held = rv < 0;
		}
	}
	printf("@%.3f done: %d SIGTERM, %d SIGUSR1, lease %s\n", wall_s(), nterm, nusr1,
	       held ? "still held" : "released");
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "see the comment at the top of sanlock_probe.c\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "d:i:t:L:sPk:Ka:m:p:")) != -1) {
		switch (opt) {
		case 'd': lease_dir = optarg; break;
		case 'i': host_id = strtoull(optarg, NULL, 10); break;
		case 't': io_timeout = strtoul(optarg, NULL, 10); break;
		case 'L': ls_name = optarg; break;
		case 's': shared = 1; break;
		case 'P': persistent = 0; break;
		case 'k': killpath = optarg; break;
		case 'K': killpath_flags = SANLK_KILLPATH_PID; break;
		case 'a': killargs = optarg; break;
		case 'm': max_hosts = atoi(optarg); break;
		case 'p': inq_polls = atoi(optarg); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	const char *cmd = argv[0];
	printf("# %s run_dir=%s dir=%s host_id=%" PRIu64 " io_timeout=%u\n", cmd,
	       getenv("SANLOCK_RUN_DIR") ? getenv("SANLOCK_RUN_DIR") : "(default)",
	       lease_dir, host_id, io_timeout);

	if (!strcmp(cmd, "init"))
		return cmd_init();
	if (!strcmp(cmd, "join"))
		return cmd_join();
	if (!strcmp(cmd, "leave"))
		return cmd_leave();
	if (!strcmp(cmd, "lease") && argc >= 2)
		return cmd_lease(argv[1], 0);
	if (!strcmp(cmd, "lease-link") && argc >= 2)
		return cmd_lease(argv[1], 1);
	if (!strcmp(cmd, "acquire") && argc >= 3)
		return cmd_acquire(argv[1], argv[2], argc >= 4 ? atoi(argv[3]) : 0);
	if (!strcmp(cmd, "orphan") && argc >= 3)
		return cmd_orphan(argv[1], argv[2]);
	if (!strcmp(cmd, "owners") && argc >= 2)
		return cmd_owners(argv[1]);
	if (!strcmp(cmd, "bench") && argc >= 2)
		return cmd_bench(atoi(argv[1]), argc >= 3 ? argv[2] : "bench");
	if (!strcmp(cmd, "lockfail") && argc >= 3)
		return cmd_lockfail(argv[1], atoi(argv[2]), argc >= 4 && !strcmp(argv[3], "release"));
	if (!strcmp(cmd, "sigterm") && argc >= 3)
		return cmd_sigterm(argv[1], atoi(argv[2]));
	usage();
	return 2;
}
