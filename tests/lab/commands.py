# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What an endpoint does with one WinRS command: decode it, find the request, answer like Windows.

The lab reads only the contract (docs/evidence.md): a PowerShell -EncodedCommand whose text holds one
`$TetraRequest = '<base64 JSON>'` line, with the script inline or on stdin. Anything else is treated
as an ordinary command line, of which only a handful are understood; the rest fail as PowerShell or
cmd.exe would.
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

from . import texts
from .evidence import EvidenceBuilder, ps_json
from .scenario import EndpointState

DATA_LINE = re.compile(r"^\s*\$TetraRequest\s*=\s*'([A-Za-z0-9+/=]*)'\s*$", re.M)
ENCODED = re.compile(r"(?:^|\s)-(?:EncodedCommand|enc|ec|e)\s+([A-Za-z0-9+/=]+)", re.I)
POWERSHELL = re.compile(r"(?:^|[\s&'\"\\])(?:powershell|pwsh)(?:\.exe)?(?:\s|$)", re.I)
PRELUDE = re.compile(r"^\s*\$(?:ErrorActionPreference|ProgressPreference)\s*=.*$", re.M)
STDIN_LOADER = '[Console]::In.ReadToEnd()'


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


def decode_powershell(command_line: str, depth: int = 4) -> str | None:
    """The script of a `PowerShell ... -EncodedCommand` line, unwrapping nested encodings."""
    match = ENCODED.search(command_line)
    if not match or not POWERSHELL.search(command_line):
        return None
    try:
        text = base64.b64decode(match.group(1) + '=' * (-len(match.group(1)) % 4)).decode('utf-16-le')
    except (binascii.Error, UnicodeDecodeError):
        return None
    if depth > 0 and ENCODED.search(text) and POWERSHELL.search(text):
        inner = decode_powershell(text, depth - 1)
        if inner is not None:
            return inner
    return text


def find_request(script: str) -> tuple[dict[str, t.Any] | None, str | None]:
    """(request, None), (None, error text) when the data line does not decode, or (None, None) when there is none."""
    lines = DATA_LINE.findall(script)
    if not lines:
        return None, None
    try:
        request = json.loads(base64.b64decode(lines[0]).decode('utf-8'))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        return None, 'ConvertFrom-Json : Invalid JSON primitive: %s' % str(exc)[:40]
    if not isinstance(request, dict):
        return None, 'ConvertFrom-Json : Invalid object passed in, \':\' or \'}\' expected.'
    return request, None


def script_body(script: str, stdin: bytes) -> str:
    """The code beside the data line: inline, or the stdin text when the bootstrap loads it from there."""
    body = PRELUDE.sub('', DATA_LINE.sub('', script)).strip()
    if STDIN_LOADER in body:
        return stdin.decode('utf-8', 'replace').strip()
    return body


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
        self.state.count('commands')
        line = ' '.join([command] + arguments)
        script = decode_powershell(line)
        if script is None:
            return self.run_plain(line)
        request, problem = find_request(script)
        if problem:
            return self.powershell_error(script, problem, 'InvalidOperation', 'System.ArgumentException')
        if request is None:
            return self.run_raw_powershell(script)
        return self.run_request(script, request, stdin)

    def run_request(self, script: str, request: dict[str, t.Any], stdin: bytes) -> Execution:
        if not script_body(script, stdin):
            return Execution(b'', b'', 0, self.startup_s(), script, request)
        now = time.time()
        self.state.settle(now)
        built = EvidenceBuilder(self.state, request, self.user, now).build()
        faults = self.state.scenario['faults']
        stdout = faults['garbage_stdout'] if faults['garbage_stdout'] else ps_json(built.document)
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
        answer = self.known_command(text)
        if answer is None:
            name = text.split()[0] if text.split() else text
            return self.powershell_error(text, texts.message(self.culture, 'not_recognized', name=name), 'ObjectNotFound',
                                         'CommandNotFoundException', name=name)
        exit_code, out = answer
        return Execution(out.encode('utf-8'), b'', exit_code, self.startup_s() + 0.03, script, hang=bool(self.state.scenario['faults']['hang']))

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
