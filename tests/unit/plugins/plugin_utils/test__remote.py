# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.shell.powershell import ShellModule as PowerShellShell

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _remote, _text
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import (
    EvidenceCall, RemoteError, build_command, clean_stderr, entry_script, load_script, parse_document,
)

GOOD = json.dumps({'format': 1, 'action': 'collect', 'duration_ms': 5}).encode()
CLIXML = (b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
          b'<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN></Obj>'
          b'<S S="Error">Cannot find path \'C:\\Program Files\\Cisco\\AMP\' because it does not exist._x000D__x000A_</S></Objs>')


def decode_bootstrap(command: str) -> str:
    return base64.b64decode(command.split(' ')[-1]).decode('utf-16-le')


def test_the_command_line_is_the_shell_plugins_own_encoded_form_and_constant():
    first = build_command('Write-Output 1', {'update_server': 'a'})[0]
    second = build_command(entry_script('collect'), {'update_server': 'b' * 5000})[0]
    words = first.split(' ')
    # ansible-core 2.21's shell plugin writes powershell, earlier ones PowerShell: Windows finds programs case-insensitively.
    assert [words[0].lower()] + words[1:-1] == ['powershell', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Unrestricted', '-EncodedCommand']
    assert first == second
    assert len(first) < 8191  # cmd.exe's limit, for ssh to a default cmd.exe shell
    assert 'exit $LASTEXITCODE' in decode_bootstrap(first)  # exit-code propagation inside the encoded text


def test_request_and_script_travel_on_stdin_as_data():
    hostile = "x'; Remove-Item C:\\ -Recurse; $(whoami)\n"
    command, stdin = build_command('Write-Output 1\r\nWrite-Output 2', {'update_server': hostile})
    bootstrap = decode_bootstrap(command)
    assert 'Remove-Item' not in bootstrap
    request_line, script = stdin.decode('ascii').split('\n', 1)
    assert json.loads(base64.b64decode(request_line)) == {'update_server': hostile}
    assert script == 'Write-Output 1\nWrite-Output 2'
    assert '@($input | ForEach-Object' in bootstrap and '[Console]' not in bootstrap


def test_shipped_script_reads_the_request_variable_the_bootstrap_sets():
    assert '$TetraRequest' in load_script('tetra_core.ps1')
    assert '$TetraRequest' in _remote.BOOTSTRAP


@pytest.mark.parametrize('stdout', [GOOD, b'\xef\xbb\xbf' + GOOD, GOOD.decode().encode('utf-16'), b'\r\n' + GOOD + b'\r\n'])
def test_parse_document_accepts_one_json_document_in_any_windows_encoding(stdout):
    assert parse_document(0, stdout, b'')['format'] == 1


@pytest.mark.parametrize('rc, stdout, stderr, expected', [
    (0, b'', b'', 'returned no output'),
    (0, b'{"format": 1, "act', b'', 'did not return one JSON document'),
    (0, b'WARNING: something\r\n' + GOOD, b'', 'did not return one JSON document'),
    (0, b'[1, 2]', b'', 'not evidence format 1'),
    (0, b'{"format": 2}', b'', 'not evidence format 1'),
    (1, b'', CLIXML, 'exited with code 1: Cannot find path'),
    (255, GOOD, b'boom', 'exited with code 255: boom'),
])
def test_parse_document_turns_bad_output_into_a_failure_quoting_it(rc, stdout, stderr, expected):
    with pytest.raises(RemoteError) as caught:
        parse_document(rc, stdout, stderr)
    assert expected in caught.value.result['msg']
    assert caught.value.result['failed'] is True
    assert 'unreachable' not in caught.value.result
    assert caught.value.result['rc'] == rc


def test_clixml_stderr_is_reduced_to_the_error_text():
    assert clean_stderr(CLIXML) == "Cannot find path 'C:\\Program Files\\Cisco\\AMP' because it does not exist."


def test_long_garbage_is_quoted_but_bounded():
    with pytest.raises(RemoteError) as caught:
        parse_document(0, b'A' * 5000, b'')
    assert '5000 characters in all' in caught.value.result['msg']
    assert len(caught.value.result['msg']) < 1000


def test_call_returns_the_document_and_sends_one_command(fake_connection):
    connection = fake_connection((0, GOOD, b''))
    call = EvidenceCall(connection, {'action': 'collect', 'deadline_s': 5}, script='x')
    assert call.run()['format'] == 1
    assert len(connection.calls) == 1 and call.attempts == 1
    assert connection.request()['format'] == 1


def test_a_transport_reset_is_retried_once(fake_connection):
    connection = fake_connection(AnsibleConnectionFailure('ConnectionResetError(104, Connection reset by peer)'), (0, GOOD, b''))
    call = EvidenceCall(connection, {'deadline_s': 5}, script='x')
    assert call.run()['format'] == 1
    assert call.attempts == 2 and connection.resets == 1


def test_two_resets_make_the_host_unreachable(fake_connection):
    connection = fake_connection(AnsibleConnectionFailure('Connection reset by peer'), AnsibleConnectionFailure('Connection reset by peer'))
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x').run()
    assert caught.value.result['unreachable'] is True
    assert 'reset twice' in caught.value.result['msg']


def test_a_transient_server_error_is_retried_once_then_unreachable(fake_connection):
    busy = AnsibleConnectionFailure('winrm connection error: Bad HTTP response returned from server. Code 500')
    connection = fake_connection(busy, (0, GOOD, b''))
    call = EvidenceCall(connection, {'deadline_s': 5}, script='x')
    assert call.run()['format'] == 1 and call.attempts == 2
    connection = fake_connection(busy, busy)
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x').run()
    assert caught.value.result['unreachable'] is True and 'failed twice' in caught.value.result['msg']


def test_an_oversized_answer_is_refused_quoting_its_start():
    with pytest.raises(RemoteError) as caught:
        parse_document(0, b'{"format": 1, "x": "' + b'A' * (_remote.MAX_OUTPUT_BYTES + 1) + b'"}', b'')
    assert 'more than the 16 MB' in caught.value.result['msg'] and '{"format": 1' in caught.value.result['msg']
    assert caught.value.result['failed'] is True


def test_json_nested_too_deeply_is_a_clear_failure_not_a_crash():
    with pytest.raises(RemoteError) as caught:
        parse_document(0, b'[' * 100000 + b']' * 100000, b'')
    assert 'nested too deeply' in caught.value.result['msg']


def test_wrong_password_is_unreachable_without_retry(fake_connection):
    failure = AnsibleConnectionFailure('ntlm: the specified credentials were rejected by the server')
    connection = fake_connection(failure)
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x').run()
    assert caught.value.result['unreachable'] is True
    assert 'authentication failed' in caught.value.result['msg']
    assert len(connection.calls) == 1


def test_unwrapped_transport_errors_become_unreachable(fake_connection):
    connection = fake_connection(ConnectionRefusedError(111, 'Connection refused'))
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x').run()
    assert caught.value.result['unreachable'] is True
    assert 'Connection refused' in caught.value.result['msg']


def test_a_hung_transport_is_abandoned_after_the_budget(monkeypatch, fake_connection):
    monkeypatch.setattr(_remote, '_GRACE_S', 0.2)
    connection = fake_connection(lambda: time.sleep(3) or (0, GOOD, b''))
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 0.1}, script='x').run()
    assert 'did not answer within' in caught.value.result['msg']
    assert caught.value.result['unreachable'] is True


