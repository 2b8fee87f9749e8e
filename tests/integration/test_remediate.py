# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remediate.yml, collect_support.yml and tetra_forceupdate against the endpoint lab.

The lab runs in this process (``tests.lab.lab.Lab``), so each test reads its request log and the
endpoints' state directly: which actions reached which host, whether debug logging and the capture
are still running. Each module-scoped lab is this file's own, because remediation changes endpoints
and the diagnose tests share the session's catalog lab.

Order matters inside the catalog lab: check mode first (nothing may change), then the real run, then
the second run (nothing may change again).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import typing as t

import pytest
import yaml
from tests.paths import REPO_ROOT

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
VENV_BIN = os.path.dirname(sys.executable)
CATALOG = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'catalog.yml')
SCENARIOS = os.path.join(REPO_ROOT, 'tests', 'lab', 'scenarios', 'catalog.yml')
REMEDIATE = 'playbooks/remediate.yml'
COLLECT = 'playbooks/collect_support.yml'
RECAP = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    return {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'unreachable': int(m.group(4)), 'failed': int(m.group(5))}
            for m in RECAP.finditer(stdout)}


def start_lab(fleet: str, folder: str, time_scale: float = 1.0) -> t.Any:
    from tests.lab.lab import Lab  # pylint: disable=import-outside-toplevel
    lab = Lab(fleet, workdir=folder, inventory=os.path.join(folder, 'lab.ini'), time_scale=time_scale)
    return lab.start()


def hosts_with(lab: t.Any, action: str) -> set[str]:
    return {entry['host'] for entry in lab.requests(action=action)}


@pytest.fixture(scope='module')
def catalog_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    lab = start_lab(CATALOG, str(tmp_path_factory.mktemp('remediate-lab')))
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope='module')
def latest(catalog_lab: t.Any) -> int:
    return catalog_lab.fleet.latest_version


def remediable_hosts(catalog_lab: t.Any) -> set[str]:
    """Hosts whose expected verdict a forced update can fix (docs/causes.md)."""
    return {h.name for h in catalog_lab.fleet.hosts if h.expect.get('cause') in ('stale_definitions', 'intermittent_connectivity', 'download_interrupted')}


def run_remediate(run_playbook: t.Callable[..., t.Any], env: dict[str, str], lab: t.Any, report: str, log: str,
                  *extra: str) -> tuple[t.Any, dict[str, t.Any]]:
    variables = json.dumps({'tetra_latest_version': lab.fleet.latest_version, 'tetra_report_dir': report, 'tetra_serial': '50%',
                            'tetra_forceupdate_poll_interval': 2, 'tetra_forceupdate_timeout': 60})
    done = run_playbook(['-i', lab.inventory_path, REMEDIATE, '-e', variables] + list(extra), env, log)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with open(os.path.join(report, 'remediation.json'), encoding='utf-8') as handle:
        return done, json.load(handle)


def test_check_mode_runs_no_forced_update(catalog_lab, ansible_env, run_playbook, tmp_path):
    versions = {name: catalog_lab.state(name).snapshot()['tetra_version'] for name in catalog_lab.hosts}
    done, report = run_remediate(run_playbook, ansible_env, catalog_lab, str(tmp_path / 'check'), 'remediate-check.log', '--check')
    assert hosts_with(catalog_lab, 'forceupdate') == set()
    assert hosts_with(catalog_lab, 'support_start') == set()
    assert {name: catalog_lab.state(name).snapshot()['tetra_version'] for name in catalog_lab.hosts} == versions
    assert report['summary']['check_mode'] is True and report['summary']['fixed'] == []
    planned = {r['host'] for r in report['hosts'] if r['plan'] == 'forceupdate'}
    assert planned == remediable_hosts(catalog_lab)
    for record in report['hosts']:
        if record['plan'] == 'forceupdate':
            assert record['forceupdate']['outcome'] == 'check_mode'
    assert all(counts['failed'] == 0 for counts in recap(done.stdout).values())


