# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_posture import ActionModule as PostureAction
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import (
    ampcli_missing, healthy_document, not_installed,
)


def test_healthy_817_connector_posture(fake_connection, run_action):
    result = run_action(PostureAction, fake_connection(healthy_document()))
    assert result['changed'] is False and not result.get('failed')
    assert (result['installed'], result['connector_version'], result['tetra_version']) == (True, '8.1.7.21417', 90606)
    assert result['agent_uuid'] == '5c6e64fa-7738-4b39-b201-15451e33bfe6'
    assert result['connected'] is True
    assert result['service']['name'] == 'CiscoAMP'
    assert result['timings']['attempts'] == 1


def test_connector_without_ampcli_still_has_versions_from_local_xml(fake_connection, run_action):
    result = run_action(PostureAction, fake_connection(ampcli_missing(healthy_document())))
    assert not result.get('failed')
    assert result['tetra_version'] == 90606 and result['tetra_version_source'] == 'local_xml'
    assert result['connected'] is None
    assert any('AmpCLI' in p for p in result['problems'])


def test_no_connector_is_a_clear_result_not_a_failure(fake_connection, run_action):
    result = run_action(PostureAction, fake_connection(not_installed(healthy_document())))
    assert not result.get('failed')
    assert result['installed'] is False
    assert result['msg'] == 'No Secure Endpoint connector is installed on this host'


def test_posture_sends_exactly_one_command_and_runs_in_check_mode(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(PostureAction, connection, check_mode=True)
    assert len(connection.commands) == 1 and result['installed'] is True


@pytest.mark.parametrize('answer, key, text', [
    ((0, b'Windows PowerShell\r\nCopyright (C) Microsoft', b''), 'failed', 'did not return one JSON document'),
    ((1, b'', b'#< CLIXML\r\n<Objs><S S="Error">Access is denied._x000D__x000A_</S></Objs>'), 'failed', 'Access is denied.'),
    (AnsibleConnectionFailure('basic: the specified credentials were rejected by the server'), 'unreachable', 'authentication failed'),
    (AnsibleConnectionFailure('HTTPConnectionPool(host=127.0.9.9, port=5985): Max retries exceeded (Connection refused)'), 'unreachable', 'Connection refused'),
])
def test_bad_endpoint_output_and_connection_failures(answer, key, text, fake_connection, run_action):
    result = run_action(PostureAction, fake_connection(answer))
    assert result[key] is True
    assert text in result['msg']


def test_evidence_dir_keeps_redacted_raw_evidence(tmp_path, fake_connection, run_action):
    document = healthy_document()
    document['files']['policy_xml'] = {'path': 'p', 'readable': True, 'error': None,
                                       'text': '<config><proxy><password>hunter2</password></proxy></config>'}
    result = run_action(PostureAction, fake_connection(document), {'evidence_dir': str(tmp_path)}, host='ep/7')
    # 'ep/7' is not a file name as it is: the cleaned name gets a short hash of the real one, so a host named
    # 'ep_7' keeps 'ep_7.json' to itself (issue 12); the record still names the real host for analyze.yml.
    name = 'ep_7-%s.json' % hashlib.sha256(b'ep/7').hexdigest()[:8]
    saved = json.loads((tmp_path / name).read_text())
    assert result['evidence_path'] == os.path.join(str(tmp_path), name)
    assert saved['evidence']['host'] == document['host'] and saved['host'] == 'ep/7'
    assert 'hunter2' not in json.dumps(saved)


def test_unknown_option_is_rejected_before_contacting_the_endpoint(fake_connection, run_action):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match='Unsupported parameters .* bogus'):
        run_action(PostureAction, connection, {'bogus': 1})
    assert connection.commands == []


def test_max_answer_mb_caps_the_answer_and_gives_evidence_invalid_quoting_its_start(fake_connection, run_action):
    big = json.dumps(dict(healthy_document(), padding='P' * (1024 * 1024))).encode('utf-8')
    # The default cap (16 MB) takes this 1 MB document ...
    assert run_action(DiagnoseAction, fake_connection((0, big, b'')))['verdict']['cause'] != 'evidence_invalid'
    # ... max_answer_mb: 1 refuses it without parsing it, quoting its start, timings kept.
    result = run_action(DiagnoseAction, fake_connection((0, big, b'')), {'max_answer_mb': 1})
    verdict = result['verdict']
    assert not result.get('failed') and (verdict['status'], verdict['cause']) == ('unknown', 'evidence_invalid')
    assert 'more than the 1 MB' in verdict['evidence'][0] and 'max_answer_mb' in verdict['evidence'][0]
    assert big[:20].decode() in verdict['evidence'][0] and len(verdict['evidence'][0]) < 1000
    assert verdict['timings']['attempts'] == 1
    posture = run_action(PostureAction, fake_connection((0, big, b'')), {'max_answer_mb': 1})
    assert posture['failed'] is True and 'more than the 1 MB' in posture['msg']
