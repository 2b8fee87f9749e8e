# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fleet and scenario files, and each endpoint's changing state (definitions, debug logging, files)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import threading
import time
import typing as t
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_FILE = os.path.join(HERE, 'scenarios', 'base.yml')


def deep_merge(base: dict[str, t.Any], override: dict[str, t.Any]) -> dict[str, t.Any]:
    """Mappings merge recursively; everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: str) -> dict[str, t.Any]:
    with open(path, encoding='utf-8') as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError('%s: expected a mapping' % path)
    return data


def resolve_scenario(name: str, library: dict[str, dict[str, t.Any]], base: dict[str, t.Any],
                     seen: tuple[str, ...] = ()) -> dict[str, t.Any]:
    """The full scenario: base.yml, then the `extends` chain, then the scenario's own keys."""
    if name not in library:
        raise ValueError('unknown scenario %r' % name)
    if name in seen:
        raise ValueError('scenario %r extends itself' % name)
    own = dict(library[name] or {})
    parent = own.pop('extends', None)
    start = resolve_scenario(parent, library, base, seen + (name,)) if parent else base
    return deep_merge(start, own)


@dataclasses.dataclass
class HostSpec:
    """One endpoint of a fleet."""

    name: str
    scenario_name: str
    scenario: dict[str, t.Any]
    expect: dict[str, t.Any]
    address: str = ''


@dataclasses.dataclass
class Fleet:
    """A parsed fleet file."""

    path: str
    latest_version: int
    user: str
    password: str
    transport: str
    hosts: list[HostSpec]


def load_fleet(path: str) -> Fleet:
    """Read a fleet file: scenario libraries, inline scenarios, hosts (with `count` expansion)."""
    data = load_yaml(path)
    folder = os.path.dirname(os.path.abspath(path))
    library: dict[str, dict[str, t.Any]] = {}
    for name in data.get('scenario_files', [os.path.join(HERE, 'scenarios', 'catalog.yml')]):
        library.update(load_yaml(os.path.join(folder, name)))
    library.update(data.get('scenarios') or {})
    base = load_yaml(BASE_FILE)
    hosts = []
    for entry in data.get('hosts') or []:
        hosts.extend(_expand_host(entry, library, base))
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise ValueError('%s: duplicate host names' % path)
    credentials = data.get('credentials') or {}
    return Fleet(path=path, latest_version=int(data.get('latest_version', 90606)),
                 user=str(credentials.get('user', 'ansible')), password=str(credentials.get('password', 'Lab-Passw0rd!')),
                 transport=str(data.get('transport', 'ntlm')), hosts=hosts)


def _expand_host(entry: dict[str, t.Any], library: dict[str, dict[str, t.Any]], base: dict[str, t.Any]) -> list[HostSpec]:
    scenario_name = entry.get('scenario', entry['name'])
    scenario = deep_merge(resolve_scenario(scenario_name, library, base), entry.get('overrides') or {})
    count = int(entry.get('count', 1))
    if count == 1 and '{' not in entry['name']:
        return [HostSpec(entry['name'], scenario_name, scenario, dict(entry.get('expect') or {}))]
    return [HostSpec(entry['name'].format(index=i + 1), scenario_name, scenario, dict(entry.get('expect') or {}))
            for i in range(count)]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split('.') if p.isdigit())


class EndpointState:
    """What changes on an endpoint while the lab runs. All times are epoch seconds (wall clock)."""

    def __init__(self, spec: HostSpec, latest_version: int, started: float, time_scale: float) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self.time_scale = time_scale
        connector = spec.scenario['connector']
        self.tetra_version = latest_version - int(connector['behind'])
        self.latest_version = latest_version
        self.last_success = int(started - float(connector['last_success_age_h']) * 3600)
        self.last_check = int(started - float(connector['last_check_age_h']) * 3600)
        self.lasterror = int(connector['lasterror'])
        self.debug_logging = bool(connector['debug_logging'])
        self.capture_running = False
        self.pending: list[tuple[float, dict[str, t.Any]]] = []
        self.files: dict[str, bytes] = {}
        self.counters: dict[str, int] = {'http_requests': 0, 'connections': 0, 'auth_failures': 0, 'commands': 0,
                                         'forceupdates': 0, 'resets': 0, 'faults_500': 0, 'operation_timeouts': 0,
                                         'half_open': 0, 'frozen': 0, 'drips': 0}
        self.agent_uuid = connector['agent_uuid'] or str(uuid.UUID(hashlib.md5(spec.name.encode()).hexdigest()))

    @property
    def scenario(self) -> dict[str, t.Any]:
        return self.spec.scenario

    def count(self, name: str) -> int:
        """Increment a counter and return its new value."""
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1
            return self.counters[name]

    def computer_name(self) -> str:
        return self.scenario['host']['computer_name'] or self.spec.name.upper().replace('_', '-')[:15]

    def installed_version(self) -> str | None:
        install = self.scenario['install']
        return install['version'] if install['installed'] else None

    def policy_readable(self) -> bool:
        readable = self.scenario['policy']['readable']
        if readable is not None:
            return bool(readable)
        return version_tuple(self.installed_version() or '0') < (8, 1, 3)

    def schedule_forceupdate(self, now: float) -> None:
        """sfc.exe -forceupdate returns at once; the connector updates (or fails) later."""
        plan = self.scenario['dynamics']['forceupdate']
        with self.lock:
            self.counters['forceupdates'] += 1
            if plan['outcome'] in ('advance', 'fail'):
                self.pending.append((now + float(plan['after_s']) * self.time_scale, plan))

    def settle(self, now: float | None = None) -> None:
        """Apply every scheduled change that is due."""
        now = time.time() if now is None else now
        with self.lock:
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for when, plan in due:
                self._apply(int(when), plan)

    def _apply(self, when: int, plan: dict[str, t.Any]) -> None:
        self.last_check = when
        if plan['outcome'] == 'advance':
            self.tetra_version = self.latest_version
            self.last_success = when
            self.lasterror = 0
        else:
            code = plan.get('lasterror')
            self.lasterror = int(code if code is not None else (self.scenario['connector']['lasterror'] or 4294965194))

    def snapshot(self) -> dict[str, t.Any]:
        """A copy of the state for tests."""
        with self.lock:
            return {'tetra_version': self.tetra_version, 'last_success': self.last_success, 'last_check': self.last_check,
                    'lasterror': self.lasterror, 'debug_logging': self.debug_logging, 'capture_running': self.capture_running,
                    'pending': len(self.pending), 'files': sorted(self.files), 'counters': dict(self.counters)}
