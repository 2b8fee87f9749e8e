#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_forceupdate
short_description: Force a TETRA definitions update with the connector's own sfc.exe and prove the result
description:
  - Reads the connector's install and C(local.xml) first (the before state) and decides on the controller
    whether a forced update may run. It refuses, without running anything, when no connector is installed,
    when the connector is older than 7.2.7 (its C(sfc.exe) has no C(-forceupdate) switch), when its version
    cannot be read, when C(sfc.exe) is missing from the connector's versioned folder, or when that file's
    publisher (C(CompanyName)) is not Cisco. A bare C(sfc.exe) is Windows' own System File Checker and is never run.
  - Otherwise it runs C("<install dir>\<version>\sfc.exe" -forceupdate) by its full path (the endpoint script
    checks C(CompanyName) again right before running it), then polls C(local.xml) cheaply every
    O(poll_interval) seconds until the TETRA version advances, C(lasterror) or the last-check time changes,
    or O(timeout) passes. The task makes at most O(timeout) / O(poll_interval) + 2 endpoint calls.
  - A refusal is not a task failure. The result has RV(refused) set to the reason
    (V(connector_too_old), V(connector_version_unknown), V(sfc_missing), V(sfc_not_cisco), V(not_installed)),
    C(changed=false) and a message, so a play over a fleet continues and reports it.
  - An update attempt that ends without a new version (RV(outcome) V(lasterror_changed), V(last_check_changed)
    or V(timeout)) is not a task failure either; RV(lasterror) says why. The task fails when C(sfc.exe) exits
    with a non-zero code or the endpoint cannot be reached.
  - Reports C(changed=true) only when the TETRA version advanced.
  - Never stops, starts or restarts the connector service and never uses the Connector Protection password.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
options:
  timeout:
    description:
      - Seconds to wait, after running C(sfc.exe -forceupdate), for the update to show in C(local.xml).
      - V(0) runs the command and reads the state once.
    type: int
    default: 300
  poll_interval:
    description: Seconds between two polls of C(local.xml) (one cheap endpoint call each).
    type: int
    default: 5
  wait:
    description: Poll for the result. With V(false) the module returns right after running the command.
    type: bool
    default: true
  deadline:
    description:
      - Time budget in seconds of each endpoint call. The endpoint gives C(sfc.exe -forceupdate) up to 60 seconds,
        so this must be at least 70. The controller gives up on a call 30 seconds after it.
    type: int
    default: 90
notes:
  - Every call is one C(PowerShell -EncodedCommand) through the connection's C(exec_command), so the module works
    over the C(winrm), C(psrp) and C(ssh) connection plugins. Arguments reach the endpoint only as base64 JSON data.
  - The commands it runs on the endpoint are listed in C(docs/endpoint-commands.md) for EDR/SOC allow-listing.
  - The user-facing "Update now" button needs a policy setting; C(sfc.exe -forceupdate) does not (connector 7.2.7 and later).
attributes:
  check_mode:
    support: full
    description:
      - Reads the before state and reports the command it would run in RV(would_run); runs nothing and does not poll.
        Reports C(changed=true) when it would run the command.
  diff_mode:
    support: none
    description: The change is an update of the connector's definitions (or a bundle on the controller); there is no diff to show.
  platform:
    support: full
    platforms: windows
    description: Targets Windows endpoints with Windows PowerShell 5.1 and the Cisco Secure Endpoint connector.
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
  - module: secure_endpoint.tetra.tetra_support_bundle
'''

EXAMPLES = r'''
- name: Force a TETRA update where the diagnosis says it can help
  secure_endpoint.tetra.tetra_forceupdate:
    timeout: 600
  when: tetra_diagnosis.verdict.remediable
  register: forced

- name: Show before and after
  ansible.builtin.debug:
    msg: "{{ forced.version_before }} -> {{ forced.version_after }} ({{ forced.outcome }}, {{ forced.duration_s }} s)"
  when: forced is not skipped

- name: Run the update without waiting for its result
  secure_endpoint.tetra.tetra_forceupdate:
    wait: false
'''

RETURN = r'''
outcome:
  description:
    - V(version_advanced), V(lasterror_changed), V(last_check_changed), V(timeout), V(not_waited) (O(wait=false)),
      V(refused), V(check_mode) or V(command_failed).
  returned: always
  type: str
  sample: version_advanced
updated:
  description: Whether the TETRA version advanced (the same as C(changed) outside check mode).
  returned: always
  type: bool
refused:
  description: Why nothing was run, or null.
  returned: always
  type: str
  sample: connector_too_old
command:
  description: The command run (or that would run) on the endpoint; null when refused.
  returned: always
  type: str
  sample: '"C:\Program Files\Cisco\AMP\8.1.7.21417\sfc.exe" -forceupdate'
would_run:
  description: The command check mode would have run.
  returned: in check mode, when not refused
  type: str
connector_version:
  description: The connector version the gate was decided on.
  returned: always
  type: str
  sample: 8.1.7.21417
sfc_path:
  description: Full path of the connector's sfc.exe.
  returned: always
  type: str
version_before:
  description: TETRA definition version before the update (from C(local.xml)).
  returned: always
  type: int
  sample: 90600
version_after:
  description: TETRA definition version at the last poll.
  returned: always
  type: int
  sample: 90606
lasterror_before:
  description: C(local.xml) C(//tetra/lasterror) before, decoded (unsigned, signed, hex, known, problem, action).
  returned: always
  type: dict
lasterror:
  description: C(lasterror) at the last poll, decoded with the Cisco procedure's table.
  returned: always
  type: dict
  sample: {unsigned: 4294965193, signed: -2103, hex: '0xFFFFF7C9', known: true, problem: cannot connect to the proxy,
           action: check network connectivity to the proxy}
last_check_before:
  description: Last update check time before (ISO-8601 UTC).
  returned: always
  type: str
last_check:
  description: Last update check time at the last poll (ISO-8601 UTC).
  returned: always
  type: str
polls:
  description: Number of C(local.xml) polls after the forced update.
  returned: always
  type: int
calls:
  description: Number of endpoint calls the task made (at most O(timeout) / O(poll_interval) + 2).
  returned: always
  type: int
duration_s:
  description: Seconds from running the command to the last poll.
  returned: always
  type: float
forceupdate:
  description: The endpoint's record of the run (ran, command, exit_code, duration_ms, refused).
  returned: when the command was sent
  type: dict
'''
