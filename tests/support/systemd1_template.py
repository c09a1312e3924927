'''org.freedesktop.systemd1 stand-in for running the real systemd-machined in tests.

Load with:
  /usr/bin/python3 -m dbusmock --system --template tests/support/systemd1_template.py \
      [-l LOGFILE] [-p '{"cgroup_root": "/sys/fs/cgroup/unified", "cgroup_prefix": "vmltest-1.slice"}']

What systemd-machined 252 uses (and what this template implements):
  Manager: Subscribe, Unsubscribe, StartTransientUnit, StopUnit, KillUnit, FreezeUnit, ThawUnit, GetUnit,
           GetUnitByPID, Ref/Unref (no-ops), Reload (no-op);
           signals JobNew, JobRemoved, UnitNew, UnitRemoved.
  Units at /org/freedesktop/systemd1/unit/<bus_label_escape(name)> with
  org.freedesktop.systemd1.Unit (ActiveState, SubState, ...) and org.freedesktop.systemd1.Scope;
  Jobs at /org/freedesktop/systemd1/job/<id> with org.freedesktop.systemd1.Job (State) while
  they run.  machined notices a unit going away through PropertiesChanged on the unit and then
  Get(ActiveState) == "inactive"; that is what makes it emit MachineRemoved.

Scopes are real cgroups: <cgroup_root>/<cgroup_prefix>/<Slice>/<unit> on the cgroup v2
hierarchy (autodetected: /sys/fs/cgroup if it is cgroup2, else /sys/fs/cgroup/unified).
The PIDs of the "PIDs" property are moved there, so /proc/<pid>/cgroup shows
"0::/<cgroup_prefix>/machine.slice/machine-<name>.scope" and machined's cg_pid_get_unit()
(which skips leading *.slice components) finds the unit.  Without a writable cgroup v2 tree the
template falls back to tracking the given PIDs only.

A GLib timer (100 ms) watches every active scope: when its cgroup is no longer populated
(or, in fallback mode, all tracked PIDs are gone or zombies) the unit becomes inactive/dead and
PropertiesChanged is emitted.  StopUnit sends SIGTERM+SIGCONT to the scope, the job finishes when
the scope is empty; after stop_timeout seconds (parameter, default 5) the rest gets SIGKILL.
Stopped units stay as ActiveState=inactive; starting a transient unit with the same name again
replaces an inactive unit.
'''

import errno
import os
import signal
import time

import dbus
from gi.repository import GLib

from dbusmock import MOCK_IFACE, mockobject

BUS_NAME = 'org.freedesktop.systemd1'
MAIN_OBJ = '/org/freedesktop/systemd1'
MAIN_IFACE = 'org.freedesktop.systemd1.Manager'
UNIT_IFACE = 'org.freedesktop.systemd1.Unit'
SCOPE_IFACE = 'org.freedesktop.systemd1.Scope'
JOB_IFACE = 'org.freedesktop.systemd1.Job'
SYSTEM_BUS = True

ERR_NO_SUCH_UNIT = 'org.freedesktop.systemd1.NoSuchUnit'
ERR_UNIT_EXISTS = 'org.freedesktop.systemd1.UnitExists'
ERR_NO_SUCH_PROCESS = 'org.freedesktop.systemd1.NoSuchProcess'
ERR_INVALID_ARGS = 'org.freedesktop.DBus.Error.InvalidArgs'
ERR_FAILED = 'org.freedesktop.DBus.Error.Failed'


def bus_label_escape(s):
    '''systemd's bus_label_escape(): every byte that is not [A-Za-z0-9] (and a leading digit)
    becomes _xx (lowercase hex); the empty string becomes "_".'''
    if not s:
        return '_'
    out = []
    for i, b in enumerate(s.encode('utf-8')):
        c = chr(b)
        if (c.isascii() and c.isalpha()) or (i > 0 and c.isascii() and c.isdigit()):
            out.append(c)
        else:
            out.append(f'_{b:02x}')
    return ''.join(out)


def unit_path(name):
    return f'{MAIN_OBJ}/unit/{bus_label_escape(name)}'


