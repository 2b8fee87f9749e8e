# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_diagnose through the shared fake connection: the verdict, its timings, invalid output and offline replay."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible.errors import AnsibleActionFail

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
