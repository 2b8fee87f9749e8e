# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Collect the TAC evidence bundle: debug logging and an optional capture for one update interval, then
ipsupporttool.exe, with clean-up guaranteed, and the files brought to the controller with a manifest.

Calls: 1 read (install, local.xml, policy.xml); ``support_start``; a controller-side wait;
``support_finish`` (always, in ``finally``, once ``support_start`` was sent); ``read_file`` chunks.
Every call is one plain ``exec_command``, so winrm, psrp and ssh all work.

Clean-up does not depend on this process surviving: ``support_start`` arms an endpoint-side safety net
(a one-shot LocalSystem task at start + wait + deadline + slack running the stop commands), which a normal
``support_finish`` removes. A controller killed at any moment (SIGKILL, power loss, a CI job cancelled)
leaves the endpoint clean when that task fires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _remediation as rem
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import utc_now
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._files import write_file_atomic
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import RemoteError, run_bounded
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import build_request, check_path, fill_placeholders, windows_commands

ARGUMENT_SPEC: dict[str, t.Any] = {
    'dest': {'type': 'path', 'required': True},
    'capture': {'type': 'str', 'default': 'none', 'choices': ['none', 'netsh', 'pktmon']},
    'capture_max_mb': {'type': 'int', 'default': 256},
    'wait': {'type': 'int'},
    'max_wait': {'type': 'int', 'default': 3600},
    'deadline': {'type': 'int', 'default': 600},
    'chunk_size': {'type': 'int', 'default': 1048576},
    'remove_remote': {'type': 'bool', 'default': True},
}
PREFLIGHT_SECTIONS = ('install', 'files')
# Bounds, inclusive (documented in plugins/modules/tetra_support_bundle.py).
CAPTURE_MAX_MB_BOUNDS = (1, 4096)
WAIT_BOUNDS = (0, 86400)
SUPPORT_DEADLINE_BOUNDS = (60, 3600)
READ_DEADLINE_S = 60
# Reconnect before support_finish after a wait this long: idle WinRM shells and SSH sessions get dropped.
RECONNECT_AFTER_S = 300
# A reconnect is network I/O: one that hangs is abandoned, and the next call reports the endpoint as it finds it.
RECONNECT_BOUND_S = 30


def _bounded(args: dict[str, t.Any], name: str, bounds: tuple[int, int], unit: str, why: str = '') -> None:
    value = args[name]
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ValueError('%s must be from %d to %d %s%s, got %r' % (name, bounds[0], bounds[1], unit, why, value))


def check_args(args: dict[str, t.Any]) -> None:
    check_path(args['dest'], 'dest')
    _bounded(args, 'capture_max_mb', CAPTURE_MAX_MB_BOUNDS, 'MB')
    _bounded(args, 'wait', WAIT_BOUNDS, 'seconds')
    _bounded(args, 'max_wait', WAIT_BOUNDS, 'seconds')
    _bounded(args, 'deadline', SUPPORT_DEADLINE_BOUNDS, 'seconds', ' (ipsupporttool.exe gets deadline - 20 s)')
    _bounded(args, 'chunk_size', (4096, rem.MAX_CHUNK_BYTES), 'bytes')


def commands_plan(sfc_path: str, work_dir: str, capture: str, max_mb: int) -> list[str]:
    """What support_start and support_finish run on the endpoint, in order (docs/endpoint-commands.md): the
    request's own command lines with the work folder filled in, as the script fills it."""
    folder = sfc_path.rsplit('\\', 1)[0]
    system32 = 'C:\\Windows\\System32\\'
    commands = windows_commands(capture_max_mb=max_mb)

    def line(program: str, name: str) -> str:
        quoted = '"%s"' % program if ' ' in program else program
        return '%s %s' % (quoted, fill_placeholders(commands[name]['arguments'], {'work_dir': work_dir}))

    start = {'pktmon': [line(system32 + 'pktmon.exe', 'pktmon_start')], 'netsh': [line(system32 + 'netsh.exe', 'netsh_trace_start')]}
    stop = {'pktmon': [line(system32 + 'pktmon.exe', 'pktmon_stop')], 'netsh': [line(system32 + 'netsh.exe', 'netsh_trace_stop')]}
    return ([line(sfc_path, 'sfc_log_start')] + start.get(capture, []) + [line(sfc_path, 'sfc_forceupdate')]
            + [line(folder + '\\ipsupporttool.exe', 'ipsupporttool')] + stop.get(capture, []) + [line(sfc_path, 'sfc_log_stop')])


