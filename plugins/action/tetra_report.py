# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import typing as t

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ANSIBLE_CORE_VERSION

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _report
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import utc_now

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
    'teams': {'type': 'dict', 'default': {}},
    'started': {'type': 'str'},
    'lines_limit': {'type': 'int', 'default': 100},
}
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version(root: str = COLLECTION_ROOT) -> str | None:
    """This collection's version: MANIFEST.json when installed, galaxy.yml in a checkout."""
    try:
        with open(os.path.join(root, 'MANIFEST.json'), encoding='utf-8') as handle:
            return str(json.load(handle)['collection_info']['version'])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, 'galaxy.yml'), encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('version:'):
                    return line.split(':', 1)[1].strip().strip('"\'') or None
    except OSError:
        pass
    return None


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
        records = _report.build_records(args['hosts'], results, addresses=self.addresses(args['hosts'], task_vars))
        earlier = [_report.load_report(path) for path in args['merge']]
        records = _report.merge_records(*earlier, records)
        document = _report.build_document(records, {'title': args['title'], 'sources': args['merge'],
                                                    'fleet_max_version': fleet_max, 'teams': args['teams'],
                                                    'run': self.run_info(args, task_vars)})
        folder = args['dest'] or _report.default_report_dir()
        paths = _report.write_report(folder, document, args['formats'])
        return {
            'plan': document['plan'], 'run': document['run'],
            'lines': _report.fleet_lines(document, paths, folder, args['lines_limit']),
            'changed': False, 'report_format': _report.REPORT_FORMAT, 'dest': folder, 'paths': paths,
            'summary': document['summary'], 'fleet_max_version': fleet_max,
            'needs_action': _report.needs_action_rows(records, args['needs_action_limit']),
            'stats': _report.stats_summary(document, paths, folder),
            'msg': 'Fleet report for %d hosts (%d need action): %s' % (
                document['summary']['total'], document['summary']['needs_action'], paths.get('html') or folder),
        }

    @staticmethod
    def run_info(args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        sources = task_vars.get('ansible_inventory_sources')
        inventory = ', '.join(str(s) for s in sources) if isinstance(sources, (list, tuple)) else sources
        return {'inventory': inventory or None, 'ansible_core': ANSIBLE_CORE_VERSION, 'collection': collection_version(),
                'started': args.get('started'), 'finished': utc_now(),
                'check_mode': bool(task_vars.get('ansible_check_mode')), 'limit': task_vars.get('ansible_limit') or None}

    @staticmethod
    def addresses(hosts: list[str], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """host -> inventory address (ansible_host), for the subnet a host shares with others."""
        hostvars = task_vars.get('hostvars') or {}
        found = {}
        for host in hosts:
            try:
                found[host] = to_text(hostvars[host].get('ansible_host') or '') or None
            except (KeyError, TypeError, AttributeError, AnsibleError):
                found[host] = None
        return found

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
