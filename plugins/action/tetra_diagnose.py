# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import typing as t

from ansible.errors import AnsibleActionFail

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose, invalid_evidence_verdict
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import EvidenceError, parse_evidence
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import RemoteError
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import (
    COMMON_SPEC, NETWORK_SECTIONS, NETWORK_SPEC, POSTURE_SECTIONS,
)

FRESHNESS_SPEC: dict[str, t.Any] = {
    'latest_version': {'type': 'int'},
    'latest_source': {'type': 'str', 'default': 'given'},
    'max_behind': {'type': 'int', 'default': 5},
    'max_age_hours': {'type': 'float', 'default': 24},
    'evidence_file': {'type': 'path'},
}


def load_saved_evidence(path: str) -> dict[str, t.Any]:
    """The evidence document inside a file written by evidence_dir."""
    try:
        with open(path, encoding='utf-8') as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail('Cannot read saved evidence %s: %s' % (path, exc)) from None
    if not isinstance(record, dict) or 'evidence' not in record:
        raise AnsibleActionFail('%s is not a saved evidence file (no "evidence" key)' % path)
    return record['evidence']


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC, **FRESHNESS_SPEC)
    SECTIONS = POSTURE_SECTIONS + NETWORK_SECTIONS

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        # Offline replay needs no endpoint: do not let ActionBase open a connection.
        if (self._task.args or {}).get('evidence_file'):
            self._requires_connection = False
        return super().run(tmp, task_vars)

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        if args.get('evidence_file'):
            return self.verdict_result(args, task_vars, load_saved_evidence(args['evidence_file']), {'replayed_from': args['evidence_file']})
        request = self.build_request(args)
        try:
            document, call = self.call_endpoint(request)
        except RemoteError as exc:
            if exc.result.get('unreachable'):
                raise
            # The endpoint answered, but not with evidence: that is a verdict, not a task failure.
            return {'verdict': invalid_evidence_verdict(self.host_name(task_vars), exc.result['msg']), 'details': exc.result}
        timings = {'endpoint_ms': document.get('duration_ms'), 'round_trip_ms': call.round_trip_ms, 'attempts': call.attempts}
        extra: dict[str, t.Any] = {'timings': timings}
        evidence_path = self.store(args, task_vars, request, document)
        if evidence_path:
            extra['evidence_path'] = evidence_path
        return self.verdict_result(args, task_vars, document, extra)

    def verdict_result(self, args: dict[str, t.Any], task_vars: dict[str, t.Any], document: t.Any, extra: dict[str, t.Any]) -> dict[str, t.Any]:
        host = self.host_name(task_vars)
        try:
            facts = parse_evidence(document)
        except EvidenceError as exc:
            return dict(extra, verdict=invalid_evidence_verdict(host, str(exc)))
        freshness = {
            'latest': args.get('latest_version'),
            'source': args['latest_source'] if args.get('latest_version') is not None else 'unknown',
            'max_behind': args['max_behind'],
            'max_age_hours': args.get('max_age_hours'),
        }
        verdict = diagnose(facts, freshness, host=host)
        if 'timings' in extra:
            verdict['timings'] = {k: extra['timings'][k] for k in ('endpoint_ms', 'round_trip_ms')}
        return dict(extra, verdict=verdict, facts=facts, freshness=freshness)
