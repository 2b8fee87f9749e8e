#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_tls_probe
short_description: Probe TLS to the TETRA update server from a Windows endpoint, revocation check included
description:
  - Connects to the update server on port 443 and performs the TLS handshake with revocation checking on, as
    the connector does, and records the certificate chain, the chain status flags and the Windows error code
    (for example C(0x80092013), revocation server offline).
  - Runs C(curl.exe -v https://<update server>/) where curl.exe exists (Windows 10 1803+/Server 2019+) so the
    result holds exactly what Cisco TAC asks for, fetches the OCSP/CRL hosts over plain HTTP and checks the
    required root certificates in C(LocalMachine\\Root).
  - Reports TLS interception (a certificate not issued by Cisco's CA), missing roots and revocation problems.
  - All probes run concurrently under one deadline. Changes nothing on the endpoint.
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
- name: Probe TLS as LocalSystem, the connector's context
  secure_endpoint.tetra.tetra_tls_probe:
  register: tls

- name: Show the curl.exe output TAC asks for
  ansible.builtin.debug:
    var: tls.curl.summary
'''

RETURN = r'''
context:
  description: Where the probes ran, C(system) or C(user).
  returned: success
  type: str
ok:
  description: Whether the TLS handshake with revocation checking succeeded.
  returned: success
  type: bool
tls:
  description: Parsed TLS probe (connect result, handshake error code and name, chain, chain status, issuers).
  returned: success
  type: dict
curl:
  description: Parsed C(curl.exe -v) run (exit code, HTTP status, schannel error, summary line).
  returned: success
  type: dict
revocation_hosts:
  description: Plain-HTTP reachability of each OCSP/CRL host.
  returned: success
  type: list
  elements: dict
roots:
  description: Required root certificates and whether each is present.
  returned: success
  type: list
  elements: dict
dns:
  description: Resolution of the update server and revocation hosts.
  returned: success
  type: list
  elements: dict
interception:
  description: Evidence lines when the certificate is issued by a foreign issuer (TLS inspection).
  returned: success
  type: list
  elements: str
revocation_problem:
  description: Evidence lines when the revocation check fails.
  returned: success
  type: list
  elements: str
missing_roots:
  description: Evidence lines for required roots missing from the store.
  returned: success
  type: list
  elements: str
'''