def _is_cgroup2(path):
    try:
        with open('/proc/self/mountinfo', encoding='utf-8') as f:
            for line in f:
                fields = line.split()
                sep = fields.index('-')
                if fields[4] == path and fields[sep + 1] == 'cgroup2':
                    return True
    except (OSError, ValueError):
        pass
    return False


def _detect_cgroup_root():
    for cand in ('/sys/fs/cgroup', '/sys/fs/cgroup/unified'):
        if _is_cgroup2(cand):
            return cand
    return None


def _now_usec():
    return int(time.time() * 1000000)


def _pid_alive(pid):
    '''True if pid exists and is not a zombie.'''
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(')') + 2] not in ('Z', 'X')


def load(mock, parameters):
    mock.next_job_id = 1
    mock.units = {}          # name -> state dict
    mock.subscribed = 0
    mock.stop_timeout = float(parameters.get('stop_timeout', 5))
    root = parameters.get('cgroup_root') or _detect_cgroup_root()
    prefix = (parameters.get('cgroup_prefix') or '').strip('/')
    mock.cgroup_base = None
    if root:
        base = os.path.join(root, prefix) if prefix else root
        try:
            os.makedirs(base, exist_ok=True)
            probe = os.path.join(base, f'probe-{os.getpid()}.scope')
            os.mkdir(probe)
            os.rmdir(probe)
            mock.cgroup_base = base
        except OSError as e:
            mock.log(f'cgroup tree {base} not writable ({e}); tracking PIDs only')
    mock.cgroup_root = root
    mock.log(f'systemd1 stand-in: cgroup base {mock.cgroup_base}')

    mock.AddProperties(MAIN_IFACE, {
        'Version': dbus.String('252'),
        'Virtualization': dbus.String(''),
        'Architecture': dbus.String('x86-64'),
        'Tainted': dbus.String(''),
        'SystemState': dbus.String('running'),
        'ControlGroup': dbus.String(''),
        'DefaultStandardOutput': dbus.String('journal'),
    })
    _register_fallbacks(mock)
    GLib.timeout_add(100, _poll, mock)


def bus_label_unescape(s):
    if s == '_':
        return ''
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == '_' and i + 2 < len(s) and all(c in '0123456789abcdefABCDEF' for c in s[i + 1:i + 3]):
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
        else:
            out += s[i].encode()
            i += 1
    return out.decode('utf-8', 'replace')


class _PathFallback(dbus.service.FallbackObject):
    '''Answers for object paths below /org/freedesktop/systemd1/{job,unit} that have no object,
    the way systemd does: a finished job is an unknown object (machined treats
    org.freedesktop.DBus.Error.UnknownObject as "job gone"; the UnknownMethod that dbus-python
    would send makes it keep the machine), and an unknown unit path is a unit with
    LoadState=not-found, ActiveState=inactive.'''
    methods = {}      # for dbusmock's method lookup hook
    interface = ''

    def __init__(self, conn, path, kind):
        super().__init__(conn, path)
        self.kind = kind

    def _props(self, rel, interface):
        full = self.base + rel
        if self.kind == 'unit' and interface == UNIT_IFACE and rel.count('/') == 1:
            name = bus_label_unescape(rel[1:])
            return {'Id': dbus.String(name), 'Names': dbus.Array([name], signature='s'),
                    'LoadState': dbus.String('not-found'), 'ActiveState': dbus.String('inactive'),
                    'SubState': dbus.String('dead'), 'Description': dbus.String(name)}
        if self.kind == 'unit' and rel.count('/') == 1:
            raise dbus.exceptions.DBusException(f'Unknown interface {interface}.',
                                                name='org.freedesktop.DBus.Error.UnknownInterface')
        raise dbus.exceptions.DBusException(f'Unknown object \'{full}\'.',
                                            name='org.freedesktop.DBus.Error.UnknownObject')

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature='ss', out_signature='v', rel_path_keyword='rel')
    def Get(self, interface, prop, rel=None):
        props = self._props(rel, str(interface))
        if str(prop) not in props:
            raise dbus.exceptions.DBusException(f'Unknown property {prop}.',
                                                name='org.freedesktop.DBus.Error.UnknownProperty')
        return props[str(prop)]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature='s', out_signature='a{sv}', rel_path_keyword='rel')
    def GetAll(self, interface, rel=None):
        return dbus.Dictionary(self._props(rel, str(interface)), signature='sv')


