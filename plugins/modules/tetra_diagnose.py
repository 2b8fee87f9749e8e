#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_diagnose
short_description: Tell whether TETRA definitions are current on a Windows endpoint and, if not, exactly why
description:
  - Collects posture and runs every network probe (DNS, TCP, TLS with revocation, C(curl.exe -v), OCSP/CRL
    hosts, root certificates, proxy) in ONE command on the endpoint, concurrently under one deadline, then
    decides on the controller.
  - Returns one verdict per host with C(status) (ok, stale, failing, not_installed, unknown), C(cause) from a
    documented catalog (C(docs/causes.md)), the C(evidence) lines that prove it, the C(action) to take, whether
    a forced update can fix it (C(remediable)), and secondary findings. The primary cause is the first
    matching entry of the catalog, so the choice is deterministic.
  - An endpoint that answers with something that is not evidence gets a verdict with status C(unknown) and
    cause C(evidence_invalid) instead of failing the task.
  - With O(evidence_file) the verdict is recomputed from saved evidence without contacting the endpoint.
  - Changes nothing on the endpoint.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
extends_documentation_fragment:
  - secure_endpoint.tetra.endpoint
  - secure_endpoint.tetra.endpoint.network
options:
  latest_version:
    description:
      - Latest published TETRA version to compare with, usually from the
        P(secure_endpoint.tetra.tetra_latest_version#lookup) lookup run once per play, or the user's
        C(tetra_latest_version).
      - When not given, the verdict is judged on age alone and its C(versions.latest_source) is
        C(unknown); the report then recomputes it with the highest version seen in the run.
    type: int
  latest_source:
    description: Where O(latest_version) came from, reported in the verdict.
    type: str
    default: given
  max_behind:
    description: Definitions at most this many versions behind the latest count as current (Cisco's Health Checker uses 5).
    type: int
    default: 5
  max_age_hours:
    description:
      - Also count definitions as stale when the last successful update is older than this many hours.
      - Cisco publishes about four versions a day, so a day without success means updates are failing.
    type: float
    default: 24
  evidence_file:
    description:
      - A file written by O(evidence_dir) to replay instead of contacting the endpoint.
    type: path
  console:
    description:
      - The Secure Endpoint console's view of this computer, the host variable C(tetra_console) that the
        P(secure_endpoint.tetra.computers#inventory) inventory plugin sets (the C(diagnose) role passes it when present).
      - "The verdict then also says what the console adds: the console reports failed or older definitions while the
        endpoint is current (C(console_lagging), a secondary finding, status stays C(ok)); last seen recently while
        the definitions are old (C(console_update_gap): intermittent or blocked updates, the primary cause when no
        blocking cause was found); not seen for 3 days or more (C(computer_offline): offline, not a TETRA problem,
        the primary cause when no blocking cause was found); console faults relevant to updates (evidence lines
        and a C(console_faults) finding). For an unreachable host the console's note is added to C(msg)."
    type: dict
    version_added: 1.0.0
  return_facts:
    description:
      - Return the parsed facts the verdict was made from (RV(facts), about 10 KB per host).
      - The controller keeps every registered result until the play ends, so large fleets that only need the
        verdict save memory and CPU with V(false). M(secure_endpoint.tetra.tetra_report) needs the facts only to
        judge hosts against the fleet's highest version when no latest version was known; the C(diagnose) role
        passes V(false) when it knows the latest version.
    type: bool
    default: true
    version_added: 1.1.0
  from_vars:
    description:
      - Take every option this task does not set from the host variable named C(tetra_) followed by the option's name,
        the variables of the C(secure_endpoint.tetra.diagnose) role (C(tetra_region) for O(region), C(tetra_deadline) for
        O(deadline), C(tetra_console) for O(console), and so on). A variable that is undefined, null or empty leaves the
        option's default. Options set on the task, including by C(module_defaults), win.
      - O(latest_version) then also falls back to C(tetra_latest_fetched), the version the role fetched from
        C(versions.id) (reported with O(latest_source=versions.id)), and O(return_facts) defaults to V(true) only when no
        latest version is known.
      - The C(diagnose) role sets it so that its task has no template, which a worker would compile again for every
        host.
    type: bool
    default: false
    version_added: 1.1.0
notes:
  - When the task sets no C(timeout) keyword, the action bounds itself at O(deadline) + 60 s as a backstop that should
    never fire (the endpoint call returns within O(deadline) + 30 s whatever the endpoint does); the task then fails
    with a message that says so.
seealso:
  - module: secure_endpoint.tetra.tetra_posture
  - module: secure_endpoint.tetra.tetra_report
'''

EXAMPLES = r'''
- name: Diagnose TETRA updates
  secure_endpoint.tetra.tetra_diagnose:
    latest_version: "{{ lookup('secure_endpoint.tetra.tetra_latest_version') }}"
    evidence_dir: /var/tmp/tetra-evidence
  register: diagnosis

- name: Show the verdict
  ansible.builtin.debug:
    msg: "{{ diagnosis.verdict.status }} / {{ diagnosis.verdict.cause }}: {{ diagnosis.verdict.evidence | join('; ') }}"

- name: Replay saved evidence on the controller
  secure_endpoint.tetra.tetra_diagnose:
    evidence_file: /var/tmp/tetra-evidence/ep-042.json
  delegate_to: localhost

- name: Take the options from the host variables (group_vars tetra_region, tetra_proxy_server, ...), as the diagnose role does
  secure_endpoint.tetra.tetra_diagnose:
    from_vars: true
    evidence_dir: /var/tmp/tetra-evidence
'''

RETURN = r'''
verdict:
  description: The verdict for this host.
  returned: always
  type: dict
  contains:
    host:
      description: Inventory host name.
      type: str
    status:
      description: One of C(ok), C(stale), C(failing), C(not_installed), C(unknown).
      type: str
      sample: failing
    cause:
      description: Primary cause, from C(docs/causes.md).
      type: str
      sample: revocation_check_failed
    summary:
      description: The cause in one sentence.
      type: str
    evidence:
      description: Short facts proving the cause, and the version line.
      type: list
      elements: str
      sample: ["schannel 0x80092013 while checking revocation during the TLS handshake with tetra-defs.amp.cisco.com (as LocalSystem)"]
    action:
      description: What to do, in the Cisco procedure's words where it gives them.
      type: str
    remediable:
      description: Whether a forced update (C(secure_endpoint.tetra.tetra_forceupdate)) can fix it.
      type: bool
    secondary:
      description: Other findings that hold, each with cause, summary, evidence, action, remediable.
      type: list
      elements: dict
    versions:
      description: Connector version, TETRA version, latest version, where latest came from, versions behind.
      type: dict
    last_success:
      description: Last successful definition update (ISO-8601 UTC).
      type: str
    age_hours:
      description: Hours since the last successful update.
      type: float
    timings:
      description: Endpoint run time and controller round trip in milliseconds.
      type: dict
    checked_at:
      description: When the verdict was made (ISO-8601 UTC).
      type: str
    console:
      description:
        - What the console said (with O(console)) - definitions status, state, version, update time and age,
          last seen and its age in hours, relevant faults, and notes (C(console lagging), C(offline), C(update gap)).
      type: dict
      returned: when O(console) is given
      version_added: 1.0.0
facts:
  description: All parsed facts the verdict was made from.
  returned: when the endpoint returned evidence and O(return_facts) is true
  type: dict
freshness:
  description: The freshness settings used (latest, source, max_behind, max_age_hours).
  returned: when the endpoint returned evidence
  type: dict
timings:
  description: Endpoint run time, controller round trip, attempts.
  returned: when the endpoint was contacted
  type: dict
evidence_path:
  description: File the raw evidence was written to.
  returned: when evidence_dir is set
  type: str
'''
