/*
 * swap-on-create: the adversary who may write a lease directory, swapping a
 * file's name for a symbolic link while the file is being made.
 *
 *   swap-on-create DIR PREFIX TARGET
 *
 * Watches opens in DIR with fanotify permission events (only DIR's own
 * entries: FAN_EVENT_ON_CHILD on the directory). The first open of a file
 * whose name starts with PREFIX (its creation, O_CREAT) is held while the
 * file is renamed to NAME.moved and NAME is made a symbolic link to TARGET;
 * then it is allowed, and every other open as it comes. Prints "ready" once
 * watching and "swapped NAME" after the swap, then exits (closing the
 * fanotify descriptor allows whatever is still pending).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s DIR PREFIX TARGET\n", argv[0]);
		return 2;
	}
	const char *prefix = argv[2], *target = argv[3];
	int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
	if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[1]) < 0) {
		perror("fanotify");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char buf[8192] __attribute__((aligned(8)));
	for (;;) {
		ssize_t n = read(fan, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("read");
			return 1;
		}
		int swapped = 0;
		for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->fd < 0)
				continue;
			char link[64], path[PATH_MAX];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", m->fd);
			ssize_t len = readlink(link, path, sizeof(path) - 1);
			path[len > 0 ? len : 0] = '\0';
			const char *base = strrchr(path, '/');
			if (!swapped && base && !strncmp(base + 1, prefix, strlen(prefix))) {
				char moved[PATH_MAX + 8];
				snprintf(moved, sizeof(moved), "%s.moved", path);
				if (rename(path, moved) < 0 || symlink(target, path) < 0) {
					perror("swap");
					return 1;
				}
				printf("swapped %s\n", base + 1);
				fflush(stdout);
				swapped = 1;
			}
			struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
			if (write(fan, &r, sizeof(r)) != sizeof(r))
				perror("response");
			close(m->fd);
		}
		if (swapped)
			return 0;
	}
}
