# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Transport contract tests (issue 9, item 2): what the REAL winrm, psrp and ssh connection plugins
send for one EvidenceCall, judged as Windows would read it.

Only each plugin's lowest network call is replaced by a recorder (winrm ``_winrm_exec`` and
``_winrm_connect``, psrp ``_exec_psrp_script`` and ``_connect``, ssh ``_run``); everything above it
is the installed ansible-core's own code. `make transports` runs this file under ansible-core 2.18,
2.19, 2.20 and 2.21.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import types
import typing as t

import pytest

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from ansible.template import Templar

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import BOOTSTRAP, EvidenceCall, script_for

from tests.lab.windows import (
    CommandLineError, command_line_to_argv, decode_encoded_command, parse_powershell_argv, parse_winrs_command,
)

CORE = tuple(int(part) for part in re.findall(r'\d+', ANSIBLE_CORE_VERSION)[:2])
HOST = 'win1.example.test'
# ansible-core's exit-code propagation, as the PowerShell shell plugin appends it (preserve_rc=True).
EXIT_CODE_LINE = 'If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } Else { exit 1 } }'
POWERSHELL_PREFIX = 'PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand '
DOCUMENT = {'format': 1, 'action': 'collect', 'duration_ms': 7, 'checks': {'posture': {'ok': True}}}
# Values that would break any transport that put them on a command line instead of stdin.
HOSTILE_REQUEST = {
    'action': 'collect',
    'deadline_s': 60,
    'update_server': "tetra-defs.example'; $(whoami) & | < > ^ %PATH% \"quoted\" \\\\share\\ `n",
    'proxy': 'http://user:p@ss w\u00f6rd@proxy.example:8080/\u2028line',
}

# The OLD command form (before issue 9): the shell prefix, the script, then exit-code propagation
# AFTER the base64; the script read its stdin with [Console]::In and wrote with [Console]::Out.
# Test data only: the plugin must never produce this again.
OLD_BOOTSTRAP = (
    "$ErrorActionPreference = 'Stop'\n"
    "$TetraStdin = [Console]::In.ReadToEnd()\n"
    "$TetraRequest, $TetraScript = $TetraStdin -split \"`n\", 2\n"
    "$TetraResult = . ([ScriptBlock]::Create($TetraScript))\n"
    "[Console]::Out.Write($TetraResult)\n"
)
OLD_COMMAND = (POWERSHELL_PREFIX + base64.b64encode(OLD_BOOTSTRAP.encode('utf-16-le')).decode('ascii')
               + '; ' + EXIT_CODE_LINE)


# The bootstrap statements whose meaning judge_bootstrap emulates: change one, update the emulation.
EMULATED_STATEMENTS = (
    '$TetraLines = @($input | ForEach-Object { ([string]$_) -split "`r?`n" })',
    '$TetraRequest = [string]$TetraLines[0]',
    '$TetraScript = ($TetraLines | Select-Object -Skip 1) -join "`n"',
    '. ([ScriptBlock]::Create($TetraScript))',
)


class ContractError(AssertionError):
    """What reached Windows is not what the collection means to run."""


# ---------------------------------------------------------------------------------------------
# judging, shared by every transport


def statements(script: str) -> list[str]:
    """Script lines without surrounding white space and blank lines (the shell plugin strips them)."""
    return [line.strip() for line in script.splitlines() if line.strip()]


def input_lines(stdin: bytes) -> list[str]:
    """$input of powershell.exe with redirected stdin: lines as .NET TextReader.ReadLine splits them."""
    try:
        text = stdin.decode('ascii')  # ASCII reads the same in every console code page
    except UnicodeDecodeError as exc:
        raise ContractError('stdin is not ASCII: %s' % exc) from None
    lines = re.split(r'\r\n|\r|\n', text)
    if lines[-1] == '':
        lines.pop()
    return lines


def judge_bootstrap(script: str, lines: list[str]) -> tuple[dict[str, t.Any], str]:
    """Run the BOOTSTRAP in our heads: ``(request, script)`` it reads from its input lines (``@($input)``)."""
    if '[Console]' in script:
        raise ContractError('the script uses [Console], which psrp does not connect to the input')
    if statements(script) != statements(BOOTSTRAP) or statements(script)[-1] != EXIT_CODE_LINE:
        raise ContractError('the script Windows runs is not the bootstrap plus exit-code propagation:\n%s' % script)
    missing = [statement for statement in EMULATED_STATEMENTS if statement not in statements(script)]
    if missing:
        raise ContractError('the bootstrap no longer has the statements this judge emulates: %s' % missing)
    # $input | ForEach-Object { ([string]$_) -split "`r?`n" }: every input object, split at line ends.
    lines = [piece for item in lines for piece in re.split(r'\r?\n', str(item))]
    if not lines or lines == ['']:
        raise ContractError('no input lines: the bootstrap reads the request from line 0')
    try:
        request = json.loads(base64.b64decode(lines[0], validate=True))
    except ValueError as exc:
        raise ContractError('input line 0 is not a base64 JSON request: %s' % exc) from None
    return request, '\n'.join(lines[1:]).rstrip('\n')


