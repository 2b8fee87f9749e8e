# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_tls_probe through the shared fake connection: the handshake, the chain, revocation and the required roots."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_tls_probe import ActionModule
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import (
    SERVER, healthy_document, interception, revocation_blocked, root_missing,
)


def test_a_clean_handshake_is_ok(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(ActionModule, connection)
    assert connection.actions == ['collect'] and connection.request()['sections'] == ['dns', 'tls', 'curl', 'http', 'roots']
    assert result['ok'] is True and result['changed'] is False and not result.get('failed')
    assert result['interception'] == [] and result['revocation_problem'] == [] and result['missing_roots'] == []
    assert result['tls']['host'] == SERVER and len(result['revocation_hosts']) == 2 and result['roots'][0]['present'] is True
    assert result['msg'] == 'TLS to %s ok (revocation checked)' % SERVER


@pytest.mark.parametrize('mutate, key, label', [
    (interception, 'interception', 'TLS INTERCEPTED: '),
    (root_missing, 'missing_roots', 'ROOT MISSING: '),
    (revocation_blocked, 'revocation_problem', 'REVOCATION CHECK FAILS: '),
], ids=['interception', 'root missing', 'revocation'])
def test_a_failed_handshake_names_its_cause_first(mutate, key, label, fake_connection, run_action):
    result = run_action(ActionModule, fake_connection(mutate(healthy_document())))
    assert result['ok'] is False and not result.get('failed')
    assert result[key] and result['msg'] == label + result[key][0]


def test_check_mode_only_reads_so_it_probes_the_same(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    assert run_action(ActionModule, connection, check_mode=True)['ok'] is True and len(connection.calls) == 1


@pytest.mark.parametrize('args, text', [
    ({'update_server': 'evil.example/ -o C:\\x'}, 'update_server must be a DNS host name'),
    ({'timeouts': {'tls': 301}}, 'timeouts.tls must be a whole number of seconds from 1 to 300'),
    ({'timeouts': {'handshake': 5}}, 'Unsupported parameters .* timeouts.handshake'),
    ({'deadline': 5}, 'deadline must be a whole number of seconds from 10 to 3600'),
])
def test_bad_arguments_fail_clearly_before_any_call(args, text, fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match=text):
        run_action(ActionModule, connection, args)
    assert connection.calls == []
