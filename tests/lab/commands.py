# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What an endpoint does with one command: read it as Windows would, find the request, answer like Windows.

A WinRS command line is split like CommandLineToArgvW and checked against powershell.exe 5.1's
parameter rules (tests/lab/windows.py); a call Windows would reject gets powershell.exe's answer.
The decoded script is read only through the contract (docs/evidence.md): the collection's bootstrap
takes the request and the script from ``$input`` (stdin lines for powershell.exe, pipeline input for
psrp); a ``$TetraRequest = '<base64 JSON>'`` line inline is also understood. ``[Console]::In`` reads
nothing and ``[Console]::Out`` output is lost, as in a psrp runspace: the lab refuses what is not
certain to work on every transport.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import random
import re
import time
import typing as t

from . import texts, windows
from .evidence import EvidenceBuilder, ps_json
from .scenario import EndpointState

DATA_LINE = re.compile(r"^\s*\$TetraRequest\s*=\s*'([A-Za-z0-9+/=]*)'\s*$", re.M)
PRELUDE = re.compile(r"^\s*\$(?:ErrorActionPreference|ProgressPreference)\s*=.*$", re.M)
# The statements of the collection's stdin bootstrap, each of which the lab "runs".
INPUT_LINES = re.compile(r"^\s*\$TetraLines\s*=\s*@\(\$input\)\s*$", re.M | re.I)
# The same, splitting every input object at its line ends (one object holding the whole stdin
# arrives from psrp on ansible-core 2.18).
INPUT_LINES_SPLIT = re.compile(r'^\s*\$TetraLines\s*=\s*@\(\$input\s*\|\s*ForEach-Object\s*\{\s*\(\[string\]\$_\)\s*-split\s*"`r\?`n"\s*\}\s*\)\s*$',
                               re.M | re.I)
REQUEST_FROM_INPUT = re.compile(r"^\s*\$TetraRequest\s*=\s*\[string\]\$TetraLines\[0\]\s*$", re.M | re.I)
SCRIPT_FROM_INPUT = re.compile(r'^\s*\$TetraScript\s*=\s*\(\$TetraLines\s*\|\s*Select-Object\s+-Skip\s+1\)\s*-join\s*"`n"\s*$',
                               re.M | re.I)
# The main of one entry of the collector (files/tetra_core.ps1 Read-TetraRequest): the actions and the
# sections the joined script handles. A script without it defines functions and runs nothing.
ENTRY_REQUEST = re.compile(r"^\$Request = Read-TetraRequest \$Document @\(([^)]*)\) @\(([^)]*)\)\s*$", re.M)
RUN_SCRIPT = re.compile(r"^\s*\.\s*\(\[ScriptBlock\]::Create\(\$TetraScript\)\)\s*$", re.M | re.I)
CONSOLE_IN = re.compile(r"\[(?:System\.)?Console\]::(?:In\b|Read|OpenStandardInput)", re.I)
CONSOLE_OUT = re.compile(r"\[(?:System\.)?Console\]::(?:Out|Write|WriteLine|OpenStandardOutput)", re.I)
# A script that is one powershell.exe call with bare-word arguments (ansible-core 2.18's winrm wraps
# every command line in -EncodedCommand once more): PowerShell passes bare words to the native
# program as they are, and the child inherits the outer process' standard input.
NESTED_POWERSHELL = re.compile(r"^\s*(?:&\s*)?(powershell(?:\.exe)?)((?:[ \t]+[^\s;'\"`$&|(){}@<>,#]+)+)\s*$", re.I)
# ansible-core's exit-code propagation, appended inside the encoded text.
PRESERVE_RC = re.compile(r"^If \(-not \$\?\) \{ If \(Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue\) "
                         r"\{ exit \$LASTEXITCODE \} Else \{ exit 1 \} \}$", re.M)


# Start-Sleep with a whole number of seconds or milliseconds, named or positional (-Seconds is the first position):
# https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/start-sleep (5.1). A benchmark baseline
# whose endpoint takes as long as a diagnosis; anything else Start-Sleep accepts is refused as unknown.
_START_SLEEP = re.compile(r'start-sleep\s+(?:(-seconds\s+|-s\s+)?(\d{1,4})|(?:-milliseconds|-m)\s+(\d{1,7}))', re.I)


def sleep_seconds(text: str) -> float | None:
    """Seconds a ``Start-Sleep`` statement sleeps, or None when the statement is not one."""
    match = _START_SLEEP.fullmatch(text.strip())
    if match is None:
        return None
    return float(match.group(2)) if match.group(2) is not None else int(match.group(3)) / 1000


