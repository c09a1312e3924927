#!/usr/bin/python3
"""umockdev_probe.py: how a vmlease test emulates block devices with umockdev.

Run with /usr/bin/python3 (it has gi + UMockdev), NOT under umockdev-wrapper:

    /usr/bin/python3 tests/support/umockdev_probe.py [--burst N] [--udev-db] [--native]

It builds a UMockdev.Testbed with three SCSI disks (sdb, sdc tagged "vmlease",
sdd untagged) carrying ID_PATH, DEVLINKS (by-path + by-id) and TAGS, plus the
/dev/disk/by-* symlinks, compiles tests/support/umockdev_probe.c (gcc, one
file) and starts it *inside* the testbed (env UMOCKDEV_DIR=<testbed root>,
LD_PRELOAD=libumockdev-preload.so.0).  The harness itself is not preloaded.

Phases (each prints CHECK lines, exit status 1 if an expected one fails):
  1 startup: enumeration (with/without tag match) and path resolution
  2 events:  add / change / remove / hot-add via UeventSender (below),
             and what testbed.uevent() does from a non-preloaded process
  3 burst:   N add/remove events (default 5000): blocking UeventSender,
             non-blocking sender (drops on EAGAIN), probe rcvbuf 128 MiB,
             and with --native testbed.uevent() (abort()s on EAGAIN)
  --udev-db: phases 1-2 again with the probe in a private mount namespace
             whose /run/udev holds a udev database for the emulated disks
             (full fidelity: enumerate-by-tag, has_tag, devlinks list)
  --native:  re-exec under umockdev-wrapper and use testbed.uevent()

UeventSender is the piece a real test wants: it writes the libudev
"monitor" datagram itself (header with subsystem/devtype hash and the tag
bloom filter that umockdev 0.17 leaves at 0) to every listening socket
$UMOCKDEV_DIR/event<fd>, carrying all properties of the device's uevent
file, with a blocking send so nothing is lost.
"""
import argparse
import functools
import errno
import glob
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import gi
gi.require_version('UMockdev', '1.0')
from gi.repository import UMockdev  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = 'vmlease'
PRELOAD = 'libumockdev-preload.so.0'

# name, major:minor, SCSI H:C:T:L, serial, tagged
DISKS = [
    ('sdb', (8, 16), '0:0:1:0', 'VMLEASE_B', True),
    ('sdc', (8, 32), '0:0:2:0', 'VMLEASE_C', True),
    ('sdd', (8, 48), '0:0:3:0', 'OTHER_D', False),
]
HOTPLUG = ('sde', (8, 64), '0:0:4:0', 'VMLEASE_E', True)
PCI = '0000:00:10.0'

failures = []


def check(ok, what):
    print('CHECK %s %s' % ('ok  ' if ok else 'FAIL', what))
    if not ok:
        failures.append(what)


# ----------------------------------------------------------------------------
# emulated disks


def disk_info(d, extra=None):
    """extra (udev-testbed's KEY=VALUE words): path=ID_PATH (by-path name),
    path=- (none), path2=ID (a second by-path link, as a disk reached
    through two HBAs has), serial=- (no ID_SERIAL, no scsi by-id link), id_serial=
    (ID_SERIAL as scsi_id gives it, e.g. a WWID "3600a0b8..."), wwn=ID_WWN
    (property and wwn link), dm_uuid=/dm_name= (device-mapper properties and
    their by-id link)."""
    name, (ma, mi), hctl, serial, tagged = d
    extra = extra or {}
    host = 'host' + hctl.split(':')[0]
    tgt = 'target' + ':'.join(hctl.split(':')[:3])
    id_path = extra.get('path', 'pci-%s-scsi-%s' % (PCI, hctl))
    i = dict(
        name=name, major=ma, minor=mi, tagged=tagged,
        syspath='/sys/devices/pci0000:00/%s/virtio2/%s/%s/%s/block/%s' % (PCI, host, tgt, hctl, name),
        id_path=None if id_path == '-' else id_path,
        by_path=None if id_path == '-' else '/dev/disk/by-path/' + id_path,
        by_path2='/dev/disk/by-path/' + extra['path2'] if 'path2' in extra else None,
        by_id=None if extra.get('serial') == '-' else '/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_%s' % serial,
        serial=None if extra.get('serial') == '-' else serial,
        id_serial=extra.get('id_serial'),
        wwn='/dev/disk/by-id/wwn-' + extra.get('wwn', '0x5000c5000000%04x' % (ma * 256 + mi)),
        id_wwn=extra.get('wwn'),
        dm_uuid=extra.get('dm_uuid'), dm_name=extra.get('dm_name'),
    )
    if i['id_serial']:
        i['by_id'] = '/dev/disk/by-id/scsi-' + i['id_serial']
    if i['dm_uuid']:
        i['by_id'] = '/dev/disk/by-id/dm-uuid-' + i['dm_uuid']
    return i


