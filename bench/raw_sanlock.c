/*
 * vmlease-bench-raw: the "raw sanlock" baselines of bench/vmlease-bench.
 * Calls libsanlock_client directly, the way libvirt's sanlock plugin does,
 * in a lockspace that is already joined (by the agent under test, on the
 * same sanlock daemon: $SANLOCK_RUN_DIR).
 *
 * Usage:
 *   vmlease-bench-raw serial DIR LOCKSPACE HOST_ID VMS DISKS
 *       For each of VMS "VMs", one after another: create DISKS lease files in
 *       DIR (named <basename of DIR>-VM-DISK; O_EXCL, 1 MiB, fsync,
 *       sanlock_direct_init as libvirt's plugin does), register a
 *       connection, set a killpath, restrict SIGKILL and acquire the VM's
 *       DISKS leases in one sanlock_acquire call. Prints
 *       "total_ms T" and "per_lease_ms P"; then releases everything.
 *   vmlease-bench-raw cycles DIR LOCKSPACE HOST_ID N
 *       One lease file, one registered connection; N acquire/release
 *       cycles. Prints "acquire_us" and "release_us" lines with N values.
 *   vmlease-bench-raw replay DIR N THREADS READ_BYTES
 *       The I/O floor, without sanlock: N 1 MiB files are made in DIR (not
 *       timed), then THREADS threads replay, for each file in turn, what one
 *       sanlock acquire of a free lease does to it: 3 reads of READ_BYTES
 *       (the leader and the two ballot phases over every host slot:
 *       1 MiB for 2000 slots) and 3 writes of 512 bytes (its dblock twice,
 *       the leader), all O_DIRECT|O_SYNC. Prints "total_ms T".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_direct.h>
#include <sanlock_resource.h>

#define LEASE_SIZE (1024 * 1024)

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static struct sanlk_resource *new_res(const char *dir, const char *ls, const char *name)
{
	struct sanlk_resource *r = calloc(1, sizeof(*r) + sizeof(struct sanlk_disk));
	if (!r)
		abort();
	snprintf(r->lockspace_name, sizeof(r->lockspace_name), "%s", ls);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->num_disks = 1;
	snprintf(r->disks[0].path, sizeof(r->disks[0].path), "%s/%s", dir, name);
	r->disks[0].offset = 0;
	return r;
}

/* Create and format the lease file like libvirt's plugin (and the agent) do:
 * formatted by this process (sanlock_direct_init), not the sanlock daemon. */
static int create_lease(struct sanlk_resource *r)
{
	int fd = open(r->disks[0].path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0660);
	if (fd < 0)
		return -errno;
	int rv = 0;
	if (ftruncate(fd, LEASE_SIZE) < 0 || fsync(fd) < 0)
		rv = -errno;
	close(fd);
	if (rv < 0)
		return rv;
	r->flags = SANLK_RES_ALIGN1M | SANLK_RES_SECTOR512;
	rv = sanlock_direct_init(NULL, r, 0, 0, 0);
	r->flags = SANLK_RES_PERSISTENT;
	return rv;
}

static int open_conn(void)
{
	int sock = sanlock_register();
	if (sock < 0) {
		fprintf(stderr, "sanlock_register: %d\n", sock);
		return sock;
	}
	char args[SANLK_HELPER_ARGS_LEN] = "bench";
	int rv = sanlock_killpath(sock, 0, "/bin/true", args);
	if (rv == 0)
		rv = sanlock_restrict(sock, SANLK_RESTRICT_SIGKILL);
	if (rv < 0) {
		fprintf(stderr, "killpath/restrict: %d\n", rv);
		close(sock);
		return rv;
	}
	return sock;
}

static int cmd_serial(const char *dir, const char *ls, int vms, int disks)
{
	int n = vms * disks;
	struct sanlk_resource **res = calloc(n, sizeof(*res));
	int *socks = calloc(vms, sizeof(int));
	char name[64];
	int fails = 0;
	double create_us = 0, acquire_us = 0;
	const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;

	double t0 = now_us();
	for (int v = 0; v < vms; v++) {
		for (int d = 0; d < disks; d++) {
			int i = v * disks + d;
			/* Resource names are per lockspace: prefix them with the directory's name. */
			snprintf(name, sizeof(name), "%.32s-%04d-%d", base, v, d);
			res[i] = new_res(dir, ls, name);
			double tc = now_us();
			int rv = create_lease(res[i]);
			create_us += now_us() - tc;
			if (rv < 0) {
				fprintf(stderr, "create %s: %d\n", name, rv);
				fails++;
			}
		}
		double ta = now_us();
		socks[v] = open_conn();
		if (socks[v] < 0)
			return 1;
		int rv = sanlock_acquire(socks[v], -1, 0, disks, &res[v * disks], NULL);
		acquire_us += now_us() - ta;
		if (rv < 0) {
			fprintf(stderr, "acquire vm %d: %d\n", v, rv);
			fails++;
		}
	}
	double total = now_us() - t0;
	printf("total_ms %.3f\nper_lease_ms %.3f\ncreate_ms %.3f\nacquire_ms %.3f\nfails %d\n", total / 1e3,
	       total / 1e3 / n, create_us / 1e3, acquire_us / 1e3, fails);
	fflush(stdout);
	for (int v = 0; v < vms; v++) {
		sanlock_release(socks[v], -1, 0, disks, &res[v * disks]);
		close(socks[v]);
	}
	for (int i = 0; i < n; i++)
		free(res[i]);
	free(res);
	free(socks);
	return fails ? 1 : 0;
}

