# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_proxy through the shared fake connection: the configured proxy, the connector's lasterror and the CONNECT probe."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_proxy import ActionModule
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import SERVER, healthy_document, proxy


def test_no_proxy_is_a_direct_connection(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(ActionModule, connection)
    assert connection.actions == ['collect'] and connection.request()['sections'] == ['files', 'system', 'proxy']
    assert result['configured'] is False and result['probe'] is None and result['changed'] is False
    assert result['msg'] == 'no proxy configured (policy, local.xml): direct connection'


@pytest.mark.parametrize('lasterror, connect_ok, status, msg', [
    (4294965196, True, 407, 'PROXY AUTHENTICATION REQUIRED: proxy.corp.example:8080 answered 407 to CONNECT; '
                            'local.xml lasterror -2100 (cannot authenticate with the proxy)'),
    (4294965193, False, None, 'PROXY UNREACHABLE: connecting to proxy.corp.example:8080 failed; local.xml lasterror -2103 (cannot connect to the proxy)'),
    (0, True, 403, 'proxy proxy.corp.example:8080 answered 403 to CONNECT'),
], ids=['407', 'unreachable', '403'])
def test_the_proxy_and_the_connectors_lasterror_are_reported(lasterror, connect_ok, status, msg, fake_connection, run_action):
    result = run_action(ActionModule, fake_connection(proxy(healthy_document(), lasterror, connect_ok, status)))
    assert result['configured'] is True and not result.get('failed')
    assert result['lasterror']['unsigned'] == lasterror and result['local_proxy'] is not None
    assert result['msg'] == msg


def test_the_winhttp_proxy_setting_is_reported(fake_connection, run_action):
    result = run_action(ActionModule, fake_connection(healthy_document()))
    assert 'Direct access (no proxy server).' in result['winhttp_proxy']


def test_check_mode_only_reads_so_it_probes_the_same(fake_connection, run_action):
    connection = fake_connection(proxy(healthy_document(), 4294965196, status=407))
    assert run_action(ActionModule, connection, check_mode=True)['probe']['connect_status'] == 407 and len(connection.calls) == 1


@pytest.mark.parametrize('args, text', [
    ({'proxy_server': 'proxy.corp.example', 'proxy_port': 70000}, 'proxy_port must be between 1 and 65535, got 70000'),
    ({'proxy_server': 'proxy corp'}, 'proxy_server must be a DNS host name'),
    ({'update_server': SERVER + ';calc'}, 'update_server must be a DNS host name'),
    ({'context': 'admin'}, 'value of context must be one of'),
])
def test_bad_arguments_fail_clearly_before_any_call(args, text, fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match=text):
        run_action(ActionModule, connection, args)
    assert connection.calls == []
