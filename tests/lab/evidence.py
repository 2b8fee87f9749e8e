# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The evidence document (docs/evidence.md) a real endpoint in a scenario would print, with its timings.

Durations follow the endpoint script: local sections one after another, network probes together
(or one by one when `concurrent` is false) until `deadline_s - 2` s after the script started; probes
still running then are reported with their identity and `"timed_out": true`, probes still queued
with `"not_run": true` (the script's Receive-Probe). With `context: system` the LocalSystem task's
record is `system_task`; a task that cannot finish in time leaves every network probe `not_run`.

Support steps also emulate the endpoint-side safety net (docs/evidence.md): `support_start` registers a
one-shot task that, `delay_s` lab seconds later (scaled by the lab's time scale, like every other lab
delay), stops debug logging and the capture on its own, whether or not any client is still there; a
normal `support_finish` removes it. EndpointState has no field for it, so the tasks live beside the
state (`safety_nets(state)`), fired by a timer thread (the Task Scheduler) and, to be exact whatever the
thread scheduling, by `settle_safety_nets` at the start of every document.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import io
import json
import random
import re
import threading
import time
import typing as t
import zipfile

from . import texts
from .scenario import EndpointState, deep_merge

NETWORK_SECTIONS = ('dns', 'tls', 'curl', 'http', 'roots', 'proxy')
# The evidence format number and the timestamp format the script writes. The collection defines them in
# plugins/plugin_utils/_common.py; the lab imports nothing from the collection, so it keeps these copies and
# tests/unit/test_single_sources.py holds them (and NETWORK_SECTIONS) equal to the collection's.
EVIDENCE_FORMAT = 1
TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
SUPPORT_PREFIX = 'C:\\Windows\\Temp\\tetra-support-'
KNOWN_ROOTS = {
    'DF717EAA4AD94EC9558499602D48DE5FBCF03A25': 'CN=IdenTrust Commercial Root CA 1, O=IdenTrust, C=US',
    'A8985D3A65E5E5C4B2D7D66D40C6DD2FB19C5436': 'CN=DigiCert Global Root CA, OU=www.digicert.com, O=DigiCert Inc, C=US',
    'DF3C24F9BFD666761B268073FE06D1CC8D4F82A4': 'CN=DigiCert Global Root G2, OU=www.digicert.com, O=DigiCert Inc, C=US',
}
SOCKET_HRESULT = -2147467259
WEB_HRESULT = -2146233079
# Identity fields every probe record keeps, also when it timed out or did not run (Receive-Probe).
IDENTITY = {'dns': ('name',), 'tls': ('host', 'port'), 'curl': ('path', 'url'), 'http': ('url',), 'proxy': ('server', 'port', 'source')}
# Encoding.WebName of the OEM code page of the host's culture (CultureInfo.TextInfo.OEMCodePage).
OEM_ENCODINGS = {'en-US': 'ibm437', 'fr-FR': 'ibm850', 'de-DE': 'ibm850'}
TASK_NEVER_RAN = 267011
TASK_RUNNING = 267009
PROXY_STATUS = {200: 'Connection established', 407: 'Proxy Authentication Required', 403: 'Forbidden', 502: 'Bad Gateway'}
SAFETY_NET_TASK = re.compile(r'secure_endpoint\.tetra support [0-9A-Za-z-]{1,64}')
STOP_COMMANDS = ('pktmon_stop', 'netsh_trace_stop', 'sfc_log_stop')
# The endpoint script's $SecretElementPattern / $SecretAttributePattern, character for character (a unit test
# compares them with files/tetra_evidence.ps1): password elements and attributes never leave the endpoint.
SECRET_ELEMENT_PATTERN = r'(?is)<((?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*)(?:\s[^<>]*?)?(?:/>|>.*?</\1\s*>)'
SECRET_ATTRIBUTE_PATTERN = r'''(?i)\s+(?!xmlns:)(?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*\s*=\s*(?:"[^"]*"|'[^']*')'''


# ---- the safety net's emulation (kept beside EndpointState, which has no field for it) ----

@dataclasses.dataclass
class SafetyNet:
    """One registered safety-net task on a lab endpoint. Times are epoch seconds (wall clock)."""

    task: str
    armed_at: float
    fires_at: float
    delay_s: int
    stop: list[str]
    fired_at: float | None = None
    removed_at: float | None = None
    timer: threading.Timer | None = None

    @property
    def registered(self) -> bool:
        return self.removed_at is None


def safety_nets(state: EndpointState) -> dict[str, SafetyNet]:
    """The safety-net tasks registered on an endpoint (task name -> SafetyNet), for the lab and its tests."""
    with state.lock:
        return state.__dict__.setdefault('tetra_safety_nets', {})


def fire_safety_net(state: EndpointState, net: SafetyNet, now: float | None = None) -> bool:
    """The task runs its stop commands (LocalSystem, no client involved): True when it fired now."""
    with state.lock:
        if net.fired_at is not None or net.removed_at is not None:
            return False
        net.fired_at = time.time() if now is None else now
        if 'sfc_log_stop' in net.stop:
            state.debug_logging = False
        if 'pktmon_stop' in net.stop or 'netsh_trace_stop' in net.stop:
            state.capture_running = False
        return True


def settle_safety_nets(state: EndpointState, now: float | None = None) -> list[str]:
    """Fire every safety net that is due (the timer normally did already); the names of those fired now."""
    now = time.time() if now is None else now
    with state.lock:
        due = [net for net in safety_nets(state).values() if net.fires_at <= now]
    return [net.task for net in due if fire_safety_net(state, net, now)]


def endpoint_clean(state: EndpointState) -> bool:
    """Debug logging off, no capture running, no safety net waiting to fire."""
    with state.lock:
        waiting = [n for n in safety_nets(state).values() if n.registered and n.fired_at is None]
        return not state.debug_logging and not state.capture_running and not waiting


@dataclasses.dataclass
class Probe:
    """One network probe: where its answer goes, the answer, and how long it took (ms)."""

    section: str
    value: dict[str, t.Any]
    duration_ms: int


@dataclasses.dataclass
class Built:
    """A finished document and the endpoint-side time it took (ms, without PowerShell start-up)."""

    document: dict[str, t.Any]
    duration_ms: int
    forceupdate_at_ms: int | None = None


def not_finished(section: str, value: dict[str, t.Any], timed_out: bool, info: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """New-ProbeRecord: the identity of a probe that timed out or did not run, and nothing it did not see."""
    record = {key: value.get(key) for key in IDENTITY[section]}
    record.update(timed_out=timed_out, not_run=not timed_out, error=info)
    return record


def default_commands(request: dict[str, t.Any]) -> dict[str, t.Any]:
    """The request's command lines; hand-made lab requests without them get what _request.windows_commands sends."""
    commands = request.get('commands')
    if isinstance(commands, dict):
        return commands
    server = str(request.get('update_server') or 'tetra-defs.amp.cisco.com')
    curl = int((request.get('timeouts') or {}).get('curl', 12))
    size = int(request.get('capture_max_mb') or 256)
    oem = {'sfc_forceupdate': '-forceupdate', 'sfc_log_start': '-l start', 'sfc_log_stop': '-l stop', 'pktmon_stop': 'stop',
           'pktmon_start': 'start --capture --pkt-size 0 --file-name "{work_dir}\\capture.etl" --file-size %d' % size,
           'netsh_trace_start': 'trace start capture=yes tracefile="{work_dir}\\capture.etl" maxsize=%d overwrite=yes' % size,
           'netsh_trace_stop': 'trace stop', 'ipsupporttool': '-o "{work_dir}"'}
    commands = {name: {'arguments': arguments, 'encoding': 'oem'} for name, arguments in oem.items()}
    commands['curl'] = {'arguments': '-v --max-time %d https://%s/' % (curl, server), 'encoding': 'utf-8'}
    return commands


def drop_secrets(text: str) -> str:
    """local.xml/policy.xml as the script's Read-TextFile returns it: password elements and attributes dropped."""
    return re.sub(SECRET_ATTRIBUTE_PATTERN, '', re.sub(SECRET_ELEMENT_PATTERN, '', text))


def error(kind: str, hresult: int, text: str, **extra: t.Any) -> dict[str, t.Any]:
    info: dict[str, t.Any] = {'type': kind, 'hresult': hresult, 'message': text}
    info.update(extra)
    return info


class EvidenceBuilder:
    """Builds one document for one request against one endpoint state."""

    def __init__(self, state: EndpointState, request: dict[str, t.Any], user: str, now: float, queries_os: bool = True) -> None:
        self.state = state
        # The file-transfer entry does no CIM work: its host section has no OS caption or build.
        self.queries_os = queries_os
        self.scenario = state.scenario
        self.request = request
        self.user = user
        self.now = now
        self.culture = self.scenario['host']['culture']
        self.oem = OEM_ENCODINGS.get(self.culture, 'ibm437')
        self.commands = default_commands(request)
        self.sections = [str(s) for s in request.get('sections') or []]
        self.timeouts = dict(request.get('timeouts') or {})
        self.errors: list[dict[str, t.Any]] = []
        self.elapsed_ms = 0
        self.rng = random.Random('%s-%s' % (state.spec.name, state.counters.get('commands', 0)))

    # ---- entry point ----

    def build(self) -> Built:
        action = self.request.get('action')
        doc = self.header()
        forceupdate_at = None
        settle_safety_nets(self.state, self.now)
        self.spend(35)
        if action == 'read_file':
            self.read_file(doc)
        elif action == 'support_cleanup':
            self.support_cleanup(doc)
        else:
            if 'install' in self.sections:
                doc['install'] = self.install()
            self.spend(self.latency('install_ms'))
            if action == 'forceupdate':
                doc['forceupdate'] = self.forceupdate()
                forceupdate_at = self.elapsed_ms
            if action in ('support_start', 'support_finish'):
                forceupdate_at = self.support(doc)
            self.local_sections(doc)
            if any(s in self.sections for s in NETWORK_SECTIONS):
                self.network(doc)
        return self.finish(doc, forceupdate_at)

    def refused(self, message: str) -> Built:
        """The document of a request the joined entry does not handle: host and the request error only."""
        doc = self.header()
        self.spend(35)
        self.add_error('request', error('System.ArgumentException', -2147024809, message))
        return self.finish(doc, None)

    def header(self) -> dict[str, t.Any]:
        """What New-Document and the entry's host line write first, whatever the request."""
        return {'format': EVIDENCE_FORMAT, 'action': self.request.get('action'), 'started': _iso(self.now), 'context': 'user',
                'host': self.host()}

    def finish(self, doc: dict[str, t.Any], forceupdate_at: int | None) -> Built:
        doc['errors'] = self.errors
        doc['duration_ms'] = self.elapsed_ms
        return Built(doc, self.elapsed_ms, forceupdate_at)

    def spend(self, ms: float) -> None:
        self.elapsed_ms += int(ms)

    def latency(self, key: str) -> int:
        base = float(self.scenario['latency'][key])
        return int(base * self.rng.uniform(0.85, 1.2))

    def add_error(self, section: str, info: dict[str, t.Any]) -> None:
        self.errors.append(dict(info, section=section))

    # ---- host and install ----

    def host(self) -> dict[str, t.Any]:
        host = self.scenario['host']
        name = self.state.computer_name()
        return {'computer_name': name, 'os_caption': host['os_caption'] if self.queries_os else None,
                'os_build': host['os_build'] if self.queries_os else None,
                'ps_version': host['ps_version'], 'culture': self.culture,
                'user': host['user'] or '%s\\%s' % (name, self.user.split('\\')[-1].split('@')[0]), 'is_system': False}

    def folder(self) -> str | None:
        install = self.scenario['install']
        return '%s\\%s' % (install['install_dir'], install['version']) if install['installed'] else None

    def install(self) -> dict[str, t.Any]:
        install = self.scenario['install']
        if not install['installed']:
            return {'install_dir': None, 'version_dirs': [], 'service': None, 'display_version': None, 'sfc': None,
                    'reboot_pending': False, 'isolated': False}
        folder = self.folder()
        service = install['service']
        versions = sorted(set(install['older_versions']) | {install['version']})
        return {
            'install_dir': install['install_dir'], 'version_dirs': versions,
            'service': {'name': service['name'], 'image_path': '"%s\\sfc.exe"' % folder, 'state': service['state'],
                        'start_type': service['start_type']} if service else None,
            'display_version': install['version'], 'sfc': self.sfc(),
            'reboot_pending': bool(install['reboot_pending']), 'isolated': bool(install['isolated']),
        }

    def sfc(self) -> dict[str, t.Any] | None:
        folder = self.folder()
        if folder is None:
            return None
        return {'path': folder + '\\sfc.exe', 'company': self.scenario['install']['sfc_company'],
                'file_version': self.scenario['install']['version']}

    # ---- actions ----

    def forceupdate(self) -> dict[str, t.Any]:
        sfc = self.sfc()
        run: dict[str, t.Any] = {'ran': False, 'command': None, 'exit_code': None, 'duration_ms': 0, 'encoding': None, 'refused': sfc_refusal(sfc)}
        if run['refused'] or sfc is None:  # a missing sfc.exe is always refused; `is None` says so to mypy
            return run
        plan = self.scenario['dynamics']['forceupdate']
        hang = plan['outcome'] == 'hang'
        duration = 60000 + self.rng.randint(5, 40) if hang else self.latency('forceupdate_ms')
        run.update(ran=True, command='"%s" %s' % (sfc['path'], self.commands['sfc_forceupdate']['arguments']),
                   exit_code=None if hang else int(plan['exit_code']), duration_ms=duration, encoding=self.oem)
        self.spend(duration)
        return run

    def captured(self, path: str, ms: int, exit_code: int | None = 0, stdout: str = '') -> dict[str, t.Any]:
        """Invoke-Captured's shape for a process that ran."""
        self.spend(ms)
        return {'path': path, 'found': True, 'exit_code': exit_code, 'stdout': stdout, 'stderr': '', 'timed_out': False,
                'duration_ms': ms, 'encoding': self.oem, 'error': None}

    def support(self, doc: dict[str, t.Any]) -> int | None:
        folder = self.folder()
        if folder is None:
            self.add_error('script', error('System.Management.Automation.ParameterBindingValidationException', -2146233087,
                                           "Cannot bind argument to parameter 'Path' because it is null."))
            return None
        work_dir = str(self.request.get('work_dir') or 'C:\\Windows\\Temp\\tetra-support')
        tool = str(self.request.get('capture') or 'none')
        support: dict[str, t.Any] = {'work_dir': work_dir, 'refused': sfc_refusal(self.sfc())}
        if support['refused']:
            doc['support'] = support
            return None
        if self.request['action'] == 'support_start':
            support['rolled_back'] = None
            # The safety net first: the script starts nothing unless its end is armed.
            support['safety_net'] = self.register_safety_net(folder)
            if not support['safety_net']['registered']:
                support['refused'] = 'safety_net_failed'
                doc['support'] = support
                return None
            support['debug_logging'] = self.captured(folder + '\\sfc.exe', self.latency('files_ms') * 30)
            support['capture'] = self.start_capture(tool, work_dir)
            if tool in ('pktmon', 'netsh'):
                support['capture'].update(max_mb=int(self.request.get('capture_max_mb') or 0), stop_by=support['safety_net']['fires_at'])
            support['forceupdate'] = self.forceupdate()
            self.state.debug_logging = True
            doc['support'] = support
            return self.elapsed_ms
        bundle = self.make_bundle(work_dir)
        support['bundle'] = self.captured(folder + '\\ipsupporttool.exe', self.latency('support_bundle_ms'))
        support['capture'] = ({'tool': tool, 'exit_code': 0, 'output': '', 'encoding': self.oem, 'error': None} if tool != 'none'
                              else {'tool': 'none', 'stopped': False})
        support['debug_logging'] = self.captured(folder + '\\sfc.exe', 280)
        self.state.debug_logging = False
        self.state.capture_running = False
        support['safety_net'] = self.remove_safety_net()
        support['files'] = [{'path': path, 'size': len(data), 'sha256': hashlib.sha256(data).hexdigest().upper()}
                            for path, data in bundle.items()]
        doc['support'] = support
        return None

    def safety_net_plan(self) -> tuple[dict[str, t.Any] | None, dict[str, t.Any] | None]:
        """(plan, None) as Get-SafetyNetPlan reads the request (defaults when it has none), or (None, error)."""
        net = self.request.get('safety_net')
        tool = str(self.request.get('capture') or 'none')
        plan: dict[str, t.Any]
        if isinstance(net, dict):
            plan = {'task': str(net.get('task')), 'delay_s': net.get('delay_s'), 'time_limit_s': net.get('time_limit_s'),
                    'stop': [str(s) for s in net.get('stop') or []]}
        else:
            leaf = str(self.request.get('work_dir') or '').rsplit('\\', 1)[-1]
            suffix = re.sub(r'[^0-9A-Za-z-]', '-', re.sub(r'(?i)^tetra-support-', '', leaf))[:64] or 'run'
            plan = {'task': 'secure_endpoint.tetra support ' + suffix, 'delay_s': 3600 + 2 * int(self.request.get('deadline_s') or 40),
                    'time_limit_s': 600, 'stop': ({'pktmon': ['pktmon_stop'], 'netsh': ['netsh_trace_stop']}.get(tool, []) + ['sfc_log_stop'])}
        problem = None
        if not SAFETY_NET_TASK.fullmatch(plan['task']):
            problem = 'unsafe safety-net task name: %s' % plan['task']
        elif not isinstance(plan['delay_s'], int) or not 60 <= plan['delay_s'] <= 172800:
            problem = 'safety-net delay out of bounds: %s' % plan['delay_s']
        elif not isinstance(plan['time_limit_s'], int) or not 60 <= plan['time_limit_s'] <= 3600:
            problem = 'safety-net time limit out of bounds: %s' % plan['time_limit_s']
        elif any(name not in STOP_COMMANDS for name in plan['stop']):
            problem = 'not a stop command: %s' % [n for n in plan['stop'] if n not in STOP_COMMANDS][0]
        elif any(name not in self.commands for name in plan['stop']):
            problem = 'the request has no command line for %s' % [n for n in plan['stop'] if n not in self.commands][0]
        if problem:
            return None, error('System.ArgumentException', -2147024809, problem)
        return plan, None

    def register_safety_net(self, folder: str) -> dict[str, t.Any]:
        """Register-SafetyNet: a one-shot task that stops what support_start starts, fired by a timer thread in lab time."""
        record: dict[str, t.Any] = {'task': None, 'registered': False, 'armed_at': None, 'fires_at': None, 'delay_s': None, 'time_limit_s': None,
                                    'actions': [], 'error': None}
        plan, problem = self.safety_net_plan()
        self.spend(350)  # New-ScheduledTask* and Register-ScheduledTask
        if plan is None:
            record['error'] = problem
            return record
        programs = {'pktmon_stop': 'C:\\Windows\\System32\\pktmon.exe', 'netsh_trace_stop': 'C:\\Windows\\System32\\netsh.exe',
                    'sfc_log_stop': folder + '\\sfc.exe'}
        record.update(task=plan['task'], delay_s=plan['delay_s'], time_limit_s=plan['time_limit_s'],
                      actions=[{'command': name, 'path': programs[name], 'arguments': self.commands[name]['arguments']} for name in plan['stop']])
        armed = self.now + self.elapsed_ms / 1000 * self.state.time_scale
        net = SafetyNet(plan['task'], armed, armed + plan['delay_s'] * self.state.time_scale, plan['delay_s'], list(plan['stop']))
        with self.state.lock:
            nets = safety_nets(self.state)
            old = nets.get(net.task)
            if old is not None and old.timer is not None:
                old.timer.cancel()  # Register-ScheduledTask -Force replaces a task of the same name
            net.timer = threading.Timer(max(0.0, net.fires_at - time.time()), fire_safety_net, (self.state, net))
            net.timer.daemon = True
            nets[net.task] = net
        net.timer.start()
        record.update(registered=True, armed_at=_iso(armed), fires_at=_iso(net.fires_at))
        return record

    def remove_safety_net(self) -> dict[str, t.Any]:
        """Remove-SafetyNet: whether the task existed and had fired; removed from now on."""
        record: dict[str, t.Any] = {'task': None, 'existed': False, 'fired': False, 'state': None, 'last_result': None, 'removed': False,
                                    'error': None}
        plan, problem = self.safety_net_plan()
        self.spend(120)
        if plan is None:
            record['error'] = problem
            return record
        record['task'] = plan['task']
        with self.state.lock:
            net = safety_nets(self.state).get(plan['task'])
            if net is not None and net.registered:
                if net.timer is not None:
                    net.timer.cancel()
                record.update(existed=True, fired=net.fired_at is not None, state='Ready',
                              last_result=0 if net.fired_at is not None else TASK_NEVER_RAN)
                net.removed_at = self.now
        record['removed'] = True
        return record

    def start_capture(self, tool: str, work_dir: str) -> dict[str, t.Any]:
        if tool not in ('pktmon', 'netsh'):
            return {'tool': 'none', 'started': False}
        self.state.capture_running = True
        self.spend(900 if tool == 'pktmon' else 4200)
        return {'tool': tool, 'file': work_dir + '\\capture.etl', 'exit_code': 0, 'output': '', 'encoding': self.oem, 'error': None}

    def make_bundle(self, work_dir: str) -> dict[str, bytes]:
        """A real zip (logs, local.xml, random padding) in the endpoint's file table."""
        stamp = datetime.datetime.fromtimestamp(self.now, datetime.timezone.utc).strftime('%Y_%m_%d_%H_%M_%S')
        buffer = io.BytesIO()
        size = int(self.scenario['dynamics']['support']['bundle_kb']) * 1024
        with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as archive:
            archive.writestr('local.xml', texts.local_xml(self.state))
            archive.writestr('sfc.exe.log', 'debug log of %s (lab)\r\n' % self.state.computer_name() * 200)
            archive.writestr('diag/padding.bin', random.Random(self.state.spec.name).randbytes(size), compress_type=zipfile.ZIP_STORED)
        files = {'%s\\CiscoAMP_Support_Tool_%s.zip' % (work_dir, stamp): buffer.getvalue()}
        if self.state.capture_running:
            files[work_dir + '\\capture.etl'] = random.Random(stamp).randbytes(96 * 1024)
        with self.state.lock:
            self.state.files.update(files)
        return files

    def support_path_allowed(self, path: str) -> bool:
        """The endpoint script reads back and removes only its own support folders."""
        if path.lower().startswith(SUPPORT_PREFIX.lower()):
            return True
        self.add_error('script', error('System.UnauthorizedAccessException', -2147024891, 'only paths under %s* are allowed' % SUPPORT_PREFIX))
        return False

    def support_cleanup(self, doc: dict[str, t.Any]) -> None:
        folder = str(self.request.get('work_dir') or '')
        if not self.support_path_allowed(folder):
            return
        with self.state.lock:
            names = [name for name in self.state.files if name.lower().startswith(folder.lower() + '\\')]
            for name in names:
                del self.state.files[name]
        self.spend(30 + 5 * len(names))
        doc['support'] = {'work_dir': folder, 'existed': bool(names), 'removed': True}

    def read_file(self, doc: dict[str, t.Any]) -> None:
        path = str(self.request.get('path') or '')
        # At most 4 MB per call, like the endpoint script.
        if not self.support_path_allowed(path):
            return
        data = self.lookup_file(path)
        if data is None:
            return
        offset = max(0, int(self.request.get('offset') or 0))
        length = int(min(int(self.request.get('length') or 0), 4194304, max(0, len(data) - offset)))
        chunk = data[offset:offset + length]
        self.spend(20 + len(chunk) // 40000)
        doc['file'] = {'path': path, 'size': len(data), 'offset': offset, 'data_b64': _b64(chunk),
                       'eof': offset + len(chunk) >= len(data)}

    def lookup_file(self, path: str) -> bytes | None:
        wanted = path.lower()
        with self.state.lock:
            for name, data in self.state.files.items():
                if name.lower() == wanted:
                    return data
        install_dir = (self.scenario['install']['install_dir'] or '').lower()
        if self.scenario['install']['installed'] and wanted == install_dir + '\\local.xml':
            return texts.local_xml(self.state).encode('utf-8')
        if self.scenario['install']['installed'] and wanted == install_dir + '\\policy.xml':
            if self.state.policy_readable():
                return texts.policy_xml(self.state).encode('utf-8')
            self.add_error('script', self.access_denied(path))
            return None
        self.add_error('script', error('System.IO.FileNotFoundException', -2147024894, texts.message(self.culture, 'file_not_found', path=path)))
        return None

    def access_denied(self, path: str) -> dict[str, t.Any]:
        return error('System.UnauthorizedAccessException', -2147024891, texts.message(self.culture, 'access_denied', path=path))

    # ---- local sections ----

    def local_sections(self, doc: dict[str, t.Any]) -> None:
        if 'posture' in self.sections:
            doc['posture'] = self.posture()
        if 'files' in self.sections:
            doc['files'] = self.files()
        if 'system' in self.sections:
            doc['system'] = self.system()

    def posture(self) -> dict[str, t.Any]:
        folder = self.folder()
        path = folder + '\\AmpCLI.exe' if folder else 'AmpCLI.exe'
        result: dict[str, t.Any] = {'path': path, 'found': False, 'exit_code': None, 'stdout': None, 'stderr': None,
                                    'timed_out': False, 'duration_ms': 0, 'encoding': None, 'error': None}
        if not folder or not self.scenario['install']['ampcli']:
            return result
        ms = self.latency('posture_ms')
        if self.scenario['install']['service']['state'] != 'Running':
            result.update(found=True, exit_code=1, stdout='Error: unable to connect to the Cisco Secure Endpoint service.\r\n', stderr='',
                          duration_ms=ms, encoding='utf-8')
        else:
            result.update(found=True, exit_code=0, stdout=texts.posture_stdout(self.state), stderr='', duration_ms=ms, encoding='utf-8')
        self.spend(ms)
        return result

    def files(self) -> dict[str, t.Any]:
        self.spend(self.latency('files_ms'))
        install = self.scenario['install']
        if not install['installed']:
            empty = {'path': None, 'readable': False, 'text': None, 'attempts': 0, 'error': None}
            return {'local_xml': dict(empty), 'policy_xml': dict(empty)}
        local = {'path': install['install_dir'] + '\\local.xml', 'readable': True, 'text': drop_secrets(texts.local_xml(self.state)), 'attempts': 1,
                 'error': None}
        policy: dict[str, t.Any] = {'path': install['install_dir'] + '\\policy.xml', 'readable': False, 'text': None, 'attempts': 1,
                                    'error': None}
        if self.state.policy_readable():
            policy.update(readable=True, text=drop_secrets(texts.policy_xml(self.state)))
        else:
            policy['error'] = self.access_denied(policy['path'])
            self.add_error('policy_xml', policy['error'])
        return {'local_xml': local, 'policy_xml': policy}

    def system(self) -> dict[str, t.Any]:
        self.spend(self.latency('system_ms'))
        host = self.scenario['host']
        return {'winhttp_proxy': texts.netsh_winhttp(self.culture, self.scenario['network']['winhttp_proxy']),
                'winhttp_proxy_encoding': self.oem, 'curl_path': 'C:\\Windows\\System32\\curl.exe',
                'dns_servers': list(host['dns_servers']), 'pac_url': host['pac_url']}

    # ---- network probes ----

    def network(self, doc: dict[str, t.Any]) -> None:
        context = 'system' if self.request.get('context') == 'system' else 'user'
        if context == 'system':
            # Invoke-AsSystem: the task runs this script with action probes_only; its record comes first.
            overhead = self.latency('system_context_ms')
            task: dict[str, t.Any] = {'registered': True, 'started': True, 'finished': False, 'stopped': False, 'state': 'Ready',
                                      'last_result': 0, 'is_system': None, 'duration_ms': 0, 'error': None}
            doc['system_task'] = task
            probes, probe_ms = self.run_probes(self.network_config('system'), budget_extra=-overhead)
            if overhead + probe_ms <= self.budget_ms(3000):
                self.spend(overhead + probe_ms)
                task.update(finished=True, is_system=True, duration_ms=overhead + probe_ms)
                doc['context'] = 'system'
                doc['probes'] = probes
                return
            # Started, not finished by the deadline: stopped, and every network probe reported as not run.
            spent = max(0, self.budget_ms(3000))
            self.spend(spent)
            task.update(state='Running', last_result=TASK_RUNNING, stopped=True, duration_ms=spent)
            failure = error('System.TimeoutException', -2146233083, 'the LocalSystem task did not finish before the deadline')
            self.add_error('system_task', failure)
            doc['context'] = 'system'
            doc['probes'] = self.not_run_probes(failure, self.network_config('system'))
            return
        probes, probe_ms = self.run_probes(self.network_config('user'))
        self.spend(probe_ms)
        doc['probes'] = probes

    def not_run_probes(self, failure: dict[str, t.Any], net: dict[str, t.Any]) -> dict[str, t.Any]:
        """New-NotRunProbes: every planned probe with its identity and not_run; roots still read locally."""
        probes: dict[str, t.Any] = {}
        for section in ('dns', 'tls', 'curl', 'http', 'proxy'):
            if section in self.sections:
                probes[section] = [] if section in ('dns', 'http') else None
        for job in self.probe_jobs(net):
            record = dict(not_finished(job.section, job.value, False), error=failure)
            if job.section in ('dns', 'http'):
                probes[job.section].append(record)
            else:
                probes[job.section] = record
        if 'roots' in self.sections:
            missing = {m.upper() for m in net['roots_missing']}
            probes['roots'] = [self.root(str(tp), missing) for tp in self.request.get('root_thumbprints') or []]
        return probes

    def budget_ms(self, margin_ms: int) -> int:
        return int(float(self.request.get('deadline_s') or 60) * 1000) - margin_ms - self.elapsed_ms

    def network_config(self, context: str) -> dict[str, t.Any]:
        network = self.scenario['network']
        override = (self.scenario.get('contexts') or {}).get(context) or {}
        return deep_merge(network, override.get('network') or {})

    def run_probes(self, net: dict[str, t.Any], budget_extra: int = 0) -> tuple[dict[str, t.Any], int]:
        """All requested probes on the deadline; returns the probes section and the time it took."""
        jobs = self.probe_jobs(net)
        budget = max(0, self.budget_ms(2000) + budget_extra)
        concurrent = bool(self.request.get('concurrent', True))
        clock, longest = 0, 0
        probes: dict[str, t.Any] = {}
        tls_finish = 0
        for second_wave in (False, True):
            # The second wave fetches the OCSP/CRL URLs of the chain the TLS probe received, once it is back.
            wave = self.chain_url_jobs(probes.get('tls'), net) if second_wave else jobs
            wave_start = tls_finish if second_wave else 0
            for job in wave:
                start = wave_start if concurrent else max(clock, wave_start)
                finish = start + job.duration_ms
                clock = finish if not concurrent else clock
                if job.section == 'tls':
                    tls_finish = finish
                longest = max(longest, finish)
                # Receive-Probe at the deadline: still queued -> not_run; still running -> timed_out; both keep their identity.
                value = job.value if finish <= budget else not_finished(job.section, job.value, start < budget)
                if job.section in ('dns', 'http'):
                    probes.setdefault(job.section, []).append(value)
                else:
                    probes[job.section] = value
        for section in ('dns', 'http'):
            if section in self.sections:
                probes.setdefault(section, [])
        elapsed = min(longest, budget)
        if 'proxy' in self.sections:
            probes.setdefault('proxy', None)
        if 'roots' in self.sections:
            elapsed += self.latency('roots_ms')
            missing = {m.upper() for m in net['roots_missing']}
            probes['roots'] = [self.root(str(tp), missing) for tp in self.request.get('root_thumbprints') or []]
        return probes, elapsed

    def chain_url_jobs(self, tls: t.Any, net: dict[str, t.Any]) -> list[Probe]:
        """What the endpoint script's second wave fetches: URL=http://... from the chain's AIA/CRL text."""
        if not self.request.get('probe_chain_urls') or 'http' not in self.sections or not isinstance(tls, dict):
            return []
        texts = [cert.get(key) or '' for cert in tls.get('chain') or [] for key in ('aia_text', 'crl_text')]
        urls: list[str] = []
        for url in re.findall(r'URL=(http://[^\s,]+)', ' '.join(texts)):
            if url not in urls and url not in (self.request.get('http_urls') or []):
                urls.append(url)
        return [self.http_probe(url, net) for url in urls[:8]]

    def probe_jobs(self, net: dict[str, t.Any]) -> list[Probe]:
        jobs: list[Probe] = []
        if 'dns' in self.sections:
            jobs.extend(self.dns_probe(str(name), net) for name in self.request.get('dns_names') or [])
        if 'tls' in self.sections:
            jobs.append(self.tls_probe(net))
        if 'curl' in self.sections:
            jobs.append(self.curl_probe(net))
        if 'http' in self.sections:
            jobs.extend(self.http_probe(str(url), net) for url in self.request.get('http_urls') or [])
        if 'proxy' in self.sections:
            proxy = self.proxy_probe(net)
            if proxy is not None:
                jobs.append(proxy)
        return jobs

    def timeout_ms(self, kind: str, default: int) -> int:
        return int(float(self.timeouts.get(kind, default)) * 1000)

    def server(self) -> str:
        return str(self.request.get('update_server') or 'tetra-defs.amp.cisco.com')

    def addresses(self, name: str, net: dict[str, t.Any]) -> list[str]:
        table = net['addresses']
        return list(table.get(name) or table.get('default') or [])

    def dns_answer(self, name: str, net: dict[str, t.Any]) -> dict[str, t.Any]:
        table = net['dns']
        return dict(table.get(name) or table.get('default') or {})

    def dns_error(self, answer: dict[str, t.Any]) -> dict[str, t.Any] | None:
        kind = answer.get('error')
        if not kind or kind == 'timeout':
            return None
        code = int(answer.get('code') or (11002 if kind == 'server_failure' else 11001))
        text = answer.get('message') or texts.message(self.culture, 'dns_timeout' if kind == 'server_failure' else 'no_such_host')
        return error(answer.get('type') or 'System.Net.Sockets.SocketException', int(answer.get('hresult') or SOCKET_HRESULT), text, code=code)

    def dns_probe(self, name: str, net: dict[str, t.Any]) -> Probe:
        answer = self.dns_answer(name, net)
        value: dict[str, t.Any] = {'name': name, 'addresses': [], 'duration_ms': 0, 'timed_out': False, 'not_run': False, 'error': None}
        if answer.get('error') == 'timeout':
            ms = self.timeout_ms('dns', 5) + self.rng.randint(1, 15)
            value['timed_out'] = True
        else:
            ms = int(answer.get('ms', 20))
            value['error'] = self.dns_error(answer)
            if value['error'] is None:
                value['addresses'] = self.addresses(name, net)
        value['duration_ms'] = ms
        return Probe('dns', value, ms)

    def tls_probe(self, net: dict[str, t.Any]) -> Probe:
        server = self.server()
        value: dict[str, t.Any] = {'host': server, 'port': 443, 'connect': None, 'handshake': None, 'policy_errors': None,
                                   'chain': [], 'chain_status': [], 'chain_source': None, 'timed_out': False, 'not_run': False}
        connect, connect_ms = self.tcp_connect(server, net)
        value['connect'] = connect
        if not connect['ok']:
            return Probe('tls', value, connect_ms)
        outcome = str(net['tls']['outcome'])
        tls_ms = min(int(net['tls']['ms']), self.timeout_ms('tls', 10))
        handshake: dict[str, t.Any] = {'ok': outcome == 'ok', 'protocol': 'Tls12' if outcome == 'ok' else None, 'duration_ms': tls_ms,
                                       'timed_out': False, 'error': None}
        value['chain'] = texts.chain('interception' if outcome == 'interception' else 'identrust', server, self.culture)
        value['chain_source'] = 'callback'  # raw certificates copied inside the validation callback
        value['policy_errors'] = 'None' if outcome == 'ok' else 'RemoteCertificateChainErrors'
        if outcome == 'revocation_offline':
            value['chain_status'] = ['RevocationStatusUnknown', 'OfflineRevocation']
            handshake['error'] = error('System.Security.Authentication.AuthenticationException', -2146893017,
                                       texts.message(self.culture, 'sspi'), native_error=-2146885613)
        elif outcome in ('interception', 'untrusted_root'):
            value['chain_status'] = ['UntrustedRoot']
            handshake['error'] = error('System.Security.Authentication.AuthenticationException', -2146233087,
                                       texts.message(self.culture, 'invalid_cert'))
        value['handshake'] = handshake
        return Probe('tls', value, connect_ms + tls_ms)

    def tcp_connect(self, server: str, net: dict[str, t.Any]) -> tuple[dict[str, t.Any], int]:
        connect: dict[str, t.Any] = {'ok': False, 'address': None, 'duration_ms': 0, 'timed_out': False, 'error': None}
        dns_error = self.dns_error(self.dns_answer(server, net))
        outcome = str(net['tcp']['outcome'])
        address = (self.addresses(server, net) or ['0.0.0.0'])[0]
        if dns_error:
            connect['error'], ms = dns_error, int(self.dns_answer(server, net).get('ms', 20))
        elif outcome == 'timeout':
            connect['timed_out'], ms = True, self.timeout_ms('connect', 5) + self.rng.randint(1, 12)
        elif outcome == 'refused':
            connect['error'] = error('System.Net.Sockets.SocketException', SOCKET_HRESULT,
                                     texts.message(self.culture, 'refused', address=address, port=443), code=10061)
            ms = int(net['tcp']['ms'])
        else:
            connect.update(ok=True, address=address)
            ms = int(net['tcp']['ms'])
        connect['duration_ms'] = ms
        return connect, ms

    def curl_kind(self, net: dict[str, t.Any]) -> str:
        server = self.server()
        if self.dns_error(self.dns_answer(server, net)):
            return 'no_such_host'
        if net['tcp']['outcome'] != 'ok':
            return str(net['tcp']['outcome'])
        if net['tls']['outcome'] != 'ok':
            return str(net['tls']['outcome'])
        return 'reset' if net['download'] == 'reset' else 'ok'

    def curl_probe(self, net: dict[str, t.Any]) -> Probe:
        kind, limit = self.curl_kind(net), self.timeout_ms('curl', 12)
        server = self.server()
        ms = {'timeout': limit + self.rng.randint(1, 9), 'no_such_host': 60, 'refused': 2040,
              'revocation_offline': int(net['tls']['ms']) + 120, 'reset': 9300}.get(kind, 420 + self.rng.randint(0, 80))
        ms = min(ms, limit + 15)
        if net.get('curl'):
            exit_code, output = int(net['curl']['exit_code']), str(net['curl']['output'])
        else:
            exit_code, output = texts.curl_output(kind, server, (self.addresses(server, net) or ['0.0.0.0'])[0], self.culture, ms - 3)
        value = {'path': 'C:\\Windows\\System32\\curl.exe', 'url': 'https://%s/' % server, 'found': True, 'exit_code': exit_code,
                 'output': output, 'timed_out': False, 'not_run': False, 'duration_ms': ms, 'encoding': 'utf-8', 'error': None}
        return Probe('curl', value, ms)

    def http_probe(self, url: str, net: dict[str, t.Any]) -> Probe:
        table = net['http']
        host = url.split('://', 1)[-1].split('/', 1)[0]
        answer = dict(table.get(url) or table.get(host) or table.get('default') or {})
        value: dict[str, t.Any] = {'url': url, 'status': None, 'duration_ms': 0, 'timed_out': False, 'not_run': False, 'via_proxy': None,
                                   'proxy_mode': 'direct', 'error': None}
        outcome = answer.get('outcome')
        if outcome == 'timeout':
            ms = self.timeout_ms('http', 5) + self.rng.randint(2, 20)
            value['timed_out'] = True
            value['error'] = error('System.Net.WebException', WEB_HRESULT, texts.message(self.culture, 'web_timeout'), status='Timeout')
        elif outcome == 'refused':
            ms = int(answer.get('ms', 1010))
            value['error'] = error('System.Net.WebException', WEB_HRESULT, texts.message(self.culture, 'web_refused'), status='ConnectFailure')
        else:
            ms = int(answer.get('ms', 45))
            value['status'] = int(answer.get('status', 200))
        value['duration_ms'] = ms
        return Probe('http', value, ms)

    def proxy_target(self, net: dict[str, t.Any]) -> tuple[str, int, str] | None:
        requested = self.request.get('proxy')
        if isinstance(requested, dict) and requested.get('server'):
            return str(requested['server']), int(requested.get('port') or 8080), 'request'
        policy = self.scenario['policy']['proxy']
        if policy and policy.get('server'):
            return str(policy['server']), int(policy.get('port') or 8080), 'policy'
        if net['winhttp_proxy']:
            server, dummy, port = str(net['winhttp_proxy']).partition(':')
            return server, int(port or 80), 'winhttp'
        return None

    def proxy_probe(self, net: dict[str, t.Any]) -> Probe | None:
        target = self.proxy_target(net)
        if target is None:
            return None
        server, port, source = target
        behaviour = net['proxy']
        value: dict[str, t.Any] = {'server': server, 'port': port, 'source': source, 'connect': None, 'connect_status': None,
                                   'status_line': None, 'timed_out': False, 'not_run': False}
        connect: dict[str, t.Any] = {'ok': False, 'duration_ms': 0, 'timed_out': False, 'error': None}
        if behaviour['connect'] == 'timeout':
            ms = self.timeout_ms('proxy', 5) + self.rng.randint(1, 9)
            connect['timed_out'] = True
        elif behaviour['connect'] == 'refused':
            ms = int(behaviour['ms'])
            connect['error'] = error('System.Net.Sockets.SocketException', SOCKET_HRESULT,
                                     texts.message(self.culture, 'refused', address=server, port=port), code=10061)
        else:
            ms = int(behaviour['ms']) + 30
            status = int(behaviour['status'])
            connect['ok'] = True
            value['connect_status'] = status
            value['status_line'] = 'HTTP/1.1 %d %s' % (status, PROXY_STATUS.get(status, 'Error'))
        connect['duration_ms'] = ms
        value['connect'] = connect
        return Probe('proxy', value, ms)

    def root(self, thumbprint: str, missing: set[str]) -> dict[str, t.Any]:
        subject = KNOWN_ROOTS.get(thumbprint.upper())
        present = subject is not None and thumbprint.upper() not in missing
        return {'thumbprint': thumbprint, 'present': present, 'subject': subject if present else None}


def sfc_refusal(sfc: dict[str, t.Any] | None) -> str | None:
    """Why the script refuses to run sfc.exe: no CompanyName, or not Cisco's (its ``-notmatch 'Cisco'`` ignores case).
    The controller's own check is _common.is_cisco_publisher; tests/unit/test_single_sources.py holds the two alike."""
    if not sfc or not sfc['company']:
        return 'sfc_missing'
    return None if 'cisco' in sfc['company'].lower() else 'sfc_not_cisco'


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(TIMESTAMP_FORMAT)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


def ps_json(document: t.Any) -> str:
    """ConvertTo-Json -Compress as Windows PowerShell 5.1 writes it (<, >, &, ' escaped)."""
    text = json.dumps(document, ensure_ascii=False, separators=(',', ':'))
    for char, escaped in (('<', '\\u003c'), ('>', '\\u003e'), ('&', '\\u0026'), ("'", '\\u0027')):
        text = text.replace(char, escaped)
    return text
