# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How Windows reads a command line: CommandLineToArgvW and powershell.exe 5.1's parameter rules.

The lab and the transport contract tests judge every command line with these functions. The rule
(docs/lab.md): whatever this module accepts, Windows must accept; where Windows' behaviour is not
certain, it refuses. Sources are cited at each rule.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

# PowerShell's ConsoleHost exit code for a bad command-line parameter (0xFFFD0000 as a signed
# int32); the same constant is in PowerShell's open ConsoleHost source (ExitCodeBadCommandLineParameter).
EXIT_BAD_PARAMETER = -196608
# about_PowerShell_exe (Windows PowerShell 5.1): the parameters powershell.exe knows. The lab
# accepts only the full names, case-insensitively; Windows also accepts unambiguous prefixes.
_SWITCHES = {'-noprofile', '-noninteractive', '-nologo', '-noexit', '-sta', '-mta'}
_VALUED = {'-executionpolicy', '-inputformat', '-outputformat', '-windowstyle', '-version',
           '-psconsolefile', '-configurationname'}
_EXECUTION_POLICIES = {'unrestricted', 'remotesigned', 'allsigned', 'restricted', 'bypass', 'undefined', 'default'}
_POWERSHELL_NAMES = {'powershell', 'powershell.exe', r'c:\windows\system32\windowspowershell\v1.0\powershell.exe'}
# Convert.FromBase64String: the base64 alphabet, '=' padding only at the end, white space ignored.
_BASE64 = re.compile(r'^[A-Za-z0-9+/]*={0,2}$')

BAD_ENCODED_MESSAGE = ('Cannot process the command because the value specified with -EncodedCommand is not '
                       'properly encoded. The value must be Base64 encoded.')


class CommandLineError(ValueError):
    """A command line Windows would not run as intended; ``exit_code`` and ``message`` as Windows reports them."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_PARAMETER) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclasses.dataclass
class PowerShellLaunch:
    """A powershell.exe call that Windows PowerShell 5.1 accepts."""

    argv: list[str]
    script: str
    execution_policy: str | None


def command_line_to_argv(line: str) -> list[str]:
    """Split a command line exactly as CommandLineToArgvW does.

    Rules from Microsoft's "Parsing C++ command-line arguments" and the CommandLineToArgvW page:
    the program name ends at the first white space, or at the closing quote when it starts quoted,
    with no backslash processing; in later arguments 2n backslashes before a quote give n
    backslashes and the quote delimits, 2n+1 give n backslashes and a literal quote, other
    backslashes are literal. Two quotes in a row inside a quoted argument differ between Windows
    versions (a literal quote in newer CRTs): refused as ambiguous.
    """
    if '\0' in line:
        raise CommandLineError('a command line cannot hold a NUL character', 1)
    argv: list[str] = []
    i, n = 0, len(line)
    if line.startswith('"'):
        end = line.find('"', 1)
        if end < 0:
            raise CommandLineError('unterminated quoted program name', 1)
        argv.append(line[1:end])
        i = end + 1
    else:
        while i < n and line[i] not in ' \t':
            i += 1
        argv.append(line[:i])
    while True:
        while i < n and line[i] in ' \t':
            i += 1
        if i >= n:
            return argv
        word, quoted = [], False
        while i < n and (quoted or line[i] not in ' \t'):
            char = line[i]
            if char == '\\':
                start = i
                while i < n and line[i] == '\\':
                    i += 1
                count = i - start
                if i < n and line[i] == '"':
                    word.append('\\' * (count // 2))
                    if count % 2:
                        word.append('"')
                        i += 1
                    continue
                word.append('\\' * count)
                continue
            if char == '"':
                if quoted and i + 1 < n and line[i + 1] == '"':
                    raise CommandLineError('two quotes in a row inside a quoted argument are read differently by '
                                           'Windows versions', 1)
                quoted = not quoted
                i += 1
                continue
            word.append(char)
            i += 1
        argv.append(''.join(word))


def decode_encoded_command(value: str) -> str:
    """-EncodedCommand's value as powershell.exe reads it: strict base64 of UTF-16LE text."""
    compact = re.sub(r'\s', '', value)
    if len(compact) % 4 or not _BASE64.match(compact):
        raise CommandLineError(BAD_ENCODED_MESSAGE)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CommandLineError(BAD_ENCODED_MESSAGE) from None
    if len(raw) % 2:
        raise CommandLineError(BAD_ENCODED_MESSAGE + ' (odd number of bytes for UTF-16LE text)')
    try:
        return raw.decode('utf-16-le')
    except UnicodeDecodeError:
        raise CommandLineError(BAD_ENCODED_MESSAGE + ' (not UTF-16LE text)') from None


def is_powershell(program: str) -> bool:
    return program.lower() in _POWERSHELL_NAMES


def parse_powershell_argv(argv: list[str]) -> PowerShellLaunch:
    """The script powershell.exe 5.1 runs for ``argv``, or CommandLineError as powershell.exe answers.

    about_PowerShell_exe: parameters are case-insensitive; -EncodedCommand takes a base64 string of
    UTF-16LE text. The lab requires -EncodedCommand to be the LAST argument: what follows it would be
    read as more parameters or script arguments, which no call of this collection needs.
    """
    if not argv or not is_powershell(argv[0]):
        raise CommandLineError('not a powershell.exe call', 1)
    policy = None
    i = 1
    while i < len(argv):
        word = argv[i]
        lowered = word.lower()
        if lowered in _SWITCHES:
            i += 1
            continue
        if lowered in _VALUED:
            if i + 1 >= len(argv):
                raise CommandLineError('Missing argument for parameter %s.' % word)
            if lowered == '-executionpolicy':
                if argv[i + 1].lower() not in _EXECUTION_POLICIES:
                    raise CommandLineError('Invalid argument "%s" for -ExecutionPolicy.' % argv[i + 1])
                policy = argv[i + 1]
            i += 2
            continue
        if lowered == '-encodedcommand':
            if i + 1 >= len(argv):
                raise CommandLineError('Cannot process the command because -EncodedCommand requires an argument.')
            script = decode_encoded_command(argv[i + 1])
            if i + 2 != len(argv):
                raise CommandLineError('Arguments after the -EncodedCommand value are not accepted by the lab: %r'
                                       % ' '.join(argv[i + 2:])[:80])
            return PowerShellLaunch(argv=argv, script=script, execution_policy=policy)
        raise CommandLineError('The lab only runs powershell.exe with -EncodedCommand; unexpected argument %r' % word[:80])
    raise CommandLineError('powershell.exe without -EncodedCommand would start an interactive shell', 1)


def parse_winrs_command(command: str, arguments: list[str]) -> list[str]:
    """WinRS joins rsp:Command and each rsp:Arguments with spaces into one command line (MS-WSMV 3.1.4.11)."""
    return command_line_to_argv(' '.join([command] + list(arguments)))
