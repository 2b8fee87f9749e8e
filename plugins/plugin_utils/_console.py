# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Secure Endpoint console: console state per computer, and what it adds to a verdict (the API client: _console_api.py).

Used by the ``secure_endpoint.tetra.computers`` inventory plugin, the EDA event source
(``extensions/eda/plugins/event_source/console_definitions.py``) and ``tetra_diagnose``.

The definitions status strings and the fault shapes (shared/reference/secure-endpoint.md, section 7)
are UNCONFIRMED: they are read by keywords and anything else is ``unknown``.
"""

from __future__ import annotations

import datetime
import fnmatch
import typing as t

# Not the API client (_console_api): tetra_diagnose imports this module on every host, and the client
# pulls in ansible.module_utils.urls (and cryptography) that a verdict never needs.
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import utc_moment

Data = t.Dict[str, t.Any]


class ConsoleError(Exception):
    """A failed API call, with a message that never contains a secret."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# Console findings (what the console state adds to a verdict; docs/causes.md lists the endpoint causes).
DEFAULT_OFFLINE_HOURS = 72.0       # "not seen for days"
DEFAULT_RECENT_HOURS = 24.0        # last seen this recently: the connector talks to the cloud
DEFAULT_MAX_AGE_HOURS = 24.0       # definitions older than this are old (Cisco publishes ~4 a day)
FAULT_KEYWORDS = ('definition', 'tetra', 'update', 'engine', 'antivirus', 'proxy', 'connect', 'certificate',
                  'revocation', 'service', 'reboot', 'disk', 'policy')
CONSOLE_CAUSES: Data = {
    'computer_offline': {
        'status': 'stale', 'remediable': False,
        'summary': 'The computer was offline: the console has not seen it for days (not a TETRA problem)',
        'action': 'Nothing TETRA-specific to fix: definitions update at the next interval once the connector is online. '
                  'If the computer is up and the console still does not see it, check the connector\'s cloud connectivity.',
    },
    'console_lagging': {
        'status': 'ok', 'remediable': False,
        'summary': 'The console reports old or failed definitions but the endpoint is current: the console is lagging',
        'action': 'Nothing to do on the endpoint; the console shows the new state after the connector\'s next check-in.',
    },
    'console_update_gap': {
        'status': 'stale', 'remediable': True,
        'summary': 'The connector reaches the cloud but its definitions are old: updates are intermittent or blocked',
        'action': 'Follow the verdict\'s cause; without one, force an update (playbooks/remediate.yml) and look for '
                  'intermittent connectivity to the update server between Last Seen and Definitions Last Updated.',
    },
    'console_faults': {
        'status': 'unknown', 'remediable': False,
        'summary': 'The console shows connector faults that can affect updates',
        'action': 'Read the faults in the console (computer details) and fix them with the endpoint team.',
    },
}


# ---------------------------------------------------------------- time helpers

