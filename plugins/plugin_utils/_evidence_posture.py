# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AmpCLI.exe posture output -> connector and TETRA facts. Part of the evidence parser (_evidence.py).
"""

from __future__ import annotations

import json
import re
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_values import (
    _as_dict, _bool, _def_version, _dicts, _error_text, _int, _norm_key, _quote, _str,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text

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
