# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Turn one evidence document (docs/evidence.md, format 1) into typed facts.

Everything the endpoint script gathers arrives raw; every interpretation happens here. Parsers never
raise on bad input: what could not be read is reported in a ``problem`` string (per parser) and in the
``problems`` list of :func:`parse_evidence`. The only exception raised is :class:`EvidenceError`, when
the document itself is not a format-1 evidence object.

Decisions are made from numbers (exit codes, HRESULTs, status codes), never from message text, which is
localized on non-English Windows. The proxy password is never copied into any result.

The parsers live by concern in _evidence_values (coercion, codes, lasterror), _evidence_posture (AmpCLI),
_evidence_files (local.xml, policy.xml) and _evidence_probes (network probes); this module assembles the
facts and re-exports the names callers import from here.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import hresult_hex
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import EVIDENCE_FORMAT, is_cisco_publisher
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_files import (
    DEBUG_LOG_LEVEL, XMLTODICT_IMPORT_ERROR, _file, parse_local_xml, parse_policy_xml,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_posture import _posture, parse_posture
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_probes import (
    CHAIN_FLAG_CLASSES, _probe_problems, _probes, _system_task, not_run_probes, parse_curl,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_values import (
    LASTERROR_CODES, QUOTE_CHARS, REVOCATION_CHAIN_FLAGS, WINDOWS_ERRORS, EvidenceError, _as_dict, _as_list, _bool, _dicts,
    _int, _quote, _str, _version_key, decode_lasterror, error_name,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._shape import shape_problems
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text

__all__ = [
    'CHAIN_FLAG_CLASSES', 'DEBUG_LOG_LEVEL', 'EVIDENCE_FORMAT', 'LASTERROR_CODES', 'QUOTE_CHARS', 'REVOCATION_CHAIN_FLAGS',
    'WINDOWS_ERRORS', 'XMLTODICT_IMPORT_ERROR', 'EvidenceError', 'check_evidence_document', 'decode_lasterror', 'decode_text',
    'error_name', 'hresult_hex', 'invalid_fields', 'not_run_probes', 'parse_curl', 'parse_evidence', 'parse_local_xml',
    'parse_policy_xml', 'parse_posture',
]

_VERSION_DIR = re.compile(r'^\d+(?:\.\d+)+$')


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


def _system(doc: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The machine's network configuration as reported (WinHTTP proxy text, DNS servers, PAC URL), or None when not collected."""
    if 'system' not in doc:
        return None
    system = _as_dict(doc.get('system'))
    return {'winhttp_proxy': _str(system.get('winhttp_proxy')), 'pac_url': _str(system.get('pac_url')),
            'dns_servers': [server for server in (_str(item) for item in _as_list(system.get('dns_servers'))) if server]}


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
        'sfc_is_cisco': is_cisco_publisher(company),
        'reboot_pending': _bool(install.get('reboot_pending')),
        'isolated': _bool(install.get('isolated')),
    }


def _installed(install: dict[str, t.Any] | None) -> bool | None:
    if install is None:
        return None
    return bool(install['install_dir'] or install['service'] or install['version_dirs'])


def _tetra_version(posture: dict[str, t.Any] | None, local: dict[str, t.Any] | None) -> tuple[int | None, str | None]:
    for source, facts in (('posture', posture), ('local_xml', local)):
        if facts and facts.get('tetra_version') is not None:
            return facts['tetra_version'], source
    return None, None


# ---------------------------------------------------------------- problems

def _errors(doc: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [{'section': _str(error.get('section')), 'type': _str(error.get('type')), 'hresult': _int(error.get('hresult')),
             'hex': hresult_hex(error.get('hresult')) or None} for error in _dicts(doc.get('errors'))]


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
        'system': _system(doc), 'probes': _probes(doc), 'system_task': _system_task(doc), 'errors': _errors(doc),
    }
    facts['invalid'] = invalid_fields(doc)
    facts['problems'] = ([facts['invalid']] if facts['invalid'] else []) + _null_sections(doc) + _problems(facts)
    return facts