def test_remediate_fixes_every_remediable_host_and_touches_no_other(catalog_lab, ansible_env, run_playbook, tmp_path, latest):
    done, report = run_remediate(run_playbook, ansible_env, catalog_lab, str(tmp_path / 'run1'), 'remediate-run1.log')
    remediable = remediable_hosts(catalog_lab)
    assert 'stale_recovers' in remediable
    assert hosts_with(catalog_lab, 'forceupdate') == remediable
    records = {r['host']: r for r in report['hosts']}
    assert set(records) == set(catalog_lab.hosts)
    for name in remediable:
        record = records[name]
        assert record['fixed'] is True and record['after']['status'] == 'ok', record
        forced = record['forceupdate']
        assert forced['outcome'] == 'version_advanced' and forced['changed'] is True
        assert forced['version_before'] < forced['version_after'] == latest
        assert record['before']['tetra'] == forced['version_before'] and record['after']['tetra'] == latest
        assert catalog_lab.state(name).snapshot()['tetra_version'] == latest
    for name, record in records.items():
        if name in remediable:
            continue
        assert record['forceupdate'] is None and record['fixed'] is False
        assert catalog_lab.state(name).snapshot()['counters']['forceupdates'] == 0
        if record['before']['status'] != 'ok':
            assert record['team'] in ('network', 'proxy', 'policy', 'endpoint'), record
            assert record['action_needed'] or record['plan'] == 'unreachable'
    assert records['proxy_auth']['team'] == 'proxy' and records['tetra_disabled']['team'] == 'policy'
    assert records['revocation_blocked']['team'] == 'network' and 'identrust' in records['revocation_blocked']['action_needed']
    counts = recap(done.stdout)
    assert {name for name, c in counts.items() if c['changed']} == remediable
    assert os.path.exists(str(tmp_path / 'run1' / 'report.html'))
    with open(str(tmp_path / 'run1' / 'report.json'), encoding='utf-8') as handle:
        fleet = json.load(handle)
    assert 'stale_recovers' in json.dumps(fleet)


def test_second_run_changes_nothing(catalog_lab, ansible_env, run_playbook, tmp_path):
    before = len(catalog_lab.requests(action='forceupdate'))
    done, report = run_remediate(run_playbook, ansible_env, catalog_lab, str(tmp_path / 'run2'), 'remediate-run2.log')
    assert len(catalog_lab.requests(action='forceupdate')) == before
    assert all(counts['changed'] == 0 and counts['failed'] == 0 for counts in recap(done.stdout).values()), recap(done.stdout)
    assert report['summary']['forced'] == []
    assert {r['host'] for r in report['hosts'] if r['before']['status'] == 'ok'} >= {'stale_recovers', 'download_interrupted', 'healthy'}


def verify_bundle(folder: str) -> dict[str, t.Any]:
    with open(os.path.join(folder, 'manifest.json'), encoding='utf-8') as handle:
        manifest = json.load(handle)
    assert manifest['files'], manifest
    for entry in manifest['files']:
        with open(os.path.join(folder, entry['name']), 'rb') as handle:
            data = handle.read()
        assert len(data) == entry['size'] and hashlib.sha256(data).hexdigest() == entry['sha256'] and entry['verified']
    return manifest


def test_collect_support_returns_a_bundle_with_a_manifest(catalog_lab, ansible_env, run_playbook, tmp_path):
    dest = str(tmp_path / 'support')
    done = run_playbook(['-i', catalog_lab.inventory_path, COLLECT, '-l', 'revocation_blocked', '-e', 'tetra_support_wait=1',
                         '-e', 'tetra_support_dest=%s' % dest], ansible_env, 'collect-support.log')
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = verify_bundle(os.path.join(dest, 'revocation_blocked'))
    names = [f['name'] for f in manifest['files']]
    assert any(n.startswith('CiscoAMP_Support_Tool') and n.endswith('.zip') for n in names) and 'capture.etl' in names
    assert manifest['host'] == 'revocation_blocked' and manifest['cleanup']['debug_logging_stopped'] and manifest['cleanup']['capture_stopped']
    state = catalog_lab.state('revocation_blocked').snapshot()
    assert state['debug_logging'] is False and state['capture_running'] is False
    actions = [e['action'] for e in catalog_lab.requests(host='revocation_blocked')]
    assert actions.index('support_start') < actions.index('support_finish') < actions.index('read_file') < actions.index('support_cleanup')
    assert not [name for name in state['files'] if 'tetra-support-' in name], 'the work folder was left on the endpoint'


def test_collect_support_check_mode_runs_nothing(catalog_lab, ansible_env, run_playbook, tmp_path):
    before = len(catalog_lab.requests(host='firewall_blocked'))
    done = run_playbook(['-i', catalog_lab.inventory_path, COLLECT, '-l', 'firewall_blocked', '--check',
                         '-e', 'tetra_support_dest=%s' % (tmp_path / 'plan')], ansible_env, 'collect-support-check.log')
    assert done.returncode == 0, done.stdout[-3000:]
    actions = [e['action'] for e in catalog_lab.requests(host='firewall_blocked')[before:]]
    assert actions == ['collect']
    assert not os.path.exists(str(tmp_path / 'plan' / 'firewall_blocked'))


