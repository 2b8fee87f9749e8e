# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Evidence values as the endpoint sends them: coercion of loosely typed JSON (PowerShell 5.1's ConvertTo-Json),
the problem quote, Windows error codes and local.xml's lasterror. Part of the evidence parser (_evidence.py).
"""

from __future__ import annotations

import datetime
import json
import re
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import (
    DOTNET_HRESULTS, LASTERROR_CODES, TLS_CODES, WIN32_HRESULTS, _int, code_label, code_name, hresult_hex, lasterror_signed, win32_label,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import TIMESTAMP_FORMAT
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import redact_text

QUOTE_CHARS = 200

# ---------------------------------------------------------------- data tables

# Windows codes and curl exit codes live in _codes (one table per family); the names below are kept for callers.
WINDOWS_ERRORS: dict[int, str] = dict([(code, name) for code, (name, _cls) in TLS_CODES.items()]
                                      + list(WIN32_HRESULTS.items()) + list(DOTNET_HRESULTS.items()))

REVOCATION_CHAIN_FLAGS = frozenset(('OfflineRevocation', 'RevocationStatusUnknown'))

_TRUE_WORDS = frozenset(('1', 'true', 'yes', 'on', 'enabled', 'enable'))
_FALSE_WORDS = frozenset(('0', 'false', 'no', 'off', 'disabled', 'disable'))

_DEF_VERSION = re.compile(r'^\s*(?:[A-Za-z0-9]+\s*:\s*)?(\d+)\s*$')


class EvidenceError(ValueError):
    """The endpoint's answer is not a format-1 evidence document."""


# ---------------------------------------------------------------- small helpers

def _as_dict(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: t.Any) -> list[t.Any]:
    """PowerShell's ConvertTo-Json may unwrap one-element arrays: accept a scalar or dict as one item."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _dicts(value: t.Any) -> list[dict[str, t.Any]]:
    return [item for item in _as_list(value) if isinstance(item, dict)]


def _str(value: t.Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    text = str(value).strip()
    return text or None


def _bool(value: t.Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = (_str(value) or '').lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    return None


def _norm_key(key: t.Any) -> str:
    return str(key).lower().replace('_', '').replace('-', '')


def _quote(text: t.Any, limit: int = QUOTE_CHARS) -> str:
    """The first `limit` characters of what came back, secrets masked, for problem messages."""
    shown = redact_text(str(text)[:limit + 64])[:limit]
    return json.dumps(shown) + (' ...' if len(str(text)) > limit else '')


def _epoch_iso(value: t.Any) -> str | None:
    """Unix epoch seconds (or milliseconds) -> 'YYYY-MM-DDTHH:MM:SSZ'; 0 and garbage -> None."""
    number = _int(value)
    if not number or number < 0:
        return None
    if number > 100_000_000_000:
        number //= 1000
    try:
        moment = datetime.datetime.fromtimestamp(number, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime(TIMESTAMP_FORMAT)


def _def_version(value: t.Any) -> int | None:
    """A definition version: 90604, '90604' or 'x:90604'."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    match = _DEF_VERSION.match(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split('.'))


# ---------------------------------------------------------------- text and codes

def error_name(value: t.Any) -> str | None:
    """The symbolic name of a Windows error code (any form hresult_hex accepts), when it is in a table."""
    return code_name(value)


def _error_text(error: t.Any) -> str | None:
    """One line for an evidence `error` object: type, status, codes labelled by family (never the localized message).

    `hresult` is the .NET exception's HResult (which exception), `native_error` the Win32/SSPI code (why), `code` a
    Winsock or DNS error number.
    """
    if error is None:
        return None
    if not isinstance(error, dict):
        return _str(error) or 'error'
    parts = [_str(error.get('type')) or 'error']
    if _str(error.get('status')):
        parts.append('status %s' % _str(error.get('status')))
    code = _int(error.get('code'))
    if code is not None:
        parts.append('code %s' % win32_label(code))
    native = _int(error.get('native_error'))
    if native is not None:
        parts.append('native_error %s' % (win32_label(native) if 0 < native < 0x10000 else code_label(native)))
    if hresult_hex(error.get('hresult')):
        parts.append('HResult %s' % code_label(error.get('hresult')))
    return ', '.join(parts)


# ---------------------------------------------------------------- lasterror

def _lasterror_number(value: t.Any) -> tuple[int, int] | None:
    number = _int(value)
    if number is None or not -0x80000000 <= number <= 0xFFFFFFFF:
        return None
    unsigned = number & 0xFFFFFFFF
    return unsigned, lasterror_signed(unsigned)


def decode_lasterror(value: t.Any) -> dict[str, t.Any]:
    """local.xml ``//tetra/lasterror`` (signed or unsigned, int or string) -> its meaning from the seed's table."""
    numbers = _lasterror_number(value)
    if numbers is None:
        return {'unsigned': None, 'signed': None, 'hex': None, 'known': False,
                'problem': 'unparseable lasterror value %s' % _quote(value), 'action': 'report the raw value'}
    unsigned, signed = numbers
    known = LASTERROR_CODES.get(unsigned)
    problem, action = (known.problem, known.action) if known else (
        "unknown code %d (signed %d, %s): not in Cisco's published table" % (unsigned, signed, hresult_hex(unsigned)),
        'report the code (%d / %d) to Cisco TAC' % (unsigned, signed))
    return {'unsigned': unsigned, 'signed': signed, 'hex': hresult_hex(unsigned), 'known': known is not None,
            'problem': problem, 'action': action}
