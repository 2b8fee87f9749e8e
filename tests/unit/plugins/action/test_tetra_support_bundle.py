# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_support_bundle against a fake endpoint: start/wait/finish ordering, clean-up on failure, chunked transfer."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time

import pytest

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure

from ansible_collections.secure_endpoint.tetra.plugins.action import tetra_support_bundle
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_support_bundle import ActionModule

FOLDER = 'C:\\Program Files\\Cisco\\AMP\\8.1.7.21417'


def policy_xml(interval: int) -> str:
    return ('<?xml version="1.0"?><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><Object><config><agent><scansettings><tetra>'
            '<enable>1</enable><updater><enable>1</enable><server>tetra-defs.amp.cisco.com</server><interval>%d</interval></updater>'
            '</tetra></scansettings></agent></config></Object></Signature>' % interval)


class FakeEndpoint:
    """An endpoint that keeps state (debug logging, capture, files in the work folder), answering the shared fake connection."""

    def __init__(self, company='Cisco Systems, Inc.', interval=None, bundle_size=300_000, fail=None, corrupt=False, refuse_net=False,
                 listed_extra=None):
        self.company = company
        self.interval = interval
        self.bundle = os.urandom(bundle_size)
        self.capture_data = os.urandom(70_000)
        self.fail = fail or {}
        self.corrupt = corrupt
        self.requests = []
        self.connection = None
        self.debug_logging = False
        self.capture_running = False
        self.files = {}
        self.tasks = {}
        self.refuse_net = refuse_net
        self.listed_extra = listed_extra

    @property
    def actions(self):
        return [r['action'] for r in self.requests]

    def respond(self, request):
        """The evidence document for one request, or the exception a test asked for instead."""
        self.requests.append(request)
        action = request['action']
        answer = getattr(self, action)(request)
        if action in self.fail:
            return self.fail[action]
        doc = {'format': 1, 'action': action, 'started': '2026-09-21T10:00:00Z', 'duration_ms': 50, 'context': 'user',
               'host': {'computer_name': 'EP-1'}, 'errors': []}
        doc.update(answer)
        return doc

    def collect(self, request):
        policy = {'path': 'C:\\Program Files\\Cisco\\AMP\\policy.xml', 'readable': False, 'text': None, 'error': {'type': 'x', 'hresult': -1}}
        if self.interval:
            policy.update(readable=True, text=policy_xml(self.interval), error=None)
        return {'install': {'install_dir': 'C:\\Program Files\\Cisco\\AMP', 'version_dirs': ['8.1.7.21417'],
                            'service': {'name': 'CiscoAMP', 'image_path': '"%s\\sfc.exe"' % FOLDER, 'state': 'Running', 'start_type': 'Auto'},
                            'display_version': '8.1.7.21417',
                            'sfc': {'path': FOLDER + '\\sfc.exe', 'company': self.company, 'file_version': '8.1.7.21417'},
                            'reboot_pending': False, 'isolated': False},
                'files': {'local_xml': {'path': 'C:\\Program Files\\Cisco\\AMP\\local.xml', 'readable': False, 'text': None, 'error': None},
                          'policy_xml': policy}}

    def support_start(self, request):
        net = request['safety_net']
        if self.refuse_net:
            return {'support': {'work_dir': request['work_dir'], 'refused': 'safety_net_failed', 'rolled_back': None,
                                'safety_net': {'task': net['task'], 'registered': False, 'error': {
                                    'type': 'Microsoft.Management.Infrastructure.CimException', 'hresult': -2146233088,
                                    'message': 'Access is denied.'}}}}
        self.tasks[net['task']] = net
        self.debug_logging = True
        self.capture_running = request['capture'] != 'none'
        return {'support': {'work_dir': request['work_dir'], 'refused': None,
                            'safety_net': {'task': net['task'], 'registered': True, 'fires_at': '2026-09-21T11:00:00Z', 'error': None},
                            'debug_logging': {'exit_code': 0},
                            'capture': {'tool': request['capture'], 'file': request['work_dir'] + '\\capture.etl', 'exit_code': 0},
                            'forceupdate': {'ran': True, 'exit_code': 0}}}

    def support_finish(self, request):
        work = request['work_dir']
        self.files = {work + '\\CiscoAMP_Support_Tool_2026_09_21.zip': self.bundle}
        if self.capture_running:
            self.files[work + '\\capture.etl'] = self.capture_data
        self.debug_logging = self.capture_running = False
        listed = [{'path': p, 'size': len(d), 'sha256': hashlib.sha256(d).hexdigest().upper()} for p, d in self.files.items()]
        if self.corrupt:
            listed[0]['sha256'] = '0' * 64
        if self.listed_extra:
            listed.append({'path': self.listed_extra, 'size': 1, 'sha256': '0' * 64})
        existed = self.tasks.pop(request['safety_net']['task'], None) is not None
        return {'support': {'work_dir': work, 'bundle': {'exit_code': 0, 'timed_out': False},
                            'safety_net': {'task': request['safety_net']['task'], 'existed': existed, 'fired': False, 'removed': True, 'error': None},
                            'capture': {'tool': request['capture'], 'exit_code': 0 if request['capture'] != 'none' else None},
                            'debug_logging': {'exit_code': 0}, 'files': listed}}

    def support_cleanup(self, request):
        prefix = request['work_dir'] + '\\'
        existed = any(name.startswith(prefix) for name in self.files)
        self.files = {name: data for name, data in self.files.items() if not name.startswith(prefix)}
        return {'support': {'work_dir': request['work_dir'], 'existed': existed, 'removed': True}}

    def read_file(self, request):
        data = self.files[request['path']]
        offset, length = request['offset'], request['length']
        chunk = data[offset:offset + length]
        return {'file': {'path': request['path'], 'size': len(data), 'offset': offset,
                         'data_b64': base64.b64encode(chunk).decode(), 'eof': offset + len(chunk) >= len(data)}}


