# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One-line ``msg`` texts of the endpoint modules, the verdict (or the finding) first.

Ad hoc runs (``ansible windows -m secure_endpoint.tetra.tetra_diagnose``) print whole results; the
``msg`` says in one line what the facts below it prove. The facts are still returned.
"""

from __future__ import annotations

import typing as t

Data = t.Dict[str, t.Any]


def _first_sentence(text: t.Any) -> str:
    value = ' '.join(str(text or '').split())
    head, dot, _rest = value.partition('. ')
    return head + ('.' if dot else '')


def verdict_msg(verdict: Data) -> str:
    """'failing: dns_resolution_failed - The update server name does not resolve (TETRA 90601, 5 behind). Action: ...'."""
    versions = verdict.get('versions') or {}
    numbers = []
    if versions.get('tetra') is not None:
        numbers.append('TETRA %s' % versions['tetra'])
    if versions.get('behind') is not None:
        numbers.append('%s behind' % versions['behind'])
    text = '%s: %s - %s' % (verdict.get('status') or 'unknown', verdict.get('cause') or 'unknown', verdict.get('summary') or '')
    if numbers:
        text += ' (%s)' % ', '.join(numbers)
    if verdict.get('status') != 'ok' and verdict.get('action'):
        text += '. Action: %s' % _first_sentence(verdict['action'])
        if verdict.get('remediable'):
            text += ' (remediable: playbooks/remediate.yml)'
    return ' '.join(text.split())


def with_verdict_msg(result: Data) -> Data:
    """The module result with ``msg`` set from its verdict (results without a verdict are left alone)."""
    if isinstance(result.get('verdict'), dict):
        result['msg'] = verdict_msg(result['verdict'])
    return result


def posture_msg(result: Data) -> str:
    if not result.get('installed'):
        return 'No Secure Endpoint connector is installed on this host'
    names: dict[t.Any, str] = {True: 'connected', False: 'NOT connected'}
    connected = names.get(result.get('connected'), 'connection unknown')
    return 'connector %s, TETRA %s (from %s), %s, service %s' % (
        result.get('connector_version') or 'unknown', result.get('tetra_version') if result.get('tetra_version') is not None else 'unknown',
        result.get('tetra_version_source') or 'nowhere', connected, (result.get('service') or {}).get('state') or 'missing')


def resolve_msg(result: Data) -> str:
    names = [entry.get('name') for entry in result.get('results') or []]
    if not names:
        return 'no name was resolved'
    if result.get('resolved'):
        return 'resolved: %s (as %s)' % (', '.join(str(n) for n in names), result.get('context') or 'unknown context')
    return 'DOES NOT RESOLVE: %s (as %s)' % (', '.join(str(n) for n in result.get('failed_names') or []), result.get('context') or 'unknown context')


def tls_msg(result: Data) -> str:
    host = (result.get('tls') or {}).get('host') or 'the update server'
    for key, label in (('interception', 'TLS INTERCEPTED'), ('missing_roots', 'ROOT MISSING'), ('revocation_problem', 'REVOCATION CHECK FAILS')):
        if result.get(key):
            return '%s: %s' % (label, result[key][0])
    if result.get('ok'):
        return 'TLS to %s ok (revocation checked)' % host
    return 'TLS handshake with %s failed' % host


def proxy_msg(result: Data) -> str:
    probe = result.get('probe') or {}
    if not result.get('configured'):
        return 'no proxy configured (policy, local.xml): direct connection'
    target = '%s:%s' % (probe.get('server'), probe.get('port')) if probe.get('server') else 'the configured proxy'
    lasterror = result.get('lasterror') or {}
    tail = ('; local.xml lasterror %s (%s)' % (lasterror.get('signed'), lasterror.get('problem'))) if lasterror.get('unsigned') else ''
    if probe.get('connect_ok') is False:
        return 'PROXY UNREACHABLE: connecting to %s failed%s' % (target, tail)
    if probe.get('connect_status') == 407:
        return 'PROXY AUTHENTICATION REQUIRED: %s answered 407 to CONNECT%s' % (target, tail)
    if probe.get('connect_status') is not None:
        return 'proxy %s answered %s to CONNECT%s' % (target, probe.get('connect_status'), tail)
    return 'proxy %s configured%s' % (target, tail)
