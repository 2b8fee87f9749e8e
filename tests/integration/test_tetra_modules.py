# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The endpoint modules through Ansible's real winrm connection against the lab catalog.

Ad hoc posture on every scenario host; one endpoint command per host for a diagnosis (from the lab's
request log); hostile values rejected before anything reaches an endpoint; analyze.yml reproducing
every verdict from the saved evidence without contacting an endpoint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.lab.pytest_plugin import tetra_lab_factory  # noqa: F401  pylint: disable=unused-import
from tests.paths import REPO_ROOT

UNREACHABLE = {'wrong_password', 'host_down'}


def run(args: list[str], env: dict[str, str], log_name: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    out_dir = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, log_name), 'w', encoding='utf-8') as handle:
        handle.write(result.stdout + '\n--- stderr ---\n' + result.stderr)
    return result


def adhoc_results(stdout: str) -> dict[str, tuple[str, dict]]:
    """host -> (state, result) from `ansible ... -o` one-line output."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r'^(\S+) \| (\w+)!? => (\{.*\})$', line) or re.match(r'^(\S+) \| (\w+)!?: (.*)$', line)
        if match:
            body = match.group(3)
            found[match.group(1)] = (match.group(2), json.loads(body) if body.startswith('{') else {'msg': body})
    return found


@pytest.fixture
def catalog(tetra_lab_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    return tetra_lab_factory('catalog')


def test_adhoc_posture_answers_for_every_scenario_host(catalog, ansible_env):  # pylint: disable=redefined-outer-name
    result = run(['ansible', 'windows', '-i', catalog.inventory_path, '-o', '-m', 'secure_endpoint.tetra.tetra_posture'],
                 ansible_env, 'adhoc-posture.log')
    rows = adhoc_results(result.stdout)
    assert set(rows) == set(catalog.hosts), result.stdout + result.stderr
    for host, (state, body) in rows.items():
        if host in UNREACHABLE:
            assert state == 'UNREACHABLE', (host, body)
            continue
        if host == 'garbage_output':
            assert state == 'FAILED' and 'did not return one JSON document' in body['msg']
            continue
        assert state == 'SUCCESS', (host, body)
        if host == 'not_installed':
            assert body['installed'] is False
        else:
            assert body['installed'] is True and isinstance(body['tetra_version'], int), (host, body)
    assert 'authentication failed' in rows['wrong_password'][1]['msg']
    assert 'Connection refused' in rows['host_down'][1]['msg']


def test_a_diagnosis_is_one_command_per_host_and_replays_offline(catalog, ansible_env, tmp_path):  # pylint: disable=redefined-outer-name
    evidence, live_report, replay_report = tmp_path / 'evidence', tmp_path / 'live', tmp_path / 'replay'
    live = run(['ansible-playbook', '-i', catalog.inventory_path, 'playbooks/diagnose.yml', '-e', 'tetra_latest_fetch=false',
                '-e', 'tetra_evidence_dir=%s' % evidence, '-e', 'tetra_report_dir=%s' % live_report], ansible_env, 'diagnose-live.log')
    assert live.returncode == 0, live.stdout[-3000:] + live.stderr[-2000:]
    for host in set(catalog.hosts) - UNREACHABLE:
        commands = catalog.requests(host)
        assert len(commands) == 1, (host, [c.get('request', {}).get('action') for c in commands])
    count_before = len(catalog.requests())
    replay = run(['ansible-playbook', 'playbooks/analyze.yml', '-e', 'evidence_dir=%s' % evidence, '-e', 'tetra_report_dir=%s' % replay_report],
                 ansible_env, 'analyze-replay.log')
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-2000:]
    assert len(catalog.requests()) == count_before, 'analyze.yml contacted an endpoint'
    live_rows = {r['host']: r for r in json.loads((live_report / 'report.json').read_text())['hosts']}
    replay_rows = {r['host']: r for r in json.loads((replay_report / 'report.json').read_text())['hosts']}
    assert set(replay_rows) == set(live_rows) - UNREACHABLE
    for host, row in replay_rows.items():
        assert (row['status'], row['cause'], row['evidence']) == (live_rows[host]['status'], live_rows[host]['cause'], live_rows[host]['evidence']), host


@pytest.mark.parametrize('option, value', [
    ('update_server', "tetra-defs.amp.cisco.com'; Remove-Item C:\\ -Recurse; '"),
    ('update_server', '$(Invoke-Expression whoami)'),
    ('proxy_server', 'proxy.example\nStop-Service CiscoAMP'),
    ('proxy_server', 'proxy.example;calc.exe'),
])
def test_hostile_values_never_reach_an_endpoint(catalog, ansible_env, option, value):  # pylint: disable=redefined-outer-name
    result = run(['ansible', 'healthy', '-i', catalog.inventory_path, '-o', '-m', 'secure_endpoint.tetra.tetra_diagnose',
                  '-a', json.dumps({option: value})], ansible_env, 'hostile-%s.log' % option)
    assert 'must be a DNS host name' in result.stdout, result.stdout + result.stderr
    assert catalog.requests('healthy') == []


def test_request_data_travels_as_data(catalog, ansible_env):  # pylint: disable=redefined-outer-name
    result = run(['ansible', 'healthy', '-i', catalog.inventory_path, '-o', '-m', 'secure_endpoint.tetra.tetra_resolve',
                  '-a', json.dumps({'update_server': 'tetra-defs.eu.amp.cisco.com', 'context': 'user'})], ansible_env, 'resolve-eu.log')
    assert 'SUCCESS' in result.stdout, result.stdout + result.stderr
    (entry,) = catalog.requests('healthy')
    assert entry['request']['update_server'] == 'tetra-defs.eu.amp.cisco.com'
    assert 'tetra-defs.eu.amp.cisco.com' not in json.dumps(entry.get('script', '')) + json.dumps(entry.get('stdin', ''))


def test_module_defaults_for_the_action_group_reach_the_endpoint_request(catalog, ansible_env, tmp_path):  # pylint: disable=redefined-outer-name
    play = tmp_path / 'defaults.yml'
    play.write_text('''
- hosts: healthy
  gather_facts: false
  module_defaults:
    group/secure_endpoint.tetra.tetra:
      deadline: 120
  tasks:
    - secure_endpoint.tetra.tetra_posture:
    - secure_endpoint.tetra.tetra_forceupdate:
      check_mode: true
''')
    result = run(['ansible-playbook', '-i', catalog.inventory_path, str(play)], ansible_env, 'module-defaults.log')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    deadlines = {entry['request']['deadline_s'] for entry in catalog.requests('healthy')}
    assert deadlines == {120}
    assert not catalog.requests('healthy', action='forceupdate')
