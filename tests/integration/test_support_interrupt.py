# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A support-bundle run whose controller is killed (SIGKILL) still leaves the endpoint clean (issue 12, item 1).

``collect_support.yml`` and ``ansible -m secure_endpoint.tetra.tetra_support_bundle`` run against the lab and
are killed, with every worker process they forked (Ansible's workers detach into their own session, so a
SIGKILL to the main process alone would let the worker finish the run), right after ``support_start``,
in the middle of the wait, and during ``support_finish``. Nothing on the controller can clean up after
SIGKILL; the endpoint's own safety net (a one-shot task armed by support_start at start + wait + deadline
+ 120 s) must stop debug logging and the capture within that margin. The lab runs at 1/50 of lab time, so
that margin is a few real seconds; the controller's own wait is real time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import typing as t

import pytest
import yaml
from tests.paths import REPO_ROOT

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
VENV_BIN = os.path.dirname(sys.executable)
SCENARIOS = os.path.join(REPO_ROOT, 'tests', 'lab', 'scenarios', 'catalog.yml')
COLLECT = 'playbooks/collect_support.yml'
MODULE = 'secure_endpoint.tetra.tetra_support_bundle'
SCALE = 0.02
DEADLINE = 60
SLACK_S = 120  # plugins/plugin_utils/_remediation.py SAFETY_NET_SLACK_S
TOLERANCE_S = 1.5
HOSTS = {
    'kill_after_start': {},
    'kill_mid_wait': {},
    # support_finish takes 400 lab seconds (8 s here), so the kill lands while it runs.
    'kill_in_finish': {'latency': {'support_bundle_ms': 400000}},
    'not_killed': {},
}


@pytest.fixture(scope='module')
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    from tests.lab.lab import Lab  # pylint: disable=import-outside-toplevel
    folder = tmp_path_factory.mktemp('interrupt-lab')
    fleet = {'latest_version': 90606, 'credentials': {'user': 'ansible', 'password': 'Lab-Passw0rd!'}, 'transport': 'ntlm',
             'scenario_files': [SCENARIOS], 'hosts': [{'name': name, 'scenario': 'healthy', 'overrides': overrides} for name, overrides in HOSTS.items()]}
    path = folder / 'fleet.yml'
    path.write_text(yaml.safe_dump(fleet), encoding='utf-8')
    started = Lab(str(path), workdir=str(folder), inventory=str(folder / 'lab.ini'), time_scale=SCALE).start()
    try:
        yield started
    finally:
        started.stop()


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc), collected before anything is killed."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, encoding='utf-8', errors='replace') as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_controller(process: subprocess.Popen[str]) -> list[int]:
    """SIGKILL to the ansible process and every worker it forked: nothing on the controller can clean up."""
    tree = descendants(process.pid)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)
    return tree


def launch(args: list[str], env: dict[str, str], log_name: str) -> tuple[subprocess.Popen[str], t.Any]:
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    log = open(os.path.join(OUTPUT_DIR, log_name), 'w', encoding='utf-8')  # pylint: disable=consider-using-with  # closed by the test
    log.write('$ %s\n' % ' '.join(args))
    log.flush()
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)  # pylint: disable=consider-using-with
    return process, log


