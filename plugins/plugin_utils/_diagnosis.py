# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts -> findings -> one verdict per host. All diagnostic rules of the collection live here.

A *check* looks at the facts and returns the evidence lines that prove a finding, or nothing.
``CATALOG`` lists every cause in priority order: when several findings hold, the first one in the
catalog is the primary cause and the others are listed as secondary findings. docs/causes.md is the
reader's version of the same table.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import DNS_FAILURE_CODES, code_label, win32_label
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import format_timestamp, parse_timestamp, utc_moment
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import not_run_probes
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import REGION_UPDATE_SERVERS, REQUIRED_ROOTS

Facts = t.Dict[str, t.Any]
Check = t.Callable[[Facts], t.Optional[t.List[str]]]

# Issuers that legitimately sign Cisco's TETRA update servers; any other issuer means TLS inspection.
TRUSTED_ISSUER_MARKERS = ('identrust', 'hydrantid', 'cisco')
# Connector versions before this one have no sfc.exe -forceupdate (seed).
FORCEUPDATE_MIN_VERSION = (7, 2, 7)
LASTERROR_CAUSES = {4294965193: 'proxy_unreachable', 4294965196: 'proxy_auth_failed', 4294965187: 'proxy_download_failed'}
# A last update check within this many hours counts as "the connector is trying".
RECENT_CHECK_HOURS = 6
# Without a successful update for this long a host is stale even within max_behind (4 versions a day).
DEFAULT_MAX_AGE_HOURS = 24
ESCALATE = ('If it persists: enable debug mode and a packet capture for one update interval, then open a TAC case '
            'with the support bundle (playbooks/collect_support.yml).')


@dataclasses.dataclass(frozen=True)
class Cause:
    name: str
    status: str
    remediable: bool
    summary: str
    action: str
    check: Check | None = None
    blocking: bool = True


# ---------------------------------------------------------------- small fact readers

def _ran(entry: t.Any) -> t.Any:
    """A probe record only when the probe ran: no cause is ever derived from a probe that did not run."""
    return entry if isinstance(entry, dict) and not entry.get('not_run') else None


def _probes(facts: Facts) -> Facts:
    probes = facts.get('probes') or {}
    # A LocalSystem task that never started or never finished produced no network evidence at all.
    task = facts.get('system_task') or {}
    if task and facts.get('context') == 'system' and not task.get('finished'):
        return {'roots': probes.get('roots')}
    ran: Facts = {}
    for key, value in probes.items():
        ran[key] = [entry for entry in value if _ran(entry)] if isinstance(value, list) and key != 'roots' else (
            value if key == 'roots' else _ran(value))
    return ran


def _tls(facts: Facts) -> Facts:
    return _probes(facts).get('tls') or {}


def _server(facts: Facts) -> str:
    return _tls(facts).get('host') or 'the update server'


def _as_system(facts: Facts) -> str:
    return ' (as LocalSystem)' if facts.get('context') == 'system' else ' (as the WinRM user)'


def _lasterror(facts: Facts) -> Facts:
    return (facts.get('local') or {}).get('lasterror') or {}


def _lasterror_is(code: int) -> Check:
    def check(facts: Facts) -> list[str] | None:
        error = _lasterror(facts)
        if error.get('unsigned') != code:
            return None
        return ['local.xml lasterror %s (%s): %s' % (error.get('unsigned'), error.get('signed'), error.get('problem'))]
    return check


def version_tuple(text: t.Any) -> tuple[int, ...] | None:
    """'8.1.7.21417' -> (8, 1, 7, 21417); None when it does not start with a number."""
    parts = []
    for piece in str(text or '').strip().split('.'):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts) or None


def _duration(item: Facts, key: str = 'duration_ms') -> str:
    value = item.get(key)
    return '%.1f s' % (value / 1000.0) if isinstance(value, (int, float)) else 'an unknown time'


def _update_server_dns(facts: Facts) -> Facts | None:
    server = _tls(facts).get('host')
    for entry in _probes(facts).get('dns') or []:
        if entry.get('name') == server or server is None:
            return entry
    return None


def _failed_http(facts: Facts) -> list[str]:
    """One line per revocation host that did not answer (the chain may name several URLs on one host)."""
    lines: dict[str, str] = {}
    for entry in _probes(facts).get('http') or []:
        host = entry.get('host') or entry.get('url')
        if entry.get('ok') or host in lines:
            continue
        outcome = 'timed out after %s' % _duration(entry) if entry.get('timed_out') else 'failed (%s)' % (entry.get('error') or 'no answer')
        lines[host] = '%s:80 %s' % (host, outcome)
    return list(lines.values())


