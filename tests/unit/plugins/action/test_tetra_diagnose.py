# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_diagnose through the shared fake connection: the verdict, its timings, invalid output and offline replay."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import typing as t

import pytest

from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.secure_endpoint.tetra.plugins.action import tetra_diagnose as diagnose_module
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import healthy_document, revocation_blocked


def test_an_up_to_date_host_is_ok(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(DiagnoseAction, connection, {'latest_version': 90606})
    assert (result['verdict']['status'], result['verdict']['cause']) == ('ok', 'up_to_date') and result['changed'] is False
    assert connection.actions == ['collect'] and result['freshness']['latest'] == 90606 and result['facts']['tetra_version'] == 90606


def test_check_mode_only_reads_so_it_gives_the_same_verdict(fake_connection, run_action):
    connection = fake_connection(revocation_blocked(healthy_document()))
    result = run_action(DiagnoseAction, connection, {'latest_version': 90606}, check_mode=True)
    assert result['verdict']['cause'] == 'revocation_check_failed' and len(connection.calls) == 1 and result['changed'] is False


@pytest.mark.parametrize('content, text', [
    (None, 'Cannot read saved evidence'),
    ('not json', 'Cannot read saved evidence'),
    (json.dumps({'format': 1, 'action': 'collect'}), re.escape('is neither a saved evidence file (no "evidence" key) nor an evidence document')),
], ids=['missing file', 'not JSON', 'neither record nor document'])
def test_an_evidence_file_that_is_not_evidence_fails_clearly_without_a_connection(tmp_path, content, text, fake_connection, run_action):
    path = tmp_path / 'ep-1.json'
    if content is not None:
        path.write_text(content, encoding='utf-8')
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match=text):
        run_action(DiagnoseAction, connection, {'evidence_file': str(path)})
    assert connection.calls == []


@pytest.mark.parametrize('server', ["tetra'; Remove-Item C:\\", 'a b', '$(whoami)', 'x\ny', 'tetra-defs.amp.cisco.com;calc'])
def test_hostile_update_server_is_rejected(server, fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match='update_server must be a DNS host name'):
        run_action(DiagnoseAction, connection, {'update_server': server})
    assert connection.commands == []


def test_diagnose_returns_a_verdict_with_timings(fake_connection, run_action):
    result = run_action(DiagnoseAction, fake_connection(revocation_blocked(healthy_document())), {'latest_version': 90606})
    verdict = result['verdict']
    assert (verdict['status'], verdict['cause'], verdict['host']) == ('failing', 'revocation_check_failed', 'ep-1')
    assert verdict['timings']['round_trip_ms'] >= 0
    assert result['changed'] is False


@pytest.mark.parametrize('return_facts', [True, False])
def test_diagnose_returns_the_parsed_facts_only_when_asked(return_facts, fake_connection, run_action):
    args = {'latest_version': 90606, 'return_facts': return_facts}
    result = run_action(DiagnoseAction, fake_connection(revocation_blocked(healthy_document())), args)
    assert ('facts' in result) is return_facts
    assert result['verdict']['cause'] == 'revocation_check_failed' and result['freshness']['latest'] == 90606


def test_diagnose_turns_garbage_into_an_unknown_verdict_not_a_failure(fake_connection, run_action):
    result = run_action(DiagnoseAction, fake_connection((0, b'\x00\xff garbage', b'')))
    assert not result.get('failed')
    assert (result['verdict']['status'], result['verdict']['cause']) == ('unknown', 'evidence_invalid')


def test_diagnose_replays_saved_evidence_without_a_connection(tmp_path, fake_connection, run_action):
    connection = fake_connection(revocation_blocked(healthy_document()))
    first = run_action(DiagnoseAction, connection, {'evidence_dir': str(tmp_path), 'latest_version': 90606})
    replay = run_action(DiagnoseAction, fake_connection(), {'evidence_file': first['evidence_path'], 'latest_version': 90606})
    for key in ('status', 'cause', 'evidence', 'secondary'):
        assert replay['verdict'][key] == first['verdict'][key]


def test_diagnose_copies_the_call_timings_into_an_invalid_evidence_verdict(fake_connection, run_action):
    result = run_action(DiagnoseAction, fake_connection((0, b'not evidence', b'')))
    verdict = result['verdict']
    assert verdict['cause'] == 'evidence_invalid'
    assert verdict['timings']['attempts'] == 1 and verdict['timings']['round_trip_ms'] >= 0
    assert verdict['timings']['bound_s'] == 70 and result['timings'] == verdict['timings']


