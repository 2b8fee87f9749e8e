# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Requests and the Windows command lines they carry: every one splits back, like CommandLineToArgvW, into the intended argv."""

from __future__ import annotations

import json

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _request as req
from tests.lab.windows import CommandLineError, command_line_to_argv

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
def test_quote_windows_argument_round_trips(value: str) -> None:
    # The plugin's quoting is the only one (the lab no longer has its own): it must split back with the lab's CommandLineToArgvW.
    quoted = req.quote_windows_argument(value)
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


# ---------------------------------------------------------------- hostile inputs (full match, bounds)

HOSTILE_HOSTS = ['tetra-defs.amp.cisco.com\n', 'tetra-defs.amp.cisco.com\r\n', '\ntetra-defs.amp.cisco.com', 'tetra\x00defs.example',
                 'tetra defs.example', ' tetra-defs.amp.cisco.com', 'tetra-defs.amp.cisco.com ', '', '-lead.example', 'trail-.example',
                 'a..b', 'a' * 64 + '.example', '.'.join(['abcdefghij'] * 26), 'evil.example/ -o C:\\x', 'h\u00e9.example', 'x.example:443',
                 'http://x.example', 5]


@pytest.mark.parametrize('value', HOSTILE_HOSTS)
@pytest.mark.parametrize('option', ['update_server', 'proxy_server'])
def test_hostile_host_names_are_refused_naming_the_option(value, option):
    args = {option: value, 'proxy_port': 8080}
    with pytest.raises(ValueError, match='%s must be a DNS host name' % option):
        req.build_request('collect', ['dns', 'proxy'], args)


@pytest.mark.parametrize('value', HOSTILE_HOSTS[:12])
def test_hostile_revocation_hosts_are_refused(value):
    with pytest.raises(ValueError, match='revocation_hosts'):
        req.build_request('collect', ['http'], {'revocation_hosts': ['validation.identrust.com', value]})


def test_revocation_hosts_count_is_bounded():
    with pytest.raises(ValueError, match='1 to 16 host names'):
        req.build_request('collect', ['http'], {'revocation_hosts': ['h%d.example' % i for i in range(17)]})
    with pytest.raises(ValueError, match='1 to 16 host names'):
        req.build_request('collect', ['http'], {'revocation_hosts': []})


@pytest.mark.parametrize('value', ['tetra-defs.amp.cisco.com', 'TETRA-DEFS.AMP.CISCO.COM.', 'a.b', 'x' * 63 + '.example', 'localhost'])
def test_valid_host_names_pass_and_are_normalised(value):
    assert req.check_hostname(value, 'update_server') == value.rstrip('.').lower()


@pytest.mark.parametrize('value', ['/tmp/x\n', '/tmp/a\x00b', '/tmp/\x1b[31m', ' /tmp/x', '/tmp/x ', '', 'x' * 4097, 5])
def test_hostile_evidence_dir_is_refused(value):
    with pytest.raises(ValueError, match='evidence_dir must be a path'):
        req.build_request('collect', ['install'], {'evidence_dir': value})


def test_a_plain_evidence_dir_with_spaces_inside_passes():
    assert req.check_path('/var/tmp/tetra evidence/run 1', 'evidence_dir') == '/var/tmp/tetra evidence/run 1'


@pytest.mark.parametrize('value', [0, -1, 9, 3601, 10 ** 9, True, '40', 40.5])
def test_deadline_bounds(value):
    with pytest.raises(ValueError, match='deadline must be a whole number of seconds from 10 to 3600'):
        req.build_request('collect', ['install'], {'deadline': value})


def test_deadline_inside_bounds_and_default():
    assert req.build_request('collect', ['install'], {'deadline': 10})['deadline_s'] == 10
    assert req.build_request('collect', ['install'], {'deadline': 3600})['deadline_s'] == 3600
    assert req.build_request('collect', ['install'], {})['deadline_s'] == 40


@pytest.mark.parametrize('value', [0, -1, 257, True, '16', 1.5])
def test_max_answer_mb_bounds(value):
    with pytest.raises(ValueError, match='max_answer_mb must be a whole number of MB from 1 to 256'):
        req.max_answer_bytes({'max_answer_mb': value})


def test_max_answer_mb_inside_bounds_and_default():
    assert req.max_answer_bytes({}) == req.max_answer_bytes({'max_answer_mb': None}) == 16 * 2 ** 20
    assert (req.max_answer_bytes({'max_answer_mb': 1}), req.max_answer_bytes({'max_answer_mb': 256})) == (2 ** 20, 256 * 2 ** 20)
    assert 'max_answer_mb' not in req.build_request('collect', ['install'], {'max_answer_mb': 1})  # a controller setting only


def test_deadline_must_cover_the_slowest_probe():
    # deadline=12 with default timeouts: the TLS probe alone may take 5 + 10 s.
    with pytest.raises(ValueError, match=r'deadline \(12 s\) must be at least 20 s with these timeouts: the slowest probe \(TLS: connect 5 s'):
        req.build_request('collect', ['dns', 'tls'], {'deadline': 12})
    with pytest.raises(ValueError, match=r'curl.exe: 100 s \+ 2 s'):
        req.build_request('collect', ['curl'], {'deadline': 60, 'timeouts': {'curl': 100}})
    assert req.build_request('collect', ['dns', 'tls'], {'deadline': 20})['deadline_s'] == 20
    # Without network probes only the general bounds apply.
    assert req.build_request('collect', ['install', 'files'], {'deadline': 12})['deadline_s'] == 12


@pytest.mark.parametrize('name', sorted(req.DEFAULT_TIMEOUTS))
@pytest.mark.parametrize('value', [0, -5, 301, 10 ** 12, True, '5'])
def test_timeout_bounds(name, value):
    with pytest.raises(ValueError, match=r'timeouts\.%s must be a whole number of seconds from 1 to 300' % name):
        req.build_request('collect', ['install'], {'timeouts': {name: value}})


def test_timeouts_inside_bounds():
    chosen = req.build_request('collect', ['install'], {'timeouts': {'dns': 1, 'tls': 300}, 'deadline': 3600})['timeouts']
    assert chosen['dns'] == 1 and chosen['tls'] == 300 and chosen['curl'] == req.DEFAULT_TIMEOUTS['curl']


@pytest.mark.parametrize('port', [0, -1, 65536, 10 ** 9, True])
def test_proxy_port_bounds(port):
    with pytest.raises(ValueError, match='proxy_port must be between 1 and 65535'):
        req.build_request('collect', ['proxy'], {'proxy_server': 'proxy.example', 'proxy_port': port})


@pytest.mark.parametrize('value', ['C:\\x\n', 'C:\\x\r\n', 'C:\\x\x00', 'C:\\x\ny'])
def test_placeholder_values_with_a_trailing_newline_are_refused(value):
    # The check is a full match: `^...$` would have accepted "C:\x\n".
    with pytest.raises(ValueError):
        req.check_placeholder_value(value)


def test_host_name_length_limits_are_rfc_1123s():
    """253 characters in all and 63 per label pass; one more of either is refused."""
    longest = '.'.join(['a' * 63] * 3 + ['b' * 61])
    assert len(longest) == 253 and req.check_hostname(longest, 'update_server') == longest
    for value in (longest + 'b', 'a' * 64 + '.example'):
        with pytest.raises(ValueError, match='update_server must be a DNS host name'):
            req.check_hostname(value, 'update_server')
