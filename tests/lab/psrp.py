# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The PowerShell Remoting Protocol (MS-PSRP) over WS-Management for one endpoint.

Requests whose ``w:ResourceURI`` is ``http://schemas.microsoft.com/powershell/<configuration>`` come here
from ``WinRS.handle`` (after the injected-500 fault). A WinRS shell is a runspace pool, a WinRS command
is a pipeline (MS-PSRP 3.1.4, 3.2.4). pypsrp's own message classes, serializer and fragment format
are used server-side. The script of a pipeline runs through ``CommandRunner.run_script`` with its
pipeline input lines only; timing, faults, operation timeouts and the request log are WinRS's
(``WinRS.start``, ``WinRS.await_done``, ``WinRS.record``).
"""

from __future__ import annotations

import base64
import dataclasses
import re
import struct
import threading
import time
import typing as t
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, unescape

from pypsrp.complex_objects import (
    CommandType,
    GenericComplexObject,
    ObjectMeta,
    HostMethodIdentifier,
    ProgressRecordType,
    PSInvocationState,
    RunspacePoolState,
)
from pypsrp.messages import (
    ApplicationPrivateData,
    CreatePipeline,
    Destination,
    EndOfPipelineInput,
    ErrorRecordMessage,
    GetAvailableRunspaces,
    InitRunspacePool,
    Message,
    MessageType,
    PipelineHostCall,
    PipelineInput,
    PipelineState,
    ProgressRecord,
    RunspaceAvailability,
    RunspacePoolStateMessage,
    SessionCapability,
    SetMaxRunspaces,
    SetMinRunspaces,
)
from pypsrp.powershell import Fragment
from pypsrp.serializer import Serializer

from . import wsman
from .commands import Execution
from .winrs import Caller, Command

if t.TYPE_CHECKING:
    from .winrs import WinRS

PS_URI_PREFIX = 'http://schemas.microsoft.com/powershell/'
PS_NS = 'http://schemas.microsoft.com/powershell'
CONFIGURATIONS = ('microsoft.powershell', 'microsoft.powershell32', 'microsoft.windows.servermanagerworkflows')
# What a Windows PowerShell 5.1 endpoint announces (MS-PSRP 2.2.2.1).
PROTOCOL_VERSION, PS_VERSION, SERIALIZATION_VERSION = '2.3', '2.0', '1.1.0.1'
FRAGMENT_HEADER = 21
ENVELOPE_OVERHEAD = 4096  # SOAP envelope, headers and stream elements around the base64 payload
DEFAULT_ENVELOPE = 153600
VOID_CALL_ID = -100  # MS-PSRP 2.2.2.27: a host call that expects no response
# ErrorCategory values (MS-PSRP 2.2.3.15 refers to System.Management.Automation.ErrorCategory).
CATEGORIES = {'NotSpecified': 0, 'InvalidArgument': 5, 'InvalidData': 6, 'InvalidOperation': 7, 'ObjectNotFound': 13,
              'ParserError': 17, 'PermissionDenied': 18}
EXIT_STATEMENT = re.compile(r'(?:^|;)\s*exit\b', re.I | re.M)  # a top-level `exit` (not one inside If (...) { exit })
CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.S)
CLIXML_PROGRESS = re.compile(r'<Obj S="progress".*?<AV>(.*?)</AV><AI>(-?\d+)</AI>.*?<PI>(-?\d+)</PI><PC>(-?\d+)</PC>'
                             r'<T>(\w+)</T><SR>(-?\d+)</SR><SD>(.*?)</SD>', re.S)
CATEGORY_INFO = re.compile(r'^(\w+): \((.*?):(\w*)\) \[(.*?)\], (.*)$')


class _HostInfoTolerant:
    """pypsrp's HostInfo cannot be deserialized (read-only property): read it as a generic object."""

    _extended_properties: tuple[tuple[str, t.Any], ...]

    def __init__(self) -> None:
        super().__init__()
        self._extended_properties = tuple(
            (attr, ObjectMeta('ObjDynamic', name=meta.name, object=GenericComplexObject) if attr == 'host_info' else meta)
            for attr, meta in self._extended_properties)


class _CreatePipeline(_HostInfoTolerant, CreatePipeline):
    pass


class _InitRunspacePool(_HostInfoTolerant, InitRunspacePool):
    pass


