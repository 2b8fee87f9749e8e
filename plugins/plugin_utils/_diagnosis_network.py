# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Network causes, each proven by any witness that ran: the connector's lasterror, the .NET probes (DNS, TLS,
HTTP, proxy CONNECT) or curl.exe; DNS, reachability, proxy, TLS interception, missing roots, revocation,
handshake failures and unrecognized codes. Part of the diagnosis (_diagnosis.py).
"""

from __future__ import annotations

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import DNS_FAILURE_CODES, code_label, win32_label
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_base import (
    TRUSTED_ISSUER_MARKERS, Facts, _as_system, _duration, _failed_http, _lasterror, _lasterror_is, _probes, _server, _tls,
    _update_server_dns,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import REGION_UPDATE_SERVERS, REQUIRED_ROOTS


# ---------------------------------------------------------------- witnesses: the connector, the .NET probes, curl.exe
#
# Every network cause is proven by any witness that ran: the connector's own lasterror, the .NET probes (DNS, TCP/TLS,
# HTTP, proxy CONNECT) or curl.exe. A witness that ran and saw the opposite is quoted as disagreeing; the cause still
# holds (the connector's path can fail where a probe passes: intermittently, or in another context).

def _curl(facts: Facts) -> Facts:
    curl = _probes(facts).get('curl') or {}
    return curl if curl.get('ran') and curl.get('found') is not False else {}


def _connector_proxy(facts: Facts) -> tuple[str | None, int | None]:
    """The proxy the connector uses: the probed one, else local.xml's, else policy.xml's."""
    probe = (facts.get('probes') or {}).get('proxy') or {}
    for proxy in (probe, (facts.get('local') or {}).get('proxy') or {}, (facts.get('policy') or {}).get('proxy') or {}):
        if proxy.get('server'):
            return proxy['server'], proxy.get('port')
    return None, None


def _curl_connect_kind(facts: Facts, curl: Facts) -> str:
    proxy_host = _connector_proxy(facts)[0]
    failed = curl.get('connect_failed_host')
    to_proxy = curl.get('proxy_host') or (failed and failed == proxy_host) or curl.get('connect_failed_port') not in (None, 443)
    return 'proxy_unreachable' if to_proxy else 'unreachable'


def curl_kind(facts: Facts) -> str | None:
    """What curl.exe's exit code (and the codes it printed) prove: dns, unreachable, proxy_unreachable, proxy_auth_context,
    proxy_refused, revocation, untrusted_root, wrong_name, tls_other, cut, unknown, ok; None when it did not run."""
    curl = _curl(facts)
    code = curl.get('exit_code')
    if code is None:
        return None
    if curl.get('tunnel_status') not in (None, 200):
        return 'proxy_auth_context' if curl['tunnel_status'] == 407 else 'proxy_refused'
    simple = {0: 'ok', 5: 'proxy_unreachable', 6: 'dns'}
    if code in simple:
        return simple[code]
    if code in (7, 28) and not curl.get('connected'):
        return _curl_connect_kind(facts, curl)
    tls = curl.get('tls_class')
    if tls:
        return tls if tls in ('revocation', 'untrusted_root', 'wrong_name') else 'tls_other'
    if code in (18, 52, 55, 56) or (code in (35, 28) and curl.get('cut')) or (code == 28 and curl.get('http_status')):
        return 'cut'
    if code in (35, 60, 28):
        return 'tls_other'
    return 'unknown' if not curl.get('exit_known') else None


def _curl_says(facts: Facts) -> str:
    curl = _curl(facts)
    meaning = curl.get('exit_meaning') or 'not in curl\'s code table'
    return 'curl.exe exit %s (%s): %s' % (curl.get('exit_code'), meaning, curl.get('summary') or 'no summary line')


def _curl_ok_line(facts: Facts) -> str | None:
    curl = _curl(facts)
    if curl.get('exit_code') == 0:
        return 'curl.exe disagrees: exit 0%s' % (', HTTP %s' % curl['http_status'] if curl.get('http_status') else '')
    return None


def _holds(support: list[str], disagree: list[str | None]) -> list[str] | None:
    """The finding's lines when any witness supports it, with every witness that saw otherwise said as such."""
    if not support:
        return None
    return support + [line for line in disagree if line]


def _direct_path_context(facts: Facts) -> bool:
    """A connector behind a proxy does not use the direct path: direct DNS/TCP failures are context, not causes."""
    return _connector_proxy(facts)[0] is not None