@dataclasses.dataclass
class Execution:
    """The outcome of one command and how long the endpoint needs for it (lab seconds)."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    seconds: float
    script: str
    request: dict[str, t.Any] | None = None
    hang: bool = False
    forceupdate_after_s: float | None = None


def decode_request(encoded: str) -> tuple[dict[str, t.Any] | None, str | None]:
    """(request, None), or (None, error text) when the base64 JSON does not decode as the script would."""
    try:
        request = json.loads(base64.b64decode(encoded, validate=True).decode('utf-8'))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        return None, 'ConvertFrom-Json : Invalid JSON primitive: %s' % str(exc)[:40]
    if not isinstance(request, dict):
        return None, 'ConvertFrom-Json : Invalid object passed in, \':\' or \'}\' expected.'
    return request, None


@dataclasses.dataclass
class ScriptRun:
    """What a decoded script does with its input: the request it finds and the code it runs."""

    request: dict[str, t.Any] | None
    problem: str | None
    body: str
    console_output: bool


def read_script(script: str, input_lines: list[str]) -> ScriptRun | None:
    """How the script gets its request and code; None when it is not a request of the collection."""
    if INPUT_LINES_SPLIT.search(script):
        input_lines = [piece for line in input_lines for piece in re.split(r'\r?\n', line)]
    if INPUT_LINES.search(script) or INPUT_LINES_SPLIT.search(script):
        complete = REQUEST_FROM_INPUT.search(script) and SCRIPT_FROM_INPUT.search(script) and RUN_SCRIPT.search(script)
        if not complete:
            return ScriptRun(None, 'The bootstrap reads $input but does not run it as the collection\'s bootstrap does', '', False)
        if not input_lines or input_lines == ['']:
            return ScriptRun(None, 'ConvertFrom-Json : Cannot bind argument to parameter \'InputObject\' because it is null.', '', False)
        request, problem = decode_request(input_lines[0].strip())
        body = '\n'.join(input_lines[1:])
        return ScriptRun(request, problem, body, bool(CONSOLE_OUT.search(body)))
    lines = DATA_LINE.findall(script)
    if not lines:
        return None
    request, problem = decode_request(lines[0])
    body = PRESERVE_RC.sub('', PRELUDE.sub('', DATA_LINE.sub('', script))).strip()
    if CONSOLE_IN.search(body):
        body = ''  # a loader reading [Console]::In gets nothing to run (psrp has no console)
    return ScriptRun(request, problem, body, bool(CONSOLE_OUT.search(body)))


def quoted_words(text: str) -> list[str]:
    """The items of a PowerShell array literal of single-quoted strings: ``'a', 'b'``."""
    return re.findall(r"'([^']*)'", text)


def entry_refusal(request: dict[str, t.Any], actions: list[str], sections: list[str]) -> str | None:
    """Read-TetraRequest's refusal of a request the joined entry does not handle, or None."""
    action = request.get('action')
    if str(action) not in actions:
        return "this entry does not handle the action '%s'" % ('' if action is None else action)
    foreign = [str(s) for s in request.get('sections') or [] if s and str(s) not in sections]
    if foreign:
        return 'this entry does not collect the section(s) %s' % ', '.join(foreign)
    return None


def ascii_escaped(text: str) -> str:
    """The script's last step: every non-ASCII UTF-16 code unit written as \\uXXXX."""
    def escape(match: re.Match[str]) -> str:
        units = match.group(0).encode('utf-16-le')
        return ''.join('\\u%04x' % int.from_bytes(units[i:i + 2], 'little') for i in range(0, len(units), 2))
    return re.sub(r'[^\x00-\x7f]', escape, text)


def input_lines_of(stdin: bytes) -> list[str]:
    """powershell.exe's $input over redirected stdin: one string per line, without the line ends."""
    if not stdin:
        return []
    return stdin.decode('utf-8', 'replace').splitlines()


