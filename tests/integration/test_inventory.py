# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""From the console to the fix, against the lab: the secure_endpoint.tetra.computers inventory over the lab's
console API, then diagnose.yml limited to the hosts whose definitions failed, with the console state in the verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import served_lab  # pylint: disable=import-error  # rootdir-style test folder
from tests.paths import REPO_ROOT

CATALOG = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'catalog.yml')
VENV_BIN = os.path.dirname(sys.executable)

FAILED = {'stale_recovers', 'dns_failure', 'firewall_blocked', 'tls_interception', 'revocation_blocked', 'proxy_unreachable',
          'proxy_auth', 'proxy_download', 'download_interrupted', 'disconnected', 'connector_725', 'system_context_revocation',
          'french_locale'}


@pytest.fixture(scope='module')
def console_lab(ansible_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp('console-lab')
    source = folder / 'lab.computers.yml'
    with served_lab(CATALOG, folder, ansible_env, '--api-inventory', str(source), '--time-scale', '0.2',
                    wait_for='lab.computers.yml') as inventory:
        yield {'source': str(source), 'inventory': inventory, 'folder': folder}


def plain(value):
    """ansible-core 2.19 marks API-sourced text as unsafe in --list ({'__ansible_unsafe': text}): never templated."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def lab_addresses(ini: str) -> dict[str, str]:
    found = {}
    with open(ini, encoding='utf-8') as handle:
        for line in handle:
            parts = line.split()
            if len(parts) > 1 and parts[1].startswith('ansible_host='):
                found[parts[0]] = parts[1].split('=', 1)[1]
    return found


def test_inventory_lists_every_endpoint_with_groups(console_lab, ansible_env):
    done = subprocess.run([os.path.join(VENV_BIN, 'ansible-inventory'), '-i', console_lab['source'], '--list'],
                          cwd=REPO_ROOT, env=ansible_env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    hostvars = plain(listed['_meta']['hostvars'])
    addresses = lab_addresses(console_lab['inventory'])
    fleet = [host['name'] for host in yaml.safe_load(open(CATALOG, encoding='utf-8'))['hosts']]
    assert sorted(hostvars) == sorted(fleet)
    assert {name: hostvars[name]['ansible_host'] for name in fleet} == addresses
    assert set(listed['definitions_failed']['hosts']) == FAILED
    assert set(listed['windows']['hosts']) == set(fleet)
    assert {'healthy', 'ampcli_missing', 'policy_unreadable'} <= set(listed['definitions_current']['hosts'])
    assert set(listed['definitions_unknown']['hosts']) == {'tetra_disabled', 'not_installed'}
    assert set(listed['console_offline']['hosts']) == {'host_down', 'not_installed'}
    assert hostvars['dns_failure']['tetra_console']['definitions']['state'] == 'failed'
    config = yaml.safe_load(open(console_lab['source'], encoding='utf-8'))
    assert config['api_key'] not in done.stdout and config['api_key'] not in done.stderr


def test_diagnose_runs_on_exactly_the_failed_group(console_lab, ansible_env, run_playbook):
    report_dir = str(console_lab['folder'] / 'report-failed')
    done = run_playbook(['-i', console_lab['source'], 'playbooks/diagnose.yml', '-l', 'definitions_failed', '-f', '25',
                         '-e', 'tetra_latest_version=90606', '-e', 'tetra_report_dir=%s' % report_dir,
                         '-e', '{"tetra_report_formats": ["json"]}'], ansible_env, 'inventory-diagnose-failed.log')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with open(os.path.join(report_dir, 'report.json'), encoding='utf-8') as handle:
        records = {record['host']: record for record in json.load(handle)['hosts']}
    assert set(records) == FAILED
    # every verdict carries the console's view
    assert all(any(line.startswith('console: ') for line in record['evidence']) for record in records.values())
    # the endpoint's own blocking cause stays primary; the console's recent last seen corroborates it
    assert records['dns_failure']['cause'] == 'dns_resolution_failed'
    assert 'console_update_gap' in [s['cause'] for s in records['dns_failure']['secondary']]
    # no blocking cause: the console's gap between last seen and definitions is the cause
    assert records['stale_recovers']['cause'] == 'console_update_gap'
    assert records['stale_recovers']['status'] == 'stale'


def test_offline_host_is_said_offline(console_lab, ansible_env, run_playbook):
    report_dir = str(console_lab['folder'] / 'report-offline')
    done = run_playbook(['-i', console_lab['source'], 'playbooks/diagnose.yml', '-l', 'host_down', '-e', 'tetra_latest_version=90606',
                         '-e', 'tetra_report_dir=%s' % report_dir, '-e', '{"tetra_report_formats": ["json"]}'],
                        ansible_env, 'inventory-diagnose-offline.log')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with open(os.path.join(report_dir, 'report.json'), encoding='utf-8') as handle:
        record = json.load(handle)['hosts'][0]
    assert record['host'] == 'host_down' and record['status'] == 'unreachable'
    assert 'offline (not a TETRA problem)' in ' '.join(record['evidence'])
