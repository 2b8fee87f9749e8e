# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import typing as t

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _report

ARGUMENT_SPEC: dict[str, t.Any] = {
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
    'result_var': {'type': 'str', 'default': 'tetra_diagnosis'},
    'results': {'type': 'dict'},
    'dest': {'type': 'path'},
    'formats': {'type': 'list', 'elements': 'str', 'default': list(_report.REPORT_FILES),
                'choices': list(_report.REPORT_FILES)},
    'merge': {'type': 'list', 'elements': 'path', 'default': []},
    'title': {'type': 'str', 'default': 'TETRA definitions: fleet report'},
    'needs_action_limit': {'type': 'int', 'default': _report.STATS_NEEDS_ACTION_LIMIT},
}


def plain(value: t.Any) -> t.Any:
    """Registered results as plain JSON data (drops lazy/tagged wrappers)."""
    return json.loads(json.dumps(value, default=to_text))


class ActionModule(ActionBase):
    """Collect every play host's diagnosis from hostvars and write the fleet report on the controller."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        try:
            result.update(self.build(args, task_vars or {}))
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail('Could not write the fleet report: %s' % to_text(exc)) from None
        return result

    def build(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        results = self.collect_results(args, task_vars)
        results, fleet_max = _report.apply_fleet_max(results)
        records = _report.build_records(args['hosts'], results)
        earlier = [_report.load_report(path) for path in args['merge']]
        records = _report.merge_records(*earlier, records)
        document = _report.build_document(records, {'title': args['title'], 'sources': args['merge'],
                                                    'fleet_max_version': fleet_max})
        folder = args['dest'] or _report.default_report_dir()
        paths = _report.write_report(folder, document, args['formats'])
        return {
            'changed': False, 'report_format': _report.REPORT_FORMAT, 'dest': folder, 'paths': paths,
            'summary': document['summary'], 'fleet_max_version': fleet_max,
            'needs_action': _report.needs_action_rows(records, args['needs_action_limit']),
            'stats': _report.stats_summary(document, paths, folder),
            'msg': 'Fleet report for %d hosts (%d need action): %s' % (
                document['summary']['total'], document['summary']['needs_action'], paths.get('html') or folder),
        }

    def collect_results(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """host -> registered result: from O(results) when given, else from each host's hostvars."""
        if args['results'] is not None:
            return plain(args['results'])
        hostvars = task_vars.get('hostvars') or {}
        return {host: registered(hostvars, host, args['result_var']) for host in args['hosts']}


def registered(hostvars: t.Any, host: str, name: str) -> dict[str, t.Any] | None:
    """The result a host registered under ``name``, or None (host gone, never registered, not a dict)."""
    try:
        value = hostvars[host][name]
    except (KeyError, TypeError, AnsibleError):
        return None
    return plain(value) if isinstance(value, t.Mapping) else None
