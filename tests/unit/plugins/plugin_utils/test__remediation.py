# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _remediation as rem

SFC = 'C:\\Program Files\\Cisco\\AMP\\%s\\sfc.exe'


def facts(version='8.1.7.21417', company_is_cisco=True, sfc_path=None, installed=True, interval=None, install_dir='C:\\Program Files\\Cisco\\AMP'):
    return {
        'installed': installed,
        'install': {'install_dir': install_dir, 'connector_version': version, 'active_version': version,
                    'sfc_path': sfc_path if sfc_path is not None else SFC % version, 'sfc_version': version,
                    'sfc_is_cisco': company_is_cisco},
        'policy': {'interval': interval},
    }


@pytest.mark.parametrize('version, refused', [
    ('7.2.5', 'connector_too_old'), ('6.3.1', 'connector_too_old'), ('7.2.7', None), ('7.2.7.12345', None),
    ('7.3.1', None), ('8.1.7.21417', None), (None, 'connector_version_unknown'), ('garbage', 'connector_version_unknown'),
])
def test_version_gate(version, refused):
    found = rem.forceupdate_refusal(facts(version=version, sfc_path=SFC % version))
    assert (found[0] if found else None) == refused
    if refused == 'connector_too_old':
        assert version in found[1] and '7.2.7' in found[1]


def test_sfc_missing_and_not_cisco_and_not_installed():
    assert rem.forceupdate_refusal(facts(company_is_cisco=None))[0] == 'sfc_missing'
    refused = rem.forceupdate_refusal(facts(company_is_cisco=False), 'Microsoft Corporation')
    assert refused[0] == 'sfc_not_cisco' and 'Microsoft Corporation' in refused[1] and 'System File Checker' in refused[1]
    assert rem.forceupdate_refusal(facts(installed=False))[0] == 'not_installed'


@pytest.mark.parametrize('path', ['C:\\Windows\\System32\\sfc.exe', 'C:\\Temp\\sfc.exe', 'C:\\Program Files\\Cisco\\AMP\\8.1.7\\evil.exe'])
def test_sfc_outside_the_connector_folder_is_refused_even_if_signed_cisco(path):
    assert rem.sfc_refusal(facts(sfc_path=path))[0] == 'sfc_not_cisco'


def snap(version=90600, lasterror=0, last_check='2026-01-01T00:00:00Z', last_success='2025-12-30T00:00:00Z'):
    return {'tetra_version': version, 'lasterror': {'unsigned': lasterror}, 'lasterror_code': lasterror,
            'last_check': last_check, 'last_success': last_success, 'readable': True}


def test_poll_outcome_order():
    before = snap()
    assert rem.poll_outcome(before, snap()) is None
    assert rem.poll_outcome(before, snap(version=90606, last_check='2026-01-01T00:05:00Z', lasterror=0)) == 'version_advanced'
    assert rem.poll_outcome(before, snap(lasterror=4294965193, last_check='2026-01-01T00:05:00Z')) == 'lasterror_changed'
    assert rem.poll_outcome(before, snap(last_check='2026-01-01T00:05:00Z')) == 'last_check_changed'
    # An unreadable local.xml in a poll proves nothing.
    assert rem.poll_outcome(before, dict(snap(lasterror=None), readable=False, last_check=None, tetra_version=None)) is None


@pytest.mark.parametrize('timeout, interval, polls', [(300, 5, 60), (10, 5, 2), (7, 5, 1), (3, 5, 1), (0, 5, 0)])
def test_max_polls(timeout, interval, polls):
    assert rem.max_polls(timeout, interval) == polls


def test_support_wait_sources():
    assert rem.support_wait({'wait': 30, 'max_wait': 10}, facts(interval=7200)) == (30, 'wait')
    assert rem.support_wait({'wait': None, 'max_wait': 3600}, facts(interval=1800)) == (1800, 'policy')
    assert rem.support_wait({'wait': None, 'max_wait': 600}, facts(interval=7200)) == (600, 'policy')
    assert rem.support_wait({'wait': None, 'max_wait': 7200}, facts(interval=None)) == (3600, 'default')