def _dns_lines(facts: Facts) -> tuple[list[str], list[str | None]]:
    entry = _update_server_dns(facts) or {}
    tls = _tls(facts)
    support: list[str] = []
    if entry.get('ok') is False:
        what = 'timed out after %s' % _duration(entry) if entry.get('timed_out') else 'failed with error %s' % (
            win32_label(entry['error_code']) if entry.get('error_code') is not None else entry.get('error') or 'no address')
        support.append('resolving %s %s%s' % (entry.get('name'), what, _as_system(facts)))
    elif tls.get('connect_ok') is False and tls.get('connect_error_code') in DNS_FAILURE_CODES:
        support.append('connecting to %s failed: the name does not resolve (%s)%s' % (
            _server(facts), win32_label(tls['connect_error_code']), _as_system(facts)))
    if curl_kind(facts) == 'dns':
        support.append(_curl_says(facts))
    disagree: list[str | None] = []
    curl = _curl(facts)
    if support and entry.get('ok') is True:
        disagree.append('.NET probe disagrees: %s resolved to %s' % (entry.get('name'), ', '.join(entry.get('addresses') or [])))
    if support and curl.get('connected'):
        disagree.append('curl.exe disagrees: connected to %s (%s)' % (curl.get('connected_host'), curl.get('connected_ip')))
    return support, disagree


def check_dns(facts: Facts) -> list[str] | None:
    if _direct_path_context(facts):
        return None
    return _holds(*_dns_lines(facts))


def _unreachable_lines(facts: Facts) -> tuple[list[str], list[str | None]]:
    tls = _tls(facts)
    entry = _update_server_dns(facts) or {}
    support: list[str] = []
    dns_failed = entry.get('ok') is False or tls.get('connect_error_code') in DNS_FAILURE_CODES
    if tls.get('connect_ok') is False and not dns_failed:
        how = 'timed out after %s' % _duration(tls, 'connect_ms') if tls.get('connect_timed_out') else 'failed (%s)' % (
            tls.get('connect_error') or 'refused')
        support.append('TCP connect to %s:%s %s%s' % (_server(facts), tls.get('port') or 443, how, _as_system(facts)))
    curl = _curl(facts)
    if curl_kind(facts) == 'unreachable':
        where = ' (%s port %s)' % (curl['connect_failed_host'], curl.get('connect_failed_port')) if curl.get('connect_failed_host') else ''
        support.append(_curl_says(facts) + where)
    disagree: list[str | None] = []
    if support and tls.get('connect_ok') is True:
        disagree.append('.NET probe disagrees: TCP connect to %s:%s succeeded' % (_server(facts), tls.get('port') or 443))
    if support and curl.get('connected') and not curl.get('proxy_host'):
        disagree.append('curl.exe disagrees: connected to %s (%s)' % (curl.get('connected_host'), curl.get('connected_ip')))
    return support, disagree


def check_unreachable(facts: Facts) -> list[str] | None:
    if _direct_path_context(facts):
        return None
    return _holds(*_unreachable_lines(facts))


def check_proxy_auth(facts: Facts) -> list[str] | None:
    """Only the connector's own lasterror, or a 407 to a probe that sent the connector's credentials, proves it."""
    lines = _lasterror_is('proxy_auth_failed')(facts) or []
    proxy = _probes(facts).get('proxy') or {}
    if proxy.get('connect_status') == 407 and proxy.get('with_credentials'):
        lines.append('proxy %s:%s answered 407 to CONNECT with the connector\'s credentials' % (proxy.get('server'), proxy.get('port')))
    return lines or None


def check_proxy_unreachable(facts: Facts) -> list[str] | None:
    support = _lasterror_is('proxy_unreachable')(facts) or []
    proxy = _probes(facts).get('proxy') or {}
    if proxy and proxy.get('connect_ok') is False:
        how = 'timed out after %s' % _duration(proxy, 'connect_ms') if proxy.get('connect_timed_out') else 'failed (%s)' % (
            proxy.get('connect_error') or 'refused')
        support.append('connecting to proxy %s:%s %s%s' % (proxy.get('server'), proxy.get('port'), how, _as_system(facts)))
    curl = _curl(facts)
    if curl_kind(facts) == 'proxy_unreachable':
        where = curl.get('connect_failed_host') or curl.get('proxy_host') or (curl.get('resolve_failed') or (None, None))[1]
        support.append(_curl_says(facts) + (' (proxy %s)' % where if where else ''))
    disagree: list[str | None] = []
    if support and proxy.get('connect_ok') is True:
        disagree.append('.NET probe disagrees: TCP connect to proxy %s:%s succeeded%s' % (proxy.get('server'), proxy.get('port'), _as_system(facts)))
    if support and curl.get('proxy_host') and curl.get('connected'):
        disagree.append('curl.exe disagrees: connected to proxy %s' % curl.get('connected_host'))
    return _holds(support, disagree)


