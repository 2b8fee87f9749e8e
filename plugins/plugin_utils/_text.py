# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Text from endpoints made safe: decoded whatever its encoding, passwords redacted, unprintables shown.

One place for each: the endpoint call, the evidence parsers, saved evidence and every report use these.
"""

from __future__ import annotations

import re
import typing as t

from ansible.module_utils.common.text.converters import to_text

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b'\xff\xfe\x00\x00', 'utf-32-le'),
    (b'\x00\x00\xfe\xff', 'utf-32-be'),
    (b'\xef\xbb\xbf', 'utf-8'),
    (b'\xff\xfe', 'utf-16-le'),
    (b'\xfe\xff', 'utf-16-be'),
)


def _nul_pattern(data: bytes) -> str | None:
    """UTF-16 without BOM: ASCII text shows NUL in every second byte."""
    sample = data[:512]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= len(odd) * 0.6 and even.count(0) < len(even) * 0.2:
        return 'utf-16-le'
    if even.count(0) >= len(even) * 0.6 and odd.count(0) < len(odd) * 0.2:
        return 'utf-16-be'
    return None


def _decode_bytes(data: bytes) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, errors='replace')
    nul_codec = _nul_pattern(data)
    if nul_codec:
        return data.decode(nul_codec, errors='replace')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return data.decode('cp1252', errors='replace')


def decode_text(data: bytes | str) -> str:
    """Text from whatever an endpoint printed or stored; never raises.

    UTF-8 with or without BOM, UTF-16 LE/BE (and UTF-32) with BOM, UTF-16 LE/BE without BOM (detected by
    its NUL pattern), cp1252 as the last resort. A leading BOM character in a str is removed too.
    """
    if data is None:
        return ''
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = _decode_bytes(bytes(data))
    elif isinstance(data, str):
        text = data
    else:
        text = str(data)
    if '\x00' in text and text.count('\x00') * 4 >= len(text):
        text = text.replace('\x00', '')
    return text.lstrip('\ufeff')


# --- secrets -------------------------------------------------------------------------------------
# One redaction for everything stored or printed: XML elements (<password>, <passwd>, <proxy_password>,
# <ProxyPassword>, <pass>, namespaced or not), attributes (password="..."), JSON ("password": "..."),
# any case, raw or escaped (\u003c, &lt;, \"), and text cut by quoting or truncation (a value without its
# closing tag or quote, or a quote that starts inside the value before a closing tag).
REDACTED = 'REDACTED'
_NAME = r'(?:[\w.-]+:)?(?:[\w.-]*?(?:password|passwd|passphrase|pwd)[\w.-]*|pass)'
_LT = r'(?:<|\\u003[cC]|&lt;|&#60;)'
_GT = r'(?:>|\\u003[eE]|&gt;|&#62;)'
_NOT_LT = r'(?:(?!<|\\u003[cC]|&lt;|&#60;)[^\x00])'
_SECRET_KEY = re.compile(r'^[\w.:-]*(?:password|passwd|passphrase|pwd)[\w.-]*$|^pass$', re.I)
_SECRET_PATTERNS = (
    # <password attr="x">value</password>, and <password>value cut before its closing tag
    (re.compile(r'(%s%s(?:\s[^<>]*?)?(?<!/)%s)(?:<!\[CDATA\[.*?(?:\]\]>|$)|%s+)' % (_LT, _NAME, _GT, _NOT_LT), re.I | re.S),
     r'\1' + REDACTED),
    # value</password> whose opening tag was cut off by the quote
    (re.compile(r'^((?:[^<>]*?%s)?)(%s+)(%s/%s%s)' % (_GT, _NOT_LT, _LT, _NAME, _GT), re.I | re.S), r'\1' + REDACTED + r'\3'),
    # password="value" / password='value' / password=\"value\" / password=value, quote possibly cut
    (re.compile(r'(?<![\w"\\])(%s\s*=\s*)(\\?["\'])(.*?)(\2|$)' % _NAME, re.I | re.S), r'\1\2' + REDACTED + r'\4'),
    (re.compile(r'(?<![\w"\\])(%s\s*=\s*)(?![\s"\'\\])([^\s<>&;,]+)' % _NAME, re.I), r'\1' + REDACTED),
    # "password": "value" (also \"password\": \"value\" inside a JSON string), value possibly cut
    (re.compile(r'((\\?")%s\2\s*:\s*)(\2)((?:\\.|(?!\2).)*?)(\2|$)' % _NAME, re.I | re.S), r'\1\3' + REDACTED + r'\5'),
    (re.compile(r'((\\?")%s\2\s*:\s*)(-?\d[\d.eE+-]*)' % _NAME, re.I), r'\1"%s"' % REDACTED),
)


# Characters a hostile endpoint could use against a terminal, a spreadsheet or a browser: C0/C1 controls
# (ESC starts terminal sequences), bidirectional overrides, zero-width marks, lone UTF-16 surrogates
# (they cannot be encoded, so they stop any UTF-8 writer). Tab and line feed stay.
_UNPRINTABLE = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]')


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return '\\x%02x' % code if code < 0x100 else '\\u%04x' % code


def printable(text: str) -> str:
    """``text`` safe for every output: CRLF -> LF; controls, escapes, bidi marks and lone surrogates as visible \\xNN/\\uNNNN."""
    if not isinstance(text, str):
        text = to_text(text, errors='surrogate_or_replace')
    return _UNPRINTABLE.sub(_escape_char, text.replace('\r\n', '\n'))


def redact_text(text: str) -> str:
    """``text`` with every password value replaced by REDACTED (element, attribute and JSON forms)."""
    if not text or not re.search(r'pass|pwd', text, re.I):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_value(value: t.Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (str, int, float)) and value != ''


def redact(value: t.Any) -> t.Any:
    """A copy of ``value`` (evidence, a result, a message) with every password redacted.

    Strings go through redact_text; in mappings a key that names a password has its value replaced.
    """
    if isinstance(value, dict):
        return {key: (REDACTED if isinstance(key, str) and _SECRET_KEY.match(key) and _is_secret_value(item)
                      else redact(item)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(decode_text(value))
    return value
