#!/usr/bin/env python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

r"""Static check that PowerShell scripts run on Windows PowerShell 5.1 endpoints.

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

Pitfall rules (PS5xx): code that parses and runs on 5.1 but fails on some endpoints or in some
transports. Each entry names the Windows/.NET behaviour behind it and a Microsoft reference.

PS500  ``[Console]``/``[System.Console]`` used directly (``::Out``, ``::In``, ``::Error``, ``::Write``,
       ``::WriteLine``, ``::ReadLine``, ``::OpenStandardOutput``, ``::OutputEncoding``, ...). A psrp
       runspace (and a scheduled task) has no console: what goes to the process's stdout never
       reaches the controller, and console handles may be invalid (IOException). Emit output on
       the pipeline (``Write-Output``/``return``).
       https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_output_streams
       https://learn.microsoft.com/dotnet/api/system.console#remarks
PS501  culture-dependent date formatting: ``.ToString(fmt)`` with a date format other than the
       invariant standard formats ``o``/``s``/``u``/``r`` and no ``[Globalization.CultureInfo]::InvariantCulture``
       second argument; ``.ToString()`` without arguments on an obvious date (``[DateTime]::UtcNow``,
       ``(Get-Date)``, ``.NotAfter``, ``.LastWriteTime``, ``.ToUniversalTime()``, ...); ``Get-Date -Format``
       other than o/s/u/r; every ``Get-Date -UFormat``; ``'{0:yyyy-MM-dd}' -f $d``. Custom formats use
       the endpoint culture's calendar and separators (``:`` is the culture's time separator; th-TH
       counts years in the Buddhist era); the -f operator and Get-Date -Format format with the current
       culture. Emit ``.ToString('o')`` of a UTC date or pass InvariantCulture. Format strings that are
       clearly numeric (``X2``, ``N0``, ``0.00``) or Guid formats are not reported.
       https://learn.microsoft.com/dotnet/standard/base-types/standard-date-and-time-format-strings
       https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/get-date
PS502  ``[IO.File]::ReadAllText/ReadAllBytes/ReadAllLines/ReadLines/OpenText/OpenRead`` (also
       ``[System.IO.File]``): they open with ``FileShare.Read`` and fail with a sharing violation while
       another process (the connector) holds the file open for writing; ``[IO.File]::Open`` with fewer
       than four arguments defaults to ``FileShare.None``. Use ``[IO.File]::Open($p, 'Open', 'Read',
       'ReadWrite')`` and a ``StreamReader``. ``Get-Content`` is not reported: the FileSystem provider
       already opens files with ``FileShare.ReadWrite``.
       https://learn.microsoft.com/dotnet/api/system.io.file.open
       https://learn.microsoft.com/dotnet/api/system.io.fileshare
PS503  ``$pool.Close()`` (or ``.Dispose()``) on a variable assigned from
       ``[RunspaceFactory]::CreateRunspacePool(...)`` in the same function/script block. Close blocks
       until every pipeline in the pool has stopped; a probe stuck in a .NET call (DNS, TLS, socket)
       does not stop, and the script misses its deadline. Accepted: ``BeginClose(...)`` (no need to
       wait for EndClose) or ``CloseAsync()`` instead, or a ``.Stop()``/``.BeginStop(...)`` call on a
       pipeline in the same function/script block as the Close (the rule only checks that the
       function stops its pipelines itself; it does not follow helper functions).
       https://learn.microsoft.com/dotnet/api/system.management.automation.runspaces.runspacepool.beginclose
PS504  ``Register-ScheduledTask`` without ``-Settings`` (or ``-InputObject``/``-Xml``, which carry their
       own settings; splatted calls are not checked). The default settings do not start the task on
       battery power (DisallowStartIfOnBatteries), stop it when the laptop unplugs and queue it behind
       a running instance. Pass ``-Settings (New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries
       -DontStopIfGoingOnBatteries -ExecutionTimeLimit ...)``.
       https://learn.microsoft.com/powershell/module/scheduledtasks/new-scheduledtasksettingsset
PS505  ``New-ScheduledTaskAction -Argument`` whose string contains ``-File`` (the one rule that looks
       inside a string: the argument is a command line). A script run with ``-File`` obeys the
       execution policy, and a policy set by Group Policy (MachinePolicy/UserPolicy) overrides
       ``-ExecutionPolicy Bypass`` on the command line: the task silently does nothing. Pass the
       script as ``-EncodedCommand`` (or ``-Command``), which execution policy does not cover.
       https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_execution_policies
PS506  ``'SYSTEM'``/``'NT AUTHORITY\SYSTEM'``/``'LocalSystem'`` by name as ``New-ScheduledTaskPrincipal
       -UserId`` or ``Register-ScheduledTask``/``Set-ScheduledTask -User``. Account names are
       localized (``NT-AUTORITAET\SYSTEM``, ``AUTORITE NT\Systeme``) and name lookups can fail; use the
       well-known SID ``S-1-5-18``.
       https://learn.microsoft.com/windows/win32/secauthz/well-known-sids
PS507  ``return @(...)``: PowerShell enumerates what a function returns, so an empty array becomes
       nothing ($null) and a one-element array becomes the element. Write ``return ,@(...)`` or
       ``Write-Output -NoEnumerate @(...)``.
       https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_return
PS508  ``[Net.WebRequest]::Create``/``[Net.HttpWebRequest]::Create`` (also ``CreateHttp``/``CreateDefault``,
       ``System.`` prefixed) whose variable gets no unconditional ``$var.Proxy = ...`` in the same
       function/script block (an assignment inside if/switch/loop/catch does not count: the other
       path still uses the default). The default proxy is the WinRM user's WinINet (Internet
       Explorer) setting, including WPAD auto-detection: the probe silently goes through (or waits
       for) a proxy the connector does not use. Assign ``$var.Proxy`` explicitly, e.g.
       ``New-Object Net.WebProxy`` for a direct connection.
       https://learn.microsoft.com/dotnet/api/system.net.httpwebrequest.proxy
       https://learn.microsoft.com/dotnet/api/system.net.webrequest.defaultwebproxy
PS509  an X509Chain or certificate kept past its validation callback: a script block used as a
       RemoteCertificateValidationCallback (passed to ``New-Object System.Net.Security.SslStream(...)``
       or ``[...SslStream]::new(...)``, directly or through a variable assigned in the same scope;
       assigned to ``...::ServerCertificateValidationCallback``/``ServerCertificateCustomValidationCallback``;
       cast to ``[...RemoteCertificateValidationCallback]``) that stores its chain parameter (3rd) or
       certificate parameter (2nd) itself in a ``$script:``/``$global:`` variable, a member or index
       of a variable from outside the callback, or ``.Add()``s it to an outside collection. .NET
       Framework resets the chain (and the certificate) when the callback returns, so the stored
       object reads back empty. Copy the data out inside the callback
       (``$Chain.ChainElements | ForEach-Object { $_.Certificate.RawData }``, ``$Chain.ChainStatus``,
       ``New-Object X509Certificate2($Certificate)``).
       https://learn.microsoft.com/dotnet/api/system.net.security.remotecertificatevalidationcallback
       https://learn.microsoft.com/dotnet/api/system.security.cryptography.x509certificates.x509chain.reset
PS510  ``Get-CimInstance``/``Invoke-CimMethod`` (``gcim``/``icim``) without ``-OperationTimeoutSec``
       (splatted calls are not checked), and every ``Get-WmiObject`` (``gwmi``), which has no timeout.
       A stuck WMI provider or repository blocks the call with no client-side limit and the script
       misses its deadline. Use ``Get-CimInstance ... -OperationTimeoutSec N``.
       https://learn.microsoft.com/powershell/module/cimcmdlets/get-ciminstance

With ``--entries files/entries.json`` the shipped parts are also checked as the controller joins them
(one script per entry, parts in the listed order), for what only shows at run time on Windows:

PS600  an entry calls a function of the collector that none of its parts defines (another entry's part
       does): CommandNotFoundException when that path runs.
PS601  an entry reads a script-level variable that only another entry's part assigns: $null at run time,
       no error (Set-StrictMode is off).
PS602  a probe block (a script block assigned at a part's top level) calls a collector function missing
       from ``$ProbeHelpers``: probe runspaces start empty and get only those functions.
PS603  a shipped part over 400 lines (one concern per part, readable in one sitting).
PS604  entries.json names a part that does not exist, an action whose entry is missing, a files/*.ps1
       part no entry uses, or joins the part holding the param block after another part.
PS605  a string literal spanning lines (here-string or quoted) in a part: the controller sends the entries
       without comment-only lines (``_remote.wire_script``), which is only safe when no line is string data.

Silencing a PS5xx finding on one line needs a reason: end the line with
``# pscheck: allow PS503 <reason>`` (several codes: ``PS503,PS508``). An allow comment without a
reason silences nothing. Rules PS1xx-PS4xx cannot be silenced.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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
    'gcim': 'get-ciminstance',
    'icim': 'invoke-cimmethod',
    'gwmi': 'get-wmiobject',
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


# -- tree helpers for the pitfall rules ------------------------------------------------------

_Hits = t.Iterator[t.Tuple[tree_sitter.Node, str]]

_SCOPE_TYPES = ('function_statement', 'script_block_expression', 'program')
_CONDITIONAL_TYPES = ('if_statement', 'switch_statement', 'while_statement', 'do_statement', 'for_statement',
                      'foreach_statement', 'catch_clause', 'trap_statement')
_LEAF_TYPES = ('variable', 'string_literal', 'type_literal', 'command', 'member_name')


def _unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    """Skip the grammar's single-child wrappers (pipeline > pipeline_chain > ... > unary_expression)."""
    while node.child_count == 1 and node.type not in _LEAF_TYPES:
        node = node.children[0]
    return node


