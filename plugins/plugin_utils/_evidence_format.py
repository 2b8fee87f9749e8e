# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The evidence format's shape table (docs/evidence.md) and its validation.

``SHAPES`` maps every object of the format to its required and optional keys and their types; ``SECTIONS``
says where each requested section lives in the document. Used by the field self-test (_selftest.py) and by
the parser's type check (_shape.py).
"""

from __future__ import annotations

import datetime
import re
import typing as t


# ---------------------------------------------------------------- the shape table (docs/evidence.md)
#
# A type is 'str', 'int', 'bool', 'dict', 'any', 'stamp' (YYYY-MM-DDTHH:MM:SSZ, the document's own
# clock), 'date' (any ISO 8601 time with a zone), a shape name below, or 'list[<type>]'. A trailing
# '?' allows null. Optional keys may be absent; required keys must be present (with null if allowed).

_ERROR_KEYS = {'type': 'str', 'hresult': 'int'}
_ERROR_OPTIONAL = {'native_error': 'int?', 'status': 'str?', 'code': 'int?', 'message': 'str?'}

SHAPES: dict[str, dict[str, dict[str, str]]] = {
    'document': {
        'required': {'format': 'int', 'action': 'str', 'started': 'stamp', 'duration_ms': 'int', 'context': 'str',
                     'host': 'host', 'errors': 'list[section_error]'},
        'optional': {'system_task': 'any'},
    },
    'host': {
        'required': {'computer_name': 'str', 'os_caption': 'str?', 'os_build': 'str?', 'ps_version': 'str', 'culture': 'str?',
                     'user': 'str?', 'is_system': 'bool'},
        'optional': {},
    },
    'error': {'required': dict(_ERROR_KEYS), 'optional': dict(_ERROR_OPTIONAL)},
    'section_error': {'required': dict(_ERROR_KEYS, section='str'), 'optional': dict(_ERROR_OPTIONAL)},
    'install': {
        'required': {'install_dir': 'str?', 'version_dirs': 'list[str]', 'service': 'service?', 'display_version': 'str?',
                     'sfc': 'sfc?', 'reboot_pending': 'bool', 'isolated': 'bool'},
        'optional': {},
    },
    'service': {'required': {'name': 'str', 'image_path': 'str?', 'state': 'str?', 'start_type': 'str?'}, 'optional': {}},
    'sfc': {'required': {'path': 'str', 'company': 'str?', 'file_version': 'str?'}, 'optional': {}},
    'process': {
        'required': {'path': 'str', 'found': 'bool', 'exit_code': 'int?', 'stdout': 'str?', 'stderr': 'str?', 'timed_out': 'bool',
                     'duration_ms': 'int', 'error': 'error?'},
        'optional': {},
    },
    'files': {'required': {'local_xml': 'file', 'policy_xml': 'file'}, 'optional': {}},
    'file': {'required': {'path': 'str?', 'readable': 'bool', 'text': 'str?', 'error': 'error?'}, 'optional': {}},
    'system': {
        'required': {'winhttp_proxy': 'str?', 'curl_path': 'str?', 'dns_servers': 'list[str]', 'pac_url': 'str?'},
        'optional': {},
    },
    'probes': {'required': {}, 'optional': {}},  # its keys are the requested network sections (SECTIONS)
    'dns_probe': {
        'required': {'name': 'str', 'addresses': 'list[str]', 'duration_ms': 'int', 'timed_out': 'bool', 'error': 'error?'},
        'optional': {},
    },
    'tls_probe': {
        'required': {'host': 'str', 'port': 'int', 'connect': 'connect?', 'handshake': 'handshake?', 'policy_errors': 'str?',
                     'chain': 'list[certificate]', 'chain_status': 'list[str]'},
        'optional': {'chain_source': 'str?', 'duration_ms': 'int', 'timed_out': 'bool', 'error': 'error?'},
    },
    'connect': {
        'required': {'ok': 'bool', 'duration_ms': 'int', 'timed_out': 'bool', 'error': 'error?'},
        'optional': {'address': 'str?'},
    },
    'handshake': {
        'required': {'ok': 'bool', 'protocol': 'str?', 'duration_ms': 'int', 'timed_out': 'bool', 'error': 'error?'},
        'optional': {},
    },
    'certificate': {
        'required': {'subject': 'str', 'issuer': 'str', 'thumbprint': 'str', 'not_before': 'date', 'not_after': 'date',
                     'aia_text': 'str?', 'crl_text': 'str?'},
        'optional': {},
    },
    'curl_probe': {
        'required': {'path': 'str', 'found': 'bool', 'exit_code': 'int?', 'output': 'str?', 'timed_out': 'bool', 'duration_ms': 'int'},
        'optional': {'error': 'error?'},
    },
    'http_probe': {
        'required': {'url': 'str', 'status': 'int?', 'duration_ms': 'int', 'timed_out': 'bool', 'via_proxy': 'str?', 'error': 'error?'},
        'optional': {},
    },
    'root': {'required': {'thumbprint': 'str', 'present': 'bool', 'subject': 'str?'}, 'optional': {}},
    'proxy_probe': {
        'required': {'server': 'str', 'port': 'int', 'source': 'str?', 'connect': 'connect?', 'connect_status': 'int?',
                     'status_line': 'str?'},
        'optional': {},
    },
}

# A probe the script stopped waiting for (or never started) may carry only its identity, `timed_out`/`not_run` and `error`
# (issue 10: its identity must be there, so the controller can say which probe did not run).
PROBE_IDENTITY: dict[str, tuple[str, ...]] = {
    'dns_probe': ('name',), 'tls_probe': ('host', 'port'), 'curl_probe': ('path',), 'http_probe': ('url',),
    'proxy_probe': ('server', 'port'),
}

# Requested section -> (path in the document, type).
SECTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    'install': (('install',), 'install'),
    'posture': (('posture',), 'process'),
    'files': (('files',), 'files'),
    'system': (('system',), 'system'),
    'dns': (('probes', 'dns'), 'list[dns_probe]'),
    'tls': (('probes', 'tls'), 'tls_probe'),
    'curl': (('probes', 'curl'), 'curl_probe'),
    'http': (('probes', 'http'), 'list[http_probe]'),
    'roots': (('probes', 'roots'), 'list[root]'),
    'proxy': (('probes', 'proxy'), 'proxy_probe?'),
}

_STAMP = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$')
_ISO = re.compile(r'^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$')
_VERSION = re.compile(r'^\d+(?:\.\d+)+$')
_THUMBPRINT = re.compile(r'^[0-9A-Fa-f]{40}$')
_CHAIN_FLAG = re.compile(r'^[A-Za-z]+$')
# UTF-8 read as Windows-1252/Latin-1 ('Ã©' for 'é', 'â€™' for a right quote, 'Â ' for a no-break space).
_MOJIBAKE = re.compile('[\u00c2\u00c3][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014'
                       '\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]|\u00e2\u20ac')
_C1_CONTROL = re.compile('[\u0080-\u009f]')
_DETAIL_ITEMS = 4

SKIPPED = 'not checked: the shape is wrong'


# ---------------------------------------------------------------- shape validation

def _type_name(value: t.Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, float):
        return 'float'
    if isinstance(value, str):
        return 'str'
    if isinstance(value, list):
        return 'list'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def _short(value: t.Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def iso_time(value: t.Any) -> datetime.datetime | None:
    """An ISO 8601 date-time with a zone as an aware datetime, else None (7-digit .NET fractions accepted)."""
    match = _ISO.match(value) if isinstance(value, str) else None
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    zone = '+00:00' if zone == 'Z' else (zone if ':' in zone else zone[:3] + ':' + zone[3:])
    text = '%sT%s.%s%s' % (day, clock, (fraction or '0')[:6].ljust(6, '0'), zone)
    try:
        return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%f%z')
    except ValueError:
        return None


def validate(value: t.Any, kind: str, path: str, problems: list[tuple[str, str]], extras: list[str],
             shallow: t.Collection[str] = ()) -> None:
    """Append (kind, text) problems for `value` against type `kind`; unknown keys go to `extras`.

    Keys named in `shallow` (top level only) are checked for presence, not inside: they have rows of their own.
    """
    if kind.endswith('?'):
        if value is None:
            return
        kind = kind[:-1]
    if kind == 'any':
        return
    if kind.startswith('list[') and kind.endswith(']'):
        if not isinstance(value, list):
            problems.append(('type', '%s: expected a list, got %s %s' % (path, _type_name(value), _short(value))))
            return
        for index, item in enumerate(value):
            validate(item, kind[5:-1], '%s[%d]' % (path, index), problems, extras)
        return
    if kind in SHAPES:
        _validate_object(value, kind, path, problems, extras, shallow)
        return
    if kind in ('stamp', 'date'):
        if not isinstance(value, str):
            problems.append(('type', '%s: expected an ISO 8601 string, got %s %s' % (path, _type_name(value), _short(value))))
        elif kind == 'stamp' and not (_STAMP.match(value) and iso_time(value)):
            problems.append(('date', '%s: %s is not an ISO 8601 UTC time like 2026-11-28T02:30:00Z' % (path, _short(value))))
        elif iso_time(value) is None:
            problems.append(('date', '%s: %s is not an ISO 8601 date-time with a zone' % (path, _short(value))))
        return
    expected = {'str': 'str', 'int': 'int', 'bool': 'bool', 'dict': 'object'}[kind]
    if _type_name(value) != expected:
        problems.append(('type', '%s: expected %s, got %s %s' % (path, kind, _type_name(value), _short(value))))


def _validate_object(value: t.Any, shape: str, path: str, problems: list[tuple[str, str]], extras: list[str],
                     shallow: t.Collection[str] = ()) -> None:
    if not isinstance(value, dict):
        problems.append(('type', '%s: expected an object (%s), got %s %s' % (path, shape, _type_name(value), _short(value))))
        return
    rules = SHAPES[shape]
    required, optional = rules['required'], rules['optional']
    stopped = value.get('timed_out') is True or value.get('not_run') is True
    unfinished = shape in PROBE_IDENTITY and stopped and not set(required) - set(PROBE_IDENTITY[shape]) <= set(value)
    if unfinished:
        # A probe the script stopped waiting for: its identity, timed_out and error are what it must carry.
        required = {key: required[key] for key in PROBE_IDENTITY[shape]}
        optional = dict(SHAPES[shape]['required'], **optional)
        optional['error'] = 'error?'
        optional['not_run'] = 'bool'
        missing = [key for key in required if key not in value]
        if missing:
            problems.append(('identity', '%s: timed-out probe does not say what it probed (missing %s)' % (path, ', '.join(missing))))
            required = {}
    for key, kind in required.items():
        if key not in value:
            problems.append(('missing', '%s: required key %r is missing' % (path, key)))
        elif key not in shallow:
            validate(value[key], kind, '%s.%s' % (path, key), problems, extras)
    for key, kind in optional.items():
        if key in value and key not in required:
            validate(value[key], kind, '%s.%s' % (path, key), problems, extras)
    extras.extend('%s.%s' % (path, key) for key in value
                  if key not in required and key not in optional and key not in SHAPES[shape]['required'] and key not in shallow)