# ---- the per-host wall-clock bound (issue 12) ----

@pytest.fixture
def short_bound(monkeypatch):
    """deadline 0.5 s + grace 1 s (0.3 s of it kept to close the connection)."""
    monkeypatch.setattr(_remote, '_GRACE_S', 1.0)
    monkeypatch.setattr(_remote, '_CLOSE_S', 0.3)
    return 1.5


def test_the_bound_holds_when_the_endpoint_never_answers_and_the_close_hangs(short_bound, fake_connection):
    connection = fake_connection(lambda: time.sleep(30), close_s=30)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 0.5}, script='x').run()
    elapsed = time.monotonic() - started
    assert elapsed < short_bound + 0.5
    result = caught.value.result
    assert result['unreachable'] is True and result['timed_out'] is True
    assert 'did not answer within the 1.5 s bound (deadline 0.5 s + 1 s grace)' in result['msg']
    # the real elapsed time, not the budget
    reported = float(re.search(r'after (\d+\.\d) s', result['msg']).group(1))
    assert 1.0 <= reported <= elapsed
    assert result['timings']['elapsed_ms'] >= 1000 and result['timings']['bound_s'] == short_bound
    assert connection.closes == 1 and connection.shell_id is None and connection._connected is False


def test_ansibles_own_close_after_the_task_is_bounded_too(short_bound, fake_connection):
    connection = fake_connection((0, GOOD, b''), close_s=30)
    EvidenceCall(connection, {'deadline_s': 0.5}, script='x').run()
    started = time.monotonic()
    connection.close()  # what TaskExecutor does after every task
    assert time.monotonic() - started < 1
    assert connection.closes == 1


def test_the_bound_covers_the_retry_and_the_reconnect(short_bound, fake_connection):
    reset = AnsibleConnectionFailure('Connection reset by peer')
    connection = fake_connection(reset, lambda: time.sleep(30), reset_s=0.2)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 0.5}, script='x').run()
    assert time.monotonic() - started < short_bound + 0.5
    assert '(attempt 2)' in caught.value.result['msg']
    connection = fake_connection(reset, reset_s=30)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 0.5}, script='x').run()
    assert time.monotonic() - started < short_bound + 0.5
    assert 'reconnecting for the retry hung' in caught.value.result['msg']


