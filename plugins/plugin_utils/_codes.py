# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Error-code tables and the curl.exe -v parser: every number the diagnosis decides on, with its family.

Families are kept apart on purpose: a .NET exception HRESULT (``0x80131501`` is ``COR_E_SYSTEM``, the
HResult of ``AuthenticationException``) says which exception was thrown, not why; the reason is the
SSPI / CryptoAPI code (``native_error``, or the hex code curl prints) or the Win32 / Winsock / DNS code.
Decisions are made from these numbers, never from message text (localized on non-English Windows).
curl's own message texts (lib/strerror.c, lib/vtls/schannel.c) are English on every Windows and only
locate numbers (the host and port of a failed connect, the status of a CONNECT answer).
"""

from __future__ import annotations

import re
import typing as t

# ---------------------------------------------------------------- SSPI / CryptoAPI (schannel) codes

# unsigned value -> (name, class). Classes: revocation, untrusted_root, wrong_name, expired, revoked, protocol, other.
TLS_CODES: dict[int, tuple[str, str]] = {
    0x80092013: ('CRYPT_E_REVOCATION_OFFLINE', 'revocation'),
    0x80092012: ('CRYPT_E_NO_REVOCATION_CHECK', 'revocation'),
    0x80092010: ('CRYPT_E_REVOKED', 'revoked'),
    0x800B010C: ('CERT_E_REVOKED', 'revoked'),
    0x800B0109: ('CERT_E_UNTRUSTEDROOT', 'untrusted_root'),
    0x800B010A: ('CERT_E_CHAINING', 'untrusted_root'),
    0x800B0111: ('CERT_E_UNTRUSTEDTESTROOT', 'untrusted_root'),
    0x80090325: ('SEC_E_UNTRUSTED_ROOT', 'untrusted_root'),
    0x80090327: ('SEC_E_CERT_UNKNOWN', 'untrusted_root'),
    0x80096004: ('TRUST_E_CERT_SIGNATURE', 'untrusted_root'),
    0x800B010F: ('CERT_E_CN_NO_MATCH', 'wrong_name'),
    0x80090322: ('SEC_E_WRONG_PRINCIPAL', 'wrong_name'),
    0x800B0101: ('CERT_E_EXPIRED', 'expired'),
    0x80090328: ('SEC_E_CERT_EXPIRED', 'expired'),
    0x80090331: ('SEC_E_ALGORITHM_MISMATCH', 'protocol'),
    0x80090326: ('SEC_E_ILLEGAL_MESSAGE', 'protocol'),
    0x80090308: ('SEC_E_INVALID_TOKEN', 'protocol'),
    0x80090302: ('SEC_E_UNSUPPORTED_FUNCTION', 'protocol'),
    0x80090304: ('SEC_E_INTERNAL_ERROR', 'protocol'),
    0x80090350: ('SEC_E_DOWNGRADE_DETECTED', 'protocol'),
    0x80090317: ('SEC_E_CONTEXT_EXPIRED', 'protocol'),
    0x80090318: ('SEC_E_INCOMPLETE_MESSAGE', 'protocol'),
    0x8009030E: ('SEC_E_NO_CREDENTIALS', 'other'),
    0x8009030D: ('SEC_E_UNKNOWN_CREDENTIALS', 'other'),
}
TLS_NAMES = {name: code for code, (name, _cls) in TLS_CODES.items()}

# .NET exception HResults (the `hresult` of an evidence error): which exception, never why.
DOTNET_HRESULTS: dict[int, str] = {
    0x80131501: 'COR_E_SYSTEM',            # SystemException, AuthenticationException
    0x80131509: 'COR_E_INVALIDOPERATION',  # InvalidOperationException, WebException
    0x80131620: 'COR_E_IO',                # IOException
    0x80131505: 'COR_E_TIMEOUT',           # TimeoutException
    0x80131500: 'COR_E_EXCEPTION',
    0x80004005: 'E_FAIL',                  # SocketException, Win32Exception
    0x80070057: 'E_INVALIDARG',            # ArgumentException
    0x80004003: 'E_POINTER',               # NullReferenceException
}

# Win32 errors as HRESULT (0x8007xxxx) and WinHTTP codes worth naming.
WIN32_HRESULTS: dict[int, str] = {
    0x80070005: 'E_ACCESSDENIED',
    0x80070002: 'ERROR_FILE_NOT_FOUND',
    0x80070003: 'ERROR_PATH_NOT_FOUND',
    0x80070020: 'ERROR_SHARING_VIOLATION',
    0x80072EE2: 'ERROR_WINHTTP_TIMEOUT',
    0x80072EE7: 'ERROR_WINHTTP_NAME_NOT_RESOLVED',
    0x80072EFD: 'ERROR_WINHTTP_CANNOT_CONNECT',
    0x80072EFE: 'ERROR_WINHTTP_CONNECTION_ERROR',
    0x80072F8F: 'ERROR_WINHTTP_SECURE_FAILURE',
}

# Winsock error numbers (SocketException.ErrorCode).
SOCKET_ERRORS: dict[int, str] = {
    10013: 'WSAEACCES', 10049: 'WSAEADDRNOTAVAIL', 10050: 'WSAENETDOWN', 10051: 'WSAENETUNREACH',
    10053: 'WSAECONNABORTED', 10054: 'WSAECONNRESET', 10060: 'WSAETIMEDOUT', 10061: 'WSAECONNREFUSED',
    10064: 'WSAEHOSTDOWN', 10065: 'WSAEHOSTUNREACH',
    11001: 'WSAHOST_NOT_FOUND', 11002: 'WSATRY_AGAIN', 11003: 'WSANO_RECOVERY', 11004: 'WSANO_DATA',
}

# DNS client errors (Win32Exception.NativeErrorCode of Resolve-DnsName / DnsQuery), DNS_ERROR_* range and friends.
DNS_ERRORS: dict[int, str] = {
    9001: 'DNS_ERROR_RCODE_FORMAT_ERROR', 9002: 'DNS_ERROR_RCODE_SERVER_FAILURE', 9003: 'DNS_ERROR_RCODE_NAME_ERROR',
    9004: 'DNS_ERROR_RCODE_NOT_IMPLEMENTED', 9005: 'DNS_ERROR_RCODE_REFUSED', 9006: 'DNS_ERROR_RCODE_YXDOMAIN',
    9007: 'DNS_ERROR_RCODE_YXRRSET', 9008: 'DNS_ERROR_RCODE_NXRRSET', 9009: 'DNS_ERROR_RCODE_NOTAUTH',
    9010: 'DNS_ERROR_RCODE_NOTZONE', 9501: 'DNS_INFO_NO_RECORDS', 9502: 'DNS_ERROR_BAD_PACKET',
    9503: 'DNS_ERROR_NO_PACKET', 9504: 'DNS_ERROR_RCODE', 9505: 'DNS_ERROR_UNSECURE_PACKET',
    9560: 'DNS_ERROR_INVALID_NAME_CHAR', 9852: 'DNS_ERROR_NO_DNS_SERVERS', 1460: 'ERROR_TIMEOUT', 123: 'ERROR_INVALID_NAME',
}
DNS_CODE_NAMES = {name: code for code, name in list(DNS_ERRORS.items()) + list(SOCKET_ERRORS.items())}
# Codes that mean "the name does not resolve" when a DNS lookup reports them.
DNS_FAILURE_CODES = frozenset(DNS_ERRORS) | {11001, 11002, 11003, 11004}
# Socket codes of a connection cut after it was established.
RESET_CODES = frozenset((10053, 10054))
# WebException.Status names of a connection cut after it was established.
RESET_STATUSES = frozenset(('ConnectionClosed', 'ReceiveFailure', 'SendFailure', 'KeepAliveFailure'))

# ---------------------------------------------------------------- connector lasterror (local.xml //tetra/lasterror)


class Lasterror(t.NamedTuple):
    problem: str
    action: str
    cause: str | None  # the diagnosis cause it proves (_diagnosis.CATALOG), None for "no error"


# Cisco's published table (seed, TAC 214787), keyed by the unsigned value the connector writes (-2103 is
# 4294965193). The only copy: decode_lasterror, the diagnosis checks and LASTERROR_CAUSES read it, and unit
# tests hold docs/causes.md and the lab's scenarios to it.
LASTERROR_CODES: dict[int, Lasterror] = {
    0: Lasterror('no error', 'none', None),
    4294965193: Lasterror('cannot connect to the proxy', 'check network connectivity to the proxy', 'proxy_unreachable'),
    4294965196: Lasterror('cannot authenticate with the proxy', 'check the proxy credentials', 'proxy_auth_failed'),
    4294965187: Lasterror('proxy connection and download failure', 'check download problems in the proxy logs', 'proxy_download_failed'),
}


def lasterror_signed(unsigned: int) -> int:
    """A 32-bit lasterror as the signed number Cisco's documents print (4294965193 -> -2103)."""
    return unsigned - 0x100000000 if unsigned >= 0x80000000 else unsigned