def distinct_names(paths: t.Iterable[str], reserved: t.Iterable[str] = (rem.MANIFEST_NAME,)) -> list[str]:
    """Local names for endpoint paths, all distinct (case-insensitively, as on Windows and macOS) and never
    a reserved name: ``a.log`` from two folders, or ``A.LOG`` beside ``a.log``, become ``a.log`` and ``a-2.log``,
    and a generated ``a-2.log`` never meets an endpoint file of that name."""
    taken = {name.lower() for name in reserved}
    names = []
    for path in paths:
        name = rem.local_file_name(path)
        stem, ext = os.path.splitext(name)
        candidate, number = name, 1
        while candidate.lower() in taken:
            number += 1
            candidate = '%s-%d%s' % (stem, number, ext)
        taken.add(candidate.lower())
        names.append(candidate)
    return names


class SafeChunkAssembler(rem.ChunkAssembler):
    """ChunkAssembler whose partial file is created with O_EXCL | O_NOFOLLOW under a random name in the
    destination folder (mkstemp), so a link planted at ``<name>.partial`` is never followed; ``finish``
    renames it over the final name atomically."""

    def __init__(self, path: str, expected_size: int | None, expected_sha256: str | None) -> None:  # pylint: disable=super-init-not-called
        self.path = path
        self.expected_size = expected_size
        self.expected_sha256 = (expected_sha256 or '').lower() or None
        self.digest = hashlib.sha256()
        self.size = 0
        descriptor, self.partial = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.partial', dir=os.path.dirname(path) or '.')
        self.handle = os.fdopen(descriptor, 'wb')


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = ARGUMENT_SPEC
    clock = rem.Clock()

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        check_args(args)
        self.calls = 0
        host = self.host_name(task_vars)
        document = self.call(build_request('collect', PREFLIGHT_SECTIONS, args))
        facts = self.facts(document)
        refusal = rem.sfc_refusal(facts, rem.sfc_company(document))
        if refusal:
            return {'changed': False, 'refused': refusal[0], 'msg': refusal[1], 'calls': self.calls}
        wait_s, wait_source = rem.support_wait(args, facts)
        work_dir = rem.check_work_dir(rem.new_work_dir())
        folder = os.path.join(args['dest'], rem.safe_name(host, 'host'))
        sfc_path = facts['install']['sfc_path']
        net = rem.safety_net(work_dir, wait_s, args['deadline'], args['capture'])
        plan = {'work_dir': work_dir, 'dest': folder, 'wait_s': wait_s, 'wait_source': wait_source, 'capture': args['capture'],
                'capture_max_mb': args['capture_max_mb'], 'commands': commands_plan(sfc_path, work_dir, args['capture'], args['capture_max_mb']),
                'safety_net': dict(net)}
        if self._task.check_mode:
            return dict(plan, changed=True, refused=None, calls=self.calls,
                        msg='Check mode: would arm the endpoint safety net (task "%s", stops everything %d s after the start unless the '
                            'run finishes first), enable debug logging%s, force an update, wait %d s (%s), build the support bundle in %s, '
                            'stop everything and copy the files to %s. Nothing was run.'
                            % (net['task'], net['delay_s'], '' if args['capture'] == 'none' else ' and a %s capture' % args['capture'],
                               wait_s, wait_source, work_dir, folder))
        request = dict(build_request('support_start', (), args), capture=args['capture'], capture_max_mb=args['capture_max_mb'], work_dir=work_dir,
                       safety_net=net)
        times: dict[str, t.Any] = {'started': utc_now()}
        start, finish = self.start_wait_finish(request, wait_s, times)
        if finish is None:
            # The endpoint refused before starting anything (no safety net could be armed): nothing to stop.
            return dict(plan, changed=False, refused=start.get('refused'), calls=self.calls, support_start=start,
                        msg='The endpoint refused support_start (%s): %s. Nothing was started.'
                            % (start.get('refused'), self.refusal_text(start)))
        files = self.transfer(finish, folder, args['chunk_size'])
        remote = self.remove_remote(work_dir) if args['remove_remote'] else {'removed': False, 'error': None}
        times['finished'] = utc_now()
        cleanup = self.cleanup_state(args['capture'], start, finish)
        document = rem.manifest(host, (facts.get('host') or {}).get('computer_name'), work_dir, files, times, {
            'connector_version': rem.connector_version(facts), 'capture': args['capture'], 'wait_s': wait_s, 'wait_source': wait_source,
            'cleanup': cleanup})
        manifest_path = write_file_atomic(os.path.join(folder, rem.MANIFEST_NAME), json.dumps(document, indent=1, sort_keys=True) + '\n')
        result = dict(plan, changed=True, refused=None, calls=self.calls, files=document['files'], manifest=manifest_path, times=times,
                      cleanup=cleanup, support_start=start, support_finish=finish, remote_removed=remote['removed'],
                      msg='Support bundle of %s: %d file(s) in %s' % (host, len(files), folder))
        warnings = []
        if not files:
            warnings.append('The endpoint listed no file in %s after ipsupporttool.exe (exit code %s)'
                            % (work_dir, (finish.get('bundle') or {}).get('exit_code')))
        if not cleanup['debug_logging_stopped']:
            warnings.append('"sfc.exe -l stop" did not confirm (exit code %s); debug logging also ends at the next policy update'
                            % cleanup['debug_logging_exit_code'])
        if not cleanup['capture_stopped']:
            warnings.append('Stopping the %s capture did not confirm (exit code %s)' % (args['capture'], cleanup['capture_exit_code']))
        if not cleanup['safety_net_removed']:
            fires_at = (start.get('safety_net') or {}).get('fires_at')
            warnings.append('The safety-net task "%s" could not be confirmed removed (%s); if it is still there it runs the stop '
                            'commands at %s and deletes itself a day later' % (net['task'], cleanup['safety_net_error'] or 'no record', fires_at))
        if remote['error']:
            warnings.append('The work folder %s stays on the endpoint: %s' % (work_dir, remote['error']))
        if warnings:
            result['warnings'] = warnings
        return result

    def remove_remote(self, work_dir: str) -> dict[str, t.Any]:
        """Delete the endpoint's work folder once every file arrived intact; a failure is a warning, the bundle is safe."""
        try:
            document = self.call(dict(build_request('support_cleanup', (), {}), work_dir=work_dir))
        except RemoteError as exc:
            return {'removed': False, 'error': exc.result.get('msg')}
        support = document.get('support') or {}
        if not support.get('removed'):
            return {'removed': False, 'error': 'the endpoint did not remove it (%s)' % (document.get('errors') or 'no answer')}
        return {'removed': True, 'error': None}

    # ---- start, wait, finish: finish always runs once start was sent ----

    @staticmethod
    def refusal_text(start: dict[str, t.Any]) -> str:
        if start.get('refused') == 'safety_net_failed':
            error = (start.get('safety_net') or {}).get('error') or {}
            return ('the endpoint could not register its safety-net scheduled task (%s: %s), and it never starts debug logging or a '
                    'capture without one' % (error.get('type'), error.get('message')))
        return 'its sfc.exe is missing or not Cisco\'s'

    def start_wait_finish(self, request: dict[str, t.Any], wait_s: int,
                          times: dict[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any] | None]:
        start: dict[str, t.Any] = {}
        finish: dict[str, t.Any] = {}
        waited_from = self.clock.now()
        try:
            start = self.support_call(request, 'support_start')
            times['support_started'] = utc_now()
            if start.get('refused'):
                return start, None
            waited_from = self.clock.now()
            self.clock.sleep(wait_s)
        except BaseException as failure:  # pylint: disable=broad-except  # KeyboardInterrupt too: clean up, then re-raise
            self.finish_after_failure(request, failure)
            raise
        if self.clock.now() - waited_from >= RECONNECT_AFTER_S:
            self.reconnect()
        try:
            finish = self.support_call(dict(request, action='support_finish'), 'support_finish')
        except RemoteError as exc:
            exc.result.update(support_start=start, calls=self.calls, work_dir=request.get('work_dir'))
            exc.result['msg'] = ('support_finish failed, so debug logging and the capture may still be running on the endpoint until its '
                                 'safety-net task %s fires (%s; or stop them with "sfc.exe -l stop" and "pktmon stop"/"netsh trace stop"): %s'
                                 % (self.safety_net_name(request), self.fires_at(start), exc.result.get('msg')))
            raise
        times['support_finished'] = utc_now()
        return start, finish

    def finish_after_failure(self, request: dict[str, t.Any], failure: BaseException) -> None:
        """support_finish after a failed start or an interrupted wait; its outcome is attached to the original error."""
        self.reconnect()
        try:
            finish = self.support_call(dict(request, action='support_finish'), 'support_finish')
            note: dict[str, t.Any] = {'support_finish': finish, 'cleanup': self.cleanup_state(request.get('capture', 'none'), {}, finish)}
            text = 'support_finish ran: debug logging and capture were stopped'
        except RemoteError as exc:
            note = {'support_finish_error': exc.result.get('msg')}
            delay = (request.get('safety_net') or {}).get('delay_s')
            text = ('support_finish ALSO FAILED (%s): the safety-net task %s stops them %s s after support_start, or stop them by hand with '
                    '"sfc.exe -l stop" and "pktmon stop"/"netsh trace stop"' % (exc.result.get('msg'), self.safety_net_name(request), delay))
        if isinstance(failure, RemoteError):
            failure.result.update(note, calls=self.calls, work_dir=request.get('work_dir'))
            failure.result['msg'] = '%s; %s' % (failure.result['msg'], text)
        else:
            self._display.warning('Support bundle interrupted (%s); %s' % (type(failure).__name__, text))

    @staticmethod
    def safety_net_name(request: dict[str, t.Any]) -> str:
        return '"%s"' % (request.get('safety_net') or {}).get('task')

    @staticmethod
    def fires_at(start: dict[str, t.Any]) -> str:
        fires = (start.get('safety_net') or {}).get('fires_at')
        return 'at %s UTC' % fires if fires else 'if support_start armed it'

    def support_call(self, request: dict[str, t.Any], what: str) -> dict[str, t.Any]:
        document = self.call(request)
        support = document.get('support')
        if not isinstance(support, dict):
            errors = document.get('errors') or []
            raise RemoteError('%s returned no "support" record (endpoint errors: %s)' % (what, json.dumps(errors)[:400]), document_errors=errors)
        return dict(support, errors=document.get('errors') or [])

    def reconnect(self) -> None:
        """Best effort, within RECONNECT_BOUND_S; the next call (bounded itself) reports the real problem."""
        run_bounded(self._connection.reset, RECONNECT_BOUND_S, name='tetra-reconnect')

    @staticmethod
    def cleanup_state(capture: str, start: dict[str, t.Any], finish: dict[str, t.Any]) -> dict[str, t.Any]:
        """Whether debug logging and the capture were stopped, from support_finish's answer."""
        logging = finish.get('debug_logging') or {}
        stop = finish.get('capture') or {}
        net: dict[str, t.Any] = finish['safety_net'] if isinstance(finish.get('safety_net'), dict) else {}
        error = net.get('error') if isinstance(net.get('error'), dict) else None
        return {
            'debug_logging_stopped': logging.get('exit_code') == 0 or logging.get('stopped') is True,
            'debug_logging_exit_code': logging.get('exit_code'),
            'capture': capture,
            'capture_stopped': True if capture == 'none' else (stop.get('exit_code') == 0 or stop.get('stopped') is True),
            'capture_exit_code': stop.get('exit_code'),
            'debug_logging_started': (start.get('debug_logging') or {}).get('exit_code') == 0 if start else None,
            'safety_net_removed': net.get('removed') is True,
            'safety_net_fired': net.get('fired') is True,
            'safety_net_error': '%s: %s' % (error.get('type'), error.get('message')) if error else None,
        }

    # ---- bringing the files home ----

    def transfer(self, finish: dict[str, t.Any], folder: str, chunk_size: int) -> list[dict[str, t.Any]]:
        listed = [f for f in (finish.get('files') or []) if isinstance(f, dict) and f.get('path')]
        work_dir = str(finish.get('work_dir') or '')
        for entry in listed:
            rem.check_support_file(entry['path'], work_dir)
        os.makedirs(folder, exist_ok=True)
        files = []
        for entry, name in zip(listed, distinct_names(str(f['path']) for f in listed), strict=True):
            local = os.path.join(folder, name)
            size = entry.get('size') if isinstance(entry.get('size'), int) else None
            verified = self.fetch(str(entry['path']), local, size, entry.get('sha256'), chunk_size)
            files.append(dict(verified, name=name, source_path=entry['path']))
        return files

    def fetch(self, path: str, local: str, size: int | None, sha256: str | None, chunk_size: int) -> dict[str, t.Any]:
        """read_file chunk by chunk into `local`; the number of calls is bounded by the announced size."""
        assembler = SafeChunkAssembler(local, size, sha256)
        limit = (size or 0) // chunk_size + 2
        try:
            for _chunk_number in range(limit):
                chunk = self.read_chunk(path, assembler.size, chunk_size)
                assembler.add(int(chunk.get('offset') or 0), chunk['data'])
                if chunk.get('eof') or (size is not None and assembler.size >= size):
                    break
                if not chunk['data']:
                    raise ValueError('the endpoint returned an empty chunk before the end of the file')
            else:
                raise ValueError('the file did not end within %d chunks of %d bytes' % (limit, chunk_size))
            return assembler.finish()
        except ValueError as exc:
            assembler.abort()
            raise AnsibleActionFail('Transfer of %s failed: %s' % (path, to_text(exc))) from None
        except BaseException:
            assembler.abort()
            raise

    def read_chunk(self, path: str, offset: int, length: int) -> dict[str, t.Any]:
        request = {'action': 'read_file', 'sections': [], 'deadline_s': READ_DEADLINE_S, 'path': path, 'offset': offset, 'length': length}
        document = self.call(request)
        chunk = document.get('file')
        if not isinstance(chunk, dict):
            raise ValueError('no "file" record in the answer (endpoint errors: %s)' % json.dumps(document.get('errors') or [])[:400])
        try:
            data = base64.b64decode(chunk.get('data_b64') or '', validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ValueError('the chunk at offset %d is not valid base64' % offset) from None
        return dict(chunk, data=data)
