# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/diagnose.yml over the chaos fleet (tests/lab/fleets/chaos.yml, issue 12).

Every fault kind the lab injects, one host each: one report row per inventory host, no traceback, each
host within its announced bound (deadline + 30 s; measured from the report's and the saved evidence's
timings, asserted with a generous margin, never with a timed assertion on speed), no secret in any
output, endpoint state clean. The measured table (fault -> outcome -> time) is written to
tests/output/integration/chaos-timings.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
import typing as t

import pytest
from tests.paths import REPO_ROOT

sys.path.insert(0, REPO_ROOT)

from tests.lab import Lab

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml')
FLEET = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'chaos.yml')
DEADLINE_S = 40          # the role's default tetra_deadline
GRACE_S = 30             # plugins/plugin_utils/_remote.py _GRACE_S: the announced bound is deadline + grace
BOUND_S = DEADLINE_S + GRACE_S
MARGIN_S = 15            # generous: thread scheduling on a loaded CI runner, never a speed claim
SECRET = 'Chaos-S3cret-Pw'
# Hosts whose endpoint never answers once the shell is open (or at all): their shell cannot be closed.
SILENT = {'slow_drip', 'frozen', 'half_open', 'host_down'}
# After a TCP reset mid-Receive the old NTLM-encrypted session cannot carry the Delete of its shell (the lab,
# like Windows, wants a new connection authenticated again); the collection tries, within the bound, and
# the endpoint's WinRM idle timeout reclaims the shell. Known gap, listed in the closing note.
RESET_MID_RECEIVE = {'flaky_reset', 'always_reset'}


@dataclasses.dataclass
class ChaosRun:
    lab: Lab
    done: subprocess.CompletedProcess[str]
    wall_s: float
    report_dir: str
    evidence_dir: str
    report: dict[str, t.Any]

    @property
    def rows(self) -> dict[str, dict[str, t.Any]]:
        return {record['host']: record for record in self.report['hosts']}


def fault_of(lab: Lab, host: str) -> str:
    """A short name of what the host's scenario injects."""
    spec = next(h for h in lab.fleet.hosts if h.name == host)
    faults = {k: v for k, v in spec.scenario['faults'].items() if v not in (None, False, 0)}
    if not spec.scenario['winrm'].get('listen', True):
        faults['listen'] = False
    if spec.scenario['winrm'].get('inventory_password'):
        faults['inventory_password'] = 'wrong'
    if not faults:
        return 'none (%s)' % spec.scenario_name
    return ', '.join('%s=%s' % (k, json.dumps(v, separators=(',', ':'))) for k, v in sorted(faults.items()))


def host_seconds(run: ChaosRun, host: str) -> float | None:
    """What the diagnosis of one host cost, from the report's timings or, for output that is not
    evidence, from the timings saved with it in evidence_dir."""
    timings = run.rows[host].get('timings') or {}
    values = [timings.get('elapsed_ms'), timings.get('round_trip_ms')]
    path = os.path.join(run.evidence_dir, '%s.json' % host)
    if os.path.exists(path):
        with open(path, encoding='utf-8') as handle:
            saved = json.load(handle)
        invalid = (saved.get('evidence') or {}).get('invalid_output') or {}
        values += [(invalid.get('timings') or {}).get('elapsed_ms')]
    known = [v for v in values if isinstance(v, (int, float))]
    return max(known) / 1000 if known else None