_FALLBACKS = []


def _register_fallbacks(mock):
    if _FALLBACKS:          # Reset() calls load() again
        return
    conn = mock.connection
    for kind in ('job', 'unit'):
        fb = _PathFallback(conn, f'{MAIN_OBJ}/{kind}', kind)
        fb.base = f'{MAIN_OBJ}/{kind}'
        _FALLBACKS.append(fb)


# ---------------------------------------------------------------- helpers

def _cg_dir(mock, u):
    return u.get('cgroup_dir')


def _cg_pids(path):
    pids = []
    for dirpath, _dirs, files in os.walk(path):
        if 'cgroup.procs' in files:
            try:
                with open(os.path.join(dirpath, 'cgroup.procs'), encoding='utf-8') as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return pids


def _cg_populated(path):
    try:
        with open(os.path.join(path, 'cgroup.events'), encoding='utf-8') as f:
            for line in f:
                k, v = line.split()
                if k == 'populated':
                    return v == '1'
    except OSError:
        return False
    return False


def _unit_pids(u):
    if u.get('cgroup_dir'):
        return _cg_pids(u['cgroup_dir'])
    return [p for p in u['pids'] if _pid_alive(p)]


def _unit_empty(u):
    if u.get('cgroup_dir'):
        return not _cg_populated(u['cgroup_dir'])
    return not any(_pid_alive(p) for p in u['pids'])


def _rmdir_tree(path):
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def _new_job(mock, unit_name, job_type):
    job_id = mock.next_job_id
    mock.next_job_id += 1
    path = f'{MAIN_OBJ}/job/{job_id}'
    mock.AddObject(path, JOB_IFACE, {
        'Id': dbus.UInt32(job_id),
        'Unit': dbus.Struct((unit_name, dbus.ObjectPath(unit_path(unit_name))), signature='so'),
        'JobType': dbus.String(job_type),
        'State': dbus.String('running'),
        'ActivationDetails': dbus.Array([], signature='(ss)'),
    }, [])
    return job_id, path


def _emit_job_new(mock, job_id, job_path, unit_name):
    mock.EmitSignal(MAIN_IFACE, 'JobNew', 'uos', [dbus.UInt32(job_id), dbus.ObjectPath(job_path), unit_name])
    return False


def _finish_job(mock, job_id, job_path, unit_name, result='done'):
    mock.EmitSignal(MAIN_IFACE, 'JobRemoved', 'uoss',
                    [dbus.UInt32(job_id), dbus.ObjectPath(job_path), unit_name, result])
    try:
        mock.RemoveObject(job_path)
    except dbus.exceptions.DBusException:
        pass
    return False


def _set_state(mock, u, active, sub):
    obj = mockobject.objects.get(u['path'])
    if obj is None:
        return
    changes = {'ActiveState': dbus.String(active), 'SubState': dbus.String(sub)}
    ts = _now_usec()
    if active == 'active':
        changes['ActiveEnterTimestamp'] = dbus.UInt64(ts)
        changes['StateChangeTimestamp'] = dbus.UInt64(ts)
    elif active == 'inactive':
        changes['InactiveEnterTimestamp'] = dbus.UInt64(ts)
        changes['StateChangeTimestamp'] = dbus.UInt64(ts)
    u['active'] = active
    obj.UpdateProperties(UNIT_IFACE, changes)
    if active == 'inactive':
        obj.UpdateProperties(SCOPE_IFACE, {'ControlGroup': dbus.String(''),
                                           'TasksCurrent': dbus.UInt64(2**64 - 1)})


