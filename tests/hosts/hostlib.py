"""Real hosts: Debian 12 root file systems booted with systemd-nspawn.

Each Host is a container with systemd 252 as PID 1, its own system bus,
journald, logind, systemd-machined, polkitd and the distribution's
sanlock.service (run as user sanlock). Two hosts given the same host
directory (`binds`) share a lease directory as two hosts share storage.

The recipe and its pitfalls are in ../shared/DESIGN.md, "Real hosts":
this machine has no systemd as PID 1 and a hybrid cgroup layout, so each
container is started in a cgroup of its own (unified and name=systemd
hierarchies), with a pure cgroup v2 inside, without machined or systemd
outside (--register=no --keep-unit). Commands run inside through nsenter, in
a scope of the container's own systemd (so its cgroup, machined and polkit
see them as they would see an admin's shell).

Nothing here is vmlease-specific but the `install_project` step: it runs
`meson install` inside the host from the build tree, bound at the same path.
"""
import os
import shlex
import signal
import subprocess
import time

CGROUP_ROOTS = ('/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd')
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class HostError(Exception):
    pass


def _move_to_cgroup(name):
    def move():
        for root in CGROUP_ROOTS:
            if os.path.isdir(root):
                d = os.path.join(root, name)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, 'cgroup.procs'), 'w') as f:
                    f.write(str(os.getpid()))
    return move


def _remove_cgroup(name):
    for root in CGROUP_ROOTS:
        top = os.path.join(root, name)
        if not os.path.isdir(top):
            continue
        # Whatever outlived the container (its nspawn killed, say) goes;
        # cgroup.events says when the last process is gone.
        kill = os.path.join(top, 'cgroup.kill')
        if os.path.exists(kill):
            try:
                with open(kill, 'w') as f:
                    f.write('1')
            except OSError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with open(os.path.join(top, 'cgroup.events')) as f:
                        if 'populated 0' in f.read():
                            break
                except OSError:
                    break
                time.sleep(0.05)
            else:
                print(f'hostlib: processes left in {top} after 10 s', flush=True)
        for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count('/')):
            try:
                os.rmdir(d)
            except OSError:
                pass


