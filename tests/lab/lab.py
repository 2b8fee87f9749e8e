# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A running fleet: addresses, listeners, inventory, request log, per-host state (the Python API)."""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import typing as t

from .api import ConsoleAPI, inventory_source
from .certs import LabCertificates, make_certificates
from .httpd import Acceptor, Credentials, EndpointServer
from .scenario import EndpointState, Fleet, HostSpec, load_fleet
from .winrs import WinRS

HTTP_PORT = 5985
HTTPS_PORT = 5986
HOSTS_PER_BLOCK = 250
CONNECTIONS = ('winrm', 'psrp')


class RequestLog:
    """Every command as one JSON line, in memory and (optionally) in a file."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.entries: list[dict[str, t.Any]] = []
        self.lock = threading.Lock()
        if path:
            open(path, 'w', encoding='utf-8').close()

    def __call__(self, entry: dict[str, t.Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self.lock:
            self.entries.append(entry)
            if self.path:
                with open(self.path, 'a', encoding='utf-8') as handle:
                    handle.write(line + '\n')

    def select(self, host: str | None = None, action: str | None = None) -> list[dict[str, t.Any]]:
        with self.lock:
            return [e for e in self.entries if (host is None or e['host'] == host) and (action is None or e['action'] == action)]


def addresses_for(subnet: str, count: int) -> list[str]:
    """127.A.B -> 127.A.B.1 ... 127.A.B.250, then 127.A.(B+1).1 ..."""
    parts = [int(p) for p in subnet.split('.')]
    if len(parts) != 3 or parts[0] != 127 or not all(0 <= p <= 255 for p in parts):
        raise ValueError('subnet must look like 127.X.Y, got %r' % subnet)
    result = []
    for index in range(count):
        block = parts[2] + index // HOSTS_PER_BLOCK
        if block > 255:
            raise ValueError('subnet %s cannot hold %d endpoints' % (subnet, count))
        result.append('127.%d.%d.%d' % (parts[1], block, 1 + index % HOSTS_PER_BLOCK))
    return result


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def random_subnet(count: int, ports: tuple[int, ...] = (HTTP_PORT,)) -> str:
    """A 127.X.Y prefix whose addresses are free (parallel labs must not collide)."""
    blocks = 1 + (count - 1) // HOSTS_PER_BLOCK
    rng = random.SystemRandom()
    for dummy in range(200):
        subnet = '127.%d.%d' % (rng.randint(1, 254), rng.randint(0, 255 - blocks))
        if all(port_free(a, p) for a in addresses_for(subnet, count)[:3] for p in ports):
            return subnet
    raise RuntimeError('no free 127.x.y subnet found')


class Lab:
    """A fleet of simulated endpoints. Use as a context manager or call start()/stop()."""

    def __init__(self, fleet: str, workdir: str | None = None, subnet: str | None = None, https: bool = False,
                 transport: str | None = None, time_scale: float = 1.0, inventory: str | None = None,
                 log: str | None = None, connection: str = 'winrm', api_inventory: str | None = None) -> None:
        if connection not in CONNECTIONS:
            raise ValueError('connection must be one of %s, got %r' % (', '.join(CONNECTIONS), connection))
        self.fleet: Fleet = load_fleet(fleet)
        self.connection = connection
        self.workdir = workdir or tempfile.mkdtemp(prefix='tetra-lab-')
        os.makedirs(self.workdir, exist_ok=True)
        self.https = https
        self.transport = transport or self.fleet.transport
        self.time_scale = time_scale
        self.subnet = subnet
        self.inventory_path = inventory or os.path.join(self.workdir, 'inventory.ini')
        self.log = RequestLog(log or os.path.join(self.workdir, 'requests.jsonl'))
        self.states: dict[str, EndpointState] = {}
        self.servers: list[EndpointServer] = []
        self.acceptor: Acceptor | None = None
        self.certs: LabCertificates | None = None
        self.started = 0.0
        self.api: ConsoleAPI | None = None  # the console API (tests/lab/api.py), started with the fleet
        self.api_inventory_path = api_inventory

    # ---- lifecycle ----

    def start(self) -> 'Lab':
        ports = (HTTP_PORT, HTTPS_PORT) if self.https else (HTTP_PORT,)
        hosts = self.fleet.hosts
        self.subnet = self.subnet or random_subnet(len(hosts), ports)
        for spec, address in zip(hosts, addresses_for(self.subnet, len(hosts)), strict=True):
            spec.address = address
        self.started = time.time()
        self.states = {h.name: EndpointState(h, self.fleet.latest_version, self.started, self.time_scale) for h in hosts}
        credentials = Credentials(self.fleet.user, self.fleet.password)
        self.write_user_file(credentials)
        tls, binding = self.tls_context()
        try:
            for spec in hosts:
                self.servers.extend(self.listen(spec, credentials, tls, binding))
        except OSError:
            self.stop()
            raise
        self.acceptor = Acceptor(self.servers)
        self.acceptor.start()
        self.api = ConsoleAPI(self).start()
        self.write_inventory()
        if self.api_inventory_path:
            _write_atomic(self.api_inventory_path, inventory_source(self.api, self))
        return self

    def listen(self, spec: HostSpec, credentials: Credentials, tls: ssl.SSLContext | None,
               binding: bytes | None) -> list[EndpointServer]:
        if not spec.scenario['winrm']['listen']:
            return []
        winrs = WinRS(self.states[spec.name], self.log)
        servers = [EndpointServer((spec.address, HTTP_PORT), winrs, credentials)]
        if tls is not None:
            servers.append(EndpointServer((spec.address, HTTPS_PORT), winrs, credentials, tls, binding))
        return servers

    def tls_context(self) -> tuple[ssl.SSLContext | None, bytes | None]:
        if not self.https:
            return None, None
        names = [h.name for h in self.fleet.hosts]
        self.certs = make_certificates(self.workdir, [h.address for h in self.fleet.hosts], names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.cert_path, self.certs.key_path)
        return context, self.certs.channel_binding

    def write_user_file(self, credentials: Credentials) -> None:
        """NTLM_USER_FILE is process-wide and re-read per handshake."""
        path = os.path.join(self.workdir, 'ntlm-users.txt')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(credentials.user_file_lines())
        os.environ['NTLM_USER_FILE'] = path

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.acceptor is not None:
            self.acceptor.stop()
            self.acceptor = None
        else:
            for server in self.servers:
                server.server_close()
        self.servers = []

    def __enter__(self) -> 'Lab':
        return self.start()

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()

    # ---- inventory ----

    def host_vars(self, spec: HostSpec) -> dict[str, t.Any]:
        values: dict[str, t.Any] = {'ansible_host': spec.address, 'lab_scenario': spec.scenario_name}
        password = spec.scenario['winrm']['inventory_password']
        if password:
            values['ansible_password'] = password
        for key, value in spec.expect.items():
            values['lab_expect_%s' % key] = value
        return values

    def group_vars(self) -> dict[str, t.Any]:
        if self.connection == 'psrp':
            return self.psrp_group_vars()
        values: dict[str, t.Any] = {
            'ansible_connection': 'winrm', 'ansible_port': HTTPS_PORT if self.https else HTTP_PORT,
            'ansible_winrm_scheme': 'https' if self.https else 'http', 'ansible_winrm_transport': self.transport,
            'ansible_user': self.fleet.user, 'ansible_password': self.fleet.password,
            'ansible_winrm_message_encryption': 'auto', 'ansible_winrm_operation_timeout_sec': 20,
            'ansible_winrm_read_timeout_sec': 30, 'ansible_winrm_connection_timeout': 30,
        }
        if self.certs is not None:
            values['ansible_winrm_ca_trust_path'] = self.certs.ca_path
            values['ansible_winrm_server_cert_validation'] = 'validate'
        return values

    def psrp_group_vars(self) -> dict[str, t.Any]:
        """Ansible's psrp connection (variable names from its DOCUMENTATION)."""
        values: dict[str, t.Any] = {
            'ansible_connection': 'psrp', 'ansible_port': HTTPS_PORT if self.https else HTTP_PORT,
            'ansible_psrp_protocol': 'https' if self.https else 'http', 'ansible_psrp_auth': self.transport,
            'ansible_user': self.fleet.user, 'ansible_password': self.fleet.password,
            # pypsrp refuses Basic over HTTP unless message encryption is off (NTLM encrypts, HTTPS needs none).
            'ansible_psrp_message_encryption': 'never' if self.transport == 'basic' and not self.https else 'auto',
            'ansible_psrp_operation_timeout': 20, 'ansible_psrp_read_timeout': 30, 'ansible_psrp_connection_timeout': 30,
        }
        if self.certs is not None:
            values['ansible_psrp_cert_validation'] = 'validate'
            values['ansible_psrp_ca_cert'] = self.certs.ca_path
        return values

    def write_inventory(self) -> None:
        lines = ['# secure_endpoint.tetra lab: %s (%d endpoints, subnet %s)' % (self.fleet.path, len(self.fleet.hosts), self.subnet),
                 '[windows]']
        for spec in self.fleet.hosts:
            lines.append(' '.join([spec.name] + ['%s=%s' % (k, _ini(v)) for k, v in self.host_vars(spec).items()]))
        lines += ['', '[windows:vars]'] + ['%s=%s' % (k, _ini(v)) for k, v in self.group_vars().items()]
        partial = self.inventory_path + '.partial'
        with open(partial, 'w', encoding='utf-8') as handle:
            handle.write('\n'.join(lines) + '\n')
        os.replace(partial, self.inventory_path)

    # ---- queries for tests ----

    @property
    def hosts(self) -> dict[str, HostSpec]:
        return {h.name: h for h in self.fleet.hosts}

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def endpoint_url(self, host: str, https: bool | None = None) -> str:
        secure = self.https if https is None else https
        return '%s://%s:%d/wsman' % ('https' if secure else 'http', self.address(host), HTTPS_PORT if secure else HTTP_PORT)

    def state(self, host: str) -> EndpointState:
        return self.states[host]

    def requests(self, host: str | None = None, action: str | None = None) -> list[dict[str, t.Any]]:
        return self.log.select(host, action)

    @property
    def log_path(self) -> str | None:
        return self.log.path

    @property
    def ca_path(self) -> str | None:
        return self.certs.ca_path if self.certs else None

    def ready_line(self) -> str:
        listening = sum(1 for h in self.fleet.hosts if h.scenario['winrm']['listen'])
        return ('lab ready: %d endpoints (%d listening) on %s.*, ports %s, transport %s, inventory %s, log %s%s'
                % (len(self.fleet.hosts), listening, self.subnet, '5985+5986' if self.https else '5985', self.transport,
                   self.inventory_path, self.log.path, ', connection psrp' if self.connection == 'psrp' else '')
                + (', console API %s' % self.api.url if self.api else '')
                + (' (inventory source %s)' % self.api_inventory_path if self.api_inventory_path else ''))


def _write_atomic(path: str, text: str) -> None:
    with open(path + '.partial', 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.replace(path + '.partial', path)


def _ini(value: t.Any) -> str:
    text = str(value)
    if any(c in text for c in ' #;=\'"'):
        return "'%s'" % text.replace("'", "\\'")
    return text