def _ancestors(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _scope(node: tree_sitter.Node) -> tree_sitter.Node:
    """The function, script block or whole script that contains ``node``."""
    return next((a for a in _ancestors(node) if a.type in _SCOPE_TYPES), node)


def _is_conditional_in(node: tree_sitter.Node, scope: tree_sitter.Node) -> bool:
    """True when ``node`` sits in an if/switch/loop/catch between itself and ``scope``."""
    for ancestor in _ancestors(node):
        if ancestor == scope:
            return False
        if ancestor.type in _CONDITIONAL_TYPES:
            return True
    return False


def _in_other_function(node: tree_sitter.Node, scope: tree_sitter.Node) -> bool:
    """True when ``node`` belongs to a function defined inside ``scope`` (another function's code)."""
    for ancestor in _ancestors(node):
        if ancestor == scope:
            return False
        if ancestor.type == 'function_statement':
            return True
    return False


def _var_name(node: tree_sitter.Node) -> str:
    """``$script:Pool`` -> ``pool``; ``${x}`` -> ``x``."""
    name = _text(node).lstrip('$@').strip('{}').lower()
    return name.split(':', 1)[1] if ':' in name else name


def _is_scoped_var(node: tree_sitter.Node) -> bool:
    return node.type == 'variable' and re.match(r'(?i)^\$\{?(script|global):', _text(node)) is not None


def _type_name(node: tree_sitter.Node) -> str:
    """``[System.Net.WebRequest]`` -> ``net.webrequest`` (lower case, ``System.`` dropped)."""
    name = _text(node).strip('[] ').lower()
    return name[len('system.'):] if name.startswith('system.') else name


def _static_member(node: tree_sitter.Node) -> tuple[str, str] | None:
    """(type name, lower-case member) for ``[Type]::Member`` and ``[Type]::Member(...)`` nodes."""
    if node.type not in ('member_access', 'invokation_expression') or node.child_count < 3:
        return None
    first, op, member = node.children[:3]
    if first.type != 'type_literal' or op.type != '::' or member.type != 'member_name':
        return None
    return _type_name(first), _text(member).lower()


def _method_call(node: tree_sitter.Node) -> tuple[tree_sitter.Node, str] | None:
    """(receiver, lower-case method name) for ``$x.Method(...)`` calls."""
    if node.type != 'invokation_expression' or node.child_count < 3:
        return None
    receiver, op, member = node.children[:3]
    if op.type != '.' or member.type != 'member_name':
        return None
    return receiver, _text(member).lower()


def _call_args(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    """Unwrapped arguments of ``x.M(a, b)`` / ``[T]::M(a, b)``."""
    arg_list = next((c for c in node.children if c.type == 'argument_list'), None)
    exprs = next((c for c in arg_list.children if c.type == 'argument_expression_list'), None) if arg_list else None
    return [_unwrap(c) for c in exprs.children if c.type == 'argument_expression'] if exprs else []


def _assignment(node: tree_sitter.Node) -> tuple[tree_sitter.Node, tree_sitter.Node] | None:
    """(unwrapped target, unwrapped value) of an ``=`` assignment."""
    if node.type != 'assignment_expression' or node.child_count < 3:
        return None
    target, operator, value = node.children[:3]
    if _text(operator).strip() != '=':
        return None
    return _unwrap(target), _unwrap(value)


def _literal(node: tree_sitter.Node | None) -> str | None:
    """The text of a string literal or bare word (quotes removed), else None."""
    if node is None:
        return None
    node = _unwrap(node)
    if node.type in ('string_literal', 'expandable_string_literal', 'verbatim_string_characters', 'generic_token'):
        return _strip_quotes(_text(node))
    return None


@dataclasses.dataclass
class _Command:
    """A command call: name (aliases resolved), arguments, ``-Parameter`` nodes."""

    name_node: tree_sitter.Node
    written: str
    name: str
    elements: list[tree_sitter.Node]
    params: list[tuple[tree_sitter.Node, str]]
    splatted: bool

    @classmethod
    def parse(cls, node: tree_sitter.Node) -> _Command | None:
        name_node = next((c for c in node.children if c.type == 'command_name'), None)
        if name_node is None:
            return None  # `& $scriptblock` and similar: nothing static to check
        written = _command_name(name_node)
        elements_node = next((c for c in node.children if c.type == 'command_elements'), None)
        elements = [c for c in elements_node.children if c.type != 'command_argument_sep'] if elements_node else []
        params = [(e, _text(e)[1:].rstrip(':').lower()) for e in elements if e.type == 'command_parameter']
        splatted = any(_text(e).startswith('@') for e in _iter_nodes(elements_node) if e.type == 'variable') if elements_node else False
        return cls(name_node, written, _ALIASES.get(written, written), elements, params, splatted)

    def param(self, full: str, min_prefix: int = 1, aliases: tuple[str, ...] = ()) -> tree_sitter.Node | None:
        """The ``-Name`` node of parameter ``full`` (or of an abbreviation of at least ``min_prefix`` chars)."""
        full = full.lower()
        return next((e for e, name in self.params if name in aliases or (len(name) >= min_prefix and full.startswith(name))), None)

    def value(self, full: str, min_prefix: int = 1) -> tree_sitter.Node | None:
        """The argument given to parameter ``full`` (``-Name value`` or ``-Name:value``)."""
        param = self.param(full, min_prefix)
        if param is None:
            return None
        idx = self.elements.index(param)
        if idx + 1 < len(self.elements) and self.elements[idx + 1].type != 'command_parameter':
            return self.elements[idx + 1]
        return None


def _command(node: tree_sitter.Node, *names: str) -> _Command | None:
    """The parsed command when ``node`` calls one of ``names`` (lower case, aliases resolved)."""
    cmd = _Command.parse(node) if node.type == 'command' else None
    return cmd if cmd is not None and cmd.name in names else None


# -- PS500 [Console] I/O ----------------------------------------------------------------------

def _rule_console(node: tree_sitter.Node) -> _Hits:
    access = _static_member(node)
    if access and access[0] == 'console':
        yield node, (f'[Console]::{_text(node.children[2])}: a psrp runspace or scheduled task has no console '
                     '(output is lost, handles may be invalid); put output on the pipeline (Write-Output / return)')


# -- PS501 culture-dependent date formatting -------------------------------------------------

_INVARIANT_DATE_FORMATS = {'o', 'O', 's', 'u', 'r', 'R'}
_DATE_LETTER_FORMATS = set('dDfFgGmMtTUyY')
_DATE_RECEIVER = re.compile(r'(?i)(\[(system\.)?datetime(offset)?\]|\bget-date\b)')
_DATE_MEMBER = re.compile(r'(?i)^(now|utcnow|today|date|notbefore|notafter|\w*time(utc)?|\w*date|to(local|universal)time|add[a-z]+)$')
_FORMAT_ITEM = re.compile(r'\{\d+(?:,[^:}]*)?:([^}]+)\}')
_DATE_FIX = "use .ToString('o') on a UTC date, or pass [Globalization.CultureInfo]::InvariantCulture"


def _is_date_format(fmt: str, receiver: tree_sitter.Node | None = None) -> bool:
    """Does ``fmt`` format a date with the current culture? Numeric and Guid formats are not dates."""
    if fmt in _INVARIANT_DATE_FORMATS or re.fullmatch(r'[A-Za-z]\d+', fmt):
        return False
    if len(fmt) == 1:
        return fmt in _DATE_LETTER_FORMATS and not (receiver is not None and 'guid' in _text(receiver).lower())
    return re.search(r'[yMdHhmsftzK]', fmt) is not None and re.search(r'[0#]', fmt) is None


def _looks_like_date(receiver: tree_sitter.Node) -> bool:
    if _DATE_RECEIVER.search(_text(receiver)):
        return True
    member = receiver
    if receiver.type in ('invokation_expression', 'member_access'):
        member = next((c for c in reversed(receiver.children) if c.type == 'member_name'), receiver)
    return member.type == 'member_name' and _DATE_MEMBER.match(_text(member)) is not None


def _rule_date_format(node: tree_sitter.Node) -> _Hits:
    call = _method_call(node)
    if call and call[1] == 'tostring':
        yield from _check_tostring(node, call[0])
    cmd = _command(node, 'get-date')
    if cmd:
        uformat = cmd.param('uformat', 1)
        if uformat is not None:
            yield uformat, f'Get-Date -UFormat formats with the endpoint culture and local time (5.1): {_DATE_FIX}'
        fmt = cmd.value('format', 1)
        if cmd.param('format', 1) is not None and _literal(fmt) not in _INVARIANT_DATE_FORMATS:
            yield cmd.param('format', 1), f'Get-Date -Format formats with the endpoint culture: use -Format o/s/u, or {_DATE_FIX}'
    if node.type == 'format_expression' and node.child_count == 3 and node.children[1].type == 'format_operator':
        template = _literal(node.children[0])
        if template is not None and any(_is_date_format(f) for f in _FORMAT_ITEM.findall(template)):
            yield node.children[1], f'-f formats dates with the endpoint culture: {_DATE_FIX}'


def _check_tostring(node: tree_sitter.Node, receiver: tree_sitter.Node) -> _Hits:
    args = _call_args(node)
    if len(args) >= 2 and 'invariantculture' in _text(args[1]).lower():
        return
    if not args:
        if _looks_like_date(receiver):
            yield node, f'.ToString() of a date uses the endpoint culture: {_DATE_FIX}'
        return
    fmt = _literal(args[0])
    if (fmt is not None and _is_date_format(fmt, receiver)) or (fmt is None and _looks_like_date(receiver)):
        yield node, f'.ToString({_text(args[0])}) formats a date with the endpoint culture (calendar, separators): {_DATE_FIX}'


# -- PS502 reads that fail on files other processes hold open ---------------------------------

_SHARE_READ_METHODS = {'readalltext', 'readallbytes', 'readalllines', 'readlines', 'opentext', 'openread'}
_SHARED_READ_FIX = "use [IO.File]::Open($path, 'Open', 'Read', 'ReadWrite') and a StreamReader"


def _rule_shared_read(node: tree_sitter.Node) -> _Hits:
    access = _static_member(node) if node.type == 'invokation_expression' else None
    if not access or access[0] != 'io.file':
        return
    member = _text(node.children[2])
    if access[1] in _SHARE_READ_METHODS:
        yield node, f'[IO.File]::{member} opens with FileShare.Read: it fails while another process writes the file; {_SHARED_READ_FIX}'
    elif access[1] == 'open' and len(_call_args(node)) < 4:
        yield node, f'[IO.File]::Open without a FileShare argument shares nothing; {_SHARED_READ_FIX}'


# -- PS503 RunspacePool.Close() while pipelines may still run --------------------------------

def _is_pool_factory(node: tree_sitter.Node) -> bool:
    access = _static_member(node)
    return access is not None and access[0].endswith('runspacefactory') and access[1] == 'createrunspacepool'


def _rule_pool_close(node: tree_sitter.Node) -> _Hits:
    call = _method_call(node)
    if not call or call[1] not in ('close', 'dispose') or call[0].type != 'variable':
        return
    name, scope = _var_name(call[0]), _scope(node)
    pools = [a for a in map(_assignment, _iter_nodes(scope)) if a and a[0].type == 'variable' and _var_name(a[0]) == name
             and any(_is_pool_factory(n) for n in _iter_nodes(a[1]))]
    stops = any((_method_call(n) or (None, ''))[1] in ('stop', 'beginstop') and not _in_other_function(n, scope) for n in _iter_nodes(scope))
    if pools and not stops:
        yield node, (f'{_text(call[0])}.{_text(node.children[2])}() on a runspace pool blocks until every pipeline stops '
                     '(a probe stuck in a .NET call never does): call BeginClose($null, $null) without waiting, '
                     'or stop the pipelines first')


# -- PS504 Register-ScheduledTask without -Settings -------------------------------------------

def _rule_task_settings(node: tree_sitter.Node) -> _Hits:
    cmd = _command(node, 'register-scheduledtask')
    if cmd and not cmd.splatted and not (cmd.param('settings', 3) or cmd.param('inputobject', 1) or cmd.param('xml', 1)):
        yield cmd.name_node, ('Register-ScheduledTask without -Settings: by default the task does not start on battery and '
                              'stops when the machine unplugs; pass -Settings (New-ScheduledTaskSettingsSet '
                              '-AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit ...)')


# -- PS505 -File in a scheduled task's powershell.exe arguments ------------------------------

_FILE_SWITCH = re.compile(r'(?i)(?<![\w-])-file(?=[\s:\'"`]|$)')


def _rule_task_file_argument(node: tree_sitter.Node) -> _Hits:
    cmd = _command(node, 'new-scheduledtaskaction')
    value = cmd.value('argument', 2) if cmd else None
    if value is not None and _FILE_SWITCH.search(_text(value)):
        yield value, ('-File in the task arguments obeys the execution policy, and a Group Policy execution policy overrides '
                      '-ExecutionPolicy on the command line: pass the script with -EncodedCommand (or -Command)')


# -- PS506 SYSTEM by name ----------------------------------------------------------------------

_SYSTEM_NAMES = {'system', 'nt authority\\system', 'localsystem', 'nt authority\\localsystem', '.\\localsystem'}


def _rule_system_by_name(node: tree_sitter.Node) -> _Hits:
    cmd = _command(node, 'new-scheduledtaskprincipal', 'register-scheduledtask', 'set-scheduledtask')
    if not cmd:
        return
    value = cmd.value('userid', 1) if cmd.name == 'new-scheduledtaskprincipal' else cmd.value('user', 1)
    if (_literal(value) or '').lower() in _SYSTEM_NAMES:
        yield value, f'{_text(value)} by name: account names are localized on non-English Windows; use the SID S-1-5-18'


# -- PS507 return @(...) -------------------------------------------------------------------------

def _rule_return_array(node: tree_sitter.Node) -> _Hits:
    if node.type != 'flow_control_statement' or _text(node.children[0]).lower() != 'return' or node.child_count < 2:
        return
    value = _unwrap(node.children[1])
    if value.type == 'array_expression':
        yield value, ('return @(...) unrolls the array: an empty one becomes $null, a single element a scalar; '
                      'write return ,@(...) or Write-Output -NoEnumerate')


# -- PS508 web requests without an explicit proxy -------------------------------------------

_WEB_REQUEST_TYPES = {'net.webrequest', 'net.httpwebrequest'}
_WEB_REQUEST_FACTORIES = {'create', 'createhttp', 'createdefault'}


def _rule_web_proxy(node: tree_sitter.Node) -> _Hits:
    access = _static_member(node) if node.type == 'invokation_expression' else None
    if not access or access[0] not in _WEB_REQUEST_TYPES or access[1] not in _WEB_REQUEST_FACTORIES:
        return
    holder = next((a for a in _ancestors(node) if a.type == 'assignment_expression'), None)
    parts = _assignment(holder) if holder is not None else None
    message = ('uses the WinRM user\'s WinINet/WPAD proxy silently: set .Proxy on every path, before any if '
               '(New-Object Net.WebProxy for a direct connection)')
    if not parts or parts[1] != node or parts[0].type != 'variable':
        yield node, f'{_text(node.children[0])}::{_text(node.children[2])} not stored in a variable {message}'
        return
    name, scope = _var_name(parts[0]), _scope(node)
    for other in map(_assignment, _iter_nodes(scope)):
        target = other[0] if other else None
        if (target is not None and target.type == 'member_access' and _text(target.children[-1]).lower() == 'proxy'
                and target.children[0].type == 'variable' and _var_name(target.children[0]) == name
                and not _is_conditional_in(target, scope)):
            return
    yield node, f'{_text(parts[0])} = {_text(node.children[0])}::{_text(node.children[2])} without an unconditional {_text(parts[0])}.Proxy {message}'


# -- PS509 X509Chain kept past the validation callback ---------------------------------------

_CALLBACK_MEMBERS = {'servercertificatevalidationcallback', 'servercertificatecustomvalidationcallback'}
_STORE_METHODS = {'add', 'enqueue', 'push', 'insert', 'addrange', 'set_item'}


def _script_blocks_in(node: tree_sitter.Node, scope: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    """Script blocks written in ``node``, or assigned in ``scope`` to a variable used in ``node``."""
    names = set()
    for sub in _iter_nodes(node):
        if sub.type == 'script_block_expression':
            yield sub
        elif sub.type == 'variable':
            names.add(_var_name(sub))
    for parts in map(_assignment, _iter_nodes(scope)):
        if parts and parts[0].type == 'variable' and _var_name(parts[0]) in names:
            yield from (n for n in _iter_nodes(parts[1]) if n.type == 'script_block_expression')


def _certificate_callbacks(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    """Script blocks that ``node`` hands to .NET as a certificate validation callback."""
    cmd = _command(node, 'new-object')
    if cmd and any(re.search(r'(?i)(^|\.)security\.sslstream$', _text(e)) for e in cmd.elements):
        yield from _script_blocks_in(node, _scope(node))
    access = _static_member(node) if node.type == 'invokation_expression' else None
    if access and access[0].endswith('security.sslstream') and access[1] == 'new':
        yield from _script_blocks_in(node, _scope(node))
    parts = _assignment(node)
    if parts and parts[0].type == 'member_access' and _text(parts[0].children[-1]).lower() in _CALLBACK_MEMBERS:
        yield from _script_blocks_in(parts[1], _scope(node))
    if node.type == 'cast_expression' and _type_name(node.children[0]).endswith('remotecertificatevalidationcallback'):
        yield from _script_blocks_in(node.children[1], _scope(node))


def _callback_params(block: tree_sitter.Node) -> list[str]:
    param_block = next((c for c in block.children if c.type == 'param_block'), None)
    inner = next((c for c in block.children if c.type == 'script_block'), None)
    if param_block is None and inner is not None:
        param_block = next((c for c in inner.children if c.type == 'param_block'), None)
    if param_block is None:
        return []
    params = [p for p in _iter_nodes(param_block) if p.type == 'script_parameter']
    return [_var_name(next(c for c in p.children if c.type == 'variable')) for p in params if any(c.type == 'variable' for c in p.children)]


def _is_bare_use(var: tree_sitter.Node, stored: tree_sitter.Node) -> bool:
    """True when ``var`` itself is stored, not a member of it nor a copy (New-Object / ::new) inside ``stored``."""
    parent = var.parent
    if parent is not None and parent.type in ('member_access', 'invokation_expression', 'element_access') and parent.children[0] == var:
        return False
    for ancestor in _ancestors(var):
        if _command(ancestor, 'new-object') or (_static_member(ancestor) or ('', ''))[1] == 'new':
            return False
        if ancestor == stored:
            break
    return True


def _outside_target(target: tree_sitter.Node, local: set[str]) -> bool:
    if target.type == 'variable':
        return _is_scoped_var(target)
    base = next((n for n in _iter_nodes(target) if n.type == 'variable'), None)
    return base is not None and (_is_scoped_var(base) or _var_name(base) not in local)


def _rule_chain_kept(node: tree_sitter.Node) -> _Hits:
    for block in _certificate_callbacks(node):
        params = _callback_params(block)
        watched = set(params[1:3])
        local = set(params) | {_var_name(a[0]) for a in map(_assignment, _iter_nodes(block))
                               if a and a[0].type == 'variable' and not _is_scoped_var(a[0])}
        for sub in _iter_nodes(block):
            parts, call = _assignment(sub), _method_call(sub)
            if parts and _outside_target(parts[0], local):
                stored = parts[1]
            elif call and call[1] in _STORE_METHODS and _outside_target(call[0], local):
                stored = sub.children[-1]
            else:
                continue
            for var in _iter_nodes(stored):
                if var.type == 'variable' and _var_name(var) in watched and _is_bare_use(var, stored):
                    yield var, (f'{_text(var)} is stored past the certificate callback: .NET Framework resets the chain and '
                                'certificate when the callback returns; copy data out inside it ($Chain.ChainElements | '
                                'ForEach-Object { $_.Certificate.RawData }, $Chain.ChainStatus, New-Object X509Certificate2($Certificate))')


# -- PS510 CIM/WMI calls without a timeout ----------------------------------------------------

def _rule_cim_timeout(node: tree_sitter.Node) -> _Hits:
    cmd = _command(node, 'get-ciminstance', 'invoke-cimmethod', 'get-wmiobject')
    if not cmd:
        return
    if cmd.name == 'get-wmiobject':
        yield cmd.name_node, f'{_text(cmd.name_node)} has no timeout (a stuck WMI provider blocks the script): use Get-CimInstance -OperationTimeoutSec N'
    elif not cmd.splatted and not cmd.param('operationtimeoutsec', 2, aliases=('ot',)):
        yield cmd.name_node, f'{_text(cmd.name_node)} without -OperationTimeoutSec waits forever on a stuck WMI provider: add -OperationTimeoutSec N'


@dataclasses.dataclass(frozen=True)
class _Rule:
    code: str
    node_types: tuple[str, ...]
    check: t.Callable[[tree_sitter.Node], _Hits]


_PITFALL_RULES = [
    _Rule('PS500', ('member_access', 'invokation_expression'), _rule_console),
    _Rule('PS501', ('invokation_expression', 'command', 'format_expression'), _rule_date_format),
    _Rule('PS502', ('invokation_expression',), _rule_shared_read),
    _Rule('PS503', ('invokation_expression',), _rule_pool_close),
    _Rule('PS504', ('command',), _rule_task_settings),
    _Rule('PS505', ('command',), _rule_task_file_argument),
    _Rule('PS506', ('command',), _rule_system_by_name),
    _Rule('PS507', ('flow_control_statement',), _rule_return_array),
    _Rule('PS508', ('invokation_expression',), _rule_web_proxy),
    _Rule('PS509', ('command', 'invokation_expression', 'assignment_expression', 'cast_expression'), _rule_chain_kept),
    _Rule('PS510', ('command',), _rule_cim_timeout),
]

# `# pscheck: allow PS503 <reason>` / `# pscheck: allow PS503,PS508 <reason>` at the end of a line.
_RULES_BY_TYPE: dict[str, list[_Rule]] = {}
for _rule in _PITFALL_RULES:
    for _node_type in _rule.node_types:
        _RULES_BY_TYPE.setdefault(_node_type, []).append(_rule)

_ALLOW = re.compile(r'(?i)^#\s*pscheck:\s*allow\s+(?P<codes>PS5\d\d(?:\s*,\s*PS5\d\d)*)(?P<reason>.*)$')


class _Checker:
    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data
        self.lines = data.decode('utf-8', errors='replace').splitlines()
        self.findings: list[Finding] = []
        self.allowed: dict[int, set[str]] = {}  # line (0-based) -> PS5xx codes allowed there with a reason
        self.unreasoned: dict[int, set[str]] = {}  # allow comments that give no reason (they silence nothing)

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
                self.note_allow(node)
            for rule in _RULES_BY_TYPE.get(node.type, ()):
                for hit, message in rule.check(node):
                    self.add_node(hit, rule.code, message)

    def _syntax_hint(self, row: int) -> str:
        line = self.lines[row] if row < len(self.lines) else ''
        hints = []
        for regex, hint in _SYNTAX_HINTS:
            if regex.search(line):
                hints.append(hint)
        return (': ' + '; '.join(hints)) if hints else ''

    def check_command(self, node: tree_sitter.Node, splat_ok: bool) -> None:
        cmd = _Command.parse(node)
        if cmd is None:
            return  # `& $scriptblock` and similar: nothing static to check
        name_node, written, command = cmd.name_node, cmd.written, cmd.name
        elements, params, splatted = cmd.elements, cmd.params, cmd.splatted

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

    def note_allow(self, node: tree_sitter.Node) -> None:
        """Record a ``# pscheck: allow PS5xx <reason>`` comment for the line it ends."""
        match = _ALLOW.match(_text(node).strip())
        if not match:
            return
        codes = {code.strip().upper() for code in match.group('codes').split(',')}
        reason = match.group('reason').strip(' \t-:')
        target = self.allowed if len(reason) >= 3 and re.search(r'[A-Za-z]', reason) else self.unreasoned
        target.setdefault(node.end_point[0], set()).update(codes)

    def apply_allows(self) -> None:
        """Drop PS5xx findings allowed with a reason on their line; say so when the reason is missing."""
        kept = []
        for finding in self.findings:
            line0 = finding.line - 1
            if finding.rule in self.allowed.get(line0, ()):
                continue
            if finding.rule in self.unreasoned.get(line0, ()):
                finding = dataclasses.replace(finding, message=finding.message + f' (the allow comment needs a reason: # pscheck: allow {finding.rule} <why>)')
            kept.append(finding)
        self.findings = kept

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
    checker.apply_allows()
    return sorted(set(checker.findings))


def check_file(path: str) -> list[Finding]:
    with open(path, 'rb') as handle:
        return check_source(handle.read(), path)


# -- PS600-PS604 the parts as the controller joins them ------------------------------------------

PART_MAX_LINES = 400
# files/*.ps1 that are not parts: the local runner joins the parts itself.
RUNNERS = ('tetra_evidence.ps1',)


@dataclasses.dataclass
class _Part:
    """What one part defines and uses, for the checks across parts."""

    path: str
    data: bytes
    functions: set[str] = dataclasses.field(default_factory=set)
    calls: list[tuple[str, tree_sitter.Node]] = dataclasses.field(default_factory=list)
    globals: set[str] = dataclasses.field(default_factory=set)
    assigned: set[str] = dataclasses.field(default_factory=set)
    reads: list[tuple[str, tree_sitter.Node]] = dataclasses.field(default_factory=list)
    blocks: list[tree_sitter.Node] = dataclasses.field(default_factory=list)
    helpers: set[str] = dataclasses.field(default_factory=set)
    param_block: tree_sitter.Node | None = None
    multiline_strings: list[tree_sitter.Node] = dataclasses.field(default_factory=list)

    def finding(self, node: tree_sitter.Node, rule: str, message: str) -> Finding:
        line = self.data.splitlines()[node.start_point[0]].decode('utf-8', 'replace').strip() if self.data else ''
        return Finding(self.path, node.start_point[0] + 1, node.start_point[1] + 1, rule, message, line)


def _top_level(node: tree_sitter.Node) -> bool:
    return not any(a.type in ('function_statement', 'script_block_expression') for a in _ancestors(node))


def _variable_key(node: tree_sitter.Node) -> str:
    return _text(node)[1:].strip('{}').split(':', 1)[-1].lower()


def _read_part(path: str) -> _Part:
    with open(path, 'rb') as handle:
        part = _Part(path, handle.read())
    for node in _iter_nodes(_parser().parse(part.data).root_node):
        if node.type == 'function_statement':
            name = next((c for c in node.children if c.type == 'function_name'), None)
            if name is not None:
                part.functions.add(_text(name).lower())
        elif node.type == 'command_name':
            part.calls.append((_text(node).lower(), node))
        elif node.type == 'assignment_expression':
            _note_assignment(part, node)
        elif node.type == 'variable':
            part.reads.append((_variable_key(node), node))
        elif node.type == 'string_literal' and '\n' in _text(node):
            part.multiline_strings.append(node)
        elif node.type == 'param_block' and _top_level(node):
            part.param_block = node
        elif node.type == 'script_parameter':
            part.assigned.update(_variable_key(v) for v in _iter_nodes(node) if v.type == 'variable')
        elif node.type == 'foreach_statement':
            # The loop variable (foreach ($x in ...)) counts as assigned.
            loop = next((v for v in _iter_nodes(node) if v.type == 'variable'), None)
            if loop is not None:
                part.assigned.add(_variable_key(loop))
    return part


def _note_assignment(part: _Part, node: tree_sitter.Node) -> None:
    target = next((v for v in _iter_nodes(node.children[0]) if v.type == 'variable'), None)
    if target is None:
        return
    key = _variable_key(target)
    part.assigned.add(key)
    if not _top_level(node):
        return
    part.globals.add(key)
    value = node.children[-1]
    block = next((v for v in _iter_nodes(value) if v.type == 'script_block_expression'), None)
    if block is not None and _text(value).lstrip().startswith('{'):
        part.blocks.append(block)
    if key == 'probehelpers':
        part.helpers.update(_strip_quotes(_text(v)).lower() for v in _iter_nodes(value) if v.type == 'string_literal')


def check_entries(manifest_path: str) -> list[Finding]:
    """PS600-PS604 over the parts of every entry of files/entries.json, joined as the controller joins them."""
    folder = os.path.dirname(os.path.abspath(manifest_path))
    with open(manifest_path, encoding='utf-8') as handle:
        manifest = json.load(handle)
    entries: dict[str, list[str]] = manifest['entries']
    findings = _manifest_findings(manifest_path, folder, manifest)
    names = sorted({name for parts in entries.values() for name in parts if os.path.isfile(os.path.join(folder, name))})
    parts = {name: _read_part(os.path.join(folder, name)) for name in names}
    for part in parts.values():
        findings += [part.finding(node, 'PS605', 'a string literal spanning lines: the entries travel without comment-only lines '
                                  '(_remote.wire_script), which could change this string; build it with "`n" instead')
                     for node in part.multiline_strings]
        lines = part.data.count(b'\n')
        if lines > PART_MAX_LINES:
            findings.append(Finding(part.path, 1, 1, 'PS603', f'{lines} lines, more than {PART_MAX_LINES}: split the part by concern', ''))
    all_functions = set().union(*(p.functions for p in parts.values()))
    all_globals = set().union(*(p.globals for p in parts.values()))
    for entry, members in entries.items():
        joined = [parts[name] for name in members if name in parts]
        findings += _entry_findings(entry, joined, all_functions, all_globals)
    return sorted(set(findings))


def _manifest_findings(manifest_path: str, folder: str, manifest: dict[str, t.Any]) -> list[Finding]:
    findings = []
    entries = manifest['entries']

    def bad(message: str) -> None:
        findings.append(Finding(manifest_path, 1, 1, 'PS604', message, ''))
    for entry, members in entries.items():
        for name in members:
            if not os.path.isfile(os.path.join(folder, name)):
                bad(f'entry {entry} names {name}, which does not exist')
    for action, entry in manifest['actions'].items():
        if entry not in entries:
            bad(f'action {action} runs entry {entry}, which entries.json does not define')
    used = {name for members in entries.values() for name in members}
    for name in sorted(os.listdir(folder)):
        if name.endswith('.ps1') and name not in used and name not in RUNNERS:
            bad(f'{name} is in no entry')
    return findings


def _entry_findings(entry: str, joined: list[_Part], all_functions: set[str], all_globals: set[str]) -> list[Finding]:
    findings = []
    functions = set().union(*(p.functions for p in joined))
    globals_ = set().union(*(p.globals for p in joined))
    assigned = set().union(*(p.assigned for p in joined))
    helpers = set().union(*(p.helpers for p in joined))
    for index, part in enumerate(joined):
        if part.param_block is not None and index > 0:
            findings.append(part.finding(part.param_block, 'PS604', f'entry {entry} joins this part, which has the script\'s param block, '
                                         'after another part: a param block must come first in the joined script'))
        for name, node in part.calls:
            if name in all_functions and name not in functions:
                findings.append(part.finding(node, 'PS600', f'entry {entry} calls {_text(node)}, defined in no part of the entry'))
        for key, node in part.reads:
            if key in all_globals and key not in globals_ and key not in assigned:
                findings.append(part.finding(node, 'PS601', f'entry {entry} reads {_text(node)}, which only another entry\'s part assigns'))
        for block in part.blocks:
            for node in _iter_nodes(block):
                if node.type == 'command_name' and _text(node).lower() in functions and _text(node).lower() not in helpers:
                    findings.append(part.finding(node, 'PS602', f'{_text(node)} is called in a probe block but not listed in $ProbeHelpers: '
                                                 'the probe runspace will not have it'))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Check PowerShell scripts for Windows PowerShell 5.1 compatibility.')
    parser.add_argument('files', nargs='*', metavar='FILE', help='.ps1/.psm1/.psd1 files to check')
    parser.add_argument('--entries', metavar='MANIFEST', help='also check the parts joined per entry as files/entries.json lists them')
    args = parser.parse_args(argv)
    if not args.files and not args.entries:
        print('pscheck: no PowerShell files given, nothing to check')
        return 0
    total = 0
    if args.entries:
        findings = check_entries(args.entries)
        for finding in findings:
            print(finding.format())
        total += len(findings)
        print(f'pscheck: entries of {args.entries}: ' + ('ok' if not findings else f'{len(findings)} finding(s)'), file=sys.stderr)
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
