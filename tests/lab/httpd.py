# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""HTTP(S) listeners with Basic and NTLM (message encryption, channel bindings) in front of WinRS.

One ThreadingHTTPServer per listening address; a single selector thread accepts for all of them and
each connection gets its own thread (HTTP/1.1 keep-alive: NTLM authenticates a connection).
"""

from __future__ import annotations

import base64
import http.server
import selectors
import socket
import socketserver
import ssl
import struct
import threading
import time
import typing as t

import spnego
import spnego.channel_bindings
import spnego.exceptions

from . import wsman
from .scenario import EndpointState
from .winrs import Caller, ResetConnection, WinRS

PROTOCOL = 'application/HTTP-SPNEGO-session-encrypted'
BOUNDARY = b'--Encrypted Boundary'
ENCRYPTED_TYPE = 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % PROTOCOL
SOAP_TYPE = 'application/soap+xml;charset=UTF-8'


class Credentials:
    """The one lab account, in every spelling a client may send."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def accepts(self, name: str, password: str) -> bool:
        bare = name.split('\\')[-1].split('@')[0]
        return bare.lower() == self.user.lower() and password == self.password

    def user_file_lines(self) -> str:
        return ''.join('%s:%s:%s\n' % (domain, user, self.password)
                       for domain, user in (('', self.user), ('.', self.user), ('LAB', self.user), ('', self.user + '@lab.local')))


class EndpointServer(http.server.ThreadingHTTPServer):
    """One listening socket of one endpoint."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], winrs: WinRS, credentials: Credentials,
                 tls: ssl.SSLContext | None = None, channel_binding: bytes | None = None) -> None:
        self.winrs = winrs
        self.credentials = credentials
        self.tls = tls
        self.channel_binding = channel_binding
        # Set when the lab stops: frozen, half-open and slow-drip connections let go of their threads.
        self.stopping = threading.Event()
        super().__init__(address, LabHandler)

    @property
    def state(self) -> EndpointState:
        return self.winrs.state

    def server_bind(self) -> None:
        """HTTPServer.server_bind without its reverse DNS lookup (socket.getfqdn costs ~90 ms per address)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """Client disconnects and failed TLS handshakes are normal here."""


