/*
 * umockdev_probe: use libudev exactly the way vmlease does, so a test can
 * check what an emulated (umockdev) udev world looks like to the daemon.
 *
 *   (a) monitor: udev_monitor_new_from_netlink(udev, "udev") +
 *       filter_add_match_subsystem_devtype("block", NULL) +
 *       filter_add_match_tag("vmlease")
 *   (b) enumerate: subsystem "block" + tag "vmlease" (also printed without
 *       the tag match, for comparison)
 *   (c) resolve PATH -> /dev/disk/by-path/... : realpath(), stat(),
 *       udev_device_new_from_devnum('b', st_rdev), then the devlinks list
 *       entry under /dev/disk/by-path/, else the DEVLINKS property, else
 *       ID_PATH
 *   (d) print every received uevent (action, devnode, ID_PATH, devlinks)
 *
 * Build: gcc -O2 -Wall -o umockdev_probe umockdev_probe.c -ludev
 *
 * Usage: umockdev_probe [-n N] [-t MS] [-b BYTES] [-T] [-q] [PATH...]
 *   -n N      exit after N received events (default 0: only the timeout)
 *   -t MS     exit after MS milliseconds without an event (default 3000)
 *   -b BYTES  udev_monitor_set_receive_buffer_size(BYTES) (default: not set)
 *   -T        do NOT add the tag filter to the monitor
 *   -q        quiet monitor: no per-event line, only the SUMMARY
 *
 * Output is line based (stdout, line buffered): ENUM / ENUM_NOTAG / RESOLVE
 * lines, then "READY" once the monitor is receiving, then EVENT lines and a
 * final SUMMARY line.  Exit code 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <libudev.h>

#define TAG "vmlease"
#define BYPATH "/dev/disk/by-path/"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *nz(const char *s) { return s ? s : "-"; }

/* comma-joined devlinks list ("-" if empty) */
static void devlinks(struct udev_device *d, char *buf, size_t len)
{
    struct udev_list_entry *e;
    size_t off = 0;
    buf[0] = '\0';
    udev_list_entry_foreach(e, udev_device_get_devlinks_list_entry(d))
        off += snprintf(buf + off, off < len ? len - off : 0, "%s%s",
                        off ? "," : "", udev_list_entry_get_name(e));
    if (!buf[0])
        snprintf(buf, len, "-");
}

static void tags(struct udev_device *d, char *buf, size_t len)
{
    struct udev_list_entry *e;
    size_t off = 0;
    buf[0] = '\0';
    udev_list_entry_foreach(e, udev_device_get_tags_list_entry(d))
        off += snprintf(buf + off, off < len ? len - off : 0, "%s%s",
                        off ? "," : "", udev_list_entry_get_name(e));
    if (!buf[0])
        snprintf(buf, len, "-");
}

static void describe(const char *what, struct udev_device *d)
{
    char dl[4096], tg[512];
    devlinks(d, dl, sizeof dl);
    tags(d, tg, sizeof tg);
    printf("%s syspath=%s devnode=%s devnum=%u:%u ID_PATH=%s devlinks=%s "
           "DEVLINKS_prop=%s tags=%s has_tag=%d TAGS_prop=%s initialized=%d\n",
           what, udev_device_get_syspath(d), nz(udev_device_get_devnode(d)),
           major(udev_device_get_devnum(d)), minor(udev_device_get_devnum(d)),
           nz(udev_device_get_property_value(d, "ID_PATH")), dl,
           nz(udev_device_get_property_value(d, "DEVLINKS")), tg,
           udev_device_has_tag(d, TAG), nz(udev_device_get_property_value(d, "TAGS")),
           udev_device_get_is_initialized(d));
}