def judge_powershell_call(argv: list[str], stdin: bytes) -> tuple[dict[str, t.Any], str]:
    """What powershell.exe started with ``argv`` and this stdin reads: ``(request, script)``."""
    return judge_bootstrap(parse_powershell_argv(argv).script, input_lines(stdin))


def pipeline_input(input_data: t.Any) -> list[t.Any]:
    """The pipeline input objects pypsrp's PowerShell.begin_invoke sends for ``input_data``.

    A generator yields objects (or lists of them); anything else is sent once, a list as its
    elements and any other value (a whole str!) as ONE object.
    """
    if input_data is None:
        return []
    chunks = list(input_data) if isinstance(input_data, types.GeneratorType) else [input_data]
    return [item for chunk in chunks for item in (chunk if isinstance(chunk, list) else [chunk])]


def statement_argv(script: str) -> list[str]:
    """The arguments PowerShell passes to a native program for a one-statement script of bare words
    or single-quoted words without spaces (winrm 2.18's outer script; the powershell shell plugin's
    command line on 2.21, run by a PowerShell default shell over ssh). about_Parsing, about_Quoting_Rules."""
    words = script.strip().split(' ')
    word = re.compile(r"^(?:[A-Za-z0-9+/=.-]+|'[A-Za-z0-9+/=.-]*')$")
    if '\n' in script.strip() or not all(word.match(item) for item in words):
        raise ContractError('the script is not one statement of bare or single-quoted words: %r' % script[:200])
    return [item.strip("'") for item in words]


def encoded_value(command: str) -> str:
    """The -EncodedCommand value of a command line as the shell plugin wrote it (2.21 single-quotes it)."""
    words = command.split(' ')
    value = words[words.index('-EncodedCommand') + 1] if '-EncodedCommand' in words else ''
    if len(value) > 1 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return value


def cmd_exe_passes(command: str) -> str:
    """The command line cmd.exe /c hands to CreateProcess, or ContractError where cmd.exe would change it.

    Stricter than cmd.exe where that is cheaper than exact: % is refused even inside quotes (cmd.exe
    expands %VAR% there too) and the command may not start with a quote (/c's quote-stripping rule).
    """
    if len(command) >= 8191:
        raise ContractError('cmd.exe refuses command lines of 8,191 characters or more (%d)' % len(command))
    if command.startswith('"') or re.search(r'[\r\n\0%]', command):
        raise ContractError('cmd.exe would rewrite this command: %r' % command[:200])
    quoted = False
    for char in command:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in '&|<>^':
            raise ContractError('unquoted cmd.exe metacharacter %r in %r' % (char, command[:200]))
    return command


# ---------------------------------------------------------------------------------------------
# the real connection plugins with a recorder at the bottom


@dataclasses.dataclass
class Recorded:
    """What the plugin handed to its network layer, and the command EvidenceCall gave exec_command."""

    exec_command: list[str] = dataclasses.field(default_factory=list)
    winrm: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    psrp: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    ssh: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)


STDOUT = json.dumps(DOCUMENT).encode('utf-8') + b'\r\n'


def play_context_for(hostvars: dict[str, t.Any]) -> PlayContext:
    """A PlayContext with the magic variables applied, as PlayContext.set_task_and_variable_override does."""
    play_context = PlayContext()
    for attribute, names in C.MAGIC_VARIABLE_MAPPING.items():
        for name in names:
            if name in hostvars:
                setattr(play_context, attribute, hostvars[name])
                break
    return play_context


HOSTVARS = {
    'winrm': {'ansible_host': HOST, 'ansible_user': 'tetra', 'ansible_password': 'secret', 'ansible_port': 5986,
              'ansible_winrm_transport': 'ntlm', 'ansible_winrm_server_cert_validation': 'ignore'},
    'psrp': {'ansible_host': HOST, 'ansible_user': 'tetra', 'ansible_password': 'secret', 'ansible_port': 5986,
             'ansible_psrp_auth': 'ntlm', 'ansible_psrp_cert_validation': 'ignore'},
    'ssh': {'ansible_host': HOST, 'ansible_user': 'tetra', 'ansible_shell_type': 'powershell'},
    'ssh-cmd': {'ansible_host': HOST, 'ansible_user': 'tetra', 'ansible_shell_type': 'cmd'},
}


