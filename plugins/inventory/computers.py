# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: computers
short_description: Computers from the Cisco Secure Endpoint console, grouped by TETRA definitions state
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
description:
  - Reads the computers of a Secure Endpoint organisation from the API v1 (C(GET /v1/computers), 500 per page,
    following C(metadata.links.next)) and makes one inventory host per computer.
  - Each host gets C(ansible_host) from O(ansible_host_preference) and the console's view of the computer in one
    variable, O(console_var) (C(tetra_console) by default) - definitions status, version and time, last seen,
    faults, policy, groups, addresses - which the C(secure_endpoint.tetra.diagnose) role passes to
    M(secure_endpoint.tetra.tetra_diagnose) so the verdict uses it.
  - "Default groups (O(default_groups)): C(definitions_failed), C(definitions_current), C(definitions_outdated),
    C(definitions_unknown) (no status reported, e.g. TETRA disabled or no connector), C(definitions_aged) (last
    update older than O(max_age_hours)), C(console_offline) (not seen for O(offline_hours)), C(connector_<version>),
    and O(windows_group) holding every Windows computer, the group C(playbooks/diagnose.yml) targets by default."
  - Rate limits are honoured (HTTP 429 and the C(X-RateLimit-*) headers; waits are bounded by O(max_wait) and
    O(max_retries)); 401, 403, 404, 5xx and answers that are not JSON stop with a clear message.
  - Uses a YAML configuration file whose name ends with C(computers.yml) or C(computers.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - secure_endpoint.tetra.console
options:
  plugin:
    description: The name of this plugin; marks the file as its source.
    type: str
    required: true
    choices: [secure_endpoint.tetra.computers]
  console_groups:
    description:
      - Keep only computers in these console groups (names or GUIDs, shell patterns such as C(Branch*)).
      - Full GUIDs are also sent to the API as C(group_guid[]) so fewer pages are read.
    type: list
    elements: str
    default: []
  hostname_patterns:
    description: Keep only computers whose console host name matches one of these shell patterns (case-insensitive).
    type: list
    elements: str
    default: []
  operating_systems:
    description:
      - Keep only computers whose C(operating_system) matches one of these shell patterns. Windows only by default;
        an empty list keeps every operating system.
    type: list
    elements: str
    default: ['Windows*']
  query:
    description:
      - A JMESPath expression applied to the list of API computer records before the other filters; it must give a
        list of records, for example C([?av_update_definitions.status != 'Definitions Up To Date']) or
        C([?contains(policy.name, 'Servers')]). Needs the C(jmespath) Python library.
    type: str
  inventory_hostname:
    description:
      - What names each host - C(hostname) (the console's, usually the FQDN), C(short_hostname) (up to the first dot)
        or C(connector_guid).
    type: str
    choices: [hostname, short_hostname, connector_guid]
    default: hostname
  ansible_host_preference:
    description:
      - Where C(ansible_host) comes from, first available wins - C(hostname) (the console's), C(internal_ip) (the first
        internal IP that is not link-local), C(external_ip), C(network_address) (the first C(network_addresses) IP).
      - With none available, C(ansible_host) is not set and Ansible uses the inventory name.
    type: list
    elements: str
    default: [hostname]
  console_var:
    description: Name of the host variable that holds the console state.
    type: str
    default: tetra_console
  default_groups:
    description: Create the definitions-state, offline and connector-version groups described above.
    type: bool
    default: true
  windows_group:
    description: Group holding every Windows computer (C(playbooks/diagnose.yml) targets C(windows)); empty for none.
    type: str
    default: windows
  max_age_hours:
    description: Definitions last updated longer ago than this put the host in C(definitions_aged).
    type: float
    default: 24
  offline_hours:
    description: Computers the console has not seen for this long go to C(console_offline).
    type: float
    default: 72
notes:
  - The API key is read from O(api_key) or C(SECURE_ENDPOINT_API_KEY) and is never displayed, cached or written to
    host variables; only the computer records are cached (O(cache)).
  - Definitions status strings other than C(Definitions Up To Date) are not documented by Cisco; statuses are classified
    by keywords (fail, out of date, up to date) and anything else is C(unknown).
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
'''

EXAMPLES = r'''
# file: prod.computers.yml  (secrets from the environment: SECURE_ENDPOINT_CLIENT_ID, SECURE_ENDPOINT_API_KEY)
plugin: secure_endpoint.tetra.computers
region: eu
ansible_host_preference: [hostname, internal_ip]

---
# file: branches.computers.yml  (only two console groups, a JMESPath filter, extra groups and variables)
plugin: secure_endpoint.tetra.computers
url: https://api.amp.cisco.com
console_groups: ['Branch*', 'b7e1f3a2-4c5d-4e6f-8a9b-0c1d2e3f4a5b']
query: "[?connector_version >= '8']"
keyed_groups:
  - key: tetra_console.policy.name
    prefix: policy
  - key: tetra_console.definitions.state
    prefix: state
groups:
  needs_look: tetra_console.definitions.state != 'current' or tetra_console.faults | length > 0
compose:
  ansible_connection: "'psrp'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /var/tmp/tetra-inventory-cache
cache_timeout: 600

# then diagnose exactly the computers whose definitions failed:
#   ansible-playbook -i prod.computers.yml secure_endpoint.tetra.diagnose -l definitions_failed
'''

import datetime
import ipaddress
import re
import typing as t

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console import (
    ConsoleError, apply_query, console_state, is_aged, is_offline, matches,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console_api import ConsoleClient, api_url

display = Display()
_GUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', re.I)
HOST_SOURCES = ('hostname', 'internal_ip', 'external_ip', 'network_address')


def _usable_ip(value):
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return not address.is_link_local and not address.is_unspecified


def ansible_host_for(record, preference):
    """The first available address in the preference order, or None."""
    for source in preference:
        if source == 'hostname' and record.get('hostname'):
            return str(record['hostname'])
        if source == 'internal_ip':
            found = next((str(ip) for ip in record.get('internal_ips') or [] if _usable_ip(ip)), None)
            if found:
                return found
        if source == 'external_ip' and record.get('external_ip') and _usable_ip(record['external_ip']):
            return str(record['external_ip'])
        if source == 'network_address':
            found = next((str(a.get('ip')) for a in record.get('network_addresses') or [] if isinstance(a, dict) and _usable_ip(a.get('ip'))), None)
            if found:
                return found
    return None


def name_for(record, how):
    if how == 'connector_guid':
        return record.get('connector_guid')
    name = record.get('hostname') or record.get('connector_guid')
    if how == 'short_hostname' and name and not _usable_ip(name):
        name = str(name).split('.', 1)[0]
    return name


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'secure_endpoint.tetra.computers'

    def verify_file(self, path):
        return super().verify_file(path) and re.search(r'computers\.ya?ml$', to_text(path)) is not None

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        update_cache = self.get_option('cache') and not cache
        records = None
        if use_cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if records is None:
            records = self.fetch()
        if update_cache:
            self._cache[cache_key] = records
        try:
            selected = self.select(records)
        except ConsoleError as exc:
            raise AnsibleParserError('secure_endpoint.tetra.computers: %s' % exc) from None
        self.populate(selected, datetime.datetime.now(datetime.timezone.utc))

    def client(self):
        preference = self.get_option('ansible_host_preference')
        unknown = [p for p in preference if p not in HOST_SOURCES]
        if unknown:
            raise ConsoleError('ansible_host_preference accepts %s, not %s' % (', '.join(HOST_SOURCES), ', '.join(unknown)))
        page_size = self.get_option('page_size')
        if not 1 <= page_size <= 500:
            raise ConsoleError('page_size must be between 1 and 500, got %s' % page_size)
        return ConsoleClient(api_url(self.get_option('url'), self.get_option('region')), self.get_option('client_id'),
                             self.get_option('api_key'), timeout=self.get_option('timeout'),
                             validate_certs=self.get_option('validate_certs'), ca_path=self.get_option('ca_path'),
                             max_retries=self.get_option('max_retries'), max_wait=self.get_option('max_wait'))

    def fetch(self):
        """Every computer record (raw, as the API gives them: that is what is cached)."""
        try:
            client = self.client()
            guids = [g for g in self.get_option('console_groups') if _GUID.match(g)]
            params = {'group_guid[]': guids} if guids and len(guids) == len(self.get_option('console_groups')) else None
            records = list(client.computers(page_size=self.get_option('page_size'), params=params))
        except ConsoleError as exc:
            raise AnsibleParserError('secure_endpoint.tetra.computers: %s' % exc) from None
        display.vvv('secure_endpoint.tetra.computers: %d computers from %s in %d requests (%.0f s waited on rate limits)'
                    % (len(records), client.base_url, client.requests, client.waited))
        return records

    def select(self, records):
        selected = apply_query(list(records), self.get_option('query'))
        return [r for r in selected if matches(r, self.get_option('hostname_patterns'), self.get_option('operating_systems'),
                                               self.get_option('console_groups'))]

    def populate(self, records, now):
        strict = self.get_option('strict')
        preference = self.get_option('ansible_host_preference')
        console_var = self.get_option('console_var')
        source = api_url(self.get_option('url'), self.get_option('region'))
        chosen: dict[str, t.Any] = {}
        for record in records:
            name = name_for(record, self.get_option('inventory_hostname'))
            if not name:
                display.warning('secure_endpoint.tetra.computers: a computer without hostname or connector GUID was skipped')
                continue
            if name in chosen:
                # A rebuilt computer leaves its old record behind: the one seen last is the live one.
                keep = max((chosen[name], record), key=lambda r: str(r.get('last_seen') or ''))
                display.warning('secure_endpoint.tetra.computers: %s appears twice in the console (connectors %s and %s); using %s'
                                % (name, chosen[name].get('connector_guid'), record.get('connector_guid'), keep.get('connector_guid')))
                record = keep
            chosen[name] = record
        for name, record in chosen.items():
            host = self.inventory.add_host(self._sanitize_host(name))
            state = console_state(record, source=source)
            self.inventory.set_variable(host, console_var, state)
            address = ansible_host_for(record, preference)
            if address:
                self.inventory.set_variable(host, 'ansible_host', address)
            if self.get_option('default_groups'):
                self.default_groups(host, state, now)
            windows_group = self.get_option('windows_group')
            if windows_group and 'windows' in str(record.get('operating_system') or '').lower():
                self.inventory.add_group(windows_group)
                self.inventory.add_child(windows_group, host)
            variables = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option('compose'), variables, host, strict=strict)
            variables = self.inventory.get_host(host).get_vars()
            self._add_host_to_composed_groups(self.get_option('groups'), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), variables, host, strict=strict)

    def _sanitize_host(self, name):
        return to_text(name).strip()

    def default_groups(self, host, state, now):
        groups = ['definitions_%s' % state['definitions']['state']]
        if is_aged(state, now, self.get_option('max_age_hours')):
            groups.append('definitions_aged')
        if is_offline(state, now, self.get_option('offline_hours')):
            groups.append('console_offline')
        if state.get('connector_version'):
            groups.append('connector_%s' % re.sub(r'[^A-Za-z0-9_]', '_', str(state['connector_version'])))
        for group in groups:
            self.inventory.add_group(group)
            self.inventory.add_child(group, host)
