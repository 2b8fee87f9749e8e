# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: tetra_summary
type: aggregate
short_description: Fleet table of TETRA verdicts after PLAY RECAP
description:
  - Collects the C(verdict) of every task result that has one (M(secure_endpoint.tetra.tetra_diagnose) and
    anything that returns its verdict) and every unreachable host, and prints after C(PLAY RECAP) a table of
    host counts per status and per cause, then the hosts that need action with their cause and action.
  - When M(secure_endpoint.tetra.tetra_report) ran, its counts are used (they include merged reports and
    verdicts recomputed against the fleet's highest version), its action plan is printed first (one line per
    group of hosts sharing a cause and an attribute, with the owning team and the action once) and the
    report's paths are printed. Without a report the plan groups the collected verdicts by cause.
  - Importing this plugin imports the libraries of the winrm and psrp connection plugins (pywinrm, requests,
    pyspnego, pypsrp) once in the controller's main process, so forked workers inherit them instead of
    importing them again for every host and task (a large share of the controller CPU of ad hoc runs).
  - An aggregate callback, so it prints beside any stdout callback, AWX's included. It must be enabled.
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
requirements:
  - Enable it with C(callbacks_enabled) in C(ansible.cfg) or C(ANSIBLE_CALLBACKS_ENABLED).
options:
  max_hosts:
    description: At most this many hosts are listed under "hosts that need action"; the rest are counted.
    type: int
    default: 50
    ini:
      - section: callback_tetra_summary
        key: max_hosts
    env:
      - name: TETRA_SUMMARY_MAX_HOSTS
  action_width:
    description: Action text longer than this many characters is shortened in the table; V(0) prints actions in full.
    type: int
    default: 0
    ini:
      - section: callback_tetra_summary
        key: action_width
    env:
      - name: TETRA_SUMMARY_ACTION_WIDTH
notes:
  - Prints nothing when the run produced no verdict and no unreachable host.
seealso:
  - module: secure_endpoint.tetra.tetra_report
