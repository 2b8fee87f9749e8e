# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _diagnosis, _messages


def verdict(cause: str, **extra: t.Any) -> dict[str, t.Any]:
    outcome = _diagnosis.OUTCOMES[cause]
    return dict({'status': outcome.status, 'cause': cause, 'summary': outcome.summary, 'action': outcome.action,
                 'remediable': outcome.remediable, 'versions': {'tetra': 90601, 'behind': 5}}, **extra)


def test_verdict_msg_is_one_line_with_the_verdict_first() -> None:
    text = _messages.verdict_msg(verdict('dns_resolution_failed'))
    assert text.startswith('failing: dns_resolution_failed - The update server name does not resolve (TETRA 90601, 5 behind). Action: ')
    assert '\n' not in text
    stale = _messages.verdict_msg(verdict('stale_definitions'))
    assert stale.endswith('(remediable: playbooks/remediate.yml)')
    assert 'ESCALATE' not in stale and 'TAC case' not in stale, 'only the first sentence of the action'
    ok = _messages.verdict_msg(verdict('up_to_date', versions={'tetra': 90606, 'behind': 0}))
    assert ok == 'ok: up_to_date - TETRA definitions are current (TETRA 90606, 0 behind)'


def test_with_verdict_msg_leaves_other_results_alone() -> None:
    assert _messages.with_verdict_msg({'unreachable': True, 'msg': 'refused'}) == {'unreachable': True, 'msg': 'refused'}
    result = _messages.with_verdict_msg({'verdict': verdict('tls_interception'), 'facts': {'x': 1}})
    assert result['msg'].startswith('failing: tls_interception') and result['facts'] == {'x': 1}


def test_module_messages() -> None:
    assert _messages.posture_msg({'installed': False}) == 'No Secure Endpoint connector is installed on this host'
    assert _messages.posture_msg({'installed': True, 'connector_version': '8.1.7', 'tetra_version': 90606, 'tetra_version_source': 'posture',
                                  'connected': False, 'service': {'state': 'Running'}}) == \
        'connector 8.1.7, TETRA 90606 (from posture), NOT connected, service Running'
    assert _messages.resolve_msg({'results': [{'name': 'a'}], 'resolved': True, 'context': 'system'}) == 'resolved: a (as system)'
    assert _messages.resolve_msg({'results': [{'name': 'a'}], 'resolved': False, 'failed_names': ['a'], 'context': 'user'}) == \
        'DOES NOT RESOLVE: a (as user)'
    assert _messages.resolve_msg({'results': []}) == 'no name was resolved'
    assert _messages.tls_msg({'tls': {'host': 'h'}, 'ok': True}) == 'TLS to h ok (revocation checked)'
    assert _messages.tls_msg({'interception': ['h presented a certificate issued by X']}).startswith('TLS INTERCEPTED: h presented')
    assert _messages.tls_msg({'tls': {}, 'ok': False}) == 'TLS handshake with the update server failed'
    assert _messages.proxy_msg({'configured': False}).startswith('no proxy configured')
    assert _messages.proxy_msg({'configured': True, 'probe': {'server': 'p', 'port': 8080, 'connect_ok': True, 'connect_status': 407},
                                'lasterror': {'unsigned': 4294965196, 'signed': -2100, 'problem': 'proxy auth'}}) == \
        'PROXY AUTHENTICATION REQUIRED: p:8080 answered 407 to CONNECT; local.xml lasterror -2100 (proxy auth)'
    assert _messages.proxy_msg({'configured': True, 'probe': {'server': 'p', 'port': 1, 'connect_ok': False}}).startswith('PROXY UNREACHABLE')
    assert _messages.proxy_msg({'configured': True, 'probe': {'server': 'p', 'port': 1, 'connect_status': 200}}) == \
        'proxy p:1 answered 200 to CONNECT'
