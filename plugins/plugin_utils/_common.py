# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts shared by the whole collection, defined once: the evidence format number, the timestamp formats,
the order of verdict statuses, the UTC time helpers, and what makes an sfc.exe Cisco's.

Imports nothing from the collection (tools/make_collect_request.py loads it from its file).
"""

from __future__ import annotations

import datetime
import re

# The evidence document's format number (docs/evidence.md): sent in every request, checked on every answer.
EVIDENCE_FORMAT = 1

# ISO 8601 UTC to the second, as every timestamp the collection writes ('2026-09-21T10:00:00Z').
TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
# What strptime accepts for TIMESTAMP_FORMAT: four-digit year, one or two digits for the other fields.
_TIMESTAMP = re.compile(r'([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})T([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})Z')
# The same moment for file and folder names ('20260921T100000Z').
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'

# Verdict statuses, worst first: report rows, the HTML report, the fleet table and the action plan sort by it.
STATUS_ORDER = ('failing', 'unreachable', 'unknown', 'not_installed', 'stale', 'ok')


def utc_moment() -> datetime.datetime:
    """Now, timezone-aware UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def format_timestamp(moment: datetime.datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)


def utc_now() -> str:
    """Now as a TIMESTAMP_FORMAT string."""
    return format_timestamp(utc_moment())


def parse_timestamp(text: str) -> datetime.datetime:
    """A TIMESTAMP_FORMAT string -> aware UTC datetime; ValueError for anything else.

    Not strptime: its first call in a process builds locale-dependent regular expressions, and every forked
    worker of ansible-playbook pays that again (about 10 ms per host of controller CPU)."""
    if not isinstance(text, str):
        raise TypeError('a timestamp must be a string, got %s' % type(text).__name__)
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise ValueError('not a %s timestamp: %r' % (TIMESTAMP_FORMAT, text))
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)


def status_rank(status: object) -> int:
    """Position of a status in STATUS_ORDER (worst first); unknown statuses sort last."""
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def is_cisco_publisher(company: object) -> bool | None:
    """Whether an sfc.exe CompanyName is Cisco's; None when there is none to judge.

    The controller's only test of it: a bare ``sfc.exe`` is Windows' System File Checker, never to be run. It matches
    the endpoint script's own check (``-notmatch 'Cisco'``, any case).
    """
    if not isinstance(company, str) or not company:
        return None
    return 'cisco' in company.lower()