@pytest.fixture(scope='module')
def chaos(ansible_env: dict[str, str], run_playbook: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[ChaosRun]:
    report_dir = os.path.join(OUTPUT_DIR, 'chaos-report')
    evidence_dir = os.path.join(OUTPUT_DIR, 'chaos-evidence')
    for folder in (report_dir, evidence_dir):
        shutil.rmtree(folder, ignore_errors=True)
    workdir = str(tmp_path_factory.mktemp('chaos-lab'))
    with Lab(FLEET, workdir=workdir, time_scale=0.2) as lab:
        extra = {'tetra_report_dir': report_dir, 'tetra_evidence_dir': evidence_dir, 'tetra_latest_fetch': False}
        env = dict(ansible_env, ANSIBLE_FORKS='40')
        started = time.monotonic()
        done = run_playbook(['-i', lab.inventory_path, PLAYBOOK, '-e', json.dumps(extra)], env, 'diagnose-chaos.log')
        wall = time.monotonic() - started
        path = os.path.join(report_dir, 'report.json')
        assert os.path.exists(path), 'no report.json (exit %d):\n%s\n%s' % (done.returncode, done.stdout[-3000:], done.stderr[-2000:])
        with open(path, encoding='utf-8') as handle:
            report = json.load(handle)
        yield ChaosRun(lab, done, wall, report_dir, evidence_dir, report)


def test_the_play_succeeds_without_a_traceback(chaos: ChaosRun) -> None:
    output = chaos.done.stdout + chaos.done.stderr
    assert chaos.done.returncode == 0, output[-4000:]
    assert 'Traceback' not in output and 'RecursionError' not in output
    assert 'UnicodeEncodeError' not in output and 'surrogates not allowed' not in output


def test_one_row_per_inventory_host(chaos: ChaosRun) -> None:
    hosts = [record['host'] for record in chaos.report['hosts']]
    assert sorted(hosts) == sorted(h.name for h in chaos.lab.fleet.hosts)
    assert len(hosts) == len(set(hosts))


def test_outcomes_are_the_expected_bad_rows(chaos: ChaosRun) -> None:
    wrong = []
    for spec in chaos.lab.fleet.hosts:
        row = chaos.rows[spec.name]
        for key in ('status', 'cause'):
            if key in spec.expect and row[key] != spec.expect[key]:
                wrong.append('%s: %s %s, expected %s' % (spec.name, key, row[key], spec.expect[key]))
    assert not wrong, wrong


def test_every_host_within_its_announced_bound(chaos: ChaosRun) -> None:
    lines = ['| host | fault | outcome | time (s) |', '|---|---|---|---|']
    measured: dict[str, float] = {}
    for spec in sorted(chaos.lab.fleet.hosts, key=lambda h: h.name):
        row = chaos.rows[spec.name]
        seconds = host_seconds(chaos, spec.name)
        if seconds is not None:
            measured[spec.name] = seconds
        shown = '-' if seconds is None else '%.1f' % seconds
        lines.append('| %s | %s | %s / %s | %s |' % (spec.name, fault_of(chaos.lab, spec.name), row['status'], row['cause'], shown))
    worst = max(measured.items(), key=lambda item: item[1])
    lines += ['', 'Announced bound per host: %d s (deadline %d s + %d s grace). Worst measured: %.1f s (%s). '
              'Whole playbook: %.1f s for %d hosts.' % (BOUND_S, DEADLINE_S, GRACE_S, worst[1], worst[0], chaos.wall_s, len(chaos.rows))]
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    with open(os.path.join(OUTPUT_DIR, 'chaos-timings.md'), 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    # Every host the call gave up on carries its timing; a host that answered with a document (even one the
    # parser refuses: tetra_diagnose keeps no timings on that verdict today) was within the bound by construction.
    missing = sorted(h.name for h in chaos.lab.fleet.hosts if h.name not in measured and chaos.rows[h.name]['status'] == 'unreachable')
    assert not missing, 'no timing recorded for %s' % missing
    over = {host: seconds for host, seconds in measured.items() if seconds > BOUND_S + MARGIN_S}
    assert not over, over
    # The whole run: every host in parallel, so about one bound plus Ansible's own work.
    assert chaos.wall_s < BOUND_S + 120, chaos.wall_s


def test_hostile_text_is_made_visible_in_every_report_format(chaos: ChaosRun) -> None:
    for name in ('report.json', 'report.csv', 'report.md', 'report.html'):
        path = os.path.join(chaos.report_dir, name)
        with open(path, 'rb') as handle:
            data = handle.read()
        text = data.decode('utf-8')  # strict: a lone surrogate cannot have been written
        assert '\x1b' not in text and '\x07' not in text and '\u202e' not in text, name
        assert not re.search('[\ud800-\udfff]', text), name
    assert not [n for n in os.listdir(chaos.report_dir) if n.endswith(('.tmp', '.partial'))]
    # The hostile service names reach the report (the verdict quotes them), made visible, not executed.
    assert '\\x1b]0;pwned\\x07' in ' '.join(chaos.rows['payload_escapes']['evidence'])
    assert '\\ud800' in ' '.join(chaos.rows['payload_surrogates']['evidence'])


def test_no_secret_in_any_output(chaos: ChaosRun) -> None:
    assert SECRET not in chaos.done.stdout + chaos.done.stderr
    for folder in (chaos.report_dir, chaos.evidence_dir):
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), encoding='utf-8', errors='replace') as handle:
                assert SECRET not in handle.read(), name


def test_endpoint_state_is_clean(chaos: ChaosRun) -> None:
    """Diagnosis changes nothing; every shell that can still be closed was closed, every command ended."""
    dirty = []
    for server in chaos.lab.servers:
        name = server.state.spec.name
        snapshot = server.state.snapshot()
        if snapshot.get('debug_logging') or snapshot.get('capture_running') or server.state.counters.get('forceupdates'):
            dirty.append('%s: %s' % (name, snapshot))
        if name not in SILENT | RESET_MID_RECEIVE and server.winrs.shells:
            dirty.append('%s: %d shell(s) left open' % (name, len(server.winrs.shells)))
    assert not dirty, dirty
