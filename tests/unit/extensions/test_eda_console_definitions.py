# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The EDA event source against the lab's console API: expected events, none twice, restart-safe.

The last test runs the shipped rulebook with ansible-rulebook; it is skipped when ansible-rulebook
(not a requirement of the collection) or a Java runtime is not installed. Set TETRA_ANSIBLE_RULEBOOK to
the ansible-rulebook executable of another virtual environment to run it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.lab import Lab
from tests.paths import REPO_ROOT as REPO

SOURCE = os.path.join(REPO, 'extensions', 'eda', 'plugins', 'event_source', 'console_definitions.py')
RULEBOOK = os.path.join(REPO, 'extensions', 'eda', 'rulebooks', 'console_definitions.yml')
CATALOG = os.path.join(REPO, 'tests', 'lab', 'fleets', 'catalog.yml')
# The console says "failed" for the catalog hosts whose connector failed since its last success; two more have
# definitions older than 24 h (service stopped, host down four days); TETRA disabled / no connector report none.
EXPECTED_FAILED = {'stale_recovers', 'dns_failure', 'firewall_blocked', 'tls_interception', 'revocation_blocked',
                   'proxy_unreachable', 'proxy_auth', 'proxy_download', 'download_interrupted', 'disconnected',
                   'connector_725', 'system_context_revocation', 'french_locale'}
EXPECTED_AGED = {'service_stopped', 'host_down'}


def load_source():
    spec = importlib.util.spec_from_file_location('console_definitions_under_test', SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('eda-lab'))
    with Lab(CATALOG, workdir=workdir, time_scale=0.01) as running:
        yield running


def args_for(lab, state_file, **extra):
    return dict({'url': lab.api.url, 'client_id': lab.api.client_id, 'api_key': lab.api.api_key, 'state_file': str(state_file),
                 'once': True, 'interval': 0.05}, **extra)


def collect(source, args, seconds=None):
    """Run main() and return what it put on the queue (once=True: until it returns; else for `seconds`)."""
    async def go():
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(source.main(queue, args))
        if seconds is None:
            await task
        else:
            await asyncio.sleep(seconds)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        events = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return events
    return asyncio.run(go())


def names(events, reason=None):
    return [e['secure_endpoint']['hostname'] for e in events if reason is None or e['secure_endpoint']['reason'] == reason]


def test_expected_events_once_and_restart_safe(lab, tmp_path):
    source = load_source()
    state = tmp_path / 'state.json'
    first = collect(source, args_for(lab, state))
    assert sorted(names(first, 'failed')) == sorted(EXPECTED_FAILED)
    assert sorted(names(first, 'aged')) == sorted(EXPECTED_AGED)
    assert len(names(first)) == len(set(names(first)))
    event = next(e['secure_endpoint'] for e in first if e['secure_endpoint']['hostname'] == 'dns_failure')
    assert event['ansible_host'] == 'dns_failure' and event['inventory_hostname'] == 'dns_failure'
    assert event['definitions']['version'] == lab.state('dns_failure').tetra_version
    assert event['tetra_console']['internal_ips'] == [lab.address('dns_failure')]
    saved = json.loads(state.read_text())
    assert len(saved['emitted']) == len(first) and lab.api.api_key not in state.read_text()
    # a restart (a fresh module and process state, the same state file) emits nothing again
    assert collect(load_source(), args_for(lab, state)) == []


def test_long_running_polls_emit_nothing_twice(lab, tmp_path):
    events = collect(load_source(), args_for(lab, tmp_path / 'state.json', once=False, interval=0.05), seconds=1.5)
    assert len(events) == len(EXPECTED_FAILED | EXPECTED_AGED) and len(set(names(events))) == len(events)


