# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import time

import pytest

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_selftest import ActionModule as SelftestAction
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import healthy_document


def read(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def test_healthy_endpoint_passes_and_evidence_is_saved(tmp_path, fake_connection, run_action):
    connection = fake_connection(healthy_document())
    result = run_action(SelftestAction, connection, {'evidence_dir': str(tmp_path)})
    assert not result.get('failed'), result['msg']
    assert result['summary'] == {'total': len(result['checks']), 'passed': len(result['checks']), 'failed': 0, 'skipped': 0}
    assert len(result['checks']) > 40
    assert result['msg'] == 'ep-1: all %d self-test checks passed. Evidence saved to %s.' % (len(result['checks']), tmp_path / 'ep-1.json')
    assert result['table'][0].split() == ['section', 'check', 'result', 'detail'] and len(result['table']) == len(result['checks']) + 2
    assert len(connection.commands) == 1 and result['changed'] is False
    record = read(result['evidence_path'])
    assert record['evidence']['host'] == healthy_document()['host'] and record['request'] == connection.request()
    assert 'request' not in result  # kept in the saved file, not repeated in the task result
    assert record['checks'] == result['checks'] and record['selftest'] is True


def test_the_answer_is_awaited_within_the_per_host_bound(tmp_path, fake_connection, run_action):
    slow = fake_connection(lambda: time.sleep(0.3) or healthy_document())  # an endpoint takes a moment to answer, as every real one does
    result = run_action(SelftestAction, slow, {'evidence_dir': str(tmp_path)})
    assert not result.get('failed') and not result.get('unreachable'), result.get('msg')
    assert result['timings']['bound_s'] == 70 and 300 <= result['timings']['elapsed_ms'] < 70000


def test_sends_exactly_the_request_tetra_diagnose_sends(tmp_path, fake_connection, run_action):
    args = {'evidence_dir': str(tmp_path), 'region': 'eu', 'context': 'user', 'timeouts': {'tls': 20}}
    selftest, diagnose = fake_connection(healthy_document()), fake_connection(healthy_document())
    run_action(SelftestAction, selftest, args)
    run_action(DiagnoseAction, diagnose, {key: value for key, value in args.items() if key != 'evidence_dir'})
    assert selftest.request() == diagnose.request()
    assert selftest.request()['sections'] == ['install', 'posture', 'files', 'system', 'dns', 'tls', 'curl', 'http', 'roots', 'proxy']


def test_wrong_shape_fails_the_host_naming_the_checks(tmp_path, fake_connection, run_action):
    document = healthy_document()
    document['install'] = [document['install']]
    del document['probes']['tls']['chain']
    result = run_action(SelftestAction, fake_connection(document), {'evidence_dir': str(tmp_path)})
    assert result['failed'] is True
    assert 'install/required keys and types (install: expected an object' in result['msg']
    assert 'tls/chain present when the handshake reached the certificate (' in result['msg']
    assert result['msg'].endswith('Evidence saved to %s.' % (tmp_path / 'ep-1.json'))
    assert {(r['section'], r['check']) for r in result['failures']} >= {('install', 'required keys and types'), ('tls', 'required keys and types')}
    assert read(tmp_path / 'ep-1.json')['evidence']['install'] == document['install']


def test_output_that_is_not_json_is_kept_whole(tmp_path, fake_connection, run_action):
    garbage = 'Windows PowerShell\r\n' + 'x' * 2000
    result = run_action(SelftestAction, fake_connection((0, garbage.encode('utf-8'), b'')), {'evidence_dir': str(tmp_path)})
    assert result['failed'] is True and 'document/one JSON evidence object' in result['msg']
    record = read(tmp_path / 'ep-1.json')
    assert record['raw_stdout'] == garbage and record['evidence']['invalid_output']['failed'] is True


def test_default_folder_is_tetra_selftest(tmp_path, monkeypatch, fake_connection, run_action):
    monkeypatch.chdir(tmp_path)
    result = run_action(SelftestAction, fake_connection(healthy_document()))
    assert result['evidence_path'] == os.path.join('tetra-selftest', 'ep-1.json')
    assert (tmp_path / 'tetra-selftest' / 'ep-1.json').exists()


def test_unreachable_endpoint_is_unreachable(tmp_path, fake_connection, run_action):
    failure = AnsibleConnectionFailure('HTTPConnectionPool(host=127.0.9.9, port=5985): Max retries exceeded (Connection refused)')
    result = run_action(SelftestAction, fake_connection(failure), {'evidence_dir': str(tmp_path)})
    assert result['unreachable'] is True and 'Connection refused' in result['msg']
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize('encoding, bom', [('utf-8', b''), ('utf-8', b'\xef\xbb\xbf'), ('utf-16-le', b'\xff\xfe')],
                         ids=['utf-8', 'utf-8 with BOM', 'utf-16le with BOM (PowerShell 5.1 >)'])
def test_analyze_replays_the_bare_document_an_administrator_wrote(tmp_path, encoding, bom, fake_connection, run_action):
    """Without WinRM: the script's own output file, in each encoding Windows writes, gives the verdict."""
    document = healthy_document()
    document['host']['os_caption'] = 'Microsoft Windows 11 Professionnel \u00e9dition'
    path = tmp_path / 'ep-9.json'
    path.write_bytes(bom + (json.dumps(document, ensure_ascii=False) + '\r\n').encode(encoding))
    result = run_action(DiagnoseAction, fake_connection(), {'evidence_file': str(path), 'latest_version': 90606}, host='ep-9')
    assert not result.get('failed'), result
    assert (result['verdict']['status'], result['verdict']['cause']) == ('ok', 'up_to_date')
    assert result['facts']['host']['os_caption'].endswith('\u00e9dition')