def unpack_message(data: bytes, serializer: Serializer) -> Message:
    """Message.unpack, with the two client messages that carry a HostInfo read tolerantly."""
    kind = struct.unpack('<I', data[4:8])[0]
    if kind == MessageType.END_OF_PIPELINE_INPUT:  # no payload; Message.unpack cannot build it
        return Message(struct.unpack('<I', data[0:4])[0], str(uuid.UUID(bytes_le=data[8:24])), str(uuid.UUID(bytes_le=data[24:40])),
                       EndOfPipelineInput(), serializer)
    cls = {MessageType.CREATE_PIPELINE: _CreatePipeline, MessageType.INIT_RUNSPACEPOOL: _InitRunspacePool}.get(kind)
    if cls is None:
        return Message.unpack(data, serializer)
    payload = data[43:] if data[40:43] == b'\xef\xbb\xbf' else data[40:]
    obj = serializer.deserialize(payload.decode('utf-8'), ObjectMeta('Obj', object=cls))
    return Message(struct.unpack('<I', data[0:4])[0], str(uuid.UUID(bytes_le=data[8:24])), str(uuid.UUID(bytes_le=data[24:40])),
                   obj, serializer)


class Defragmenter:
    """MS-PSRP 2.2.4: reassemble fragments per ObjectId (they may span Command, Send and several requests)."""

    def __init__(self) -> None:
        self.partial: dict[int, tuple[int, bytes]] = {}
        self.serializer = Serializer()

    def feed(self, data: bytes) -> list[Message]:
        blobs = []
        while data:
            fragment, data = Fragment.unpack(data)
            expected, blob = self.partial.pop(fragment.object_id, (0, b''))
            if fragment.fragment_id != expected or (fragment.start != (expected == 0)):
                raise ValueError('fragment %d of object %d out of order' % (fragment.fragment_id, fragment.object_id))
            blob += fragment.data
            if fragment.end:
                blobs.append(blob)
            else:
                self.partial[fragment.object_id] = (expected + 1, blob)
        return [unpack_message(blob, self.serializer) for blob in blobs]


def _pack(message_type: int, rpid: str, pid: str | None, payload: bytes) -> bytes:
    """MS-PSRP 2.2.1: Destination (client), MessageType, RPID, PID, Data."""
    empty = uuid.UUID(int=0)
    return (struct.pack('<II', Destination.CLIENT, message_type) + uuid.UUID(rpid).bytes_le
            + (uuid.UUID(pid) if pid else empty).bytes_le + payload)


@dataclasses.dataclass
class Pipeline:
    """One PowerShell pipeline (a WinRS command of the pool's shell)."""

    entry: Command
    pid: str
    created: bool = False
    no_input: bool = True
    input_closed: bool = False
    outbox: list[bytes] | None = None
    rc: int = 0

    @property
    def ready(self) -> bool:
        return self.created and (self.no_input or self.input_closed)


