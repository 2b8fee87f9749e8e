# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The secure_endpoint.tetra.computers inventory plugin with the API answers recorded."""

from __future__ import annotations

import datetime
import json
import os

import pytest
import yaml

from ansible import constants as C
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.doc_fragments.constructed import ModuleDocFragment as Constructed
from ansible.plugins.doc_fragments.inventory_cache import ModuleDocFragment as InventoryCache

from ansible_collections.secure_endpoint.tetra.plugins.doc_fragments.console import ModuleDocFragment as ConsoleFragment
from ansible_collections.secure_endpoint.tetra.plugins.inventory import computers
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console_api import ConsoleClient

NAME = 'secure_endpoint.tetra.computers'
KEY = 'S3cret-api-key-never-shown'
NOW = datetime.datetime.now(datetime.timezone.utc)


def ago(hours: float) -> str:
    return (NOW - datetime.timedelta(hours=hours)).strftime('%Y-%m-%dT%H:%M:%S+00:00')


def record(name, status='Definitions Up To Date', updated_h=1.0, seen_h=0.1, ips=('10.0.0.5',), os_name='Windows 11 Pro',
           version='8.1.7.21417', guid=None, group='Workstations'):
    return {'connector_guid': guid or 'guid-%s' % name, 'hostname': name, 'active': True, 'connector_version': version,
            'operating_system': os_name, 'internal_ips': list(ips), 'external_ip': '203.0.113.7',
            'network_addresses': [{'mac': '00:11:22:33:44:55', 'ip': ips[0] if ips else None}],
            'groups': [{'guid': 'g-%s' % group, 'name': group}], 'group_guid': 'g-%s' % group,
            'policy': {'guid': 'p1', 'name': 'Protect'}, 'last_seen': ago(seen_h), 'faults': [],
            'av_update_definitions': {'status': status, 'version': '90606', 'updated_at': ago(updated_h),
                                      'detection_engine': 'TETRA 64 bit'}}


FLEET = [
    record('ep-001.corp.example'),
    record('ep-002.corp.example', status='Definitions Update Failed', updated_h=40),
    record('ep-003.corp.example', ips=('169.254.10.1', '10.0.0.9'), version='7.5.7.21234'),
    record('ep-004.corp.example', seen_h=100, updated_h=101),
    record('mac-01.corp.example', os_name='macOS 14.5'),
    record('srv-01.corp.example', os_name='Windows Server 2019 Standard', group='Servers'),
]


class Answer:
    def __init__(self, data):
        self.body = json.dumps(data).encode()
        self.headers = {}

    def read(self):
        return self.body


@pytest.fixture
def api(monkeypatch):
    """Serves FLEET in pages of the requested size; records every URL and the credentials used."""
    calls = []

    def opener(url, **kwargs):
        calls.append({'url': url, 'user': kwargs['url_username'], 'key': kwargs['url_password']})
        query = dict(part.split('=', 1) for part in url.split('?', 1)[1].split('&'))
        limit, offset = int(query['limit']), int(query.get('offset', 0))
        links = {}
        if offset + limit < len(FLEET):
            links['next'] = 'https://api.amp.cisco.com/v1/computers?limit=%d&offset=%d' % (limit, offset + limit)
        return Answer({'metadata': {'links': links}, 'data': FLEET[offset:offset + limit]})

    def factory(*args, **kwargs):
        return ConsoleClient(*args, opener=opener, sleep=lambda s: None, **kwargs)

    monkeypatch.setattr(computers, 'ConsoleClient', factory)
    return calls


def options() -> dict:
    merged = {}
    for text in (Constructed.DOCUMENTATION, InventoryCache.DOCUMENTATION, ConsoleFragment.DOCUMENTATION, computers.DOCUMENTATION):
        merged.update(yaml.safe_load(text)['options'])
    return merged


def run(tmp_path, config: dict, name='fleet.computers.yml'):
    plugin = computers.InventoryModule()
    plugin._load_name = NAME
    C.config.initialize_plugin_configuration_definitions('inventory', NAME, options())
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict({'plugin': NAME, 'client_id': 'client-1', 'api_key': KEY}, **config)))
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=False)
    return inventory


def members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts()) if group in inventory.groups else []


def test_verify_file(tmp_path):
    plugin = computers.InventoryModule()
    for name, ok in (('prod.computers.yml', True), ('computers.yaml', True), ('inventory.yml', False), ('hosts.ini', False)):
        path = tmp_path / name
        path.write_text('plugin: %s\n' % NAME)
        assert plugin.verify_file(str(path)) is ok, name


