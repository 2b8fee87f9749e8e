# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_resolve through the shared fake connection: the DNS probe of the update server and the revocation hosts."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_resolve import ActionModule
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import SERVER, dns_failure, healthy_document

NAMES = [SERVER, 'commercial.ocsp.identrust.com', 'validation.identrust.com']


def test_every_name_resolves(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(ActionModule, connection)
    assert connection.actions == ['collect'] and connection.request()['sections'] == ['system', 'dns']
    assert result['resolved'] is True and result['failed_names'] == [] and result['changed'] is False
    assert (result['update_server'], result['context']) == (SERVER, 'system')
    assert [entry['name'] for entry in result['results']] == NAMES
    assert result['msg'] == 'resolved: %s (as system)' % ', '.join(NAMES)


def test_the_endpoints_dns_servers_are_reported(fake_connection, run_action):
    assert run_action(ActionModule, fake_connection(healthy_document()))['dns_servers'] == ['10.0.0.53']


def test_a_name_that_does_not_resolve_is_named(fake_connection, run_action):
    result = run_action(ActionModule, fake_connection(dns_failure(healthy_document())))
    assert result['resolved'] is False and result['failed_names'] == [SERVER] and not result.get('failed')
    assert result['msg'] == 'DOES NOT RESOLVE: %s (as system)' % SERVER


def test_check_mode_only_reads_so_it_probes_the_same(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(ActionModule, connection, check_mode=True)
    assert len(connection.calls) == 1 and result['resolved'] is True and result['changed'] is False


@pytest.mark.parametrize('args, text', [
    ({'update_server': 'tetra-defs.amp.cisco.com\n'}, 'update_server must be a DNS host name'),
    ({'revocation_hosts': ['validation.identrust.com', 'a b']}, 'revocation_hosts'),
    ({'timeouts': {'dns': 0}}, 'timeouts.dns must be a whole number of seconds from 1 to 300'),
    ({'bogus': 1}, 'Unsupported parameters'),
])
def test_bad_arguments_fail_clearly_before_any_call(args, text, fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match=text):
        run_action(ActionModule, connection, args)
    assert connection.calls == []


def test_an_unreachable_endpoint_is_unreachable(fake_connection, run_action):
    result = run_action(ActionModule, fake_connection(AnsibleConnectionFailure('Connection refused')))
    assert result['unreachable'] is True and 'Connection refused' in result['msg']