def _unit_became_inactive(mock, u):
    if u.get('cgroup_dir'):
        _rmdir_tree(u['cgroup_dir'])
    _set_state(mock, u, 'inactive', 'dead')
    mock.log(f'unit {u["name"]} inactive')
    for (job_id, job_path) in u.pop('stop_jobs', []):
        _finish_job(mock, job_id, job_path, u['name'])


def _poll(mock):
    now = time.monotonic()
    for u in list(mock.units.values()):
        if u['active'] not in ('active', 'deactivating'):
            continue
        if _unit_empty(u):
            _unit_became_inactive(mock, u)
        elif u['active'] == 'deactivating' and u.get('kill_at') and now >= u['kill_at']:
            u['kill_at'] = None
            obj = mockobject.objects.get(u['path'])
            if obj:
                obj.UpdateProperties(UNIT_IFACE, {'SubState': dbus.String('stop-sigkill')})
            _signal_unit(u, signal.SIGKILL)
    return True


def _signal_unit(u, signo, cont=False):
    n = 0
    pids = _unit_pids(u)
    if pids and u.get('cgroup_dir') and signo == signal.SIGKILL:
        try:   # kernel >= 5.14: kills everything, including processes forked meanwhile
            with open(os.path.join(u['cgroup_dir'], 'cgroup.kill'), 'w', encoding='utf-8') as f:
                f.write('1')
            return len(pids)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signo)
            n += 1
            if cont:
                os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    return n


def _get_unit(mock, name):
    u = mock.units.get(str(name))
    if u is None:
        raise dbus.exceptions.DBusException(f'Unit {name} not loaded.', name=ERR_NO_SUCH_UNIT)
    return u


def _props_to_dict(properties):
    return {str(k): v for (k, v) in properties}


# ---------------------------------------------------------------- Manager API

@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def Subscribe(self):
    self.subscribed += 1


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def Unsubscribe(self):
    self.subscribed = max(0, self.subscribed - 1)


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='')
def Reload(self):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def RefUnit(self, _name=None):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def UnrefUnit(self, _name=None):
    pass


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def GetUnit(self, name):
    return dbus.ObjectPath(_get_unit(self, name)['path'])


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def LoadUnit(self, name):
    return dbus.ObjectPath(_get_unit(self, name)['path'])


@dbus.service.method(MAIN_IFACE, in_signature='u', out_signature='o')
def GetUnitByPID(self, pid):
    pid = int(pid)
    for u in self.units.values():
        if u['active'] in ('active', 'deactivating') and pid in _unit_pids(u):
            return dbus.ObjectPath(u['path'])
    raise dbus.exceptions.DBusException(f'PID {pid} does not belong to any loaded unit.',
                                        name='org.freedesktop.systemd1.NoUnitForPID')


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='a(ssssssouso)')
def ListUnits(self):
    return dbus.Array([
        (u['name'], u['description'], 'loaded', u['active'],
         'running' if u['active'] == 'active' else 'dead', '',
         dbus.ObjectPath(u['path']), dbus.UInt32(0), '', dbus.ObjectPath('/'))
        for u in self.units.values()], signature='(ssssssouso)')


