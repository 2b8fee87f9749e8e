# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report: every host's verdict as JSON, CSV, Markdown and one self-contained HTML page.

Input is what ``tetra_diagnose`` returned for each host (or nothing, or an unreachable result);
output is one record per host in report format 1. Nothing here touches an endpoint.

The file formats (JSON, CSV, Markdown) are in _report_formats.py, the HTML page in _report_html.py.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _plan
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import STAMP_FORMAT, STATUS_ORDER, parse_timestamp, utc_moment, utc_now
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._files import write_file_atomic
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import AUTH_FAILURE
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._report_html import page
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import printable, redact
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._report_formats import (
    CSV_FIELDS, RENDERERS, by_urgency, csv_row, render_csv, render_json, render_markdown,
)

# The report's API, including the renderers and the HTML page re-exported from _report_formats and _report_html.
__all__ = [
    'CSV_FIELDS', 'RECORD_FIELDS', 'RENDERERS', 'REPORT_FILES', 'REPORT_FORMAT', 'RUN_FIELDS', 'STATS_NEEDS_ACTION_LIMIT',
    'STATS_PLAN_LIMIT', 'apply_fleet_max', 'broken_record', 'build_document', 'build_records', 'by_urgency', 'csv_row',
    'default_report_dir', 'empty_record', 'failed_record', 'fleet_lines', 'fleet_max_version', 'is_auth_failure',
    'load_report', 'merge_records', 'missing_record', 'needs_action_rows', 'page', 'record_from_result', 'render_csv',
    'render_json', 'render_markdown', 'run_metadata', 'sanitize', 'short_action', 'stats_summary', 'summarize',
    'unreachable_record', 'verdict_record', 'write_file_atomic', 'write_report',
]

REPORT_FORMAT = 1
REPORT_FILES = {'json': 'report.json', 'csv': 'report.csv', 'markdown': 'report.md', 'html': 'report.html'}
RECORD_FIELDS = ('host', 'status', 'cause', 'summary', 'evidence', 'action', 'remediable', 'secondary',
                 'versions', 'last_success', 'age_hours', 'timings', 'checked_at')
STATS_NEEDS_ACTION_LIMIT = 100
STATS_PLAN_LIMIT = 20

Record = dict[str, t.Any]
DiagnoseFn = t.Callable[..., dict[str, t.Any]]


def default_report_dir(base: str | None = None, now: datetime.datetime | None = None) -> str:
    """``<base or cwd>/out/tetra-report-<UTC timestamp>``."""
    stamp = (now or utc_moment()).strftime(STAMP_FORMAT)
    return os.path.join(base or os.getcwd(), 'out', 'tetra-report-%s' % stamp)


# --- records -----------------------------------------------------------------------------------


def empty_record(host: str, status: str, cause: str, summary: str, evidence: list[str], action: str,
                 checked_at: str) -> Record:
    """A record for a host that has no verdict of its own."""
    return {
        'host': host, 'status': status, 'cause': cause, 'summary': summary, 'evidence': evidence,
        'action': action, 'remediable': False, 'secondary': [], 'versions': {}, 'last_success': None,
        'age_hours': None, 'timings': {}, 'checked_at': checked_at, 'attributes': {},
    }


def is_auth_failure(message: str) -> bool:
    return bool(AUTH_FAILURE.search(message or ''))


def unreachable_record(host: str, message: str, checked_at: str) -> Record:
    """Ansible could not reach or log on to the host."""
    message = str(message or 'The host was unreachable').strip()
    if is_auth_failure(message):
        return empty_record(
            host, 'unreachable', 'authentication_failed', 'Ansible could not log on to the host: credentials rejected',
            [message], 'Check the connection user and password (or Kerberos/certificate credentials) for this host.',
            checked_at)
    return empty_record(
        host, 'unreachable', 'host_unreachable', 'Ansible could not reach the host', [message],
        'Check that the host is up and that WinRM (or the configured connection) is reachable from the controller.',
        checked_at)


def missing_record(host: str, checked_at: str) -> Record:
    """No registered result at all: the host left the play before the diagnosis ran."""
    return empty_record(
        host, 'unreachable', 'host_unreachable',
        'No diagnosis result: the host was unreachable or left the play before the diagnosis ran',
        ['no result registered for this host'],
        'Check that the host is up and reachable, then run the diagnosis again.', checked_at)


