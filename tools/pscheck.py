#!/usr/bin/env python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Static check that PowerShell scripts run on Windows PowerShell 5.1 endpoints.

Usage: ``python tools/pscheck.py FILE...`` (``make pscheck`` runs it over every tracked
``*.ps1``/``*.psm1``/``*.psd1``). Exit status 0 when every file is clean, 1 when any finding is
reported, 2 on a usage error. Each finding is printed as ``file:line:col: RULE message`` followed
by the offending source line.

Scripts are parsed with tree-sitter-powershell; rules look at the syntax tree (command names,
parameters, variables), so words inside comments and strings never trigger them. The rules
follow ``shared/reference/powershell-51.md``:

PS100  the parser found an ERROR or MISSING node (includes 7-only syntax: ternary, ``??``,
       ``?.``, ``clean {}``, trailing ``&``)
PS101  ``&&``/``||`` between pipelines (``pipeline_chain_tail``)
PS200  a PowerShell 7-only command (Test-Json, Join-String, Get-Error, ...)
PS201  a PowerShell 7-only parameter (ForEach-Object -Parallel, ConvertFrom-Json -AsHashtable
       and -Depth, -AsByteStream, -SkipCertificateCheck, ...)
PS202  a PowerShell 7-only encoding name (``-Encoding utf8NoBOM``, ``utf8BOM``, ``ansi``)
PS203  a PowerShell 6+/7-only automatic variable ($IsWindows, $IsLinux, $IsMacOS, $PSStyle, ...)
PS204  ``#Requires`` asking for PowerShell 6+ or PSEdition Core
PS300  ``curl``/``wget`` without ``.exe`` (aliases of Invoke-WebRequest in 5.1)
PS301  Invoke-WebRequest without -UseBasicParsing (needs the IE engine, fails on Server Core)
PS302  Write-Host (stdout must carry exactly one JSON document)
PS303  ConvertTo-Json without -Depth (5.1 silently truncates below depth 2)
PS400  a byte-order mark
PS401  a non-ASCII byte (5.1 reads BOM-less UTF-8 as ANSI)
PS402  NUL bytes (UTF-16 text)
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import typing as t

import tree_sitter
import tree_sitter_powershell

# Command aliases that resolve to the commands the rules care about (Windows PowerShell 5.1).
_ALIASES = {
    '%': 'foreach-object',
    'foreach': 'foreach-object',
    'iwr': 'invoke-webrequest',
    'curl': 'invoke-webrequest',
    'wget': 'invoke-webrequest',
    'irm': 'invoke-restmethod',
    'gc': 'get-content',
    'cat': 'get-content',
    'type': 'get-content',
    'sc': 'set-content',
    'ac': 'add-content',
    'select': 'select-object',
    'sort': 'sort-object',
    'gci': 'get-childitem',
    'ls': 'get-childitem',
    'dir': 'get-childitem',
}

# Commands that do not exist in Windows PowerShell 5.1.
_PS7_COMMANDS = {
    'test-json': 'Test-Json is PowerShell 6.1+; parse with ConvertFrom-Json in try/catch',
    'join-string': 'Join-String is PowerShell 6.2+; use -join',
    'get-error': 'Get-Error is PowerShell 7+; read $Error[0] / the ErrorRecord',
    'get-uptime': 'Get-Uptime is PowerShell 6+; use Win32_OperatingSystem.LastBootUpTime',
    'remove-service': 'Remove-Service is PowerShell 6+; use sc.exe delete',
    'remove-alias': 'Remove-Alias is PowerShell 6+; use Remove-Item alias:\\name',
    'convertfrom-markdown': 'ConvertFrom-Markdown is PowerShell 6.1+',
    'show-markdown': 'Show-Markdown is PowerShell 6.1+',
    'get-markdownoption': 'Get-MarkdownOption is PowerShell 6.1+',
    'set-markdownoption': 'Set-MarkdownOption is PowerShell 6.1+',
}


@dataclasses.dataclass(frozen=True)
class _Param:
    """A parameter that does not exist in 5.1; ``min_prefix`` is the shortest abbreviation matched."""

    name: str
    min_prefix: int
    hint: str


