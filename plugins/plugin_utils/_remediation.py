# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Remediation decisions shared by tetra_forceupdate and tetra_support_bundle.

Pure functions over parsed facts (``_evidence.parse_evidence``): whether a forced update may run (the
version gate and the sfc.exe identity check), what a poll shows compared with the state before, how many
calls a poll loop may make, how long the support bundle waits, the endpoint-side safety net that ends debug
logging and the capture even when the controller never comes back, and the manifest of the files brought back.
Nothing here talks to an endpoint; the clock is an object so tests can replace it.
"""

from __future__ import annotations

import datetime
import hashlib
import ntpath
import os
import re
import time
import typing as t
import uuid

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import STAMP_FORMAT, utc_moment
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import FORCEUPDATE_MIN_VERSION, version_tuple
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import windows_commands

Facts = t.Dict[str, t.Any]

MIN_VERSION_TEXT = '.'.join(str(part) for part in FORCEUPDATE_MIN_VERSION)
# Cisco's default TETRA update interval (doc 220159), used when the policy cannot be read.
DEFAULT_UPDATE_INTERVAL_S = 3600
# read_file answers at most 4 MB per call (docs/evidence.md).
MAX_CHUNK_BYTES = 4 * 1024 * 1024
WORK_DIR_ROOT = 'C:\\Windows\\Temp'
MANIFEST_NAME = 'manifest.json'
MANIFEST_FORMAT = 1
# The safety net (docs/evidence.md, "Support-bundle actions"): a one-shot LocalSystem task registered by
# support_start that runs the stop commands at start + wait + margin, removed by a normal support_finish.
# The margin covers support_finish itself (its whole deadline) plus this slack (reconnecting, PowerShell
# start-up, the controller's grace after the deadline).
SAFETY_NET_PREFIX = 'secure_endpoint.tetra support '
SAFETY_NET_SLACK_S = 120
# The task's ExecutionTimeLimit: `netsh trace stop` can take minutes on a busy host.
SAFETY_NET_TIME_LIMIT_S = 600
# What the endpoint script accepts (Assert-SafetyNet): fires within 60 s to 2 days.
SAFETY_NET_DELAY_BOUNDS = (60, 172800)
CAPTURE_STOP_COMMANDS = {'pktmon': 'pktmon_stop', 'netsh': 'netsh_trace_stop'}
_SAFETY_NET_TASK = re.compile(r'secure_endpoint\.tetra support [0-9A-Za-z-]{1,64}')
_WORK_DIR = re.compile(r'C:\\Windows\\Temp\\tetra-support-\d{8}T\d{6}Z-[0-9a-f]{8}')
# A file name Windows allows (no separator, wildcard, quote or control character), at most 255 characters.
_WINDOWS_FILE_NAME = r'[^\\/:*?"<>|\x00-\x1f]{1,255}'
SUPPORT_COMMANDS = ('sfc_log_start', 'sfc_log_stop', 'sfc_forceupdate', 'pktmon_start', 'pktmon_stop', 'netsh_trace_start',
                    'netsh_trace_stop', 'ipsupporttool')

REFUSALS: dict[str, str] = {
    'not_installed': 'No Secure Endpoint connector is installed on this host.',
    'connector_version_unknown': 'The connector version could not be read, so it is unknown whether sfc.exe has -forceupdate '
                                 '(connector %s and later).' % MIN_VERSION_TEXT,
    'connector_too_old': 'Connector %%s is older than %s: its sfc.exe has no -forceupdate switch. Upgrade the connector, or wait '
                         'for the next update interval.' % MIN_VERSION_TEXT,
    'sfc_missing': 'The connector\'s sfc.exe was not found in its versioned folder (%s).',
    'sfc_not_cisco': 'Refusing to run %s: its publisher (CompanyName) is %s, not Cisco. A bare sfc.exe is Windows\' System File '
                     'Checker; only the connector\'s own sfc.exe is ever run.',
}

_SAFE_NAME = re.compile(r'[^A-Za-z0-9_.-]')


class Clock:
    """Monotonic time and sleeping; tests replace it with a fake that advances instantly."""

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def connector_version(facts: Facts) -> str | None:
    install = facts.get('install') or {}
    return install.get('connector_version') or install.get('sfc_version')


# ---------------------------------------------------------------- safety gate

def sfc_refusal(facts: Facts, company: str | None = None) -> tuple[str, str] | None:
    """(code, message) when the connector's sfc.exe cannot be run safely, else None.

    The endpoint script checks CompanyName again right before it runs anything (defence in depth).
    """
    install = facts.get('install') or {}
    if not facts.get('installed'):
        return 'not_installed', REFUSALS['not_installed']
    path = install.get('sfc_path')
    folder = install.get('active_version') or 'no versioned folder found'
    if not path or install.get('sfc_is_cisco') is None:
        return 'sfc_missing', REFUSALS['sfc_missing'] % (path or folder)
    if install.get('sfc_is_cisco') is not True:
        return 'sfc_not_cisco', REFUSALS['sfc_not_cisco'] % (path, repr(company) if company else 'not Cisco')
    install_dir = (install.get('install_dir') or '').rstrip('\\/').lower()
    system_root = ntpath.normcase(path).startswith(('c:\\windows\\', '\\windows\\'))
    if system_root or not install_dir or not path.lower().startswith(install_dir + '\\') or ntpath.basename(path).lower() != 'sfc.exe':
        return 'sfc_not_cisco', ('Refusing to run %s: it is not sfc.exe inside the connector\'s install folder (%s).'
                                 % (path, install.get('install_dir')))
    return None


def forceupdate_refusal(facts: Facts, company: str | None = None) -> tuple[str, str] | None:
    """(code, message) when a forced update must not run, else None: no connector, too old, or not Cisco's sfc.exe."""
    if not facts.get('installed'):
        return 'not_installed', REFUSALS['not_installed']
    version = connector_version(facts)
    parsed = version_tuple(version)
    if parsed is None:
        return 'connector_version_unknown', REFUSALS['connector_version_unknown']
    if parsed < FORCEUPDATE_MIN_VERSION:
        return 'connector_too_old', REFUSALS['connector_too_old'] % version
    return sfc_refusal(facts, company)