@pytest.fixture(autouse=True)
def clock(monkeypatch, fake_clock):
    monkeypatch.setattr(ActionModule, 'clock', fake_clock)
    return fake_clock


@pytest.fixture
def run(run_action, fake_connection):
    """Runs the module against a FakeEndpoint through the shared fake connection (kept as endpoint.connection)."""
    def run(endpoint, args, check_mode=False, host='ep-1'):
        endpoint.connection = fake_connection(respond=endpoint.respond)
        return run_action(ActionModule, endpoint.connection, args, check_mode, host)
    return run


def test_full_run_brings_verified_files_and_a_manifest(tmp_path, clock, run):
    endpoint = FakeEndpoint()
    result = run(endpoint, {'dest': str(tmp_path), 'capture': 'pktmon', 'wait': 30, 'chunk_size': 65536})
    assert not result.get('failed'), result.get('msg')
    reads = endpoint.actions.count('read_file')
    assert endpoint.actions[:3] == ['collect', 'support_start', 'support_finish']
    assert reads == 5 + 2  # 300000 bytes in 64 KB chunks, 70000 bytes in 2 chunks
    assert clock.sleeps == [30]
    start = endpoint.requests[1]
    assert start['capture'] == 'pktmon' and start['capture_max_mb'] == 256
    assert re.fullmatch(r'C:\\Windows\\Temp\\tetra-support-\d{8}T\d{6}Z-[0-9a-f]{8}', start['work_dir'])
    assert endpoint.requests[2]['work_dir'] == start['work_dir']
    folder = tmp_path / 'ep-1'
    assert (folder / 'CiscoAMP_Support_Tool_2026_09_21.zip').read_bytes() == endpoint.bundle
    assert (folder / 'capture.etl').read_bytes() == endpoint.capture_data
    manifest = json.loads((folder / 'manifest.json').read_text())
    assert manifest['host'] == 'ep-1' and manifest['work_dir'] == start['work_dir']
    by_name = {f['name']: f for f in manifest['files']}
    assert by_name['capture.etl']['sha256'] == hashlib.sha256(endpoint.capture_data).hexdigest()
    assert by_name['CiscoAMP_Support_Tool_2026_09_21.zip']['size'] == 300_000 and all(f['verified'] for f in manifest['files'])
    assert set(manifest['times']) >= {'started', 'support_started', 'support_finished', 'finished'}
    assert result['cleanup']['debug_logging_stopped'] and result['cleanup']['capture_stopped']
    assert endpoint.debug_logging is False and endpoint.capture_running is False
    assert result['changed'] is True and result['manifest'] == str(folder / 'manifest.json')
    assert endpoint.actions[-1] == 'support_cleanup' and endpoint.requests[-1]['work_dir'] == start['work_dir']
    assert endpoint.files == {} and result['remote_removed'] is True and 'warnings' not in result
    assert start['safety_net'] == {'task': 'secure_endpoint.tetra support ' + start['work_dir'].rsplit('tetra-support-', 1)[1],
                                   'delay_s': 30 + 600 + 120, 'time_limit_s': 600, 'stop': ['pktmon_stop', 'sfc_log_stop']}
    assert endpoint.requests[2]['safety_net'] == start['safety_net'] and endpoint.tasks == {}
    assert result['cleanup']['safety_net_removed'] is True and result['safety_net']['task'] == start['safety_net']['task']


