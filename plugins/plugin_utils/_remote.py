# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run the shipped evidence script on an endpoint in one command and return its JSON document.

Transport-portable: the command is the PowerShell shell plugin's own encoded-command form, given to
``connection.exec_command``; winrm and ssh pass it to powershell.exe as it is and psrp decodes it into
its runspace. The request (base64 JSON) and the script travel on stdin, read through ``$input``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import signal
import threading
import time
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.shell.powershell import ShellModule as PowerShellShell

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import EVIDENCE_FORMAT
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text, printable, redact_text

# The collection's files/ folder: the script parts ship there, with entries.json (which parts make
# each entry, which entry runs each action) and the local runner tetra_evidence.ps1.
FILES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'files')
ENTRIES_FILE = 'entries.json'

# The encoded command is only this bootstrap: the request (base64 JSON, first line) and the shipped
# script (the other lines) arrive on stdin, which every transport delivers to the script as $input:
# winrm and ssh as powershell.exe's redirected standard input, psrp as pipeline input lines. This
# is how ansible-core's own bootstrap_wrapper.ps1 reads its payload. The command line is therefore
# the same for every request, far below cmd.exe's 8,191 characters (ssh) and CreateProcess' 32,767.
BOOTSTRAP = (
    "$ErrorActionPreference = 'Stop'\n"
    "$ProgressPreference = 'SilentlyContinue'\n"
    # psrp in ansible-core 2.18 sends the whole stdin as ONE input object: split it here.
    "$TetraLines = @($input | ForEach-Object { ([string]$_) -split \"`r?`n\" })\n"
    "$TetraRequest = [string]$TetraLines[0]\n"
    "$TetraScript = ($TetraLines | Select-Object -Skip 1) -join \"`n\"\n"
    ". ([ScriptBlock]::Create($TetraScript))\n"
    # ansible-core's own exit-code propagation (the shell plugin's preserve_rc), inside the encoded text.
    "If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } Else { exit 1 } }\n"
)
# The per-host wall-clock bound of one endpoint call is the request's deadline plus this grace: the
# call itself (connect, retry included) gets the deadline + (_GRACE_S - _CLOSE_S), closing the shell after
# a failed or abandoned call gets the last _CLOSE_S. Whatever the endpoint does (slow drip, frozen after
# the shell opened, half-open TCP), the action returns within deadline + _GRACE_S (docs/connections.md).
_GRACE_S = 30
_CLOSE_S = 5
_QUOTE_LIMIT = 400
# A real document is tens of kB (a read_file chunk about 6 MB): more is a hostile or broken endpoint.
# The default cap; the modules sharing COMMON_SPEC take it from their max_answer_mb option.
MAX_OUTPUT_BYTES = 16 * 1024 * 1024

# How the winrm, psrp and ssh plugins word a rejected login; the report and the summary use it too.
AUTH_FAILURE = re.compile(r'\b401\b|credentials were rejected|failed to authenticate|unauthori[sz]ed|authentication (?:failed|error)|'
                          r'logon failure|access is denied|permission denied', re.I)
_RESET_PATTERNS = re.compile(r'reset by peer|connection aborted|remotedisconnected|broken pipe|connection reset|10054|forcibly closed', re.I)
# A transient server error (WinRM service busy, HTTP 500 without a WS-Management fault we act on).
_TRANSIENT_PATTERNS = re.compile(r'\b50[023]\b|internal server error|service unavailable|bad gateway', re.I)


def announced_bound_s(deadline_s: t.Any) -> float:
    """The per-host wall-clock bound of one endpoint call with this deadline (seconds)."""
    try:
        deadline = float(deadline_s)
    except (TypeError, ValueError):
        deadline = 60.0
    return max(deadline, 0.0) + _GRACE_S


class RemoteError(Exception):
    """A call that produced no evidence; ``result`` is the Ansible task result to return."""

    def __init__(self, msg: str, unreachable: bool = False, **details: t.Any) -> None:
        super().__init__(msg)
        self.result: dict[str, t.Any] = dict(details, msg=msg)
        if unreachable:
            self.result['unreachable'] = True
        else:
            self.result['failed'] = True