def sfc_company(document: dict[str, t.Any]) -> str | None:
    """The raw CompanyName of the connector's sfc.exe in an evidence document (for messages only)."""
    install = document.get('install')
    sfc = install.get('sfc') if isinstance(install, dict) else None
    company = sfc.get('company') if isinstance(sfc, dict) else None
    return str(company) if company is not None else None


def forceupdate_command(facts: Facts) -> str | None:
    """The command line the endpoint runs for a forced update: the request's own sfc_forceupdate arguments."""
    path = (facts.get('install') or {}).get('sfc_path')
    return '"%s" %s' % (path, windows_commands()['sfc_forceupdate']['arguments']) if path else None


def support_command_lines(capture_max_mb: int = 256) -> dict[str, str]:
    """The support-bundle command lines (sfc.exe -l, pktmon/netsh capture, ipsupporttool) as the request carries them."""
    commands = windows_commands(capture_max_mb=capture_max_mb)
    return {name: commands[name]['arguments'] for name in SUPPORT_COMMANDS}


# ---------------------------------------------------------------- polling

def snapshot(facts: Facts) -> dict[str, t.Any]:
    """What a cheap poll (local.xml only) shows about the TETRA updater."""
    local = facts.get('local') or {}
    lasterror = local.get('lasterror') or None
    return {
        'tetra_version': facts.get('tetra_version'),
        'lasterror': lasterror,
        'lasterror_code': (lasterror or {}).get('unsigned'),
        'last_check': local.get('last_check'),
        'last_update': local.get('last_update'),
        'last_success': local.get('last_success'),
        'readable': bool(local.get('file_readable', local.get('available'))),
    }


def poll_outcome(before: dict[str, t.Any], now: dict[str, t.Any]) -> str | None:
    """Why polling can stop, or None to keep polling.

    ``version_advanced`` wins; then ``lasterror_changed`` (the attempt ended with another error code); then
    ``last_check_changed`` (the connector tried again and the version stayed).
    """
    old, new = before.get('tetra_version'), now.get('tetra_version')
    if isinstance(old, int) and isinstance(new, int) and new > old:
        return 'version_advanced'
    if old is None and isinstance(new, int) and now.get('last_success') and now.get('last_success') != before.get('last_success'):
        return 'version_advanced'
    if now.get('readable') and now.get('lasterror_code') != before.get('lasterror_code') and now.get('lasterror_code') is not None:
        return 'lasterror_changed'
    if now.get('last_check') and now.get('last_check') != before.get('last_check'):
        return 'last_check_changed'
    return None