def test_remote_folder_is_kept_when_asked(tmp_path, run):
    endpoint = FakeEndpoint()
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 0, 'remove_remote': False})
    assert 'support_cleanup' not in endpoint.actions and endpoint.files
    assert result['remote_removed'] is False and not result.get('failed')


def test_a_failed_remote_cleanup_is_a_warning_and_the_bundle_is_kept(tmp_path, run):
    endpoint = FakeEndpoint(fail={'support_cleanup': AnsibleConnectionFailure('Connection reset by peer')})
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 0})
    assert not result.get('failed') and result['remote_removed'] is False
    assert any('stays on the endpoint' in w for w in result['warnings'])
    assert (tmp_path / 'ep-1' / 'CiscoAMP_Support_Tool_2026_09_21.zip').read_bytes() == endpoint.bundle


def test_finish_runs_even_when_the_wait_raises(tmp_path, clock, run):
    clock.fail_sleep = KeyboardInterrupt()
    endpoint = FakeEndpoint()
    with pytest.raises(KeyboardInterrupt):
        run(endpoint, {'dest': str(tmp_path), 'capture': 'netsh', 'wait': 600})
    assert endpoint.actions == ['collect', 'support_start', 'support_finish']
    assert endpoint.debug_logging is False and endpoint.capture_running is False


def test_finish_runs_when_support_start_fails_in_the_middle(tmp_path, run):
    """The endpoint started debug logging but its answer was lost: finish must still be sent."""
    endpoint = FakeEndpoint(fail={'support_start': AnsibleConnectionFailure('Connection refused by the remote host')})
    result = run(endpoint, {'dest': str(tmp_path), 'capture': 'pktmon', 'wait': 30})
    assert result['unreachable'] is True
    assert endpoint.actions == ['collect', 'support_start', 'support_finish']
    assert 'support_finish ran' in result['msg'] and result['cleanup']['debug_logging_stopped'] is True
    assert endpoint.debug_logging is False and endpoint.capture_running is False and endpoint.connection.resets >= 1


def test_a_failing_finish_is_reported_loudly(tmp_path, run):
    endpoint = FakeEndpoint(fail={'support_finish': AnsibleConnectionFailure('Connection refused')})
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 1})
    assert result['unreachable'] is True and 'may still be running' in result['msg']


def test_checksum_mismatch_fails_and_leaves_no_file(tmp_path, run):
    endpoint = FakeEndpoint(corrupt=True)
    with pytest.raises(AnsibleActionFail, match='sha256'):
        run(endpoint, {'dest': str(tmp_path), 'wait': 0})
    assert 'support_finish' in endpoint.actions
    assert [p.name for p in (tmp_path / 'ep-1').iterdir()] == []


def test_chunked_transfer_reassembles_across_chunk_boundaries(tmp_path, run):
    endpoint = FakeEndpoint(bundle_size=4096 * 3 + 17)
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 0, 'chunk_size': 4096})
    assert endpoint.actions.count('read_file') == 4
    offsets = [r['offset'] for r in endpoint.requests if r['action'] == 'read_file']
    assert offsets == [0, 4096, 8192, 12288]
    assert (tmp_path / 'ep-1' / result['files'][0]['name']).read_bytes() == endpoint.bundle


