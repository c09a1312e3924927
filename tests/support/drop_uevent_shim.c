/*
 * drop_uevent_shim: make a udev monitor lose events the way the kernel does
 * when its receive buffer overflows, so the ENOBUFS path can be tested.
 *
 * Preloaded into vmleased (before umockdev's preload). While the file named
 * by $VMLEASE_TEST_DROP_UEVENTS exists, each recvmsg() on a datagram socket
 * (the monitor's; the bus and sanlock use stream sockets) consumes the
 * datagram and fails with ENOBUFS instead; the file is removed on the first
 * drop, so one event is lost per trigger.
 *
 *   cc -shared -fPIC -O2 -o libdrop_uevent_shim.so drop_uevent_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    static ssize_t (*real)(int, struct msghdr *, int);
    if (!real)
        real = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
    const char *trigger = getenv("VMLEASE_TEST_DROP_UEVENTS");
    int type = 0;
    socklen_t len = sizeof type;
    if (trigger && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM &&
        !(flags & MSG_PEEK) && unlink(trigger) == 0) {
        ssize_t n = real(fd, msg, flags);
        if (n >= 0) {
            errno = ENOBUFS;
            return -1;
        }
        return n;
    }
    return real(fd, msg, flags);
}
