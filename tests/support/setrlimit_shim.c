/*
 * Test-only LD_PRELOAD shim for running the real sanlock daemon in a
 * container without CAP_SYS_RESOURCE.
 *
 * sanlock's setup_limits() raises RLIMIT_MEMLOCK, RLIMIT_RTPRIO and
 * RLIMIT_CORE to unlimited and exits ("cannot set the limits for memlock")
 * when that fails.  With `-l 0 -h 0` the daemon never calls mlockall() or
 * sched_setscheduler(), so the raised MEMLOCK/RTPRIO limits are not needed:
 * this shim tries the real call and, if raising RLIMIT_MEMLOCK or
 * RLIMIT_RTPRIO fails with EPERM, pretends it succeeded.  Every other
 * resource (RLIMIT_CORE included) is passed through unchanged.
 *
 * Build: gcc -shared -fPIC -o libsetrlimit_shim.so setrlimit_shim.c -ldl
 * Use:   LD_PRELOAD=/path/libsetrlimit_shim.so sanlock daemon -D -w 0 -l 0 -h 0 ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

static int faked(int resource)
{
	return resource == RLIMIT_MEMLOCK || resource == RLIMIT_RTPRIO;
}

#define NEXT(type, name) ((type)dlsym(RTLD_NEXT, name))

typedef int (*setrlimit_fn)(int, const struct rlimit *);
typedef int (*setrlimit64_fn)(int, const struct rlimit64 *);
typedef int (*prlimit_fn)(pid_t, int, const struct rlimit *, struct rlimit *);
typedef int (*prlimit64_fn)(pid_t, int, const struct rlimit64 *, struct rlimit64 *);

/* Pretend only a *set* of a faked resource that the kernel refused. */
#define PRETEND(rv, resource, setting)                                         \
	do {                                                                   \
		if ((rv) < 0 && (setting) && faked(resource) &&               \
		    (errno == EPERM || errno == EACCES)) {                     \
			errno = 0;                                             \
			return 0;                                              \
		}                                                              \
	} while (0)

int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
	setrlimit_fn real = NEXT(setrlimit_fn, "setrlimit");
	int rv = real ? real(resource, rlim) : (errno = ENOSYS, -1);
	PRETEND(rv, resource, 1);
	return rv;
}

int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rlim)
{
	setrlimit64_fn real = NEXT(setrlimit64_fn, "setrlimit64");
	int rv = real ? real(resource, rlim) : (errno = ENOSYS, -1);
	PRETEND(rv, resource, 1);
	return rv;
}

int prlimit(pid_t pid, __rlimit_resource_t resource,
	    const struct rlimit *new_limit, struct rlimit *old_limit)
{
	prlimit_fn real = NEXT(prlimit_fn, "prlimit");
	int rv = real ? real(pid, resource, new_limit, old_limit)
		      : (errno = ENOSYS, -1);
	if (rv < 0 && new_limit && old_limit && faked(resource) &&
	    (errno == EPERM || errno == EACCES)) {
		/* still report the current limit the caller asked for */
		int saved = errno;
		real(pid, resource, NULL, old_limit);
		errno = saved;
	}
	PRETEND(rv, resource, new_limit != NULL);
	return rv;
}

int prlimit64(pid_t pid, __rlimit_resource_t resource,
	      const struct rlimit64 *new_limit, struct rlimit64 *old_limit)
{
	prlimit64_fn real = NEXT(prlimit64_fn, "prlimit64");
	int rv = real ? real(pid, resource, new_limit, old_limit)
		      : (errno = ENOSYS, -1);
	if (rv < 0 && new_limit && old_limit && faked(resource) &&
	    (errno == EPERM || errno == EACCES)) {
		int saved = errno;
		real(pid, resource, NULL, old_limit);
		errno = saved;
	}
	PRETEND(rv, resource, new_limit != NULL);
	return rv;
}