'''

EXAMPLES = r'''
# ansible.cfg
# [defaults]
# callbacks_enabled = secure_endpoint.tetra.tetra_summary
#
# or: ANSIBLE_CALLBACKS_ENABLED=secure_endpoint.tetra.tetra_summary ansible-playbook secure_endpoint.tetra.diagnose
'''

import importlib
import typing as t
from collections.abc import Mapping

from ansible.plugins.callback import CallbackBase

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _plan
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import STATUS_ORDER, status_rank
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._report import is_auth_failure

# Loaded once here, in the parent process, the connection libraries are inherited by every forked worker
# instead of being imported again per host and task (pywinrm/requests/pyspnego cost about 0.35 s CPU each time).
PRELOAD_MODULES = ('winrm', 'winrm.protocol', 'requests', 'requests_ntlm', 'spnego', 'pypsrp.client', 'xmltodict')


def preload(names: t.Iterable[str] = PRELOAD_MODULES) -> list[str]:
    """Import what is installed of ``names``; returns the names imported."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library: the connection plugin that needs it reports its absence
            continue
        loaded.append(name)
    return loaded


PRELOADED = preload()


def result_data(result: t.Any) -> Mapping[str, t.Any]:
    """The task's return data (``result`` since ansible-core 2.19, ``_result`` before)."""
    data = getattr(result, 'result', None)
    if not isinstance(data, Mapping):
        data = getattr(result, '_result', None)
    return data if isinstance(data, Mapping) else {}


def result_host(result: t.Any) -> str:
    """The inventory name of the result's host (``host`` since ansible-core 2.19, ``_host`` before)."""
    host = getattr(result, 'host', None)
    if host is None or not hasattr(host, 'get_name'):
        host = result._host
    return str(host.get_name())


def unreachable_cause(message: str) -> str:
    return 'authentication_failed' if is_auth_failure(message) else 'host_unreachable'


def shorten(text: t.Any, width: int) -> str:
    """One line; cut to ``width`` characters when ``width`` is positive."""
    value = ' '.join(str(text or '').split())
    return value if width <= 0 or len(value) <= width else value[:max(width - 3, 1)] + '...'


def count_rows(rows: dict[str, dict[str, t.Any]]) -> tuple[dict[str, int], dict[str, int]]:
    by_status: dict[str, int] = {}
    by_cause: dict[str, int] = {}
    for row in rows.values():
        by_status[row['status']] = by_status.get(row['status'], 0) + 1
        by_cause[row['cause']] = by_cause.get(row['cause'], 0) + 1
    return by_status, by_cause


def table(header: tuple[str, ...], rows: list[tuple[t.Any, ...]]) -> list[str]:
    """Plain text columns, left aligned."""
    cells = [tuple(str(cell) for cell in row) for row in [header] + rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(header))]
    lines = ['  '.join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, '  '.join('-' * width for width in widths))
    return lines


class CallbackModule(CallbackBase):
    """Aggregate callback: collect verdicts during the run, print the fleet table at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'secure_endpoint.tetra.tetra_summary'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: t.Any = None) -> None:
        super().__init__(display=display)
        self.rows: dict[str, dict[str, t.Any]] = {}
        self.report: dict[str, t.Any] | None = None

    # --- collecting ---

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._collect(result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._collect(result)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        message = str(result_data(result).get('msg') or '')
        self.rows[result_host(result)] = {
            'status': 'unreachable', 'cause': unreachable_cause(message), 'action': message}

    def _collect(self, result: t.Any) -> None:
        data = result_data(result)
        if data.get('report_format') and isinstance(data.get('summary'), Mapping):
            self.report = dict(data)
        verdict = data.get('verdict')
        if isinstance(verdict, Mapping) and verdict.get('status'):
            self.rows[result_host(result)] = {
                'status': str(verdict['status']), 'cause': str(verdict.get('cause') or 'unknown'),
                'action': verdict.get('action') or verdict.get('summary') or '',
                'remediable': bool(verdict.get('remediable'))}

    # --- printing ---

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        if not self.rows and not self.report:
            return
        for line in self.summary_lines():
            self._display.display(line)

    def summary_lines(self) -> list[str]:
        by_status, by_cause, action_rows, total = self._figures()
        lines = ['', 'TETRA SUMMARY (%d hosts) %s' % (total, '*' * 50)]
        lines += self._plan_lines()
        lines += table(('status', 'hosts'), [(s, by_status[s]) for s in sorted(by_status, key=status_rank) if by_status[s]])
        lines.append('')
        causes = sorted(by_cause.items(), key=lambda item: (-item[1], item[0]))
        lines += table(('cause', 'hosts'), [item for item in causes if item[1]])
        lines += self._action_lines(action_rows, by_status)
        if self.report and self.report.get('paths'):
            lines.append('')
            lines += ['report %s: %s' % (name, path) for name, path in sorted(self.report['paths'].items())]
        return lines

    def _plan_lines(self) -> list[str]:
        """The action plan: the report's (grouped by shared attributes) or the verdicts grouped by cause."""
        if self.report is not None:
            plan: list[t.Any] = [group for group in self.report.get('plan') or [] if isinstance(group, Mapping)]
        else:
            records = [dict(row, host=host) for host, row in self.rows.items()]
            plan = _plan.build_plan(records, status_order=STATUS_ORDER)
        if not plan:
            return []
        lines = ['Action plan (%d groups, one action each):' % len(plan)]
        limit = int(self.get_option('max_hosts'))
        for group in plan[:limit]:
            lines.append('  ' + str(group.get('text') or _plan.sentence(dict(group))))
            lines.append('      action: %s' % shorten(group.get('action'), int(self.get_option('action_width'))))
        if len(plan) > limit:
            lines.append('  ... and %d more groups: see the report' % (len(plan) - limit))
        return lines + ['']

    def _figures(self) -> tuple[dict[str, int], dict[str, int], list[dict[str, t.Any]], int]:
        """Counts and hosts needing action: the report's when it ran, else the collected verdicts."""
        if self.report:
            summary = self.report['summary']
            return (dict(summary.get('by_status') or {}), dict(summary.get('by_cause') or {}),
                    list(self.report.get('needs_action') or []), int(summary.get('total') or 0))
        by_status, by_cause = count_rows(self.rows)
        rows = [dict(row, host=host) for host, row in self.rows.items() if row['status'] != 'ok']
        rows.sort(key=lambda row: (status_rank(row['status']), row['cause'], row['host']))
        return by_status, by_cause, rows, len(self.rows)

    def _action_lines(self, rows: list[dict[str, t.Any]], by_status: dict[str, int]) -> list[str]:
        needing = sum(count for status, count in by_status.items() if status != 'ok')
        if not needing:
            return ['', 'All hosts are up to date.']
        limit = int(self.get_option('max_hosts'))
        width = int(self.get_option('action_width'))
        shown = [(row.get('host'), row.get('status'), row.get('cause'), shorten(row.get('action'), width))
                 for row in rows[:limit]]
        lines = ['', 'Hosts that need action (%d):' % needing]
        lines += table(('host', 'status', 'cause', 'action'), shown)
        if needing > len(shown):
            lines.append('... and %d more: see the report' % (needing - len(shown)))
        return lines
