# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The action plan against the two-proxy, two-DNS lab fleet (tests/lab/fleets/plan.yml).

Hosts failing the same way behind the same proxy, or with the same DNS servers, must come out as one
group each (cause, team, action once, the shared attribute, the hosts), in report.json, first in the
Markdown and HTML reports, in the playbook's default output and in the summary callback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t

import pytest
from conftest import served_lab  # pylint: disable=import-error  # rootdir-style test folder
from tests.paths import REPO_ROOT

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
FLEET = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'plan.yml')
PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml')

# What the fleet file sets up: (cause, shared attribute, value, team) -> hosts.
EXPECTED_GROUPS = {
    ('proxy_auth_failed', 'proxy', 'proxy-a.corp.example:8080', 'proxy'): ['proxy-a-01', 'proxy-a-02', 'proxy-a-03'],
    ('proxy_auth_failed', 'proxy', 'proxy-b.corp.example:3128', 'proxy'): ['proxy-b-01', 'proxy-b-02'],
    ('dns_resolution_failed', 'dns_servers', '10.0.0.53, 10.0.0.54', 'network'): ['dns-hq-01', 'dns-hq-02', 'dns-hq-03'],
    ('dns_resolution_failed', 'dns_servers', '10.20.0.53', 'network'): ['dns-br-01', 'dns-br-02'],
    ('tls_interception', 'issuer', 'Contoso Web Inspection CA', 'security'): ['tls-01', 'tls-02'],
}


class PlanRun(t.NamedTuple):
    done: subprocess.CompletedProcess[str]
    report_dir: str
    report: dict[str, t.Any]


@pytest.fixture(scope='module')
def plan_lab(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[str]:
    """The plan fleet served by ``python -m tests.lab serve``; yields the inventory path."""
    with served_lab(FLEET, tmp_path_factory.mktemp('plan-lab'), ansible_env) as inventory:
        yield inventory


@pytest.fixture(scope='module')
def plan_run(plan_lab: str, ansible_env: dict[str, str], run_playbook: t.Callable[..., t.Any]) -> PlanRun:
    """diagnose.yml over the plan fleet, evidence saved (the DNS servers come from it), callback enabled."""
    report_dir = os.path.join(OUTPUT_DIR, 'plan-report')
    shutil.rmtree(report_dir, ignore_errors=True)
    extra = {'tetra_report_dir': report_dir, 'tetra_evidence_dir': os.path.join(report_dir, 'evidence'), 'tetra_latest_fetch': False}
    done = run_playbook(['-i', plan_lab, PLAYBOOK, '-e', json.dumps(extra)], ansible_env, 'diagnose-plan.log')
    path = os.path.join(report_dir, 'report.json')
    assert os.path.exists(path), 'no report.json (exit %d):\n%s\n%s' % (done.returncode, done.stdout[-3000:], done.stderr[-2000:])
    with open(path, encoding='utf-8') as handle:
        return PlanRun(done, report_dir, json.load(handle))


def groups_of(report: dict[str, t.Any]) -> dict[tuple[str, ...], list[str]]:
    return {(g['cause'], (g['shared'] or {}).get('attribute'), (g['shared'] or {}).get('value'), g['team']): g['hosts']
            for g in report['plan']}


def test_hosts_are_grouped_by_cause_and_shared_proxy_or_dns(plan_run: PlanRun) -> None:
    assert plan_run.done.returncode == 0, plan_run.done.stdout[-3000:]
    assert groups_of(plan_run.report) == EXPECTED_GROUPS
    for group in plan_run.report['plan']:
        assert group['count'] == len(group['hosts'])
        assert group['action'] and group['team_label']
        assert group['text'].startswith('%s: %d hosts, all using ' % (group['cause'], group['count']))


def test_every_host_needing_action_is_in_exactly_one_group(plan_run: PlanRun) -> None:
    grouped = [host for group in plan_run.report['plan'] for host in group['hosts']]
    needing = sorted(r['host'] for r in plan_run.report['hosts'] if r['status'] != 'ok')
    assert sorted(grouped) == needing and len(grouped) == len(set(grouped))
    assert not {'ok-01', 'ok-02'} & set(grouped)


def test_plan_comes_first_in_markdown_and_html(plan_run: PlanRun) -> None:
    with open(os.path.join(plan_run.report_dir, 'report.md'), encoding='utf-8') as handle:
        markdown = handle.read()
    assert markdown.index('## Action plan') < markdown.index('## Summary') < markdown.index('## Hosts that need action')
    assert 'proxy proxy-a.corp.example:8080' in markdown and 'DNS servers 10.20.0.53' in markdown
    with open(os.path.join(plan_run.report_dir, 'report.html'), encoding='utf-8') as handle:
        page = handle.read()
    assert page.index('id="plan"') < page.index('id="summary"') < page.index('id="host-table"')
    assert page.count('class="plan-group"') == len(EXPECTED_GROUPS)


def test_default_output_and_summary_callback_show_the_plan(plan_run: PlanRun) -> None:
    out = plan_run.done.stdout
    recap = out.index('PLAY RECAP')
    before, after = out[:recap], out[recap:]
    for text in ('proxy_auth_failed: 3 hosts, all using proxy proxy-a.corp.example:8080 -> proxy team',
                 'proxy_auth_failed: 2 hosts, all using proxy proxy-b.corp.example:3128 -> proxy team',
                 'dns_resolution_failed: 3 hosts, all using DNS servers 10.0.0.53, 10.0.0.54 -> network/firewall team',
                 'dns_resolution_failed: 2 hosts, all using DNS servers 10.20.0.53 -> network/firewall team'):
        assert text in before, 'default output (the role\'s table): %s' % text
        assert text in after, 'tetra_summary callback after PLAY RECAP: %s' % text
    assert 'Report: %s' % os.path.join(plan_run.report_dir, 'report.html') in before


def test_merged_slices_keep_the_plan(plan_run: PlanRun, ansible_env: dict[str, str], tmp_path: t.Any) -> None:
    """A report merged from earlier reports (AWX slices) plans from the records' saved attributes."""
    merged = tmp_path / 'merged'
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'ansible'), 'localhost', '-m', 'secure_endpoint.tetra.tetra_report',
         '-a', json.dumps({'merge': [plan_run.report_dir], 'dest': str(merged), 'formats': ['json']})],
        cwd=REPO_ROOT, env=ansible_env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(merged / 'report.json', encoding='utf-8') as handle:
        assert groups_of(json.load(handle)) == EXPECTED_GROUPS
