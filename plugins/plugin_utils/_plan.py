# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The action plan: hosts that need action, grouped by cause, by what they share, and by owning team.

Forty hosts behind the same proxy with the same failure are one ticket for the proxy team, not forty
rows. Every report record carries ``attributes`` (what a host shares with others: proxy, DNS servers,
update server, intercepting issuer, policy, /24 subnet), derived here from the diagnosis facts (and
from the saved evidence file for what the facts do not carry). ``build_plan`` then groups the records
that are not ``ok``: one group per cause and shared value, the attribute chosen per cause in the order
that most likely names the root cause (a DNS failure is about the DNS servers first, a proxy failure
about the proxy). Each group says the cause, the team, the action once, the shared attribute and the
hosts. Nothing here touches an endpoint.
"""

from __future__ import annotations

import ipaddress
import json
import typing as t

# Attribute key -> how a sentence names it ("all using DNS servers 10.0.0.53").
ATTRIBUTES: dict[str, str] = {
    'proxy': 'proxy',
    'dns_servers': 'DNS servers',
    'update_server': 'update server',
    'issuer': 'intercepting issuer',
    'policy': 'policy',
    'subnet': 'subnet',
}

# Which shared attribute most likely names the root cause, per cause, best first. Causes not listed
# use DEFAULT_KEYS.
CAUSE_KEYS: dict[str, tuple[str, ...]] = {
    'proxy_auth_failed': ('proxy', 'policy'),
    'proxy_unreachable': ('proxy', 'subnet'),
    'proxy_download_failed': ('proxy',),
    'proxy_refused': ('proxy', 'policy'),
    'tls_handshake_failed': ('issuer', 'proxy', 'subnet'),
    'dns_resolution_failed': ('dns_servers', 'subnet'),
    'update_server_unreachable': ('proxy', 'subnet', 'update_server'),
    'update_server_misconfigured': ('update_server', 'policy'),
    'tls_interception': ('issuer', 'proxy', 'subnet'),
    'root_certificate_missing': ('policy', 'subnet'),
    'revocation_check_failed': ('proxy', 'subnet'),
    'connector_disconnected': ('proxy', 'subnet'),
    'tetra_disabled': ('policy',),
    'download_interrupted': ('proxy', 'subnet'),
    'intermittent_connectivity': ('proxy', 'subnet'),
    'host_unreachable': ('subnet',),
    'authentication_failed': ('subnet',),
}
DEFAULT_KEYS: tuple[str, ...] = ('policy', 'subnet')

# Owning team per cause (the cause catalog, plugins/plugin_utils/_diagnosis.py, says what to do; this says who).
TEAM_LABELS: dict[str, str] = {
    'network': 'network/firewall team',
    'proxy': 'proxy team',
    'security': 'PKI/security team',
    'console': 'Secure Endpoint console admins',
    'endpoint': 'endpoint team',
}
TEAMS: dict[str, str] = {
    'dns_resolution_failed': 'network',
    'update_server_unreachable': 'network',
    'revocation_check_failed': 'network',
    'connector_disconnected': 'network',
    'download_interrupted': 'network',
    'intermittent_connectivity': 'network',
    'proxy_auth_failed': 'proxy',
    'proxy_unreachable': 'proxy',
    'proxy_download_failed': 'proxy',
    'proxy_refused': 'proxy',
    'tls_interception': 'security',
    'tls_handshake_failed': 'security',
    'root_certificate_missing': 'security',
    'tetra_disabled': 'console',
    'update_server_misconfigured': 'console',
    'service_stopped': 'endpoint',
    'connector_too_old': 'endpoint',
    'connector_not_installed': 'endpoint',
    'stale_definitions': 'endpoint',
    'definitions_unknown': 'endpoint',
    'evidence_invalid': 'endpoint',
    'host_unreachable': 'endpoint',
    'authentication_failed': 'endpoint',
    'task_failed': 'endpoint',
    'not_diagnosed': 'endpoint',
    'probes_not_run': 'endpoint',
    'unrecognized_code': 'endpoint',
    'computer_offline': 'endpoint',
    'console_lagging': 'console',
    'console_update_gap': 'network',
    'console_faults': 'endpoint',
    'context_fallback': 'endpoint',
    'posture_unavailable': 'endpoint',
    'policy_unreadable': 'console',
}
DEFAULT_TEAM = 'endpoint'
# Issuers that legitimately sign Cisco's TETRA update servers (as _diagnosis.TRUSTED_ISSUER_MARKERS).
_TRUSTED_ISSUERS = ('identrust', 'hydrantid', 'cisco')

Record = dict[str, t.Any]


# --- attributes of one host -------------------------------------------------------------------


def _d(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _proxy_text(proxy: t.Any) -> str | None:
    proxy = _d(proxy)
    server = str(proxy.get('server') or '').strip()
    if not server:
        return ('PAC %s' % proxy['pac_url']) if proxy.get('pac_url') else None
    return '%s:%s' % (server.lower(), proxy['port']) if proxy.get('port') else server.lower()


def _issuer_cn(issuer: str) -> str:
    """'CN=Corp TLS Inspection CA, O=Corp' -> 'Corp TLS Inspection CA' (the whole text when there is no CN)."""
    for part in issuer.split(','):
        key, _sep, value = part.strip().partition('=')
        if key.strip().upper() == 'CN' and value.strip():
            return value.strip()
    return issuer.strip()


def foreign_issuer(tls: dict[str, t.Any]) -> str | None:
    issuers = tls.get('issuers') or ([tls['leaf_issuer']] if tls.get('leaf_issuer') else [])
    for issuer in issuers:
        if issuer and not any(marker in str(issuer).lower() for marker in _TRUSTED_ISSUERS):
            return _issuer_cn(str(issuer))
    return None


def subnet_of(address: t.Any, prefix: int = 24) -> str | None:
    """'10.1.2.37' -> '10.1.2.0/24'; None for names and anything that is not an IPv4 address."""
    try:
        ip = ipaddress.IPv4Address(str(address or '').strip())
    except ValueError:
        return None
    return str(ipaddress.IPv4Network('%s/%d' % (ip, prefix), strict=False))


def _saved_system(path: t.Any) -> dict[str, t.Any]:
    """The raw ``system`` section of a saved evidence file (evidence_dir), or {}."""
    if not path:
        return {}
    try:
        with open(str(path), encoding='utf-8') as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return _d(_d(_d(record).get('evidence')).get('system'))


def attributes(result: t.Any, address: t.Any = None) -> dict[str, str]:
    """What a host may share with others, from its diagnosis result; unknown attributes are left out.

    ``address`` is the inventory address (``ansible_host``), which gives the /24 subnet.
    """
    result = _d(result)
    facts = _d(result.get('facts'))
    local, policy, probes = _d(facts.get('local')), _d(facts.get('policy')), _d(facts.get('probes'))
    system = _d(facts.get('system')) or _saved_system(result.get('evidence_path'))
    found: dict[str, t.Any] = {
        'proxy': _proxy_text(policy.get('proxy')) or _proxy_text(local.get('proxy')) or _proxy_text(probes.get('proxy')),
        'dns_servers': ', '.join(str(s) for s in system.get('dns_servers') or [] if s) or None,
        'update_server': policy.get('update_server') or _d(probes.get('tls')).get('host'),
        'issuer': foreign_issuer(_d(probes.get('tls'))),
        'policy': policy.get('policy_name') or policy.get('policy_uuid') or local.get('policy_uuid'),
        'subnet': subnet_of(address),
    }
    return {key: str(value) for key, value in found.items() if value}


# --- the plan -----------------------------------------------------------------------------------


def team_of(cause: str, teams: dict[str, str] | None = None) -> str:
    return str((teams or {}).get(cause) or TEAMS.get(cause) or DEFAULT_TEAM)


def team_label(team: str) -> str:
    return TEAM_LABELS.get(team, '%s team' % team)


def _shared(record: Record, keys: tuple[str, ...]) -> tuple[str, str] | None:
    values = record.get('attributes') or {}
    for key in keys:
        if values.get(key):
            return key, str(values[key])
    return None


def sentence(group: dict[str, t.Any]) -> str:
    """'dns_resolution_failed: 37 hosts, all using DNS servers 10.0.0.53 -> network/firewall team'."""
    count = len(group['hosts'])
    text = '%s: %d host%s' % (group['cause'], count, '' if count == 1 else 's')
    shared = group.get('shared')
    if shared:
        text += ', %s %s %s' % ('all using' if count > 1 else 'using', shared['label'], shared['value'])
    return '%s -> %s' % (text, team_label(group['team']))


def build_plan(records: list[Record], teams: dict[str, str] | None = None,
               status_order: t.Sequence[str] = ()) -> list[dict[str, t.Any]]:
    """Groups of the records that need action (status not ok), largest first.

    Records of one cause are split by the first attribute of ``CAUSE_KEYS[cause]`` each host has; hosts
    with none of them form one group without a shared attribute.
    """
    groups: dict[tuple[str, str, str], dict[str, t.Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get('host'))):
        if record.get('status') == 'ok':
            continue
        cause = str(record.get('cause') or 'unknown')
        shared = _shared(record, CAUSE_KEYS.get(cause, DEFAULT_KEYS))
        key = (cause,) + (shared or ('', ''))
        group = groups.get(key)
        if group is None:
            team = team_of(cause, teams)
            group = groups[key] = {
                'cause': cause, 'status': record.get('status'), 'team': team, 'team_label': team_label(team),
                'action': record.get('action') or '', 'remediable': bool(record.get('remediable')),
                'summary': record.get('summary') or '',
                'shared': {'attribute': shared[0], 'label': ATTRIBUTES.get(shared[0], shared[0]), 'value': shared[1]}
                if shared else None,
                'hosts': [],
            }
        group['hosts'].append(str(record.get('host')))
    ordered = sorted(groups.values(), key=lambda g: (-len(g['hosts']), _rank(g['status'], status_order), g['cause'],
                                                     (g['shared'] or {}).get('value') or ''))
    for group in ordered:
        group['count'] = len(group['hosts'])
        group['text'] = sentence(group)
    return ordered


def _rank(status: t.Any, order: t.Sequence[str]) -> int:
    return list(order).index(status) if status in order else len(order)


def plan_lines(plan: list[dict[str, t.Any]], limit: int | None = None, hosts_shown: int = 5) -> list[str]:
    """The plan as short text lines (callback, playbook output): one per group, then its action and hosts."""
    lines = []
    for group in plan[:limit] if limit is not None else plan:
        hosts = group['hosts']
        names = ', '.join(hosts[:hosts_shown]) + (' and %d more' % (len(hosts) - hosts_shown) if len(hosts) > hosts_shown else '')
        lines.append(group.get('text') or sentence(group))
        lines.append('    action: %s' % group['action'])
        lines.append('    hosts: %s' % names)
    if limit is not None and len(plan) > limit:
        lines.append('... and %d more groups: see the report' % (len(plan) - limit))
    return lines