def test_work_dir_is_fresh_and_under_windows_temp():
    first, second = rem.new_work_dir(), rem.new_work_dir()
    assert first != second
    assert first.startswith('C:\\Windows\\Temp\\tetra-support-')


@pytest.mark.parametrize('remote, local', [
    ('C:\\Windows\\Temp\\x\\CiscoAMP_Support_Tool_2026.zip', 'CiscoAMP_Support_Tool_2026.zip'),
    ('C:\\x\\..\\..', 'file'), ('C:\\x\\a b;c.etl', 'a_b_c.etl'), ('', 'file'),
])
def test_local_names_never_escape(remote, local):
    assert rem.local_file_name(remote) == local


def test_unique_names():
    assert rem.unique_names(['C:\\a\\x.zip', 'D:\\b\\X.zip', 'C:\\c\\y.etl']) == ['x.zip', 'X-2.zip', 'y.etl']


def test_chunk_assembler_verifies_and_reassembles(tmp_path):
    data = os.urandom(10000)
    target = str(tmp_path / 'bundle.zip')
    assembler = rem.ChunkAssembler(target, len(data), hashlib.sha256(data).hexdigest().upper())
    for offset in range(0, len(data), 4096):
        assembler.add(offset, data[offset:offset + 4096])
    assert assembler.finish() == {'size': 10000, 'sha256': hashlib.sha256(data).hexdigest(), 'verified': True}
    with open(target, 'rb') as handle:
        assert handle.read() == data
    assert not os.path.exists(target + '.partial')


def test_chunk_assembler_rejects_damage_and_gaps(tmp_path):
    target = str(tmp_path / 'bundle.zip')
    assembler = rem.ChunkAssembler(target, 4, hashlib.sha256(b'abcd').hexdigest())
    assembler.add(0, b'abce')
    with pytest.raises(ValueError, match='sha256'):
        assembler.finish()
    assert not os.path.exists(target) and not os.path.exists(target + '.partial')
    assembler = rem.ChunkAssembler(target, 4, None)
    with pytest.raises(ValueError, match='offset 2'):
        assembler.add(2, b'cd')
    assembler.abort()


# ---------------------------------------------------------------- command lines (issue 9 item 5)

@pytest.mark.parametrize('path', ['C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\sfc.exe', 'D:\\Cisco AMP (x86)\\8.1.7\\sfc.exe'])
def test_forceupdate_command_splits_into_the_connector_sfc_and_one_switch(path):
    from tests.lab.windows import command_line_to_argv
    line = rem.forceupdate_command({'install': {'sfc_path': path}})
    assert command_line_to_argv(line) == [path, '-forceupdate']
    assert rem.forceupdate_command({'install': {}}) is None


@pytest.mark.parametrize('work_dir', ['C:\\Windows\\Temp\\tetra-support-20261128T023000Z-1a2b3c4d', 'C:\\W T\\Temp\\tetra-support-x y'])
def test_support_command_lines_split_into_the_intended_argv(work_dir):
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import fill_placeholders
    from tests.lab.windows import command_line_to_argv
    lines = {name: fill_placeholders(text, {'work_dir': work_dir}) for name, text in rem.support_command_lines(128).items()}
    split = {name: command_line_to_argv('tool.exe ' + text)[1:] for name, text in lines.items()}
    assert split == {
        'sfc_log_start': ['-l', 'start'], 'sfc_log_stop': ['-l', 'stop'], 'sfc_forceupdate': ['-forceupdate'],
        'pktmon_start': ['start', '--capture', '--pkt-size', '0', '--file-name', work_dir + '\\capture.etl', '--file-size', '128'],
        'pktmon_stop': ['stop'],
        'netsh_trace_start': ['trace', 'start', 'capture=yes', 'tracefile=%s\\capture.etl' % work_dir, 'maxsize=128', 'overwrite=yes'],
        'netsh_trace_stop': ['trace', 'stop'], 'ipsupporttool': ['-o', work_dir],
    }


