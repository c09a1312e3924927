'''dbusmock template: org.freedesktop.PolicyKit1 that records what it is asked.

The same control API as dbusmock's stock polkitd template (SetAllowed,
AllowUnknown, SetChallenge), plus GetChecks(), which returns every
CheckAuthorization call as (action_id, details, flags, subject_kind,
subject_name) so tests can check what vmleased passed.

  /usr/bin/python3 -m dbusmock --system --template tests/support/polkitd_template.py
'''
import dbus
from dbusmock import MOCK_IFACE

BUS_NAME = 'org.freedesktop.PolicyKit1'
MAIN_OBJ = '/org/freedesktop/PolicyKit1/Authority'
MAIN_IFACE = 'org.freedesktop.PolicyKit1.Authority'
SYSTEM_BUS = True


def load(mock, _parameters):
    mock.AddProperties(MAIN_IFACE, dbus.Dictionary({
        'BackendName': 'local',
        'BackendVersion': '0.8.15',
        'BackendFeatures': dbus.UInt32(1, variant_level=1),
    }, signature='sv'))
    mock.allow_unknown = False
    mock.allowed = []
    mock.challenge = False
    mock.checks = []
    mock.hang = False
    mock.hung = []


def answer(mock, action_id, flags):
    allowed = action_id in mock.allowed or mock.allow_unknown
    challenge = (not allowed) and mock.challenge and not (flags & 1)
    return (allowed, challenge, {})


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})sa{ss}us', out_signature='(bba{ss})',
                     async_callbacks=('ok_cb', '_err_cb'))
def CheckAuthorization(self, subject, action_id, details, flags, _cancellation_id, ok_cb, _err_cb):
    kind, props = subject
    name = str(props.get('name', ''))
    self.checks.append((str(action_id), dict(details), int(flags), str(kind), name))
    if self.hang:
        self.hung.append((ok_cb, action_id, flags))
    else:
        ok_cb(answer(self, action_id, flags))


@dbus.service.method(MOCK_IFACE, in_signature='b')
def SetHang(self, hang):
    '''Hold every answer while hang is true; answer the held ones when it is set false.'''
    self.hang = hang
    if not hang:
        held, self.hung = self.hung, []
        for ok_cb, action_id, flags in held:
            ok_cb(answer(self, action_id, flags))


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})ss')
def RegisterAuthenticationAgent(_self, _subject, _locale, _object_path):
    pass


@dbus.service.method(MOCK_IFACE, in_signature='b')
def AllowUnknown(self, default):
    self.allow_unknown = default


@dbus.service.method(MOCK_IFACE, in_signature='as')
def SetAllowed(self, actions):
    self.allowed = [str(a) for a in actions]


@dbus.service.method(MOCK_IFACE, in_signature='b')
def SetChallenge(self, challenge):
    '''Answer "challenge" (authentication would help) for actions not allowed.'''
    self.challenge = challenge


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='a(sa{ss}uss)')
def GetChecks(self):
    return dbus.Array([(a, dbus.Dictionary(d, signature='ss'), dbus.UInt32(f), k, n)
                       for (a, d, f, k, n) in self.checks], signature='(sa{ss}uss)')


@dbus.service.method(MOCK_IFACE, in_signature='')
def ClearChecks(self):
    self.checks = []