def playbook(lab: t.Any, host: str, dest: str, wait: int) -> list[str]:
    variables = {'tetra_support_wait': wait, 'tetra_support_deadline': DEADLINE, 'tetra_support_capture': 'pktmon', 'tetra_support_dest': dest}
    return [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', lab.inventory_path, COLLECT, '-l', host, '-e', json.dumps(variables)]


def adhoc(lab: t.Any, host: str, dest: str, wait: int) -> list[str]:
    return [os.path.join(VENV_BIN, 'ansible'), host, '-i', lab.inventory_path, '-m', MODULE,
            '-a', 'dest=%s capture=netsh wait=%d deadline=%d' % (dest, wait, DEADLINE)]


def wait_for(condition: t.Callable[[], bool], seconds: float, what: str, process: subprocess.Popen[str] | None = None) -> None:
    limit = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail('the controller ended (rc %s) before %s' % (process.returncode, what))
        assert time.monotonic() < limit, 'not reached within %.0f s: %s' % (seconds, what)
        time.sleep(0.02)


def safety_net_of(lab: t.Any, host: str) -> t.Any:
    from tests.lab.evidence import safety_nets  # pylint: disable=import-outside-toplevel
    nets = list(safety_nets(lab.state(host)).values())
    assert len(nets) == 1, nets
    return nets[0]


def assert_clean_within_margin(lab: t.Any, host: str, wait: int) -> float:
    """The endpoint is clean (debug logging off, capture stopped, task gone or fired) by the time the safety net is due."""
    from tests.lab.evidence import endpoint_clean  # pylint: disable=import-outside-toplevel
    state = lab.state(host)
    net = safety_net_of(lab, host)
    assert net.delay_s == wait + DEADLINE + SLACK_S
    assert abs((net.fires_at - net.armed_at) - net.delay_s * SCALE) < 0.01
    limit = net.fires_at + TOLERANCE_S
    while not endpoint_clean(state):
        assert time.time() < limit, 'the endpoint was not clean %.1f s after the safety net was due' % TOLERANCE_S
        time.sleep(0.02)
    assert not state.debug_logging and not state.capture_running
    assert net.fired_at is not None or net.removed_at is not None
    return time.time() - net.armed_at


def test_kill_right_after_support_start(lab, ansible_env, tmp_path):
    host, wait = 'kill_after_start', 30
    process, log = launch(playbook(lab, host, str(tmp_path), wait), ansible_env, 'support-kill-after-start.log')
    try:
        wait_for(lambda: lab.requests(host=host, action='support_start'), 120, 'support_start answered', process)
        tree = kill_controller(process)
    finally:
        log.close()
    assert len(tree) >= 2, 'expected the ansible-playbook process and its worker: %s' % tree
    state = lab.state(host)
    assert state.debug_logging and state.capture_running, 'still running right after the kill: only the safety net can end it'
    took = assert_clean_within_margin(lab, host, wait)
    net = safety_net_of(lab, host)
    assert net.fired_at is not None and net.removed_at is None
    assert not lab.requests(host=host, action='support_finish'), 'a killed controller cannot have sent support_finish'
    assert took <= (wait + DEADLINE + SLACK_S) * SCALE + TOLERANCE_S


def test_kill_in_the_middle_of_the_wait(lab, ansible_env, tmp_path):
    host, wait = 'kill_mid_wait', 30
    process, log = launch(adhoc(lab, host, str(tmp_path), wait), ansible_env, 'support-kill-mid-wait.log')
    try:
        wait_for(lambda: lab.requests(host=host, action='support_start'), 120, 'support_start answered', process)
        time.sleep(1.5)
        assert process.poll() is None, 'the controller should still be waiting'
        kill_controller(process)
    finally:
        log.close()
    state = lab.state(host)
    assert state.debug_logging and state.capture_running
    assert_clean_within_margin(lab, host, wait)
    assert safety_net_of(lab, host).fired_at is not None
    assert not lab.requests(host=host, action='support_finish')


def test_kill_during_support_finish(lab, ansible_env, tmp_path):
    host, wait = 'kill_in_finish', 1
    state = lab.state(host)
    process, log = launch(playbook(lab, host, str(tmp_path), wait), ansible_env, 'support-kill-in-finish.log')
    try:
        wait_for(lambda: lab.requests(host=host, action='support_start'), 120, 'support_start answered', process)
        commands = state.counters['commands']
        wait_for(lambda: state.counters['commands'] > commands, 30, 'support_finish started', process)
        time.sleep(1.0)
        assert process.poll() is None, 'support_finish should still be running'
        kill_controller(process)
    finally:
        log.close()
    assert_clean_within_margin(lab, host, wait)
    # support_finish reached the endpoint, which finishes it whatever the client does: it removed the task.
    assert safety_net_of(lab, host).removed_at is not None


def test_an_uninterrupted_run_removes_its_safety_net(lab, ansible_env, tmp_path):
    host, wait = 'not_killed', 1
    process, log = launch(adhoc(lab, host, str(tmp_path), wait), ansible_env, 'support-not-killed.log')
    try:
        rc = process.wait(180)
    finally:
        log.close()
    with open(os.path.join(OUTPUT_DIR, 'support-not-killed.log'), encoding='utf-8') as handle:
        output = handle.read()
    assert rc == 0, output[-3000:]
    net = safety_net_of(lab, host)
    assert net.removed_at is not None and net.fired_at is None, 'the normal finish must remove the task before it fires'
    assert '"safety_net_removed": true' in output
    time.sleep(max(0.0, net.fires_at - time.time()) + 0.3)
    assert net.fired_at is None
