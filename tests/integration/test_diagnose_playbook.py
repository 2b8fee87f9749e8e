# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/diagnose.yml against the whole lab catalog: report rows, verdicts, HTML, callback, AWX artifacts."""

from __future__ import annotations

import dataclasses
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import typing as t

import pytest
from tests.paths import REPO_ROOT

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml')
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
BROWSER_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--hide-scrollbars']


@dataclasses.dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    report_dir: str
    report: dict[str, t.Any]

    @property
    def rows(self) -> dict[str, dict[str, t.Any]]:
        return {record['host']: record for record in self.report['hosts']}


@pytest.fixture(scope='module')
def catalog_run(lab_catalog: t.Any, ansible_env: dict[str, str], run_playbook: t.Callable[..., t.Any]) -> Run:
    """One diagnose.yml run over every catalog host; the report is kept in tests/output/integration."""
    report_dir = os.path.join(OUTPUT_DIR, 'catalog-report')
    shutil.rmtree(report_dir, ignore_errors=True)
    # Offline and deterministic: no fetch of versions.id, so the report compares every host with the
    # highest version seen in the run (the catalog's healthy hosts are at the lab's latest version).
    extra = {'tetra_report_dir': report_dir, 'tetra_latest_fetch': False}
    done = run_playbook(['-i', lab_catalog.inventory, PLAYBOOK, '-e', json.dumps(extra)], ansible_env, 'diagnose-catalog.log')
    path = os.path.join(report_dir, 'report.json')
    assert os.path.exists(path), 'no report.json (exit %d):\n%s\n%s' % (done.returncode, done.stdout[-3000:], done.stderr[-2000:])
    with open(path, encoding='utf-8') as handle:
        return Run(done, report_dir, json.load(handle))


def read_json(path: str) -> dict[str, t.Any]:
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def hosts_with(lab: t.Any, status: str) -> list[str]:
    return sorted(host for host, expect in lab.expected.items() if expect.get('status') == status)


def test_playbook_succeeds_when_endpoints_fail(catalog_run: Run) -> None:
    """Failing endpoints are findings: without tetra_fail_on the play succeeds."""
    assert catalog_run.done.returncode == 0, catalog_run.done.stdout[-3000:] + catalog_run.done.stderr[-2000:]


def test_one_row_per_inventory_host(catalog_run: Run, lab_catalog: t.Any) -> None:
    hosts = [record['host'] for record in catalog_run.report['hosts']]
    assert len(hosts) == len(set(hosts))
    assert sorted(hosts) == sorted(lab_catalog.hosts)
    assert catalog_run.report['format'] == 1
    assert catalog_run.report['summary']['total'] == len(lab_catalog.hosts)
    assert catalog_run.report['fleet_max_version'] == lab_catalog.latest_version


def test_verdicts_match_the_catalog(catalog_run: Run, lab_catalog: t.Any) -> None:
    rows = catalog_run.rows
    wrong = []
    for host, expect in sorted(lab_catalog.expected.items()):
        got = {key: rows.get(host, {}).get(key) for key in ('status', 'cause') if key in expect}
        want = {key: expect[key] for key in ('status', 'cause') if key in expect}
        if got != want:
            wrong.append('%s: expected %s, got %s (%s)' % (host, want, got, rows.get(host, {}).get('evidence')))
    assert not wrong, 'verdicts differ from tests/lab/fleets/catalog.yml:\n' + '\n'.join(wrong)
    # Ansible-side failures are told apart: credentials rejected vs. host not answering.
    for host, cause in (('wrong_password', 'authentication_failed'), ('host_down', 'host_unreachable')):
        if host in lab_catalog.expected:
            assert (rows[host]['status'], rows[host]['cause']) == ('unreachable', cause), rows[host]
    for record in catalog_run.report['hosts']:
        assert record['summary'], record
        if record['status'] in ('failing', 'stale', 'unknown', 'unreachable'):
            assert record['evidence'], record
        if record['status'] != 'ok':
            assert record['action'], record