def links_of(i):
    return [l for l in (i['by_path'], i['by_id'], i['wwn'], i['by_path2']) if l]


def add_disk(tb, d, udev_db=None, extra=None):
    """Add one SCSI disk: sysfs dir (path contains /block/ so that
    /sys/dev/block/MAJ:MIN exists), uevent properties, /dev node (sticky bit =
    block device for the preload's stat()), relative /dev/disk/by-* links, and
    dev/.node/<link name> entries so that stat(link) reports st_rdev too.
    The wwn link deliberately gets NO .node entry (shows what happens)."""
    i = disk_info(d, extra)
    root = tb.get_root_dir()
    props = [
        ('SUBSYSTEM', 'block'), ('DEVNAME', '/dev/' + i['name']), ('DEVTYPE', 'disk'),
        ('MAJOR', str(i['major'])), ('MINOR', str(i['minor'])),
    ]
    if i['id_serial']:
        props += [('ID_BUS', 'scsi'), ('ID_SERIAL', i['id_serial'])]
    elif i['serial'] and not i['dm_uuid']:
        props += [('ID_BUS', 'scsi'), ('ID_SERIAL', '0QEMU_QEMU_HARDDISK_' + i['serial'])]
    if i['id_wwn']:
        props += [('ID_WWN', i['id_wwn'])]
    if i['dm_uuid']:
        props += [('DM_UUID', i['dm_uuid'])]
    if i['dm_name']:
        props += [('DM_NAME', i['dm_name'])]
    if i['id_path']:
        props += [('ID_PATH', i['id_path']),
                  ('ID_PATH_TAG', i['id_path'].replace(':', '_').replace('.', '_').replace('-', '_'))]
    props += [('DEVLINKS', ' '.join(links_of(i)))]
    if i['tagged']:
        props += [('TAGS', ':%s:' % TAG), ('CURRENT_TAGS', ':%s:' % TAG)]
    text = 'P: %s\nN: %s\n' % (i['syspath'][4:], i['name'])
    text += ''.join('E: %s=%s\n' % kv for kv in props)
    text += 'A: dev=%d:%d\nA: size=2097152\nA: ro=0\nA: removable=0\n' % (i['major'], i['minor'])
    tb.add_from_string(text)
    for link in links_of(i):
        full = root + link
        if os.path.lexists(full):
            continue  # another path of the same LUN has it (udev: one device wins a shared link)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(os.path.relpath(root + '/dev/' + i['name'], os.path.dirname(full)), full)
        if link != i['wwn'] or i['id_wwn']:
            os.symlink('%d:%d' % (i['major'], i['minor']),
                       root + '/dev/.node/' + link[5:].replace('/', '_'))
    if udev_db:
        write_udev_db(udev_db, i, props)
    return i


def remove_disk(tb, i, udev_db=None):
    root = tb.get_root_dir()
    tb.remove_device(i['syspath'])
    for link in links_of(i):
        for p in (root + link, root + '/dev/.node/' + link[5:].replace('/', '_')):
            if os.path.lexists(p):
                os.unlink(p)
    # remove_device() leaves these behind (re-adding the name would assert)
    for p in (root + '/dev/' + i['name'], root + '/dev/.node/' + i['name'],
              root + '/sys/block/' + i['name'], root + '/sys/class/block/' + i['name'],
              root + '/sys/dev/block/%d:%d' % (i['major'], i['minor'])):
        if os.path.lexists(p):
            os.unlink(p)
    if udev_db:
        for p in ('%s/data/b%d:%d' % (udev_db, i['major'], i['minor']),
                  '%s/tags/%s/b%d:%d' % (udev_db, TAG, i['major'], i['minor'])):
            if os.path.lexists(p):
                os.unlink(p)