@dbus.service.method(MAIN_IFACE, in_signature='ssa(sv)a(sa(sv))', out_signature='o')
def StartTransientUnit(self, name, mode, properties, _aux):
    name = str(name)
    if not name.endswith('.scope'):
        raise dbus.exceptions.DBusException(f'Only scope units are supported by this stand-in: {name}',
                                            name=ERR_INVALID_ARGS)
    old = self.units.get(name)
    if old is not None:
        if old['active'] in ('active', 'deactivating'):
            raise dbus.exceptions.DBusException(f'Unit {name} already exists.', name=ERR_UNIT_EXISTS)
        self.units.pop(name)
        try:
            self.RemoveObject(old['path'])
        except dbus.exceptions.DBusException:
            pass
        self.EmitSignal(MAIN_IFACE, 'UnitRemoved', 'so', [name, dbus.ObjectPath(old['path'])])

    props = _props_to_dict(properties)
    pids = [int(p) for p in props.get('PIDs', [])]
    if not pids:
        raise dbus.exceptions.DBusException('A scope needs at least one PID (PIDs property).',
                                            name=ERR_INVALID_ARGS)
    for pid in pids:
        if not _pid_alive(pid):
            raise dbus.exceptions.DBusException(f'Failed to add PID {pid} to scope: No such process',
                                                name=ERR_FAILED)
    slice_name = str(props.get('Slice', 'system.slice'))
    description = str(props.get('Description', name))
    cgroup_dir = None
    control_group = ''
    if self.cgroup_base:
        rel_slice = slice_name
        cgroup_dir = os.path.join(self.cgroup_base, rel_slice, name)
        try:
            os.makedirs(cgroup_dir, exist_ok=True)
            for pid in pids:
                with open(os.path.join(cgroup_dir, 'cgroup.procs'), 'w', encoding='utf-8') as f:
                    f.write(str(pid))
        except OSError as e:
            _rmdir_tree(cgroup_dir)
            raise dbus.exceptions.DBusException(f'Failed to move PIDs {pids} into {cgroup_dir}: {e}',
                                                name=ERR_FAILED)
        control_group = '/' + os.path.relpath(cgroup_dir, self.cgroup_root)

    path = unit_path(name)
    ts = _now_usec()
    self.AddObject(path, UNIT_IFACE, {
        'Id': dbus.String(name),
        'Names': dbus.Array([name], signature='s'),
        'Following': dbus.String(''),
        'Description': dbus.String(description),
        'LoadState': dbus.String('loaded'),
        'ActiveState': dbus.String('active'),
        'SubState': dbus.String('running'),
        'FreezerState': dbus.String('running'),
        'FragmentPath': dbus.String(''),
        'UnitFileState': dbus.String('transient'),
        'Transient': dbus.Boolean(True),
        'CanStart': dbus.Boolean(False),
        'CanStop': dbus.Boolean(True),
        'CanReload': dbus.Boolean(False),
        'CanFreeze': dbus.Boolean(False),
        'Job': dbus.Struct((dbus.UInt32(0), dbus.ObjectPath('/')), signature='uo'),
        'StateChangeTimestamp': dbus.UInt64(ts),
        'ActiveEnterTimestamp': dbus.UInt64(ts),
        'InactiveEnterTimestamp': dbus.UInt64(0),
        'InvocationID': dbus.Array([dbus.Byte(b) for b in os.urandom(16)], signature='y'),
        'CollectMode': dbus.String(str(props.get('CollectMode', 'inactive'))),
    }, [])
    obj = mockobject.objects[path]
    obj.AddProperties(SCOPE_IFACE, {
        'Controller': dbus.String(''),
        'Result': dbus.String('success'),
        'Slice': dbus.String(slice_name),
        'ControlGroup': dbus.String(control_group),
        'ControlGroupId': dbus.UInt64(0),
        'TasksCurrent': dbus.UInt64(len(pids)),
        'KillMode': dbus.String('control-group'),
        'KillSignal': dbus.Int32(15),
        'Delegate': dbus.Boolean(bool(props.get('Delegate', False))),
        'TimeoutStopUSec': dbus.UInt64(int(self.stop_timeout * 1000000)),
        'RuntimeMaxUSec': dbus.UInt64(2**64 - 1),
    })
    u = {'name': name, 'path': path, 'pids': pids, 'cgroup_dir': cgroup_dir, 'active': 'active',
         'description': description, 'properties': {k: str(v) for k, v in props.items()}}
    self.units[name] = u

    job_id, job_path = _new_job(self, name, 'start')
    # Signals go out after the method reply (idle), like systemd's job engine.
    GLib.idle_add(lambda: (self.EmitSignal(MAIN_IFACE, 'UnitNew', 'so', [name, dbus.ObjectPath(path)]),
                           _emit_job_new(self, job_id, job_path, name),
                           _finish_job(self, job_id, job_path, name))[-1])
    return dbus.ObjectPath(job_path)


