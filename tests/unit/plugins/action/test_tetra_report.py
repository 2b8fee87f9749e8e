# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import typing as t
from unittest.mock import MagicMock

import pytest
import yaml

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.secure_endpoint.tetra.plugins.action import tetra_report
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_report import ARGUMENT_SPEC, ActionModule
from ansible_collections.secure_endpoint.tetra.plugins.modules import tetra_report as docs
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _report

CHECKED = '2026-11-28T02:31:00Z'


def verdict(status: str, cause: str, tetra: int | None = 90606, source: str = 'versions.id') -> dict[str, t.Any]:
    return {'host': 'x', 'status': status, 'cause': cause, 'summary': cause, 'evidence': ['line'], 'action': 'do it',
            'remediable': False, 'secondary': [],
            'versions': {'connector': '8.1.7', 'tetra': tetra, 'latest': None if source == 'unknown' else 90606,
                         'latest_source': source, 'behind': None},
            'last_success': None, 'age_hours': None, 'timings': {'endpoint_ms': 1, 'round_trip_ms': 2}, 'checked_at': CHECKED}


def make_action(args: dict[str, t.Any], check_mode: bool = False) -> ActionModule:
    task = MagicMock(Task)
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    task.action = 'secure_endpoint.tetra.tetra_report'
    connection = MagicMock()
    return ActionModule(task, connection, MagicMock(), loader=None, templar=None, shared_loader_obj=None)


def hostvars() -> dict[str, dict[str, t.Any]]:
    return {
        'ok-1': {'tetra_diagnosis': {'changed': False, 'verdict': verdict('ok', 'up_to_date')}},
        'dns-1': {'tetra_diagnosis': {'changed': False, 'verdict': verdict('failing', 'dns_resolution_failed')}},
        'pw-1': {'tetra_diagnosis': {'unreachable': True, 'changed': False,
                                     'msg': 'Endpoint unreachable: authentication failed: ntlm: HTTP 401 Unauthorized'}},
        'down-1': {'tetra_diagnosis': {'unreachable': True, 'msg': 'Connection refused'}},
        'gone-1': {'other_var': 1},
    }


def test_doc_stub_options_match_the_argument_spec() -> None:
    documented = yaml.safe_load(docs.DOCUMENTATION)['options']
    assert set(documented) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        assert documented[name]['type'] == spec['type'], name
        assert documented[name].get('default') == spec.get('default'), name
        assert documented[name].get('elements') == spec.get('elements'), name
        assert sorted(documented[name].get('choices') or []) == sorted(spec.get('choices') or []), name
    for section in ('EXAMPLES', 'RETURN'):
        assert yaml.safe_load(getattr(docs, section))


def test_every_play_host_gets_a_row(tmp_path: t.Any) -> None:
    dest = str(tmp_path / 'report')
    hosts = ['ok-1', 'dns-1', 'pw-1', 'down-1', 'gone-1']
    result = make_action({'hosts': hosts, 'dest': dest}).run(task_vars={'hostvars': hostvars()})
    assert result['changed'] is False and not result.get('failed')
    assert result['report_format'] == 1
    assert sorted(os.listdir(dest)) == ['report.csv', 'report.html', 'report.json', 'report.md']
    data = json.loads((tmp_path / 'report' / 'report.json').read_text())
    rows = {r['host']: (r['status'], r['cause']) for r in data['hosts']}
    assert rows == {
        'ok-1': ('ok', 'up_to_date'), 'dns-1': ('failing', 'dns_resolution_failed'),
        'pw-1': ('unreachable', 'authentication_failed'), 'down-1': ('unreachable', 'host_unreachable'),
        'gone-1': ('unreachable', 'host_unreachable'),
    }
    assert result['summary']['total'] == 5 and result['summary']['needs_action'] == 4
    assert [row['host'] for row in result['needs_action']] == ['dns-1', 'pw-1', 'down-1', 'gone-1']
    assert result['stats']['by_status'] == {'failing': 1, 'unreachable': 3, 'ok': 1}
    assert result['paths']['html'] == os.path.join(dest, 'report.html')


def test_result_var_and_results_option(tmp_path: t.Any) -> None:
    task_vars = {'hostvars': {'a': {'diag': {'verdict': verdict('stale', 'stale_definitions')}}}}
    result = make_action({'hosts': ['a'], 'result_var': 'diag', 'dest': str(tmp_path), 'formats': ['json']}).run(task_vars=task_vars)
    assert result['summary']['by_status']['stale'] == 1
    result = make_action({'hosts': ['a', 'b'], 'results': {'a': {'verdict': verdict('ok', 'up_to_date')}},
                          'dest': str(tmp_path), 'formats': []}).run(task_vars={})
    assert result['summary']['by_status'] == {'failing': 0, 'unreachable': 1, 'unknown': 0, 'not_installed': 0, 'stale': 0, 'ok': 1}
    assert result['paths'] == {}


def test_merge_earlier_slices(tmp_path: t.Any) -> None:
    slice1 = str(tmp_path / 'slice1')
    make_action({'hosts': ['ok-1', 'dns-1'], 'dest': slice1}).run(task_vars={'hostvars': hostvars()})
    result = make_action({'hosts': ['pw-1'], 'merge': [slice1], 'dest': str(tmp_path / 'fleet')}).run(task_vars={'hostvars': hostvars()})
    assert result['summary']['total'] == 3
    merged = json.loads((tmp_path / 'fleet' / 'report.json').read_text())
    assert merged['sources'] == [slice1]
    # merge only, no play hosts: the AWX workflow's final node
    result = make_action({'merge': [slice1, str(tmp_path / 'fleet' / 'report.json')], 'dest': str(tmp_path / 'all')}).run(task_vars={})
    assert result['summary']['total'] == 3