_WEB_PARAMS = [
    _Param('SkipCertificateCheck', 5, 'use a ServerCertificateValidationCallback or curl.exe'),
    _Param('SkipHttpErrorCheck', 9, 'catch the WebException instead'),
    _Param('StatusCodeVariable', 7, 'read StatusCode from the response or the WebException'),
    _Param('ResponseHeadersVariable', 9, 'read Headers from the response'),
    _Param('MaximumRetryCount', 8, 'retry in a loop'),
    _Param('RetryIntervalSec', 6, 'retry in a loop'),
    _Param('SslProtocol', 4, 'set [Net.ServicePointManager]::SecurityProtocol'),
    _Param('NoProxy', 3, 'use -Proxy or [Net.WebRequest]::DefaultWebProxy'),
    _Param('Authentication', 5, 'build the Authorization header'),
    _Param('Token', 3, 'build the Authorization header'),
    _Param('AllowUnencryptedAuthentication', 6, ''),
    _Param('SkipHeaderValidation', 5, ''),
    _Param('HttpVersion', 2, ''),
    _Param('Resume', 3, ''),
    _Param('PreserveAuthorizationOnRedirect', 3, ''),
]

# Parameters that 5.1 does not have, per command ('*' = any command).
_PS7_PARAMS: dict[str, list[_Param]] = {
    'foreach-object': [
        _Param('Parallel', 2, 'use runspaces, .NET async calls or processes with one deadline'),
        _Param('ThrottleLimit', 2, ''),
        _Param('AsJob', 2, ''),
    ],
    'convertfrom-json': [
        _Param('AsHashtable', 2, 'walk the PSCustomObject instead'),
        _Param('Depth', 1, 'ConvertFrom-Json has no -Depth in 5.1'),
        _Param('NoEnumerate', 1, ''),
    ],
    'convertto-json': [
        _Param('AsArray', 3, 'wrap the value in @()'),
        _Param('EnumsAsStrings', 1, 'convert enums with [string]'),
        _Param('EscapeHandling', 2, ''),
    ],
    'sort-object': [
        _Param('Stable', 2, ''),
        _Param('Top', 1, 'use Select-Object -First after sorting'),
        _Param('Bottom', 1, 'use Select-Object -Last after sorting'),
    ],
    'select-object': [_Param('SkipIndex', 5, '')],
    'test-connection': [
        _Param('TargetName', 2, 'use -ComputerName'),
        _Param('TcpPort', 2, 'use System.Net.Sockets.TcpClient'),
    ],
    'invoke-webrequest': _WEB_PARAMS,
    'invoke-restmethod': _WEB_PARAMS + [_Param('FollowRelLink', 2, '')],
    '*': [
        _Param('AsByteStream', 3, 'use -Encoding Byte or [IO.File]::ReadAllBytes'),
        _Param('SkipCertificateCheck', 5, 'use a ServerCertificateValidationCallback or curl.exe'),
    ],
}

_PS7_ENCODINGS = {
    'utf8nobom': 'utf8NoBOM is PowerShell 6+; write bytes with [IO.File]::WriteAllText and New-Object Text.UTF8Encoding $false',
    'utf8bom': 'utf8BOM is PowerShell 6+; use -Encoding UTF8',
    'ansi': 'ansi is PowerShell 7.4+; use -Encoding Default',
}

_PS7_VARIABLES = {
    'iswindows': '$IsWindows is PowerShell 6+ ($null on 5.1)',
    'islinux': '$IsLinux is PowerShell 6+ ($null on 5.1)',
    'ismacos': '$IsMacOS is PowerShell 6+ ($null on 5.1)',
    'iscoreclr': '$IsCoreCLR is PowerShell 6+ ($null on 5.1)',
    'psstyle': '$PSStyle is PowerShell 7.2+',
    'psnativecommandargumentpassing': '$PSNativeCommandArgumentPassing is PowerShell 7.3+',
    'psnativecommanduseerroractionpreference': '$PSNativeCommandUseErrorActionPreference is PowerShell 7.3+',
}

# Hints for parse errors caused by 7-only syntax (only used to explain a PS100 finding).
_SYNTAX_HINTS = [
    (re.compile(r'\?\?=?'), '`??`/`??=` are PowerShell 7+'),
    (re.compile(r'[\w})\]]\?\.|[\w})\]]\?\['), '`?.`/`?[]` are PowerShell 7+'),
    (re.compile(r'\s\?\s.*\s:\s'), 'the ternary operator is PowerShell 7+; use if/else'),
    (re.compile(r'(?i)\bclean\s*\{'), '`clean {}` blocks are PowerShell 7.3+'),
    (re.compile(r'&\s*$'), 'a trailing `&` (background job) is PowerShell 6+; use Start-Job or a process'),
]

_REQUIRES = re.compile(r'(?i)^#requires\b(?P<rest>.*)$')