static void enumerate(struct udev *udev, int with_tag)
{
    struct udev_enumerate *en = udev_enumerate_new(udev);
    struct udev_list_entry *e;
    int n = 0;
    udev_enumerate_add_match_subsystem(en, "block");
    if (with_tag)
        udev_enumerate_add_match_tag(en, TAG);
    int r = udev_enumerate_scan_devices(en);
    udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en)) {
        struct udev_device *d =
            udev_device_new_from_syspath(udev, udev_list_entry_get_name(e));
        if (!d)
            continue;
        describe(with_tag ? "ENUM" : "ENUM_NOTAG", d);
        udev_device_unref(d);
        n++;
    }
    printf("%s_COUNT %d (scan rc=%d)\n", with_tag ? "ENUM" : "ENUM_NOTAG", n, r);
    udev_enumerate_unref(en);
}

/* split a space-separated DEVLINKS value, return the by-path entry */
static int bypath_from_prop(const char *links, char *out, size_t len)
{
    const char *p = links;
    while (p && *p) {
        const char *sp = strchr(p, ' ');
        size_t l = sp ? (size_t)(sp - p) : strlen(p);
        if (l > strlen(BYPATH) && strncmp(p, BYPATH, strlen(BYPATH)) == 0 && l < len) {
            memcpy(out, p, l);
            out[l] = '\0';
            return 1;
        }
        p = sp ? sp + 1 : NULL;
    }
    return 0;
}

static void resolve(struct udev *udev, const char *path)
{
    char rp[PATH_MAX], out[PATH_MAX];
    struct stat st;
    const char *how = "none";

    if (!realpath(path, rp))
        snprintf(rp, sizeof rp, "ERR(%s)", strerror(errno));
    if (stat(path, &st) < 0) {
        printf("RESOLVE path=%s realpath=%s stat=ERR(%s)\n", path, rp, strerror(errno));
        return;
    }
    const char *type = S_ISBLK(st.st_mode) ? "blk" : S_ISCHR(st.st_mode) ? "chr"
                     : S_ISREG(st.st_mode) ? "reg" : "other";
    struct udev_device *d = NULL;
    if (S_ISBLK(st.st_mode))
        d = udev_device_new_from_devnum(udev, 'b', st.st_rdev);
    out[0] = '\0';
    if (d) {
        struct udev_list_entry *e;
        udev_list_entry_foreach(e, udev_device_get_devlinks_list_entry(d)) {
            const char *n = udev_list_entry_get_name(e);
            if (strncmp(n, BYPATH, strlen(BYPATH)) == 0) {
                snprintf(out, sizeof out, "%s", n);
                how = "devlinks_list";
                break;
            }
        }
        if (!out[0] && bypath_from_prop(udev_device_get_property_value(d, "DEVLINKS"),
                                        out, sizeof out))
            how = "DEVLINKS_prop";
        if (!out[0] && udev_device_get_property_value(d, "ID_PATH")) {
            snprintf(out, sizeof out, BYPATH "%s",
                     udev_device_get_property_value(d, "ID_PATH"));
            how = "ID_PATH";
        }
    }
    printf("RESOLVE path=%s realpath=%s type=%s rdev=%u:%u udev_dev=%s bypath=%s via=%s\n",
           path, rp, type, major(st.st_rdev), minor(st.st_rdev),
           d ? udev_device_get_syspath(d) : "-", out[0] ? out : "-", how);
    if (d)
        udev_device_unref(d);
}