def test_recovery_then_new_failure_is_a_new_event(lab, tmp_path):
    source = load_source()
    state_file = tmp_path / 'state.json'
    collect(source, args_for(lab, state_file))
    endpoint = lab.state('stale_recovers')
    saved = (endpoint.tetra_version, endpoint.last_success, endpoint.last_check)
    with endpoint.lock:
        endpoint.tetra_version, endpoint.last_success, endpoint.last_check = endpoint.latest_version, int(time.time()), int(time.time())
    deadline = time.time() + 10
    while time.time() < deadline:   # the console follows the endpoint after its lag (0.3 s here)
        collect(source, args_for(lab, state_file))
        if endpoint.agent_uuid not in json.loads(state_file.read_text())['emitted']:
            break
        time.sleep(0.1)
    assert endpoint.agent_uuid not in json.loads(state_file.read_text())['emitted']
    with endpoint.lock:   # fails again with a newer version: a new episode
        endpoint.latest_version += 1
        endpoint.last_check = int(time.time()) + 5
    try:
        deadline = time.time() + 10
        events = []
        while not events and time.time() < deadline:
            events = collect(source, args_for(lab, state_file))
            time.sleep(0.1)
        assert names(events) == ['stale_recovers']
        assert collect(source, args_for(lab, state_file)) == []
    finally:
        with endpoint.lock:
            endpoint.latest_version -= 1
            endpoint.tetra_version, endpoint.last_success, endpoint.last_check = saved


def test_api_errors(lab, tmp_path):
    source = load_source()
    with pytest.raises(Exception, match='authentication failed'):
        collect(source, dict(args_for(lab, tmp_path / 's.json'), api_key='wrong'))
    assert not (tmp_path / 's.json').exists()
    lab.api.fail_next(503, times=1)   # a long-running source survives a failing poll and emits at the next one
    events = collect(source, args_for(lab, tmp_path / 'l.json', once=False, interval=0.1), seconds=1.0)
    # (stale_recovers may still be current in the console view after the previous test: its lag)
    assert set(names(events)) >= (EXPECTED_FAILED | EXPECTED_AGED) - {'stale_recovers'}
    assert len(events) == len(set(names(events)))


def _rulebook_command():
    command = os.environ.get('TETRA_ANSIBLE_RULEBOOK') or shutil.which('ansible-rulebook')
    if not command or not os.path.exists(command):
        return None
    return command


@pytest.mark.skipif(_rulebook_command() is None or shutil.which('java') is None,
                    reason='ansible-rulebook and a Java runtime are optional (not in requirements); set TETRA_ANSIBLE_RULEBOOK')
def test_rulebook_runs_diagnose_for_the_events(lab, tmp_path):
    """The shipped rulebook, once, against the lab console inventory: one diagnose run per event host."""
    collections = tmp_path / 'collections' / 'ansible_collections' / 'secure_endpoint'
    collections.mkdir(parents=True)
    os.symlink(REPO, str(collections / 'tetra'))
    inventory = tmp_path / 'lab.computers.yml'
    from tests.lab.api import inventory_source
    inventory.write_text(inventory_source(lab.api, lab))
    variables = tmp_path / 'vars.yml'
    variables.write_text('tetra_eda_remediate: false\ntetra_eda_interval: 1\ntetra_eda_max_age_hours: 24\n'
                         'tetra_eda_state_file: %s\ntetra_eda_once: true\n' % (tmp_path / 'state.json'))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''), ANSIBLE_NOCOLOR='1',
               SECURE_ENDPOINT_API_HOST=lab.api.url, SECURE_ENDPOINT_CLIENT_ID=lab.api.client_id,
               SECURE_ENDPOINT_API_KEY=lab.api.api_key)
    process = subprocess.run([_rulebook_command(), '-r', RULEBOOK, '-i', str(inventory), '--vars', str(variables),
                              '-S', os.path.dirname(SOURCE), '--print-events'],
                             cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900, check=False)
    output = process.stdout + process.stderr
    (tmp_path / 'rulebook.log').write_text(output)
    assert process.returncode == 0, output[-4000:]
    assert len(json.loads((tmp_path / 'state.json').read_text())['emitted']) == len(EXPECTED_FAILED | EXPECTED_AGED)
    assert output.count('PLAY RECAP') == len(EXPECTED_FAILED | EXPECTED_AGED), output[-4000:]
