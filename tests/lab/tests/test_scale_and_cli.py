# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One process for 500 endpoints, 50 concurrent clients; the documented command line."""

from __future__ import annotations

import concurrent.futures
import configparser
import json
import signal
import subprocess
import sys
import typing as t

from tests.lab import random_subnet

from .helpers import command_line, request, run, session
from tests.paths import REPO_ROOT as REPO


def test_fifty_concurrent_connections_on_500_endpoints(tetra_lab_factory: t.Any) -> None:
    lab = tetra_lab_factory('scale500')
    assert len(lab.hosts) == 500
    hosts = list(lab.hosts)[::10]

    def one(host: str) -> int:
        out, dummy, rc = run(session(lab, host, 'ntlm'), command_line(request(sections=['install', 'files', 'dns'])))
        assert json.loads(out)['format'] == 1
        return rc

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(one, hosts))
    assert codes == [0] * 50
    assert {e['host'] for e in lab.requests()} == set(hosts)
    assert max(lab.state(h).counters['connections'] for h in hosts) >= 1


def test_serve_command_writes_inventory_and_stops_on_sigterm(tmp_path: t.Any) -> None:
    inventory, log = str(tmp_path / 'lab.ini'), str(tmp_path / 'requests.jsonl')
    subnet = random_subnet(25)
    proc = subprocess.Popen([sys.executable, '-m', 'tests.lab', 'serve', '--fleet', 'tests/lab/fleets/catalog.yml',
                             '--inventory', inventory, '--subnet', subnet, '--log', log, '--workdir', str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = proc.stdout.readline() if proc.stdout else ''
        assert ready.startswith('lab ready: 22 endpoints (21 listening) on %s.*' % subnet), ready
        parser = configparser.ConfigParser(allow_no_value=True, delimiters=('=',))
        parser.read(inventory)
        assert parser.get('windows:vars', 'ansible_connection') == 'winrm'
        out, dummy, rc = run(session_for(subnet), 'hostname')
        assert (out, rc) == (b'HEALTHY\r\n', 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    with open(log, encoding='utf-8') as handle:
        assert json.loads(handle.readline())['host'] == 'healthy'


def session_for(subnet: str) -> t.Any:
    import winrm  # pylint: disable=import-outside-toplevel
    return winrm.Protocol('http://%s.1:5985/wsman' % subnet, transport='ntlm', username='ansible', password='Lab-Passw0rd!')