@dataclasses.dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    col: int
    rule: str
    message: str
    source: str = dataclasses.field(compare=False, default='')

    def format(self) -> str:
        return f'{self.path}:{self.line}:{self.col}: {self.rule} {self.message}\n    {self.source}'


def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b'').decode('utf-8', errors='replace')


def _iter_nodes(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    cursor = node.walk()
    while True:
        yield cursor.node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _command_name(node: tree_sitter.Node) -> str:
    """Lower-case command name without module qualifier, aliases resolved."""
    name = _text(node).strip().strip('\'"').lower()
    name = name.rsplit('\\', 1)[-1]
    return name


def _strip_quotes(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
        return value[1:-1]
    return value


class _Checker:
    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data
        self.lines = data.decode('utf-8', errors='replace').splitlines()
        self.findings: list[Finding] = []

    def add(self, line0: int, col0: int, rule: str, message: str) -> None:
        source = self.lines[line0] if 0 <= line0 < len(self.lines) else ''
        self.findings.append(Finding(self.path, line0 + 1, col0 + 1, rule, message, source.strip()))

    def add_node(self, node: tree_sitter.Node, rule: str, message: str) -> None:
        row, col = node.start_point
        self.add(row, col, rule, message)

    # -- raw bytes -------------------------------------------------------------------------
    def check_bytes(self) -> None:
        if self.data.startswith((b'\xef\xbb\xbf', b'\xff\xfe', b'\xfe\xff')):
            self.add(0, 0, 'PS400', 'byte-order mark: save the script as plain ASCII')
        if b'\x00' in self.data:
            self.add(0, 0, 'PS402', 'NUL bytes (UTF-16 text?): save the script as plain ASCII')
        offset = 3 if self.data.startswith(b'\xef\xbb\xbf') else 2 if self.data.startswith((b'\xff\xfe', b'\xfe\xff')) else 0
        for lineno, line in enumerate(self.data.split(b'\n')):
            start = offset if lineno == 0 else 0
            for col, byte in enumerate(line):
                if col < start:
                    continue
                if byte > 0x7F:
                    self.add(lineno, col, 'PS401', f'non-ASCII byte 0x{byte:02X}: Windows PowerShell 5.1 reads BOM-less UTF-8 as ANSI')
                    break  # one finding per line is enough

    # -- syntax tree -----------------------------------------------------------------------
    def check_tree(self) -> None:
        tree = _parser().parse(self.data)
        has_splat_with_basic_parsing = re.search(rb'(?i)\bUseBasicParsing\s*=', self.data) is not None
        seen_error_lines: set[int] = set()
        for node in _iter_nodes(tree.root_node):
            if node.type == 'ERROR' or node.is_missing:
                row = node.start_point[0]
                if row in seen_error_lines:
                    continue
                seen_error_lines.add(row)
                what = f'missing {node.type!r}' if node.is_missing else 'syntax error'
                self.add_node(node, 'PS100', f'{what} (tree-sitter-powershell){self._syntax_hint(row)}')
            elif node.type == 'pipeline_chain_tail':
                op = node.children[0] if node.children else node
                self.add_node(op, 'PS101', f'`{_text(op) or "&&"}` between pipelines is PowerShell 7+; use if ($?) / try/catch')
            elif node.type == 'command':
                self.check_command(node, has_splat_with_basic_parsing)
            elif node.type == 'variable':
                self.check_variable(node)
            elif node.type == 'comment':
                self.check_comment(node)

    def _syntax_hint(self, row: int) -> str:
        line = self.lines[row] if row < len(self.lines) else ''
        hints = []
        for regex, hint in _SYNTAX_HINTS:
            if regex.search(line):
                hints.append(hint)
        return (': ' + '; '.join(hints)) if hints else ''

    def check_command(self, node: tree_sitter.Node, splat_ok: bool) -> None:
        name_node = next((c for c in node.children if c.type == 'command_name'), None)
        if name_node is None:
            return  # `& $scriptblock` and similar: nothing static to check
        written = _command_name(name_node)
        command = _ALIASES.get(written, written)
        elements_node = next((c for c in node.children if c.type == 'command_elements'), None)
        elements = [c for c in elements_node.children if c.type != 'command_argument_sep'] if elements_node else []
        params = [(e, _text(e)[1:].rstrip(':').lower()) for e in elements if e.type == 'command_parameter']
        splatted = any(_text(e).startswith('@') for e in _iter_nodes(elements_node) if e.type == 'variable') if elements_node else False

        if written in ('curl', 'wget'):
            self.add_node(name_node, 'PS300', f'`{written}` is an alias of Invoke-WebRequest in Windows PowerShell 5.1: write `{written}.exe`')
        if command == 'write-host':
            self.add_node(name_node, 'PS302', 'Write-Host: stdout must carry exactly one JSON document; collect values in the result object')
        if command in _PS7_COMMANDS:
            self.add_node(name_node, 'PS200', f'{_text(name_node)} does not exist in Windows PowerShell 5.1: {_PS7_COMMANDS[command]}')

        for elem, pname in params:
            for rule_param in _PS7_PARAMS.get(command, []) + _PS7_PARAMS['*']:
                full = rule_param.name.lower()
                if len(pname) >= rule_param.min_prefix and full.startswith(pname):
                    hint = f': {rule_param.hint}' if rule_param.hint else ''
                    self.add_node(elem, 'PS201', f'{_text(name_node)} -{rule_param.name} is PowerShell 6+/7 only{hint}')
                    break
            if 'encoding'.startswith(pname) and len(pname) >= 3:
                value = self._param_value(elements, elem)
                if value is not None and _strip_quotes(_text(value)).lower() in _PS7_ENCODINGS:
                    self.add_node(value, 'PS202', _PS7_ENCODINGS[_strip_quotes(_text(value)).lower()])

        if command == 'convertto-json' and not splatted and not any('depth'.startswith(p) for dummy, p in params):
            self.add_node(name_node, 'PS303', 'ConvertTo-Json without -Depth: Windows PowerShell 5.1 cuts nested values at depth 2')

        if command == 'invoke-webrequest':
            basic = any(len(p) >= 4 and 'usebasicparsing'.startswith(p) for dummy, p in params)
            if not basic and not (splatted and splat_ok):
                self.add_node(name_node, 'PS301', f'{_text(name_node)} without -UseBasicParsing needs the Internet Explorer engine '
                              '(fails on Server Core and for SYSTEM)')

    @staticmethod
    def _param_value(elements: list[tree_sitter.Node], param: tree_sitter.Node) -> tree_sitter.Node | None:
        idx = elements.index(param)
        if idx + 1 < len(elements) and elements[idx + 1].type != 'command_parameter':
            return elements[idx + 1]
        return None

    def check_variable(self, node: tree_sitter.Node) -> None:
        text = _text(node)
        if not text.startswith('$'):
            return
        name = text[1:].strip('{}').lower()
        name = name.split(':', 1)[-1] if ':' in name else name
        if name in _PS7_VARIABLES:
            self.add_node(node, 'PS203', f'{_PS7_VARIABLES[name]}: on 5.1 assume Windows')

    def check_comment(self, node: tree_sitter.Node) -> None:
        match = _REQUIRES.match(_text(node).strip())
        if not match:
            return
        rest = match.group('rest')
        version = re.search(r'(?i)-version\s+(\d+)', rest)
        if (version and int(version.group(1)) >= 6) or re.search(r'(?i)-psedition\s+core', rest):
            self.add_node(node, 'PS204', '#Requires asks for PowerShell 6+/Core: endpoints run Windows PowerShell 5.1')


def check_source(data: bytes, path: str = '<string>') -> list[Finding]:
    """Return every finding for one script's bytes, sorted by position."""
    checker = _Checker(path, data)
    checker.check_bytes()
    checker.check_tree()
    return sorted(set(checker.findings))


def check_file(path: str) -> list[Finding]:
    with open(path, 'rb') as handle:
        return check_source(handle.read(), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Check PowerShell scripts for Windows PowerShell 5.1 compatibility.')
    parser.add_argument('files', nargs='*', metavar='FILE', help='.ps1/.psm1/.psd1 files to check')
    args = parser.parse_args(argv)
    if not args.files:
        print('pscheck: no PowerShell files given, nothing to check')
        return 0
    total = 0
    for path in args.files:
        try:
            findings = check_file(path)
        except OSError as exc:
            print(f'{path}: cannot read: {exc}', file=sys.stderr)
            return 2
        for finding in findings:
            print(finding.format())
        total += len(findings)
        status = 'ok' if not findings else f'{len(findings)} finding(s)'
        print(f'pscheck: {path}: {status}', file=sys.stderr)
    if total:
        print(f'pscheck: FAILED: {total} finding(s) in {len(args.files)} file(s)')
        return 1
    print(f'pscheck: {len(args.files)} file(s) clean')
    return 0


if __name__ == '__main__':
    sys.exit(main())