def lasterror_of_cause(cause: str) -> int:
    """The unsigned lasterror that proves a cause (KeyError for a cause no code proves)."""
    return {entry.cause: code for code, entry in LASTERROR_CODES.items()}[cause]


# ---------------------------------------------------------------- curl exit codes (libcurl-errors, lib/strerror.c)

CURL_EXIT_CODES: dict[int, str] = {
    0: 'ok',
    1: 'unsupported protocol',
    2: 'failed initialization',
    3: 'URL malformed',
    5: 'could not resolve proxy',
    6: 'could not resolve host',
    7: 'failed to connect',
    8: 'weird server reply',
    16: 'HTTP/2 framing error',
    18: 'partial file',
    22: 'HTTP error status',
    23: 'write error',
    26: 'read error',
    27: 'out of memory',
    28: 'operation timed out',
    35: 'TLS handshake failed',
    43: 'bad function argument',
    47: 'too many redirects',
    52: 'empty reply from server',
    53: 'SSL engine not found',
    55: 'failure sending network data',
    56: 'failure receiving network data',
    58: 'problem with the local client certificate',
    59: 'could not use the specified cipher',
    60: 'peer certificate cannot be authenticated',
    61: 'unrecognized transfer encoding',
    77: 'problem reading the CA certificates',
    80: 'TLS shutdown failed',
    83: 'issuer check failed',
    90: 'pinned public key does not match',
    91: 'invalid certificate status',
    92: 'HTTP/2 stream error',
    97: 'proxy handshake error',
}

