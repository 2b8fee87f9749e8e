# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""WS-Management (WinRS) message parsing and building, shaped like a Windows WinRM service's answers."""

from __future__ import annotations

import base64
import dataclasses
import re
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS = {
    's': 'http://www.w3.org/2003/05/soap-envelope',
    'a': 'http://schemas.xmlsoap.org/ws/2004/08/addressing',
    'w': 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd',
    'rsp': 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell',
    'x': 'http://schemas.xmlsoap.org/ws/2004/09/transfer',
    'p': 'http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd',
}
SHELL_URI = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell'
TRANSFER = 'http://schemas.xmlsoap.org/ws/2004/09/transfer'
ANONYMOUS = 'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous'
FAULT_ACTION = 'http://schemas.dmtf.org/wbem/wsman/1/wsman/fault'
WSMAN_FAULT_NS = 'http://schemas.microsoft.com/wbem/wsman/1/wsmanfault'
STATE_DONE = SHELL_URI + '/CommandState/Done'
STATE_RUNNING = SHELL_URI + '/CommandState/Running'

ACTIONS = {
    TRANSFER + '/Create': 'create',
    TRANSFER + '/Delete': 'delete',
    SHELL_URI + '/Command': 'command',
    SHELL_URI + '/Send': 'send',
    SHELL_URI + '/Receive': 'receive',
    SHELL_URI + '/Signal': 'signal',
}
RESPONSE_ACTIONS = {
    'create': TRANSFER + '/CreateResponse',
    'delete': TRANSFER + '/DeleteResponse',
    'command': SHELL_URI + '/CommandResponse',
    'send': SHELL_URI + '/SendResponse',
    'receive': SHELL_URI + '/ReceiveResponse',
    'signal': SHELL_URI + '/SignalResponse',
}

TIMEOUT_CODE = 2150858793
TIMEOUT_TEXT = 'The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  '
NO_SHELL_CODE = 2150858843


@dataclasses.dataclass
class StdinChunk:
    """One rsp:Stream Name="stdin" of a Send."""

    command_id: str
    data: bytes
    end: bool


@dataclasses.dataclass
class WsRequest:
    """The parts of a WS-Management request the lab acts on."""

    action: str
    message_id: str
    operation_timeout_s: float
    shell_id: str | None
    body: ET.Element
    root: ET.Element
    resource_uri: str = ''

    def find(self, path: str) -> ET.Element | None:
        return self.body.find(path, NS)

    def command_id(self) -> str | None:
        for node in self.body.iter():
            if 'CommandId' in node.attrib:
                return node.attrib['CommandId']
        found = self.find('.//rsp:CommandId')
        return found.text if found is not None else None

    def command_line(self) -> tuple[str, list[str]]:
        command = self.find('rsp:CommandLine/rsp:Command')
        arguments = self.body.findall('rsp:CommandLine/rsp:Arguments', NS)
        return (command.text or '').strip() if command is not None else '', [a.text or '' for a in arguments]

    def stdin_chunks(self) -> list[StdinChunk]:
        chunks = []
        for node in self.body.findall('rsp:Send/rsp:Stream', NS):
            chunks.append(StdinChunk(node.attrib.get('CommandId', ''), base64.b64decode(node.text or ''),
                                     node.attrib.get('End', '').lower() == 'true'))
        return chunks

    def signal_code(self) -> str:
        code = self.find('rsp:Signal/rsp:Code')
        return (code.text or '').strip() if code is not None else ''