class LabHandler(http.server.BaseHTTPRequestHandler):
    """WinRM's /wsman endpoint."""

    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    timeout = 300
    server_version = 'Microsoft-HTTPAPI/2.0'
    sys_version = ''
    server: EndpointServer

    def handle(self) -> None:
        """Fault `half_open`: the connection is accepted, then nothing is ever read or answered (a peer gone
        without FIN or RST: the client's writes succeed, its reads never return)."""
        if self.server.state.scenario['faults'].get('half_open'):
            self.server.state.count('half_open')
            self.hold()
            self.close_connection = True
            return
        super().handle()

    def hold(self, seconds: float = 3600.0) -> None:
        """Keep the connection open and silent until the lab stops (or `seconds` pass)."""
        self.server.stopping.wait(seconds)

    def setup(self) -> None:
        self.drip_s = 0.0
        if self.server.state.scenario['faults'].get('half_open'):
            self.request.settimeout(None)
            super().setup()
            return
        if self.server.tls is not None:
            self.request.settimeout(15)
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()
        self.ntlm: t.Any = None
        self.user: str | None = None
        self.transport = ''
        self.server.state.count('connections')

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        """Quiet: the request log is the record."""

    def version_string(self) -> str:
        return self.server_version

    # ---- plumbing ----

    def read_body(self) -> bytes:
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def answer(self, status: int, body: bytes = b'', content_type: str | None = SOAP_TYPE,
               headers: t.Iterable[tuple[str, str]] = ()) -> None:
        if self.drip_s:
            self.drip(status, body, content_type, headers)
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body and content_type:
            self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drip(self, status: int, body: bytes, content_type: str | None, headers: t.Iterable[tuple[str, str]]) -> None:
        """Fault `slow_drip`: the whole answer (status line, headers, body), one byte every `interval_s` lab seconds.

        Every byte arrives before a client's read timeout, so only a wall-clock bound ends the wait.
        """
        lines = ['HTTP/1.1 %d %s' % (status, self.responses.get(status, ('',))[0]), 'Server: %s' % self.server_version]
        lines += ['%s: %s' % pair for pair in headers]
        if body and content_type:
            lines.append('Content-Type: %s' % content_type)
        lines.append('Content-Length: %d' % len(body))
        raw = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body
        self.server.state.count('drips')
        self.close_connection = True
        for index in range(len(raw)):
            if self.server.stopping.wait(self.drip_s):
                return
            try:
                self.wfile.write(raw[index:index + 1])
                self.wfile.flush()
            except OSError:
                return

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.close_connection = True
        for stream in (self.rfile, self.wfile):
            try:
                stream.close()
            except OSError:
                pass
        self.connection.close()

    def do_GET(self) -> None:  # noqa: N802  (BaseHTTPRequestHandler's naming)
        self.read_body()
        self.answer(405)

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_body()
        state = self.server.state
        state.count('http_requests')
        if self.path.split('?')[0].lower() != '/wsman':
            self.answer(404)
            return
        if not self.authenticate(body):
            return
        if not body:
            self.answer(200)
            return
        try:
            plain = self.decrypt(body) if self.is_encrypted() else body
        except (ValueError, spnego.exceptions.SpnegoError):
            self.answer(400)
            return
        self.process(plain)

    # ---- authentication ----

    def challenge_headers(self) -> list[tuple[str, str]]:
        auth = self.server.state.scenario['winrm']['auth']
        headers = [('WWW-Authenticate', 'Negotiate')] if 'ntlm' in auth else []
        if 'basic' in auth:
            headers.append(('WWW-Authenticate', 'Basic realm="WSMAN"'))
        return headers

    def reject(self) -> bool:
        self.server.state.count('auth_failures')
        self.ntlm = None
        self.answer(401, headers=self.challenge_headers())
        return False

    def authenticate(self, body: bytes) -> bool:
        """True when the request may proceed; otherwise the 401 has been sent."""
        header = self.headers.get('Authorization') or ''
        scheme, dummy, token = header.partition(' ')
        if not header and self.user is not None and self.transport == 'ntlm':
            return True
        slow = float(self.server.state.scenario['faults']['slow_auth_s'] or 0)
        if slow and (scheme.lower() in ('negotiate', 'ntlm') or not header):
            time.sleep(slow * self.server.state.time_scale)
        auth = self.server.state.scenario['winrm']['auth']
        if scheme.lower() == 'basic' and 'basic' in auth:
            return self.basic(token)
        if scheme.lower() in ('negotiate', 'ntlm') and 'ntlm' in auth:
            return self.negotiate(scheme, token)
        return self.reject()

    def basic(self, token: str) -> bool:
        try:
            name, dummy, password = base64.b64decode(token).decode('utf-8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return self.reject()
        if not self.server.credentials.accepts(name, password):
            return self.reject()
        self.user, self.transport = name, 'basic'
        return True

    def negotiate(self, scheme: str, token: str) -> bool:
        try:
            data = base64.b64decode(token)
        except ValueError:
            return self.reject()
        if self.ntlm is None or data[8:12] == b'\x01\x00\x00\x00':
            bindings = None
            if self.server.channel_binding is not None:
                bindings = spnego.channel_bindings.GssChannelBindings(application_data=self.server.channel_binding)
            self.ntlm = spnego.server(protocol='ntlm', options=spnego.NegotiateOptions.use_ntlm, channel_bindings=bindings)
            self.user = None
        try:
            reply = self.ntlm.step(data)
        except spnego.exceptions.SpnegoError:
            return self.reject()
        if not self.ntlm.complete:
            self.answer(401, headers=[('WWW-Authenticate', '%s %s' % (scheme, base64.b64encode(reply or b'').decode('ascii')))])
            return False
        self.user, self.transport = str(self.ntlm.client_principal or 'LAB\\unknown'), 'ntlm'
        return True

    # ---- message encryption ----

    def is_encrypted(self) -> bool:
        return 'multipart/encrypted' in (self.headers.get('Content-Type') or '') and self.ntlm is not None and self.ntlm.complete

    def decrypt(self, body: bytes) -> bytes:
        parts = [p for p in body.split(BOUNDARY + b'\r\n') if p]
        if len(parts) < 2:
            raise ValueError('not an encrypted multipart body')
        payload = parts[1]
        if payload.endswith(BOUNDARY + b'--\r\n'):
            payload = payload[:-len(BOUNDARY + b'--\r\n')]
        payload = payload.replace(b'\tContent-Type: application/octet-stream\r\n', b'', 1)
        length = struct.unpack('<i', payload[:4])[0]
        return t.cast(bytes, self.ntlm.unwrap_winrm(payload[4:4 + length], payload[4 + length:]))

    def encrypt(self, data: bytes) -> bytes:
        wrapped = self.ntlm.wrap_winrm(data)
        return (BOUNDARY + b'\r\n\tContent-Type: ' + PROTOCOL.encode() + b'\r\n'
                b'\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=' + str(len(data)).encode() + b'\r\n'
                + BOUNDARY + b'\r\n\tContent-Type: application/octet-stream\r\n'
                + struct.pack('<i', len(wrapped.header)) + wrapped.header + wrapped.data + BOUNDARY + b'--\r\n')

    # ---- WS-Management ----

    def process(self, plain: bytes) -> None:
        encrypted = self.is_encrypted()
        try:
            request = wsman.parse_request(plain)
        except ValueError:
            self.answer(400)
            return
        faults = self.server.state.scenario['faults']
        if request.action != 'create' and faults.get('frozen'):
            # Fault `frozen`: the shell opened, then the endpoint stops answering anything (Delete included).
            self.server.state.count('frozen')
            self.hold()
            self.close_connection = True
            return
        drip = faults.get('slow_drip')
        if request.action != 'create' and drip:
            self.drip_s = float((drip if isinstance(drip, dict) else {}).get('interval_s', 3)) * self.server.state.time_scale
        host, port = (str(part) for part in self.server.server_address[:2])
        caller = Caller(self.user or '', self.transport, 'https' if self.server.tls else 'http', encrypted, '%s:%s' % (host, port))
        try:
            status, reply = self.server.winrs.handle(request, caller, len(plain))
        except ResetConnection:
            self.reset()
            return
        if encrypted:
            self.answer(status, self.encrypt(reply), ENCRYPTED_TYPE)
        else:
            self.answer(status, reply)


class Acceptor:
    """One thread accepting connections for every listening socket."""

    def __init__(self, servers: list[EndpointServer]) -> None:
        self.servers = servers
        self.selector = selectors.DefaultSelector()
        for server in servers:
            self.selector.register(server.socket, selectors.EVENT_READ, server)
        self.running = threading.Event()
        self.thread = threading.Thread(target=self.loop, name='lab-acceptor', daemon=True)

    def start(self) -> None:
        self.running.set()
        self.thread.start()

    def loop(self) -> None:
        while self.running.is_set():
            for key, dummy in self.selector.select(0.2):
                # BaseServer's private one-request step (what serve_forever calls), absent from typeshed.
                t.cast(EndpointServer, key.data)._handle_request_noblock()  # type: ignore[attr-defined]  # pylint: disable=protected-access

    def stop(self) -> None:
        for server in self.servers:
            server.stopping.set()
        self.running.clear()
        if self.thread.is_alive():
            self.thread.join(2)
        self.selector.close()
        for server in self.servers:
            server.server_close()
