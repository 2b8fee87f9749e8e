# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import json
import typing as t

from ansible.errors import AnsibleActionFail

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console import apply_console, unreachable_note
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose, invalid_evidence_verdict
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import EVIDENCE_FORMAT, parse_timestamp
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import EvidenceError, parse_evidence
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._messages import with_verdict_msg
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import BackstopExpired, RemoteError, announced_bound_s, backstop_alarm
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import (
    COMMON_SPEC, NETWORK_SECTIONS, NETWORK_SPEC, POSTURE_SECTIONS,
)

FRESHNESS_SPEC: dict[str, t.Any] = {
    'latest_version': {'type': 'int'},
    'latest_source': {'type': 'str', 'default': 'given'},
    'max_behind': {'type': 'int', 'default': 5},
    'max_age_hours': {'type': 'float', 'default': 24},
    'evidence_file': {'type': 'path'},
    # The console's view of the computer (host variable tetra_console of the secure_endpoint.tetra.computers inventory).
    'console': {'type': 'dict'},
    # The parsed facts are 95% of a result (about 10 KB per host) and the controller keeps every registered result
    # until the play ends; the diagnose role drops them when the report will not need them.
    'return_facts': {'type': 'bool', 'default': True},
    # Options not set on the task come from the host variables tetra_<option> (the diagnose role's variables): the role's
    # task then has no template, which a worker would compile again for every host.
    'from_vars': {'type': 'bool', 'default': False},
}
# Beyond the endpoint call's own bound (deadline + 30 s): the task's backstop when it sets no timeout keyword.
BACKSTOP_MARGIN_S = 30
# Options from_vars does not read as tetra_<option>: derived from the latest version, or the switch itself.
_NOT_FROM_VARS = ('from_vars', 'latest_source', 'return_facts')


def evidence_time(document: t.Any) -> datetime.datetime | None:
    """When the endpoint collected the evidence: verdict ages are measured from then, so a replay agrees."""
    started = document.get('started') if isinstance(document, dict) else None
    try:
        return parse_timestamp(str(started))
    except ValueError:
        return None


