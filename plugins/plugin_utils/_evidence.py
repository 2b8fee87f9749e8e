# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Turn one evidence document (docs/evidence.md, format 1) into typed facts.

Everything the endpoint script gathers arrives raw; every interpretation happens here. Parsers never
raise on bad input: what could not be read is reported in a ``problem`` string (per parser) and in the
``problems`` list of :func:`parse_evidence`. The only exception raised is :class:`EvidenceError`, when
the document itself is not a format-1 evidence object.

Decisions are made from numbers (exit codes, HRESULTs, status codes), never from message text, which is
localized on non-English Windows. The proxy password is never copied into any result.
"""

from __future__ import annotations

import datetime
import json
import re
import typing as t
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import (
    DOTNET_HRESULTS, RESET_CODES, RESET_STATUSES, REVOCATION_OFFLINE_HEX, SOCKET_ERRORS, TLS_CODES, WIN32_HRESULTS,
    code_label, code_name, dns_code, hresult_hex, parse_curl_text, tls_class, win32_label, win32_name,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._shape import shape_problems
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text, redact_text

try:
    import xmltodict
except ImportError as _exc:  # a controller without it gets a clear `problem` from every XML parser
    xmltodict = None
    XMLTODICT_IMPORT_ERROR: str | None = str(_exc)
else:
    XMLTODICT_IMPORT_ERROR = None

EVIDENCE_FORMAT = 1
QUOTE_CHARS = 200
DEBUG_LOG_LEVEL = 549755813887

# ---------------------------------------------------------------- data tables

# local.xml //tetra/lasterror, keyed by the unsigned value (seed, TAC 214787).
LASTERROR_CODES: dict[int, tuple[str, str]] = {
    0: ('no error', 'none'),
    4294965193: ('cannot connect to the proxy', 'check network connectivity to the proxy'),
    4294965196: ('cannot authenticate with the proxy', 'check the proxy credentials'),
    4294965187: ('proxy connection and download failure', 'check download problems in the proxy logs'),
}

# Windows codes and curl exit codes live in _codes (one table per family); the names below are kept for callers.
WINDOWS_ERRORS: dict[int, str] = dict([(code, name) for code, (name, _cls) in TLS_CODES.items()]
                                      + list(WIN32_HRESULTS.items()) + list(DOTNET_HRESULTS.items()))

REVOCATION_CHAIN_FLAGS = frozenset(('OfflineRevocation', 'RevocationStatusUnknown'))

# Byte-order marks, longest first (UTF-32 LE starts with the UTF-16 LE mark).
_TRUE_WORDS = frozenset(('1', 'true', 'yes', 'on', 'enabled', 'enable'))
_FALSE_WORDS = frozenset(('0', 'false', 'no', 'off', 'disabled', 'disable'))

# Posture: keys that may hold the engine list, and keys inside one engine entry (compared normalized:
# lowercase without '_' and '-').
_ENGINE_CONTAINER_KEYS = ('engines', 'engine', 'enginedefinitions', 'definitions', 'defs', 'avengines', 'engineversions')
_ENGINE_NAME_KEYS = ('name', 'engine', 'enginename', 'type', 'id', 'detectionengine')
_ENGINE_VERSION_KEYS = ('definitionversion', 'defversion', 'definitionsversion', 'version', 'dailyversion', 'defversions', 'value')
_POSTURE_SALVAGE = {
    'agent_uuid': re.compile(r'"agent_uuid"\s*:\s*"([^"]*)"'),
    'connected': re.compile(r'"connected"\s*:\s*(true|false)'),
    'connector_version': re.compile(r'"connector_version"\s*:\s*"([^"]*)"'),
}

# policy.xml / local.xml proxy element -> result key; `password` is deliberately absent.
_PROXY_FIELDS = {
    'server': 'server', 'port': 'port', 'type': 'type', 'authtype': 'auth_type', 'auth_type': 'auth_type',
    'username': 'username', 'user': 'username', 'pacloc': 'pac_url', 'pac_url': 'pac_url', 'pacurl': 'pac_url',
}

_DEF_VERSION = re.compile(r'^\s*(?:[A-Za-z0-9]+\s*:\s*)?(\d+)\s*$')
_VERSION_DIR = re.compile(r'^\d+(?:\.\d+)+$')
_URL = re.compile(r'URL=(\S+)')
_AIA_OCSP_OID = '1.3.6.1.5.5.7.48.1'
_AIA_CA_ISSUERS_OID = '1.3.6.1.5.5.7.48.2'


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


def _int(value: t.Any) -> int | None:
    """An integer from an int or a decimal / 0x-hex string; None for anything else (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = _str(value)
    if text is None:
        return None
    try:
        return int(text, 16) if text.lower().startswith(('0x', '-0x')) else int(text, 10)
    except ValueError:
        return None


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
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


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
    signed = unsigned - 0x100000000 if unsigned >= 0x80000000 else unsigned
    return unsigned, signed


def decode_lasterror(value: t.Any) -> dict[str, t.Any]:
    """local.xml ``//tetra/lasterror`` (signed or unsigned, int or string) -> its meaning from the seed's table."""
    numbers = _lasterror_number(value)
    if numbers is None:
        return {'unsigned': None, 'signed': None, 'hex': None, 'known': False,
                'problem': 'unparseable lasterror value %s' % _quote(value), 'action': 'report the raw value'}
    unsigned, signed = numbers
    known = LASTERROR_CODES.get(unsigned)
    problem, action = known or ("unknown code %d (signed %d, %s): not in Cisco's published table" % (unsigned, signed, hresult_hex(unsigned)),
                                'report the code (%d / %d) to Cisco TAC' % (unsigned, signed))
    return {'unsigned': unsigned, 'signed': signed, 'hex': hresult_hex(unsigned), 'known': known is not None,
            'problem': problem, 'action': action}


# ---------------------------------------------------------------- AmpCLI posture

def _find_engine_container(obj: t.Any, depth: int = 0) -> t.Any:
    """The value of the first key that names an engine list (top level first, then nested objects)."""
    if not isinstance(obj, dict) or depth > 3:
        return None
    for key, value in obj.items():
        if _norm_key(key) in _ENGINE_CONTAINER_KEYS or _norm_key(key).startswith('engine'):
            if isinstance(value, (list, dict)) and value:
                return value
    for value in obj.values():
        found = _find_engine_container(value, depth + 1)
        if found is not None:
            return found
    return None


def _pick(entry: dict[str, t.Any], keys: tuple[str, ...]) -> t.Any:
    normalized = {_norm_key(key): value for key, value in entry.items()}
    for key in keys:
        if normalized.get(key) is not None:
            return normalized[key]
    return None


def _engine_items(container: t.Any) -> list[tuple[str, t.Any]]:
    """(name, version value) pairs from a list of objects or an object keyed by engine name."""
    if isinstance(container, dict):
        container = [dict(value, name=key) if isinstance(value, dict) else {'name': key, 'version': value}
                     for key, value in container.items()]
    items = []
    for entry in _dicts(container):
        name = _str(_pick(entry, _ENGINE_NAME_KEYS))
        if name:
            items.append((name, _pick(entry, _ENGINE_VERSION_KEYS)))
    return items


def _engines(container: t.Any) -> dict[str, dict[str, t.Any]]:
    engines: dict[str, dict[str, t.Any]] = {}
    for name, raw in _engine_items(container):
        engines.setdefault(name.lower(), {'version': _def_version(raw), 'raw': raw})
    return engines


def _tetra_entry(engines: dict[str, dict[str, t.Any]]) -> dict[str, t.Any] | None:
    if 'tetra' in engines:
        return engines['tetra']
    return next((value for key, value in engines.items() if 'tetra' in key), None)


def _posture_result(raw: str) -> dict[str, t.Any]:
    return {'available': False, 'agent_uuid': None, 'connected': None, 'connector_version': None, 'engines': {},
            'tetra_version': None, 'problem': None, 'raw': raw}


def _salvage_posture(result: dict[str, t.Any], text: str) -> dict[str, t.Any]:
    for key, pattern in _POSTURE_SALVAGE.items():
        match = pattern.search(text)
        if match:
            result[key] = _bool(match.group(1)) if key == 'connected' else match.group(1)
    start = text.find('{')
    at_line_start = start >= 0 and (start == 0 or text[start - 1] in '\r\n')
    how = 'truncated' if at_line_start and not text.rstrip().endswith('}') else 'not valid JSON'
    result['problem'] = 'posture output is %s: %s' % (how, _quote(text[start if at_line_start else 0:].strip()))
    return result


def _posture_from_object(result: dict[str, t.Any], data: dict[str, t.Any]) -> dict[str, t.Any]:
    result['available'] = True
    result['agent_uuid'] = _str(data.get('agent_uuid'))
    result['connected'] = _bool(data.get('connected'))
    result['connector_version'] = _str(data.get('connector_version'))
    result['engines'] = _engines(_find_engine_container(data))
    tetra = _tetra_entry(result['engines'])
    result['tetra_version'] = tetra['version'] if tetra else None
    if not result['engines']:
        result['problem'] = 'no engine list in posture output'
    elif tetra is None:
        result['problem'] = 'no TETRA engine in posture output (engines: %s)' % ', '.join(sorted(result['engines']))
    elif tetra['version'] is None:
        result['problem'] = 'TETRA definition version is not a number: %s' % _quote(tetra['raw'])
    return result


_POSTURE_KEYS = frozenset(('agent_uuid', 'connected', 'connector_version'))


def _load_json(text: str) -> tuple[t.Any, bool]:
    """(value, True) for a JSON document, also after a prompt or banner (braces included) or before trailing text.

    Every '{' is a candidate start, decoded by json's own decoder: the first object with a posture key wins, else
    the first object, else (None, False).
    """
    try:
        return json.loads(text), True
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    first = None
    for match in re.finditer(r'[{\[]', text):
        try:
            value = decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
        if isinstance(value, dict) and _POSTURE_KEYS & set(value):
            return value, True
        if first is None and isinstance(value, dict) and value:
            first = value
    return (first, True) if first is not None else (None, False)


def parse_posture(stdout: str | None) -> dict[str, t.Any]:
    """``AmpCLI.exe posture`` stdout -> agent UUID, connected, connector version, engines and TETRA version."""
    text = decode_text(stdout) if stdout is not None else None
    result = _posture_result(text if text is not None else '')
    if text is None or not text.strip():
        result['problem'] = 'no posture output' if text is None else 'empty posture output'
        return result
    data, ok = _load_json(text)
    if not ok:
        return _salvage_posture(result, text)
    if not isinstance(data, dict):
        result['problem'] = 'posture output is not a JSON object: %s' % _quote(text.strip())
        return result
    return _posture_from_object(result, data)


# ---------------------------------------------------------------- XML helpers

def _strip_ns(node: t.Any) -> t.Any:
    """xmltodict output with namespaces removed from element and attribute names, xmlns attributes dropped."""
    if isinstance(node, list):
        return [_strip_ns(item) for item in node]
    if not isinstance(node, dict):
        return node
    clean: dict[str, t.Any] = {}
    for key, value in node.items():
        if key == '@xmlns' or key.startswith('@xmlns:'):
            continue
        prefix = '@' if key.startswith('@') else ''
        name = prefix + key.lstrip('@').rsplit('|', 1)[-1]
        clean.setdefault(name, _strip_ns(value))
    return clean


def _parse_xml(text: t.Any, what: str) -> tuple[dict[str, t.Any] | None, str | None]:
    """(tree without namespaces, None) or (None, problem)."""
    if text is None:
        return None, '%s text missing' % what
    if xmltodict is None:
        return None, 'cannot parse %s: the Python library xmltodict is not installed on the controller (%s)' % (what, XMLTODICT_IMPORT_ERROR)
    decoded = decode_text(text).strip()
    if not decoded:
        return None, '%s is empty' % what
    try:
        tree = xmltodict.parse(decoded, process_namespaces=True, namespace_separator='|')
    except (ExpatError, ValueError, TypeError) as exc:
        return None, '%s is not well-formed XML (%s, truncated?): %s' % (what, exc, _quote(decoded))
    return _strip_ns(tree), None


def _node(tree: t.Any, *path: str) -> t.Any:
    """Walk element names; a repeated element counts as its first occurrence."""
    node = tree
    for name in path:
        if isinstance(node, list):
            node = node[0] if node else None
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node[0] if isinstance(node, list) and node else node


def _text(node: t.Any) -> str | None:
    if isinstance(node, list):
        node = node[0] if node else None
    if isinstance(node, dict):
        node = node.get('#text')
    return _str(node)


def _find_all(tree: t.Any, name: str) -> list[t.Any]:
    """Every element called `name` anywhere in the tree (document order)."""
    found: list[t.Any] = []
    stack = [tree]
    while stack:
        node = stack.pop(0)
        if isinstance(node, list):
            stack[0:0] = node
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == name:
                    found.extend(_as_list(value))
                if not key.startswith(('@', '#')):
                    stack.append(value)
    return found


def _proxy(section: t.Any) -> dict[str, t.Any] | None:
    """Proxy settings without the password; None when neither a server nor a PAC URL is set."""
    if not isinstance(section, dict):
        return None
    proxy: dict[str, t.Any] = {'server': None, 'port': None, 'type': None, 'auth_type': None, 'username': None, 'pac_url': None}
    for element, key in _PROXY_FIELDS.items():
        value = _text(section.get(element))
        if value is not None and proxy[key] is None:
            proxy[key] = value
    proxy['port'] = _int(proxy['port'])
    return proxy if proxy['server'] or proxy['pac_url'] else None


# ---------------------------------------------------------------- local.xml

def _local_result() -> dict[str, t.Any]:
    return {'available': False, 'tetra_version': None, 'version_source': None, 'last_update': None, 'last_success': None,
            'last_check': None, 'lasterror': None, 'proxy': None, 'agent_uuid': None, 'policy_uuid': None, 'problem': None}


def _stats_definition_version(value: t.Any) -> tuple[int | None, str | None]:
    """engine/stats/definitions JSON -> (version, problem); the TETRA entry if named, else the first."""
    text = _text(value)
    if text is None:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        return None, 'engine/stats/definitions is not JSON: %s' % _quote(text)
    entries = _dicts(_as_dict(data).get('engineDefinitions'))
    named = [entry for entry in entries if 'tetra' in json.dumps(_pick(entry, _ENGINE_NAME_KEYS) or '').lower()]
    entry = (named or entries or [{}])[0]
    version = _def_version(entry.get('defVersion'))
    return version, None if version is not None else 'no defVersion in engine/stats/definitions: %s' % _quote(text)


def _local_version(tetra: t.Any, stats: t.Any) -> tuple[int | None, str | None, list[str]]:
    version, problem = _stats_definition_version(_node(stats, 'definitions'))
    if version is not None:
        return version, 'stats_definitions', []
    problems = [problem] if problem else []
    raw = _text(_node(tetra, 'defversions'))
    version = _def_version(raw) if raw else None
    if version is not None:
        return version, 'defversions', problems
    if raw:
        problems.append('agent/engine/tetra/defversions is not x:NNNNN: %s' % _quote(raw))
    problems.append('no TETRA definition version in local.xml')
    return None, None, problems


def _lasterror_node(tree: t.Any) -> t.Any:
    for tetra in _find_all(tree, 'tetra'):
        value = _node(tetra, 'lasterror')
        if value is not None:
            return value
    return None


def parse_local_xml(text: str | None) -> dict[str, t.Any]:
    """local.xml -> TETRA version (both layouts), update times, lasterror, proxy, agent and policy UUIDs."""
    result = _local_result()
    tree, problem = _parse_xml(text, 'local.xml')
    config = _node(tree, 'config')
    if not isinstance(config, dict):
        result['problem'] = problem or 'local.xml has no <config> root element (root: %s)' % ', '.join(_as_dict(tree))
        return result
    tetra = _node(config, 'agent', 'engine', 'tetra')
    version, source, problems = _local_version(tetra, _node(config, 'agent', 'engine', 'stats'))
    lasterror = _text(_lasterror_node(config))
    result.update({
        'available': True, 'tetra_version': version, 'version_source': source,
        'last_update': _epoch_iso(_text(_node(tetra, 'lastupdate'))),
        'last_success': _epoch_iso(_text(_node(tetra, 'lastsuccesstime'))),
        'last_check': _epoch_iso(_text(_node(tetra, 'lastupdatechecked'))),
        'lasterror': decode_lasterror(lasterror) if lasterror is not None else None,
        'proxy': _proxy(_node(config, 'proxy')),
        'agent_uuid': _text(_node(config, 'agent', 'uuid')),
        'policy_uuid': _text(_node(config, 'janus', 'policy', 'uuid')),
        'problem': '; '.join(problems) or None,
    })
    return result


# ---------------------------------------------------------------- policy.xml

def _policy_result() -> dict[str, t.Any]:
    return {'readable': False, 'tetra_enabled': None, 'updater_enabled': None, 'update_server': None, 'interval': None,
            'proxy': None, 'crl_check': None, 'policy_uuid': None, 'policy_name': None, 'log_level': None,
            'debug_logging': False, 'problem': None}


def _policy_config(tree: t.Any) -> t.Any:
    """Signature/Object/config (xmldsig), tolerating a bare <config> root and several <Object> elements."""
    for obj in _as_list(_as_dict(_node(tree, 'Signature')).get('Object')):
        if isinstance(_node(obj, 'config'), dict):
            return _node(obj, 'config')
    return _node(tree, 'config')


def parse_policy_xml(text: str | None) -> dict[str, t.Any]:
    """policy.xml (xmldsig namespace) -> TETRA and updater settings, proxy without password, policy identity."""
    result = _policy_result()
    tree, problem = _parse_xml(text, 'policy.xml')
    config = _policy_config(tree)
    if not isinstance(config, dict):
        result['problem'] = problem or 'policy.xml has no Signature/Object/config element'
        return result
    tetra = _node(config, 'agent', 'scansettings', 'tetra')
    log_level = _int(_text(_node(config, 'agent', 'log', 'level')))
    result.update({
        'readable': True,
        'tetra_enabled': _bool(_text(_node(tetra, 'enable'))),
        'updater_enabled': _bool(_text(_node(tetra, 'updater', 'enable'))),
        'update_server': _text(_node(tetra, 'updater', 'server')),
        'interval': _int(_text(_node(tetra, 'updater', 'interval'))),
        'proxy': _proxy(_node(config, 'proxy')),
        'crl_check': _bool(_text(_node(config, 'conn', 'ssl', 'crlc'))),
        'policy_uuid': _text(_node(config, 'janus', 'policy', 'uuid')),
        'policy_name': _text(_node(config, 'janus', 'policy', 'name')),
        'log_level': log_level,
        'debug_logging': log_level == DEBUG_LOG_LEVEL,
        'problem': None if tetra is not None else 'no agent/scansettings/tetra section in policy.xml',
    })
    return result


# ---------------------------------------------------------------- curl.exe -v

def parse_curl(output: t.Any, exit_code: t.Any) -> dict[str, t.Any]:
    """``curl.exe -v https://<server>/`` output (any encoding) -> exit code, where it failed, schannel code (_codes)."""
    return parse_curl_text(decode_text(output) if output is not None else None, exit_code)


# ---------------------------------------------------------------- evidence document

def check_evidence_document(obj: t.Any) -> dict[str, t.Any]:
    """Return `obj` when it is a format-1 evidence object, else raise EvidenceError saying what came back.

    Field types are checked by :func:`parse_evidence` (``facts['invalid']``), so that a wrong-typed document
    still yields its facts for the modules and the self-test while the diagnosis answers ``evidence_invalid``.
    """
    if not isinstance(obj, dict):
        raise EvidenceError('evidence is not a JSON object: got %s %s' % (type(obj).__name__, _quote(repr(obj))))
    fmt = obj.get('format')
    if isinstance(fmt, bool) or fmt != EVIDENCE_FORMAT:
        raise EvidenceError('evidence format is %s, expected %d (keys: %s)' % (repr(fmt)[:40], EVIDENCE_FORMAT, _quote(', '.join(map(str, obj)))))
    return obj


def invalid_fields(doc: dict[str, t.Any]) -> str | None:
    """'evidence has fields of the wrong type: install: expected an object, got list [1]' or None (issue 12 item 3).

    Any value may be null (what could not be obtained) and unknown keys are accepted; a known field of another
    type makes the document evidence_invalid, never a confident verdict.
    """
    wrong = shape_problems(doc)
    if not wrong:
        return None
    return 'evidence has fields of the wrong type: %s%s' % ('; '.join(wrong[:3]), ' (and %d more)' % (len(wrong) - 3) if len(wrong) > 3 else '')


_HOST_KEYS = ('computer_name', 'os_caption', 'os_build', 'ps_version', 'culture', 'user')


def _host(doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
    if 'host' not in doc:
        return None
    host = _as_dict(doc.get('host'))
    facts: dict[str, t.Any] = {key: _str(host.get(key)) for key in _HOST_KEYS}
    facts['is_system'] = _bool(host.get('is_system'))
    return facts


def _version_dirs(install: dict[str, t.Any]) -> list[str]:
    return [name for name in (_str(item) for item in _as_list(install.get('version_dirs'))) if name]


def _active_version(service: dict[str, t.Any], version_dirs: list[str]) -> str | None:
    image = (_str(service.get('image_path')) or '').strip('" ')
    folder = re.split(r'[\\/]', image)[-2] if re.search(r'[\\/]', image) else ''
    if _VERSION_DIR.match(folder):
        return folder
    candidates = sorted((name for name in version_dirs if _VERSION_DIR.match(name)), key=_version_key)
    return candidates[-1] if candidates else None


def _service(raw: t.Any) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        return None
    return {'name': _str(raw.get('name')), 'state': _str(raw.get('state')), 'start_type': _str(raw.get('start_type')),
            'image_path': _str(raw.get('image_path'))}


def _install(doc: dict[str, t.Any], posture: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    if 'install' not in doc:
        return None
    if not isinstance(doc.get('install'), dict):
        return None
    install = doc['install']
    version_dirs = _version_dirs(install)
    service = _service(install.get('service'))
    active = _active_version(_as_dict(install.get('service')), version_dirs)
    sfc = install.get('sfc') if isinstance(install.get('sfc'), dict) else None
    company = _str(_as_dict(sfc).get('company'))
    state = (service or {}).get('state')
    return {
        'install_dir': _str(install.get('install_dir')),
        'version_dirs': version_dirs,
        'active_version': active,
        'connector_version': _str(install.get('display_version')) or active or (posture or {}).get('connector_version'),
        'service': service,
        'service_running': state.lower() == 'running' if state else None,
        'sfc_path': _str(_as_dict(sfc).get('path')),
        'sfc_version': _str(_as_dict(sfc).get('file_version')),
        'sfc_is_cisco': 'cisco' in company.lower() if company else None,
        'reboot_pending': _bool(install.get('reboot_pending')),
        'isolated': _bool(install.get('isolated')),
    }


def _installed(install: dict[str, t.Any] | None) -> bool | None:
    if install is None:
        return None
    return bool(install['install_dir'] or install['service'] or install['version_dirs'])


def _posture(doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
    if 'posture' not in doc:
        return None
    raw = _as_dict(doc.get('posture'))
    facts = parse_posture(raw.get('stdout') if isinstance(raw.get('stdout'), (str, bytes)) else None)
    facts.update({'path': _str(raw.get('path')), 'found': _bool(raw.get('found')), 'exit_code': _int(raw.get('exit_code')),
                  'timed_out': bool(_bool(raw.get('timed_out'))), 'duration_ms': _int(raw.get('duration_ms'))})
    reasons = (
        (facts['found'] is False, 'AmpCLI.exe not found at %s' % facts['path']),
        (facts['timed_out'], 'AmpCLI.exe posture timed out'),
        (raw.get('error') is not None, 'AmpCLI.exe could not be run: %s' % _error_text(raw.get('error'))),
        (facts['exit_code'] not in (0, None), 'AmpCLI.exe posture exited with %s' % facts['exit_code']),
    )
    first = next((text for hit, text in reasons if hit), None)
    if first and not facts['available']:
        facts['problem'] = first
    elif first:
        facts['problem'] = '; '.join(filter(None, (first, facts['problem'])))
    return facts


def _file(doc: dict[str, t.Any], key: str, parser: t.Callable[[t.Any], dict[str, t.Any]], flag: str) -> dict[str, t.Any] | None:
    files = doc.get('files')
    if 'files' not in doc:
        return None
    raw = _as_dict(_as_dict(files).get(key))
    error = _as_dict(raw.get('error')) if raw.get('error') is not None else None
    text = raw.get('text') if isinstance(raw.get('text'), (str, bytes)) else None
    readable = _bool(raw.get('readable')) is not False and text is not None
    facts = parser(text if readable else None)
    hresult = _int((error or {}).get('hresult'))
    facts.update({'path': _str(raw.get('path')), 'file_readable': readable,
                  'error': {'type': _str(error.get('type')), 'hresult': hresult, 'hex': hresult_hex(hresult) or None,
                            'name': error_name(hresult) if hresult is not None else None} if error else None})
    if not readable:
        facts[flag] = False
        facts['problem'] = 'not readable: %s' % (_error_text(error) if error else 'no file or no text')
    return facts


def _tetra_version(posture: dict[str, t.Any] | None, local: dict[str, t.Any] | None) -> tuple[int | None, str | None]:
    for source, facts in (('posture', posture), ('local_xml', local)):
        if facts and facts.get('tetra_version') is not None:
            return facts['tetra_version'], source
    return None, None


# ---------------------------------------------------------------- probes

def _not_run(probe: dict[str, t.Any]) -> bool:
    """The probe never ran (queued past the deadline, or its LocalSystem task did not finish): no outcome to judge."""
    return bool(_bool(probe.get('not_run')))


def _dns(raw: t.Any) -> list[dict[str, t.Any]]:
    entries = []
    for probe in _dicts(raw):
        error = probe.get('error')
        addresses = [addr for addr in (_str(item) for item in _as_list(probe.get('addresses'))) if addr]
        timed_out = bool(_bool(probe.get('timed_out')))
        not_run = _not_run(probe)
        code = dns_code(error)
        entries.append({'name': _str(probe.get('name')), 'ok': None if not_run else bool(addresses) and not timed_out and error is None,
                        'addresses': addresses, 'error_code': code, 'error_name': win32_name(code),
                        'error': _error_text(error), 'timed_out': timed_out, 'not_run': not_run, 'duration_ms': _int(probe.get('duration_ms'))})
    return entries


def _urls(texts: t.Iterable[t.Any]) -> list[str]:
    found: list[str] = []
    for text in texts:
        for url in _URL.findall(_str(text) or ''):
            if url not in found:
                found.append(url)
    return found


def _aia_urls(chain: list[dict[str, t.Any]], oid: str) -> list[str]:
    """URLs of one AIA access method, told apart by OID (the method's name is localized)."""
    blocks = [block for cert in chain for block in re.split(r'\[\d+\]', _str(cert.get('aia_text')) or '') if oid in block]
    return _urls(blocks)


def _native_hex(error: dict[str, t.Any]) -> str | None:
    """The SSPI/CryptoAPI code of a handshake error (`native_error`), never the .NET exception's own HResult."""
    native = _int(error.get('native_error'))
    if native is None or 0 <= native < 0x10000:
        return None
    return hresult_hex(native) or None


def _socket_code(error: dict[str, t.Any]) -> int | None:
    for key in ('code', 'native_error'):
        code = _int(error.get(key))
        if code is not None and code in SOCKET_ERRORS:
            return code
    return None


_CHAIN_KEYS = ('subject', 'issuer', 'thumbprint', 'not_before', 'not_after', 'aia_text', 'crl_text')
# X509ChainStatusFlags names -> the class of the equivalent CryptoAPI code (_codes.TLS_CODES).
CHAIN_FLAG_CLASSES = {
    'OfflineRevocation': 'revocation', 'RevocationStatusUnknown': 'revocation', 'Revoked': 'revoked',
    'UntrustedRoot': 'untrusted_root', 'PartialChain': 'untrusted_root', 'NotSignatureValid': 'untrusted_root',
    'NotTimeValid': 'expired',
}


def _tls_classes(hexed: str | None, chain_status: list[str], policy_errors: str | None) -> list[str]:
    first = tls_class(hexed) if hexed else None
    classes = [first] if first else []
    classes.extend(CHAIN_FLAG_CLASSES[flag] for flag in chain_status if flag in CHAIN_FLAG_CLASSES)
    if policy_errors and 'RemoteCertificateNameMismatch' in policy_errors:
        classes.append('wrong_name')
    return list(dict.fromkeys(classes))


def _tls(raw: t.Any) -> dict[str, t.Any]:
    tls = _as_dict(raw)
    connect = _as_dict(tls.get('connect'))
    handshake = _as_dict(tls.get('handshake'))
    chain = [{key: _str(cert.get(key)) for key in _CHAIN_KEYS} for cert in _dicts(tls.get('chain'))]
    chain_status = [name for name in (_str(item) for item in _as_list(tls.get('chain_status'))) if name]
    error = _as_dict(handshake.get('error'))
    hexed = _native_hex(error)
    issuers = [_str(cert.get('issuer')) for cert in chain if _str(cert.get('issuer'))]
    connect_error = _as_dict(connect.get('error') or tls.get('error'))
    policy_errors = _str(tls.get('policy_errors'))
    return {
        'host': _str(tls.get('host')), 'port': _int(tls.get('port')), 'not_run': _not_run(tls),
        'timed_out': bool(_bool(tls.get('timed_out'))), 'chain_source': _str(tls.get('chain_source')),
        'connect_ok': _bool(connect.get('ok')), 'connect_address': _str(connect.get('address')), 'connect_ms': _int(connect.get('duration_ms')),
        'connect_timed_out': bool(_bool(connect.get('timed_out')) or _bool(tls.get('timed_out'))),
        'connect_error': _error_text(connect.get('error') or tls.get('error')),
        'connect_error_code': dns_code(connect_error) if connect_error else None,
        'handshake_ok': _bool(handshake.get('ok')), 'handshake_timed_out': bool(_bool(handshake.get('timed_out'))),
        'handshake_ms': _int(handshake.get('duration_ms')),
        'protocol': _str(handshake.get('protocol')),
        'handshake_error': _error_text(handshake.get('error')),
        'handshake_error_hex': hexed, 'handshake_error_name': code_name(hexed) if hexed else None,
        'handshake_hresult': hresult_hex(error.get('hresult')) or None,
        'handshake_cut': _socket_code(error) in RESET_CODES or _str(error.get('status')) in RESET_STATUSES,
        'tls_classes': _tls_classes(hexed, chain_status, policy_errors),
        'revocation_offline': hexed == REVOCATION_OFFLINE_HEX or bool(REVOCATION_CHAIN_FLAGS.intersection(chain_status)),
        'policy_errors': policy_errors,
        'leaf_issuer': issuers[0] if chain and _str(chain[0].get('issuer')) else None,
        'issuers': issuers, 'chain': chain, 'chain_status': chain_status,
        'ocsp_urls': _aia_urls(chain, _AIA_OCSP_OID), 'ca_issuer_urls': _aia_urls(chain, _AIA_CA_ISSUERS_OID),
        'crl_urls': _urls(cert.get('crl_text') for cert in chain),
    }


def _curl(raw: t.Any) -> dict[str, t.Any]:
    curl = _as_dict(raw)
    found = _bool(curl.get('found'))
    output = curl.get('output') if isinstance(curl.get('output'), (str, bytes)) else None
    facts = parse_curl(output if found is not False else None, curl.get('exit_code') if found is not False else None)
    facts.update({'found': found, 'path': _str(curl.get('path')), 'url': _str(curl.get('url')),
                  'timed_out': bool(_bool(curl.get('timed_out'))), 'not_run': _not_run(curl),
                  'duration_ms': _int(curl.get('duration_ms')), 'encoding': _str(curl.get('encoding'))})
    return facts


def _http(raw: t.Any) -> list[dict[str, t.Any]]:
    entries = []
    for probe in _dicts(raw):
        url = _str(probe.get('url'))
        try:
            host = urlsplit(url).hostname if url else None
        except ValueError:
            host = None
        status = _int(probe.get('status'))
        not_run = _not_run(probe)
        entries.append({'url': url, 'host': host, 'ok': None if not_run else status is not None, 'status': status,
                        'timed_out': bool(_bool(probe.get('timed_out'))), 'not_run': not_run, 'error': _error_text(probe.get('error')),
                        'via_proxy': _str(probe.get('via_proxy')), 'proxy_mode': _str(probe.get('proxy_mode')),
                        'duration_ms': _int(probe.get('duration_ms'))})
    return entries


def _roots(raw: t.Any) -> list[dict[str, t.Any]]:
    return [{'thumbprint': (_str(root.get('thumbprint')) or '').upper() or None, 'present': _bool(root.get('present')),
             'subject': _str(root.get('subject'))} for root in _dicts(raw)]


def _proxy_probe(raw: t.Any) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        return None
    connect = _as_dict(raw.get('connect'))
    status = _int(raw.get('connect_status'))
    return {'server': _str(raw.get('server')), 'port': _int(raw.get('port')), 'source': _str(raw.get('source')),
            'connect_ok': _bool(connect.get('ok')), 'connect_ms': _int(connect.get('duration_ms')),
            'connect_timed_out': bool(_bool(connect.get('timed_out')) or _bool(raw.get('timed_out'))),
            'connect_error': _error_text(connect.get('error') or raw.get('error')), 'connect_status': status,
            'status_line': _str(raw.get('status_line')), 'auth_required': status == 407, 'not_run': _not_run(raw),
            # true only when the probe sent the connector's own proxy credentials (a future request option): only then is
            # a 407 a proof of wrong credentials; an unauthenticated 407 is context.
            'with_credentials': bool(_bool(raw.get('with_credentials')))}


_PROBES: dict[str, t.Callable[[t.Any], t.Any]] = {
    'dns': _dns, 'tls': _tls, 'curl': _curl, 'http': _http, 'roots': _roots, 'proxy': _proxy_probe,
}


def _probes(doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
    if 'probes' not in doc:
        return None
    probes = _as_dict(doc.get('probes'))
    return {key: (build(probes[key]) if probes.get(key) is not None else None) for key, build in _PROBES.items()}


def _system_task(doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The LocalSystem scheduled task's record: whether it was registered, started and finished."""
    if 'system_task' not in doc:
        return None
    raw = _as_dict(doc.get('system_task'))
    last = _int(raw.get('last_result'))
    return {'registered': _bool(raw.get('registered')), 'started': _bool(raw.get('started')), 'finished': _bool(raw.get('finished')),
            'stopped': _bool(raw.get('stopped')), 'state': _str(raw.get('state')), 'last_result': last,
            'last_result_hex': hresult_hex(last) or None if last is not None else None, 'is_system': _bool(raw.get('is_system')),
            'duration_ms': _int(raw.get('duration_ms')), 'error': _error_text(raw.get('error'))}


def _probe_label(section: str, entry: dict[str, t.Any]) -> str:
    if section == 'dns':
        return 'dns %s' % entry.get('name')
    if section in ('tls', 'proxy'):
        return '%s %s:%s' % (section, entry.get('host') or entry.get('server'), entry.get('port'))
    return '%s %s' % (section, entry.get('url') or entry.get('path'))


def not_run_probes(probes: dict[str, t.Any] | None) -> list[str]:
    """A label per probe that did not run, in request order ('dns tetra-defs.amp.cisco.com', 'tls host:443', ...)."""
    labels = []
    for section in ('dns', 'tls', 'curl', 'http', 'proxy'):
        value = (probes or {}).get(section)
        for entry in value if isinstance(value, list) else [value] if isinstance(value, dict) else []:
            if entry.get('not_run'):
                labels.append(_probe_label(section, entry))
    return labels


# ---------------------------------------------------------------- problems

def _errors(doc: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [{'section': _str(error.get('section')), 'type': _str(error.get('type')), 'hresult': _int(error.get('hresult')),
             'hex': hresult_hex(error.get('hresult')) or None} for error in _dicts(doc.get('errors'))]


def _probe_problems(probes: dict[str, t.Any] | None) -> list[str]:
    if not probes:
        return []
    problems = ['resolving %s failed: %s' % (entry['name'], entry['error'] or ('timed out' if entry['timed_out'] else 'no address'))
                for entry in probes['dns'] or [] if entry['ok'] is False]
    problems.extend('probe not run: %s' % label for label in not_run_probes(probes))
    curl = probes['curl']
    if curl and curl['found'] is False:
        problems.append('curl.exe not found at %s' % curl['path'])
    return problems


_OBJECT_SECTIONS = ('host', 'install', 'posture', 'files', 'system', 'probes')


def _null_sections(doc: dict[str, t.Any]) -> list[str]:
    # null with an `errors` entry of the same section is a section that failed on the endpoint: that entry says why.
    failed = {_str(error.get('section')) for error in _dicts(doc.get('errors'))}
    return ['section %s is null and no errors entry says why' % name for name in _OBJECT_SECTIONS
            if name in doc and doc[name] is None and name not in failed]


def _problems(facts: dict[str, t.Any]) -> list[str]:
    problems = ['%s: %s' % (name, facts[name]['problem']) for name in ('posture', 'local', 'policy')
                if facts[name] and facts[name].get('problem')]
    if facts['installed'] is False:
        problems.append('no connector installed (no install dir, service or version folder)')
    if facts['install'] and facts['installed'] and facts['install']['service'] is None:
        problems.append('no service runs the connector\'s sfc.exe')
    if (facts['posture'] or facts['local']) and facts['tetra_version'] is None:
        problems.append('TETRA definition version unknown (neither posture nor local.xml gave it)')
    problems.extend(_probe_problems(facts['probes']))
    task = facts.get('system_task')
    if task and task['registered'] and not task['started']:
        problems.append('the LocalSystem scheduled task never started (state %s, last result %s)' % (task['state'], task['last_result_hex']))
    elif task and task['started'] and not task['finished']:
        problems.append('the LocalSystem scheduled task started but did not finish (state %s, stopped %s)' % (task['state'], task['stopped']))
    problems.extend('endpoint error in %s: %s %s' % (error['section'], error['type'], error['hex'] or '') for error in facts['errors'])
    return problems


def parse_evidence(doc: dict[str, t.Any]) -> dict[str, t.Any]:
    """One evidence document -> facts for the diagnosis. Raises EvidenceError only for a non-evidence `doc`."""
    doc = check_evidence_document(doc)
    posture = _posture(doc)
    local = _file(doc, 'local_xml', parse_local_xml, 'available')
    install = _install(doc, posture)
    tetra_version, source = _tetra_version(posture, local)
    facts: dict[str, t.Any] = {
        'format': EVIDENCE_FORMAT, 'action': _str(doc.get('action')), 'context': _str(doc.get('context')),
        'started': _str(doc.get('started')), 'duration_ms': _int(doc.get('duration_ms')),
        'host': _host(doc), 'installed': _installed(install), 'install': install, 'posture': posture,
        'local': local, 'policy': _file(doc, 'policy_xml', parse_policy_xml, 'readable'),
        'tetra_version': tetra_version, 'tetra_version_source': source,
        'probes': _probes(doc), 'system_task': _system_task(doc), 'errors': _errors(doc),
    }
    facts['invalid'] = invalid_fields(doc)
    facts['problems'] = ([facts['invalid']] if facts['invalid'] else []) + _null_sections(doc) + _problems(facts)
    return facts
