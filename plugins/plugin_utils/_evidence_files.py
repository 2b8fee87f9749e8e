# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The connector's files: local.xml (definition version, last update, lasterror, proxy) and policy.xml
(proxy, debug logging). The proxy password is never copied. Part of the evidence parser (_evidence.py).
"""

from __future__ import annotations

import json
import typing as t
from xml.parsers.expat import ExpatError

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import hresult_hex
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_posture import _ENGINE_NAME_KEYS, _pick
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_values import (
    _as_dict, _as_list, _bool, _def_version, _dicts, _epoch_iso, _error_text, _int, _quote, _str, decode_lasterror,
    error_name,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text

try:
    import xmltodict
except ImportError as _exc:  # a controller without it gets a clear `problem` from every XML parser
    xmltodict = None
    XMLTODICT_IMPORT_ERROR: str | None = str(_exc)
else:
    XMLTODICT_IMPORT_ERROR = None

DEBUG_LOG_LEVEL = 549755813887

# policy.xml / local.xml proxy element -> result key; `password` is deliberately absent.
_PROXY_FIELDS = {
    'server': 'server', 'port': 'port', 'type': 'type', 'authtype': 'auth_type', 'auth_type': 'auth_type',
    'username': 'username', 'user': 'username', 'pacloc': 'pac_url', 'pac_url': 'pac_url', 'pacurl': 'pac_url',
}


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