REVOCATION_OFFLINE_HEX = '0x80092013'

_HEX_CODE = re.compile(r'\b0x([0-9A-Fa-f]{8})\b')
_ERROR_NAME = re.compile(r'\b((?:CRYPT|CERT|SEC|TRUST)_[EI]_[A-Z0-9_]+)\b')
_CURL_SUMMARY = re.compile(r'^curl:\s*\((\d+)\)\s*(.*)$')
_CURL_STATUS = re.compile(r'^<\s*HTTP/[\d.]+\s+(\d{3})\b')
_CURL_CONNECTED = re.compile(r'^\*\s+Connected to\s+(\S+)\s+\(([^)]*)\)(?:\s+port\s+(\d+))?')
_CURL_TRYING = re.compile(r'^\*\s+Trying\s+\[?([0-9A-Fa-f:.]+)\]?:(\d+)')
# "Failed to connect to H port P after N ms: ..." (7.7x+, 8.x), "Failed to connect to H port P: ..." (older 7.x),
# "connect to IP port P failed: ..." (7.79+ per address).
_CURL_CONNECT_FAILED = re.compile(r'(?:Failed to connect to|connect to)\s+(\S+?)\s+port\s+(\d+)', re.IGNORECASE)
_CURL_RESOLVE = re.compile(r'Could(?: not|n\'t) resolve (host|proxy):\s*(\S+)', re.IGNORECASE)
_CURL_PROXY_ENV = re.compile(r'Uses proxy env variable \S+ == \'?(?:https?://)?([^\'/:\s]+)(?::(\d+))?', re.IGNORECASE)
_CURL_TUNNEL = re.compile(r'Establish HTTP proxy tunnel to (\S+?):(\d+)', re.IGNORECASE)
_CURL_CONNECT_REQUEST = re.compile(r'^>\s*CONNECT\s+(\S+?):(\d+)\s+HTTP', re.IGNORECASE)
# "CONNECT tunnel failed, response 407" (7.7x+, 8.x), "Received HTTP code 407 from proxy after CONNECT" (older 7.x),
# "Proxy CONNECT aborted" and "CONNECT phase completed" are status-less.
_CURL_TUNNEL_STATUS = re.compile(r'(?:CONNECT tunnel failed, response|Received HTTP code|Proxy replied)\s+(\d{3})', re.IGNORECASE)
_CURL_TIMEOUT_MS = re.compile(r'after (\d+) (?:ms|milliseconds)', re.IGNORECASE)
# curl's English Winsock texts (lib/strerror.c get_winsock_error) and schannel's "connection closed" lines.
_CURL_CUT = re.compile(r'Connection was reset|Connection was aborted|failed to receive handshake|server closed abruptly'
                       r'|Recv failure|Send failure', re.IGNORECASE)


