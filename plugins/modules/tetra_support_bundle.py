#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_support_bundle
short_description: Collect the Cisco TAC evidence bundle (debug log, packet capture, support tool) and bring it to the controller
description:
  - The escalation step of the Cisco procedure for TETRA update failures, on one endpoint, with clean-up guaranteed.
  - Reads the connector's install first and refuses (C(changed=false), RV(refused) set, not a failure) when no
    connector is installed or its C(sfc.exe) is missing or not published by Cisco.
  - C(support_start) turns debug logging on (C(sfc.exe -l start)), optionally starts a size-bounded packet capture
    with Windows' own tools (C(pktmon) or C(netsh trace)), and forces an update attempt (C(sfc.exe -forceupdate)).
  - Then waits on the controller for one update interval, so the log and the capture hold a whole attempt (O(wait)
    when given, else the policy's TETRA update interval when C(policy.xml) is readable (connectors before 8.1.3),
    else Cisco's default of one hour, capped by O(max_wait)).
  - C(support_finish) runs C(ipsupporttool.exe -o <work dir>) and then ALWAYS stops the capture and debug logging
    (the endpoint does it in C(finally)). The module sends C(support_finish) whenever C(support_start) was sent,
    even when C(support_start) failed or the wait was interrupted, so nothing is left running.
  - B(Safety net on the endpoint.) Before it starts anything, C(support_start) registers a one-shot scheduled task
    (LocalSystem by SID, runs on battery, starts when available) named C(secure_endpoint.tetra support <run id>) that
    runs the capture's stop command and C(sfc.exe -l stop) at start + wait + O(deadline) + 120 seconds. A normal
    C(support_finish) removes it once everything is stopped. If the controller is killed at any moment (SIGKILL,
    power loss, a cancelled CI job), the endpoint stops debug logging and the capture by itself when the task fires;
    the task deletes itself a day later. When the task cannot be registered, nothing is started and the module
    returns RV(refused=safety_net_failed).
  - The capture always has a size limit (O(capture_max_mb)) and a time limit (the safety net).
  - The bundle and the capture are brought to the controller in chunks (C(read_file), plain C(exec_command), so it
    works over C(winrm), C(psrp) and C(ssh)) into O(dest)C(/<inventory_hostname>/), each file's sha256 is checked
    against the one the endpoint computed, and C(manifest.json) lists names, sizes, sha256, host and times.
  - Uses a new folder C(C:\Windows\Temp\tetra-support-<UTC time>-<random>) on the endpoint for each run.
  - Never stops, starts or restarts the connector service and never uses the Connector Protection password.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
options:
  dest:
    description:
      - Controller folder for the bundles. Files of this host go to C(<dest>/<inventory_hostname>/) (the host name made
        safe for a file name), created when missing.
      - At most 4096 characters, no control characters (newline, NUL) and no white space at either end.
    type: path
    required: true
  capture:
    description:
      - Packet capture for the wait, with Windows' own tools. V(pktmon) needs Windows 10 1809 or later; V(netsh) uses
        C(netsh trace) and works on older Windows too. V(none) captures nothing.
    type: str
    choices: [none, netsh, pktmon]
    default: none
  capture_max_mb:
    description: Largest capture file in MB (C(pktmon --file-size), C(netsh trace maxsize)), from 1 to 4096.
    type: int
    default: 256
  wait:
    description:
      - Seconds to wait between C(support_start) and C(support_finish). Overrides the policy interval and O(max_wait).
      - V(0) collects the bundle right away. At most 86400 (one day).
    type: int
  max_wait:
    description: Longest wait in seconds when O(wait) is not given, from 0 to 86400.
    type: int
    default: 3600
  deadline:
    description:
      - Time budget in seconds of the C(support_start) and C(support_finish) calls. C(ipsupporttool.exe) gets this
        minus 20 seconds; stopping a capture can take minutes on a busy host.
      - From 60 to 3600. It is also part of the safety net's margin (see above).
    type: int
    default: 600
  chunk_size:
    description: Bytes per C(read_file) call when copying files to the controller (4096 to 4194304).
    type: int
    default: 1048576
  remove_remote:
    description:
      - Delete the work folder on the endpoint once every file reached the controller with a matching size and sha256.
      - The endpoint script only deletes folders under C(C:\\Windows\\Temp\\tetra-support-*).
    type: bool
    default: true
notes:
  - The commands it runs on the endpoint are listed in C(docs/endpoint-commands.md) for EDR/SOC allow-listing.
  - Debug logging also turns itself off at the next policy update.
attributes:
  check_mode:
    support: full
    description:
      - Reads the install and the policy, and reports the plan (work folder, wait, the commands in order); runs
        nothing on the endpoint and copies nothing.
  diff_mode:
    support: none
    description: The change is an update of the connector's definitions (or a bundle on the controller); there is no diff to show.
  platform:
    support: full
    platforms: windows
    description: Targets Windows endpoints with Windows PowerShell 5.1 and the Cisco Secure Endpoint connector.
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
  - module: secure_endpoint.tetra.tetra_forceupdate
'''

EXAMPLES = r'''
- name: TAC bundle with a packet capture over one update interval (at most 30 minutes)
  secure_endpoint.tetra.tetra_support_bundle:
    dest: /var/tmp/tetra-support
    capture: pktmon
    max_wait: 1800
  register: bundle

- name: Bundle only, right away
  secure_endpoint.tetra.tetra_support_bundle:
    dest: /var/tmp/tetra-support
    wait: 0
'''

RETURN = r'''
refused:
  description:
    - Why nothing was run (V(not_installed), V(sfc_missing), V(sfc_not_cisco)), or null.
    - V(safety_net_failed) when the endpoint could not register its safety-net task; it then starts nothing.
  returned: always
  type: str
dest:
  description: The controller folder of this host's files.
  returned: unless refused
  type: str
  sample: /var/tmp/tetra-support/ep-042
manifest:
  description: Path of C(manifest.json).
  returned: success
  type: str
files:
  description: The files copied, each with name, size, sha256, source_path and verified.
  returned: success
  type: list
  elements: dict
  sample: [{name: CiscoAMP_Support_Tool_2026_11_28_02_31_00.zip, size: 1583210, sha256: 9f2c..., verified: true,
            source_path: 'C:\Windows\Temp\tetra-support-20261128T023000Z-1a2b3c4d\CiscoAMP_Support_Tool_2026_11_28_02_31_00.zip'}]
work_dir:
  description: The folder used on the endpoint.
  returned: unless refused
  type: str
wait_s:
  description: Seconds waited (or that would be waited in check mode).
  returned: unless refused
  type: int
wait_source:
  description: Where RV(wait_s) came from, V(wait), V(policy) or V(default).
  returned: unless refused
  type: str
commands:
  description: The endpoint commands of C(support_start) and C(support_finish), in order.
  returned: unless refused
  type: list
  elements: str
safety_net:
  description:
    - The endpoint-side safety net the run arms (or would arm in check mode) - the task name, seconds from
      C(support_start) to the task firing, its time limit and the request commands it runs, in order.
    - The endpoint's records are the C(safety_net) keys of RV(support_start) (C(registered), C(fires_at), C(actions)) and
      of RV(support_finish) (C(existed), C(fired), C(removed)).
  returned: unless refused by the install check
  type: dict
  sample: {task: secure_endpoint.tetra support 20261128T023000Z-1a2b3c4d, delay_s: 2520, time_limit_s: 600, stop: [pktmon_stop, sfc_log_stop]}
remote_removed:
  description: Whether the endpoint's work folder was deleted after the transfer (false with O(remove_remote=false)).
  returned: when the bundle was collected
  type: bool
  sample: true
cleanup:
  description: Whether debug logging and the capture were stopped, with the exit codes of the stop commands.
  returned: success
  type: dict
  sample: {debug_logging_stopped: true, debug_logging_exit_code: 0, capture: pktmon, capture_stopped: true, capture_exit_code: 0,
           safety_net_removed: true, safety_net_fired: false, safety_net_error: null}
times:
  description: UTC times of the start, of C(support_start), of C(support_finish) and of the end of the copy.
  returned: success
  type: dict
support_start:
  description: The endpoint's C(support_start) record (debug_logging, capture, forceupdate, work_dir).
  returned: success
  type: dict
support_finish:
  description: The endpoint's C(support_finish) record (bundle, capture, debug_logging, files).
  returned: when C(support_finish) ran
  type: dict
calls:
  description: Number of endpoint calls made.
  returned: always
  type: int
'''