def parse_time(value: t.Any) -> datetime.datetime | None:
    """ISO 8601 as the API writes it ('2020-06-18T13:09:51+00:00', '...Z'); None when absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace('Z', '+00:00').replace('z', '+00:00')
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def hours_since(value: t.Any, now: datetime.datetime) -> float | None:
    then = parse_time(value)
    if then is None:
        return None
    return round((now - then).total_seconds() / 3600.0, 1)


def _age(hours: float | None) -> str:
    if hours is None:
        return 'at an unknown time'
    if hours >= 48:
        return '%.1f days ago' % (hours / 24.0)
    return '%.1f h ago' % hours


# ---------------------------------------------------------------- console state

def definitions_state(status: t.Any) -> str:
    """'Definitions Up To Date' -> current; '... Failed ...' -> failed; out of date -> outdated; else unknown."""
    text = str(status or '').lower()
    if not text:
        return 'unknown'
    if 'fail' in text or 'error' in text:
        return 'failed'
    if 'out of date' in text or 'outdated' in text or 'old' in text.split():
        return 'outdated'
    if 'up to date' in text or 'up-to-date' in text or 'current' in text:
        return 'current'
    return 'unknown'


def _version_int(value: t.Any) -> int | None:
    text = str(value or '').strip()
    if ':' in text:
        text = text.rsplit(':', 1)[1]
    return int(text) if text.isdigit() else None


def fault_text(fault: t.Any) -> str:
    """A fault in one line, whatever its shape (string or object; the shape is UNCONFIRMED)."""
    if isinstance(fault, dict):
        name = next((str(fault[k]) for k in ('name', 'title', 'description', 'fault_code', 'code') if fault.get(k) not in (None, '')), 'fault')
        severity = fault.get('severity')
        return '%s (%s)' % (name, severity) if severity else name
    return str(fault)


def relevant_faults(faults: t.Any) -> list[str]:
    return [fault_text(f) for f in faults or [] if any(word in fault_text(f).lower() for word in FAULT_KEYWORDS)]


def console_state(record: Data, source: str | None = None) -> Data:
    """The console's view of one computer, as host variable ``tetra_console`` (times stay absolute: a cached
    inventory never shows stale ages; ages are computed where they are used)."""
    defs = record.get('av_update_definitions') if isinstance(record.get('av_update_definitions'), dict) else None
    groups = [g for g in record.get('groups') or [] if isinstance(g, dict)]
    policy: dict[str, t.Any] = record['policy'] if isinstance(record.get('policy'), dict) else {}
    return {
        'connector_guid': record.get('connector_guid'),
        'hostname': record.get('hostname'),
        'active': record.get('active'),
        'connector_version': record.get('connector_version'),
        'operating_system': record.get('operating_system'),
        'os_version': record.get('os_version'),
        'internal_ips': [str(ip) for ip in record.get('internal_ips') or []],
        'external_ip': record.get('external_ip'),
        'network_addresses': [a for a in record.get('network_addresses') or [] if isinstance(a, dict)],
        'group_guid': record.get('group_guid'),
        'groups': [{'guid': g.get('guid'), 'name': g.get('name')} for g in groups],
        'policy': {'guid': policy.get('guid'), 'name': policy.get('name')},
        'last_seen': record.get('last_seen'),
        'definitions': {
            'status': defs.get('status') if defs else None,
            'state': definitions_state(defs.get('status')) if defs else 'unknown',
            'version': _version_int(defs.get('version')) if defs else None,
            'updated_at': defs.get('updated_at') if defs else None,
            'detection_engine': defs.get('detection_engine') if defs else None,
            'reported': defs is not None,
        },
        'faults': list(record.get('faults') or []),
        'isolation': record.get('isolation') if isinstance(record.get('isolation'), dict) else {},
        'source': source,
    }


def is_aged(console: Data, now: datetime.datetime, max_age_hours: float = DEFAULT_MAX_AGE_HOURS) -> bool:
    age = hours_since((console.get('definitions') or {}).get('updated_at'), now)
    return age is not None and age > max_age_hours


def is_offline(console: Data, now: datetime.datetime, offline_hours: float = DEFAULT_OFFLINE_HOURS) -> bool:
    seen = hours_since(console.get('last_seen'), now)
    return seen is not None and seen >= offline_hours


def matches(record: Data, hostnames: list[str] | None = None, operating_systems: list[str] | None = None,
            groups: list[str] | None = None) -> bool:
    """Client-side filters (shell patterns, case-insensitive); an empty list lets everything through."""
    def any_match(value: t.Any, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(str(value or '').lower(), p.lower()) for p in patterns)
    if hostnames and not any_match(record.get('hostname'), hostnames):
        return False
    if operating_systems and not any_match(record.get('operating_system'), operating_systems):
        return False
    if groups:
        names = [g.get('name') for g in record.get('groups') or [] if isinstance(g, dict)]
        guids = [g.get('guid') for g in record.get('groups') or [] if isinstance(g, dict)] + [record.get('group_guid')]
        if not any(any_match(v, groups) for v in names + guids if v):
            return False
    return True


def apply_query(records: list[Data], expression: str | None) -> list[Data]:
    """A JMESPath expression over the list of API records; it must give a list of records."""
    if not expression:
        return records
    try:
        import jmespath  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ConsoleError('the query option needs the jmespath Python library (pip install jmespath)') from None
    try:
        result = jmespath.search(expression, records)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConsoleError('query %r is not a valid JMESPath expression: %s' % (expression, exc)) from None
    if result is None:
        return []
    if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
        raise ConsoleError('query %r must give a list of computer records, e.g. "[?active]"' % expression)
    return result


def event_reason(console: Data, now: datetime.datetime, max_age_hours: float = DEFAULT_MAX_AGE_HOURS) -> str | None:
    """Why a computer deserves an event: 'failed' (console says the update failed), 'aged' (definitions
    older than the limit), or None."""
    if (console.get('definitions') or {}).get('state') == 'failed':
        return 'failed'
    if is_aged(console, now, max_age_hours):
        return 'aged'
    return None


# ---------------------------------------------------------------- console state in a verdict

def _finding(name: str, lines: list[str]) -> Data:
    cause = CONSOLE_CAUSES[name]
    return {'cause': name, 'summary': cause['summary'], 'evidence': lines, 'action': cause['action'], 'remediable': cause['remediable']}


def console_summary(console: Data, now: datetime.datetime) -> Data:
    defs = console.get('definitions') or {}
    return {
        'definitions_status': defs.get('status'), 'definitions_state': defs.get('state') or 'unknown',
        'version': defs.get('version'), 'updated_at': defs.get('updated_at'),
        'definitions_age_hours': hours_since(defs.get('updated_at'), now),
        'last_seen': console.get('last_seen'), 'last_seen_hours': hours_since(console.get('last_seen'), now),
        'faults': relevant_faults(console.get('faults')), 'notes': [],
    }


def console_line(summary: Data) -> str:
    text = 'console: %s' % (summary['definitions_status'] or 'no definitions status reported')
    if summary['version'] is not None:
        text += ', TETRA %s' % summary['version']
    if summary['updated_at']:
        text += ' updated %s' % _age(summary['definitions_age_hours'])
    text += '; last seen %s' % _age(summary['last_seen_hours'])
    return text


def _set_primary(verdict: Data, name: str, lines: list[str]) -> None:
    """Make a console cause the verdict's primary cause; the former one becomes secondary."""
    cause = CONSOLE_CAUSES[name]
    former: Data = {'cause': verdict.get('cause'), 'summary': verdict.get('summary'), 'evidence': list(verdict.get('evidence') or []),
                    'action': verdict.get('action'), 'remediable': verdict.get('remediable')}
    verdict.update(status=cause['status'], cause=name, summary=cause['summary'], action=cause['action'], remediable=cause['remediable'])
    verdict['evidence'] = lines + [line for line in former['evidence'] if line not in lines]
    verdict['secondary'] = [former] + list(verdict.get('secondary') or [])