def test_debug_logging_and_capture_stop_after_a_failure_in_the_middle(catalog_lab, ansible_env, run_playbook, tmp_path):
    """The endpoint ran support_start but its answer is lost (the lab's lose_answer fault): the task fails, finish still runs."""
    faults = catalog_lab.state('tls_interception').scenario['faults']
    faults['lose_answer'] = {'action': 'support_start'}
    try:
        done = run_playbook(['-i', catalog_lab.inventory_path, COLLECT, '-l', 'tls_interception', '-e', 'tetra_support_wait=1',
                             '-e', 'tetra_support_dest=%s' % (tmp_path / 'broken')], ansible_env, 'collect-support-fault.log')
    finally:
        faults['lose_answer'] = None
    assert done.returncode != 0
    assert recap(done.stdout)['tls_interception']['failed'] == 1
    assert 'support_finish ran' in done.stdout
    actions = [e['action'] for e in catalog_lab.requests(host='tls_interception')]
    assert 'support_start' in actions and actions.index('support_start') < actions.index('support_finish')
    state = catalog_lab.state('tls_interception').snapshot()
    assert state['debug_logging'] is False and state['capture_running'] is False


# ---------------------------------------------------------------- forced-update dynamics

DYNAMICS_SCENARIOS = {
    'update_fails': {'extends': 'stale_recovers', 'dynamics': {'forceupdate': {'outcome': 'fail', 'after_s': 2, 'lasterror': 4294965193}}},
    'sfc_missing': {'extends': 'stale_recovers', 'install': {'sfc_company': None}},
    'sfc_not_cisco': {'extends': 'stale_recovers', 'install': {'sfc_company': 'Microsoft Corporation'}},
}
DYNAMICS_HOSTS = ['stale_recovers', 'update_fails', 'update_hangs', 'connector_725', 'sfc_missing', 'sfc_not_cisco']


@pytest.fixture(scope='module')
def dynamics_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    folder = tmp_path_factory.mktemp('dynamics-lab')
    fleet = {'latest_version': 90606, 'credentials': {'user': 'ansible', 'password': 'Lab-Passw0rd!'}, 'transport': 'ntlm',
             'scenario_files': [SCENARIOS], 'scenarios': DYNAMICS_SCENARIOS, 'hosts': [{'name': name} for name in DYNAMICS_HOSTS]}
    path = folder / 'fleet.yml'
    path.write_text(yaml.safe_dump(fleet), encoding='utf-8')
    # 0.1: the hung sfc.exe (60 s on the endpoint) answers in about 6 s; updates land 0.2 s after the command.
    lab = start_lab(str(path), str(folder), time_scale=0.1)
    try:
        yield lab
    finally:
        lab.stop()


FORCEUPDATE_PLAYBOOK = """
- name: Force updates and keep every result
  hosts: all
  gather_facts: false
  tasks:
    - name: Force an update
      secure_endpoint.tetra.tetra_forceupdate:
        timeout: 8
        poll_interval: 1
      register: forced
      ignore_errors: true
    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ forced | to_json }}"
        dest: "{{ results_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


def run_forceupdate(lab: t.Any, env: dict[str, str], folder: str, run_playbook: t.Callable[..., t.Any]) -> tuple[t.Any, dict[str, t.Any]]:
    os.makedirs(os.path.join(folder, 'results'))
    playbook = os.path.join(folder, 'forceupdate.yml')
    with open(playbook, 'w', encoding='utf-8') as handle:
        handle.write(FORCEUPDATE_PLAYBOOK)
    done = run_playbook(['-i', lab.inventory_path, playbook, '-e', 'results_dir=%s' % os.path.join(folder, 'results')], env,
                        'forceupdate-dynamics.log')
    results = {}
    for name in os.listdir(os.path.join(folder, 'results')):
        with open(os.path.join(folder, 'results', name), encoding='utf-8') as handle:
            results[name[:-len('.json')]] = json.load(handle)
    return done, results


def test_forceupdate_dynamics(dynamics_lab, ansible_env, run_playbook, tmp_path):
    done, results = run_forceupdate(dynamics_lab, ansible_env, str(tmp_path), run_playbook)
    assert set(results) == set(DYNAMICS_HOSTS)
    advanced = results['stale_recovers']
    assert (advanced['outcome'], advanced['changed'], advanced['version_after']) == ('version_advanced', True, 90606)
    assert advanced['calls'] <= 8 // 1 + 2
    failed = results['update_fails']
    assert (failed['outcome'], failed['changed']) == ('lasterror_changed', False) and not failed.get('failed')
    assert failed['lasterror']['unsigned'] == 4294965193 and failed['lasterror']['problem'] == 'cannot connect to the proxy'
    hung = results['update_hangs']
    assert hung['outcome'] == 'timeout' and hung['changed'] is False and hung['calls'] <= 8 + 2
    assert hung['forceupdate']['exit_code'] is None and 'did not return within' in done.stdout + done.stderr
    for name, code in (('connector_725', 'connector_too_old'), ('sfc_missing', 'sfc_missing'), ('sfc_not_cisco', 'sfc_not_cisco')):
        assert results[name]['refused'] == code and results[name]['changed'] is False and not results[name].get('failed'), results[name]
    assert hosts_with(dynamics_lab, 'forceupdate') == {'stale_recovers', 'update_fails', 'update_hangs'}
    assert 'System File Checker' in results['sfc_not_cisco']['msg']