def parse_duration(text: str | None, default: float = 60.0) -> float:
    """xs:duration like PT20S or PT20.000S to seconds."""
    match = re.fullmatch(r'PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?', (text or '').strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_request(data: bytes) -> WsRequest:
    """Parse a SOAP envelope; raise ValueError on anything that is not a WS-Management request."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError('malformed XML: %s' % exc) from None
    header, body = root.find('s:Header', NS), root.find('s:Body', NS)
    if header is None or body is None:
        raise ValueError('not a SOAP envelope')
    action_uri = _text(header, 'a:Action')
    selector = header.find("w:SelectorSet/w:Selector[@Name='ShellId']", NS)
    return WsRequest(
        action=ACTIONS.get(action_uri, action_uri),
        message_id=_text(header, 'a:MessageID'),
        operation_timeout_s=parse_duration(_text(header, 'w:OperationTimeout')),
        shell_id=selector.text.strip() if selector is not None and selector.text else None,
        body=body,
        root=root,
        resource_uri=_text(header, 'w:ResourceURI'),
    )


def _text(parent: ET.Element, path: str) -> str:
    node = parent.find(path, NS)
    return (node.text or '').strip() if node is not None else ''


def new_id() -> str:
    return str(uuid.uuid4()).upper()


def envelope(action: str, relates_to: str, body: str, lang: str = 'en-US') -> bytes:
    """A response envelope with the header every WinRM reply carries (RelatesTo included)."""
    namespaces = ' '.join('xmlns:%s="%s"' % (k, v) for k, v in NS.items() if k != 'p')
    text = ('<s:Envelope xml:lang="%s" %s><s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>'
            '<a:To>%s</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>%s</s:Body></s:Envelope>'
            % (lang, namespaces, action, new_id(), ANONYMOUS, escape(relates_to), body))
    return text.encode('utf-8')


def create_response(request: WsRequest, shell_id: str, address: str, lang: str) -> bytes:
    body = ('<x:ResourceCreated><a:Address>%s</a:Address><a:ReferenceParameters>'
            '<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>'
            '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            '</x:ResourceCreated><rsp:Shell xmlns:rsp="%s"><rsp:ShellId>%s</rsp:ShellId>'
            '<rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</rsp:ResourceUri>'
            '<rsp:State>Connected</rsp:State><rsp:InputStreams>stdin</rsp:InputStreams>'
            '<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>'
            % (escape(address), shell_id, SHELL_URI, shell_id))
    return envelope(RESPONSE_ACTIONS['create'], request.message_id, body, lang)


def command_response(request: WsRequest, command_id: str, lang: str) -> bytes:
    body = '<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>' % command_id
    return envelope(RESPONSE_ACTIONS['command'], request.message_id, body, lang)


def simple_response(request: WsRequest, lang: str) -> bytes:
    """Send, Signal and Delete answers."""
    bodies = {'send': '<rsp:SendResponse/>', 'signal': '<rsp:SignalResponse/>', 'delete': ''}
    return envelope(RESPONSE_ACTIONS[request.action], request.message_id, bodies[request.action], lang)


def receive_response(request: WsRequest, command_id: str, stdout: bytes, stderr: bytes,
                     exit_code: int | None, lang: str) -> bytes:
    """Streams then CommandState: Done with ExitCode, or Running when exit_code is None."""
    cid = quoteattr(command_id)
    parts = []
    for name, data in (('stdout', stdout), ('stderr', stderr)):
        for offset in range(0, len(data), 65536):
            parts.append('<rsp:Stream Name="%s" CommandId=%s>%s</rsp:Stream>'
                         % (name, cid, base64.b64encode(data[offset:offset + 65536]).decode('ascii')))
    if exit_code is None:
        parts.append('<rsp:CommandState CommandId=%s State="%s"/>' % (cid, STATE_RUNNING))
    else:
        parts.extend('<rsp:Stream Name="%s" CommandId=%s End="true"></rsp:Stream>' % (n, cid) for n in ('stdout', 'stderr'))
        parts.append('<rsp:CommandState CommandId=%s State="%s"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState>'
                     % (cid, STATE_DONE, exit_code))
    body = '<rsp:ReceiveResponse>%s</rsp:ReceiveResponse>' % ''.join(parts)
    return envelope(RESPONSE_ACTIONS['receive'], request.message_id, body, lang)


def fault(relates_to: str, machine: str, code: int, subcode: str, reason: str, lang: str = 'en-US') -> bytes:
    """A WSManFault as Windows sends it with HTTP 500."""
    body = ('<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>'
            '<s:Reason><s:Text xml:lang="%s">%s</s:Text></s:Reason><s:Detail>'
            '<f:WSManFault xmlns:f="%s" Code="%d" Machine=%s><f:Message>%s</f:Message></f:WSManFault>'
            '</s:Detail></s:Fault>'
            % (subcode, lang, escape(reason), WSMAN_FAULT_NS, code, quoteattr(machine), escape(reason)))
    return envelope(FAULT_ACTION, relates_to, body, lang)


def timeout_fault(relates_to: str, machine: str, lang: str) -> bytes:
    return fault(relates_to, machine, TIMEOUT_CODE, 'w:TimedOut', TIMEOUT_TEXT, lang)


def no_shell_fault(relates_to: str, machine: str, shell_id: str | None, lang: str) -> bytes:
    reason = ('The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. '
              'Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. '
              'Provide the correct ShellId or create a new shell and retry the operation. ' % (shell_id or ''))
    return fault(relates_to, machine, NO_SHELL_CODE, 'w:InvalidSelectors', reason, lang)
