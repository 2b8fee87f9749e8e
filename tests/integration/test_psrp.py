# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/diagnose.yml over the whole lab catalog through Ansible's psrp connection (PowerShell Remoting).

The lab is served with ``--connection psrp`` (the same endpoints answer MS-PSRP); the checks are the ones
test_diagnose_playbook.py makes for winrm, called on this run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t

import pytest

# tests/integration is a rootdir-style test folder (no __init__.py): its modules import by bare name.
import test_diagnose_playbook as winrm_checks  # pylint: disable=import-error
from conftest import (  # pylint: disable=import-error
    CATALOG,
    OUTPUT_DIR,
    REPO_ROOT,
    Lab,
    _inventory_hosts,
    _load_expectations,
    served_lab,
)


@pytest.fixture(scope='module')
def psrp_catalog(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    """The catalog fleet with an inventory for ansible_connection=psrp."""
    folder = tmp_path_factory.mktemp('lab-psrp')
    expected, latest = _load_expectations()
    with served_lab(CATALOG, folder, ansible_env, '--connection', 'psrp', '--log', str(folder / 'requests.jsonl')) as inventory:
        yield Lab(inventory, _inventory_hosts(inventory, ansible_env), expected, latest)


@pytest.fixture(scope='module')
def psrp_run(psrp_catalog: Lab, ansible_env: dict[str, str], run_playbook: t.Callable[..., t.Any]) -> winrm_checks.Run:
    report_dir = os.path.join(OUTPUT_DIR, 'catalog-report-psrp')
    shutil.rmtree(report_dir, ignore_errors=True)
    extra = {'tetra_report_dir': report_dir, 'tetra_latest_fetch': False}
    done = run_playbook(['-i', psrp_catalog.inventory, winrm_checks.PLAYBOOK, '-e', json.dumps(extra)], ansible_env,
                        'diagnose-catalog-psrp.log')
    path = os.path.join(report_dir, 'report.json')
    assert os.path.exists(path), 'no report.json (exit %d):\n%s\n%s' % (done.returncode, done.stdout[-3000:], done.stderr[-2000:])
    with open(path, encoding='utf-8') as handle:
        return winrm_checks.Run(done, report_dir, json.load(handle))


def test_inventory_uses_psrp(psrp_catalog: Lab) -> None:
    with open(psrp_catalog.inventory, encoding='utf-8') as handle:
        text = handle.read()
    assert 'ansible_connection=psrp' in text and 'ansible_winrm_' not in text


def test_playbook_succeeds_over_psrp(psrp_run: winrm_checks.Run) -> None:
    winrm_checks.test_playbook_succeeds_when_endpoints_fail(psrp_run)


def test_one_row_per_inventory_host_over_psrp(psrp_run: winrm_checks.Run, psrp_catalog: Lab) -> None:
    winrm_checks.test_one_row_per_inventory_host(psrp_run, psrp_catalog)


def test_verdicts_match_the_catalog_over_psrp(psrp_run: winrm_checks.Run, psrp_catalog: Lab) -> None:
    winrm_checks.test_verdicts_match_the_catalog(psrp_run, psrp_catalog)


def test_summary_table_over_psrp(psrp_run: winrm_checks.Run, psrp_catalog: Lab) -> None:
    winrm_checks.test_summary_table_follows_play_recap(psrp_run, psrp_catalog)


def test_every_request_went_through_psrp(psrp_run: winrm_checks.Run, psrp_catalog: Lab) -> None:
    log = os.path.join(os.path.dirname(psrp_catalog.inventory), 'requests.jsonl')
    with open(log, encoding='utf-8') as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    assert entries and {e['transport'] for e in entries} == {'psrp'}
    answered = {e['host'] for e in entries if e['action'] == 'collect' and e['exit_code'] == 0}
    reachable = {h for h, expect in psrp_catalog.expected.items() if expect.get('status') != 'unreachable'}
    assert answered == reachable


ENDPOINT_MODULES = [
    ('tetra_posture', ''), ('tetra_resolve', ''), ('tetra_tls_probe', ''), ('tetra_proxy', ''), ('tetra_diagnose', ''),
    ('tetra_forceupdate', ''), ('tetra_support_bundle', 'wait=0 dest={dest}'),
]


@pytest.mark.parametrize('module,args', ENDPOINT_MODULES, ids=[m for m, dummy in ENDPOINT_MODULES])
def test_every_endpoint_module_runs_over_psrp(psrp_catalog: Lab, ansible_env: dict[str, str], module: str, args: str,
                                              tmp_path: t.Any) -> None:
    """Each module that talks to an endpoint, ad hoc through the psrp connection (stale_recovers takes the forced update)."""
    host = 'stale_recovers' if module == 'tetra_forceupdate' else 'healthy'
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible'), host, '-i', psrp_catalog.inventory, '-o',
               '-m', 'secure_endpoint.tetra.%s' % module]
    if args:
        command += ['-a', args.format(dest=str(tmp_path / 'bundles'))]
    done = subprocess.run(command, cwd=REPO_ROOT, env=ansible_env, capture_output=True, text=True, timeout=600, check=False)
    with open(os.path.join(OUTPUT_DIR, 'adhoc-psrp-%s.log' % module), 'w', encoding='utf-8') as handle:
        handle.write(done.stdout + '\n--- stderr ---\n' + done.stderr)
    line = next((row for row in done.stdout.splitlines() if row.startswith(host + ' | ')), '')
    assert ' | SUCCESS' in line or ' | CHANGED' in line, done.stdout[-3000:] + done.stderr[-2000:]
    body = json.loads(line.split(' => ', 1)[1])
    assert not body.get('failed'), body