def write_udev_db(db, i, props):
    """systemd-udevd database format (/run/udev/data/b8:16, /run/udev/tags/)."""
    dev = 'b%d:%d' % (i['major'], i['minor'])
    os.makedirs(db + '/data', exist_ok=True)
    lines = ['S:' + l[5:] for l in links_of(i)]
    lines.append('I:%d' % int(time.monotonic() * 1e6))
    lines += ['E:%s=%s' % kv for kv in props
              if kv[0] not in ('SUBSYSTEM', 'DEVNAME', 'DEVTYPE', 'MAJOR', 'MINOR',
                               'DEVLINKS', 'TAGS', 'CURRENT_TAGS')]
    if i['tagged']:
        lines += ['G:' + TAG, 'Q:' + TAG]
        os.makedirs('%s/tags/%s' % (db, TAG), exist_ok=True)
        open('%s/tags/%s/%s' % (db, TAG, dev), 'w').close()
    lines.append('V:1')
    with open('%s/data/%s' % (db, dev), 'w') as f:
        f.write('\n'.join(lines) + '\n')


# ----------------------------------------------------------------------------
# uevent sender (replaces testbed.uevent())


@functools.lru_cache(maxsize=None)
def murmur2(data, seed=0):
    """MurmurHash2 as in systemd src/basic/MurmurHash2.c (x86, little endian)."""
    m, r, n = 0x5bd1e995, 24, len(data)
    h = (seed ^ n) & 0xffffffff
    i = 0
    while n - i >= 4:
        k = struct.unpack_from('<I', data, i)[0]
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
        i += 4
    rest = n - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=None)
def bloom64(tag):
    h = murmur2(tag.encode())
    bits = 0
    for shift in (0, 6, 12, 18):
        bits |= 1 << ((h >> shift) & 63)
    return bits


class UeventSender:
    """Sends udev-style (post-udevd) uevents to every libudev monitor that a
    preloaded process has opened in the testbed.  Properties come from the
    device's sysfs uevent file in the testbed (cached, so that a 'remove' can
    be sent after the device is gone, as with real udev)."""

    HDR = 40  # struct udev_monitor_netlink_header

    def __init__(self, root, blocking=True, timeout=10.0):
        self.root, self.blocking, self.timeout = root, blocking, timeout
        self.socks = {}
        self.cache = {}
        self.seqnum = 1000
        self.dropped = 0  # EAGAIN in non-blocking mode

    def props_of(self, syspath):
        try:
            with open(self.root + syspath + '/uevent') as f:
                props = dict(l.rstrip('\n').split('=', 1) for l in f if '=' in l)
            self.cache[syspath] = props
        except FileNotFoundError:
            props = self.cache[syspath]
        return props

    def message(self, syspath, action, extra=None):
        p = dict(self.props_of(syspath))
        p.update(extra or {})
        self.seqnum += 1
        subsystem = p.pop('SUBSYSTEM')
        devtype = p.pop('DEVTYPE', None)
        devname = p.pop('DEVNAME', None)
        kv = [('ACTION', action), ('DEVPATH', syspath[4:]), ('SUBSYSTEM', subsystem),
              ('SEQNUM', str(self.seqnum))]
        if devname:
            kv.append(('DEVNAME', devname if devname.startswith('/') else '/dev/' + devname))
        if devtype:
            kv.append(('DEVTYPE', devtype))
        kv.append(('USEC_INITIALIZED', str(int(time.monotonic() * 1e6))))
        kv += sorted(p.items())
        body = b''.join(('%s=%s' % x).encode() + b'\0' for x in kv)
        bloom = 0
        for t in p.get('TAGS', '').split(':'):
            if t:
                bloom |= bloom64(t)
        hdr = (b'libudev\0' + struct.pack('!I', 0xfeedcafe) +
               struct.pack('=III', self.HDR, self.HDR, len(body)) +
               struct.pack('!IIII', murmur2(subsystem.encode()),
                           murmur2(devtype.encode()) if devtype else 0,
                           bloom >> 32, bloom & 0xffffffff))
        return hdr + body

    def listeners(self):
        paths = set(glob.glob(self.root + '/event[0-9]*'))
        for gone in set(self.socks) - paths:
            self.socks.pop(gone).close()
        for p in paths - set(self.socks):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(p)
            except OSError:  # stale socket file of a closed monitor
                s.close()
                continue
            if self.blocking:
                s.settimeout(self.timeout)
            else:
                s.setblocking(False)
            self.socks[p] = s
        return self.socks

    def send(self, syspath, action, extra=None):
        msg = self.message(syspath, action, extra)
        n = 0
        for path, s in list(self.listeners().items()):
            try:
                s.send(msg)
                n += 1
            except BlockingIOError:
                self.dropped += 1
            except (ConnectionRefusedError, OSError) as e:
                if getattr(e, 'errno', None) in (errno.ECONNREFUSED, errno.ENOTCONN):
                    self.socks.pop(path).close()
                else:
                    raise
        return n