def test_summary_table_follows_play_recap(catalog_run: Run, lab_catalog: t.Any) -> None:
    out = catalog_run.done.stdout
    assert 'PLAY RECAP' in out and 'TETRA SUMMARY' in out
    table = out[out.index('TETRA SUMMARY'):]
    assert out.index('PLAY RECAP') < out.index('TETRA SUMMARY')
    assert 'TETRA SUMMARY (%d hosts)' % len(lab_catalog.hosts) in table
    lines = [' '.join(line.split()) for line in table.splitlines()]
    for status, count in catalog_run.report['summary']['by_status'].items():
        if count:
            assert '%s %d' % (status, count) in lines, (status, count)
    assert 'report html: %s' % os.path.join(catalog_run.report_dir, 'report.html') in table
    needing = catalog_run.report['summary']['needs_action']
    if needing:
        assert 'Hosts that need action (%d):' % needing in table


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail('No headless browser: install Debian chromium (apt-get install -y chromium) to check the HTML report')


def browser(args: list[str], profile: str) -> subprocess.CompletedProcess[str]:
    command = [find_browser()] + BROWSER_FLAGS + ['--user-data-dir=%s' % profile] + args
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


# Appended to a copy of the report: interacts like a user and writes what it saw into the DOM.
PROBE = """
<script>(function(){
  function shown(){return document.querySelectorAll('#host-table tbody tr:not(.hidden)').length;}
  var out={width:window.innerWidth,scroll_width:document.documentElement.scrollWidth,
           charts:Array.prototype.map.call(document.querySelectorAll('.charts svg'),function(s){
             return Math.ceil(s.getBoundingClientRect().right);})};
  var bar=document.querySelector('#chart-cause .bar[data-label="%(cause)s"]');
  bar.dispatchEvent(new MouseEvent('click',{bubbles:true}));out.after_cause_click=shown();
  document.getElementById('clear').click();
  var f=document.getElementById('filter');f.value='%(hidden)s';f.dispatchEvent(new Event('input'));
  out.search_hidden_text=shown();f.value='%(host)s';f.dispatchEvent(new Event('input'));out.search_host=shown();
  document.getElementById('clear').click();
  var th=document.querySelectorAll('#host-table th')[8];th.click();
  out.age_ascending=Array.prototype.map.call(document.querySelectorAll('#host-table tbody tr'),function(r){
    return r.cells[8].getAttribute('data-sort');});
  th.click();out.age_descending=Array.prototype.map.call(document.querySelectorAll('#host-table tbody tr'),function(r){
    return r.cells[8].getAttribute('data-sort');});
  var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
})();</script>
"""


def probe_page(report_dir: str, folder: t.Any, width: int, **values: str) -> dict[str, t.Any]:
    """Load a copy of report.html with PROBE at ``width`` px; returns what the probe recorded."""
    with open(os.path.join(report_dir, 'report.html'), encoding='utf-8') as handle:
        page = handle.read()
    path = os.path.join(str(folder), 'probe-%d.html' % width)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(page.replace('</body></html>', PROBE % values + '</body></html>'))
    dom = browser(['--window-size=%d,2000' % width, '--virtual-time-budget=3000', '--dump-dom', 'file://' + path],
                  os.path.join(str(folder), 'profile-probe-%d' % width)).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, 'the probe did not run at %d px: %s' % (width, dom[-2000:])
    return json.loads(found.group(1).replace('&quot;', '"').replace('&amp;', '&'))