@dbus.service.method(MAIN_IFACE, in_signature='ss', out_signature='o')
def StopUnit(self, name, _mode):
    name = str(name)
    u = _get_unit(self, name)
    job_id, job_path = _new_job(self, name, 'stop')
    GLib.idle_add(_emit_job_new, self, job_id, job_path, name)
    if u['active'] not in ('active', 'deactivating') or _unit_empty(u):
        if u['active'] in ('active', 'deactivating'):
            GLib.idle_add(lambda: _unit_became_inactive(self, u) or False)
        GLib.idle_add(_finish_job, self, job_id, job_path, name)
        return dbus.ObjectPath(job_path)
    u.setdefault('stop_jobs', []).append((job_id, job_path))
    if u.get('freezer') == 'frozen' and u['cgroup_dir']:
        # systemd thaws a frozen unit before it stops it
        with open(os.path.join(u['cgroup_dir'], 'cgroup.freeze'), 'w', encoding='utf-8') as f:
            f.write('0')
        u['freezer'] = 'running'
    if u['active'] == 'active':
        _set_state(self, u, 'deactivating', 'stop-sigterm')
        u['kill_at'] = time.monotonic() + self.stop_timeout
        _signal_unit(u, signal.SIGTERM, cont=True)
    return dbus.ObjectPath(job_path)


@dbus.service.method(MAIN_IFACE, in_signature='ssi', out_signature='')
def KillUnit(self, name, whom, signo):
    u = _get_unit(self, name)
    whom = str(whom) or 'all'
    if whom not in ('all', 'main', 'control'):
        raise dbus.exceptions.DBusException(f'Invalid who argument {whom}', name=ERR_INVALID_ARGS)
    if not 1 <= int(signo) < 65:
        raise dbus.exceptions.DBusException(f'Signal number out of range: {signo}', name=ERR_INVALID_ARGS)
    if whom != 'all':
        # scopes have neither a main nor a control process
        raise dbus.exceptions.DBusException(f'No {whom} process to kill', name=ERR_NO_SUCH_PROCESS)
    if u['active'] not in ('active', 'deactivating') or _signal_unit(u, int(signo)) == 0:
        raise dbus.exceptions.DBusException('No matching processes to kill', name=ERR_NO_SUCH_PROCESS)


def _freeze(self, name, on):
    '''Like systemd: the unit's cgroup freezer (cgroup.freeze), FreezerState reported.'''
    u = _get_unit(self, str(name))
    if u['active'] != 'active':
        raise dbus.exceptions.DBusException(f'Unit {name} is not active.',
                                            name='org.freedesktop.systemd1.UnitInactive')
    if not u['cgroup_dir'] or (on and getattr(self, 'freeze_refused', False)):
        # systemd 252 refuses on a host without the unified cgroup hierarchy
        raise dbus.exceptions.DBusException('Unit does not support freeze/thaw.',
                                            name='org.freedesktop.DBus.Error.NotSupported')
    with open(os.path.join(u['cgroup_dir'], 'cgroup.freeze'), 'w', encoding='utf-8') as f:
        f.write('1' if on else '0')
    u['freezer'] = 'frozen' if on else 'running'
    self.log(f'{"froze" if on else "thawed"} {name}')


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def FreezeUnit(self, name):
    _freeze(self, name, True)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def ThawUnit(self, name):
    _freeze(self, name, False)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def ResetFailedUnit(self, name):
    _get_unit(self, name)


@dbus.service.method(MAIN_IFACE, in_signature='sba(sv)', out_signature='')
def SetUnitProperties(self, name, _runtime, _properties):
    _get_unit(self, name)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def AbandonScope(self, name):
    _get_unit(self, name)


# ---------------------------------------------------------------- test helpers (Mock interface)

@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='a(ssas)')
def ListMockUnits(self):
    '''(name, ActiveState, pids as strings) of every unit the stand-in knows.'''
    return dbus.Array([(u['name'], u['active'], [str(p) for p in _unit_pids(u)])
                       for u in self.units.values()], signature='(ssas)')


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def SetFreezeRefused(self, refused):
    '''FreezeUnit fails as on a host whose systemd cannot freeze (no unified cgroup hierarchy).'''
    self.freeze_refused = bool(refused)


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='s')
def GetCgroupBase(self):
    return self.cgroup_base or ''
