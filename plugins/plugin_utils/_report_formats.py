# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report's file formats: JSON, CSV (formula-safe) and Markdown; the HTML page is _report_html.py.
Part of the report (_report.py).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import status_rank
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._report_html import page

Record = dict[str, t.Any]

CSV_FIELDS = ('host', 'status', 'cause', 'summary', 'action', 'remediable', 'connector', 'tetra', 'latest',
              'latest_source', 'behind', 'last_success', 'age_hours', 'endpoint_ms', 'round_trip_ms',
              'checked_at', 'evidence', 'secondary')

_FORMULA_START = ('=', '+', '-', '@', '\t', '\r')


def by_urgency(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (status_rank(r['status']), str(r['cause']), str(r['host'])))


def render_json(document: dict[str, t.Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, default=str) + '\n'


def _csv_safe(value: t.Any) -> t.Any:
    """Text that spreadsheets would run as a formula is prefixed with a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(record: Record) -> dict[str, t.Any]:
    versions = record.get('versions') or {}
    timings = record.get('timings') or {}
    row = {name: record.get(name) for name in CSV_FIELDS}
    row.update({name: versions.get(name) for name in ('connector', 'tetra', 'latest', 'latest_source', 'behind')})
    row.update({name: timings.get(name) for name in ('endpoint_ms', 'round_trip_ms')})
    row['evidence'] = ' | '.join(record.get('evidence') or [])
    row['secondary'] = ' | '.join(str(item.get('cause')) for item in record.get('secondary') or [] if isinstance(item, dict))
    return {name: _csv_safe('' if value is None else value) for name, value in row.items()}


def render_csv(records: list[Record]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for record in sorted(records, key=lambda r: str(r['host'])):
        writer.writerow(csv_row(record))
    return buffer.getvalue()


def _md(value: t.Any) -> str:
    """One Markdown table cell: no pipes, no line breaks, no raw HTML."""
    text = '' if value is None else str(value)
    text = html.escape(text, quote=False).replace('|', '\\|')
    return re.sub(r'\s*[\r\n]+\s*', ' ', text).strip()


def _md_table(header: tuple[str, ...], rows: list[tuple[t.Any, ...]]) -> list[str]:
    lines = ['| %s |' % ' | '.join(header), '|%s' % ('---|' * len(header))]
    lines.extend('| %s |' % ' | '.join(_md(cell) for cell in row) for row in rows)
    return lines


def _md_run(run: dict[str, t.Any]) -> str:
    parts = ['%s %s' % (label, _md(run.get(name))) for name, label in (
        ('inventory', 'inventory'), ('ansible_core', 'ansible-core'), ('collection', 'collection'),
        ('started', 'started'), ('duration_s', 'duration (s)')) if run.get(name) not in (None, '', [])]
    return ('Run: %s.' % '; '.join(parts)) if parts else ''


def render_markdown(document: dict[str, t.Any]) -> str:
    summary = document['summary']
    lines = ['# %s' % _md(document['title']), '',
             'Generated %s: %d hosts, %d ok, %d need action.' % (
                 _md(document['generated_at']), summary['total'], summary['ok'], summary['needs_action']), '']
    run = _md_run(document.get('run') or {})
    if run:
        lines += [run, '']
    plan = document.get('plan') or []
    if plan:
        lines += ['## Action plan', '', 'One action per group of hosts that share the cause and what they have in common.', '']
        lines += _md_table(('cause', 'hosts', 'shared', 'team', 'action', 'host names'),
                           [(g['cause'], g['count'], '%s %s' % (g['shared']['label'], g['shared']['value']) if g.get('shared') else '',
                             g['team_label'], g['action'], ', '.join(g['hosts'])) for g in plan])
        lines += ['', '## Summary', '']
    lines += _md_table(('status', 'hosts'), [(s, n) for s, n in summary['by_status'].items() if n])
    lines += ['']
    lines += _md_table(('cause', 'hosts'), list(summary['by_cause'].items()))
    rows = [(r['host'], r['status'], r['cause'], r.get('summary'), r.get('action'))
            for r in by_urgency(document['hosts']) if r['status'] != 'ok']
    if rows:
        lines += ['', '## Hosts that need action', '']
        lines += _md_table(('host', 'status', 'cause', 'summary', 'action'), rows)
    return '\n'.join(lines) + '\n'


RENDERERS: dict[str, t.Callable[[dict[str, t.Any]], str]] = {
    'json': render_json,
    'csv': lambda document: render_csv(document['hosts']),
    'markdown': render_markdown,
    'html': page,
}