def test_html_report_renders_in_chromium(catalog_run: Run, lab_catalog: t.Any, tmp_path: t.Any) -> None:
    html_path = os.path.join(catalog_run.report_dir, 'report.html')
    url = 'file://' + html_path
    dom = browser(['--virtual-time-budget=3000', '--dump-dom', url], str(tmp_path / 'profile1')).stdout
    assert '<table id="host-table"' in dom, dom[:2000]
    total = len(lab_catalog.hosts)
    assert re.search(r'<span id="shown">%d of %d hosts shown</span>' % (total, total), dom), 'the page script did not run'
    assert len(re.findall(r'<tr class="host-row', dom)) == total
    for host, record in catalog_run.rows.items():
        assert re.search(r'data-host="%s" data-status="%s"' % (re.escape(host), record['status']), dom), host
    for status, count in catalog_run.report['summary']['by_status'].items():
        assert '<span class="count" id="count-%s">%d</span>' % (status, count) in dom
    assert '<svg id="chart-status"' in dom and '<svg id="chart-cause"' in dom
    # Run metadata, the plan first, a remediable column.
    run = catalog_run.report['run']
    assert run['ansible_core'] and run['collection'] and run['started'] and run['duration_s'] is not None
    assert run['inventory'] == lab_catalog.inventory
    for name in ('inventory', 'ansible_core', 'collection', 'started', 'duration_s'):
        assert 'data-run="%s"' % name in dom, name
    assert dom.index('id="plan"') < dom.index('id="summary"') < dom.index('id="host-table"')
    assert dom.count('class="plan-group"') == len(catalog_run.report['plan'])
    assert '<th data-type="text">Remediable</th>' in dom
    remediable = sorted(host for host, record in catalog_run.rows.items() if record['remediable'])
    assert remediable and len(re.findall(r'<td class="remediable" data-sort="yes">', dom)) == len(remediable)
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    for width in (1280, 400):
        screenshot = os.path.join(OUTPUT_DIR, 'report-%d.png' % width)
        if os.path.exists(screenshot):
            os.remove(screenshot)
        browser(['--window-size=%d,2400' % width, '--screenshot=%s' % screenshot, url], str(tmp_path / ('shot%d' % width)))
        assert os.path.exists(screenshot) and os.path.getsize(screenshot) > 10000, screenshot


def test_html_report_interactions_at_both_widths(catalog_run: Run, tmp_path: t.Any) -> None:
    """Cause chart filters, search ignores hidden evidence, empty ages sort last, no sideways scroll at 400 px."""
    rows = catalog_run.rows
    cause = 'dns_resolution_failed'
    with_cause = sum(1 for record in rows.values() if record['cause'] == cause)
    # An evidence line is inside a closed <details>: not a visible field, so searching it finds nothing.
    hidden = 'schannel'
    assert any(hidden in ' '.join(r['evidence']).lower() for r in rows.values())
    assert not any(hidden in ' '.join(str(r.get(k) or '') for k in ('host', 'cause', 'summary')).lower() for r in rows.values())
    host = 'tls_interception' if 'tls_interception' in rows else sorted(rows)[0]
    for width in (1280, 400):
        seen = probe_page(catalog_run.report_dir, tmp_path, width, cause=cause, hidden=hidden, host=host)
        assert seen['scroll_width'] <= seen['width'], 'the page scrolls sideways at %d px: %s' % (width, seen)
        assert all(right <= seen['width'] for right in seen['charts']), 'a chart is cut at %d px: %s' % (width, seen)
        assert seen['after_cause_click'] == with_cause, seen
        assert seen['search_hidden_text'] == 0, seen
        assert seen['search_host'] >= 1, seen
        for order in (seen['age_ascending'], seen['age_descending']):
            filled = [value for value in order if value != '']
            assert order[:len(filled)] == filled, 'empty ages must sort last: %s' % order
        assert seen['age_ascending'][:2] != seen['age_descending'][:2]


