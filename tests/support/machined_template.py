'''dbusmock template: an org.freedesktop.machine1 whose word and whose
listing can disagree, to test that vmleased confirms a MachineRemoved with
GetMachine before it releases anything.

Control (org.freedesktop.DBus.Mock on /org/freedesktop/machine1):
  AddMachine(name, leader)  a machine (class vm) that ListMachines,
                            GetMachine and its object's properties show;
                            emits MachineNew
  ForgetMachine(name)       GetMachine and ListMachines no longer know it;
                            no signal
  EmitSignal(...)           dbusmock's own: e.g. MachineRemoved at any time

Manager methods that act: KillMachine(name, who, signal) and
TerminateMachine(name) (SIGTERM) signal the leader AddMachine gave (the
stand-in runs as root, as machined does); NoSuchMachine for a name it does
not know.

  /usr/bin/python3 -m dbusmock --system --template tests/support/machined_template.py
'''
import os
import signal

import dbus
from dbusmock import MOCK_IFACE, mockobject

BUS_NAME = 'org.freedesktop.machine1'
MAIN_OBJ = '/org/freedesktop/machine1'
MAIN_IFACE = 'org.freedesktop.machine1.Manager'
MACHINE_IFACE = 'org.freedesktop.machine1.Machine'
SYSTEM_BUS = True


def path_of(name):
    return MAIN_OBJ + '/machine/' + ''.join(c if c.isalnum() else '_%02x' % ord(c) for c in name)


def load(mock, _parameters):
    mock.machines = {}


@dbus.service.method(MAIN_IFACE, in_signature='', out_signature='a(ssso)')
def ListMachines(self):
    return [(name, 'vm', 'mock', dbus.ObjectPath(path_of(name))) for name in self.machines]


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='o')
def GetMachine(self, name):
    if name not in self.machines:
        raise dbus.exceptions.DBusException('No machine \'%s\' known' % name,
                                            name='org.freedesktop.machine1.NoSuchMachine')
    return dbus.ObjectPath(path_of(name))


def leader_of(self, name):
    if name not in self.machines:
        raise dbus.exceptions.DBusException('No machine \'%s\' known' % name,
                                            name='org.freedesktop.machine1.NoSuchMachine')
    return int(self.machines[name])


@dbus.service.method(MAIN_IFACE, in_signature='ssi', out_signature='')
def KillMachine(self, name, _who, sig):
    os.kill(leader_of(self, name), int(sig))


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def TerminateMachine(self, name):
    os.kill(leader_of(self, name), signal.SIGTERM)


@dbus.service.method(MOCK_IFACE, in_signature='su', out_signature='')
def AddMachine(self, name, leader):
    self.machines[name] = leader
    path = path_of(name)
    if path not in mockobject.objects:
        self.AddObject(path, MACHINE_IFACE, {
            'Name': name, 'Class': 'vm', 'Unit': 'machine-%s.scope' % name, 'Leader': dbus.UInt32(leader),
        }, [])
    self.EmitSignal(MAIN_IFACE, 'MachineNew', 'so', [name, dbus.ObjectPath(path)])


@dbus.service.method(MOCK_IFACE, in_signature='s', out_signature='')
def ForgetMachine(self, name):
    self.machines.pop(name, None)
