#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_resolve
short_description: Resolve the TETRA update server and the revocation hosts from a Windows endpoint
description:
  - Resolves, from the endpoint and concurrently, the TETRA update server (O(update_server), else the
    O(region)'s public host) and every OCSP/CRL host, the way C(Resolve-DnsName) in the Cisco procedure does.
  - Returns the answers, the DNS servers the endpoint uses, durations and error codes. Error codes are
    numbers (for example socket error 11001, host not found), so the result is the same on every Windows language.
  - Changes nothing on the endpoint.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
extends_documentation_fragment:
  - secure_endpoint.tetra.endpoint
  - secure_endpoint.tetra.endpoint.network
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
'''

EXAMPLES = r'''
- name: Resolve the EU update server as the connector would
  secure_endpoint.tetra.tetra_resolve:
    region: eu
  register: dns

- name: Fail when a name does not resolve
  ansible.builtin.assert:
    that: dns.resolved
    fail_msg: "{{ dns.failed_names | join(', ') }} do not resolve on {{ inventory_hostname }}"
'''

RETURN = r'''
update_server:
  description: The update server that was resolved.
  returned: success
  type: str
  sample: tetra-defs.amp.cisco.com
context:
  description: Where the probes ran, C(system) (LocalSystem) or C(user).
  returned: success
  type: str
  sample: system
dns_servers:
  description: IPv4 DNS servers configured on the endpoint.
  returned: success
  type: list
  elements: str
results:
  description: One entry per name with C(name), C(ok), C(addresses), C(error_code), C(timed_out), C(duration_ms).
  returned: success
  type: list
  elements: dict
resolved:
  description: Whether every name resolved.
  returned: success
  type: bool
failed_names:
  description: Names that did not resolve.
  returned: success
  type: list
  elements: str
'''