static int cmd_cycles(const char *dir, const char *ls, int n)
{
	struct sanlk_resource *r = new_res(dir, ls, "raw-cycle");
	int rv = create_lease(r);
	if (rv < 0 && rv != -EEXIST) {
		fprintf(stderr, "create: %d\n", rv);
		return 1;
	}
	r->flags = SANLK_RES_PERSISTENT;
	int sock = open_conn();
	if (sock < 0)
		return 1;
	double *acq = calloc(n, sizeof(double)), *rel = calloc(n, sizeof(double));
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		rv = sanlock_acquire(sock, -1, 0, 1, &r, NULL);
		acq[i] = now_us() - t0;
		if (rv < 0) {
			fprintf(stderr, "acquire #%d: %d\n", i, rv);
			return 1;
		}
		t0 = now_us();
		rv = sanlock_release(sock, -1, 0, 1, &r);
		rel[i] = now_us() - t0;
		if (rv < 0) {
			fprintf(stderr, "release #%d: %d\n", i, rv);
			return 1;
		}
	}
	printf("acquire_us");
	for (int i = 0; i < n; i++)
		printf(" %.1f", acq[i]);
	printf("\nrelease_us");
	for (int i = 0; i < n; i++)
		printf(" %.1f", rel[i]);
	printf("\n");
	close(sock);
	free(acq);
	free(rel);
	free(r);
	return 0;
}

struct replay {
	const char *dir;
	int n;
	size_t read_bytes;
	atomic_int next;
	atomic_int fails;
};

static void *replay_thread(void *arg)
{
	struct replay *rp = arg;
	void *buf = NULL;
	if (posix_memalign(&buf, 4096, rp->read_bytes) != 0)
		abort();
	memset(buf, 0, rp->read_bytes);
	char path[4096];
	for (int i; (i = atomic_fetch_add(&rp->next, 1)) < rp->n;) {
		snprintf(path, sizeof(path), "%s/replay-%05d", rp->dir, i);
		int fd = open(path, O_RDWR | O_DIRECT | O_SYNC | O_CLOEXEC);
		if (fd < 0) {
			atomic_fetch_add(&rp->fails, 1);
			continue;
		}
		for (int k = 0; k < 3; k++) {
			if (pread(fd, buf, rp->read_bytes, 0) != (ssize_t)rp->read_bytes)
				atomic_fetch_add(&rp->fails, 1);
			if (pwrite(fd, buf, 512, 512 * (k + 1)) != 512)
				atomic_fetch_add(&rp->fails, 1);
		}
		close(fd);
	}
	free(buf);
	return NULL;
}

static int cmd_replay(const char *dir, int n, int threads, size_t read_bytes)
{
	char path[4096];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/replay-%05d", dir, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, LEASE_SIZE) < 0 || fsync(fd) < 0) {
			fprintf(stderr, "create %s: %s\n", path, strerror(errno));
			return 1;
		}
		close(fd);
	}
	struct replay rp = {.dir = dir, .n = n, .read_bytes = read_bytes};
	pthread_t *t = calloc(threads, sizeof(*t));
	double t0 = now_us();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, replay_thread, &rp);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	double total = now_us() - t0;
	free(t);
	printf("total_ms %.3f\nfails %d\n", total / 1e3, atomic_load(&rp.fails));
	return atomic_load(&rp.fails) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "replay"))
		return cmd_replay(argv[2], atoi(argv[3]), atoi(argv[4]), (size_t)atol(argv[5]));
	if (argc >= 7 && !strcmp(argv[1], "serial"))
		return cmd_serial(argv[2], argv[3], atoi(argv[5]), atoi(argv[6]));
	if (argc >= 6 && !strcmp(argv[1], "cycles"))
		return cmd_cycles(argv[2], argv[3], atoi(argv[5]));
	fprintf(stderr, "usage: see the comment at the top of bench/raw_sanlock.c\n");
	return 2;
}
