# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Network probes (DNS, TLS, curl.exe, HTTP, trusted roots, proxy), the LocalSystem task record, and the
probes that did not run. Decisions come from numbers, never from localized text. Part of the evidence
parser (_evidence.py).
"""

from __future__ import annotations

import re
import typing as t
from urllib.parse import urlsplit

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import (
    RESET_CODES, RESET_STATUSES, REVOCATION_OFFLINE_HEX, SOCKET_ERRORS, code_name, dns_code, hresult_hex, parse_curl_text,
    tls_class, win32_name,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_values import (
    REVOCATION_CHAIN_FLAGS, _as_dict, _as_list, _bool, _dicts, _error_text, _int, _str,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text

_URL = re.compile(r'URL=(\S+)')
_AIA_OCSP_OID = '1.3.6.1.5.5.7.48.1'
_AIA_CA_ISSUERS_OID = '1.3.6.1.5.5.7.48.2'


# ---------------------------------------------------------------- curl.exe -v

def parse_curl(output: t.Any, exit_code: t.Any) -> dict[str, t.Any]:
    """``curl.exe -v https://<server>/`` output (any encoding) -> exit code, where it failed, schannel code (_codes)."""
    return parse_curl_text(decode_text(output) if output is not None else None, exit_code)


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