def test_fleet_max_recompute(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, t.Any]] = []

    def fake_diagnose(facts: dict[str, t.Any], freshness: dict[str, t.Any], **kwargs: t.Any) -> dict[str, t.Any]:
        calls.append(freshness)
        return verdict('stale', 'stale_definitions', facts['tetra_version'], 'fleet_max')

    monkeypatch.setattr(_report, '_default_diagnose', lambda: fake_diagnose)
    results = {
        'new': {'verdict': verdict('ok', 'up_to_date', 90610, 'unknown'), 'facts': {'tetra_version': 90610},
                'freshness': {'latest': None, 'source': 'unknown', 'max_behind': 5}},
        'old': {'verdict': verdict('ok', 'up_to_date', 90500, 'unknown'), 'facts': {'tetra_version': 90500},
                'freshness': {'latest': None, 'source': 'unknown', 'max_behind': 5}},
    }
    result = make_action({'hosts': ['new', 'old'], 'results': results, 'dest': str(tmp_path)}).run(task_vars={})
    assert result['fleet_max_version'] == 90610
    assert [c['latest'] for c in calls] == [90610, 90610] and calls[0]['source'] == 'fleet_max'
    assert result['summary']['by_status']['stale'] == 2
    assert 'highest seen in the run (90610)' in (tmp_path / 'report.html').read_text()


def test_check_mode_still_writes(tmp_path: t.Any) -> None:
    result = make_action({'hosts': ['ok-1'], 'dest': str(tmp_path / 'r')}, check_mode=True).run(task_vars={'hostvars': hostvars()})
    assert not result.get('skipped') and os.path.exists(result['paths']['html'])


def test_default_dest_under_cwd(tmp_path: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = make_action({'hosts': ['ok-1'], 'formats': ['json']}).run(task_vars={'hostvars': hostvars()})
    assert result['dest'].startswith(str(tmp_path / 'out' / 'tetra-report-'))


def test_bad_arguments_fail() -> None:
    with pytest.raises(AnsibleActionFail, match='formats'):
        make_action({'hosts': ['a'], 'formats': ['pdf']}).run(task_vars={})
    with pytest.raises(AnsibleActionFail, match='bogus'):
        make_action({'hosts': ['a'], 'bogus': 1}).run(task_vars={})


def test_unreadable_merge_file_fails_clearly(tmp_path: t.Any) -> None:
    with pytest.raises(AnsibleActionFail, match='Could not write the fleet report'):
        make_action({'merge': [str(tmp_path / 'missing.json')], 'dest': str(tmp_path)}).run(task_vars={})


def test_registered_lookup_tolerates_odd_hostvars() -> None:
    assert tetra_report.registered({}, 'a', 'v') is None
    assert tetra_report.registered({'a': {'v': 'text'}}, 'a', 'v') is None
    assert tetra_report.registered({'a': {'v': {'x': 1}}}, 'a', 'v') == {'x': 1}


def test_plan_run_metadata_and_lines(tmp_path: t.Any) -> None:
    task_vars = {'hostvars': dict(hostvars(), **{'dns-2': {'ansible_host': '10.1.2.4', 'tetra_diagnosis': {
        'verdict': verdict('failing', 'dns_resolution_failed')}}}), 'ansible_inventory_sources': ['/inv/prod.ini'],
        'ansible_check_mode': False}
    task_vars['hostvars']['dns-1'] = dict(task_vars['hostvars']['dns-1'], ansible_host='10.1.2.3')
    result = make_action({'hosts': ['ok-1', 'dns-1', 'dns-2', 'pw-1'], 'dest': str(tmp_path), 'started': '2026-11-28T02:00:00Z',
                          'teams': {'authentication_failed': 'windows-admins'}}).run(task_vars=task_vars)
    groups = {g['cause']: g for g in result['plan']}
    assert groups['dns_resolution_failed']['hosts'] == ['dns-1', 'dns-2']
    assert groups['dns_resolution_failed']['shared'] == {'attribute': 'subnet', 'label': 'subnet', 'value': '10.1.2.0/24'}
    assert groups['authentication_failed']['team'] == 'windows-admins'
    run = result['run']
    assert run['inventory'] == '/inv/prod.ini' and run['started'] == '2026-11-28T02:00:00Z' and run['duration_s'] is not None
    assert run['ansible_core'] and run['collection'] == tetra_report.collection_version()
    assert result['lines'][0] == 'TETRA fleet: 4 hosts, 1 ok, 3 need action'
    assert result['lines'][-1] == 'Report: %s' % os.path.join(str(tmp_path), 'report.html')
    data = json.loads((tmp_path / 'report.json').read_text())
    assert data['plan'] == result['plan'] and data['run']['inventory'] == '/inv/prod.ini'


def test_collection_version_from_manifest_or_galaxy_yml(tmp_path: t.Any) -> None:
    (tmp_path / 'galaxy.yml').write_text('namespace: x\nversion: 2.3.4\n')
    assert tetra_report.collection_version(str(tmp_path)) == '2.3.4'
    (tmp_path / 'MANIFEST.json').write_text(json.dumps({'collection_info': {'version': '9.9.9'}}))
    assert tetra_report.collection_version(str(tmp_path)) == '9.9.9'
    assert tetra_report.collection_version(str(tmp_path / 'none')) is None