def test_check_mode_runs_nothing_and_reports_the_plan(tmp_path, clock, run):
    endpoint = FakeEndpoint(interval=1800)
    result = run(endpoint, {'dest': str(tmp_path), 'capture': 'pktmon'}, check_mode=True)
    assert endpoint.actions == ['collect']
    assert clock.sleeps == [] and not (tmp_path / 'ep-1').exists()
    assert (result['wait_s'], result['wait_source']) == (1800, 'policy')
    assert result['commands'][0] == '"%s\\sfc.exe" -l start' % FOLDER
    assert result['commands'][-1] == '"%s\\sfc.exe" -l stop' % FOLDER
    assert any(c.startswith('C:\\Windows\\System32\\pktmon.exe start') for c in result['commands'])
    assert 'Nothing was run' in result['msg']


def test_wait_defaults_to_the_policy_interval_capped_by_max_wait(tmp_path, clock, run):
    run(FakeEndpoint(interval=7200), {'dest': str(tmp_path), 'max_wait': 900})
    assert clock.sleeps == [900]


def test_non_cisco_sfc_is_refused_before_anything_runs(tmp_path, run):
    endpoint = FakeEndpoint(company='Microsoft Corporation')
    result = run(endpoint, {'dest': str(tmp_path)})
    assert endpoint.actions == ['collect'] and result['refused'] == 'sfc_not_cisco' and result['changed'] is False


def test_hostile_host_name_stays_inside_dest(tmp_path, run):
    result = run(FakeEndpoint(), {'dest': str(tmp_path), 'wait': 0}, host='../../etc')
    assert os.path.dirname(result['dest']) == str(tmp_path)


def test_argument_spec_matches_the_documentation():
    import yaml
    from ansible_collections.secure_endpoint.tetra.plugins.modules import tetra_support_bundle as doc
    options = yaml.safe_load(doc.DOCUMENTATION)['options']
    assert set(options) == set(tetra_support_bundle.ARGUMENT_SPEC)
    for name, spec in tetra_support_bundle.ARGUMENT_SPEC.items():
        assert options[name]['type'] == spec['type']
        assert options[name].get('default') == spec.get('default')
        assert options[name].get('choices') == spec.get('choices')


# ---------------------------------------------------------------- safety net and hostile inputs

def test_safety_net_stops_the_netsh_capture_then_debug_logging(tmp_path, run):
    endpoint = FakeEndpoint()
    run(endpoint, {'dest': str(tmp_path), 'capture': 'netsh', 'wait': 0, 'deadline': 60})
    net = endpoint.requests[1]['safety_net']
    assert net['stop'] == ['netsh_trace_stop', 'sfc_log_stop'] and net['delay_s'] == 60 + 120
    assert set(net['stop']) <= set(endpoint.requests[1]['commands'])


def test_without_a_safety_net_nothing_starts_and_nothing_waits(tmp_path, clock, run):
    endpoint = FakeEndpoint(refuse_net=True)
    result = run(endpoint, {'dest': str(tmp_path), 'capture': 'pktmon', 'wait': 600})
    assert endpoint.actions == ['collect', 'support_start'] and clock.sleeps == []
    assert result['refused'] == 'safety_net_failed' and result['changed'] is False and not result.get('failed')
    assert 'safety-net scheduled task' in result['msg'] and 'Access is denied.' in result['msg']
    assert endpoint.debug_logging is False and endpoint.capture_running is False


def test_a_safety_net_left_behind_is_a_warning(tmp_path, monkeypatch, run):
    endpoint = FakeEndpoint()
    original = endpoint.support_finish

    def finish(request):
        answer = original(request)
        answer['support']['safety_net'] = {'task': request['safety_net']['task'], 'existed': True, 'removed': False,
                                           'error': {'type': 'System.UnauthorizedAccessException', 'hresult': -2147024891, 'message': 'denied'}}
        return answer
    monkeypatch.setattr(endpoint, 'support_finish', finish)
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 0})
    assert result['cleanup']['safety_net_removed'] is False
    assert any('safety-net task' in w and 'denied' in w for w in result['warnings'])