def apply_console(verdict: Data, facts: Data | None, console: Data | None, now: datetime.datetime | None = None,
                  offline_hours: float = DEFAULT_OFFLINE_HOURS, recent_hours: float = DEFAULT_RECENT_HOURS,
                  max_age_hours: float = DEFAULT_MAX_AGE_HOURS) -> Data:
    """The verdict adjusted by what the console says (a new dict; the input is not changed).

    - console says failed (or shows an older version) but the endpoint is current: status stays ok, a
      ``console_lagging`` finding says the console is lagging;
    - last seen recently while the definitions are old: ``console_update_gap`` (intermittent or blocked
      updates); a verdict without a blocking cause (``stale_definitions``) takes it as its primary cause;
    - not seen for days: ``computer_offline`` (offline, not a TETRA problem) replaces a verdict without a
      blocking cause; with a blocking cause (service stopped, disconnected...) it is evidence;
    - console faults relevant to updates: evidence lines and a ``console_faults`` finding.
    """
    if not isinstance(console, dict) or not console:
        return verdict
    now = now or utc_moment()
    result = dict(verdict)
    result['evidence'] = list(verdict.get('evidence') or [])
    result['secondary'] = list(verdict.get('secondary') or [])
    summary = console_summary(console, now)
    result['console'] = summary
    line = console_line(summary)
    result['evidence'].append(line)
    status, cause = result.get('status'), result.get('cause')
    endpoint_version = (facts or {}).get('tetra_version') if isinstance(facts, dict) else None
    if endpoint_version is None:
        endpoint_version = (verdict.get('versions') or {}).get('tetra')
    seen_h, defs_h = summary['last_seen_hours'], summary['definitions_age_hours']
    endpoint_age = verdict.get('age_hours')
    old_definitions = ((defs_h is not None and defs_h > max_age_hours) or summary['definitions_state'] in ('failed', 'outdated')
                       or (endpoint_age is not None and endpoint_age > max_age_hours))

    if status == 'ok':
        console_older = (isinstance(summary['version'], int) and isinstance(endpoint_version, int) and summary['version'] < endpoint_version)
        if summary['definitions_state'] in ('failed', 'outdated') or console_older:
            lines = [line, 'endpoint: TETRA %s, current' % (endpoint_version if endpoint_version is not None else '(unknown)'),
                     'the console is lagging: it shows the new state after the connector\'s next check-in']
            result['secondary'].append(_finding('console_lagging', lines))
            summary['notes'].append('console lagging')
    elif seen_h is not None and seen_h >= offline_hours:
        lines = [line, 'not seen by the console for %s: the computer was offline, old definitions there are not a TETRA problem'
                 % _age(seen_h).replace(' ago', '')]
        summary['notes'].append('offline')
        if cause in ('stale_definitions', 'intermittent_connectivity'):
            _set_primary(result, 'computer_offline', lines)
        else:
            result['secondary'].append(_finding('computer_offline', lines))
    elif seen_h is not None and seen_h <= recent_hours and old_definitions and status in ('stale', 'failing'):
        lines = [line, 'last seen %s while definitions were last updated %s: the connector reaches the cloud but its TETRA updates '
                 'are intermittent or blocked' % (_age(seen_h), _age(defs_h if defs_h is not None else endpoint_age))]
        summary['notes'].append('update gap')
        if cause == 'stale_definitions':
            _set_primary(result, 'console_update_gap', lines)
        else:
            result['secondary'].append(_finding('console_update_gap', lines))
    if summary['faults']:
        result['evidence'].extend('console fault: %s' % fault for fault in summary['faults'])
        result['secondary'].append(_finding('console_faults', ['console fault: %s' % f for f in summary['faults']]))
    return result


def unreachable_note(console: Data | None, now: datetime.datetime | None = None,
                     offline_hours: float = DEFAULT_OFFLINE_HOURS) -> str | None:
    """What the console says about a host Ansible could not reach: offline for days is not a TETRA problem."""
    if not isinstance(console, dict) or not console:
        return None
    now = now or utc_moment()
    summary = console_summary(console, now)
    if summary['last_seen_hours'] is not None and summary['last_seen_hours'] >= offline_hours:
        return ('console: not seen for %s, the computer is offline (not a TETRA problem)'
                % _age(summary['last_seen_hours']).replace(' ago', ''))
    return console_line(summary)
