# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The WinRS shell service of one endpoint: shells, commands, stdin, output, operation timeouts, faults."""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import typing as t

from . import wsman
from .commands import CommandRunner, Execution
from .scenario import EndpointState

GENERIC_500 = (1726, 'w:InternalError', 'The remote procedure call failed. ')


class ResetConnection(Exception):
    """Drop the TCP connection with a RST instead of answering."""


@dataclasses.dataclass
class Caller:
    """Who sent a request, over what."""

    user: str
    transport: str
    scheme: str
    encrypted: bool
    address: str


@dataclasses.dataclass
class Command:
    """One command in a shell."""

    command_id: str
    command: str
    arguments: list[str]
    caller: Caller
    created: float
    stdin: bytearray = dataclasses.field(default_factory=bytearray)
    stdin_closed: bool = False
    execution: Execution | None = None
    started: float = 0.0
    done_at: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    logged: bool = False
    # A psrp pipeline (tests/lab/psrp.py): no command line, a script and its pipeline input lines.
    script: str | None = None
    input_lines: list[str] | None = None
    log_extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Shell:
    shell_id: str
    commands: dict[str, Command] = dataclasses.field(default_factory=dict)


class WinRS:
    """Handles decoded WS-Management requests for one endpoint."""

    def __init__(self, state: EndpointState, log: t.Callable[[dict[str, t.Any]], None]) -> None:
        self.state = state
        self.log = log
        self.shells: dict[str, Shell] = {}
        self.lock = threading.Lock()
        self.fault_counts: dict[str, int] = {}
        culture = state.scenario['host']['culture']
        self.lang = culture if culture else 'en-US'
        from .psrp import PowerShellRemoting  # pylint: disable=import-outside-toplevel  # psrp builds on this module
        self.psrp = PowerShellRemoting(self)

    @property
    def machine(self) -> str:
        return self.state.computer_name()

    def handle(self, request: wsman.WsRequest, caller: Caller, size_in: int) -> tuple[int, bytes]:
        """(HTTP status, SOAP body) for one request, or raise ResetConnection."""
        injected = self.injected_500(request.action)
        if injected is not None:
            return 500, injected
        if self.psrp.serves(request):
            return self.psrp.handle(request, caller, size_in)
        if request.action == 'create':
            return 200, self.create(request, caller)
        shell = self.shells.get(request.shell_id or '')
        if shell is None:
            return 500, wsman.no_shell_fault(request.message_id, self.machine, request.shell_id, self.lang)
        handler = {'command': self.command, 'send': self.send, 'receive': self.receive, 'signal': self.signal,
                   'delete': self.delete}.get(request.action)
        if handler is None:
            return 500, wsman.fault(request.message_id, self.machine, 2150858771, 'w:ActionNotSupported',
                                    'The action is not supported by the service. ', self.lang)
        return handler(request, shell, caller, size_in)

    def injected_500(self, action: str) -> bytes | None:
        plan = self.state.scenario['faults']['http_500']
        if not plan or plan.get('on', 'command') != action:
            return None
        if not self.should_fire('http_500', int(plan.get('times', 0))):
            return None
        self.state.count('faults_500')
        code, subcode, reason = GENERIC_500
        return wsman.fault('uuid:' + wsman.new_id(), self.machine, code, subcode, reason, self.lang)

    def should_fire(self, name: str, times: int) -> bool:
        with self.lock:
            self.fault_counts[name] = self.fault_counts.get(name, 0) + 1
            return times == 0 or self.fault_counts[name] <= times

    def create(self, request: wsman.WsRequest, caller: Caller) -> bytes:
        shell = Shell(wsman.new_id())
        with self.lock:
            self.shells[shell.shell_id] = shell
        address = '%s://%s/wsman' % (caller.scheme, caller.address)
        return wsman.create_response(request, shell.shell_id, address, self.lang)

    def command(self, request: wsman.WsRequest, shell: Shell, caller: Caller, size_in: int) -> tuple[int, bytes]:
        command, arguments = request.command_line()
        entry = Command(wsman.new_id(), command, arguments, caller, time.time(), bytes_in=size_in)
        shell.commands[entry.command_id] = entry
        body = wsman.command_response(request, entry.command_id, self.lang)
        entry.bytes_out += len(body)
        return 200, body

    def send(self, request: wsman.WsRequest, shell: Shell, caller: Caller, size_in: int) -> tuple[int, bytes]:
        for chunk in request.stdin_chunks():
            entry = shell.commands.get(chunk.command_id)
            if entry is None:
                continue
            entry.bytes_in += size_in
            entry.stdin.extend(chunk.data)
            if chunk.end:
                entry.stdin_closed = True
                self.start(entry)
        return 200, wsman.simple_response(request, self.lang)

    def start(self, entry: Command) -> None:
        if entry.execution is not None:
            return
        entry.started = time.time()
        runner = CommandRunner(self.state, entry.caller.user)
        if entry.script is not None:
            self.state.count('commands')
            execution = runner.run_script(entry.script, list(entry.input_lines or []))
        else:
            execution = runner.run(entry.command, entry.arguments, bytes(entry.stdin))
        entry.execution = execution
        scale = self.state.time_scale
        entry.done_at = float('inf') if execution.hang else entry.started + execution.seconds * scale
        if execution.forceupdate_after_s is not None:
            self.state.schedule_forceupdate(entry.started + execution.forceupdate_after_s * scale)

    def receive(self, request: wsman.WsRequest, shell: Shell, caller: Caller, size_in: int) -> tuple[int, bytes]:
        entry = shell.commands.get(request.command_id() or '')
        if entry is None:
            return 500, wsman.fault(request.message_id, self.machine, 2150858843, 'w:InvalidSelectors',
                                    'The Windows Remote Shell received a request to perform an operation on a command identifier '
                                    'that does not exist. ', self.lang)
        entry.bytes_in += size_in
        timed_out = self.await_done(entry, request)
        if timed_out is not None:
            return 500, timed_out
        execution = t.cast(Execution, entry.execution)
        body = wsman.receive_response(request, entry.command_id, execution.stdout, execution.stderr, execution.exit_code, self.lang)
        entry.bytes_out += len(body)
        self.record(entry, execution.exit_code, signalled=False)
        return 200, body

    def await_done(self, entry: Command, request: wsman.WsRequest) -> bytes | None:
        """A Receive for a command: reset fault, start it, wait until it is done or the OperationTimeout fault (returned)."""
        plan = self.state.scenario['faults']['reset_receive']
        if plan and self.should_fire('reset_receive', int(plan.get('times', 0))):
            self.state.count('resets')
            self.start(entry)
            raise ResetConnection()
        self.start(entry)
        wait = min(entry.done_at, time.time() + request.operation_timeout_s) - time.time()
        if wait > 0:
            time.sleep(wait)
        if time.time() < entry.done_at:
            self.state.count('operation_timeouts')
            return wsman.timeout_fault(request.message_id, self.machine, self.lang)
        return None

    def signal(self, request: wsman.WsRequest, shell: Shell, caller: Caller, size_in: int) -> tuple[int, bytes]:
        entry = shell.commands.pop(request.command_id() or '', None)
        if entry is not None and not entry.logged:
            entry.bytes_in += size_in
            self.record(entry, None, signalled=True)
        return 200, wsman.simple_response(request, self.lang)

    def delete(self, request: wsman.WsRequest, shell: Shell, caller: Caller, size_in: int) -> tuple[int, bytes]:
        with self.lock:
            self.shells.pop(shell.shell_id, None)
        for entry in shell.commands.values():
            if not entry.logged:
                self.record(entry, None, signalled=True)
        return 200, wsman.simple_response(request, self.lang)

    def record(self, entry: Command, exit_code: int | None, signalled: bool) -> None:
        """One request-log line per command."""
        entry.logged = True
        execution = entry.execution
        finished = time.time()
        request = execution.request if execution else None
        self.log({
            'host': self.state.spec.name, 'address': entry.caller.address, 'scenario': self.state.spec.scenario_name,
            'user': entry.caller.user, 'transport': entry.caller.transport, 'scheme': entry.caller.scheme,
            'encrypted': entry.caller.encrypted, 'command_id': entry.command_id,
            'command': ' '.join([entry.command] + entry.arguments), 'script': execution.script if execution else None,
            'stdin': bytes(entry.stdin).decode('utf-8', 'replace'), 'stdin_bytes': len(entry.stdin),
            'request': request, 'action': request.get('action') if request else None,
            'started': _iso(entry.created), 'finished': _iso(finished), 'duration_ms': int((finished - entry.created) * 1000),
            'bytes_in': entry.bytes_in, 'bytes_out': entry.bytes_out, 'exit_code': exit_code, 'signalled': signalled,
            'stdout_bytes': len(execution.stdout) if execution else 0, 'stderr_bytes': len(execution.stderr) if execution else 0,
            **entry.log_extra,
        })


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z')
