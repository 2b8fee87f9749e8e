# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Build evidence requests from validated module arguments.

Everything here is data: host names are checked against RFC 1123 before they go anywhere near an
endpoint, and even then they only travel inside the base64 request.

The command lines of the child processes the endpoint script starts (curl.exe, netsh, pktmon,
ipsupporttool, sfc.exe, the LocalSystem task's powershell.exe) are built here too, from argv lists
quoted for CommandLineToArgvW (``quote_windows_argument``), and travel in the request's ``commands``.
The script passes them verbatim to ``ProcessStartInfo.Arguments``. Values only the endpoint knows
(the support work folder, the task's script/request/output paths) are ``{name}`` placeholders,
always inside a double-quoted argument; the script fills them only with values that hold no quote
character and do not end with a backslash (``check_placeholder_value``), so the split stays exact.

Every option that names a host, a URL or a path is checked with ``re.fullmatch`` (never ``$``, which
lets a trailing newline through), and ``deadline`` and every timeout have documented bounds
(``DEADLINE_BOUNDS``, ``TIMEOUT_BOUNDS``): a bad value is a ValueError naming the option, before any
endpoint is contacted.
"""

from __future__ import annotations

import re
import typing as t

# Secure Endpoint public cloud TETRA hosts (Cisco doc 118121).
REGION_UPDATE_SERVERS = {
    'nam': 'tetra-defs.amp.cisco.com',
    'eu': 'tetra-defs.eu.amp.cisco.com',
    'apjc': 'tetra-defs.apjc.amp.cisco.com',
}
# Revocation hosts the seed names; the chain the endpoint receives may add others.
REVOCATION_HOSTS = ('commercial.ocsp.identrust.com', 'validation.identrust.com')
# Roots the connector needs in LocalMachine\Root (Cisco doc 216943).
REQUIRED_ROOTS = {'DF717EAA4AD94EC9558499602D48DE5FBCF03A25': 'IdenTrust Commercial Root CA 1'}

# Output encodings of the child processes (docs/windows-assumptions.md): curl.exe and AmpCLI.exe
# write UTF-8 (ASCII in practice); console tools such as netsh, pktmon, sfc.exe and ipsupporttool
# write the OEM code page.
UTF8 = 'utf-8'
OEM = 'oem'
PLACEHOLDERS = ('work_dir', 'script', 'request', 'output')
_PLACEHOLDER = re.compile(r'\{([a-z_]+)\}')
# Used with fullmatch: `$` would accept a trailing newline.
_SAFE_PLACEHOLDER_VALUE = re.compile(r'[A-Za-z0-9 :\\._()-]+')
# The LocalSystem task runs the shipped script itself through -Command (never -File: a Group Policy
# execution policy overrides -ExecutionPolicy for script files), with a request asking for the probes only.
SYSTEM_TASK_COMMAND = ("$ErrorActionPreference = 'Stop'; "
                       "& ([ScriptBlock]::Create([IO.File]::ReadAllText('{script}'))) -RequestFile '{request}' -OutFile '{output}'")

DEFAULT_TIMEOUTS = {'ampcli': 10, 'dns': 5, 'connect': 5, 'tls': 10, 'curl': 12, 'http': 5, 'proxy': 5}
POSTURE_SECTIONS = ('install', 'posture', 'files', 'system')
NETWORK_SECTIONS = ('dns', 'tls', 'curl', 'http', 'roots', 'proxy')

# RFC 1123 host name, used with fullmatch only (`$` would let "host\n" through into curl's argv).
_HOSTNAME = re.compile(r'(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?')
# A controller path (evidence_dir, dest): 1-4096 characters, no NUL or other control character.
_CONTROLLER_PATH = re.compile(r'[^\x00-\x1f\x7f]{1,4096}')
# Bounds, inclusive, in seconds (documented in plugins/doc_fragments/endpoint.py and the modules).
DEADLINE_BOUNDS = (10, 3600)
TIMEOUT_BOUNDS = (1, 300)
# The most the controller accepts from one endpoint answer, in MB (max_answer_mb): a real document is tens of kB.
MAX_ANSWER_MB_BOUNDS = (1, 256)
DEFAULT_MAX_ANSWER_MB = 16
MAX_REVOCATION_HOSTS = 16
# What the endpoint script needs besides the slowest probe: PowerShell start-up, the local sections and
# the 2 s it keeps to write the document (docs/evidence.md, deadline_s).
SCRIPT_OVERHEAD_S = 5

TIMEOUTS_SPEC: dict[str, t.Any] = {
    'type': 'dict', 'default': {},
    'options': {name: {'type': 'int'} for name in DEFAULT_TIMEOUTS},
}
COMMON_SPEC: dict[str, t.Any] = {
    'evidence_dir': {'type': 'path'},
    'deadline': {'type': 'int', 'default': 40},
    'max_answer_mb': {'type': 'int', 'default': DEFAULT_MAX_ANSWER_MB},
}
NETWORK_SPEC: dict[str, t.Any] = {
    'region': {'type': 'str', 'default': 'nam', 'choices': sorted(REGION_UPDATE_SERVERS)},
    'update_server': {'type': 'str'},
    'context': {'type': 'str', 'default': 'system', 'choices': ['system', 'user']},
    'concurrent': {'type': 'bool', 'default': True},
    'timeouts': TIMEOUTS_SPEC,
    'revocation_hosts': {'type': 'list', 'elements': 'str'},
    'proxy_server': {'type': 'str'},
    'proxy_port': {'type': 'int'},
}


def quote_windows_argument(value: str, force: bool = False) -> str:
    """``value`` quoted so that CommandLineToArgvW reads it back unchanged.

    Microsoft's rules ("Parsing C++ command-line arguments"): 2n backslashes before a quote give n
    backslashes and the quote delimits; 2n+1 give n backslashes and a literal quote; other backslashes
    are literal. Tests read it back with the lab's ``command_line_to_argv``; ``force`` quotes even a plain word (used
    for arguments holding a placeholder).
    """
    value = str(value)
    if value and not force and not re.search(r'[ \t"]', value):
        return value
    out, backslashes = ['"'], 0
    for char in value:
        if char == '\\':
            backslashes += 1
            continue
        if char == '"':
            out.append('\\' * (backslashes * 2 + 1) + '"')
        else:
            out.append('\\' * backslashes + char)
        backslashes = 0
    out.append('\\' * (backslashes * 2) + '"')
    return ''.join(out)


def windows_command_line(argv: t.Iterable[str]) -> str:
    """argv joined as one Windows command line; an argument holding a ``{placeholder}`` is always quoted."""
    return ' '.join(quote_windows_argument(arg, force=bool(_PLACEHOLDER.search(str(arg)))) for arg in argv)


def check_placeholder_value(value: str) -> str:
    """What the endpoint script accepts for a placeholder (Assert-PlaceholderValue), else ValueError."""
    if not isinstance(value, str) or not _SAFE_PLACEHOLDER_VALUE.fullmatch(value) or value.endswith('\\'):
        raise ValueError('unsafe placeholder value %r' % (value,))
    return value


def fill_placeholders(arguments: str, values: dict[str, str]) -> str:
    """The command line the endpoint script runs: placeholders replaced by checked values (as the script does)."""
    for name, value in values.items():
        arguments = arguments.replace('{%s}' % name, check_placeholder_value(value))
    return arguments


def _command(argv: list[str], encoding: str) -> dict[str, str]:
    return {'arguments': windows_command_line(argv), 'encoding': encoding}


def windows_commands(server: str | None = None, curl_timeout: int = DEFAULT_TIMEOUTS['curl'],
                     capture_max_mb: int = 256) -> dict[str, dict[str, str]]:
    """Every command line the endpoint script may start, as request data (docs/endpoint-commands.md)."""
    capture = '{work_dir}\\capture.etl'
    commands = {
        'ampcli_posture': _command(['posture'], UTF8),
        'netsh_winhttp_proxy': _command(['winhttp', 'show', 'proxy'], OEM),
        'sfc_forceupdate': _command(['-forceupdate'], OEM),
        'sfc_log_start': _command(['-l', 'start'], OEM),
        'sfc_log_stop': _command(['-l', 'stop'], OEM),
        'pktmon_start': _command(['start', '--capture', '--pkt-size', '0', '--file-name', capture, '--file-size', str(int(capture_max_mb))], OEM),
        'pktmon_stop': _command(['stop'], OEM),
        # netsh's documented form is key="value": the same argv once CommandLineToArgvW has read it.
        'netsh_trace_start': {'arguments': ' '.join(['trace', 'start', 'capture=yes', 'tracefile=' + quote_windows_argument(capture, force=True),
                                                     'maxsize=%d' % int(capture_max_mb), 'overwrite=yes']), 'encoding': OEM},
        'netsh_trace_stop': _command(['trace', 'stop'], OEM),
        'ipsupporttool': _command(['-o', '{work_dir}'], OEM),
        'system_task': _command(['-NoProfile', '-NonInteractive', '-Command', SYSTEM_TASK_COMMAND], OEM),
    }
    if server:
        commands['curl'] = _command(['-v', '--max-time', str(int(curl_timeout)), 'https://%s/' % check_hostname(server, 'update_server')], UTF8)
    return commands


def check_hostname(value: t.Any, what: str) -> str:
    """The value when it is a valid DNS host name (whole value, RFC 1123), else ValueError naming the option."""
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
        raise ValueError('%s must be a DNS host name (letters, digits, hyphens and dots, at most 253 characters, '
                         'nothing before or after it), got %r' % (what, _shorten(value)))
    return value.rstrip('.').lower()


def check_path(value: t.Any, what: str) -> str:
    """A controller path option (evidence_dir, dest): 1-4096 characters, no NUL or control character, no
    white space at either end (a pasted newline or space is a mistake, not a folder name)."""
    if not isinstance(value, str) or not _CONTROLLER_PATH.fullmatch(value) or value != value.strip():
        raise ValueError('%s must be a path of 1 to 4096 characters without control characters (newline, NUL, ...) or '
                         'white space at either end, got %r' % (what, _shorten(value)))
    return value


def check_bounded(value: t.Any, what: str, bounds: tuple[int, int], unit: str = 'seconds') -> int:
    """An integer option inside its documented bounds (inclusive), else ValueError saying them."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError('%s must be a whole number of %s from %d to %d, got %r' % (what, unit, low, high, _shorten(value)))
    return value


def max_answer_bytes(args: dict[str, t.Any]) -> int:
    """The size cap on one endpoint answer, in bytes, from ``max_answer_mb`` (MAX_ANSWER_MB_BOUNDS; default 16)."""
    value = args.get('max_answer_mb')
    if value is None:
        value = DEFAULT_MAX_ANSWER_MB
    return check_bounded(value, 'max_answer_mb', MAX_ANSWER_MB_BOUNDS, 'MB') * 1024 * 1024


def _shorten(value: t.Any) -> t.Any:
    """A value for an error message: long strings cut (the message quotes it with repr, so control characters show)."""
    return value[:80] + '...' if isinstance(value, str) and len(value) > 80 else value


def update_server(args: dict[str, t.Any]) -> str:
    """The update server to probe: the user's choice, else the region's public TETRA host."""
    if args.get('update_server') is not None:
        return check_hostname(args['update_server'], 'update_server')
    return REGION_UPDATE_SERVERS[args.get('region') or 'nam']


def timeouts(args: dict[str, t.Any]) -> dict[str, int]:
    """The per-probe timeouts: defaults, overridden by the user's within TIMEOUT_BOUNDS."""
    chosen = {k: v for k, v in (args.get('timeouts') or {}).items() if v is not None}
    for name, value in chosen.items():
        if name not in DEFAULT_TIMEOUTS:
            raise ValueError('timeouts.%s is not a probe timeout (one of %s)' % (name, ', '.join(sorted(DEFAULT_TIMEOUTS))))
        check_bounded(value, 'timeouts.%s' % name, TIMEOUT_BOUNDS)
    return dict(DEFAULT_TIMEOUTS, **chosen)


def slowest_probe_s(chosen: dict[str, int]) -> tuple[int, str]:
    """(seconds, what) of the longest single network probe the script may wait for (docs/evidence.md)."""
    candidates = [
        (chosen['connect'] + chosen['tls'], 'TLS: connect %d s + handshake %d s' % (chosen['connect'], chosen['tls'])),
        (chosen['curl'] + 2, 'curl.exe: %d s + 2 s' % chosen['curl']),
        (chosen['dns'], 'DNS: %d s' % chosen['dns']),
        (chosen['http'], 'HTTP: %d s' % chosen['http']),
        (chosen['proxy'], 'proxy: %d s' % chosen['proxy']),
    ]
    return max(candidates, key=lambda item: item[0])


def deadline(args: dict[str, t.Any], sections: t.Sequence[str], chosen: dict[str, int]) -> int:
    """The call's budget: ``deadline`` within DEADLINE_BOUNDS and, when network probes run, long enough for the
    slowest of them (a shorter one would report a healthy host's probes as timed out)."""
    value = args.get('deadline')
    if value is None:
        value = 40
    check_bounded(value, 'deadline', DEADLINE_BOUNDS)
    if any(s in NETWORK_SECTIONS for s in sections):
        slowest, what = slowest_probe_s(chosen)
        if value < slowest + SCRIPT_OVERHEAD_S:
            needed = slowest + SCRIPT_OVERHEAD_S
            raise ValueError('deadline (%d s) must be at least %d s with these timeouts: the slowest probe (%s) needs %d s, plus %d s '
                             'for the script itself. Raise deadline or lower timeouts.' % (value, needed, what, slowest, SCRIPT_OVERHEAD_S))
    return value


def proxy(args: dict[str, t.Any]) -> dict[str, t.Any] | None:
    if args.get('proxy_server') is None:
        return None
    port = args.get('proxy_port')
    port = 80 if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError('proxy_port must be between 1 and 65535, got %r' % (port,))
    return {'server': check_hostname(args['proxy_server'], 'proxy_server'), 'port': port}


def revocation_hosts(args: dict[str, t.Any]) -> list[str]:
    hosts = args.get('revocation_hosts')
    if hosts is None:
        return list(REVOCATION_HOSTS)
    if not isinstance(hosts, (list, tuple)) or not 1 <= len(hosts) <= MAX_REVOCATION_HOSTS:
        raise ValueError('revocation_hosts must be a list of 1 to %d host names, got %r' % (MAX_REVOCATION_HOSTS, _shorten(hosts)))
    return [check_hostname(h, 'revocation_hosts') for h in hosts]


def build_request(action: str, sections: t.Iterable[str], args: dict[str, t.Any]) -> dict[str, t.Any]:
    """The request document for one call (docs/evidence.md); ValueError naming the option for any bad input."""
    sections = list(sections)
    if args.get('evidence_dir') is not None:
        check_path(args['evidence_dir'], 'evidence_dir')
    chosen = timeouts(args)
    request: dict[str, t.Any] = {
        'action': action,
        'sections': sections,
        'deadline_s': deadline(args, sections, chosen),
        'timeouts': chosen,
        'context': args.get('context') or 'user',
        'concurrent': args.get('concurrent', True),
    }
    if any(s in NETWORK_SECTIONS for s in sections):
        server = update_server(args)
        revocation = revocation_hosts(args)
        request.update({
            'update_server': server,
            'dns_names': [server] + revocation,
            'http_urls': ['http://%s/' % h for h in revocation],
            'probe_chain_urls': True,
            'root_thumbprints': sorted(REQUIRED_ROOTS),
            'proxy': proxy(args),
        })
    request['commands'] = windows_commands(request.get('update_server'), request['timeouts']['curl'],
                                           int(args.get('capture_max_mb') or 256))
    return request