def check_proxy_refused(facts: Facts) -> list[str] | None:
    """The proxy answers CONNECT with an HTTP error other than 407 (403 blocked category, 502 upstream failure, ...)."""
    proxy = _probes(facts).get('proxy') or {}
    curl = _curl(facts)
    support = []
    if proxy.get('connect_status') not in (None, 200, 407):
        support.append('proxy %s:%s answered %s to CONNECT %s:443%s' % (
            proxy.get('server'), proxy.get('port'), proxy.get('status_line') or proxy['connect_status'], _server(facts), _as_system(facts)))
    if curl_kind(facts) == 'proxy_refused':
        support.append('%s (the proxy refused the tunnel with HTTP %s)' % (_curl_says(facts), curl.get('tunnel_status')))
    disagree: list[str | None] = []
    if support and proxy.get('connect_status') == 200:
        disagree.append('.NET probe disagrees: proxy %s:%s answered 200 to CONNECT' % (proxy.get('server'), proxy.get('port')))
    if support and curl.get('tunnel_status') == 200:
        disagree.append('curl.exe disagrees: the proxy answered 200 to CONNECT')
    return _holds(support, disagree)


def check_misconfigured(facts: Facts) -> list[str] | None:
    policy_server = (facts.get('policy') or {}).get('update_server')
    if not policy_server or policy_server.lower() in REGION_UPDATE_SERVERS.values():
        return None
    lines = ['policy update server %s is not a Cisco public TETRA host (%s)' % (policy_server, ', '.join(sorted(REGION_UPDATE_SERVERS.values())))]
    if _server(facts).lower() == policy_server.lower():
        failing = check_dns(facts) or check_unreachable(facts)
        if failing:
            return lines + failing
    return None


def _foreign_issuers(facts: Facts) -> list[str]:
    issuers = _tls(facts).get('issuers') or ([_tls(facts).get('leaf_issuer')] if _tls(facts).get('leaf_issuer') else [])
    return [i for i in issuers if i and not any(marker in i.lower() for marker in TRUSTED_ISSUER_MARKERS)]


def _roots_missing(facts: Facts) -> list[Facts]:
    return [r for r in _probes(facts).get('roots') or [] if r.get('present') is False]


def _handshake_code_line(tls: Facts) -> str:
    if tls.get('handshake_error_hex'):
        return code_label(tls['handshake_error_hex'])
    return ', '.join(tls.get('chain_status') or []) or tls.get('handshake_error') or 'no code'


def _tls_ok_disagreement(facts: Facts, classes: tuple[str, ...]) -> list[str | None]:
    tls = _tls(facts)
    lines: list[str | None] = [_curl_ok_line(facts)]
    if tls.get('handshake_ok') is True and not set(classes) & set(tls.get('tls_classes') or []) and not _foreign_issuers(facts):
        lines.append('.NET probe disagrees: the TLS handshake with %s succeeded%s' % (_server(facts), _as_system(facts)))
    return lines


def check_interception(facts: Facts) -> list[str] | None:
    """A foreign issuer in the chain (.NET), or an untrusted root / wrong name (.NET or curl) while no required root is missing."""
    tls = _tls(facts)
    support = []
    foreign = _foreign_issuers(facts)
    roots_state = 'present' if _probes(facts).get('roots') else 'not checked'
    if foreign:
        support.append('%s presented a certificate issued by %s, not by Cisco\'s CA (IdenTrust)' % (_server(facts), foreign[0]))
        if tls.get('handshake_ok') is False:
            support.append('TLS handshake failed: %s' % _handshake_code_line(tls))
    elif not _roots_missing(facts):
        classes = set(tls.get('tls_classes') or []) & {'untrusted_root', 'wrong_name'}
        if classes and tls.get('handshake_ok') is not True:
            support.append('TLS handshake with %s failed: %s (%s) while the required roots are %s%s' % (
                _server(facts), _handshake_code_line(tls), ', '.join(sorted(classes)), roots_state, _as_system(facts)))
    kind = curl_kind(facts)
    if kind in ('untrusted_root', 'wrong_name') and not _roots_missing(facts):
        support.append('%s; schannel %s (%s) while the required roots are %s' % (
            _curl_says(facts), code_label(_curl(facts).get('schannel_error')), kind.replace('_', ' '), roots_state))
    return _holds(support, _tls_ok_disagreement(facts, ('untrusted_root', 'wrong_name')))