def test_a_failed_call_closes_its_shell_at_once(fake_connection):
    connection = fake_connection(AnsibleConnectionFailure('read timed out'))
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x').run()
    assert connection.closes == 1
    assert caught.value.result['timings']['attempts'] == 1


def test_a_transient_500_on_the_receive_is_retried_like_a_reset(fake_connection):
    busy = AnsibleConnectionFailure('winrm send_input failed; HTTP 503 Service Unavailable')
    connection = fake_connection(busy, (0, GOOD, b''))
    call = EvidenceCall(connection, {'deadline_s': 5}, script='x')
    assert call.run()['format'] == 1 and call.attempts == 2 and connection.resets == 1


def test_announced_bound():
    assert _remote.announced_bound_s(40) == 70
    assert _remote.announced_bound_s(None) == 90
    assert _remote.announced_bound_s(-5) == 30


def test_messages_never_carry_a_password_or_a_terminal_escape(fake_connection):
    with pytest.raises(RemoteError) as caught:
        parse_document(0, b'\x1b]0;owned\x07<proxy><password>hunter2</password></proxy>', b'')
    assert 'hunter2' not in caught.value.result['msg'] and '\x1b' not in caught.value.result['msg']
    failure = AnsibleConnectionFailure('auth failed for <password>hunter2</password> \x1b[2J')
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(fake_connection(failure), {'deadline_s': 5}, script='x').run()
    assert 'hunter2' not in caught.value.result['msg'] and '\x1b' not in caught.value.result['msg']


def test_printable_makes_hostile_characters_visible():
    assert _text.printable('a\x1b[2J\ud800\r\nb\u202e\x00\tc') == 'a\\x1b[2J\\ud800\nb\\u202e\\x00\tc'


def test_the_retry_closes_the_old_shell_before_reconnecting(fake_connection):
    connection = fake_connection(AnsibleConnectionFailure('Connection reset by peer'), (0, GOOD, b''))
    call = EvidenceCall(connection, {'deadline_s': 5}, script='x')
    assert call.run()['format'] == 1
    assert connection.closes == 1 and connection.resets == 1


def test_the_size_cap_is_the_callers(fake_connection):
    answer = b'{"format": 1, "x": "' + b'A' * (2 * 2 ** 20) + b'"}'
    assert parse_document(0, answer, b'', max_bytes=3 * 2 ** 20)['format'] == 1
    with pytest.raises(RemoteError) as caught:
        parse_document(0, answer, b'', max_bytes=2 ** 20)
    assert 'more than the 1 MB' in caught.value.result['msg'] and '{"format": 1' in caught.value.result['msg']
    connection = fake_connection((0, answer, b''))
    with pytest.raises(RemoteError) as caught:
        EvidenceCall(connection, {'deadline_s': 5}, script='x', max_bytes=2 ** 20).run()
    assert 'more than the 1 MB' in caught.value.result['msg'] and caught.value.result['timings']['attempts'] == 1


# ---- the entries: parts joined on the controller (files/entries.json) ----

CONTROLLER_ACTIONS = ('collect', 'probes_only', 'forceupdate', 'support_start', 'support_finish', 'read_file', 'support_cleanup')


@pytest.mark.parametrize('action', CONTROLLER_ACTIONS)
def test_every_action_the_collection_sends_runs_an_entry_that_handles_it(action):
    script = _remote.script_for(action)
    handled = re.search(r"^\$Request = Read-TetraRequest \$Document @\(([^)]*)\)", script, re.M)
    assert handled and "'%s'" % action in handled.group(1)
    assert script.split('\n', 1)[0].startswith('param(')  # the core part, with the param block, comes first


def test_an_action_without_an_entry_is_refused_on_the_controller():
    with pytest.raises(ValueError, match="no endpoint script handles the action 'format_disk'"):
        _remote.script_for('format_disk')


def test_the_file_transfer_entry_runs_no_program_and_no_cim_and_is_small():
    script = entry_script('transfer')
    assert not re.search(r'Cim|Wmi|Invoke-Captured|Diagnostics\.Process|Start-Process|ScheduledTask', script)
    # Windows' CreateProcess limit: the whole entry would fit on a powershell.exe command line.
    assert len(_remote.encoded_command(PowerShellShell(), script)) < 32767
    assert len(script) * 4 < len(entry_script('collect'))


def test_parts_join_into_entries_in_the_manifest_order():
    manifest = _remote.load_entries()
    for entry, parts in manifest['entries'].items():
        assert entry_script(entry) == '\n'.join(load_script(part) for part in parts)


@pytest.mark.parametrize('entry', ['collect', 'remediation', 'transfer'])
def test_the_wire_script_is_the_entry_without_comment_only_lines(entry):
    full, wire = entry_script(entry).split('\n'), _remote.wire_script(entry).split('\n')
    code = [line for line in full if line.strip() and not line.lstrip().startswith('#')]
    assert wire[:-1] == code and wire[-1] == ''
    assert len(_remote.wire_script(entry)) < 0.9 * len(entry_script(entry))
