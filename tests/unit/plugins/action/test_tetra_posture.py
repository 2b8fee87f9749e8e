# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os
from unittest.mock import MagicMock

import pytest

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_posture import ActionModule as PostureAction
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import (
    ampcli_missing, healthy_document, not_installed, revocation_blocked,
)


class RecordedConnection:
    """Answers exec_command with recorded endpoint output."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.commands = []
        self._shell = MagicMock()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        self.commands.append(cmd)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def reset(self):
        pass


def output(document: dict) -> tuple[int, bytes, bytes]:
    return 0, json.dumps(document).encode('utf-8'), b''


def make_action(cls, connection, args=None, check_mode=False):
    task = MagicMock()
    task.args = args or {}
    task.check_mode = check_mode
    task.async_val = 0
    task.action = 'secure_endpoint.tetra.' + cls.__module__.rsplit('.', 1)[-1]
    action = cls(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    action._load_name = task.action  # set by the plugin loader in a real run; 2.18's arg validation reads it
    return action


def run(cls, connection, args=None, check_mode=False, host='ep-1'):
    return make_action(cls, connection, args, check_mode).run(task_vars={'inventory_hostname': host})


def test_healthy_817_connector_posture():
    result = run(PostureAction, RecordedConnection(output(healthy_document())))
    assert result['changed'] is False and not result.get('failed')
    assert (result['installed'], result['connector_version'], result['tetra_version']) == (True, '8.1.7.21417', 90606)
    assert result['agent_uuid'] == '5c6e64fa-7738-4b39-b201-15451e33bfe6'
    assert result['connected'] is True
    assert result['service']['name'] == 'CiscoAMP'
    assert result['timings']['attempts'] == 1


def test_connector_without_ampcli_still_has_versions_from_local_xml():
    result = run(PostureAction, RecordedConnection(output(ampcli_missing(healthy_document()))))
    assert not result.get('failed')
    assert result['tetra_version'] == 90606 and result['tetra_version_source'] == 'local_xml'
    assert result['connected'] is None
    assert any('AmpCLI' in p for p in result['problems'])


def test_no_connector_is_a_clear_result_not_a_failure():
    result = run(PostureAction, RecordedConnection(output(not_installed(healthy_document()))))
    assert not result.get('failed')
    assert result['installed'] is False
    assert result['msg'] == 'No Secure Endpoint connector is installed on this host'


def test_posture_sends_exactly_one_command_and_runs_in_check_mode():
    connection = RecordedConnection(output(healthy_document()))
    result = run(PostureAction, connection, check_mode=True)
    assert len(connection.commands) == 1 and result['installed'] is True


@pytest.mark.parametrize('answer, key, text', [
    ((0, b'Windows PowerShell\r\nCopyright (C) Microsoft', b''), 'failed', 'did not return one JSON document'),
    ((1, b'', b'#< CLIXML\r\n<Objs><S S="Error">Access is denied._x000D__x000A_</S></Objs>'), 'failed', 'Access is denied.'),
    (AnsibleConnectionFailure('basic: the specified credentials were rejected by the server'), 'unreachable', 'authentication failed'),
    (AnsibleConnectionFailure('HTTPConnectionPool(host=127.0.9.9, port=5985): Max retries exceeded (Connection refused)'), 'unreachable', 'Connection refused'),
])
def test_bad_endpoint_output_and_connection_failures(answer, key, text):
    result = run(PostureAction, RecordedConnection(answer))
    assert result[key] is True
    assert text in result['msg']


def test_evidence_dir_keeps_redacted_raw_evidence(tmp_path):
    document = healthy_document()
    document['files']['policy_xml'] = {'path': 'p', 'readable': True, 'error': None,
                                       'text': '<config><proxy><password>hunter2</password></proxy></config>'}
    result = run(PostureAction, RecordedConnection(output(document)), {'evidence_dir': str(tmp_path)}, host='ep/7')
    # 'ep/7' is not a file name as it is: the cleaned name gets a short hash of the real one, so a host named
    # 'ep_7' keeps 'ep_7.json' to itself (issue 12); the record still names the real host for analyze.yml.
    name = 'ep_7-%s.json' % hashlib.sha256(b'ep/7').hexdigest()[:8]
    saved = json.loads((tmp_path / name).read_text())
    assert result['evidence_path'] == os.path.join(str(tmp_path), name)
    assert saved['evidence']['host'] == document['host'] and saved['host'] == 'ep/7'
    assert 'hunter2' not in json.dumps(saved)


def test_unknown_option_is_rejected_before_contacting_the_endpoint():
    connection = RecordedConnection()
    with pytest.raises(AnsibleActionFail, match='Unsupported parameters .* bogus'):
        run(PostureAction, connection, {'bogus': 1})
    assert connection.commands == []


@pytest.mark.parametrize('server', ["tetra'; Remove-Item C:\\", 'a b', '$(whoami)', 'x\ny', 'tetra-defs.amp.cisco.com;calc'])
def test_hostile_update_server_is_rejected(server):
    connection = RecordedConnection()
    with pytest.raises(AnsibleActionFail, match='update_server must be a DNS host name'):
        run(DiagnoseAction, connection, {'update_server': server})
    assert connection.commands == []


def test_diagnose_returns_a_verdict_with_timings():
    result = run(DiagnoseAction, RecordedConnection(output(revocation_blocked(healthy_document()))), {'latest_version': 90606})
    verdict = result['verdict']
    assert (verdict['status'], verdict['cause'], verdict['host']) == ('failing', 'revocation_check_failed', 'ep-1')
    assert verdict['timings']['round_trip_ms'] >= 0
    assert result['changed'] is False


@pytest.mark.parametrize('return_facts', [True, False])
def test_diagnose_returns_the_parsed_facts_only_when_asked(return_facts):
    args = {'latest_version': 90606, 'return_facts': return_facts}
    result = run(DiagnoseAction, RecordedConnection(output(revocation_blocked(healthy_document()))), args)
    assert ('facts' in result) is return_facts
    assert result['verdict']['cause'] == 'revocation_check_failed' and result['freshness']['latest'] == 90606


def test_diagnose_turns_garbage_into_an_unknown_verdict_not_a_failure():
    result = run(DiagnoseAction, RecordedConnection((0, b'\x00\xff garbage', b'')))
    assert not result.get('failed')
    assert (result['verdict']['status'], result['verdict']['cause']) == ('unknown', 'evidence_invalid')


def test_diagnose_replays_saved_evidence_without_a_connection(tmp_path):
    connection = RecordedConnection(output(revocation_blocked(healthy_document())))
    first = run(DiagnoseAction, connection, {'evidence_dir': str(tmp_path), 'latest_version': 90606})
    replay = run(DiagnoseAction, RecordedConnection(), {'evidence_file': first['evidence_path'], 'latest_version': 90606})
    for key in ('status', 'cause', 'evidence', 'secondary'):
        assert replay['verdict'][key] == first['verdict'][key]


def test_diagnose_copies_the_call_timings_into_an_invalid_evidence_verdict():
    result = run(DiagnoseAction, RecordedConnection((0, b'not evidence', b'')))
    verdict = result['verdict']
    assert verdict['cause'] == 'evidence_invalid'
    assert verdict['timings']['attempts'] == 1 and verdict['timings']['round_trip_ms'] >= 0
    assert verdict['timings']['bound_s'] == 70 and result['timings'] == verdict['timings']


def test_diagnose_replay_of_invalid_output_keeps_its_timings(tmp_path):
    first = run(DiagnoseAction, RecordedConnection((0, b'not evidence', b'')), {'evidence_dir': str(tmp_path)})
    saved = os.path.join(str(tmp_path), 'ep-1.json')
    replay = run(DiagnoseAction, RecordedConnection(), {'evidence_file': saved})
    assert replay['verdict']['cause'] == 'evidence_invalid'
    assert replay['verdict']['timings'] == first['verdict']['timings']


def test_max_answer_mb_caps_the_answer_and_gives_evidence_invalid_quoting_its_start():
    big = json.dumps(dict(healthy_document(), padding='P' * (1024 * 1024))).encode('utf-8')
    # The default cap (16 MB) takes this 1 MB document ...
    assert run(DiagnoseAction, RecordedConnection((0, big, b'')))['verdict']['cause'] != 'evidence_invalid'
    # ... max_answer_mb: 1 refuses it without parsing it, quoting its start, timings kept.
    result = run(DiagnoseAction, RecordedConnection((0, big, b'')), {'max_answer_mb': 1})
    verdict = result['verdict']
    assert not result.get('failed') and (verdict['status'], verdict['cause']) == ('unknown', 'evidence_invalid')
    assert 'more than the 1 MB' in verdict['evidence'][0] and 'max_answer_mb' in verdict['evidence'][0]
    assert big[:20].decode() in verdict['evidence'][0] and len(verdict['evidence'][0]) < 1000
    assert verdict['timings']['attempts'] == 1
    posture = run(PostureAction, RecordedConnection((0, big, b'')), {'max_answer_mb': 1})
    assert posture['failed'] is True and 'more than the 1 MB' in posture['msg']


@pytest.mark.parametrize('value', [0, 257, -1])
def test_max_answer_mb_out_of_bounds_is_rejected_before_contacting_the_endpoint(value):
    connection = RecordedConnection()
    with pytest.raises(AnsibleActionFail, match='max_answer_mb must be a whole number of MB from 1 to 256'):
        run(DiagnoseAction, connection, {'max_answer_mb': value})
    assert connection.commands == []
