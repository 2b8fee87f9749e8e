#!/usr/bin/python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r'''
module: tetra_selftest
short_description: Check that a Windows endpoint returns evidence of the documented shape (first-run self-test)
description:
  - Sends ONE C(collect) request with every section, exactly the request
    M(secure_endpoint.tetra.tetra_diagnose) sends with the same options, and checks the evidence document
    section by section against the evidence format (C(docs/evidence.md)).
  - "Checks: required keys and their types; ISO 8601 dates; text that decoded cleanly (no U+FFFD
    replacement characters, NUL or C1 control characters, no UTF-8 read as an 8-bit code page such as
    C(Ã©)); the probes ran as LocalSystem when O(context=system) (the scheduled task ran); a certificate
    chain whenever the TLS handshake reached the server certificate; every requested name, URL and root
    has a record, also when its probe timed out; and the collection's own parser and diagnosis read the
    document."
  - Keys the format does not know are accepted and named in the detail of the shape check.
  - Writes the raw evidence (password elements of C(policy.xml) redacted) to
    C(<evidence_dir>/<inventory_hostname>.json), so it can be replayed with C(playbooks/analyze.yml) or
    turned into a lab scenario. The file also holds the request and the check results. When the endpoint
    did not return JSON, everything it printed is kept.
  - Fails the host when a check fails, naming the failed checks in RV(msg).
  - Changes nothing on the endpoint.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
extends_documentation_fragment:
  - secure_endpoint.tetra.endpoint
  - secure_endpoint.tetra.endpoint.network
options:
  evidence_dir:
    description:
      - A folder on the controller where the raw evidence of each host is written as
        C(<inventory_hostname>.json), together with the request and the check results.
      - A relative path is relative to the directory C(ansible-playbook) runs in.
      - Password elements of C(policy.xml) are replaced by C(REDACTED) before writing.
    type: path
    default: tetra-selftest
seealso:
  - module: secure_endpoint.tetra.tetra_diagnose
'''

EXAMPLES = r'''
- name: Self-test the endpoint script on a first real endpoint
  secure_endpoint.tetra.tetra_selftest:
    evidence_dir: /var/tmp/tetra-selftest
  register: selftest

- name: Print the pass/fail table
  ansible.builtin.debug:
    msg: "{{ selftest.table }}"
'''

RETURN = r'''
checks:
  description: One entry per check.
  returned: when the endpoint was contacted
  type: list
  elements: dict
  contains:
    section:
      description: Evidence section (C(document), C(host), C(context), C(install), ..., C(proxy), C(errors), C(controller)).
      type: str
    check:
      description: What was checked.
      type: str
    ok:
      description: Whether the check passed; null when it was skipped because the section's shape is wrong.
      type: bool
    detail:
      description: Why it failed, or a note (extra keys accepted, the verdict the controller reached).
      type: str
table:
  description: RV(checks) as fixed-width text lines (section, check, pass/FAIL/skip, detail).
  returned: when the endpoint was contacted
  type: list
  elements: str
summary:
  description: Number of checks in all, passed, failed and skipped.
  returned: when the endpoint was contacted
  type: dict
  sample: {"total": 59, "passed": 59, "failed": 0, "skipped": 0}
failures:
  description: The failed entries of RV(checks).
  returned: when the endpoint was contacted
  type: list
  elements: dict
msg:
  description: One line; on failure it names every failed check.
  returned: when the endpoint was contacted
  type: str
  sample: "ep-042: 1 of 59 self-test checks failed (1 more not checked because the shape is wrong): install/required keys and types (...)."
evidence_path:
  description: File the raw evidence was written to.
  returned: when the endpoint was contacted
  type: str
timings:
  description: Endpoint run time, controller round trip in milliseconds and the number of attempts.
  returned: when the endpoint was contacted
  type: dict
'''