def expected_shell(name: str) -> str:
    """The shell plugin each connection gets: winrm defaults to cmd from ansible-core 2.21."""
    if name == 'ssh-cmd':
        return 'cmd'
    return 'cmd' if name == 'winrm' and CORE >= (2, 21) else 'powershell'


def real_connection(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: t.Any) -> tuple[t.Any, Recorded]:
    hostvars = dict(HOSTVARS[name])
    if name.startswith('ssh'):
        hostvars['ansible_control_path_dir'] = str(tmp_path)
    connection = connection_loader.get(name.split('-')[0], play_context_for(hostvars), None)
    # as TaskExecutor._set_connection_options does: the plugin's own variables, plus winrm's extras
    connection.set_options(var_options=connection._resolve_option_variables(hostvars, Templar(loader=DataLoader())))  # pylint: disable=protected-access
    assert connection._shell._load_name == expected_shell(name)  # pylint: disable=protected-access
    recorded = Recorded()

    real_exec_command = connection.exec_command

    def spy_exec_command(cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> t.Any:
        recorded.exec_command.append(cmd)
        return real_exec_command(cmd, in_data=in_data, sudoable=sudoable)

    monkeypatch.setattr(connection, 'exec_command', spy_exec_command)

    if name == 'winrm':
        def winrm_exec(command: str, args: t.Iterable[t.Any] = (), from_exec: bool = False,
                       stdin_iterator: t.Iterable[tuple[bytes, bool]] | None = None) -> tuple[int, bytes, bytes]:
            chunks = list(stdin_iterator or ())
            recorded.winrm.append({'command': command, 'args': [to_text(arg) for arg in args], 'from_exec': from_exec,
                                   'chunks': chunks, 'stdin': b''.join(chunk for chunk, dummy in chunks)})
            return 0, STDOUT, b''

        monkeypatch.setattr(connection, '_winrm_connect', object)  # opens no shell
        monkeypatch.setattr(connection, '_winrm_exec', winrm_exec)
    elif name == 'psrp':
        def psrp_connect() -> t.Any:
            connection._build_kwargs()  # pylint: disable=protected-access  # the real option handling
            connection._connected = True  # pylint: disable=protected-access
            return connection

        def exec_psrp_script(script: str, input_data: t.Any = None, use_local_scope: bool = True,
                             arguments: t.Any = None) -> tuple[int, bytes, bytes]:
            recorded.psrp.append({'script': script, 'input': pipeline_input(input_data),
                                  'use_local_scope': use_local_scope, 'arguments': arguments})
            return 0, STDOUT, b''

        monkeypatch.setattr(connection, '_connect', psrp_connect)
        monkeypatch.setattr(connection, '_exec_psrp_script', exec_psrp_script)
    else:
        def ssh_run(cmd: list[bytes], in_data: bytes | None, sudoable: bool = True, checkrc: bool = True) -> tuple[int, bytes, bytes]:
            recorded.ssh.append({'argv': [to_text(arg) for arg in cmd], 'stdin': in_data, 'sudoable': sudoable})
            return 0, STDOUT, b''

        monkeypatch.setattr(connection, '_run', ssh_run)
    return connection, recorded


# What Windows is given, per transport: ``(request, script)`` as the bootstrap reads them.

def winrm_reaches_windows(recorded: Recorded) -> tuple[dict[str, t.Any], str]:
    (call,) = recorded.winrm
    assert call['from_exec'] is True
    assert [last for dummy, last in call['chunks']] == [False] * (len(call['chunks']) - 1) + [True]  # end of stream once, at the end
    argv = parse_winrs_command(call['command'], call['args'])
    if CORE < (2, 19):
        # winrm 2.18 encodes every command again: the outer powershell.exe runs our command line as
        # one statement, and the inner powershell.exe it starts inherits its stdin.
        argv = statement_argv(parse_powershell_argv(argv).script)
    return judge_powershell_call(argv, call['stdin'])


def psrp_reaches_windows(recorded: Recorded) -> tuple[dict[str, t.Any], str]:
    (call,) = recorded.psrp
    (command,) = recorded.exec_command
    if call['script'] != decode_encoded_command(encoded_value(command)):
        raise ContractError('psrp ran %r, not the encoded bootstrap' % call['script'][:200])
    assert not call['arguments']  # None, or [] from ansible-core 2.21 (no -EncodedArguments)
    return judge_bootstrap(call['script'], [to_text(item) for item in call['input']])


def ssh_reaches_windows(recorded: Recorded) -> tuple[dict[str, t.Any], str]:
    """ansible_shell_type=powershell means the host's OpenSSH DefaultShell is PowerShell (Ansible's Windows
    SSH guide): it runs the last ssh argument as one PowerShell statement."""
    (call,) = recorded.ssh
    assert call['argv'][-2] == HOST and call['sudoable'] is False
    command = call['argv'][-1]
    if len(command) >= 8191:
        raise ContractError('command line of %d characters: too long for a cmd.exe default shell' % len(command))
    return judge_powershell_call(statement_argv(command), call['stdin'] or b'')


def ssh_cmd_reaches_windows(recorded: Recorded) -> tuple[dict[str, t.Any], str]:
    """ansible_shell_type=cmd: the OpenSSH DefaultShell is cmd.exe, which runs ``cmd.exe /c <command>``."""
    (call,) = recorded.ssh
    argv = command_line_to_argv(cmd_exe_passes(call['argv'][-1]))
    return judge_powershell_call(argv, call['stdin'] or b'')


REACHES_WINDOWS = {'winrm': winrm_reaches_windows, 'psrp': psrp_reaches_windows, 'ssh': ssh_reaches_windows,
                   'ssh-cmd': ssh_cmd_reaches_windows}
TRANSPORTS = sorted(REACHES_WINDOWS)


# ---------------------------------------------------------------------------------------------
# the contract


@pytest.mark.parametrize('transport', TRANSPORTS)
def test_evidence_call_reaches_windows_as_bootstrap_request_and_shipped_script(transport, monkeypatch, tmp_path, request):
    connection, recorded = real_connection(transport, monkeypatch, tmp_path)
    call = EvidenceCall(connection, HOSTILE_REQUEST)

    assert call.run() == DOCUMENT
    request, script = REACHES_WINDOWS[transport](recorded)

    assert request == call.request == dict(HOSTILE_REQUEST, format=1)
    assert script.splitlines() == script_for(HOSTILE_REQUEST['action']).splitlines()
    assert call.attempts == 1


@pytest.mark.parametrize('transport', TRANSPORTS)
def test_a_script_larger_than_one_winrm_stdin_chunk_arrives_whole(transport, monkeypatch, tmp_path, request):
    connection, recorded = real_connection(transport, monkeypatch, tmp_path)
    padding = ''.join('# padding line %06d %s\r\n' % (i, 'x' * 60) for i in range(4000))  # ~330 kB, CRLF on purpose
    script = script_for('collect') + padding + 'Write-Output done\r\n'
    call = EvidenceCall(connection, HOSTILE_REQUEST, script=script)

    call.run()
    request, received = REACHES_WINDOWS[transport](recorded)

    assert request == call.request
    assert received.splitlines() == script.splitlines()
    if transport == 'winrm':
        assert len(recorded.winrm[0]['chunks']) > 1


@pytest.mark.parametrize('transport', TRANSPORTS)
def test_the_command_line_does_not_depend_on_the_request(transport, monkeypatch, tmp_path):
    connection, recorded = real_connection(transport, monkeypatch, tmp_path)
    EvidenceCall(connection, {'action': 'collect'}).run()
    EvidenceCall(connection, dict(HOSTILE_REQUEST, update_server='u' * 20000)).run()
    first, second = getattr(recorded, transport.split('-')[0])
    first = {key: value for key, value in first.items() if key not in ('chunks', 'stdin', 'input')}
    second = {key: value for key, value in second.items() if key not in ('chunks', 'stdin', 'input')}
    assert first == second


def test_winrm_passes_the_command_to_winrs_without_encoding_it_again_from_2_19(monkeypatch, tmp_path):
    connection, recorded = real_connection('winrm', monkeypatch, tmp_path)
    EvidenceCall(connection, HOSTILE_REQUEST).run()
    (command,) = recorded.exec_command
    sent = ' '.join([recorded.winrm[0]['command']] + recorded.winrm[0]['args'])
    if CORE >= (2, 19):
        assert sent == command
    else:
        assert sent != command
        assert parse_powershell_argv(command_line_to_argv(sent)).script == command


@pytest.mark.parametrize('transport', ['winrm', 'ssh-cmd'])
def test_the_old_command_form_is_rejected_by_powershell_exe(transport, monkeypatch, tmp_path):
    if transport == 'winrm' and CORE < (2, 19):
        pytest.skip('winrm 2.18 encodes every command again, so the old form ran there as one PowerShell statement')
    connection, recorded = real_connection(transport, monkeypatch, tmp_path)
    connection.exec_command(OLD_COMMAND, in_data=b'cmVxdWVzdA==\nWrite-Output 1\n', sudoable=False)

    with pytest.raises(CommandLineError) as error:
        REACHES_WINDOWS[transport](recorded)
    assert 'Base64' in error.value.message or 'after the -EncodedCommand' in error.value.message


def test_the_old_command_form_is_rejected_through_psrp(monkeypatch, tmp_path):
    connection, recorded = real_connection('psrp', monkeypatch, tmp_path)
    connection.exec_command(OLD_COMMAND, in_data=b'cmVxdWVzdA==\nWrite-Output 1\n', sudoable=False)

    with pytest.raises(CommandLineError):  # the last token, '}', is not base64
        psrp_reaches_windows(recorded)
    ran = recorded.psrp[0]['script']
    if CORE < (2, 21):
        assert ran == ''  # psrp decoded '}' leniently: an empty script, so no evidence at all
    else:
        # 2.21 decodes the -EncodedCommand value (leniently: ';' dropped) and runs the old bootstrap,
        # whose [Console]::In gets nothing under psrp.
        assert ran == OLD_BOOTSTRAP
        with pytest.raises(ContractError, match=r'\[Console\]'):
            judge_bootstrap(ran, [])


def test_a_console_reading_bootstrap_is_rejected_for_psrp(monkeypatch, tmp_path):
    connection, recorded = real_connection('psrp', monkeypatch, tmp_path)
    command = POWERSHELL_PREFIX + base64.b64encode(OLD_BOOTSTRAP.encode('utf-16-le')).decode('ascii')
    connection.exec_command(command, in_data=b'cmVxdWVzdA==\nWrite-Output 1\n', sudoable=False)

    assert recorded.psrp[0]['script'] == OLD_BOOTSTRAP
    with pytest.raises(ContractError, match=r'\[Console\]'):
        psrp_reaches_windows(recorded)


def test_the_bootstrap_reads_input_and_never_the_console():
    assert '@($input | ForEach-Object' in BOOTSTRAP
    assert '[Console]' not in BOOTSTRAP


# ---------------------------------------------------------------------------------------------
# the judges can fail


@pytest.mark.parametrize('command', [
    'PowerShell -EncodedCommand AAAA & whoami',
    'PowerShell -EncodedCommand AAAA | more',
    'PowerShell -EncodedCommand AAAA > out.txt',
    'PowerShell -EncodedCommand AAAA ^',
    'PowerShell -EncodedCommand %COMSPEC%',
    'PowerShell -Command "a" "b %PATH%"',
    '"PowerShell" -EncodedCommand AAAA',
    'PowerShell -EncodedCommand AAAA\r\nwhoami',
    'PowerShell -EncodedCommand ' + 'A' * 8164,
])
def test_cmd_exe_judge_rejects_what_cmd_exe_would_change(command):
    with pytest.raises(ContractError):
        cmd_exe_passes(command)


def test_cmd_exe_judge_accepts_metacharacters_inside_quotes():
    assert cmd_exe_passes('PowerShell -Command "a & b | c"') == 'PowerShell -Command "a & b | c"'


@pytest.mark.parametrize('script', [
    'PowerShell -EncodedCommand AAAA; exit 1',
    'PowerShell -EncodedCommand AAAA\nexit 1',
    "PowerShell -Command 'x y'",
    'PowerShell -EncodedCommand "AAAA"',
    'PowerShell -EncodedCommand $env:X',
])
def test_statement_judge_accepts_only_bare_or_single_quoted_words(script):
    with pytest.raises(ContractError):
        statement_argv(script)


@pytest.mark.parametrize('script, lines, message', [
    (BOOTSTRAP.replace(EXIT_CODE_LINE, ''), ['e30='], 'exit-code propagation'),
    (BOOTSTRAP + '\nWrite-Output extra', ['e30='], 'exit-code propagation'),
    (BOOTSTRAP, [], 'no input lines'),
    (BOOTSTRAP, ['not base64!'], 'not a base64 JSON request'),
])
def test_bootstrap_judge_rejects_other_scripts_and_bad_input(script, lines, message):
    with pytest.raises(ContractError, match=message):
        judge_bootstrap(script, lines)


def test_input_lines_split_like_dotnet_readline_and_refuse_non_ascii():
    assert input_lines(b'a\r\nb\rc\n\nd\n') == ['a', 'b', 'c', '', 'd']
    assert input_lines(b'a\x0cb\n') == ['a\x0cb']
    with pytest.raises(ContractError):
        input_lines('caf\u00e9\n'.encode('utf-8'))
