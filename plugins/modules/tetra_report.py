#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_report
short_description: Write the TETRA fleet report (JSON, CSV, Markdown, HTML) from every host's diagnosis
description:
  - Runs on the controller, once per play (C(run_once), C(delegate_to=localhost)). Reads the result each host
    of O(hosts) registered under O(result_var) (normally from M(secure_endpoint.tetra.tetra_diagnose)) and
    writes one report folder with one record per host.
  - Every host gets a record. A host without a registered result, or whose result is unreachable, gets status
    V(unreachable) with cause V(authentication_failed) when the message says the credentials were rejected
    (401, unauthorized, logon failure) and V(host_unreachable) otherwise. A failed task without a verdict gets
    status V(unknown) and cause V(task_failed); a skipped one V(not_diagnosed).
  - When a verdict says the latest published TETRA version was unknown (C(versions.latest_source=unknown)), the
    verdicts of those hosts are computed again against the highest TETRA version seen in this run
    (C(latest_source=fleet_max)), and the report says so.
  - Reports of earlier runs or of other AWX job slices given in O(merge) are merged in; the most recent record
    of each host (by C(checked_at)) wins.
  - The files are C(report.json) (format 1, see C(docs/evidence.md)), C(report.csv), C(report.md) and
    C(report.html), a self-contained page (inline CSS, JavaScript and SVG; no external assets) with counts by
    status and cause, charts, and a sortable, filterable host table with each host's evidence and action.
  - The report starts with an action plan (RV(plan), C(plan) in C(report.json)), which groups the hosts that need action
    by cause, by what they share (same proxy, DNS servers, update server, intercepting issuer, policy
    or /24 subnet of their inventory address) and by owning team, each group with its action once. The DNS
    servers of a host are read from its saved evidence (C(evidence_dir) of M(secure_endpoint.tetra.tetra_diagnose)).
  - The report also records the run (inventory, ansible-core and collection versions, start time, duration).
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
options:
  hosts:
    description:
      - The inventory host names to report on, normally C({{ ansible_play_hosts_all }}) so that hosts which
        failed or became unreachable still get a record.
      - May be empty when only merging earlier reports with O(merge).
    type: list
    elements: str
    default: []
  result_var:
    description:
      - The name under which each host registered its M(secure_endpoint.tetra.tetra_diagnose) result.
      - Ignored when O(results) is given.
    type: str
    default: tetra_diagnosis
  results:
    description:
      - Host name to registered result, instead of reading O(result_var) from hostvars.
      - Hosts of O(hosts) missing from this dictionary are reported as unreachable.
    type: dict
  dest:
    description:
      - The report folder on the controller; created when missing, files in it are replaced.
      - Defaults to C(out/tetra-report-<UTC timestamp>) under the controller's current working directory.
    type: path
  formats:
    description:
      - The files to write. An empty list writes no file and creates no folder; the summary is still returned.
    type: list
    elements: str
    choices: [csv, html, json, markdown]
    default: [json, csv, markdown, html]
  merge:
    description:
      - Earlier reports to merge into this one, each a C(report.json) file or a folder that holds one, for
        example the reports of every slice of a sliced AWX job.
      - The most recent record of each host wins, compared by C(checked_at).
    type: list
    elements: path
    default: []
  title:
    description: Title of the Markdown and HTML reports.
    type: str
    default: 'TETRA definitions: fleet report'
  needs_action_limit:
    description: At most this many hosts are listed in RV(needs_action) (the report files list all of them).
    type: int
    default: 100
  teams:
    description:
      - Owning team per cause for the action plan (RV(plan)), overriding the collection's default
        (V(network), V(proxy), V(security), V(console), V(endpoint)); keys are causes, values team names.
    type: dict
    default: {}
  started:
    description:
      - When the run started (UTC, C(YYYY-MM-DDTHH:MM:SSZ)), for the report's run metadata (start time and duration).
        The roles set it.
    type: str
  lines_limit:
    description: At most this many hosts are listed in RV(lines), most urgent first.
    type: int
    default: 100
attributes:
  check_mode:
    support: full
    description:
      - The report is a set of new files on the controller and nothing on any managed host changes, so the
        report is written in check mode too (a check-mode diagnosis is a complete diagnosis).
  diff_mode:
    support: none
    description: The report is new output, not a change to compare.
  platform:
    support: full
    platforms: all
    description: Runs on the controller only; the managed hosts' results are read from their registered variables.
