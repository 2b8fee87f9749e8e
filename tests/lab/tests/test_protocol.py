# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Plain pywinrm against the lab: Basic, NTLM with message encryption, HTTPS with CA validation, WinRS details."""

from __future__ import annotations

import json

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError

from tests.lab import Lab

from .helpers import PASSWORD, SCRIPT, USER, command_line, encode, entry_main, input_launch, request, run, session


@pytest.mark.parametrize('transport,https', [('basic', False), ('ntlm', False), ('ntlm', True), ('basic', True)])
def test_collect_over_every_transport(tetra_lab: Lab, transport: str, https: bool) -> None:
    out, err, rc = run(session(tetra_lab, 'healthy', transport, https), command_line(request()))
    assert rc == 0, err
    assert json.loads(out)['format'] == 1
    entry = tetra_lab.requests('healthy')[-1]
    assert (entry['transport'], entry['scheme']) == (transport, 'https' if https else 'http')
    assert entry['encrypted'] is (transport == 'ntlm' and not https)
    assert USER in entry['user']


def test_session_api_runs_raw_commands(tetra_lab: Lab) -> None:
    client = winrm.Session(tetra_lab.endpoint_url('healthy', False), auth=(USER, PASSWORD), transport='ntlm')
    assert client.run_cmd('hostname').std_out.strip() == b'HEALTHY'
    failed = client.run_ps('Get-Item C:\\nothing')
    assert failed.status_code == 1
    assert b'is not recognized as the name of a cmdlet' in failed.std_err
    unknown = client.run_cmd('ipconfig')
    assert unknown.status_code == 1 and b"'ipconfig' is not recognized" in unknown.std_err


def test_stdin_chunks_are_buffered_until_end(tetra_lab: Lab) -> None:
    line, stdin = input_launch(request(sections=['install']), SCRIPT + '# filler\n' * 60000)
    out, err, rc = run(session(tetra_lab, 'stale_recovers'), line, stdin=stdin, chunk=200000)
    assert rc == 0, err
    assert list(json.loads(out)) == ['format', 'action', 'started', 'context', 'host', 'install', 'errors', 'duration_ms']
    entry = tetra_lab.requests('stale_recovers')[-1]
    assert entry['stdin_bytes'] == len(stdin) > 400000
    assert entry['request']['sections'] == ['install']


def test_nested_encoded_command_is_unwrapped(tetra_lab: Lab) -> None:
    inner = command_line(request(sections=['files']))
    out, dummy, rc = run(session(tetra_lab, 'healthy'), 'PowerShell -NoProfile -EncodedCommand ' + encode('& ' + inner))
    assert rc == 0
    assert 'files' in json.loads(out)


def test_data_line_without_script_prints_nothing(tetra_lab: Lab) -> None:
    out, err, rc = run(session(tetra_lab, 'healthy'), command_line(request(), script=''))
    assert (out, err, rc) == (b'', b'', 0)


@pytest.mark.parametrize('transport', ['basic', 'ntlm'])
def test_operation_timeout_is_retried_until_done(tetra_lab_factory: object, transport: str) -> None:
    lab = tetra_lab_factory('faults', time_scale=0.05)  # type: ignore[operator]  # the hung sfc.exe takes 60 s * 0.05
    protocol = session(lab, 'update_hangs', transport, operation_timeout_sec=1, read_timeout_sec=3)
    out, err, rc = run(protocol, command_line(request(action='forceupdate', sections=['install'], deadline_s=90)))
    assert rc == 0, err
    assert json.loads(out)['forceupdate']['exit_code'] is None
    assert lab.state('update_hangs').counters['operation_timeouts'] >= 1


def test_receive_raises_operation_timeout_while_running(tetra_lab_factory: object) -> None:
    lab = tetra_lab_factory('faults')  # type: ignore[operator]
    protocol = session(lab, 'hung', operation_timeout_sec=1, read_timeout_sec=3)
    shell = protocol.open_shell()
    command, dummy, arguments = command_line(request()).partition(' ')
    command_id = protocol.run_command(shell, command, arguments.split(' '))
    with pytest.raises(WinRMOperationTimeoutError):
        protocol.get_command_output_raw(shell, command_id)
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)
    assert lab.requests('hung')[-1]['signalled'] is True


def test_wrong_password_is_rejected(tetra_lab: Lab) -> None:
    for transport in ('basic', 'ntlm'):
        with pytest.raises(InvalidCredentialsError):
            run(session(tetra_lab, 'healthy', transport, password='nope'), 'hostname')
    assert tetra_lab.state('healthy').counters['auth_failures'] >= 2


def test_unknown_shell_is_a_wsman_fault(tetra_lab: Lab) -> None:
    protocol = session(tetra_lab, 'healthy', 'basic')
    with pytest.raises(winrm.exceptions.WSManFaultError) as caught:
        protocol.run_command('00000000-0000-0000-0000-000000000000', 'hostname')
    assert caught.value.wsman_fault_code == 2150858843


def test_an_entry_answers_only_what_it_handles(tetra_lab: Lab) -> None:
    """Read-TetraRequest of the joined entry refuses another entry's action or section, and runs nothing else."""
    transfer = entry_main(actions=['read_file', 'support_cleanup'], sections=[], cim=False)
    line, stdin = input_launch(request(sections=['install']), transfer)
    out, err, rc = run(session(tetra_lab, 'healthy'), line, stdin=stdin)
    document = json.loads(out)
    assert rc == 0, err
    assert 'install' not in document and document['host']['os_caption'] is None
    assert [(e['section'], e['message']) for e in document['errors']] == [('request', "this entry does not handle the action 'collect'")]
    remediation = entry_main(actions=['forceupdate'], sections=['install', 'files'])
    line, stdin = input_launch(request(action='forceupdate', sections=['install', 'dns']), remediation)
    document = json.loads(run(session(tetra_lab, 'healthy'), line, stdin=stdin)[0])
    assert 'forceupdate' not in document and document['errors'][0]['message'] == 'this entry does not collect the section(s) dns'


def test_a_script_without_an_entry_main_writes_nothing(tetra_lab: Lab) -> None:
    line, stdin = input_launch(request(sections=['install']), 'function Read-TetraRequest { }\n')
    out, err, rc = run(session(tetra_lab, 'healthy'), line, stdin=stdin)
    assert (out, rc) == (b'', 0), err
