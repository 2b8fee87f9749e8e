# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Collect the TAC evidence bundle: debug logging and an optional capture for one update interval, then
ipsupporttool.exe, with clean-up guaranteed, and the files brought to the controller with a manifest.

Calls: 1 read (install, local.xml, policy.xml); ``support_start``; a controller-side wait;
``support_finish`` (always, in ``finally``, once ``support_start`` was sent); ``read_file`` chunks.
Every call is one plain ``exec_command``, so winrm, psrp and ssh all work.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _remediation as rem
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import RemoteError
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import build_request

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
READ_DEADLINE_S = 60
# Reconnect before support_finish after a wait this long: idle WinRM shells and SSH sessions get dropped.
RECONNECT_AFTER_S = 300


def check_args(args: dict[str, t.Any]) -> None:
    if not 1 <= args['capture_max_mb'] <= 4096:
        raise ValueError('capture_max_mb must be between 1 and 4096, got %s' % args['capture_max_mb'])
    if args['wait'] is not None and args['wait'] < 0:
        raise ValueError('wait must be 0 or more seconds, got %s' % args['wait'])
    if args['max_wait'] < 0:
        raise ValueError('max_wait must be 0 or more seconds, got %s' % args['max_wait'])
    if args['deadline'] < 60:
        raise ValueError('deadline must be at least 60 seconds (ipsupporttool.exe gets deadline - 20 s), got %s' % args['deadline'])
    if not 4096 <= args['chunk_size'] <= rem.MAX_CHUNK_BYTES:
        raise ValueError('chunk_size must be between 4096 and %d bytes, got %s' % (rem.MAX_CHUNK_BYTES, args['chunk_size']))


