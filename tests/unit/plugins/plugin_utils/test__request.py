# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Requests and the Windows command lines they carry: every one splits back, like CommandLineToArgvW, into the intended argv."""

from __future__ import annotations

import json

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _request as req
from tests.lab.windows import CommandLineError, command_line_to_argv, quote_argument

HOSTILE = [
    'plain',
    'C:\\Program Files\\Cisco\\AMP\\8.1.7.21417',
    'C:\\path with spaces\\',
    'C:\\trailing\\\\',
    'a"quote',
    'back\\"slash-quote',
    'tab\there',
    '',
    '\\\\server\\share\\x y\\',
    'ends with quote"',
]
WORK_DIRS = ['C:\\Windows\\Temp\\tetra-support-20261128T023000Z-1a2b3c4d', 'C:\\Win dows\\Temp\\tetra-support-a b (1)']
SERVERS = ['tetra-defs.amp.cisco.com', 'tetra-defs.eu.amp.cisco.com', 'update.corp-example.local']


@pytest.mark.parametrize('value', HOSTILE)
def test_quote_windows_argument_round_trips_and_mirrors_the_lab(value: str) -> None:
    quoted = req.quote_windows_argument(value)
    assert quoted == quote_argument(value)
    assert command_line_to_argv('prog.exe ' + quoted) == ['prog.exe', value]
    assert command_line_to_argv('prog.exe ' + req.quote_windows_argument(value, force=True)) == ['prog.exe', value]


def test_windows_command_line_joins_many_hostile_arguments() -> None:
    line = req.windows_command_line(HOSTILE)
    assert command_line_to_argv('prog.exe ' + line) == ['prog.exe'] + HOSTILE


def argv(program: str, arguments: str) -> list[str]:
    return command_line_to_argv(program + ' ' + arguments)[1:]


@pytest.mark.parametrize('server', SERVERS)
@pytest.mark.parametrize('seconds', [1, 12, 300])
def test_curl_command_line(server: str, seconds: int) -> None:
    command = req.windows_commands(server, curl_timeout=seconds)['curl']
    assert command['encoding'] == 'utf-8'
    assert argv('curl.exe', command['arguments']) == ['-v', '--max-time', str(seconds), 'https://%s/' % server]


def test_curl_refuses_a_server_that_is_not_a_host_name() -> None:
    with pytest.raises(ValueError):
        req.windows_commands('evil.example/ -o C:\\x')


@pytest.mark.parametrize('work_dir', WORK_DIRS)
@pytest.mark.parametrize('size', [1, 256, 4096])
def test_support_command_lines(work_dir: str, size: int) -> None:
    commands = req.windows_commands(capture_max_mb=size)
    filled = {name: req.fill_placeholders(spec['arguments'], {'work_dir': work_dir}) for name, spec in commands.items()}
    capture = work_dir + '\\capture.etl'
    assert argv('pktmon.exe', filled['pktmon_start']) == ['start', '--capture', '--pkt-size', '0', '--file-name', capture, '--file-size', str(size)]
    assert argv('pktmon.exe', filled['pktmon_stop']) == ['stop']
    assert argv('netsh.exe', filled['netsh_trace_start']) == ['trace', 'start', 'capture=yes', 'tracefile=' + capture, 'maxsize=%d' % size,
                                                              'overwrite=yes']
    assert argv('netsh.exe', filled['netsh_trace_stop']) == ['trace', 'stop']
    assert argv('ipsupporttool.exe', filled['ipsupporttool']) == ['-o', work_dir]
    assert argv('sfc.exe', filled['sfc_forceupdate']) == ['-forceupdate']
    assert argv('sfc.exe', filled['sfc_log_start']) == ['-l', 'start']
    assert argv('sfc.exe', filled['sfc_log_stop']) == ['-l', 'stop']
    assert argv('AmpCLI.exe', filled['ampcli_posture']) == ['posture']
    assert argv('netsh.exe', filled['netsh_winhttp_proxy']) == ['winhttp', 'show', 'proxy']
    assert {name: spec['encoding'] for name, spec in commands.items()} == {
        'ampcli_posture': 'utf-8', 'netsh_winhttp_proxy': 'oem', 'sfc_forceupdate': 'oem', 'sfc_log_start': 'oem', 'sfc_log_stop': 'oem',
        'pktmon_start': 'oem', 'pktmon_stop': 'oem', 'netsh_trace_start': 'oem', 'netsh_trace_stop': 'oem', 'ipsupporttool': 'oem',
        'system_task': 'oem'}


@pytest.mark.parametrize('folder', ['C:\\Windows\\Temp\\tetra-0123456789abcdef0123456789abcdef', 'D:\\Win NT\\Temp\\tetra-x (2)'])
def test_system_task_command_line_runs_the_shipped_script_without_file_or_policy(folder: str) -> None:
    values = {'script': folder + '\\tetra_evidence.ps1', 'request': folder + '\\request.json', 'output': folder + '\\probes.json'}
    words = argv('powershell.exe', req.fill_placeholders(req.windows_commands()['system_task']['arguments'], values))
    assert words[:3] == ['-NoProfile', '-NonInteractive', '-Command'] and len(words) == 4
    assert not {'-file', '-executionpolicy'} & {w.lower() for w in words}
    assert words[3] == ("$ErrorActionPreference = 'Stop'; & ([ScriptBlock]::Create([IO.File]::ReadAllText('%(script)s'))) "
                        "-RequestFile '%(request)s' -OutFile '%(output)s'" % values)


@pytest.mark.parametrize('value', ['C:\\x\\', 'C:\\a"b', "C:\\it's", '', 'C:\\x\ny', 'C:\\%TEMP%', 'C:\\x;y'])
def test_placeholder_values_that_could_change_the_split_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        req.fill_placeholders('-o "{work_dir}"', {'work_dir': value})


def test_a_trailing_backslash_would_have_broken_the_split() -> None:
    # Why fill_placeholders refuses it: the value's last backslash escapes the closing quote.
    with pytest.raises(CommandLineError):
        command_line_to_argv('ipsupporttool.exe -o "C:\\x\\" -y ""x')
    assert command_line_to_argv('ipsupporttool.exe -o "C:\\x\\"')[1:] == ['-o', 'C:\\x"']


def test_placeholders_are_always_inside_a_quoted_argument() -> None:
    for name, spec in req.windows_commands('tetra-defs.amp.cisco.com').items():
        for placeholder in req.PLACEHOLDERS:
            token = '{%s}' % placeholder
            at = spec['arguments'].find(token)
            if at >= 0:
                assert spec['arguments'][:at].count('"') % 2 == 1, name


def test_build_request_carries_the_command_lines() -> None:
    request = req.build_request('collect', ['install', 'curl'], {'timeouts': {'curl': 20}, 'region': 'eu'})
    assert argv('curl.exe', request['commands']['curl']['arguments']) == ['-v', '--max-time', '20', 'https://tetra-defs.eu.amp.cisco.com/']
    assert set(request['commands']) == set(req.windows_commands('x.example')) and json.dumps(request)
    support = req.build_request('support_start', [], {'capture_max_mb': 64})
    assert 'curl' not in support['commands'] and 'maxsize=64' in support['commands']['netsh_trace_start']['arguments']
