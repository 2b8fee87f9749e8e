# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts -> findings -> one verdict per host. All diagnostic rules of the collection live here.

A *check* looks at the facts and returns the evidence lines that prove a finding, or nothing.
``CATALOG`` lists every cause in priority order: when several findings hold, the first one in the
catalog is the primary cause and the others are listed as secondary findings. docs/causes.md is the
reader's version of the same table.

The checks live in _diagnosis_endpoint (the endpoint itself) and _diagnosis_network (every network cause),
on the shared types and readers of _diagnosis_base; this module holds the catalog and the verdict and
re-exports the names callers import from here.
"""

from __future__ import annotations

import datetime

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import format_timestamp, parse_timestamp, utc_moment
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_base import (
    DEFAULT_MAX_AGE_HOURS, ESCALATE, FORCEUPDATE_MIN_VERSION, LASTERROR_CAUSES, RECENT_CHECK_HOURS, TRUSTED_ISSUER_MARKERS,
    Cause, Check, Facts, _lasterror, _lasterror_is, version_tuple,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_endpoint import (
    POLICY_LOCKED_VERSION, check_context_fallback, check_disconnected, check_policy_unreadable, check_posture_unavailable,
    check_probes_not_run, check_service_stopped, check_tetra_disabled, check_too_old, context_lines,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_network import (
    check_dns, check_interception, check_interrupted, check_misconfigured, check_proxy_auth, check_proxy_refused,
    check_proxy_unreachable, check_revocation, check_root_missing, check_tls_failed, check_unreachable, check_unrecognized,
    curl_kind,
)

__all__ = [
    'CATALOG', 'Cause', 'Check', 'DEFAULT_MAX_AGE_HOURS', 'ESCALATE', 'FORCEUPDATE_MIN_VERSION', 'Facts',
    'LASTERROR_CAUSES', 'OUTCOMES', 'POLICY_LOCKED_VERSION', 'RECENT_CHECK_HOURS', 'TRUSTED_ISSUER_MARKERS',
    'check_context_fallback', 'check_disconnected', 'check_dns', 'check_interception', 'check_interrupted',
    'check_misconfigured', 'check_policy_unreadable', 'check_posture_unavailable', 'check_probes_not_run',
    'check_proxy_auth', 'check_proxy_refused', 'check_proxy_unreachable', 'check_revocation', 'check_root_missing',
    'check_service_stopped', 'check_tetra_disabled', 'check_tls_failed', 'check_too_old', 'check_unreachable',
    'check_unrecognized', 'choose_primary', 'context_lines', 'curl_kind', 'diagnose', 'findings', 'freshness_of',
    'invalid_evidence_verdict', 'is_current', 'version_tuple',
]


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
          'Check download problems in the proxy logs.', _lasterror_is('proxy_download_failed')),
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