def max_polls(timeout: int, poll_interval: int) -> int:
    """Polls allowed after the forced update: the whole task never makes more than timeout/poll_interval + 2 calls."""
    if poll_interval <= 0 or timeout <= 0:
        return 0
    return max(1, int(timeout // poll_interval))


OUTCOME_MESSAGES = {
    'version_advanced': 'TETRA definitions updated from %(before)s to %(after)s in %(duration).1f s.',
    'lasterror_changed': 'The update attempt ended without a new version: local.xml lasterror is now %(lasterror)s.',
    'last_check_changed': 'The connector checked for updates (last check %(last_check)s) and the version stayed at %(after)s.',
    'timeout': 'No change within %(timeout)s s: the version stayed at %(after)s and lasterror at %(lasterror)s.',
    'not_waited': 'sfc.exe -forceupdate ran; not waiting for the result (wait=false).',
}


def lasterror_text(snap: dict[str, t.Any]) -> str:
    error = snap.get('lasterror') or {}
    if error.get('unsigned') is None:
        return 'unknown'
    return '%s (%s): %s' % (error.get('unsigned'), error.get('signed'), error.get('problem'))


# ---------------------------------------------------------------- support bundle

def support_wait(args: dict[str, t.Any], facts: Facts) -> tuple[int, str]:
    """(seconds, source): an explicit ``wait``, else the policy's update interval (or Cisco's 1 h default) capped by ``max_wait``."""
    if args.get('wait') is not None:
        return max(0, int(args['wait'])), 'wait'
    interval = (facts.get('policy') or {}).get('interval')
    if isinstance(interval, int) and interval > 0:
        return min(interval, int(args['max_wait'])), 'policy'
    return min(DEFAULT_UPDATE_INTERVAL_S, int(args['max_wait'])), 'default'


def safety_net_task(work_dir: str) -> str:
    """The safety-net task's name for a work folder: fixed prefix + the folder's unique suffix, known to the
    controller before support_start is sent, so a support_finish after a lost answer still removes it."""
    leaf = ntpath.basename(work_dir or '')
    suffix = leaf[len('tetra-support-'):] if leaf.lower().startswith('tetra-support-') else leaf
    suffix = re.sub(r'[^0-9A-Za-z-]', '-', suffix)[:64] or 'run'
    return check_safety_net_task(SAFETY_NET_PREFIX + suffix)


def check_safety_net_task(name: str) -> str:
    """What the endpoint script accepts as the task name (whole value, no path, no wildcard), else ValueError."""
    if not isinstance(name, str) or not _SAFETY_NET_TASK.fullmatch(name):
        raise ValueError('unsafe safety-net task name %r' % (name,))
    return name


def safety_net_delay(wait_s: int, deadline: int) -> int:
    """Seconds from support_start to the safety net firing: the wait, then support_finish's whole deadline, then slack."""
    low, high = SAFETY_NET_DELAY_BOUNDS
    return min(high, max(low, int(wait_s) + int(deadline) + SAFETY_NET_SLACK_S))


def safety_net(work_dir: str, wait_s: int, deadline: int, capture: str) -> dict[str, t.Any]:
    """The request's ``safety_net``: task name, delay, time limit and the stop commands (names of request
    ``commands``; the capture's stop first, then ``sfc.exe -l stop``), as data."""
    stop = ([CAPTURE_STOP_COMMANDS[capture]] if capture in CAPTURE_STOP_COMMANDS else []) + ['sfc_log_stop']
    return {'task': safety_net_task(work_dir), 'delay_s': safety_net_delay(wait_s, deadline),
            'time_limit_s': SAFETY_NET_TIME_LIMIT_S, 'stop': stop}


def check_work_dir(work_dir: str) -> str:
    """A work folder as new_work_dir makes it (whole value), else ValueError."""
    if not isinstance(work_dir, str) or not _WORK_DIR.fullmatch(work_dir):
        raise ValueError('unexpected endpoint work folder %r' % (work_dir,))
    return work_dir


def check_support_file(path: t.Any, work_dir: str) -> str:
    """A file the endpoint listed: directly inside the run's work folder, a plain Windows file name, else ValueError
    (a hostile endpoint could list anything; read_file is only asked for the run's own files)."""
    match = re.fullmatch(re.escape(work_dir) + r'\\(' + _WINDOWS_FILE_NAME + ')', path, re.I) if isinstance(path, str) else None
    # Windows drops trailing dots and spaces: "..", "." or "x." would name another file (or the folder's parent).
    if not match or match.group(1).rstrip('. ') != match.group(1):
        raise ValueError('the endpoint listed a file outside its work folder %s: %r' % (work_dir, path[:200] if isinstance(path, str) else path))
    return path


def new_work_dir(now: datetime.datetime | None = None) -> str:
    """A fresh per-run folder under C:\\Windows\\Temp (the only endpoint path the bundle writes)."""
    now = now or utc_moment()
    return '%s\\tetra-support-%s-%s' % (WORK_DIR_ROOT, now.strftime(STAMP_FORMAT), uuid.uuid4().hex[:8])


def safe_name(name: str, fallback: str = 'file') -> str:
    """A file or folder name that cannot leave its parent folder on the controller."""
    cleaned = _SAFE_NAME.sub('_', name or '').strip('.')
    return cleaned or fallback


def local_file_name(remote_path: str) -> str:
    return safe_name(ntpath.basename(remote_path or ''))


def unique_names(paths: t.Iterable[str]) -> list[str]:
    """Local names for remote paths, made distinct when two remote names clean up to the same one."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        name = local_file_name(path)
        count = seen.get(name.lower(), 0)
        seen[name.lower()] = count + 1
        if count:
            stem, ext = os.path.splitext(name)
            name = '%s-%d%s' % (stem, count + 1, ext)
        names.append(name)
    return names


class ChunkAssembler:
    """Writes one remote file chunk by chunk into ``<path>.partial``, hashing as it goes."""

    def __init__(self, path: str, expected_size: int | None, expected_sha256: str | None) -> None:
        self.path = path
        self.partial = path + '.partial'
        self.expected_size = expected_size
        self.expected_sha256 = (expected_sha256 or '').lower() or None
        self.digest = hashlib.sha256()
        self.size = 0
        self.handle: t.Any = open(self.partial, 'wb')  # pylint: disable=consider-using-with  # closed in finish/abort

    def add(self, offset: int, data: bytes) -> None:
        if offset != self.size:
            raise ValueError('chunk at offset %d does not follow the %d bytes received so far' % (offset, self.size))
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def finish(self) -> dict[str, t.Any]:
        """Close, verify size and sha256 against the endpoint's, and move into place; ValueError on mismatch."""
        self.handle.close()
        problems = []
        if self.expected_size is not None and self.size != self.expected_size:
            problems.append('size %d, the endpoint said %d' % (self.size, self.expected_size))
        if self.expected_sha256 and self.sha256 != self.expected_sha256:
            problems.append('sha256 %s, the endpoint said %s' % (self.sha256, self.expected_sha256))
        if problems:
            self.abort()
            raise ValueError('%s arrived damaged: %s' % (os.path.basename(self.path), '; '.join(problems)))
        os.replace(self.partial, self.path)
        return {'size': self.size, 'sha256': self.sha256, 'verified': self.expected_sha256 is not None}

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        if os.path.exists(self.partial):
            os.remove(self.partial)


def manifest(host: str, computer_name: str | None, work_dir: str, files: list[dict[str, t.Any]], times: dict[str, t.Any],
             extra: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """The manifest.json document written beside the files."""
    document = {
        'format': MANIFEST_FORMAT,
        'host': host,
        'computer_name': computer_name,
        'work_dir': work_dir,
        'times': times,
        'files': [{'name': f['name'], 'size': f['size'], 'sha256': f['sha256'], 'source_path': f['source_path'],
                   'verified': f.get('verified', False)} for f in files],
    }
    document.update(extra or {})
    return document