notes:
  - The task reports C(changed=false) because it writes a new output folder and manages no state.
  - Host-provided text (evidence, summaries, host names) is escaped in the HTML and Markdown reports, and CSV
    cells that a spreadsheet would evaluate as a formula are prefixed with a single quote.
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
  - plugin: secure_endpoint.tetra.tetra_summary
    plugin_type: callback
'''

EXAMPLES = r'''
- name: Diagnose every endpoint
  secure_endpoint.tetra.tetra_diagnose:
  register: tetra_diagnosis
  ignore_unreachable: true

- name: Write the fleet report
  secure_endpoint.tetra.tetra_report:
    hosts: "{{ ansible_play_hosts_all }}"
    result_var: tetra_diagnosis
    dest: /var/tmp/tetra-report
  run_once: true
  delegate_to: localhost
  register: tetra_report

- name: Merge the reports of the slices of an AWX job into one fleet report
  secure_endpoint.tetra.tetra_report:
    merge:
      - /srv/reports/slice-1/report.json
      - /srv/reports/slice-2/report.json
    dest: /srv/reports/fleet
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
report_format:
  description: Version of the report schema (C(report.json) C(format)).
  returned: success
  type: int
  sample: 1
dest:
  description: The report folder.
  returned: success
  type: str
  sample: /home/ops/out/tetra-report-20261128T023100Z
paths:
  description: Path of each file written, by format.
  returned: success
  type: dict
  sample: {"json": "/tmp/r/report.json", "csv": "/tmp/r/report.csv", "markdown": "/tmp/r/report.md", "html": "/tmp/r/report.html"}
summary:
  description: Host counts.
  returned: success
  type: dict
  contains:
    total:
      description: Number of hosts in the report.
      type: int
    ok:
      description: Hosts whose definitions are current.
      type: int
    needs_action:
      description: Hosts whose status is not V(ok).
      type: int
    by_status:
      description: Hosts per status, every status listed, most urgent first.
      type: dict
    by_cause:
      description: Hosts per cause, most frequent first.
      type: dict
  sample: {"total": 3, "ok": 1, "needs_action": 2, "by_status": {"failing": 1, "unreachable": 1, "unknown": 0,
           "not_installed": 0, "stale": 0, "ok": 1}, "by_cause": {"up_to_date": 1, "dns_resolution_failed": 1,
           "host_unreachable": 1}}
needs_action:
  description: Host, status, cause and action of the hosts that are not V(ok), most urgent first, at most O(needs_action_limit).
  returned: success
  type: list
  elements: dict
  sample: [{"host": "ep-042", "status": "failing", "cause": "dns_resolution_failed", "action": "Fix DNS for tetra-defs.amp.cisco.com"}]
fleet_max_version:
  description: The highest TETRA version seen in the run when it replaced an unknown latest version, else null.
  returned: success
  type: int
  sample: 90606
stats:
  description:
    - A small run-wide summary meant for C(ansible.builtin.set_stats) (AWX job artifacts and workflow variables).
    - Counts by status and cause and the report paths.
  returned: success
  type: dict
  sample: {"format": 1, "total": 3, "ok": 1, "needs_action": 2, "by_status": {"ok": 1, "failing": 1, "unreachable": 1},
           "by_cause": {"up_to_date": 1}, "report_dir": "/tmp/r", "html": "/tmp/r/report.html", "json": "/tmp/r/report.json",
           "generated_at": "2026-11-28T02:31:00Z"}
plan:
  description:
    - The action plan, largest group first. Each group has C(cause), C(status), C(team), C(team_label), C(action)
      (once), C(remediable), C(shared) (C(attribute), C(label), C(value), or null when the hosts share nothing
      known), C(hosts), C(count) and C(text), one sentence such as
      "dns_resolution_failed, 37 hosts, all using DNS servers 10.0.0.53 -> network/firewall team".
  returned: success
  type: list
  elements: dict
  sample: [{"cause": "proxy_auth_failed", "team": "proxy", "count": 2, "hosts": ["ep-1", "ep-2"],
            "shared": {"attribute": "proxy", "label": "proxy", "value": "proxy.corp.example:8080"}}]
run:
  description: Run metadata recorded in the report (C(inventory), C(ansible_core), C(collection), C(started), C(finished), C(duration_s)).
  returned: success
  type: dict
lines:
  description:
    - The fleet table (host, status, cause, short action, most urgent first, at most O(lines_limit) hosts), the
      action plan and the report path as text lines; the roles print them with M(ansible.builtin.debug).
  returned: success
  type: list
  elements: str
msg:
  description: One line naming the host count and the HTML report.
  returned: success
  type: str
'''