def failed_record(host: str, result: dict[str, t.Any], checked_at: str) -> Record:
    """The diagnosis task failed or was skipped without a verdict."""
    if result.get('skipped'):
        return empty_record(host, 'unknown', 'not_diagnosed', 'The diagnosis task was skipped on this host',
                            [str(result.get('skip_reason') or result.get('msg') or 'skipped')],
                            'Run the diagnosis on this host.', checked_at)
    message = str(result.get('msg') or 'The diagnosis task failed without a message')
    return empty_record(host, 'unknown', 'task_failed', 'The diagnosis task failed: %s' % message[:200],
                        [message], 'Read the task error; fix the module arguments or the connection and run again.',
                        checked_at)


def verdict_record(host: str, verdict: dict[str, t.Any], checked_at: str) -> Record:
    """A verdict as one report record, keyed by the inventory host name."""
    record = {name: verdict.get(name) for name in RECORD_FIELDS}
    record['host'] = host
    record['status'] = str(verdict.get('status') or 'unknown')
    record['cause'] = str(verdict.get('cause') or 'unknown')
    record['evidence'] = [str(line) for line in verdict.get('evidence') or []]
    record['secondary'] = list(verdict.get('secondary') or [])
    record['versions'] = dict(verdict.get('versions') or {})
    record['timings'] = dict(verdict.get('timings') or {})
    record['remediable'] = bool(verdict.get('remediable'))
    record['checked_at'] = verdict.get('checked_at') or checked_at
    if verdict.get('host') and str(verdict['host']) != host:
        record['endpoint_name'] = str(verdict['host'])
    return record


