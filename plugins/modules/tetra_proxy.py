#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_proxy
short_description: Read the connector's proxy settings and last error, and test the proxy from the endpoint
description:
  - Reads the proxy configured for the connector (C(policy.xml) when readable, C(local.xml)), the machine's
    WinHTTP proxy and PAC URL, and the TETRA C(lasterror) from C(local.xml), decoded with the Cisco table
    (4294965193 cannot connect to the proxy, 4294965196 cannot authenticate with the proxy, 4294965187 proxy
    connection and download failure); unknown codes are returned as both unsigned and signed values.
  - Connects to the proxy and asks it for a C(CONNECT) tunnel to the update server, recording whether the
    connection fails or the proxy answers 407 (authentication required).
  - The proxy password is never returned. Changes nothing on the endpoint.
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
- name: Check the proxy the connector uses
  secure_endpoint.tetra.tetra_proxy:
  register: proxy

- name: Show the decoded last error
  ansible.builtin.debug:
    msg: "{{ proxy.lasterror.problem }}: {{ proxy.lasterror.action }}"
  when: proxy.lasterror is not none
'''

RETURN = r'''
context:
  description: Where the probe ran, C(system) or C(user).
  returned: success
  type: str
configured:
  description: Whether any proxy is configured for the connector.
  returned: success
  type: bool
policy_proxy:
  description: Proxy from C(policy.xml) (server, port, type, auth type, user name; never the password), or null.
  returned: success
  type: dict
local_proxy:
  description: Proxy section of C(local.xml), without any password, or null.
  returned: success
  type: dict
winhttp_proxy:
  description: Output of C(netsh winhttp show proxy), the proxy LocalSystem uses for revocation checks.
  returned: success
  type: str
pac_url:
  description: Auto-configuration URL of the connection user, if any.
  returned: success
  type: str
lasterror:
  description: Decoded TETRA C(lasterror) (unsigned, signed, hex, known, problem, action), or null.
  returned: success
  type: dict
  sample: {"unsigned": 4294965196, "signed": -2100, "known": true, "problem": "cannot authenticate with the proxy"}
probe:
  description: Result of connecting to the proxy and asking for a tunnel (connect_ok, connect_status, status line), or null.
  returned: success
  type: dict
problems:
  description: What could not be read or parsed.
  returned: success
  type: list
  elements: str
'''