# ---------------------------------------------------------------- checks, one per cause

def check_tetra_disabled(facts: Facts) -> list[str] | None:
    policy = facts.get('policy') or {}
    lines = []
    if policy.get('tetra_enabled') is False:
        lines.append('policy.xml: TETRA engine disabled (scansettings/tetra/enable = 0)')
    if policy.get('updater_enabled') is False:
        lines.append('policy.xml: TETRA updater disabled (tetra/updater/enable = 0)')
    return lines or None


def check_service_stopped(facts: Facts) -> list[str] | None:
    install = facts.get('install') or {}
    service = install.get('service')
    if not service:
        return ['no service runs the connector\'s sfc.exe'] if facts.get('installed') else None
    if install.get('service_running') is False or str(service.get('state', '')).lower() not in ('running', ''):
        return ['service %s is %s (start type %s)' % (service.get('name'), service.get('state'), service.get('start_type'))]
    return None


def check_disconnected(facts: Facts) -> list[str] | None:
    if (facts.get('posture') or {}).get('connected') is False:
        return ['AmpCLI posture: "connected": false']
    return None


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
    lines = _lasterror_is(4294965196)(facts) or []
    proxy = _probes(facts).get('proxy') or {}
    if proxy.get('connect_status') == 407 and proxy.get('with_credentials'):
        lines.append('proxy %s:%s answered 407 to CONNECT with the connector\'s credentials' % (proxy.get('server'), proxy.get('port')))
    return lines or None


def check_proxy_unreachable(facts: Facts) -> list[str] | None:
    support = _lasterror_is(4294965193)(facts) or []
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


def context_lines(facts: Facts) -> list[str]:
    """What the verdict says without calling it a cause: expected conditions and unauthenticated proxy answers."""
    lines = []
    proxy = _probes(facts).get('proxy') or {}
    if proxy.get('connect_status') == 407 and not proxy.get('with_credentials'):
        lines.append('context: proxy %s:%s requires authentication (an unauthenticated CONNECT got 407); the connector\'s own '
                     'credentials were not tested' % (proxy.get('server'), proxy.get('port')))
    if curl_kind(facts) == 'proxy_auth_context':
        lines.append('context: curl.exe went through a proxy that requires authentication (CONNECT got 407, exit %s)' % _curl(facts).get('exit_code'))
    if _direct_path_context(facts) and facts.get('installed'):
        direct = _dns_lines(facts)[0] + _unreachable_lines(facts)[0]
        if direct:
            server, port = _connector_proxy(facts)
            lines.append('context: the connector uses proxy %s:%s, so the direct path is not its path: %s' % (server, port, '; '.join(direct)))
    if _policy_unreadable_expected(facts):
        lines.append('context: policy.xml not readable locally, as expected on connector 8.1.3 and later')
    return lines


def check_posture_unavailable(facts: Facts) -> list[str] | None:
    posture = facts.get('posture') or {}
    if not facts.get('installed') or posture.get('available'):
        return None
    return ['AmpCLI posture unavailable: %s' % (posture.get('problem') or 'AmpCLI.exe not found')]


POLICY_LOCKED_VERSION = (8, 1, 3)


def _policy_unreadable_expected(facts: Facts) -> bool:
    policy = facts.get('policy') or {}
    version = version_tuple((facts.get('install') or {}).get('connector_version'))
    return bool(facts.get('installed') and policy and not policy.get('readable', True) and version and version >= POLICY_LOCKED_VERSION)


def check_policy_unreadable(facts: Facts) -> list[str] | None:
    """policy.xml unreadable where it should be readable (connector before 8.1.3, or version unknown); 8.1.3+ is context."""
    policy = facts.get('policy') or {}
    if not facts.get('installed') or policy.get('readable', True) or _policy_unreadable_expected(facts):
        return None
    return ['policy.xml not readable locally (%s): expected on connector 8.1.3 and later' % (policy.get('problem') or 'access denied')]


def check_context_fallback(facts: Facts) -> list[str] | None:
    for error in facts.get('errors') or []:
        if error.get('section') == 'context':
            return ['probes ran as the WinRM user: the LocalSystem scheduled task failed (%s)' % error.get('type')]
    return None