def load_script(name: str) -> str:
    """Return the text of a PowerShell part shipped in the collection's files/ folder."""
    path = os.path.join(FILES_DIR, name)
    with open(path, encoding='ascii') as handle:
        return handle.read()


@functools.lru_cache(maxsize=None)
def load_entries() -> dict[str, t.Any]:
    """files/entries.json: ``entries`` (entry -> its parts in order) and ``actions`` (action -> entry)."""
    with open(os.path.join(FILES_DIR, ENTRIES_FILE), encoding='utf-8') as handle:
        return json.load(handle)


@functools.lru_cache(maxsize=None)
def entry_script(entry: str) -> str:
    """One entry's parts joined into the script the endpoint runs (files/tetra_evidence.ps1 joins them the same way)."""
    return '\n'.join(load_script(part).replace('\r\n', '\n') for part in load_entries()['entries'][entry])


@functools.lru_cache(maxsize=None)
def wire_script(entry: str) -> str:
    """The joined entry as sent: without comment-only and blank lines (a fifth of the bytes, on every call).

    Safe because no part has a multi-line string literal (pscheck PS605), so no such line is data.
    """
    return '\n'.join(line for line in entry_script(entry).split('\n') if line.strip() and not line.lstrip().startswith('#')) + '\n'


def script_for(action: str) -> str:
    """The joined script of the entry that handles this request action."""
    entry = load_entries()['actions'].get(action)
    if entry is None:
        raise ValueError('no endpoint script handles the action %r (files/entries.json)' % (action,))
    return wire_script(entry)


def encode_request(request: dict[str, t.Any]) -> str:
    """Base64 of the request JSON: the only way values reach the endpoint."""
    payload = json.dumps(request, separators=(',', ':'), sort_keys=True).encode('utf-8')
    return base64.b64encode(payload).decode('ascii')


def powershell_shell(connection: t.Any = None) -> t.Any:
    """The connection's shell plugin when it can encode PowerShell (powershell; cmd on 2.21's winrm), else ansible-core's own."""
    shell = getattr(connection, '_shell', None)
    if shell is not None and (hasattr(shell, '_encode_pwsh_script_as_command') or hasattr(shell, '_encode_script')):
        return shell
    return PowerShellShell()


def encoded_command(shell: t.Any, script: str) -> str:
    """The command line the installed ansible-core's shell plugin builds for an encoded PowerShell script.

    ansible-core 2.21 builds it with ``_encode_pwsh_script_as_command`` and deprecates
    ``_encode_script``, which earlier versions use (without strict mode or their own exit-code line:
    BOOTSTRAP carries it). Both are private: the transport contract tests pin their output per version.
    """
    # pylint: disable=protected-access
    if hasattr(shell, '_encode_pwsh_script_as_command'):
        return shell._encode_pwsh_script_as_command(script)
    return shell._encode_script(script, as_list=False, strict_mode=False, preserve_rc=False)


def build_command(script: str, request: dict[str, t.Any], shell: t.Any = None) -> tuple[str, bytes]:
    """Return the one command line and its stdin: the request line, then the script.

    The command line is ``PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted
    -EncodedCommand <base64 of BOOTSTRAP>`` with nothing after the base64, as the shell plugin makes it.
    """
    command = encoded_command(shell if shell is not None else powershell_shell(), BOOTSTRAP)
    stdin = encode_request(request) + '\n' + script.replace('\r\n', '\n')
    return command, stdin.encode('utf-8')


def quote_output(data: bytes | str | None, limit: int = _QUOTE_LIMIT) -> str:
    """A short printable excerpt of what came back, for messages."""
    text = redact_text(decode_text(data or b'').strip())
    if len(text) > limit:
        text = redact_text(text[:limit]) + '... (%d characters in all)' % len(text)
    return printable(text) or '(nothing)'


