# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every diagnostic check shares: the fact and check types, the Cause record, thresholds, and small
readers of the parsed facts. Part of the diagnosis (_diagnosis.py).
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import LASTERROR_CODES, lasterror_of_cause

Facts = t.Dict[str, t.Any]
Check = t.Callable[[Facts], t.Optional[t.List[str]]]

# Issuers that legitimately sign Cisco's TETRA update servers; any other issuer means TLS inspection.
TRUSTED_ISSUER_MARKERS = ('identrust', 'hydrantid', 'cisco')
# Connector versions before this one have no sfc.exe -forceupdate (seed).
FORCEUPDATE_MIN_VERSION = (7, 2, 7)
# The cause each connector lasterror proves, from the one table of lasterror codes.
LASTERROR_CAUSES = {code: entry.cause for code, entry in LASTERROR_CODES.items() if entry.cause}
# A last update check within this many hours counts as "the connector is trying".
RECENT_CHECK_HOURS = 6
# Without a successful update for this long a host is stale even within max_behind (4 versions a day).
DEFAULT_MAX_AGE_HOURS = 24
ESCALATE = ('If it persists: enable debug mode and a packet capture for one update interval, then open a TAC case '
            'with the support bundle (playbooks/collect_support.yml).')


@dataclasses.dataclass(frozen=True)
class Cause:
    name: str
    status: str
    remediable: bool
    summary: str
    action: str
    check: Check | None = None
    blocking: bool = True


# ---------------------------------------------------------------- small fact readers

def _ran(entry: t.Any) -> t.Any:
    """A probe record only when the probe ran: no cause is ever derived from a probe that did not run."""
    return entry if isinstance(entry, dict) and not entry.get('not_run') else None


def _probes(facts: Facts) -> Facts:
    probes = facts.get('probes') or {}
    # A LocalSystem task that never started or never finished produced no network evidence at all.
    task = facts.get('system_task') or {}
    if task and facts.get('context') == 'system' and not task.get('finished'):
        return {'roots': probes.get('roots')}
    ran: Facts = {}
    for key, value in probes.items():
        ran[key] = [entry for entry in value if _ran(entry)] if isinstance(value, list) and key != 'roots' else (
            value if key == 'roots' else _ran(value))
    return ran


def _tls(facts: Facts) -> Facts:
    return _probes(facts).get('tls') or {}


def _server(facts: Facts) -> str:
    return _tls(facts).get('host') or 'the update server'


def _as_system(facts: Facts) -> str:
    return ' (as LocalSystem)' if facts.get('context') == 'system' else ' (as the WinRM user)'


def _lasterror(facts: Facts) -> Facts:
    return (facts.get('local') or {}).get('lasterror') or {}


def _lasterror_is(cause: str) -> Check:
    """The check that the connector's own lasterror is the code proving ``cause`` (LASTERROR_CODES)."""
    code = lasterror_of_cause(cause)

    def check(facts: Facts) -> list[str] | None:
        error = _lasterror(facts)
        if error.get('unsigned') != code:
            return None
        return ['local.xml lasterror %s (%s): %s' % (error.get('unsigned'), error.get('signed'), error.get('problem'))]
    return check


def version_tuple(text: t.Any) -> tuple[int, ...] | None:
    """'8.1.7.21417' -> (8, 1, 7, 21417); None when it does not start with a number."""
    parts = []
    for piece in str(text or '').strip().split('.'):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts) or None


def _duration(item: Facts, key: str = 'duration_ms') -> str:
    value = item.get(key)
    return '%.1f s' % (value / 1000.0) if isinstance(value, (int, float)) else 'an unknown time'


def _update_server_dns(facts: Facts) -> Facts | None:
    server = _tls(facts).get('host')
    for entry in _probes(facts).get('dns') or []:
        if entry.get('name') == server or server is None:
            return entry
    return None


def _failed_http(facts: Facts) -> list[str]:
    """One line per revocation host that did not answer (the chain may name several URLs on one host)."""
    lines: dict[str, str] = {}
    for entry in _probes(facts).get('http') or []:
        host = entry.get('host') or entry.get('url')
        if entry.get('ok') or host in lines:
            continue
        outcome = 'timed out after %s' % _duration(entry) if entry.get('timed_out') else 'failed (%s)' % (entry.get('error') or 'no answer')
        lines[host] = '%s:80 %s' % (host, outcome)
    return list(lines.values())