def check_probes_not_run(facts: Facts) -> list[str] | None:
    """Network probes that did not run: said as such, never read as timeouts."""
    lines = []
    task = facts.get('system_task') or {}
    if task.get('registered') and not task.get('started'):
        lines.append('the LocalSystem scheduled task never started (state %s, last result %s)%s'
                     % (task.get('state') or 'unknown', task.get('last_result_hex') or 'unknown',
                        ': the probes ran as the WinRM user' if facts.get('context') == 'user' else ''))
    elif task.get('started') and not task.get('finished'):
        lines.append('the LocalSystem scheduled task started but did not finish before the deadline%s'
                     % (' (stopped)' if task.get('stopped') else ''))
    elif task and task.get('registered') is False and task.get('error'):
        lines.append('the LocalSystem scheduled task could not be registered (%s)' % task.get('error'))
    lines.extend('not run: %s' % label for label in not_run_probes(facts.get('probes')))
    return lines or None


def check_too_old(facts: Facts) -> list[str] | None:
    version = version_tuple((facts.get('install') or {}).get('connector_version'))
    if version is None or version >= FORCEUPDATE_MIN_VERSION:
        return None
    return ['connector %s is older than 7.2.7: sfc.exe -forceupdate does not exist' % '.'.join(map(str, version))]


CATALOG: tuple[Cause, ...] = (
    Cause('tetra_disabled', 'failing', False, 'TETRA is disabled by the policy',
          'Enable the TETRA engine and its updater in the connector policy (or accept that this host has no TETRA definitions).',
          check_tetra_disabled),
    Cause('service_stopped', 'failing', False, 'The connector service is not running',
          'Start the Cisco Secure Endpoint service on the host (this collection never starts or stops it), then re-check.',
          check_service_stopped),
    Cause('connector_disconnected', 'failing', False, 'The connector is not connected to the Secure Endpoint cloud',
          'Check the connector\'s connectivity to the cloud (ConnectivityTool, part of IPSupportTool) and the required server addresses (Cisco doc 118121).',
          check_disconnected),
    Cause('proxy_auth_failed', 'failing', False, 'The connector cannot authenticate with the proxy',
          'Check the proxy credentials (user and password in the policy\'s proxy settings).', check_proxy_auth),
    Cause('proxy_unreachable', 'failing', False, 'The connector cannot connect to the proxy',
          'Check network connectivity to the proxy (server and port in the policy).', check_proxy_unreachable),
    Cause('proxy_download_failed', 'failing', False, 'The proxy connection works but the download through it fails',
          'Check download problems in the proxy logs.', _lasterror_is(4294965187)),
    Cause('proxy_refused', 'failing', False, 'The proxy refuses the tunnel to the update server',
          'Allow CONNECT to the TETRA update server on port 443 in the proxy policy (category, SSL bypass list); the proxy\'s HTTP '
          'status says why (403 forbidden by policy, 502/503 upstream failure). A forced update does not help.', check_proxy_refused),
    Cause('update_server_misconfigured', 'failing', False, 'The policy points at an update server that does not work',
          'Set the TETRA update server in the policy to the region\'s Cisco host (Cisco doc 118121) or fix the custom server.',
          check_misconfigured),
    Cause('dns_resolution_failed', 'failing', False, 'The update server name does not resolve',
          'Fix name resolution of the update server on the endpoint (Resolve-DnsName -Name <server>): DNS servers, forwarders or split DNS.',
          check_dns),
    Cause('update_server_unreachable', 'failing', False, 'The update server cannot be reached on port 443',
          'Allow HTTPS (TCP 443) from the endpoint to the update server by name, not IP (Cisco doc 118121).', check_unreachable),
    Cause('tls_interception', 'failing', False, 'TLS to the update server is intercepted',
          'Exempt the TETRA update server from TLS inspection on the proxy or firewall (Cisco doc 118121).', check_interception),
    Cause('root_certificate_missing', 'failing', False, 'A root certificate the connector needs is missing',
          'Install the required root certificates in LocalMachine\\Root (Cisco doc 216943), e.g. IdenTrust Commercial Root CA 1.',
          check_root_missing),
    Cause('revocation_check_failed', 'failing', False, 'The certificate revocation check fails (CRL/OCSP servers unreachable)',
          'Allow HTTP (TCP 80) from the endpoint to commercial.ocsp.identrust.com and validation.identrust.com, directly or through the '
          'machine\'s WinHTTP proxy (netsh winhttp set proxy), since the connector checks revocation as LocalSystem.',
          check_revocation),
    Cause('tls_handshake_failed', 'failing', False, 'The TLS handshake with the update server fails',
          'Read the code in the evidence: an expired certificate usually means a wrong endpoint clock; a protocol error means TLS 1.2 '
          'is disabled (SCHANNEL registry, cipher suite policy) or a network device ends the handshake; report unknown codes to Cisco TAC.',
          check_tls_failed),
    Cause('download_interrupted', 'failing', True, 'The download from the update server is interrupted',
          'Force an update (sfc.exe -forceupdate) and check for network devices cutting long transfers.', check_interrupted),
    # Non-blocking findings: reported as secondary, never the reason definitions are behind.
    Cause('connector_too_old', 'stale', False, 'The connector is too old for a forced update',
          'Upgrade the connector (7.2.7 and later support sfc.exe -forceupdate); until then wait for the next update interval.',
          check_too_old, blocking=False),
    Cause('probes_not_run', 'unknown', False, 'Some network probes did not run',
          'Re-run the diagnosis with a longer deadline, or with context: user where the LocalSystem scheduled task cannot run; '
          'nothing is concluded from a probe that did not run.',
          check_probes_not_run, blocking=False),
    Cause('context_fallback', 'unknown', False, 'Probes could not run as LocalSystem',
          'Allow the WinRM user to register scheduled tasks, or judge the result knowing it shows the user\'s network view.',
          check_context_fallback, blocking=False),
    Cause('posture_unavailable', 'unknown', False, 'AmpCLI posture is unavailable',
          'Check the connector installation (AmpCLI.exe in the versioned folder); versions were read from local.xml.',
          check_posture_unavailable, blocking=False),
    Cause('policy_unreadable', 'unknown', False, 'policy.xml is not readable on the endpoint',
          'Read the policy from the Secure Endpoint console or API (GET /v1/policies/{guid}.xml) when its settings matter.',
          check_policy_unreadable, blocking=False),
    Cause('unrecognized_code', 'unknown', False, 'A code in no published table was reported',
          'Report the raw code (shown in unsigned, signed and hex form) to Cisco TAC with the evidence file.', check_unrecognized, blocking=False),
)

