# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:

    # Options every endpoint module takes.
    DOCUMENTATION = r'''
options:
  deadline:
    description:
      - Time budget in seconds for the whole endpoint call.
      - The endpoint script stops waiting for probes when it is reached and marks the unfinished ones as
        timed out; the controller gives up 30 seconds after it.
      - From 10 to 3600. When network probes run it must also be at least the slowest probe (the longest of
        C(timeouts.connect) + C(timeouts.tls), C(timeouts.curl) + 2, C(timeouts.dns), C(timeouts.http),
        C(timeouts.proxy) of the modules that probe the network; 15 with the defaults) plus 5 seconds, so a healthy host is never cut short; a
        smaller value is rejected with a message naming the probe.
    type: int
    default: 40
  max_answer_mb:
    description:
      - The most the controller accepts from the endpoint in one answer, in MB (a real evidence document is tens of kB).
      - A larger answer is never decoded, parsed or stored; it is a failure quoting its start (with
        M(secure_endpoint.tetra.tetra_diagnose) the verdict C(evidence_invalid)).
      - From 1 to 256.
    type: int
    default: 16
  evidence_dir:
    description:
      - A folder on the controller where the raw evidence document of each host is written as
        C(<inventory_hostname>.json), for offline replay with C(playbooks/analyze.yml).
      - A host name that is not a safe file name as it is (characters other than letters, digits, C(_), C(.), C(-))
        is cleaned and given a short hash of the real name (C(ep_7-1a2b3c4d.json) for C(ep/7)), so two hosts never
        share a file; the file records the real name, which C(playbooks/analyze.yml) replays it under.
      - Password elements of C(policy.xml) are replaced by C(REDACTED) before writing.
      - At most 4096 characters, no control characters (newline, NUL) and no white space at either end.
    type: path
notes:
  - Runs exactly one command on the endpoint (one C(PowerShell -EncodedCommand) through the connection's
    C(exec_command)), so it works over the C(winrm), C(psrp) and C(ssh) connection plugins.
  - Arguments reach the endpoint only as base64-encoded JSON data, never as script text.
  - The endpoint needs Windows PowerShell 5.1. The evidence format is documented in C(docs/evidence.md).
attributes:
  check_mode:
    support: full
    description: Reading evidence changes nothing, so the module runs normally in check mode.
  diff_mode:
    support: none
    description: Nothing on the endpoint changes, so there is no diff.
  platform:
    support: full
    platforms: windows
    description: Targets Windows endpoints with Windows PowerShell 5.1 and the Cisco Secure Endpoint connector.
'''

    # Options of the modules that probe the network from the endpoint.
    NETWORK = r'''
options:
  region:
    description:
      - Secure Endpoint cloud region whose public TETRA update server is probed when O(update_server) is not set.
    type: str
    choices: [apjc, eu, nam]
    default: nam
  update_server:
    description:
      - Host name of the TETRA update server to probe, for example a custom server from the policy.
      - Must be a DNS host name (RFC 1123, at most 253 characters); the whole value is checked, so a trailing
        newline, a space, a NUL, a port or a URL is rejected before contacting the endpoint.
    type: str
  context:
    description:
      - Security context of the network probes on the endpoint.
      - V(system) runs them as LocalSystem through a one-shot scheduled task, because the connector runs as
        LocalSystem and uses the machine's WinHTTP proxy for revocation checks; a probe run as the WinRM user
        can pass where the connector fails. This is the default for that reason.
      - V(user) runs them as the connection user; use it when scheduled tasks are not allowed. If the
        scheduled task cannot be created the probes fall back to V(user) and the result says so.
    type: str
    choices: [system, user]
    default: system
  concurrent:
    description:
      - Run the probes concurrently on the endpoint, so a host with a dead network answers in about the
        largest single timeout rather than their sum.
    type: bool
    default: true
  timeouts:
    description:
      - Per-probe timeouts in seconds. Unset keys keep their defaults.
      - Each one from 1 to 300.
    type: dict
    default: {}
    suboptions:
      ampcli:
        description: C(AmpCLI.exe posture) run time (default 10).
        type: int
      dns:
        description: One name resolution (default 5).
        type: int
      connect:
        description: TCP connect to the update server (default 5).
        type: int
      tls:
        description: TLS handshake with revocation checking (default 10).
        type: int
      curl:
        description: C(curl.exe -v) run time (default 12).
        type: int
      http:
        description: One plain-HTTP revocation host request (default 5).
        type: int
      proxy:
        description: Connecting to the proxy and its answer to C(CONNECT) (default 5).
        type: int
  revocation_hosts:
    description:
      - OCSP/CRL host names to resolve and reach over HTTP port 80.
      - Defaults to the hosts the Cisco procedure names, C(commercial.ocsp.identrust.com) and C(validation.identrust.com).
      - 1 to 16 DNS host names, each checked like O(update_server).
    type: list
    elements: str
  proxy_server:
    description:
      - Proxy host to probe. By default the proxy configured in the connector's C(policy.xml) or C(local.xml) is used.
      - Must be a DNS host name, checked like O(update_server).
    type: str
  proxy_port:
    description: Port of O(proxy_server), from 1 to 65535 (default 80).
    type: int
'''