def test_diagnose_replay_of_invalid_output_keeps_its_timings(tmp_path, fake_connection, run_action):
    first = run_action(DiagnoseAction, fake_connection((0, b'not evidence', b'')), {'evidence_dir': str(tmp_path)})
    saved = os.path.join(str(tmp_path), 'ep-1.json')
    replay = run_action(DiagnoseAction, fake_connection(), {'evidence_file': saved})
    assert replay['verdict']['cause'] == 'evidence_invalid'
    assert replay['verdict']['timings'] == first['verdict']['timings']


@pytest.mark.parametrize('value', [0, 257, -1])
def test_max_answer_mb_out_of_bounds_is_rejected_before_contacting_the_endpoint(value, fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match='max_answer_mb must be a whole number of MB from 1 to 256'):
        run_action(DiagnoseAction, connection, {'max_answer_mb': value})
    assert connection.commands == []


def run_from_vars(make_action: t.Any, connection: t.Any, args: dict[str, t.Any], host_vars: dict[str, t.Any]) -> dict[str, t.Any]:
    """One tetra_diagnose task with from_vars, on a host whose variables are ``host_vars``."""
    task_vars = dict(host_vars, inventory_hostname='ep-1')
    action = make_action(DiagnoseAction, connection, dict(args, from_vars=True))
    action._templar = Templar(loader=DataLoader(), variables=task_vars)
    return action.run(task_vars=task_vars)


def test_from_vars_takes_the_role_variables_and_leaves_out_the_facts_when_the_latest_version_is_given(fake_connection, make_action):
    connection = fake_connection(revocation_blocked(healthy_document()))
    host_vars = {'tetra_latest_version': 90606, 'tetra_deadline': 55, 'tetra_context': 'user', 'tetra_concurrent': False,
                 'tetra_proxy_server': None, 'tetra_revocation_hosts': [], 'tetra_update_server': '', 'tetra_latest_fetch': True}
    result = run_from_vars(make_action, connection, {}, host_vars)
    request = connection.request()
    assert (request['deadline_s'], request['context'], request['concurrent']) == (55, 'user', False)
    assert result['freshness'] == {'latest': 90606, 'source': 'given', 'max_behind': 5, 'max_age_hours': 24.0}
    assert 'facts' not in result and result['verdict']['cause'] == 'revocation_check_failed'


def test_from_vars_judges_with_the_fetched_version_and_task_arguments_win(fake_connection, make_action):
    connection = fake_connection(healthy_document())
    result = run_from_vars(make_action, connection, {'deadline': 30}, {'tetra_latest_fetched': 90606, 'tetra_deadline': 55})
    assert connection.request()['deadline_s'] == 30
    assert (result['freshness']['latest'], result['freshness']['source']) == (90606, 'versions.id') and 'facts' not in result


def test_from_vars_without_a_latest_version_returns_the_facts_the_report_needs(fake_connection, make_action):
    result = run_from_vars(make_action, fake_connection(healthy_document()), {}, {'tetra_latest_fetched': None, 'tetra_max_age_hours': ''})
    assert result['freshness']['source'] == 'unknown' and result['facts']['tetra_version'] == 90606


def test_from_vars_reports_a_bad_variable_by_its_option(fake_connection, make_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match='update_server must be a DNS host name'):
        run_from_vars(make_action, connection, {}, {'tetra_update_server': 'a b'})
    assert connection.commands == []


def test_a_task_without_timeout_is_bounded_by_the_backstop(fake_connection, make_action, monkeypatch):
    """The role's task sets no timeout keyword: the action's own alarm ends a run that outlives its bound."""
    monkeypatch.setattr(diagnose_module, 'announced_bound_s', lambda deadline: 0)
    monkeypatch.setattr(diagnose_module, 'BACKSTOP_MARGIN_S', 1)
    connection = fake_connection(lambda: (time.sleep(5), healthy_document())[1])
    action = make_action(DiagnoseAction, connection, {'latest_version': 90606})
    action._task.timeout = 0
    handler_before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    result = action.run(task_vars={'inventory_hostname': 'ep-1'})
    assert time.monotonic() - started < 4
    assert result['failed'] is True and 'did not return within 1 s' in result['msg']
    assert signal.getsignal(signal.SIGALRM) is handler_before and signal.alarm(0) == 0


def test_a_task_with_its_own_timeout_gets_no_second_alarm(fake_connection, make_action, monkeypatch):
    armed = []
    monkeypatch.setattr(diagnose_module, 'backstop_alarm', armed.append)
    action = make_action(DiagnoseAction, fake_connection(healthy_document()), {'latest_version': 90606})
    action._task.timeout = 100
    assert action.run(task_vars={'inventory_hostname': 'ep-1'})['verdict']['status'] == 'ok' and armed == []