# ----------------------------------------------------------------------------
# the probe process


def build_probe(outdir):
    exe = os.path.join(outdir, 'umockdev_probe')
    subprocess.run(['gcc', '-O2', '-Wall', '-o', exe, os.path.join(HERE, 'umockdev_probe.c'),
                    '-ludev'], check=True)
    return exe


def probe_cmd(exe, args, udev_db=None, ovl=None):
    cmd = [exe] + args
    if udev_db:
        # private mount namespace: /run gets an overlay (host /run unchanged,
        # /run/udev created in the upper layer), then the testbed's udev db is
        # bind-mounted onto /run/udev
        os.makedirs(ovl + '/upper/udev', exist_ok=True)
        os.makedirs(ovl + '/work', exist_ok=True)
        script = ('mount -t overlay overlay -o lowerdir=/run,upperdir=%s/upper,workdir=%s/work /run '
                  '&& mount --bind %s /run/udev && exec "$@"' % (ovl, ovl, udev_db))
        cmd = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh'] + cmd
    return cmd


def start_probe(tb, exe, args, udev_db=None, ovl=None):
    env = dict(os.environ, UMOCKDEV_DIR=tb.get_root_dir(),
               LD_PRELOAD=':'.join(filter(None, [PRELOAD, os.environ.get('LD_PRELOAD')])))
    p = subprocess.Popen(probe_cmd(exe, args, udev_db, ovl), env=env,
                         stdout=subprocess.PIPE, text=True)
    head = []
    for line in p.stdout:
        head.append(line.rstrip('\n'))
        if line.startswith('READY'):
            break
    return p, head


def finish_probe(p, timeout=60):
    out, _ = p.communicate(timeout=timeout)
    return out.splitlines()


def field(line, key):
    for w in line.split(' '):
        if w.startswith(key + '='):
            return w[len(key) + 1:]
    return None


# ----------------------------------------------------------------------------
# phases


