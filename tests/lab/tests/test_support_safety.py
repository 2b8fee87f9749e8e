# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The lab's emulation of the support bundle's endpoint-side safety net (docs/evidence.md, "Support-bundle actions").

support_start arms a one-shot task that stops debug logging and the capture by itself `delay_s` lab seconds
later, with no client involved; support_finish removes it. Requests are built by hand, as the contract
describes them; lab time runs at 1/200 so a 60 s safety net fires in 0.3 s.
"""

from __future__ import annotations

import time
import typing as t

import pytest

from tests.lab import Lab
from tests.lab.evidence import endpoint_clean, safety_nets

from .helpers import collect, command_line, request, run, session

SCALE = 0.005
WORK = 'C:\\Windows\\Temp\\tetra-support-20261128T023000Z-1a2b3c4d'
TASK = 'secure_endpoint.tetra support 20261128T023000Z-1a2b3c4d'


def net(delay_s: int = 60, capture: str = 'pktmon', **overrides: t.Any) -> dict[str, t.Any]:
    stop = {'pktmon': ['pktmon_stop'], 'netsh': ['netsh_trace_stop']}.get(capture, []) + ['sfc_log_stop']
    return dict({'task': TASK, 'delay_s': delay_s, 'time_limit_s': 600, 'stop': stop}, **overrides)


def start(lab: Lab, host: str = 'healthy', capture: str = 'pktmon', work: str = WORK, **fields: t.Any) -> dict[str, t.Any]:
    fields.setdefault('safety_net', net(capture=capture))
    return collect(lab, host, action='support_start', sections=[], capture=capture, capture_max_mb=64, work_dir=work, **fields)


def finish(lab: Lab, host: str = 'healthy', capture: str = 'pktmon', work: str = WORK, **fields: t.Any) -> dict[str, t.Any]:
    fields.setdefault('safety_net', net(capture=capture))
    return collect(lab, host, action='support_finish', sections=[], capture=capture, work_dir=work, **fields)


def wait_until(condition: t.Callable[[], bool], seconds: float) -> float:
    """Seconds it took for condition() to hold; fails after `seconds`."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < seconds, 'condition not reached within %.1f s' % seconds
        time.sleep(0.02)
    return time.monotonic() - began


@pytest.fixture
def lab(tetra_lab_factory: t.Callable[..., Lab]) -> Lab:
    return tetra_lab_factory('catalog', time_scale=SCALE)


def test_support_start_arms_the_safety_net_before_anything_starts(lab: Lab) -> None:
    doc = start(lab)
    support = doc['support']
    record = support['safety_net']
    assert support['refused'] is None and record['registered'] is True and record['error'] is None
    assert (record['task'], record['delay_s'], record['time_limit_s']) == (TASK, 60, 600)
    assert [a['command'] for a in record['actions']] == ['pktmon_stop', 'sfc_log_stop']
    assert record['actions'][0]['path'] == 'C:\\Windows\\System32\\pktmon.exe' and record['actions'][1]['path'].endswith('\\sfc.exe')
    assert record['actions'][1]['arguments'] == '-l stop'
    assert record['fires_at'] >= record['armed_at'] and record['fires_at'].endswith('Z')
    # The capture has both limits: its size, and the safety net's time.
    assert support['capture']['max_mb'] == 64 and support['capture']['stop_by'] == record['fires_at']
    state = lab.state('healthy')
    assert state.debug_logging and state.capture_running and safety_nets(state)[TASK].registered


def test_the_safety_net_ends_everything_without_any_client(lab: Lab) -> None:
    start(lab)
    state = lab.state('healthy')
    assert not endpoint_clean(state)
    armed = safety_nets(state)[TASK]
    took = wait_until(lambda: endpoint_clean(state), 5)
    assert armed.fired_at is not None and armed.fired_at >= armed.fires_at - 0.01
    assert took <= 60 * SCALE + 1.0
    assert not state.debug_logging and not state.capture_running


def test_a_normal_finish_removes_the_safety_net_and_nothing_fires_later(lab: Lab) -> None:
    start(lab, capture='netsh', safety_net=net(delay_s=120, capture='netsh'))
    doc = finish(lab, capture='netsh', safety_net=net(delay_s=120, capture='netsh'))
    record = doc['support']['safety_net']
    assert record == {'task': TASK, 'existed': True, 'fired': False, 'state': 'Ready', 'last_result': 267011, 'removed': True, 'error': None}
    state = lab.state('healthy')
    assert endpoint_clean(state)
    time.sleep(120 * SCALE + 0.3)
    assert safety_nets(state)[TASK].fired_at is None


def test_a_finish_after_the_safety_net_fired_says_so(lab: Lab) -> None:
    start(lab)
    state = lab.state('healthy')
    wait_until(lambda: endpoint_clean(state), 5)
    record = finish(lab)['support']['safety_net']
    assert record['existed'] is True and record['fired'] is True and record['removed'] is True


def test_a_request_without_safety_net_still_gets_one(lab: Lab) -> None:
    doc = collect(lab, 'healthy', action='support_start', sections=[], capture='none', work_dir='C:\\Windows\\Temp\\tetra-support-t9',
                  deadline_s=40)
    record = doc['support']['safety_net']
    assert record['task'] == 'secure_endpoint.tetra support t9' and record['delay_s'] == 3600 + 80
    assert [a['command'] for a in record['actions']] == ['sfc_log_stop'] and doc['support']['capture'] == {'tool': 'none', 'started': False}


@pytest.mark.parametrize('bad', [
    {'task': TASK + '\n'}, {'task': 'secure_endpoint.tetra support a\\b'}, {'task': 'other task'}, {'task': TASK + '*'},
    {'delay_s': 0}, {'delay_s': -60}, {'delay_s': 59}, {'delay_s': 10 ** 9}, {'delay_s': '600'},
    {'time_limit_s': 0}, {'stop': ['sfc_log_stop', 'calc']},
])
def test_an_unsafe_safety_net_means_nothing_starts(lab: Lab, bad: dict[str, t.Any]) -> None:
    doc = start(lab, safety_net=net(**bad))
    support = doc['support']
    assert support['refused'] == 'safety_net_failed' and support['safety_net']['registered'] is False
    assert support['safety_net']['error']['type'] == 'System.ArgumentException'
    assert 'debug_logging' not in support and 'capture' not in support
    state = lab.state('healthy')
    assert not state.debug_logging and not state.capture_running and TASK not in safety_nets(state)


def test_the_lost_answer_fault_still_arms_the_safety_net(lab: Lab) -> None:
    """The endpoint ran support_start but the client never got the answer: the endpoint still ends by itself."""
    state = lab.state('tls_interception')
    state.scenario['faults']['lose_answer'] = {'action': 'support_start'}
    try:
        out, dummy, rc = run(session(lab, 'tls_interception'), command_line(request(
            action='support_start', sections=[], capture='netsh', capture_max_mb=64, work_dir=WORK, safety_net=net(capture='netsh'))))
    finally:
        state.scenario['faults']['lose_answer'] = None
    assert rc == 0 and b'"support"' not in out
    assert state.debug_logging and state.capture_running
    wait_until(lambda: endpoint_clean(state), 5)