def check_root_missing(facts: Facts) -> list[str] | None:
    missing = _roots_missing(facts)
    if not missing:
        return None
    lines = ['%s (%s) is missing from LocalMachine\\Root' % (REQUIRED_ROOTS.get(str(r.get('thumbprint')), 'required root'), r.get('thumbprint'))
             for r in missing]
    tls = _tls(facts)
    if 'untrusted_root' in (tls.get('tls_classes') or []):
        lines.append('TLS handshake with %s failed: %s' % (_server(facts), _handshake_code_line(tls)))
    if curl_kind(facts) == 'untrusted_root':
        lines.append('%s; schannel %s' % (_curl_says(facts), code_label(_curl(facts).get('schannel_error'))))
    return lines


def check_revocation(facts: Facts) -> list[str] | None:
    tls = _tls(facts)
    support = []
    if 'revocation' in (tls.get('tls_classes') or []) or tls.get('revocation_offline'):
        code = code_label(tls['handshake_error_hex']) if tls.get('handshake_error_hex') else 'chain status %s' % ', '.join(
            tls.get('chain_status') or ['OfflineRevocation'])
        support.append('schannel %s while checking revocation during the TLS handshake with %s%s' % (code, _server(facts), _as_system(facts)))
    if curl_kind(facts) == 'revocation':
        curl = _curl(facts)
        support.append('curl.exe exit %s: schannel %s (revocation check failed)' % (curl.get('exit_code'), code_label(curl.get('schannel_error'))))
    if not support:
        return None
    return _holds(support + _failed_http(facts), _tls_ok_disagreement(facts, ('revocation',)))


_TLS_HINTS = {'expired': 'a certificate is outside its validity period: check the endpoint\'s clock',
              'revoked': 'a certificate in the chain is revoked',
              'protocol': 'the TLS negotiation failed (protocol/cipher policy, or a device ending the handshake)',
              'other': 'schannel could not build its credentials', 'unknown': 'the code is not in the table'}


def check_tls_failed(facts: Facts) -> list[str] | None:
    """A TLS failure none of the specific causes explains (expired, revoked, protocol, unknown codes)."""
    tls = _tls(facts)
    support = []
    classes = [c for c in tls.get('tls_classes') or [] if c in _TLS_HINTS]
    explained = {'revocation', 'untrusted_root', 'wrong_name'} & set(tls.get('tls_classes') or [])
    if classes:
        support.append('TLS handshake with %s failed: %s: %s%s' % (_server(facts), _handshake_code_line(tls), _TLS_HINTS[classes[0]], _as_system(facts)))
    elif (tls.get('handshake_ok') is False and not explained and not tls.get('handshake_cut') and not tls.get('revocation_offline')
          and not _foreign_issuers(facts)):
        support.append('TLS handshake with %s failed: %s%s' % (_server(facts), tls.get('handshake_error') or 'no error recorded', _as_system(facts)))
    if curl_kind(facts) == 'tls_other':
        curl = _curl(facts)
        hint = _TLS_HINTS.get(curl.get('tls_class') or '', '')
        support.append(_curl_says(facts) + ('; schannel %s' % code_label(curl['schannel_error']) if curl.get('schannel_error') else '')
                       + (': %s' % hint if hint else ''))
    return _holds(support, _tls_ok_disagreement(facts, tuple(_TLS_HINTS)))


def check_interrupted(facts: Facts) -> list[str] | None:
    support = []
    if curl_kind(facts) == 'cut':
        support.append(_curl_says(facts))
    tls = _tls(facts)
    if tls.get('handshake_cut'):
        support.append('the connection to %s was cut during the TLS handshake: %s%s' % (_server(facts), tls.get('handshake_error'), _as_system(facts)))
    return _holds(support, [_curl_ok_line(facts)])


def check_unrecognized(facts: Facts) -> list[str] | None:
    """Codes in no table: reported raw, never dropped."""
    lines = []
    error = _lasterror(facts)
    if error.get('unsigned') is not None and not error.get('known'):
        lines.append('local.xml lasterror %s (signed %s, %s): not in Cisco\'s published table' % (error['unsigned'], error['signed'], error['hex']))
    curl = _curl(facts)
    if curl.get('exit_code') is not None and curl.get('exit_known') is False:
        lines.append('curl.exe exit %s: not in curl\'s code table' % curl['exit_code'])
    if curl.get('tls_class') == 'unknown':
        lines.append('curl.exe schannel code %s%s: not in the table' % (
            curl['schannel_error'], ' (printed as %s)' % curl['error_name'] if curl.get('error_name') else ''))
    tls = _tls(facts)
    if 'unknown' in (tls.get('tls_classes') or []):
        lines.append('TLS handshake code %s: not in the table' % tls.get('handshake_error_hex'))
    return lines or None