int main(int argc, char **argv)
{
    long max_events = 0, idle_ms = 3000, rcvbuf = 0;
    int use_tag = 1, quiet = 0, c;

    while ((c = getopt(argc, argv, "n:t:b:Tq")) != -1) {
        switch (c) {
        case 'n': max_events = atol(optarg); break;
        case 't': idle_ms = atol(optarg); break;
        case 'b': rcvbuf = atol(optarg); break;
        case 'T': use_tag = 0; break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n N] [-t MS] [-b BYTES] [-T] [-q] [PATH...]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ENV UMOCKDEV_DIR=%s LD_PRELOAD=%s\n", nz(getenv("UMOCKDEV_DIR")),
           nz(getenv("LD_PRELOAD")));

    struct udev *udev = udev_new();
    if (!udev) {
        perror("udev_new");
        return 1;
    }

    /* monitor first, so that nothing is lost between enumeration and
     * monitoring (the daemon must do the same) */
    struct udev_monitor *mon = udev_monitor_new_from_netlink(udev, "udev");
    if (!mon) {
        perror("udev_monitor_new_from_netlink");
        return 1;
    }
    int r1 = udev_monitor_filter_add_match_subsystem_devtype(mon, "block", NULL);
    int r2 = use_tag ? udev_monitor_filter_add_match_tag(mon, TAG) : 0;
    int r3 = rcvbuf ? udev_monitor_set_receive_buffer_size(mon, (int)rcvbuf) : 0;
    int r4 = udev_monitor_enable_receiving(mon);
    printf("MONITOR subsystem_rc=%d tag_rc=%d (tag filter %s) rcvbuf_rc=%d enable_rc=%d fd=%d\n",
           r1, r2, use_tag ? "on" : "off", r3, r4, udev_monitor_get_fd(mon));

    enumerate(udev, 1);
    enumerate(udev, 0);
    for (int i = optind; i < argc; i++)
        resolve(udev, argv[i]);

    printf("READY\n");

    long n = 0, n_add = 0, n_remove = 0, n_change = 0, n_other = 0, n_err = 0;
    double t_first = 0, t_last = 0;
    struct pollfd pfd = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };
    while (max_events == 0 || n < max_events) {
        int pr = poll(&pfd, 1, (int)idle_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break; /* idle timeout */
        errno = 0;
        struct udev_device *d = udev_monitor_receive_device(mon);
        if (!d) {
            n_err++;
            printf("RECV_ERR errno=%d (%s)\n", errno, strerror(errno));
            if (errno != EAGAIN && errno != ENOBUFS && errno != 0)
                break;
            continue;
        }
        t_last = now_ms();
        if (n == 0)
            t_first = t_last;
        n++;
        const char *a = nz(udev_device_get_action(d));
        if (!strcmp(a, "add")) n_add++;
        else if (!strcmp(a, "remove")) n_remove++;
        else if (!strcmp(a, "change")) n_change++;
        else n_other++;
        if (!quiet) {
            char dl[4096], tg[512], dl2[4096];
            devlinks(d, dl, sizeof dl);
            tags(d, tg, sizeof tg);
            /* what the daemon would see by re-reading the device by syspath
             * (the received object carries only the message's properties) */
            struct udev_device *rd =
                udev_device_new_from_syspath(udev, udev_device_get_syspath(d));
            if (rd)
                devlinks(rd, dl2, sizeof dl2);
            printf("EVENT n=%ld action=%s seqnum=%llu devnode=%s devtype=%s ID_PATH=%s "
                   "devlinks=%s DEVLINKS_prop=%s tags=%s | reread: %s ID_PATH=%s devlinks=%s\n",
                   n, a, udev_device_get_seqnum(d), nz(udev_device_get_devnode(d)),
                   nz(udev_device_get_devtype(d)),
                   nz(udev_device_get_property_value(d, "ID_PATH")), dl,
                   nz(udev_device_get_property_value(d, "DEVLINKS")), tg,
                   rd ? "ok" : "gone",
                   rd ? nz(udev_device_get_property_value(rd, "ID_PATH")) : "-",
                   rd ? dl2 : "-");
            if (rd)
                udev_device_unref(rd);
        }
        udev_device_unref(d);
    }
    printf("SUMMARY events=%ld add=%ld remove=%ld change=%ld other=%ld recv_err=%ld "
           "first_to_last_ms=%.1f\n",
           n, n_add, n_remove, n_change, n_other, n_err, n > 1 ? t_last - t_first : 0.0);
    udev_monitor_unref(mon);
    udev_unref(udev);
    return 0;
}