def commands_plan(sfc_path: str, work_dir: str, capture: str, max_mb: int) -> list[str]:
    """What support_start and support_finish run on the endpoint, in order (docs/endpoint-commands.md)."""
    folder = sfc_path.rsplit('\\', 1)[0]
    etl = work_dir + '\\capture.etl'
    start = {'pktmon': ['C:\\Windows\\System32\\pktmon.exe start --capture --pkt-size 0 --file-name "%s" --file-size %d' % (etl, max_mb)],
             'netsh': ['C:\\Windows\\System32\\netsh.exe trace start capture=yes tracefile="%s" maxsize=%d overwrite=yes' % (etl, max_mb)]}
    stop = {'pktmon': ['C:\\Windows\\System32\\pktmon.exe stop'], 'netsh': ['C:\\Windows\\System32\\netsh.exe trace stop']}
    return (['"%s" -l start' % sfc_path] + start.get(capture, []) + ['"%s" -forceupdate' % sfc_path]
            + ['"%s\\ipsupporttool.exe" -o "%s"' % (folder, work_dir)] + stop.get(capture, []) + ['"%s" -l stop' % sfc_path])


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
        work_dir = rem.new_work_dir()
        folder = os.path.join(args['dest'], rem.safe_name(host, 'host'))
        sfc_path = facts['install']['sfc_path']
        plan = {'work_dir': work_dir, 'dest': folder, 'wait_s': wait_s, 'wait_source': wait_source, 'capture': args['capture'],
                'capture_max_mb': args['capture_max_mb'], 'commands': commands_plan(sfc_path, work_dir, args['capture'], args['capture_max_mb'])}
        if self._task.check_mode:
            return dict(plan, changed=True, refused=None, calls=self.calls,
                        msg='Check mode: would enable debug logging%s, force an update, wait %d s (%s), build the support bundle in %s, '
                            'stop everything and copy the files to %s. Nothing was run.'
                            % ('' if args['capture'] == 'none' else ' and a %s capture' % args['capture'], wait_s, wait_source, work_dir, folder))
        request = dict(build_request('support_start', (), args), capture=args['capture'], capture_max_mb=args['capture_max_mb'], work_dir=work_dir)
        times: dict[str, t.Any] = {'started': rem.utc_now()}
        start, finish = self.start_wait_finish(request, wait_s, times)
        files = self.transfer(finish, folder, args['chunk_size'])
        remote = self.remove_remote(work_dir) if args['remove_remote'] else {'removed': False, 'error': None}
        times['finished'] = rem.utc_now()
        cleanup = self.cleanup_state(args['capture'], start, finish)
        document = rem.manifest(host, (facts.get('host') or {}).get('computer_name'), work_dir, files, times, {
            'connector_version': rem.connector_version(facts), 'capture': args['capture'], 'wait_s': wait_s, 'wait_source': wait_source,
            'cleanup': cleanup})
        manifest_path = os.path.join(folder, rem.MANIFEST_NAME)
        with open(manifest_path + '.tmp', 'w', encoding='utf-8') as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
        os.replace(manifest_path + '.tmp', manifest_path)
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

    def start_wait_finish(self, request: dict[str, t.Any], wait_s: int, times: dict[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
        start: dict[str, t.Any] = {}
        finish: dict[str, t.Any] = {}
        waited_from = self.clock.now()
        try:
            start = self.support_call(request, 'support_start')
            times['support_started'] = rem.utc_now()
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
            exc.result['msg'] = ('support_finish failed, so debug logging and the capture may still be running on the endpoint '
                                 '(stop them with "sfc.exe -l stop" and "pktmon stop"/"netsh trace stop"): %s' % exc.result.get('msg'))
            raise
        times['support_finished'] = rem.utc_now()
        return start, finish

    def finish_after_failure(self, request: dict[str, t.Any], failure: BaseException) -> None:
        """support_finish after a failed start or an interrupted wait; its outcome is attached to the original error."""
        self.reconnect()
        try:
            finish = self.support_call(dict(request, action='support_finish'), 'support_finish')
            note = {'support_finish': finish, 'cleanup': self.cleanup_state(request.get('capture', 'none'), {}, finish)}
            text = 'support_finish ran: debug logging and capture were stopped'
        except RemoteError as exc:
            note = {'support_finish_error': exc.result.get('msg')}
            text = 'support_finish ALSO FAILED (%s): stop them by hand with "sfc.exe -l stop" and "pktmon stop"/"netsh trace stop"' % exc.result.get('msg')
        if isinstance(failure, RemoteError):
            failure.result.update(note, calls=self.calls, work_dir=request.get('work_dir'))
            failure.result['msg'] = '%s; %s' % (failure.result['msg'], text)
        else:
            self._display.warning('Support bundle interrupted (%s); %s' % (type(failure).__name__, text))

    def support_call(self, request: dict[str, t.Any], what: str) -> dict[str, t.Any]:
        document = self.call(request)
        support = document.get('support')
        if not isinstance(support, dict):
            errors = document.get('errors') or []
            raise RemoteError('%s returned no "support" record (endpoint errors: %s)' % (what, json.dumps(errors)[:400]), document_errors=errors)
        return dict(support, errors=document.get('errors') or [])

    def reconnect(self) -> None:
        try:
            self._connection.reset()
        except Exception:  # pylint: disable=broad-except  # best effort; the next call reports the real problem
            pass

    @staticmethod
    def cleanup_state(capture: str, start: dict[str, t.Any], finish: dict[str, t.Any]) -> dict[str, t.Any]:
        """Whether debug logging and the capture were stopped, from support_finish's answer."""
        logging = finish.get('debug_logging') or {}
        stop = finish.get('capture') or {}
        return {
            'debug_logging_stopped': logging.get('exit_code') == 0 or logging.get('stopped') is True,
            'debug_logging_exit_code': logging.get('exit_code'),
            'capture': capture,
            'capture_stopped': True if capture == 'none' else (stop.get('exit_code') == 0 or stop.get('stopped') is True),
            'capture_exit_code': stop.get('exit_code'),
            'debug_logging_started': (start.get('debug_logging') or {}).get('exit_code') == 0 if start else None,
        }

    # ---- bringing the files home ----

    def transfer(self, finish: dict[str, t.Any], folder: str, chunk_size: int) -> list[dict[str, t.Any]]:
        listed = [f for f in (finish.get('files') or []) if isinstance(f, dict) and f.get('path')]
        os.makedirs(folder, exist_ok=True)
        files = []
        for entry, name in zip(listed, rem.unique_names(f['path'] for f in listed)):
            local = os.path.join(folder, name)
            size = entry.get('size') if isinstance(entry.get('size'), int) else None
            verified = self.fetch(str(entry['path']), local, size, entry.get('sha256'), chunk_size)
            files.append(dict(verified, name=name, source_path=entry['path']))
        return files

    def fetch(self, path: str, local: str, size: int | None, sha256: str | None, chunk_size: int) -> dict[str, t.Any]:
        """read_file chunk by chunk into `local`; the number of calls is bounded by the announced size."""
        assembler = rem.ChunkAssembler(local, size, sha256)
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