def clean_stderr(data: bytes | str | None) -> str:
    """stderr without CLIXML framing; the progress records in it are noise."""
    text = decode_text(data or b'')
    if '#< CLIXML' not in text:
        return text.strip()
    messages = re.findall(r'<S S="Error">(.*?)</S>', text, re.S)
    cleaned = ''.join(messages).replace('_x000D__x000A_', '\n')
    return re.sub(r'_x([0-9A-F]{4})_', lambda m: chr(int(m.group(1), 16)), cleaned).strip()


def parse_document(rc: int, stdout: bytes | str, stderr: bytes | str, max_bytes: int = MAX_OUTPUT_BYTES) -> dict[str, t.Any]:
    """The endpoint's one JSON evidence document, or RemoteError quoting what came back.

    An answer longer than ``max_bytes`` is refused before it is decoded or parsed, quoting only its start.
    """
    if len(stdout or b'') > max_bytes:
        raise RemoteError('The endpoint answered %d bytes, more than the %s MB a document can be (max_answer_mb); it starts with: %s'
                          % (len(stdout), _fmt_s(max_bytes / 2 ** 20), quote_output(stdout[:_QUOTE_LIMIT])), rc=rc)
    text = decode_text(stdout).strip()
    details: dict[str, t.Any] = {'rc': rc, 'stdout': quote_output(stdout), 'stderr': printable(redact_text(redact_text(clean_stderr(stderr))[:_QUOTE_LIMIT]))}
    if rc != 0:
        raise RemoteError('The evidence script exited with code %d: %s' % (rc, details['stderr'] or details['stdout']), **details)
    if not text:
        raise RemoteError('The endpoint returned no output (stderr: %s)' % (details['stderr'] or 'empty'), **details)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise RemoteError('The endpoint did not return one JSON document (%s); it returned: %s' % (exc, details['stdout']), **details) from None
    except RecursionError:
        raise RemoteError('The endpoint returned JSON nested too deeply to be evidence: %s' % details['stdout'], **details) from None
    if not isinstance(document, dict) or document.get('format') != EVIDENCE_FORMAT:
        raise RemoteError('The endpoint returned JSON that is not evidence format %d: %s' % (EVIDENCE_FORMAT, details['stdout']), **details)
    return document


def classify_connection_error(exc: Exception) -> str:
    """'auth', 'reset', 'transient' or 'other', from the connection plugin's message."""
    message = to_text(exc)
    if AUTH_FAILURE.search(message):
        return 'auth'
    if _RESET_PATTERNS.search(message):
        return 'reset'
    if _TRANSIENT_PATTERNS.search(message):
        return 'transient'
    return 'other'