@dataclasses.dataclass
class Pool:
    """A runspace pool (the WinRS shell of the PowerShell resource URI)."""

    shell_id: str
    resource_uri: str
    caller: Caller
    defragmenter: Defragmenter
    outbox: list[bytes] = dataclasses.field(default_factory=list)
    pipelines: dict[str, Pipeline] = dataclasses.field(default_factory=dict)
    object_id: int = 0
    rpid: str = ''
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class PowerShellRemoting:
    """The PSRP server of one endpoint, built on its WinRS service (state, log, faults, timing)."""

    def __init__(self, winrs: 'WinRS') -> None:
        self.winrs = winrs
        self.pools: dict[str, Pool] = {}
        self.lock = threading.Lock()

    @staticmethod
    def serves(request: wsman.WsRequest) -> bool:
        return request.resource_uri.lower().startswith(PS_URI_PREFIX)

    @property
    def lang(self) -> str:
        return self.winrs.lang

    def fault(self, request: wsman.WsRequest, code: int, subcode: str, reason: str) -> tuple[int, bytes]:
        return 500, wsman.fault(request.message_id, self.winrs.machine, code, subcode, reason, self.lang)

    # ---- dispatch ----

    def handle(self, request: wsman.WsRequest, caller: Caller, size_in: int) -> tuple[int, bytes]:
        try:
            return self.dispatch(request, caller, size_in)
        except (ValueError, KeyError, AttributeError, TypeError, struct.error) as exc:
            # A PSRP payload the lab cannot read: a WSManFault naming it, never a dropped connection.
            return self.fault(request, 2152992672, 'w:InternalError', 'The PowerShell remoting payload cannot be processed: %s. ' % exc)

    def dispatch(self, request: wsman.WsRequest, caller: Caller, size_in: int) -> tuple[int, bytes]:
        if request.action == 'create':
            return self.create(request, caller)
        pool = self.pools.get((request.shell_id or '').upper())
        if pool is None:
            return 500, wsman.no_shell_fault(request.message_id, self.winrs.machine, request.shell_id, self.lang)
        handler = {'command': self.command, 'send': self.send, 'receive': self.receive, 'signal': self.signal,
                   'delete': self.delete}.get(request.action)
        if handler is None:
            return self.fault(request, 2150858771, 'w:ActionNotSupported', 'The action is not supported by the service. ')
        return handler(request, pool, size_in)

    # ---- runspace pool: MS-PSRP 3.1.4.1 / 3.2.4.1 (open), 3.1.4.3 (close) ----

    def create(self, request: wsman.WsRequest, caller: Caller) -> tuple[int, bytes]:
        configuration = request.resource_uri[len(PS_URI_PREFIX):]
        if configuration.lower() not in CONFIGURATIONS:
            return self.fault(request, 2150858752, 'w:InvalidResourceURI',
                              'The WS-Management service cannot process the request. Cannot find the %s session configuration '
                              'in the WSMan: drive on the %s computer. ' % (configuration, self.winrs.machine))
        shell = request.find('rsp:Shell')
        creation = shell.find('{%s}creationXml' % PS_NS) if shell is not None else None
        shell_id = (shell.attrib.get('ShellId') if shell is not None else None) or wsman.new_id()
        pool = Pool(shell_id.upper(), request.resource_uri, caller, Defragmenter())
        try:
            messages = pool.defragmenter.feed(base64.b64decode((creation.text or '') if creation is not None else ''))
        except Exception:  # pylint: disable=broad-except  # any undecodable creationXml
            messages = []
        kinds = [m.message_type for m in messages]
        if kinds != [MessageType.SESSION_CAPABILITY, MessageType.INIT_RUNSPACEPOOL]:
            return self.fault(request, 2152992672, 'w:InvalidParameter',
                              'The WS-Management service cannot process the request because the creationXml does not carry '
                              'SESSION_CAPABILITY and INIT_RUNSPACEPOOL. ')
        rpid = pool.rpid = str(messages[0].rpid)
        # Answered on the first Receive of the pool (MS-PSRP 3.1.4.1, 3.2.5.4.x): capability, private data, Opened.
        private = {'PSVersionTable': {'PSVersion': '5.1.19041.4522', 'PSEdition': 'Desktop', 'PSRemotingProtocolVersion': '2.3',
                                      'SerializationVersion': '1.1.0.1', 'WSManStackVersion': '3.0', 'CLRVersion': '4.0.30319.42000',
                                      'BuildVersion': '10.0.19041.4522'}}
        for obj in (SessionCapability(PROTOCOL_VERSION, PS_VERSION, SERIALIZATION_VERSION), ApplicationPrivateData(private),
                    RunspacePoolStateMessage(state=RunspacePoolState.OPENED)):
            pool.outbox.extend(self.fragments(pool, self.message(obj, rpid, None), DEFAULT_ENVELOPE))
        with self.lock:
            self.pools[pool.shell_id] = pool
        address = '%s://%s/wsman' % (caller.scheme, caller.address)
        body = ('<x:ResourceCreated><a:Address>%s</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>'
                '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters>'
                '</x:ResourceCreated><rsp:Shell xmlns:rsp="%s"><rsp:ShellId>%s</rsp:ShellId><rsp:Name>WinRM1</rsp:Name>'
                '<rsp:ResourceUri>%s</rsp:ResourceUri><rsp:Owner>%s</rsp:Owner><rsp:ClientIP>%s</rsp:ClientIP>'
                '<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin pr</rsp:InputStreams>'
                '<rsp:OutputStreams>stdout</rsp:OutputStreams><rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut>'
                '<rsp:Locale>%s</rsp:Locale><rsp:DataLocale>%s</rsp:DataLocale><rsp:CompressionMode>XpressCompression'
                '</rsp:CompressionMode><rsp:ProfileLoaded>Yes</rsp:ProfileLoaded><rsp:Encoding>UTF8</rsp:Encoding>'
                '<rsp:BufferMode>Block</rsp:BufferMode><rsp:State>Connected</rsp:State><rsp:ShellRunTime>P0DT0H0M0S'
                '</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>'
                % (escape(address), escape(request.resource_uri), pool.shell_id, wsman.SHELL_URI, pool.shell_id,
                   escape(request.resource_uri), escape(caller.user), escape(caller.address.split(':')[0]), self.lang, self.lang))
        return 200, wsman.envelope(wsman.RESPONSE_ACTIONS['create'], request.message_id, body, self.lang)

    def delete(self, request: wsman.WsRequest, pool: Pool, size_in: int) -> tuple[int, bytes]:
        with self.lock:
            self.pools.pop(pool.shell_id, None)
        for pipeline in pool.pipelines.values():
            if not pipeline.entry.logged:
                pipeline.entry.bytes_in += size_in
                self.winrs.record(pipeline.entry, None, signalled=True)
        return 200, wsman.simple_response(request, self.lang)

    # ---- pipelines: MS-PSRP 3.1.4.4 / 3.2.4.4 (create, input), 3.2.5.3.x (Send/Receive/Signal mapping) ----

    def command(self, request: wsman.WsRequest, pool: Pool, size_in: int) -> tuple[int, bytes]:
        line = request.find('rsp:CommandLine')
        command_id = ((line.attrib.get('CommandId') if line is not None else None) or wsman.new_id()).upper()
        entry = Command(command_id, '', [], pool.caller, time.time(), bytes_in=size_in)
        entry.log_extra = {'transport': 'psrp', 'auth': pool.caller.transport, 'runspace_pool_id': pool.rpid,
                           'pipeline_id': command_id}
        pipeline = Pipeline(entry, command_id)
        pool.pipelines[command_id] = pipeline
        argument = request.find('rsp:CommandLine/rsp:Arguments')
        self.consume(pool, base64.b64decode((argument.text or '') if argument is not None else ''), pipeline)
        body = wsman.command_response(request, command_id, self.lang)
        entry.bytes_out += len(body)
        return 200, body

    def send(self, request: wsman.WsRequest, pool: Pool, size_in: int) -> tuple[int, bytes]:
        for node in request.body.findall('rsp:Send/rsp:Stream', wsman.NS):
            pipeline = pool.pipelines.get(node.attrib.get('CommandId', '').upper())
            if pipeline is not None:
                pipeline.entry.bytes_in += size_in
            self.consume(pool, base64.b64decode(node.text or ''), pipeline)
        body = wsman.simple_response(request, self.lang)
        return 200, body

    def consume(self, pool: Pool, data: bytes, pipeline: Pipeline | None) -> None:
        """Defragment client data (MS-PSRP 2.2.4) and act on every complete message."""
        if not data:
            return
        with pool.lock:
            messages = pool.defragmenter.feed(data)
        for message in messages:
            target = pool.pipelines.get(str(message.pid).upper(), pipeline)
            kind = message.message_type
            if kind == MessageType.CREATE_PIPELINE and target is not None:
                self.create_pipeline(target, t.cast(CreatePipeline, message.data))
            elif kind == MessageType.PIPELINE_INPUT and target is not None:
                value = t.cast(PipelineInput, message.data).data
                target.entry.input_lines = (target.entry.input_lines or []) + ['' if value is None else str(value)]
            elif kind == MessageType.END_OF_PIPELINE_INPUT and target is not None:
                target.input_closed = True
                self.start(target)
            elif kind in (MessageType.SET_MAX_RUNSPACES, MessageType.SET_MIN_RUNSPACES, MessageType.GET_AVAILABLE_RUNSPACES):
                call = t.cast(t.Union[SetMaxRunspaces, SetMinRunspaces, GetAvailableRunspaces], message.data)
                answer = RunspaceAvailability(response=1 if kind == MessageType.GET_AVAILABLE_RUNSPACES else True, ci=call.ci)
                with pool.lock:
                    pool.outbox.extend(self.fragments(pool, self.message(answer, str(message.rpid), None), DEFAULT_ENVELOPE))
            # PIPELINE_HOST_RESPONSE / RUNSPACEPOOL_HOST_RESPONSE ("pr" stream) and the rest: nothing to do.

    def create_pipeline(self, pipeline: Pipeline, create: CreatePipeline) -> None:
        """The PowerShell of CREATE_PIPELINE (MS-PSRP 2.2.2.10, 2.2.3.11): the AddScript text is the script."""
        commands = (create.pipeline.commands or []) if create.pipeline is not None else []
        parts, arguments = [], []
        for cmd in commands:
            parts.append(str(cmd.cmd or ''))
            for arg in cmd.args or []:
                if arg.name:
                    arguments.append('-%s' % arg.name)
                if arg.value is not None:
                    arguments.append(str(arg.value))
        pipeline.entry.script = '\n'.join(parts)
        pipeline.entry.command = pipeline.entry.script
        pipeline.entry.arguments = arguments
        pipeline.no_input = bool(create.no_input)
        pipeline.created = True
        self.start(pipeline)

    def start(self, pipeline: Pipeline) -> None:
        if pipeline.ready:
            lines = pipeline.entry.input_lines or []
            pipeline.entry.stdin = bytearray('\n'.join(lines).encode('utf-8'))
            pipeline.entry.stdin_closed = True
            self.winrs.start(pipeline.entry)

    def receive(self, request: wsman.WsRequest, pool: Pool, size_in: int) -> tuple[int, bytes]:
        desired = request.find('rsp:Receive/rsp:DesiredStream')
        command_id = desired.attrib.get('CommandId', '').upper() if desired is not None else ''
        budget = self.budget(request)
        if not command_id:
            return self.receive_pool(request, pool, budget)
        pipeline = pool.pipelines.get(command_id)
        if pipeline is None:
            return self.fault(request, 2150858843, 'w:InvalidSelectors',
                              'The Windows Remote Shell received a request to perform an operation on a command identifier '
                              'that does not exist. ')
        entry = pipeline.entry
        entry.bytes_in += size_in
        if not pipeline.ready:
            # Waiting for its input: nothing to say until the OperationTimeout.
            time.sleep(request.operation_timeout_s)
            self.winrs.state.count('operation_timeouts')
            return 500, wsman.timeout_fault(request.message_id, self.winrs.machine, self.lang)
        if pipeline.outbox is None:
            timed_out = self.winrs.await_done(entry, request)
            if timed_out is not None:
                return 500, timed_out
            pipeline.outbox = self.pipeline_answer(pool, pipeline, t.cast(Execution, entry.execution), budget)
        chunk = self.take(pipeline.outbox, budget)
        done = not pipeline.outbox
        body = self.receive_response(request, chunk, command_id, done)
        entry.bytes_out += len(body)
        if done:
            pool.pipelines.pop(command_id, None)
            if not entry.logged:
                self.winrs.record(entry, pipeline.rc, signalled=False)
        return 200, body

    def receive_pool(self, request: wsman.WsRequest, pool: Pool, budget: int) -> tuple[int, bytes]:
        with pool.lock:
            chunk = self.take(pool.outbox, budget)
        if not chunk:
            time.sleep(request.operation_timeout_s)
            self.winrs.state.count('operation_timeouts')
            return 500, wsman.timeout_fault(request.message_id, self.winrs.machine, self.lang)
        return 200, self.receive_response(request, chunk, None, False)

    def signal(self, request: wsman.WsRequest, pool: Pool, size_in: int) -> tuple[int, bytes]:
        """powershell/signal/crtl_c stops a pipeline (MS-PSRP 3.2.5.3.x); a finished one has nothing left to stop."""
        pipeline = pool.pipelines.pop((request.command_id() or '').upper(), None)
        if pipeline is not None and not pipeline.entry.logged:
            pipeline.entry.bytes_in += size_in
            self.winrs.record(pipeline.entry, None, signalled=True)
        return 200, wsman.simple_response(request, self.lang)

    # ---- what a finished pipeline sends ----

    def pipeline_answer(self, pool: Pool, pipeline: Pipeline, execution: Execution, budget: int) -> list[bytes]:
        """PIPELINE_OUTPUT per line, ERROR/PROGRESS records, SetShouldExit host call, PIPELINE_STATE (MS-PSRP 3.2.4.4)."""
        rpid, pid = pool.rpid, pipeline.pid
        serializer = Serializer()
        messages: list[bytes] = []
        text = execution.stdout.decode('utf-8', 'replace')
        if text.endswith('\r\n'):
            text = text[:-2]
        elif text.endswith('\n'):
            text = text[:-1]
        if execution.stdout:
            for line in re.split(r'\r?\n', text):
                element = serializer.serialize(line)
                messages.append(_pack(MessageType.PIPELINE_OUTPUT, rpid, pid, ET.tostring(t.cast(ET.Element, element), encoding='utf-8')))
        errors, progress = self.stderr_records(execution.stderr.decode('utf-8', 'replace'))
        messages.extend(self.message(record, rpid, pid) for record in progress)
        script = pipeline.entry.script or ''
        # A script error the lab models (command not found, the bootstrap's ConvertFrom-Json) ends the script: the
        # pipeline fails with it as ExceptionAsErrorRecord (pypsrp: had_errors, Ansible: rc 1); `exit` after it never runs.
        terminating = errors[-1] if errors else None
        messages.extend(self.message(record, rpid, pid) for record in errors[:-1])
        exit_code = None
        if terminating is None and (execution.exit_code != 0 or EXIT_STATEMENT.search(script)):
            exit_code = execution.exit_code
        if exit_code is not None:
            call = PipelineHostCall(ci=VOID_CALL_ID, mi=HostMethodIdentifier(value=6), mp=[exit_code])
            messages.append(self.message(call, rpid, pid))
        state = PipelineState(state=PSInvocationState.FAILED if terminating is not None else PSInvocationState.COMPLETED,
                              error_record=terminating)
        messages.append(self.message(state, rpid, pid))
        pipeline.rc = exit_code or (1 if errors or terminating is not None else 0)
        fragments: list[bytes] = []
        for message in messages:
            fragments.extend(self.fragments(pool, message, budget))
        return fragments

    def stderr_records(self, stderr: str) -> tuple[list[ErrorRecordMessage], list[ProgressRecord]]:
        """The error and progress records behind powershell.exe's CLIXML stderr; other text as NativeCommandError."""
        if not stderr:
            return [], []
        if not stderr.startswith('#< CLIXML'):
            return [self.error_record(line, 'NativeCommandError', 'NotSpecified', '', '', '')
                    for line in stderr.splitlines() if line.strip()], []
        progress = [ProgressRecord(activity=_clixml_text(m.group(1)), activity_id=int(m.group(2)), description=_clixml_text(m.group(7)),
                                   current_operation=None, parent_activity_id=int(m.group(3)), percent_complete=int(m.group(4)),
                                   progress_type=ProgressRecordType(value=1 if m.group(5) == 'Completed' else 0),
                                   seconds_remaining=int(m.group(6)))
                    for m in CLIXML_PROGRESS.finditer(stderr)]
        text = ''.join(_clixml_text(part) for part in CLIXML_ERROR.findall(stderr))
        errors = [self.parse_error_text(block) for block in re.split(r'\r\n \r\n', text) if block.strip()]
        return errors, progress

    def parse_error_text(self, text: str) -> ErrorRecordMessage:
        """An error record from the text powershell.exe prints for it (the WinRS path's stderr)."""
        lines = text.strip('\r\n').split('\r\n')
        message, rest = lines[0], lines[1:]
        position = [line for line in rest if not line.startswith('    + ')]
        details = [line.split(':', 1)[1].strip() for line in rest if line.startswith('    + ') and ':' in line]
        category_info = details[0] if details else ''
        fq_error = details[1] if len(details) > 1 else 'NotSpecified'
        match = CATEGORY_INFO.match(category_info)
        category, target, target_type, reason = (match.group(1), match.group(2), match.group(3), match.group(5)) if match else \
            ('NotSpecified', '', '', '')
        name = ''
        if target and message.startswith(target + ' : '):
            name, message = target, message[len(target) + 3:]
        record = self.error_record(message, fq_error, category, target, target_type, reason, name, '\r\n'.join(position))
        record.message = category_info or record.message
        return record

    @staticmethod
    def error_record(message: str, fq_error: str, category: str, target: str, target_type: str, reason: str,
                     name: str = '', position: str = '') -> ErrorRecordMessage:
        """An ERROR_RECORD (MS-PSRP 2.2.2.20, 2.2.3.15) the way PowerShell 5.1 serializes a script error."""
        exception = GenericComplexObject()
        exception.types = ['System.Management.Automation.%s' % (reason or 'RuntimeException'), 'System.Exception', 'System.Object']
        exception.to_string = message
        exception.adapted_properties = {'Message': message, 'HResult': -2146233087}
        record = ErrorRecordMessage(
            exception=exception, invocation=bool(position), fq_error=fq_error,
            category=CATEGORIES.get(category, 0), reason=reason or None, target_name=target or None, target_type=target_type or None,
            message='%s: (%s:%s) [], %s' % (category, target, target_type, reason or 'RuntimeException'),
            invocation_name=name or None, invocation_line=position.split('\r\n')[1][2:] if position.count('\r\n') else None,
            invocation_position_message=position or None, invocation_script_line_number=1 if position else None,
            invocation_offset_in_line=1 if position else None, invocation_history_id=1 if position else None,
            invocation_pipeline_length=0 if position else None, invocation_pipeline_position=0 if position else None,
            invocation_expecting_input=False if position else None, command_name=name or None,
            command_type=CommandType(value=CommandType.SCRIPT) if name else None,
            pipeline_iteration_info=[0, 0] if position else None, invocation_pipeline_iteration_info=[0, 0] if position else None,
        )
        for attr, dummy in record._extended_properties:  # pylint: disable=protected-access
            if not hasattr(record, attr):  # ErrorRecord.__init__ leaves a few unset (target_object, invocation_info)
                setattr(record, attr, None)
        # pypsrp's ErrorRecordMessage declares no target_object (an extended property) and types _to_string as None.
        record.target_object = target or None  # type: ignore[attr-defined]
        record._to_string = message  # type: ignore[assignment]  # pylint: disable=protected-access  # ComplexObject's ToString
        return record

    # ---- framing ----

    @staticmethod
    def message(obj: t.Any, rpid: str, pid: str | None) -> bytes:
        if isinstance(obj, EndOfPipelineInput):
            return _pack(obj.MESSAGE_TYPE, rpid, pid, b'')
        return Message(Destination.CLIENT, rpid, pid, obj, Serializer()).pack()

    @staticmethod
    def fragments(pool: Pool, data: bytes, budget: int) -> list[bytes]:
        """MS-PSRP 2.2.4: ObjectId, FragmentId, Start/End, BlobLength, Blob; each fragment fits in one Receive."""
        size = max(1024, budget - FRAGMENT_HEADER)
        pool.object_id += 1
        pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b'']
        return [Fragment(pool.object_id, index, piece, index == 0, index == len(pieces) - 1).pack() for index, piece in enumerate(pieces)]

    @staticmethod
    def budget(request: wsman.WsRequest) -> int:
        """Raw fragment bytes one Receive answer may carry under the request's MaxEnvelopeSize."""
        node = request.root.find('s:Header/w:MaxEnvelopeSize', wsman.NS)
        try:
            envelope = int((node.text or '').strip()) if node is not None else DEFAULT_ENVELOPE
        except ValueError:
            envelope = DEFAULT_ENVELOPE
        return max(2048, (envelope - ENVELOPE_OVERHEAD) * 3 // 4)

    @staticmethod
    def take(outbox: list[bytes], budget: int) -> list[bytes]:
        chunk: list[bytes] = []
        used = 0
        while outbox and (not chunk or used + len(outbox[0]) <= budget):
            used += len(outbox[0])
            chunk.append(outbox.pop(0))
        return chunk

    def receive_response(self, request: wsman.WsRequest, chunk: list[bytes], command_id: str | None, done: bool) -> bytes:
        attribute = ' CommandId="%s"' % command_id if command_id else ''
        parts = ['<rsp:Stream Name="stdout"%s>%s</rsp:Stream>' % (attribute, base64.b64encode(fragment).decode('ascii'))
                 for fragment in chunk]
        if command_id:
            if done:
                parts.append('<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>0</rsp:ExitCode></rsp:CommandState>'
                             % (command_id, wsman.STATE_DONE))
            else:
                parts.append('<rsp:CommandState CommandId="%s" State="%s"/>' % (command_id, wsman.STATE_RUNNING))
        body = '<rsp:ReceiveResponse>%s</rsp:ReceiveResponse>' % ''.join(parts)
        return wsman.envelope(wsman.RESPONSE_ACTIONS['receive'], request.message_id, body, self.lang)


def _clixml_text(value: str) -> str:
    """A CLIXML string: XML entities and _xHHHH_ escapes decoded."""
    text = unescape(value)
    return re.sub(r'_x([0-9A-Fa-f]{4})_', lambda m: chr(int(m.group(1), 16)), text)