def test_a_lost_finish_names_the_safety_net(tmp_path, run):
    endpoint = FakeEndpoint(fail={'support_finish': AnsibleConnectionFailure('Connection refused')})
    result = run(endpoint, {'dest': str(tmp_path), 'wait': 1})
    assert 'safety-net task "secure_endpoint.tetra support ' in result['msg'] and '2026-09-21T11:00:00Z' in result['msg']


def test_check_mode_shows_the_safety_net(tmp_path, run):
    result = run(FakeEndpoint(), {'dest': str(tmp_path), 'capture': 'pktmon', 'wait': 60}, check_mode=True)
    assert result['safety_net']['delay_s'] == 60 + 600 + 120 and 'safety net' in result['msg']


@pytest.mark.parametrize('listed', ['C:\\Windows\\System32\\config\\SAM', 'C:\\Windows\\Temp\\tetra-support-other\\x.zip',
                                    '{work}\\..\\..\\x', '{work}\\sub\\x.zip', '{work}\\x.zip\n', '{work}\\a\x00b'])
def test_a_listed_file_outside_the_work_folder_is_refused(tmp_path, listed, run):
    endpoint = FakeEndpoint()
    original = endpoint.support_finish

    def finish(request):
        endpoint.listed_extra = listed.replace('{work}', request['work_dir'])
        return original(request)
    endpoint.support_finish = finish
    with pytest.raises(AnsibleActionFail, match='outside its work folder'):
        run(endpoint, {'dest': str(tmp_path), 'wait': 0})
    assert 'read_file' not in endpoint.actions


@pytest.mark.parametrize('args, text', [
    ({'dest': 'x\n'}, 'dest must be a path'), ({'dest': 'a\x00b'}, 'dest must be a path'), ({'dest': ' /tmp/x'}, 'dest must be a path'),
    ({'dest': 'x' * 5000}, 'dest must be a path'),
    ({'capture_max_mb': 0}, 'capture_max_mb must be from 1 to 4096'), ({'capture_max_mb': -5}, 'capture_max_mb'),
    ({'capture_max_mb': 10 ** 9}, 'capture_max_mb'),
    ({'wait': -1}, 'wait must be from 0 to 86400'), ({'wait': 10 ** 9}, 'wait'), ({'max_wait': -1}, 'max_wait'),
    ({'max_wait': 86401}, 'max_wait'), ({'deadline': 0}, 'deadline must be from 60 to 3600'), ({'deadline': -60}, 'deadline'),
    ({'deadline': 59}, 'deadline'), ({'deadline': 3601}, 'deadline'), ({'chunk_size': 0}, 'chunk_size'), ({'chunk_size': 2 ** 40}, 'chunk_size'),
])
def test_hostile_arguments_fail_clearly_before_any_call(tmp_path, args, text, run):
    endpoint = FakeEndpoint()
    args = dict({'dest': str(tmp_path)}, **args)
    with pytest.raises(AnsibleActionFail, match=re.escape(text)):
        run(endpoint, args)
    assert endpoint.requests == []


def test_a_hanging_reconnect_is_abandoned_and_finish_still_runs(tmp_path, run_action, fake_connection, monkeypatch):
    """The reconnect before support_finish is network I/O: a reset that never returns must not hold the task."""
    monkeypatch.setattr(tetra_support_bundle, 'RECONNECT_BOUND_S', 0.2)
    endpoint = FakeEndpoint(fail={'support_start': AnsibleConnectionFailure('Connection refused by the remote host')})
    endpoint.connection = fake_connection(respond=endpoint.respond, reset_s=5.0)
    started = time.monotonic()
    result = run_action(ActionModule, endpoint.connection, {'dest': str(tmp_path), 'capture': 'pktmon', 'wait': 30}, False, 'ep-1')
    assert time.monotonic() - started < 5.0
    assert endpoint.connection.resets >= 1 and endpoint.actions == ['collect', 'support_start', 'support_finish']
    assert 'support_finish ran' in result['msg'] and endpoint.debug_logging is False
