# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Checks of the endpoint itself: TETRA disabled, service stopped, disconnected connector, posture and policy
unreadable, fallbacks, probes not run, too old for a forced update; and the context lines of a verdict.
Part of the diagnosis (_diagnosis.py).
"""

from __future__ import annotations

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_base import FORCEUPDATE_MIN_VERSION, Facts, _probes, version_tuple
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis_network import (
    _connector_proxy, _curl, _direct_path_context, _dns_lines, _unreachable_lines, curl_kind,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import not_run_probes


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