def phase_startup_and_events(tb, exe, disks, native, udev_db=None, ovl=None):
    mode = 'udev-db' if udev_db else ('native' if native else 'plain')
    print('\n=== phase 1+2 (%s) ===' % mode)
    b, c, d = disks
    paths = ['/dev/sdb', b['by_id'], b['by_path'], '/dev/sdc', c['wwn'], '/dev/sdd']
    args = ['-t', '1500'] + (['-T'] if native else []) + paths
    p, head = start_probe(tb, exe, args, udev_db, ovl)
    for l in head:
        print('  ' + l)
    enum = [l for l in head if l.startswith('ENUM ')]
    enum_notag = [l for l in head if l.startswith('ENUM_NOTAG ')]
    resolved = {field(l, 'path'): l for l in head if l.startswith('RESOLVE ')}
    if udev_db:
        check(len(enum) == 2, '[%s] enumerate block+tag finds sdb,sdc (got %d)' % (mode, len(enum)))
        check(all(field(l, 'devlinks') != '-' for l in enum), '[%s] devlinks list filled' % mode)
    else:
        check(len(enum) == 0, '[%s] enumerate with match_tag finds NOTHING (no /run/udev/tags) (got %d)'
              % (mode, len(enum)))
        check(all(field(l, 'devlinks') == '-' and field(l, 'tags') == '-' for l in enum_notag),
              '[%s] enumerated devices: devlinks list and tags empty, only properties' % mode)
    check(len(enum_notag) == 3, '[%s] enumerate block without tag finds 3 (got %d)' % (mode, len(enum_notag)))
    check(all(field(l, 'ID_PATH') not in (None, '-') for l in enum_notag), '[%s] ID_PATH present' % mode)
    for path, want in ((paths[0], b['by_path']), (b['by_id'], b['by_path']), (b['by_path'], b['by_path']),
                       ('/dev/sdc', c['by_path']), ('/dev/sdd', d['by_path'])):
        l = resolved.get(path, '')
        check(field(l, 'bypath') == want and field(l, 'type') == 'blk',
              '[%s] resolve %s -> %s via %s (realpath %s)' % (mode, path, field(l, 'bypath'),
                                                              field(l, 'via'), field(l, 'realpath')))
    l = resolved.get(c['wwn'], '')
    check(field(l, 'rdev') == '0:0',
          '[%s] link WITHOUT dev/.node entry: stat gives S_ISBLK but rdev 0:0 -> %s; realpath %s'
          % (mode, field(l, 'bypath'), field(l, 'realpath')))

    root = tb.get_root_dir()
    sender = UeventSender(root)
    t0 = time.monotonic()
    if native:
        tb.uevent(b['syspath'], 'add')
        tb.uevent(c['syspath'], 'change')
        tb.uevent(d['syspath'], 'add')
        tb.uevent(c['syspath'], 'remove')     # must be sent while it still exists
        remove_disk(tb, c, udev_db)
        e = add_disk(tb, HOTPLUG, udev_db)   # 0.17.16: add_from_string itself sends 'add'
    else:
        # what testbed.uevent does in a process without the preload
        tb.uevent(b['syspath'], 'change')     # prints "No such device" on stderr, sends nothing
        sender.send(b['syspath'], 'add')
        sender.send(c['syspath'], 'change')
        sender.send(d['syspath'], 'add')     # untagged: must be filtered by the monitor
        sender.props_of(c['syspath'])
        remove_disk(tb, c, udev_db)          # real order: sysfs gone, then 'remove'
        sender.send(c['syspath'], 'remove')
        e = add_disk(tb, HOTPLUG, udev_db)
        sender.send(e['syspath'], 'add')
    print('  sent 5 events in %.1f ms' % ((time.monotonic() - t0) * 1e3))
    out = finish_probe(p)
    for l in out:
        print('  ' + l)
    ev = [l for l in out if l.startswith('EVENT ')]
    got = [(field(l, 'action'), field(l, 'devnode')) for l in ev]
    want = [('add', '/dev/sdb'), ('change', '/dev/sdc'), ('remove', '/dev/sdc'), ('add', '/dev/sde')]
    if native:
        want = [('add', '/dev/sdb'), ('change', '/dev/sdc'), ('add', '/dev/sdd'),
                ('remove', '/dev/sdc'), ('add', '/dev/sde')]
        check(got == want, '[native, tag filter OFF] testbed.uevent events arrive: %s' % got)
    else:
        check(got == want, '[%s] tag-filtered monitor got exactly %s (sdd filtered out)' % (mode, got))
    check(all(field(l, 'ID_PATH') not in (None, '-') and 'by-path' in (field(l, 'devlinks') or '')
              for l in ev), '[%s] every event carries ID_PATH and a by-path devlink' % mode)
    # restore the original set for the next phase
    remove_disk(tb, e, udev_db)
    add_disk(tb, DISKS[1], udev_db)
    if native:
        print('\n  native + tag filter ON:')
        p, head = start_probe(tb, exe, ['-t', '1000'])
        tb.uevent(b['syspath'], 'add')
        out = finish_probe(p)
        print('  ' + out[-1])
        check(not [l for l in out if l.startswith('EVENT ')],
              '[native] with filter_add_match_tag NOTHING arrives (umockdev sends tag bloom 0)')