class EvidenceCall:
    """One evidence request to one endpoint through an Ansible connection, within a wall-clock bound.

    The bound (``announced_bound_s(deadline_s)``) holds whatever the endpoint does: the connection
    plugin's exec_command (and the reset before a retry) run in a daemon thread that is abandoned when
    the time is up, and the connection's close is bounded too, both here after a failure and when
    Ansible closes the connection after the task (the connection's ``close`` is wrapped).
    """

    def __init__(self, connection: t.Any, request: dict[str, t.Any], script: str | None = None,
                 max_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self.connection = connection
        self.max_bytes = max_bytes
        self.request = dict(request, format=EVIDENCE_FORMAT)
        self.script = script if script is not None else script_for(str(self.request.get('action')))
        self.attempts = 0
        self.round_trip_ms = 0
        self.elapsed_ms = 0
        self.bound_s = announced_bound_s(self.request.get('deadline_s', 60))
        self._started = 0.0

    def run(self) -> dict[str, t.Any]:
        """Execute with one retry on a transport reset or transient 5xx; return the evidence document."""
        rc, stdout, stderr = self.exchange()
        try:
            return parse_document(rc, stdout, stderr, self.max_bytes)
        except RemoteError as exc:
            exc.result.setdefault('timings', self.timings())
            raise

    def exchange(self) -> tuple[int, bytes, bytes]:
        """The endpoint's raw answer (rc, stdout, stderr) within the per-host bound, one retry included;
        RemoteError (unreachable) when there is none. The self-test keeps the raw answer; run() parses it."""
        command, stdin = build_command(self.script, self.request, powershell_shell(self.connection))
        self._started = time.monotonic()
        bound_close(self.connection)
        try:
            return self._exec_with_retry(command, stdin)
        except RemoteError as exc:
            self._close_after_failure()
            self._finish_timings()
            exc.result.setdefault('timings', self.timings())
            exc.result['msg'] = printable(redact_text(exc.result['msg']))
            raise
        finally:
            self._finish_timings()

    def timings(self) -> dict[str, t.Any]:
        return {'round_trip_ms': self.round_trip_ms, 'elapsed_ms': self.elapsed_ms, 'attempts': self.attempts, 'bound_s': self.bound_s}

    def _finish_timings(self) -> None:
        self.elapsed_ms = int((time.monotonic() - self._started) * 1000)
        if not self.round_trip_ms:
            self.round_trip_ms = self.elapsed_ms

    def _remaining(self) -> float:
        """Seconds left for the call itself: the bound minus the share kept to close the connection."""
        return self._started + self.bound_s - _CLOSE_S - time.monotonic()

    def _exec_with_retry(self, command: str, stdin: bytes) -> tuple[int, bytes, bytes]:
        for attempt in (1, 2):
            self.attempts = attempt
            try:
                return self._exec_within_budget(command, stdin)
            except AnsibleConnectionFailure as exc:
                kind = classify_connection_error(exc)
                if kind in ('reset', 'transient') and attempt == 1 and self._remaining() > 1:
                    self._reset_connection()
                    continue
                raise RemoteError(self._unreachable_message(kind, exc), unreachable=True) from None
        raise AssertionError('unreachable')  # pragma: no cover

    def _exec_within_budget(self, command: str, stdin: bytes) -> tuple[int, bytes, bytes]:
        """exec_command in a thread so a hung transport cannot hold the task beyond the bound."""
        done, outcome = run_bounded(lambda: self.connection.exec_command(command, in_data=stdin, sudoable=False), self._remaining())
        if not done:
            raise self._timeout_error('no answer')
        if 'error' in outcome:
            raise self._as_connection_failure(outcome['error'])
        return outcome['value']

    def _timeout_error(self, what: str) -> RemoteError:
        elapsed = time.monotonic() - self._started
        return RemoteError('The endpoint did not answer within the %s s bound (deadline %s s + %d s grace): %s after %.1f s '
                           '(attempt %d); the call was abandoned' % (_fmt_s(self.bound_s), self.request.get('deadline_s'), _GRACE_S,
                                                                     what, elapsed, self.attempts),
                           unreachable=True, timed_out=True)

    @staticmethod
    def _as_connection_failure(exc: Exception) -> Exception:
        """psrp and requests do not always wrap transport errors: make every one a connection failure."""
        if isinstance(exc, (AnsibleConnectionFailure, RemoteError)):
            return exc
        if isinstance(exc, AnsibleError):
            return RemoteError('The connection plugin failed: %s' % to_text(exc))
        return AnsibleConnectionFailure('%s: %s' % (type(exc).__name__, to_text(exc)))

    def _reset_connection(self) -> None:
        """Before the retry: close the old shell (ansible-core's winrm reset() opens a new one and leaves the
        old one on the endpoint, where WinRM counts it against MaxShellsPerUser), then reset, which
        reconnects (network I/O): both within the remaining time; best effort."""
        self._close(min(_CLOSE_S, max(self._remaining(), 0.1)))
        done, dummy = run_bounded(self.connection.reset, self._remaining())
        if not done:
            raise self._timeout_error('reconnecting for the retry hung')

    def _close(self, seconds: float) -> None:
        close = getattr(self.connection, 'close', None)
        if isinstance(close, _BoundedClose):
            close(timeout=seconds)
        elif close is not None:
            run_bounded(close, min(seconds, _CLOSE_S), 'tetra-close')

    def _close_after_failure(self) -> None:
        """Close the shell now, within the share of the bound kept for it, so a failed call leaves nothing open."""
        self._close(max(self._started + self.bound_s - time.monotonic(), 0.5))

    def _unreachable_message(self, kind: str, exc: Exception) -> str:
        reason = {
            'auth': 'authentication failed (wrong user or password?)',
            'reset': 'the connection was reset twice',
            'transient': 'the WinRM service failed twice',
        }.get(kind, 'connection failed')
        return 'Endpoint unreachable: %s: %s' % (reason, to_text(exc))


def _fmt_s(seconds: float) -> str:
    return ('%.1f' % seconds).rstrip('0').rstrip('.')


def run_bounded(function: t.Callable[[], t.Any], seconds: float, name: str = 'tetra-exec') -> tuple[bool, dict[str, t.Any]]:
    """Run ``function`` in a daemon thread for at most ``seconds``: (finished, {'value' | 'error'}).

    A thread still running when the time is up is abandoned (it holds no lock of ours and dies with
    the worker process).
    """
    outcome: dict[str, t.Any] = {}

    def target() -> None:
        try:
            outcome['value'] = function()
        except Exception as exc:  # pylint: disable=broad-except  # handed to the caller's thread
            outcome['error'] = exc

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    return not worker.is_alive(), outcome


class BackstopExpired(BaseException):
    """Raised by the backstop alarm in the worker's main thread (a BaseException, so that no ``except Exception`` keeps it)."""


def _expire(signum: int, frame: t.Any) -> None:
    raise BackstopExpired()


@contextlib.contextmanager
def backstop_alarm(seconds: int) -> t.Iterator[None]:
    """SIGALRM after ``seconds`` raises BackstopExpired: the bound of a task that sets no ``timeout`` keyword.

    The worker runs the task in its main thread and nothing else there uses SIGALRM (ansible-core's own task
    ``timeout`` is the same alarm, so the caller arms this one only without it). Outside the main thread, where
    Python cannot install a signal handler, there is no alarm.
    """
    try:
        previous = signal.signal(signal.SIGALRM, _expire)
    except ValueError:
        yield
        return
    signal.alarm(max(int(seconds), 1))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class _BoundedClose:
    """Replaces a connection's ``close``: the plugin's own close, abandoned after ``_CLOSE_S`` seconds.

    Ansible closes the connection after every task (TaskExecutor); a WinRM or PSRP close sends a
    Delete to the endpoint, which a frozen or slow-drip endpoint never answers.
    """

    def __init__(self, connection: t.Any, original: t.Callable[[], t.Any]) -> None:
        self.connection = connection
        self.original = original
        self.abandoned = 0

    def __call__(self, timeout: float | None = None) -> None:
        done, outcome = run_bounded(self.original, min(_CLOSE_S, timeout) if timeout is not None else _CLOSE_S, 'tetra-close')
        if not done:
            self.abandoned += 1
            # The plugin's state still names the open shell: forget it so no later close waits on it again.
            for name in ('shell_id', 'protocol', 'runspace', '_psrp_conn'):
                if getattr(self.connection, name, None) is not None:
                    try:
                        setattr(self.connection, name, None)
                    except AttributeError:
                        pass
            if hasattr(self.connection, '_connected'):
                self.connection._connected = False  # pylint: disable=protected-access
        elif 'error' in outcome:
            pass  # a failed close is not the task's problem


def bound_close(connection: t.Any) -> None:
    """Make ``connection.close`` bounded (idempotent)."""
    close = getattr(connection, 'close', None)
    if close is None or isinstance(close, _BoundedClose):
        return
    try:
        connection.close = _BoundedClose(connection, close)
    except AttributeError:
        pass


# Read and joined at import: the linear strategy imports each task's action plugin in the controller's main process
# before it forks the task's workers (action_loader.get(class_only=True) for BYPASS_HOST_LOOP), so every worker
# inherits the scripts instead of reading and joining the parts again for its host.
for _entry in load_entries()['entries']:
    wire_script(_entry)
