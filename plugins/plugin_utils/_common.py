# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts shared by the whole collection, defined once: the evidence format number, the timestamp formats,
the order of verdict statuses, the UTC time helpers, and what makes an sfc.exe Cisco's.

Imports nothing from the collection (tools/make_collect_request.py loads it from its file).
"""

from __future__ import annotations

import datetime

# The evidence document's format number (docs/evidence.md): sent in every request, checked on every answer.
EVIDENCE_FORMAT = 1

# ISO 8601 UTC to the second, as every timestamp the collection writes ('2026-09-21T10:00:00Z').
TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
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
    """A TIMESTAMP_FORMAT string -> aware UTC datetime; ValueError for anything else."""
    return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)


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
