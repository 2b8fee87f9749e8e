#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_posture
short_description: Read the Cisco Secure Endpoint connector's state and TETRA definition version
description:
  - Collects, in one command on a Windows endpoint, the connector's install (registry C(InstallDir), the
    versioned folder in use, the service found by its C(sfc.exe) image path), the output of
    C(AmpCLI.exe posture), C(local.xml), C(policy.xml) when readable, and host facts (OS build,
    PowerShell version, culture, pending reboot, isolation).
  - Everything is parsed on the controller. Missing pieces (no AmpCLI, an unreadable C(policy.xml) on
    connector 8.1.3 and later, an unknown posture layout) are reported in RV(problems), not as failures.
  - Changes nothing on the endpoint.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
extends_documentation_fragment:
  - secure_endpoint.tetra.endpoint
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
  - module: secure_endpoint.tetra.tetra_proxy
'''

EXAMPLES = r'''
- name: Read the connector posture
  secure_endpoint.tetra.tetra_posture:
  register: posture

- name: Show the TETRA definition version
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: connector {{ posture.connector_version }}, TETRA {{ posture.tetra_version }}"

- name: Keep the raw evidence for offline analysis
  secure_endpoint.tetra.tetra_posture:
    evidence_dir: /var/tmp/tetra-evidence
'''

RETURN = r'''
installed:
  description: Whether a Secure Endpoint connector is installed.
  returned: success
  type: bool
  sample: true
connector_version:
  description: Connector version, from the uninstall entry, else the versioned folder, else AmpCLI.
  returned: success
  type: str
  sample: 8.1.7.21417
tetra_version:
  description: TETRA definition version (from AmpCLI posture, else C(local.xml)); null when neither has it.
  returned: success
  type: int
  sample: 90604
tetra_version_source:
  description: Where RV(tetra_version) was read (C(posture) or C(local_xml)).
  returned: success
  type: str
  sample: posture
agent_uuid:
  description: Connector GUID.
  returned: success
  type: str
  sample: 5c6e64fa-7738-4b39-b201-15451e33bfe6
connected:
  description: Whether AmpCLI reports the connector connected to the cloud; null when unknown.
  returned: success
  type: bool
  sample: true
service:
  description: The connector service (name, state, start type), or null when not found.
  returned: success
  type: dict
  sample: {"name": "CiscoAMP", "state": "Running", "start_type": "Automatic"}
host:
  description: Host facts from the endpoint.
  returned: success
  type: dict
  sample: {"computer_name": "DESKTOP-QFC3PVT", "os_build": "10.0.22621", "ps_version": "5.1.22621.1778", "culture": "en-US"}
install:
  description: Install discovery (install dir, versioned folders, active version, C(sfc.exe) path and publisher, reboot pending, isolated).
  returned: success
  type: dict
posture:
  description: Parsed C(AmpCLI.exe posture) output with per-engine versions and the raw text.
  returned: success
  type: dict
local:
  description: Parsed C(local.xml) (definition version, last update/success/check in ISO-8601 UTC, decoded C(lasterror), proxy).
  returned: success
  type: dict
policy:
  description: Parsed C(policy.xml) (TETRA enabled, update server and interval, proxy without its password), or C(readable=false).
  returned: success
  type: dict
problems:
  description: Everything that could not be found or parsed, in words.
  returned: success
  type: list
  elements: str
  sample: ["policy.xml is not readable (System.UnauthorizedAccessException)"]
timings:
  description: Endpoint run time, controller round trip in milliseconds and the number of attempts.
  returned: success
  type: dict
  sample: {"endpoint_ms": 812, "round_trip_ms": 1430, "attempts": 1}
evidence_path:
  description: File the raw evidence was written to, when O(evidence_dir) is set.
  returned: when evidence_dir is set
  type: str
'''