def sanitize(value: t.Any, depth: int = 0) -> t.Any:
    """Report data safe for every format: text through printable() (controls, terminal escapes, bidi marks,
    lone surrogates made visible), passwords redacted, keys as text, nesting cut at 50 levels."""
    if depth > 50:
        return '(nested too deeply)'
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(key)): sanitize(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(item, depth + 1) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return printable(str(value))


def broken_record(host: str, exc: Exception, checked_at: str) -> Record:
    """The row of a host whose result could not be read: one bad host never costs the others their report."""
    message = 'The diagnosis result of this host could not be read (%s: %s)' % (type(exc).__name__, str(exc)[:200])
    return empty_record(host, 'unknown', 'evidence_invalid', message, [message],
                        'Run the diagnosis on this host again with evidence_dir set and look at the saved evidence.', checked_at)


def record_from_result(host: str, result: t.Any, checked_at: str) -> Record:
    """One report record from whatever the diagnosis task left for a host."""
    try:
        return _record_from_result(host, result, checked_at)
    except Exception as exc:  # pylint: disable=broad-except  # a hostile result is a bad row, not a failed report
        return broken_record(host, exc, checked_at)


def _record_from_result(host: str, result: t.Any, checked_at: str) -> Record:
    if not isinstance(result, dict) or not result:
        return missing_record(host, checked_at)
    if result.get('unreachable'):
        record = unreachable_record(host, str(result.get('msg') or ''), checked_at)
        if isinstance(result.get('timings'), dict):
            record['timings'] = dict(result['timings'])
        return record
    if isinstance(result.get('verdict'), dict):
        return verdict_record(host, result['verdict'], checked_at)
    return failed_record(host, result, checked_at)


# --- fleet-wide latest version ----------------------------------------------------------------


def _as_int(value: t.Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def fleet_max_version(results: dict[str, t.Any]) -> int | None:
    """The highest TETRA definition version any host of the run reported."""
    seen = [_as_int(((result.get('verdict') or {}).get('versions') or {}).get('tetra'))
            for result in results.values() if isinstance(result, dict)]
    known = [version for version in seen if version is not None]
    return max(known) if known else None


def _needs_fleet_max(result: t.Any) -> bool:
    if not isinstance(result, dict) or not isinstance(result.get('verdict'), dict):
        return False
    versions = result['verdict'].get('versions') or {}
    return versions.get('latest_source') == 'unknown' and isinstance(result.get('facts'), dict)


def _default_diagnose() -> DiagnoseFn:
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose
    return diagnose


def apply_fleet_max(results: dict[str, t.Any], diagnose_fn: DiagnoseFn | None = None) -> tuple[dict[str, t.Any], int | None]:
    """Re-diagnose hosts whose latest version was unknown against the run's highest version.

    Returns the results (recomputed ones replaced by copies) and the fleet maximum used, if any.
    """
    pending = [host for host, result in results.items() if _needs_fleet_max(result)]
    fleet_max = fleet_max_version(results)
    if not pending or fleet_max is None:
        return results, None
    diagnose_fn = diagnose_fn or _default_diagnose()
    updated = dict(results)
    for host in pending:
        updated[host] = _recompute(results[host], fleet_max, diagnose_fn)
    return updated, fleet_max


def _parse_time(value: t.Any) -> datetime.datetime | None:
    try:
        return parse_timestamp(str(value))
    except ValueError:
        return None


def _recompute(result: dict[str, t.Any], fleet_max: int, diagnose_fn: DiagnoseFn) -> dict[str, t.Any]:
    """The same facts judged against the fleet maximum, as of the original check time."""
    original = result['verdict']
    freshness = dict(result.get('freshness') or {}, latest=fleet_max, source='fleet_max')
    verdict = dict(diagnose_fn(result['facts'], freshness, host=original.get('host'),
                               now=_parse_time(original.get('checked_at'))))
    for kept in ('timings', 'checked_at'):
        if original.get(kept):
            verdict[kept] = original[kept]
    return dict(result, verdict=verdict, freshness=freshness)


def build_records(hosts: list[str], results: dict[str, t.Any], checked_at: str | None = None,
                  addresses: dict[str, t.Any] | None = None) -> list[Record]:
    """One record per host, in the order given, duplicates dropped.

    Each record gets ``attributes``: what the host may share with others (proxy, DNS servers, update
    server, intercepting issuer, policy, /24 subnet of its inventory address in ``addresses``).
    """
    checked_at = checked_at or utc_now()
    addresses = addresses or {}
    seen: set[str] = set()
    records = []
    for host in hosts:
        if host in seen:
            continue
        seen.add(host)
        record = record_from_result(host, results.get(host), checked_at)
        try:
            record['attributes'] = _plan.attributes(results.get(host), addresses.get(host))
        except Exception:  # pylint: disable=broad-except  # the row stays, without what it may share
            record['attributes'] = {}
        records.append(sanitize(redact(record)))
    return records


# --- merging ----------------------------------------------------------------------------------


def load_report(path: str) -> list[Record]:
    """The records of an earlier report (its JSON file, or the folder holding report.json)."""
    if os.path.isdir(path):
        path = os.path.join(path, REPORT_FILES['json'])
    with open(path, encoding='utf-8') as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or document.get('format') != REPORT_FORMAT:
        raise ValueError('%s is not a TETRA fleet report (format %d)' % (path, REPORT_FORMAT))
    records = document.get('hosts')
    if not isinstance(records, list) or not all(isinstance(r, dict) and r.get('host') for r in records):
        raise ValueError('%s has no valid "hosts" list' % path)
    return [sanitize(record) for record in records]


def merge_records(*record_lists: list[Record]) -> list[Record]:
    """One record per host: the latest ``checked_at`` wins; on a tie the later list wins."""
    merged: dict[str, Record] = {}
    for records in record_lists:
        for record in records:
            host = str(record['host'])
            current = merged.get(host)
            if current is None or str(record.get('checked_at') or '') >= str(current.get('checked_at') or ''):
                merged[host] = record
    return sorted(merged.values(), key=lambda r: str(r['host']))


# --- summary ----------------------------------------------------------------------------------


def summarize(records: list[Record]) -> dict[str, t.Any]:
    """Counts by status (every status present, most urgent first) and by cause."""
    by_status = dict.fromkeys(STATUS_ORDER, 0)
    by_cause: dict[str, int] = {}
    for record in records:
        by_status[record['status']] = by_status.get(record['status'], 0) + 1
        by_cause[record['cause']] = by_cause.get(record['cause'], 0) + 1
    ordered_causes = dict(sorted(by_cause.items(), key=lambda item: (-item[1], item[0])))
    needs_action = sum(1 for record in records if record['status'] != 'ok')
    return {'total': len(records), 'ok': by_status.get('ok', 0), 'needs_action': needs_action,
            'by_status': by_status, 'by_cause': ordered_causes}


def needs_action_rows(records: list[Record], limit: int | None = None) -> list[dict[str, t.Any]]:
    """host/status/cause/action of every host that is not ok, most urgent first."""
    rows = [{name: record.get(name) for name in ('host', 'status', 'cause', 'action')}
            for record in by_urgency(records) if record['status'] != 'ok']
    return rows if limit is None else rows[:limit]


# --- rendering --------------------------------------------------------------------------------


def build_document(records: list[Record], meta: dict[str, t.Any]) -> dict[str, t.Any]:
    """The JSON report: format, generation data, run metadata, action plan, summary and one record per host."""
    records = sorted((sanitize(redact(record)) for record in records), key=lambda r: str(r['host']))
    meta = sanitize(meta)
    return {'format': REPORT_FORMAT, 'generated_at': meta.get('generated_at') or utc_now(),
            'title': meta.get('title') or 'TETRA definitions: fleet report',
            'sources': list(meta.get('sources') or []), 'fleet_max_version': meta.get('fleet_max_version'),
            'run': run_metadata(meta.get('run')),
            'plan': _plan.build_plan(records, meta.get('teams'), STATUS_ORDER),
            'summary': summarize(records), 'hosts': records}


RUN_FIELDS = ('inventory', 'ansible_core', 'collection', 'started', 'finished', 'duration_s', 'check_mode', 'limit')


def run_metadata(run: t.Any) -> dict[str, t.Any]:
    """Where and how the report was made: inventory, versions, start time and duration (missing ones None)."""
    run = dict(run) if isinstance(run, dict) else {}
    data = {name: run.get(name) for name in RUN_FIELDS}
    started, finished = _parse_time(data['started']), _parse_time(data['finished'])
    if data['duration_s'] is None and started and finished:
        data['duration_s'] = max(int((finished - started).total_seconds()), 0)
    return data


def short_action(text: t.Any, width: int = 70) -> str:
    """The first sentence of an action, at most ``width`` characters."""
    value = ' '.join(str(text or '').split())
    first = re.split(r'(?<=[.;:])\s|\s\(', value, maxsplit=1)[0].rstrip('.;:')
    return first if len(first) <= width else first[:width - 3].rstrip() + '...'


def fleet_lines(document: dict[str, t.Any], paths: dict[str, str], folder: str, limit: int = 100,
                plan_limit: int = 10) -> list[str]:
    """The fleet table (host, status, cause, short action), the action plan and the report path, as text lines.

    Printed by the roles in the playbooks' default output; the most urgent hosts first, at most ``limit``.
    """
    summary = document['summary']
    ordered = by_urgency(document['hosts'])
    rows = [(r['host'], r['status'], r['cause'], '' if r['status'] == 'ok' else short_action(r.get('action')))
            for r in ordered[:limit]]
    cells = [('HOST', 'STATUS', 'CAUSE', 'ACTION')] + [tuple('' if c is None else str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = ['TETRA fleet: %d hosts, %d ok, %d need action' % (summary['total'], summary['ok'], summary['needs_action'])]
    lines += ['  '.join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3]]).rstrip()
              for row in cells]
    if len(ordered) > limit:
        rest = ordered[limit:]
        lines.append('... and %d more hosts (%d ok): see the report' % (len(rest), sum(1 for r in rest if r['status'] == 'ok')))
    if document.get('plan'):
        lines += ['', 'ACTION PLAN (%d groups, one action each):' % len(document['plan'])]
        lines += _plan.plan_lines(document['plan'], plan_limit)
    lines += ['', 'Report: %s' % (paths.get('html') or paths.get('json') or folder)]
    return lines


def write_report(folder: str, document: dict[str, t.Any], formats: t.Iterable[str]) -> dict[str, str]:
    """Write the chosen formats into ``folder`` (atomically per file, no link followed); returns format -> path."""
    formats = list(formats)
    if formats:
        os.makedirs(folder, exist_ok=True)
    document = sanitize(document)
    paths = {}
    for name in formats:
        path = os.path.join(folder, REPORT_FILES[name])
        write_file_atomic(path, RENDERERS[name](document))
        paths[name] = path
    return paths


def stats_summary(document: dict[str, t.Any], paths: dict[str, str], folder: str) -> dict[str, t.Any]:
    """The small run-wide summary for ``set_stats`` (AWX artifacts and workflow extra vars)."""
    summary = document['summary']
    return {
        'format': REPORT_FORMAT, 'generated_at': document['generated_at'], 'total': summary['total'],
        'ok': summary['ok'], 'needs_action': summary['needs_action'],
        'by_status': {status: count for status, count in summary['by_status'].items() if count},
        'by_cause': summary['by_cause'], 'report_dir': folder, 'html': paths.get('html'), 'json': paths.get('json'),
        'plan': [{'cause': g['cause'], 'team': g['team'], 'count': g['count'], 'shared': g['shared'], 'text': g['text']}
                 for g in (document.get('plan') or [])[:STATS_PLAN_LIMIT]],
    }