OUTCOMES: dict[str, Cause] = {cause.name: cause for cause in (
    Cause('up_to_date', 'ok', False, 'TETRA definitions are current', 'Nothing to do.'),
    Cause('connector_not_installed', 'not_installed', False, 'No Secure Endpoint connector is installed',
          'Install the Secure Endpoint connector, or remove the host from the inventory.'),
    Cause('definitions_unknown', 'unknown', False, 'The TETRA definition version could not be read',
          'Check AmpCLI.exe and local.xml on the endpoint; see the problems listed in the evidence.'),
    Cause('evidence_invalid', 'unknown', False, 'The endpoint answered with something that is not evidence',
          'Run the module with -vvv to see what the endpoint returned; check PowerShell 5.1 and the WinRM shell.'),
    Cause('intermittent_connectivity', 'stale', True, 'The update server is reachable now but updates have been failing',
          'Force an update (sfc.exe -forceupdate); if it recurs, look for intermittent connectivity between Last Seen and '
          'Definitions Last Updated. ' + ESCALATE),
    Cause('stale_definitions', 'stale', True, 'Definitions are behind and no blocking cause was found',
          'Force an update: sfc.exe -forceupdate (playbooks/remediate.yml), then re-check the version. ' + ESCALATE),
)}
OUTCOMES.update({cause.name: cause for cause in CATALOG})


# ---------------------------------------------------------------- freshness and verdict

def _hours_since(iso: str | None, now: datetime.datetime) -> float | None:
    if not iso:
        return None
    try:
        then = parse_timestamp(iso)
    except (TypeError, ValueError):
        return None
    return round((now - then).total_seconds() / 3600.0, 1)


def freshness_of(facts: Facts, freshness: Facts) -> Facts:
    """Versions and ages the verdict reports."""
    version = facts.get('tetra_version')
    latest = freshness.get('latest')
    behind = max(latest - version, 0) if isinstance(latest, int) and isinstance(version, int) else None
    return {
        'connector': (facts.get('install') or {}).get('connector_version'),
        'tetra': version,
        'latest': latest,
        'latest_source': freshness.get('source') or ('unknown' if latest is None else 'given'),
        'behind': behind,
    }


def is_current(versions: Facts, age_hours: float | None, freshness: Facts) -> bool | None:
    """True/False when it can be told, None when the version is unknown."""
    if versions['tetra'] is None:
        return None
    if versions['behind'] is not None and versions['behind'] > int(freshness.get('max_behind', 5)):
        return False
    max_age = freshness.get('max_age_hours', DEFAULT_MAX_AGE_HOURS)
    if max_age and age_hours is not None and age_hours > float(max_age):
        return False
    # Without a known latest version a host is judged by age alone, and says so in latest_source.
    return True


def findings(facts: Facts) -> list[tuple[Cause, list[str]]]:
    """Every catalog cause whose check holds, in catalog (priority) order."""
    found = []
    for cause in CATALOG:
        lines = cause.check(facts) if cause.check else None
        if lines:
            found.append((cause, lines))
    return found


