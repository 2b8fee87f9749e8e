# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The lab's Secure Endpoint console API (v1 subset) for its fleet, on its own loopback port.

``GET /v1/version``, ``GET /v1/computers`` (``limit`` up to 500, ``offset``, ``hostname[]``,
``group_guid[]``; pages linked by ``metadata.links.next``) and ``GET /v1/computers/{guid}``, with Basic
authentication (401 "Unknown API key or Client ID") and a per-client rate limit (429 with
``X-RateLimit-Limit/-Remaining/-Reset/-ResetDate`` on every answer), as in
shared/reference/secure-endpoint.md, section 7.

Each computer is the console's view of one lab endpoint, consistent with its scenario: same host name,
the lab address as internal IP, the connector GUID, version, policy, and the endpoint's TETRA version and
last successful update as ``av_update_definitions`` (status "Definitions Up To Date" when current,
"Definitions Update Failed" when the connector's attempts since its last success failed: that string is
UNCONFIRMED). A stopped service, a disconnected connector or a host that is down is seen last when it
stopped talking to the cloud; no connector or TETRA disabled: no ``av_update_definitions``. Changes on
the endpoint (a forced update) reach the console after ``console.lag_s`` lab seconds, as the real console
lags the connector. A scenario's optional ``console:`` mapping overrides any of it (docs/lab.md).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import socketserver
import threading
import time
import typing as t
from urllib.parse import parse_qs, urlencode, urlsplit

from .scenario import EndpointState

MAX_LIMIT = 500
API_VERSION = 'v1.2.0'
DEFAULT_CLIENT_ID = 'lab-client-0001'
DEFAULT_API_KEY = 'lab-api-key-5e3c9d'
STATUS_CURRENT = 'Definitions Up To Date'
STATUS_FAILED = 'Definitions Update Failed'
DEFAULT_GROUP = {'guid': '2d1b9c4e-6a53-4f8b-9e2d-7c41a0f5b3e1', 'name': 'Windows Workstations'}


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S+00:00')


def _guid(*parts: str) -> str:
    digest = hashlib.md5('/'.join(parts).encode()).hexdigest()
    return '%s-%s-%s-%s-%s' % (digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32])