class Host:
    """One booted container. `binds`: (outside, inside, read_only) tuples."""

    def __init__(self, name, rootfs, workdir, binds=()):
        self.name = name
        self.rootfs = rootfs
        self.workdir = workdir
        self.binds = list(binds)
        self.nspawn = None
        self.init_pid = None
        self.log_path = os.path.join(workdir, f'{name}.console.log')
        self.cgroup = f'vmlease-test-{name}-{os.getpid()}'

    # --- life cycle -----------------------------------------------------
    def boot(self, timeout=60):
        args = ['systemd-nspawn', '-q', '-D', self.rootfs, '-M', self.name, '--boot',
                '--register=no', '--keep-unit', '--console=read-only', '--volatile=overlay',
                '--private-network', '--capability=CAP_BPF,CAP_PERFMON,CAP_IPC_LOCK',
                '--system-call-filter=bpf']
        for outside, inside, ro in self.binds:
            args.append(('--bind-ro=' if ro else '--bind=') + f'{outside}:{inside}')
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY='1')
        self.log = open(self.log_path, 'wb')
        self.nspawn = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                       stderr=subprocess.STDOUT, env=env,
                                       preexec_fn=_move_to_cgroup(self.cgroup))
        deadline = time.monotonic() + timeout
        while self.init_pid is None:
            if self.nspawn.poll() is not None:
                raise HostError(f'{self.name}: systemd-nspawn exited with {self.nspawn.returncode}; '
                                f'console: {self.console_tail()}')
            if time.monotonic() > deadline:
                raise HostError(f'{self.name}: no init process after {timeout} s')
            self.init_pid = self._find_init()
            if self.init_pid is None:
                time.sleep(0.05)
        # systemd says when it is up (`--wait`), once its private socket is
        # there to ask ("offline" until then).
        state = 'offline'
        while state == 'offline':
            left = int(deadline - time.monotonic())
            if left <= 0:
                break
            if not os.path.exists(self.path('/run/systemd/private')):
                time.sleep(0.05)
                continue
            r = subprocess.run(['nsenter', '-t', str(self.init_pid), '-a', '--', 'env', '-i', f'PATH={PATH}',
                                'timeout', str(left), 'systemctl', 'is-system-running', '--wait'],
                               capture_output=True, text=True)
            state = r.stdout.strip()
        if state != 'running':
            failed = self.run(['systemctl', '--failed', '--no-legend'], check=False).stdout
            raise HostError(f'{self.name}: booted to "{state}", not "running"; failed units:\n{failed}')

    def _find_init(self):
        try:
            with open(f'/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children') as f:
                children = f.read().split()
        except OSError:
            return None
        for c in children:
            try:
                with open(f'/proc/{c}/status') as f:
                    for line in f:
                        # PID 1 in its own pid namespace: the container's init.
                        if line.startswith('NSpid:') and line.split()[-1] == '1' and len(line.split()) > 2:
                            return int(c)
            except OSError:
                continue
        return None

    def stop(self, timeout=40):
        if self.nspawn is None:
            return
        try:
            if self.nspawn.poll() is None and self.init_pid:
                # sanlock ignores SIGTERM while it has a lockspace, and its
                # unit does not SIGKILL it: without this the stop waits 90 s.
                try:
                    self.run(['sanlock', 'shutdown', '-f', '1', '-w', '1'], check=False, timeout=20)
                except HostError as e:
                    print(f'hostlib: {e}', flush=True)
            if self.nspawn.poll() is None:
                # SIGTERM to nspawn = a clean poweroff of the container.
                self.nspawn.send_signal(signal.SIGTERM)
                try:
                    self.nspawn.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.nspawn.kill()
                    self.nspawn.wait()
        finally:
            self.log.close()
            _remove_cgroup(self.cgroup)
            self.nspawn = None

    def console_tail(self, lines=30):
        try:
            with open(self.log_path, 'rb') as f:
                return b'\n'.join(f.read().splitlines()[-lines:]).decode(errors='replace')
        except OSError:
            return ''

    # --- inside ---------------------------------------------------------
    def path(self, inside):
        """The host's file `inside`, seen from outside (its root through /proc)."""
        return f'/proc/{self.init_pid}/root/{inside.lstrip("/")}'

    def write(self, inside, text, mode=0o644):
        p = self.path(inside)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'w') as f:
            f.write(text)
        os.chmod(p, mode)

    def read(self, inside):
        with open(self.path(inside)) as f:
            return f.read()

    def run(self, argv, check=True, user=None, input=None, timeout=60, scope=True):
        """Runs argv inside, as root or as `user`, in a scope of the host's
        systemd; returns the CompletedProcess (text). check: raise on a
        non-zero exit, with the command's output."""
        cmd = list(argv)
        if user is not None:
            cmd = ['setpriv', f'--reuid={user}', f'--regid={user}', '--init-groups', '--'] + cmd
        if scope:
            cmd = ['systemd-run', '--quiet', '--scope', '--collect', '--'] + cmd
        full = ['nsenter', '-t', str(self.init_pid), '-a', '--', 'env', '-i', f'PATH={PATH}',
                'LANG=C.UTF-8', 'SYSTEMD_PAGER=cat', 'SYSTEMD_COLORS=0', 'TERM=dumb'] + cmd
        try:
            # Its own session: nothing it signals (kill 0, a process group)
            # can reach the test.
            r = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout,
                               start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise HostError(f'{self.name}: `{shlex.join(argv)}` did not end within {timeout} s; '
                            f'output so far: {e.stdout!r} {e.stderr!r}')
        if check and r.returncode != 0:
            raise HostError(f'{self.name}: `{shlex.join(argv)}` exited with {r.returncode}:\n'
                            f'{r.stdout}{r.stderr}')
        return r

    def sh(self, script, **kw):
        return self.run(['/bin/sh', '-ec', script], **kw)

    def journal_cursor(self):
        """The journal's cursor now: `journalctl --after-cursor` shows what comes next."""
        return self.run(['journalctl', '-n', '0', '--show-cursor', '-q']).stdout.strip().split('cursor: ')[-1]

    def wait_for(self, what, probe, timeout=60, interval=0.2):
        """Calls probe() until it returns something true; returns it, or raises
        naming `what` and the last value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = probe()
            if last:
                return last
            if time.monotonic() > deadline:
                raise HostError(f'{self.name}: {what}: not within {timeout} s (last: {last!r})')
            time.sleep(interval)