def test_default_output_shows_every_cause_and_the_report(lab_catalog: t.Any, ansible_env: dict[str, str],
                                                         run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    """No callback, no configuration: the play itself ends with the fleet table, the plan and the report path."""
    env = {key: value for key, value in ansible_env.items() if key != 'ANSIBLE_CALLBACKS_ENABLED'}
    report_dir = str(tmp_path / 'report')
    extra = {'tetra_report_dir': report_dir, 'tetra_latest_fetch': False}
    done = run_playbook(['-i', lab_catalog.inventory, PLAYBOOK, '-e', json.dumps(extra)], env, 'diagnose-default-output.log')
    assert done.returncode == 0, done.stdout[-3000:]
    out = done.stdout
    assert 'TETRA SUMMARY' not in out, 'the callback was not enabled: the table must come from the play itself'
    report = read_json(os.path.join(report_dir, 'report.json'))
    lines = [' '.join(line.strip().strip('",').split()) for line in out.splitlines()]
    for record in report['hosts']:
        assert any(line.startswith('%s %s %s' % (record['host'], record['status'], record['cause'])) for line in lines), record['host']
    assert 'Report: %s' % os.path.join(report_dir, 'report.html') in out
    assert 'ACTION PLAN (%d groups, one action each):' % len(report['plan']) in out
    assert out.index('ACTION PLAN') < out.index('PLAY RECAP')


def test_fail_on_gate_fails_the_play(catalog_run: Run, lab_catalog: t.Any, ansible_env: dict[str, str],
                                     run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    """tetra_fail_on turns a status into a play failure (hosts picked from the catalog run's own verdicts)."""
    statuses = {host: record['status'] for host, record in catalog_run.rows.items()}
    failing = sorted(host for host, status in statuses.items() if status == 'failing')
    ok = sorted(host for host, status in statuses.items() if status == 'ok')
    assert failing and ok, 'the catalog run needs failing and ok hosts: %s' % statuses
    limit = ','.join([failing[0], ok[0]])
    extra = json.dumps({'tetra_fail_on': ['failing'], 'tetra_report_dir': str(tmp_path / 'gate'),
                        'tetra_latest_version': lab_catalog.latest_version})
    done = run_playbook(['-i', lab_catalog.inventory, PLAYBOOK, '--limit', limit, '-e', extra], ansible_env, 'diagnose-gate.log')
    assert done.returncode == 2, done.stdout[-3000:]
    assert '1 host(s) have a status in failing: %s' % failing[0] in done.stdout
    assert 'TETRA SUMMARY (2 hosts)' in done.stdout


@pytest.fixture(name='versions_id_url')
def versions_id_url_fixture(lab_catalog: t.Any) -> t.Iterator[str]:
    """A local stand-in for update.amp.cisco.com/av64bit/versions.id announcing the lab's latest version."""
    body = ('<?xml version="1.0"?><versions><version value="%d"/></versions>' % lab_catalog.latest_version).encode('ascii')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: t.Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d/av64bit/versions.id' % server.server_address[1]
    finally:
        server.shutdown()


def test_the_fetched_latest_version_reaches_every_verdict_without_facts(catalog_run: Run, lab_catalog: t.Any, ansible_env: dict[str, str],
                                                                        run_playbook: t.Callable[..., t.Any], versions_id_url: str,
                                                                        tmp_path: t.Any) -> None:
    """The role fetches versions.id once; the action (from_vars) judges every host with it and leaves the facts out."""
    statuses = {host: record['status'] for host, record in catalog_run.rows.items()}
    limit = ','.join(sorted(host for host, status in statuses.items() if status in ('ok', 'stale'))[:4])
    register = tmp_path / 'registered'
    register.mkdir()
    extra = json.dumps({'tetra_report_dir': str(tmp_path / 'fetched'), 'tetra_latest_url': versions_id_url})
    play = tmp_path / 'fetch.yml'
    play.write_text(FETCH_PLAY % {'playbook': PLAYBOOK, 'out': register}, encoding='utf-8')
    done = run_playbook(['-i', lab_catalog.inventory, str(play), '--limit', limit, '-e', extra], ansible_env, 'diagnose-fetched.log')
    assert done.returncode == 0, done.stdout[-3000:]
    rows = read_json(str(tmp_path / 'fetched' / 'report.json'))['hosts']
    assert sorted(row['host'] for row in rows) == sorted(limit.split(','))
    for row in rows:
        assert (row['versions']['latest'], row['versions']['latest_source']) == (lab_catalog.latest_version, 'versions.id'), row
        registered = read_json(str(register / (row['host'] + '.json')))
        assert 'facts' not in registered and registered['freshness']['source'] == 'versions.id', registered.keys()


FETCH_PLAY = """
- ansible.builtin.import_playbook: %(playbook)s
- name: Keep what each host registered
  hosts: "{{ tetra_hosts | default('windows') }}"
  gather_facts: false
  tasks:
    - ansible.builtin.copy: {content: "{{ tetra_diagnosis | to_json }}", dest: "%(out)s/{{ inventory_hostname }}.json", mode: "0644"}
      delegate_to: localhost
"""


def test_ansible_runner_artifacts_carry_the_summary(lab_catalog: t.Any, ansible_env: dict[str, str], tmp_path: t.Any) -> None:
    """The set_stats summary reaches AWX: playbook_on_stats event artifact_data, also on disk."""
    ansible_runner = pytest.importorskip('ansible_runner')
    subset = sorted(lab_catalog.hosts)[:3]
    private = tmp_path / 'runner'
    env = {key: ansible_env[key] for key in ('ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH',
                                             'ANSIBLE_CALLBACKS_ENABLED', 'PYTHONPATH')}
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')  # runner finds ansible-playbook here
    private.mkdir()
    run = ansible_runner.run(
        private_data_dir=str(private), playbook=PLAYBOOK, inventory=lab_catalog.inventory, limit=','.join(subset),
        extravars={'tetra_report_dir': str(tmp_path / 'report'), 'tetra_latest_version': lab_catalog.latest_version},
        envvars=env, quiet=True,
    )
    stdout = run.stdout.read()
    with open(os.path.join(OUTPUT_DIR, 'diagnose-runner.log'), 'w', encoding='utf-8') as handle:
        handle.write(stdout)
    assert (run.status, run.rc) == ('successful', 0), stdout[-3000:]
    stats = [event for event in run.events if event.get('event') == 'playbook_on_stats']
    assert len(stats) == 1
    summary = stats[0]['event_data']['artifact_data']['tetra_fleet_summary']
    assert summary['format'] == 1 and summary['total'] == len(subset)
    assert summary['html'] == str(tmp_path / 'report' / 'report.html')
    assert sum(summary['by_status'].values()) == len(subset)
    on_disk = [event for event in map(read_json, glob.glob(str(private / 'artifacts' / '*' / 'job_events' / '*.json')))
               if event.get('event') == 'playbook_on_stats']
    assert on_disk, 'no playbook_on_stats event in the runner artifacts'
    assert on_disk[0]['event_data']['artifact_data']['tetra_fleet_summary']['total'] == len(subset)
    assert 'TETRA SUMMARY (%d hosts)' % len(subset) in stdout, 'the aggregate callback prints beside the runner display'


def test_analyze_replays_colliding_host_names_apart(ansible_env: dict[str, str], collections_root: str,
                                                    run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    """Hosts whose cleaned names collide ('ep/7', 'ep_7') get their own evidence files (the cleaned one a hash of the
    real name) and analyze.yml replays each under the host its record names, with its own verdict (issue 12)."""
    evidence, report_dir = str(tmp_path / 'evidence'), str(tmp_path / 'report')
    os.makedirs(evidence)
    script = ('import sys\n'
              'from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import save_evidence\n'
              'from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import (\n'
              '    healthy_document, revocation_blocked)\n'
              'save_evidence(sys.argv[1], "ep/7", {}, revocation_blocked(healthy_document()))\n'
              'save_evidence(sys.argv[1], "ep_7", {}, healthy_document())\n')
    env = dict(ansible_env, PYTHONPATH=os.pathsep.join([collections_root, REPO_ROOT]))
    subprocess.run([sys.executable, '-c', script, evidence], env=env, check=True, cwd=str(tmp_path))
    names = sorted(os.listdir(evidence))
    assert len(names) == 2 and names[1] == 'ep_7.json' and re.fullmatch(r'ep_7-[0-9a-f]{8}\.json', names[0]), names
    extra = {'evidence_dir': evidence, 'tetra_report_dir': report_dir, 'tetra_latest_version': 90606}
    done = run_playbook([os.path.join(REPO_ROOT, 'playbooks', 'analyze.yml'), '-e', json.dumps(extra)], ansible_env, 'analyze-colliding-names.log')
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = {row['host']: row for row in read_json(os.path.join(report_dir, 'report.json'))['hosts']}
    assert {host: rows[host]['cause'] for host in rows} == {'ep/7': 'revocation_check_failed', 'ep_7': 'up_to_date'}