class ConsoleView:
    """What the console shows for one endpoint; follows the endpoint's state with a lag."""

    def __init__(self, state: EndpointState, started: float, time_scale: float) -> None:
        self.state = state
        self.started = started
        self.overrides: dict[str, t.Any] = dict(state.scenario.get('console') or {})
        self.lag = float(self.overrides.get('lag_s', 30)) * time_scale
        self.reported = self._endpoint()
        self.changed_at: float | None = None

    def _endpoint(self) -> tuple[int, int, int]:
        with self.state.lock:
            return (self.state.tetra_version, self.state.last_success, self.state.last_check)

    def definitions(self, now: float) -> tuple[int, int, int]:
        """The endpoint's (version, last_success, last_check) as the console knows them."""
        self.state.settle(now)
        current = self._endpoint()
        if current == self.reported:
            self.changed_at = None
        elif self.changed_at is None:
            self.changed_at = now
        elif now - self.changed_at >= self.lag:
            self.reported, self.changed_at = current, None
        return self.reported

    def offline_since(self) -> float | None:
        """When the computer stopped talking to the cloud (None: it talks now)."""
        scenario = self.state.scenario
        if 'last_seen_age_h' in self.overrides:
            return self.started - float(self.overrides['last_seen_age_h']) * 3600
        if not scenario['install']['installed']:
            return self.started - 10 * 24 * 3600          # uninstalled ten days ago
        if not scenario['winrm']['listen']:
            return self.started - 4 * 24 * 3600           # switched off four days ago
        if str(scenario['install']['service']['state']).lower() != 'running':
            return float(self.state.last_check)          # the service stopped after its last check
        if not scenario['connector']['connected']:
            return float(self.state.last_success)
        return None

    def record(self, spec_name: str, address: str, index: int, now: float) -> dict[str, t.Any]:
        scenario = self.state.scenario
        version, last_success, last_check = self.definitions(now)
        offline = self.offline_since()
        last_seen = offline if offline is not None else now - 300
        install, host, connector = scenario['install'], scenario['host'], scenario['connector']
        group = self.overrides.get('group') or DEFAULT_GROUP
        if isinstance(group, str):
            group = {'guid': _guid('group', group), 'name': group}
        record: dict[str, t.Any] = {
            'connector_guid': self.state.agent_uuid,
            'hostname': spec_name,
            'active': True,
            'links': {},
            'connector_version': install['version'],
            'operating_system': str(host['os_caption']).replace('Microsoft ', '', 1),
            'os_version': host['os_build'],
            'internal_ips': [address],
            'external_ip': '203.0.113.%d' % (1 + index % 250),
            'group_guid': group['guid'],
            'install_date': iso(self.started - 400 * 24 * 3600),
            'is_compromised': False,
            'demo': False,
            'network_addresses': [{'mac': '00:15:5d:%02x:%02x:%02x' % (index // 65536 % 256, index // 256 % 256, index % 256),
                                   'ip': address}],
            'policy': {'guid': connector['policy_uuid'], 'name': connector['policy_name']},
            'groups': [group],
            'last_seen': iso(last_seen),
            'faults': list(self.overrides.get('faults') or []),
            'isolation': {'available': True, 'status': 'isolated' if install.get('isolated') else 'not_isolated'},
            'orbital': {'status': 'disabled'},
        }
        if install.get('reboot_pending'):
            record['faults'].append({'name': 'Reboot Pending', 'severity': 'major'})
        tetra_active = install['installed'] and int(scenario['policy']['tetra_enable'] or 0) == 1
        if tetra_active:
            updated = last_success
            if offline is not None and updated > offline:
                updated = int(offline - 1800)
            failed = version < self.state.latest_version and last_check > last_success
            definitions = {'status': STATUS_FAILED if failed else STATUS_CURRENT, 'detection_engine': 'TETRA 64 bit',
                           'version': str(version), 'updated_at': iso(updated)}
            definitions.update(self.overrides.get('definitions') or {})
            record['av_update_definitions'] = definitions
        return record


class ConsoleAPI:
    """The console API of one lab (start()/stop(); ``url``, ``client_id``, ``api_key``)."""

    def __init__(self, lab: t.Any, client_id: str = DEFAULT_CLIENT_ID, api_key: str = DEFAULT_API_KEY,
                 address: str = '127.0.0.1', port: int = 0, rate_limit: int = 3000, rate_window_s: float = 3600.0) -> None:
        self.lab = lab
        self.client_id = client_id
        self.api_key = api_key
        self.address = address
        self.port = port
        self.rate_limit = rate_limit
        self.rate_window_s = rate_window_s
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[float, int]] = {}
        self.log: list[dict[str, t.Any]] = []
        self.fail_plan: list[int] = []
        self.server: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.views: dict[str, ConsoleView] = {}

    # ---- lifecycle ----

    def start(self) -> 'ConsoleAPI':
        self.views = {name: ConsoleView(state, self.lab.started, self.lab.time_scale) for name, state in self.lab.states.items()}
        api = self

        class Handler(APIHandler):
            console = api

        self.server = _Server((self.address, self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.2}, name='lab-api', daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return 'http://%s:%d' % (self.address, self.port)

    # ---- test hooks ----

    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` authenticated requests get `status` (500, 502, 503...) instead of their answer."""
        with self.lock:
            self.fail_plan.extend([status] * times)

    def set_rate_limit(self, limit: int, window_s: float) -> None:
        with self.lock:
            self.rate_limit, self.rate_window_s = limit, window_s
            self.windows.clear()

    def requests(self) -> list[dict[str, t.Any]]:
        with self.lock:
            return list(self.log)

    # ---- data ----

    def computers(self, now: float | None = None) -> list[dict[str, t.Any]]:
        now = time.time() if now is None else now
        return [self.views[spec.name].record(spec.name, spec.address, index, now) for index, spec in enumerate(self.lab.fleet.hosts)]

    def rate(self, client: str, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets) for one more request."""
        with self.lock:
            start, count = self.windows.get(client, (now, 0))
            if now - start >= self.rate_window_s:
                start, count = now, 0
            allowed = count < self.rate_limit
            if allowed:
                count += 1
            self.windows[client] = (start, count)
            return allowed, max(self.rate_limit - count, 0), max(self.rate_window_s - (now - start), 0.0)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class APIHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    console: ConsoleAPI

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        pass

    def version_string(self) -> str:
        return 'nginx'

    def send_json(self, status: int, data: t.Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status: int, description: str, details: list[str], headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {'version': API_VERSION, 'metadata': {'links': {'self': self.self_url()}},
                                'errors': [{'error_code': status, 'description': description, 'details': details}], 'data': {}},
                       headers)

    def self_url(self) -> str:
        return self.console.url + self.path

    def client(self) -> str | None:
        header = self.headers.get('Authorization') or ''
        if not header.lower().startswith('basic '):
            return None
        try:
            user, _sep, key = base64.b64decode(header[6:].strip()).decode('utf-8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return None
        return user if user == self.console.client_id and key == self.console.api_key else None

    def do_GET(self) -> None:  # noqa: N802  (BaseHTTPRequestHandler's naming)
        console = self.console
        now = time.time()
        parts = urlsplit(self.path)
        entry: dict[str, t.Any] = {'path': parts.path, 'query': parts.query, 'time': now}
        client = self.client()
        entry['authenticated'] = client is not None
        if client is None:
            entry['status'] = 401
            console.log.append(entry)
            self.error(401, 'Unauthorized', ['Unknown API key or Client ID'], {'WWW-Authenticate': 'Basic realm="api"'})
            return
        allowed, remaining, reset = console.rate(client, now)
        headers = {'X-RateLimit-Limit': str(console.rate_limit), 'X-RateLimit-Remaining': str(remaining),
                   'X-RateLimit-Reset': str(int(reset + 0.999)), 'X-RateLimit-ResetDate': iso(now + reset).replace('+00:00', 'Z')}
        with console.lock:
            injected = console.fail_plan.pop(0) if console.fail_plan and allowed else None
        entry['status'] = 429 if not allowed else injected or 200
        console.log.append(entry)
        if not allowed:
            self.error(429, 'Too Many Requests', ['API rate limit exceeded'], headers)
            return
        if injected:
            self.error(injected, 'Server Error', ['injected by the lab'], headers)
            return
        if parts.path == '/v1/version':
            self.send_json(200, {'version': API_VERSION, 'metadata': {'links': {'self': self.self_url()}}, 'data': {}}, headers)
        elif parts.path == '/v1/computers':
            self.computers(parse_qs(parts.query), now, headers)
        elif parts.path.startswith('/v1/computers/'):
            guid = parts.path.rsplit('/', 1)[1]
            found = [r for r in console.computers(now) if r['connector_guid'] == guid]
            if not found:
                self.error(404, 'Not Found', ['Computer not found'], headers)
            else:
                self.send_json(200, {'version': API_VERSION, 'metadata': {'links': {'self': self.self_url()}}, 'data': found[0]}, headers)
        else:
            self.error(404, 'Not Found', ['Unknown path'], headers)

    def computers(self, query: dict[str, list[str]], now: float, headers: dict[str, str]) -> None:
        try:
            limit = min(int((query.get('limit') or ['500'])[0]), MAX_LIMIT)
            offset = int((query.get('offset') or ['0'])[0])
            if limit < 1 or offset < 0:
                raise ValueError
        except ValueError:
            self.error(400, 'Bad Request', ['limit and offset must be positive integers'], headers)
            return
        records = self.console.computers(now)
        names = [n.lower() for n in query.get('hostname[]', []) + query.get('hostname', [])]
        if names:
            records = [r for r in records if any(n in r['hostname'].lower() for n in names)]
        guids = query.get('group_guid[]', []) + query.get('group_guid', [])
        if guids:
            records = [r for r in records if r['group_guid'] in guids]
        page = records[offset:offset + limit]
        base = {k: v for k, v in query.items() if k not in ('limit', 'offset')}
        links = {'self': self.self_url()}
        if offset + limit < len(records):
            links['next'] = '%s/v1/computers?%s' % (self.console.url, urlencode(dict(base, limit=limit, offset=offset + limit), doseq=True))
        if offset > 0:
            links['prev'] = '%s/v1/computers?%s' % (self.console.url, urlencode(dict(base, limit=limit, offset=max(offset - limit, 0)), doseq=True))
        self.send_json(200, {
            'version': API_VERSION,
            'metadata': {'links': links, 'results': {'total': len(records), 'current_item_count': len(page), 'index': offset,
                                                     'items_per_page': limit}},
            'data': page,
        }, headers)


def inventory_source(api: ConsoleAPI, lab: t.Any) -> str:
    """A secure_endpoint.tetra.computers inventory source for this lab (YAML text)."""
    connection = {'ansible_%s' % k if not k.startswith('ansible_') else k: v for k, v in lab.group_vars().items()}
    compose = {name: json.dumps(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(str(value))
               for name, value in connection.items()}
    lines = ['# secure_endpoint.tetra lab: the console API of %s (%d computers) at %s' % (lab.fleet.path, len(lab.fleet.hosts), api.url),
             '# ansible-inventory -i THIS_FILE --list; ansible-playbook -i THIS_FILE playbooks/diagnose.yml -l definitions_failed',
             'plugin: secure_endpoint.tetra.computers',
             'url: %s' % api.url,
             'client_id: %s' % json.dumps(api.client_id),
             'api_key: %s' % json.dumps(api.api_key),
             'ansible_host_preference: [internal_ip]',
             'compose:']
    wrong = {spec.name: spec.scenario['winrm']['inventory_password'] for spec in lab.fleet.hosts if spec.scenario['winrm']['inventory_password']}
    if wrong and 'ansible_password' in compose:
        compose['ansible_password'] = '%s.get(tetra_console.hostname, %s)' % (json.dumps(wrong), compose['ansible_password'])
    lines += ['  %s: %s' % (name, json.dumps(expression)) for name, expression in compose.items()]
    return '\n'.join(lines) + '\n'