def load_saved_evidence(path: str) -> dict[str, t.Any]:
    """The record (request, evidence, freshness) in a file written by evidence_dir.

    Also a bare evidence document, as the script writes it when an administrator runs it locally
    (README, "Without WinRM"): UTF-8 with or without BOM, or UTF-16 with BOM (PowerShell 5.1's `>`).
    """
    try:
        with open(path, 'rb') as handle:
            record = json.loads(decode_text(handle.read()))
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail('Cannot read saved evidence %s: %s' % (path, exc)) from None
    if isinstance(record, dict) and 'evidence' not in record and record.get('format') == EVIDENCE_FORMAT and 'host' in record:
        record = {'evidence': record}
    if not isinstance(record, dict) or 'evidence' not in record:
        raise AnsibleActionFail('%s is neither a saved evidence file (no "evidence" key) nor an evidence document' % path)
    return record


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC, **FRESHNESS_SPEC)
    SECTIONS = POSTURE_SECTIONS + NETWORK_SECTIONS

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        if (self._task.args or {}).get('from_vars'):
            self._task.args = self.args_from_vars(dict(self._task.args), task_vars or {})
        # Offline replay needs no endpoint: do not let ActionBase open a connection.
        if (self._task.args or {}).get('evidence_file'):
            self._requires_connection = False
        result = with_verdict_msg(self.run_with_backstop(tmp, task_vars))
        note = unreachable_note((self._task.args or {}).get('console')) if result.get('unreachable') else None
        if note and isinstance(self._task.args.get('console'), dict):
            result['msg'] = '%s (%s)' % (result.get('msg') or 'unreachable', note)
        return result

    def run_with_backstop(self, tmp: t.Any, task_vars: dict[str, t.Any] | None) -> dict[str, t.Any]:
        """The action, bounded at deadline + 60 s when the task sets no ``timeout`` keyword (the role sets none: a template).

        A backstop that should never fire: the endpoint call returns within deadline + 30 s whatever the endpoint does.
        """
        if self._task.timeout:
            return super().run(tmp, task_vars)
        seconds = int(announced_bound_s((self._task.args or {}).get('deadline', 40))) + BACKSTOP_MARGIN_S
        try:
            with backstop_alarm(seconds):
                return super().run(tmp, task_vars)
        except BackstopExpired:
            return {'failed': True, 'changed': False,
                    'msg': 'tetra_diagnose did not return within %d s (deadline + 60 s, a backstop that should never fire: the '
                           'endpoint call has its own bound of deadline + 30 s); report it with -vvv output' % seconds}

    def args_from_vars(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """The task's arguments completed from the host variables tetra_<option>, as the diagnose role defines them.

        A variable that is undefined, null or empty leaves the module default. The latest version is the user's
        ``tetra_latest_version``, else the one the role fetched (``tetra_latest_fetched``, source versions.id); the parsed
        facts are returned only when no latest version is known (the report then needs them, issue 13).
        """
        for option in self.ARGUMENT_SPEC:
            if option not in args and option not in _NOT_FROM_VARS:
                value = self.host_var(task_vars, 'tetra_' + option)
                if value is not None:
                    args[option] = value
        fetched = self.host_var(task_vars, 'tetra_latest_fetched')
        if 'latest_version' not in args and fetched is not None:
            args['latest_version'] = fetched
            args.setdefault('latest_source', 'versions.id')
        args.setdefault('return_facts', args.get('latest_version') is None)
        return args

    def host_var(self, task_vars: dict[str, t.Any], name: str) -> t.Any:
        """A host variable's value, templated as Ansible would; None when it is undefined, null or empty."""
        if name not in task_vars:
            return None
        value = self._templar.template(task_vars[name])
        return None if value is None or (isinstance(value, (str, list, dict)) and not value) else value

    console: dict[str, t.Any] | None = None
    return_facts = True

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        self.console = args.get('console')
        self.return_facts = args['return_facts']
        if args.get('evidence_file'):
            record = load_saved_evidence(args['evidence_file'])
            invalid = (record['evidence'] or {}).get('invalid_output') if isinstance(record['evidence'], dict) else None
            if invalid:
                return self.invalid_result(task_vars, invalid, default_msg='invalid output')
            freshness = self.freshness(args) if args.get('latest_version') is not None else record.get('freshness') or self.freshness(args)
            return self.verdict_result(task_vars, record['evidence'], freshness, {'replayed_from': args['evidence_file']})
        request = self.build_request(args)
        try:
            document, call = self.call_endpoint(request)
        except RemoteError as exc:
            if exc.result.get('unreachable'):
                raise
            # The endpoint answered, but not with evidence: that is a verdict, not a task failure (and is kept for replay).
            self.store(args, task_vars, request, {'invalid_output': exc.result})
            return self.invalid_result(task_vars, exc.result)
        timings = {'endpoint_ms': document.get('duration_ms'), 'round_trip_ms': call.round_trip_ms, 'attempts': call.attempts}
        extra: dict[str, t.Any] = {'timings': timings}
        freshness = self.freshness(args)
        evidence_path = self.store(args, task_vars, request, document, freshness=freshness)
        if evidence_path:
            extra['evidence_path'] = evidence_path
        return self.verdict_result(task_vars, document, freshness, extra)

    def invalid_result(self, task_vars: dict[str, t.Any], details: dict[str, t.Any], default_msg: str = '') -> dict[str, t.Any]:
        """The evidence_invalid verdict for output that is not evidence, with the call's timings (the report shows them)."""
        verdict = invalid_evidence_verdict(self.host_name(task_vars), details.get('msg', default_msg))
        result: dict[str, t.Any] = {'verdict': verdict, 'details': details}
        if isinstance(details.get('timings'), dict):
            verdict['timings'] = dict(details['timings'])
            result['timings'] = dict(details['timings'])
        return result

    @staticmethod
    def freshness(args: dict[str, t.Any]) -> dict[str, t.Any]:
        return {
            'latest': args.get('latest_version'),
            'source': args['latest_source'] if args.get('latest_version') is not None else 'unknown',
            'max_behind': args['max_behind'],
            'max_age_hours': args.get('max_age_hours'),
        }

    def verdict_result(self, task_vars: dict[str, t.Any], document: t.Any, freshness: dict[str, t.Any], extra: dict[str, t.Any]) -> dict[str, t.Any]:
        host = self.host_name(task_vars)
        try:
            facts = parse_evidence(document)
        except EvidenceError as exc:
            return dict(extra, verdict=invalid_evidence_verdict(host, str(exc)))
        verdict = diagnose(facts, freshness, host=host, now=evidence_time(document))
        if self.console:
            verdict = apply_console(verdict, facts, self.console, now=evidence_time(document),
                                    max_age_hours=freshness.get('max_age_hours') or 24)
        if 'timings' in extra:
            verdict['timings'] = {k: extra['timings'][k] for k in ('endpoint_ms', 'round_trip_ms')}
        result = dict(extra, verdict=verdict, freshness=freshness)
        if self.return_facts:
            result['facts'] = facts
        return result