def test_hosts_groups_and_console_vars(tmp_path, api):
    inventory = run(tmp_path, {'ansible_host_preference': ['internal_ip', 'hostname'], 'page_size': 2})
    windows = ['ep-001.corp.example', 'ep-002.corp.example', 'ep-003.corp.example', 'ep-004.corp.example', 'srv-01.corp.example']
    assert sorted(inventory.hosts) == windows                        # Windows only by default
    assert len(api) == 3 and all(call['key'] == KEY for call in api)  # 6 records, 2 per page
    assert members(inventory, 'windows') == windows
    assert members(inventory, 'definitions_failed') == ['ep-002.corp.example']
    assert members(inventory, 'definitions_aged') == ['ep-002.corp.example', 'ep-004.corp.example']
    assert members(inventory, 'console_offline') == ['ep-004.corp.example']
    assert members(inventory, 'connector_7_5_7_21234') == ['ep-003.corp.example']
    host = inventory.get_host('ep-003.corp.example').get_vars()
    assert host['ansible_host'] == '10.0.0.9'                        # link-local skipped
    assert host['tetra_console']['definitions']['state'] == 'current'
    assert host['tetra_console']['policy'] == {'guid': 'p1', 'name': 'Protect'}
    assert KEY not in json.dumps({h: inventory.get_host(h).get_vars() for h in inventory.hosts}, default=str)


def test_filters_query_naming_and_constructed(tmp_path, api):
    inventory = run(tmp_path, {
        'operating_systems': [], 'console_groups': ['Work*'], 'hostname_patterns': ['ep-00[1-3]*', 'mac-*'],
        'query': "[?av_update_definitions.status == 'Definitions Up To Date']", 'inventory_hostname': 'short_hostname',
        'keyed_groups': [{'key': 'tetra_console.definitions.state', 'prefix': 'state'}],
        'groups': {'old_connector': "tetra_console.connector_version is version('8', '<')"},
        'compose': {'ansible_connection': "'psrp'"}, 'default_groups': False, 'windows_group': '',
    })
    assert sorted(inventory.hosts) == ['ep-001', 'ep-003', 'mac-01']
    assert members(inventory, 'state_current') == ['ep-001', 'ep-003', 'mac-01']
    assert members(inventory, 'old_connector') == ['ep-003']
    assert 'definitions_failed' not in inventory.groups and 'windows' not in inventory.groups
    assert inventory.get_host('ep-001').get_vars()['ansible_connection'] == 'psrp'
    assert inventory.get_host('ep-001').get_vars()['ansible_host'] == 'ep-001.corp.example'


def test_cache_is_used_and_holds_no_secret(tmp_path, api):
    cache_dir = tmp_path / 'cache'
    config = {'cache': True, 'cache_plugin': 'jsonfile', 'cache_connection': str(cache_dir), 'cache_timeout': 600}
    plugin = computers.InventoryModule()
    plugin._load_name = NAME
    C.config.initialize_plugin_configuration_definitions('inventory', NAME, options())
    path = tmp_path / 'cached.computers.yml'
    path.write_text(yaml.safe_dump(dict({'plugin': NAME, 'client_id': 'client-1', 'api_key': KEY}, **config)))
    plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)   # refresh: fetch and write the cache
    plugin.update_cache_if_changed()   # what InventoryManager does after parse
    fetched = len(api)
    plugin = computers.InventoryModule()
    plugin._load_name = NAME
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=True)
    assert len(api) == fetched and 'ep-002.corp.example' in inventory.hosts
    for name in os.listdir(cache_dir):
        assert KEY not in (cache_dir / name).read_text()


def test_errors_are_clear_and_hide_the_key(tmp_path, monkeypatch):
    def factory(*args, **kwargs):
        def opener(url, **kw):
            from urllib.error import HTTPError
            raise HTTPError(url, 401, 'Unauthorized', {}, None)
        return ConsoleClient(*args, opener=opener, **kwargs)
    monkeypatch.setattr(computers, 'ConsoleClient', factory)
    with pytest.raises(AnsibleParserError, match='authentication failed') as caught:
        run(tmp_path, {})
    assert KEY not in str(caught.value)
    with pytest.raises(AnsibleParserError, match='ansible_host_preference'):
        run(tmp_path, {'ansible_host_preference': ['dns']})
    with pytest.raises(AnsibleParserError, match='page_size'):
        run(tmp_path, {'page_size': 501})


def test_environment_variables_give_the_credentials(tmp_path, api, monkeypatch):
    monkeypatch.setenv('SECURE_ENDPOINT_CLIENT_ID', 'env-client')
    monkeypatch.setenv('SECURE_ENDPOINT_API_KEY', 'env-key')
    monkeypatch.setenv('SECURE_ENDPOINT_REGION', 'eu')
    plugin = computers.InventoryModule()
    plugin._load_name = NAME
    C.config.initialize_plugin_configuration_definitions('inventory', NAME, options())
    path = tmp_path / 'env.computers.yml'
    path.write_text('plugin: %s\n' % NAME)
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=False)
    assert api[0]['user'] == 'env-client' and api[0]['key'] == 'env-key'
    assert inventory.get_host('ep-001.corp.example').get_vars()['tetra_console']['source'] == 'https://api.eu.amp.cisco.com'


def test_duplicate_hostnames_keep_the_one_seen_last(tmp_path, monkeypatch):
    old = record('ep-9', seen_h=200, guid='old-guid')
    new = record('ep-9', seen_h=0.1, guid='new-guid')

    def factory(*args, **kwargs):
        return ConsoleClient(*args, opener=lambda url, **kw: Answer({'metadata': {}, 'data': [new, old]}), **kwargs)
    monkeypatch.setattr(computers, 'ConsoleClient', factory)
    inventory = run(tmp_path, {})
    assert inventory.get_host('ep-9').get_vars()['tetra_console']['connector_guid'] == 'new-guid'