def phase_burst(tb, exe, disks, n, native):
    print('\n=== phase 3: burst of %d add/remove events ===' % n)
    b, c = disks[0], disks[1]
    root = tb.get_root_dir()
    variants = [('blocking UeventSender', True, [], 'sender')]
    variants += [('non-blocking sender (drops on EAGAIN)', False, [], 'sender'),
                 ('non-blocking sender, probe rcvbuf 128 MiB', False, ['-b', str(128 << 20)], 'sender')]
    if native:
        variants.append(('testbed.uevent()', False, ['-T'], 'native'))
    for name, blocking, extra, how in variants:
        p, head = start_probe(tb, exe, ['-q', '-t', '3000', '-n', str(n)] + extra)
        s = UeventSender(root, blocking=blocking)
        t0 = time.monotonic()
        # testbed.uevent() abort()s the whole process when the receiver's queue
        # is full (EAGAIN), so the native variant runs in a forked child
        child = os.fork() if how == 'native' else 0
        if child == 0:
            for k in range(n):
                dev = (b, c)[k % 4 // 2]
                action = 'add' if k % 2 == 0 else 'remove'
                if how == 'native':
                    tb.uevent(dev['syspath'], action)
                else:
                    s.send(dev['syspath'], action)
            if how == 'native':
                os._exit(0)
        else:
            st = os.waitpid(child, 0)[1]
            print('  testbed.uevent child: %s' % ('exit %d' % os.WEXITSTATUS(st) if os.WIFEXITED(st)
                                                   else 'killed by signal %d' % os.WTERMSIG(st)))
        t_send = time.monotonic() - t0
        out = finish_probe(p)
        t_all = time.monotonic() - t0
        summ = [l for l in out if l.startswith('SUMMARY')][0]
        got = int(field(summ, 'events'))
        print('  %-50s send %6.0f ms (%6.0f ev/s), received %d/%d in %6.0f ms, EAGAIN-dropped %d, %s'
              % (name, t_send * 1e3, n / t_send, got, n, (t_all * 1e3 if got == n else t_all * 1e3 - 3000),
                 s.dropped, summ))
        if blocking:
            check(got == n, '[burst] %s: all %d delivered' % (name, n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--burst', type=int, default=5000)
    ap.add_argument('--udev-db', action='store_true', help='also run the mount-namespace udev db variant')
    ap.add_argument('--native', action='store_true', help='use testbed.uevent (re-execs under umockdev-wrapper)')
    ap.add_argument('--probe', help='prebuilt umockdev_probe binary')
    a = ap.parse_args()
    if a.native and PRELOAD not in os.environ.get('LD_PRELOAD', ''):
        os.execvp('umockdev-wrapper', ['umockdev-wrapper', sys.executable] + sys.argv)
    print('harness preloaded: %s; net.unix.max_dgram_qlen=%s' % (
        PRELOAD in os.environ.get('LD_PRELOAD', ''),
        open('/proc/sys/net/unix/max_dgram_qlen').read().strip()))

    tmp = tempfile.TemporaryDirectory(prefix='umockdev-probe-')
    exe = a.probe or build_probe(tmp.name)
    tb = UMockdev.Testbed.new()
    print('testbed root', tb.get_root_dir())
    disks = [add_disk(tb, d) for d in DISKS]
    phase_startup_and_events(tb, exe, disks, a.native)
    phase_burst(tb, exe, disks, a.burst, a.native)
    del tb

    if a.udev_db:
        tb = UMockdev.Testbed.new()
        db = tb.get_root_dir() + '/run-udev'
        ovl = tb.get_root_dir() + '/run-ovl'
        disks = [add_disk(tb, d, db) for d in DISKS]
        phase_startup_and_events(tb, exe, disks, False, db, ovl)
        del tb

    print('\n%d check(s) failed' % len(failures) if failures else '\nall checks passed')
    for f in failures:
        print('  FAILED: ' + f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