def _stale_outcome(facts: Facts, now: datetime.datetime) -> str:
    if check_too_old(facts):
        return 'connector_too_old'
    checked = _hours_since((facts.get('local') or {}).get('last_check'), now)
    if checked is not None and checked <= RECENT_CHECK_HOURS and _lasterror(facts).get('unsigned'):
        return 'intermittent_connectivity'
    return 'stale_definitions'


def _intermittent_lines(facts: Facts, now: datetime.datetime) -> list[str]:
    error = _lasterror(facts)
    known = 'not in Cisco\'s published table' if not error.get('known') else error.get('problem')
    return ['local.xml lasterror %s (signed %s, %s): %s' % (error.get('unsigned'), error.get('signed'), error.get('hex'), known),
            'last update check %.1f h ago' % (_hours_since((facts.get('local') or {}).get('last_check'), now) or 0.0)]


def choose_primary(facts: Facts, versions: Facts, current: bool | None, found: list[tuple[Cause, list[str]]], now: datetime.datetime) -> str:
    """The deterministic rule (docs/causes.md): not installed; a blocking finding on a host that is behind at all;
    current; then the stale outcomes."""
    if not facts.get('installed'):
        return 'connector_not_installed'
    blocking = [finding[0].name for finding in found if finding[0].blocking]
    # Cisco publishes about 4 versions a day: a blocking problem on a host that missed even one is why it missed it.
    if blocking and (not current or versions['behind'] != 0):
        return blocking[0]
    if current:
        return 'up_to_date'
    if current is None:
        return 'definitions_unknown'
    return _stale_outcome(facts, now)


def _finding(cause: Cause, lines: list[str]) -> Facts:
    return {'cause': cause.name, 'summary': cause.summary, 'evidence': lines, 'action': cause.action, 'remediable': cause.remediable}


def _version_lines(versions: Facts, age_hours: float | None) -> list[str]:
    if versions['tetra'] is None:
        return []
    line = 'TETRA %s' % versions['tetra']
    if versions['latest'] is not None:
        line += ' vs latest %s (%s behind, latest from %s)' % (versions['latest'], versions['behind'], versions['latest_source'])
    if age_hours is not None:
        line += '; last successful update %.1f h ago' % age_hours
    return [line]


def diagnose(facts: Facts, freshness: Facts, host: str | None = None, now: datetime.datetime | None = None) -> Facts:
    """The verdict for one host (docs/evidence.md, "Verdict"); a document with wrong-typed fields is evidence_invalid."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if facts.get('invalid'):
        return invalid_evidence_verdict(host or (facts.get('host') or {}).get('computer_name') or 'endpoint', facts['invalid'], now)
    versions = freshness_of(facts, freshness)
    last_success = (facts.get('local') or {}).get('last_success')
    age_hours = _hours_since(last_success, now)
    current = is_current(versions, age_hours, freshness) if facts.get('installed') else None
    found = findings(facts) if facts.get('installed') else []
    primary = OUTCOMES[choose_primary(facts, versions, current, found, now)]
    evidence = next((lines for cause, lines in found if cause.name == primary.name), [])
    if primary.name == 'intermittent_connectivity':
        evidence = _intermittent_lines(facts, now)
    if primary.name == 'connector_too_old':
        found = [(c, lines) for c, lines in found if c.name != 'connector_too_old']
    return {
        'host': host or (facts.get('host') or {}).get('computer_name'),
        'status': primary.status,
        'cause': primary.name,
        'summary': primary.summary,
        'evidence': evidence + _version_lines(versions, age_hours) + (context_lines(facts) if facts.get('installed') else []),
        'action': primary.action,
        'remediable': primary.remediable,
        'secondary': [_finding(cause, lines) for cause, lines in found if cause.name != primary.name],
        'versions': versions,
        'last_success': last_success,
        'age_hours': age_hours,
        'checked_at': format_timestamp(now),
    }


def invalid_evidence_verdict(host: str, message: str, now: datetime.datetime | None = None) -> Facts:
    """The verdict for a host whose endpoint answered with garbage: a row, never a missing host."""
    now = now or utc_moment()
    cause = OUTCOMES['evidence_invalid']
    return {
        'host': host, 'status': cause.status, 'cause': cause.name, 'summary': cause.summary, 'evidence': [message],
        'action': cause.action, 'remediable': False, 'secondary': [],
        'versions': {'connector': None, 'tetra': None, 'latest': None, 'latest_source': 'unknown', 'behind': None},
        'last_success': None, 'age_hours': None, 'checked_at': format_timestamp(now),
    }