# ---------------------------------------------------------------- the endpoint-side safety net

WORK = 'C:\\Windows\\Temp\\tetra-support-20261128T023000Z-1a2b3c4d'


@pytest.mark.parametrize('capture, stop', [('pktmon', ['pktmon_stop', 'sfc_log_stop']), ('netsh', ['netsh_trace_stop', 'sfc_log_stop']),
                                           ('none', ['sfc_log_stop'])])
def test_safety_net_is_data_naming_request_commands(capture, stop):
    net = rem.safety_net(WORK, 900, 600, capture)
    assert net == {'task': 'secure_endpoint.tetra support 20261128T023000Z-1a2b3c4d', 'delay_s': 900 + 600 + rem.SAFETY_NET_SLACK_S,
                   'time_limit_s': rem.SAFETY_NET_TIME_LIMIT_S, 'stop': stop}
    commands = rem.windows_commands()
    assert all(name in commands for name in net['stop'])


def test_safety_net_delay_bounds():
    assert rem.safety_net_delay(0, 0) == 120
    assert rem.safety_net_delay(0, 60) == 180
    assert rem.safety_net_delay(86400, 3600) == 86400 + 3600 + 120
    assert rem.safety_net_delay(10 ** 9, 3600) == rem.SAFETY_NET_DELAY_BOUNDS[1]


@pytest.mark.parametrize('work_dir, task', [
    (WORK, 'secure_endpoint.tetra support 20261128T023000Z-1a2b3c4d'),
    ('C:\\Windows\\Temp\\tetra-support-t1', 'secure_endpoint.tetra support t1'),
    ('C:\\Windows\\Temp\\tetra-support-a b (1)', 'secure_endpoint.tetra support a-b--1-'),
    ('C:\\Windows\\Temp\\tetra-support-', 'secure_endpoint.tetra support run'),
    ('C:\\Windows\\Temp\\tetra-support-' + 'x' * 100, 'secure_endpoint.tetra support ' + 'x' * 64),
])
def test_safety_net_task_name_is_the_one_the_script_derives(work_dir, task):
    assert rem.safety_net_task(work_dir) == task


@pytest.mark.parametrize('name', ['secure_endpoint.tetra support x\n', 'secure_endpoint.tetra support \\x', 'secure_endpoint.tetra support *',
                                  'other task', 'secure_endpoint.tetra support ' + 'x' * 65, 'secure_endpoint.tetra support ', None])
def test_unsafe_task_names_are_refused(name):
    with pytest.raises(ValueError):
        rem.check_safety_net_task(name)


def test_work_dir_is_checked_whole():
    assert rem.check_work_dir(rem.new_work_dir()).startswith('C:\\Windows\\Temp\\tetra-support-')
    for bad in (WORK + '\n', WORK + '\\..', 'D' + WORK[1:], WORK[:-1]):
        with pytest.raises(ValueError):
            rem.check_work_dir(bad)


@pytest.mark.parametrize('path, ok', [
    (WORK + '\\CiscoAMP_Support_Tool_2026_11_28.zip', True), (WORK + '\\capture.etl', True), (WORK.upper() + '\\capture.etl', True),
    (WORK + '\\sub\\x.zip', False), (WORK + '\\..\\x', False), (WORK + '\\..', False), (WORK + '\\.', False), (WORK + '\\x.zip.', False),
    (WORK + '\\x.zip\n', False), (WORK + '\\a\x00b', False), (WORK + '\\', False),
    ('C:\\Windows\\System32\\config\\SAM', False), (WORK + 'x\\y.zip', False), (None, False), (WORK + '\\' + 'x' * 256, False),
])
def test_listed_support_files_must_be_plain_names_in_the_work_folder(path, ok):
    if ok:
        assert rem.check_support_file(path, WORK) == path
    else:
        with pytest.raises(ValueError):
            rem.check_support_file(path, WORK)