def wrong_shape(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """Fault `wrong_shape`: a document that breaks docs/evidence.md the way a script regression would.

    `install` becomes a list (PowerShell 5.1 unrolling or wrapping a value) and the TLS chain is missing
    although the TCP connection and the handshake succeeded (the chain reset after its callback).
    """
    if 'install' in document:
        document['install'] = [document['install']]
    tls = (document.get('probes') or {}).get('tls')
    if isinstance(tls, dict):
        tls.pop('chain', None)
    return document


# Fault `payload`: what a hostile or broken endpoint prints instead of (or inside) its document.
PAYLOAD_KINDS = ('lone_surrogates', 'terminal_escapes', 'huge', 'deep_json', 'wrong_types')
_SURROGATE_MARK = 'LAB-LONE-SURROGATE'
TERMINAL_ESCAPES = '\x1b]0;pwned\x07\x1b[2J\x1b[31mRED\x1b[0m\r\x08\x00\u202e'


def hostile_payload(plan: t.Any, document: dict[str, t.Any]) -> str:
    """The stdout of fault `payload` ({kind: K, mb: N, depth: N}), built from the real document.

    lone_surrogates / terminal_escapes: the computer and service names carry a lone UTF-16 surrogate
    (as `\\ud800` in the JSON, the way the script escapes it) or terminal escape sequences, control
    characters and a bidi override; huge: a valid-looking document padded to `mb` MB (default 50);
    deep_json: a document nested `depth` levels (default 100000); wrong_types: `install` is `[1]`.
    """
    plan = plan if isinstance(plan, dict) else {'kind': plan}
    kind = plan.get('kind')
    if kind not in PAYLOAD_KINDS:
        raise ValueError('unknown payload kind %r (one of %s)' % (kind, ', '.join(PAYLOAD_KINDS)))
    if kind == 'huge':
        size = int(float(plan.get('mb', 50)) * 1024 * 1024)
        return '{"format":1,"action":"collect","pad":"' + 'A' * size + '"}\r\n'
    if kind == 'deep_json':
        depth = int(plan.get('depth', 100000))
        return '{"format":1,"action":"collect","deep":' + '[' * depth + ']' * depth + '}\r\n'
    marker = _SURROGATE_MARK if kind == 'lone_surrogates' else TERMINAL_ESCAPES
    if kind == 'wrong_types':
        document['install'] = [1]
    else:
        if isinstance(document.get('host'), dict):
            document['host']['computer_name'] = '%s-%s' % (document['host'].get('computer_name'), marker)
        service = (document.get('install') or {}).get('service') if isinstance(document.get('install'), dict) else None
        if isinstance(service, dict):
            service['name'] = '%s%s' % (service.get('name'), marker)
    text = ascii_escaped(ps_json(document))
    return text.replace(_SURROGATE_MARK, '\\ud800') + '\r\n'


class CommandRunner:
    """Runs commands for one endpoint."""

    def __init__(self, state: EndpointState, user: str) -> None:
        self.state = state
        self.user = user
        self.culture = state.scenario['host']['culture']

    def startup_s(self) -> float:
        low, high = self.state.scenario['latency']['startup_s']
        return random.Random('%s-%d' % (self.state.spec.name, self.state.counters['commands'])).uniform(float(low), float(high))

    def run(self, command: str, arguments: list[str], stdin: bytes) -> Execution:
        """A WinRS command: Command + Arguments read as CreateProcess and powershell.exe read them."""
        self.state.count('commands')
        try:
            argv = windows.parse_winrs_command(command, arguments)
        except windows.CommandLineError as exc:
            return Execution(b'', exc.message.encode('utf-8'), exc.exit_code, 0.02, ' '.join([command] + arguments))
        if not windows.is_powershell(argv[0]):
            return self.run_plain(' '.join(argv))
        try:
            launch = windows.parse_powershell_argv(argv)
        except windows.CommandLineError as exc:
            return Execution(b'', (exc.message + '\r\n').encode('utf-8'), exc.exit_code, self.startup_s(), ' '.join(argv))
        return self.run_script(launch.script, input_lines_of(stdin))

    def run_script(self, script: str, input_lines: list[str], depth: int = 0) -> Execution:
        """A PowerShell script with its input lines: from powershell.exe (winrm, ssh) or a psrp pipeline."""
        nested = NESTED_POWERSHELL.match(script)
        if nested and depth < 3:
            try:
                launch = windows.parse_powershell_argv([nested.group(1)] + nested.group(2).split())
            except windows.CommandLineError as exc:
                return Execution(b'', (exc.message + '\r\n').encode('utf-8'), exc.exit_code, self.startup_s(), script)
            return self.run_script(launch.script, input_lines, depth + 1)
        run = read_script(script, input_lines)
        if run is None:
            return self.run_raw_powershell(script)
        if run.problem:
            return self.powershell_error(script, run.problem, 'InvalidOperation', 'System.ArgumentException')
        return self.run_request(script, run)

    def run_request(self, script: str, run: ScriptRun) -> Execution:
        request = run.request
        assert request is not None, 'read_script gives a request whenever it reports no problem'
        entry = ENTRY_REQUEST.search(run.body)
        if entry is None:
            return Execution(b'', b'', 0, self.startup_s(), script, request)
        now = time.time()
        self.state.settle(now)
        builder = EvidenceBuilder(self.state, request, self.user, now, queries_os='Win32_OperatingSystem' in run.body)
        refusal = entry_refusal(request, quoted_words(entry.group(1)), quoted_words(entry.group(2)))
        built = builder.refused(refusal) if refusal else builder.build()
        faults = self.state.scenario['faults']
        if faults.get('wrong_shape'):
            wrong_shape(built.document)
        stdout = faults['garbage_stdout'] if faults['garbage_stdout'] else ascii_escaped(ps_json(built.document)) + '\r\n'
        if faults.get('payload') and request.get('action') in (None, 'collect'):
            stdout = hostile_payload(faults['payload'], built.document)
        if run.console_output:
            # Written to the console, not the pipeline: lost in a runspace, so lost here too.
            stdout = ''
        lost = faults.get('lose_answer') or {}
        if lost.get('action') == request.get('action'):
            # The endpoint did the work (the state above changed) but the client gets no document back.
            stdout = str(lost.get('stdout', '\r\nThe pipeline has been stopped.\r\n'))
        stderr = texts.clixml_progress() if faults['clixml_stderr'] else ''
        seconds = self.startup_s() + built.duration_ms / 1000
        after = None if built.forceupdate_at_ms is None else self.startup_s() + built.forceupdate_at_ms / 1000
        return Execution(stdout.encode('utf-8'), stderr.encode('utf-8'), 0, seconds, script, request,
                         hang=bool(faults['hang']), forceupdate_after_s=after)

    def run_raw_powershell(self, script: str) -> Execution:
        statement = PRELUDE.sub('', script).strip().splitlines()
        text = statement[0].strip() if statement else ''
        text = re.sub(r';\s*(If \(-not \$\?\).*|exit \$LASTEXITCODE)$', '', text).strip()
        slept = sleep_seconds(text)
        answer = (0, '') if slept is not None else self.known_command(text)
        if answer is None:
            name = text.split()[0] if text.split() else text
            return self.powershell_error(text, texts.message(self.culture, 'not_recognized', name=name), 'ObjectNotFound',
                                         'CommandNotFoundException', name=name)
        exit_code, out = answer
        return Execution(out.encode('utf-8'), b'', exit_code, self.startup_s() + 0.03 + (slept or 0.0), script,
                         hang=bool(self.state.scenario['faults']['hang']))

    def known_command(self, text: str) -> tuple[int, str] | None:
        """The few commands the lab can answer; None for anything else."""
        name = self.state.computer_name()
        lowered = text.lower()
        words = text.split(None, 1)
        if lowered in ('hostname', 'hostname.exe', '$env:computername'):
            return 0, name + '\r\n'
        if lowered in ('whoami', 'whoami.exe', '[environment]::username'):
            return 0, '%s\\%s\r\n' % (name.lower(), self.user.split('\\')[-1].split('@')[0])
        if words and words[0].lower() in ('echo', 'write-output', 'write-host') and len(words) == 2:
            return 0, words[1].strip('\'"') + '\r\n'
        match = re.fullmatch(r'exit\s+(-?\d+)', lowered)
        if match:
            return int(match.group(1)), ''
        return None

    def run_plain(self, line: str) -> Execution:
        """A cmd.exe-style command line (pywinrm run_cmd)."""
        answer = self.known_command(line.strip())
        if answer is not None:
            return Execution(answer[1].encode('utf-8'), b'', answer[0], 0.05, line)
        name = line.split()[0] if line.split() else line
        err = "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n" % name
        return Execution(b'', err.encode('utf-8'), 1, 0.05, line)

    def powershell_error(self, text: str, msg: str, category: str, fqid: str, name: str = '') -> Execution:
        first = text.splitlines()[0] if text else ''
        record = ('%s%s\r\nAt line:1 char:1\r\n+ %s\r\n+ %s\r\n    + CategoryInfo          : %s: (%s:String) [], %s\r\n'
                  '    + FullyQualifiedErrorId : %s\r\n \r\n'
                  % ('%s : ' % name if name else '', msg, first[:120], '~' * max(1, len(name or first[:20])), category,
                     name or first[:20], fqid, fqid))
        return Execution(b'', texts.clixml_error(record).encode('utf-8'), 1, self.startup_s() + 0.05, text)