def _int(value: t.Any) -> int | None:
    """An integer from an int, a whole float or a decimal / 0x-hex string; None for anything else (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip() if isinstance(value, str) else ''
    try:
        return int(text, 16) if text.lower().startswith(('0x', '-0x')) else int(text, 10)
    except ValueError:
        return None


def hresult_hex(value: t.Any) -> str:
    """A signed or unsigned int32 (or its decimal / hex string) as '0x80092013'; '' for anything else."""
    number = _int(value)
    if number is None or not -0x80000000 <= number <= 0xFFFFFFFF:
        return ''
    return '0x%08X' % (number & 0xFFFFFFFF)


def _unsigned(value: t.Any) -> int | None:
    text = hresult_hex(value)
    return int(text, 16) if text else None


def code_name(value: t.Any) -> str | None:
    """The symbolic name of a Windows HRESULT / SECURITY_STATUS (any family), when it is in a table."""
    number = _unsigned(value)
    if number is None:
        return None
    if number in TLS_CODES:
        return TLS_CODES[number][0]
    return WIN32_HRESULTS.get(number) or DOTNET_HRESULTS.get(number)


def code_family(value: t.Any) -> str | None:
    """'schannel/CryptoAPI', '.NET', 'Win32' or None (not in any table)."""
    number = _unsigned(value)
    if number in TLS_CODES:
        return 'schannel/CryptoAPI'
    if number in DOTNET_HRESULTS:
        return '.NET'
    if number in WIN32_HRESULTS or (number is not None and number & 0xFFFF0000 == 0x80070000):
        return 'Win32'
    return None


def tls_class(value: t.Any) -> str | None:
    """The class of an SSPI/CryptoAPI code (revocation, untrusted_root, ...); 'unknown' for a code in no table."""
    number = _unsigned(value)
    if number is None:
        return None
    if number in TLS_CODES:
        return TLS_CODES[number][1]
    return None if number in DOTNET_HRESULTS or number in WIN32_HRESULTS else 'unknown'


def win32_code(value: t.Any) -> int | None:
    """A Win32 / Winsock / DNS error number from a plain number or an HRESULT_FROM_WIN32 (0x8007xxxx)."""
    number = _int(value)
    if number is None:
        return None
    unsigned = number & 0xFFFFFFFF if -0x80000000 <= number <= 0xFFFFFFFF else None
    if unsigned is not None and unsigned & 0xFFFF0000 == 0x80070000:
        return unsigned & 0xFFFF
    return number if 0 < number < 0x10000 else None


def win32_name(code: int | None) -> str | None:
    if code is None:
        return None
    return SOCKET_ERRORS.get(code) or DNS_ERRORS.get(code)


def win32_label(code: int) -> str:
    if code in SOCKET_ERRORS:
        return '%d (Winsock %s)' % (code, SOCKET_ERRORS[code])
    if code in DNS_ERRORS:
        return '%d (DNS %s)' % (code, DNS_ERRORS[code])
    return '%d (Win32, not in the table)' % code


def code_label(value: t.Any) -> str:
    """'0x80092013 (schannel/CryptoAPI CRYPT_E_REVOCATION_OFFLINE)', '0x80131501 (.NET COR_E_SYSTEM)', ..."""
    hexed = hresult_hex(value)
    if not hexed:
        return str(value)
    family, name = code_family(hexed), code_name(hexed)
    if family and name:
        return '%s (%s %s)' % (hexed, family, name)
    if family == 'Win32' and win32_name(win32_code(hexed)):
        return '%s (Win32 %s)' % (hexed, win32_name(win32_code(hexed)))
    return '%s (not in the table)' % hexed


def dns_code(error: t.Any) -> int | None:
    """The DNS / Winsock error number of a DNS probe error, from any field: code, native_error, HRESULT or a symbolic status."""
    if not isinstance(error, dict):
        return None
    for key in ('code', 'native_error', 'hresult'):
        code = win32_code(error.get(key))
        if code is not None and (code in DNS_ERRORS or code in SOCKET_ERRORS):
            return code
    status = error.get('status')
    if isinstance(status, str):
        for word in re.findall(r'[A-Z][A-Z0-9_]+', status):
            if word in DNS_CODE_NAMES:
                return DNS_CODE_NAMES[word]
    code = _int(error.get('code'))
    return code if code is not None and code > 0 else None


# ---------------------------------------------------------------- curl.exe -v

def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _tls_code(lines: list[str]) -> tuple[str | None, str | None]:
    """(hex code, printed name) from schannel lines or the summary line: 'Unknown error (0x80092013)' (curl 7.x) or
    'CRYPT_E_REVOCATION_OFFLINE (0x80092013)' (8.x), or a bare name without its number."""
    for line in lines:
        if 'schannel' not in line.lower() and not line.startswith('curl:'):
            continue
        match = _HEX_CODE.search(line)
        printed = _ERROR_NAME.search(line)
        if match:
            return '0x' + match.group(1).upper(), printed.group(1) if printed else None
        if printed and printed.group(1) in TLS_NAMES:
            return '0x%08X' % TLS_NAMES[printed.group(1)], printed.group(1)
    return None, None


def _last(pattern: re.Pattern[str], lines: list[str], search: bool = False) -> re.Match[str] | None:
    for line in reversed(lines):
        match = pattern.search(line) if search else pattern.match(line)
        if match:
            return match
    return None


def _proxy_of(lines: list[str]) -> tuple[str | None, int | None]:
    env = _last(_CURL_PROXY_ENV, lines, search=True)
    if env:
        return env.group(1), int(env.group(2)) if env.group(2) else None
    return None, None


def _statuses(lines: list[str]) -> tuple[int | None, int | None]:
    """(CONNECT answer status, final HTTP status): a status line after a CONNECT request belongs to the proxy."""
    tunnel, final, in_connect = None, None, False
    for line in lines:
        if _CURL_CONNECT_REQUEST.match(line):
            in_connect = True
            continue
        match = _CURL_STATUS.match(line)
        if match:
            if in_connect:
                tunnel, in_connect = int(match.group(1)), False
            else:
                final = int(match.group(1))
    stated = _last(_CURL_TUNNEL_STATUS, lines, search=True)
    if stated:
        tunnel = int(stated.group(1))
    return tunnel, final


def parse_curl_text(text: str | None, exit_code: t.Any) -> dict[str, t.Any]:
    """Decoded ``curl.exe -v https://<server>/`` output (Windows, schannel), curl 7.x or 8.x -> codes and where it failed."""
    output = text
    lines = _lines(text) if text is not None else []
    summary = _last(_CURL_SUMMARY, lines)
    code = _int(exit_code)
    if code is None and summary:
        code = int(summary.group(1))
    connected = _last(_CURL_CONNECTED, lines)
    hexed, printed = _tls_code(lines)
    failed = _last(_CURL_CONNECT_FAILED, lines, search=True)
    resolve = _last(_CURL_RESOLVE, lines, search=True)
    proxy_host, proxy_port = _proxy_of(lines)
    tunnel_to = _last(_CURL_TUNNEL, lines, search=True) or _last(_CURL_CONNECT_REQUEST, lines)
    tunnel_status, http_status = _statuses(lines)
    trying = _last(_CURL_TRYING, lines)
    if proxy_host is None and tunnel_to is not None and connected is not None:
        proxy_host = connected.group(1)
        proxy_port = int(connected.group(3)) if connected.group(3) else None
    elapsed = _last(_CURL_TIMEOUT_MS, lines, search=True)
    cls = tls_class(hexed) if hexed else None
    return {
        'ran': output is not None or code is not None,
        'exit_code': code,
        'exit_meaning': CURL_EXIT_CODES.get(code) if code is not None else None,
        'exit_known': code in CURL_EXIT_CODES if code is not None else None,
        'http_status': http_status,
        'connected': connected is not None,
        'connected_host': connected.group(1) if connected else None,
        'connected_ip': connected.group(2) if connected else None,
        'connected_port': int(connected.group(3)) if connected and connected.group(3) else None,
        'tried': '%s:%s' % (trying.group(1), trying.group(2)) if trying else None,
        'connect_failed_host': failed.group(1) if failed else None,
        'connect_failed_port': int(failed.group(2)) if failed else None,
        'resolve_failed': (resolve.group(1).lower(), resolve.group(2).rstrip('.,')) if resolve else None,
        'proxy_host': proxy_host,
        'proxy_port': proxy_port,
        'tunnel_status': tunnel_status,
        'elapsed_ms': int(elapsed.group(1)) if elapsed else None,
        'cut': bool(_CURL_CUT.search('\n'.join(lines))),
        'schannel_error': hexed,
        'error_name': (code_name(hexed) or printed) if hexed else None,
        'tls_class': cls,
        'revocation_offline': hexed == REVOCATION_OFFLINE_HEX,
        'summary': summary.group(0) if summary else None,
    }
