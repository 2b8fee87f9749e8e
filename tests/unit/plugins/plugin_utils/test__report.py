# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import csv
import io
import json
import os
import re
import typing as t

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _files, _report

CHECKED = '2026-11-28T02:31:00Z'
HOSTILE = '<script>alert("x")</script> | =cmd'


def verdict(host: str = 'ep-1', status: str = 'failing', cause: str = 'revocation_check_failed', **extra: t.Any) -> dict[str, t.Any]:
    base = {
        'host': host, 'status': status, 'cause': cause, 'summary': 'TLS fails: revocation check offline',
        'evidence': ['schannel 0x80092013 while checking revocation'], 'action': 'Allow HTTP to the OCSP hosts',
        'remediable': False,
        'secondary': [{'cause': 'proxy_unreachable', 'summary': 'proxy down', 'evidence': [], 'action': 'x', 'remediable': False}],
        'versions': {'connector': '8.1.7.21417', 'tetra': 90600, 'latest': 90606, 'latest_source': 'versions.id', 'behind': 6},
        'last_success': '2026-11-27T00:00:00Z', 'age_hours': 26.5, 'timings': {'endpoint_ms': 5200, 'round_trip_ms': 6100},
        'checked_at': CHECKED,
    }
    base.update(extra)
    return base


def ok_verdict(host: str, tetra: int = 90606, checked_at: str = CHECKED) -> dict[str, t.Any]:
    return verdict(host, 'ok', 'up_to_date', summary='current', evidence=[], action='', secondary=[],
                   versions={'connector': '8.1.7', 'tetra': tetra, 'latest': 90606, 'latest_source': 'versions.id', 'behind': 0},
                   checked_at=checked_at)


def document(records: list[dict[str, t.Any]], **meta: t.Any) -> dict[str, t.Any]:
    return _report.build_document(records, dict({'generated_at': CHECKED}, **meta))


# --- records ------------------------------------------------------------------------------------


def test_verdict_record_has_every_field_and_inventory_name() -> None:
    record = _report.record_from_result('ep-1.corp', {'verdict': verdict('EP-1'), 'facts': {}}, 'now')
    assert set(_report.RECORD_FIELDS) <= set(record)
    assert record['host'] == 'ep-1.corp'
    assert record['endpoint_name'] == 'EP-1'
    assert record['status'] == 'failing' and record['cause'] == 'revocation_check_failed'
    assert record['checked_at'] == CHECKED


@pytest.mark.parametrize('message', [
    'ntlm: the specified credentials were rejected by the server',
    'basic: HTTP 401 Unauthorized',
    'Endpoint unreachable: authentication failed (wrong user or password?): ...',
    'ssh: Permission denied... logon failure',
])
def test_unreachable_with_rejected_credentials_is_authentication_failed(message: str) -> None:
    record = _report.record_from_result('ep-1', {'unreachable': True, 'msg': message}, CHECKED)
    assert (record['status'], record['cause']) == ('unreachable', 'authentication_failed')
    assert record['evidence'] == [message]


def test_unreachable_host_is_host_unreachable() -> None:
    message = "HTTPConnectionPool(host='10.0.0.5', port=5985): Connection refused"
    record = _report.record_from_result('ep-1', {'unreachable': True, 'msg': message, 'changed': False}, CHECKED)
    assert (record['status'], record['cause']) == ('unreachable', 'host_unreachable')
    assert record['action']


@pytest.mark.parametrize('result', [None, {}, 'garbage'])
def test_host_without_result_still_gets_a_row(result: t.Any) -> None:
    record = _report.record_from_result('ep-1', result, CHECKED)
    assert (record['status'], record['cause']) == ('unreachable', 'host_unreachable')


def test_failed_and_skipped_results() -> None:
    failed = _report.record_from_result('a', {'failed': True, 'msg': 'Unsupported parameters'}, CHECKED)
    skipped = _report.record_from_result('b', {'skipped': True, 'skip_reason': 'Conditional result was False'}, CHECKED)
    assert (failed['status'], failed['cause']) == ('unknown', 'task_failed')
    assert 'Unsupported parameters' in failed['summary']
    assert (skipped['status'], skipped['cause']) == ('unknown', 'not_diagnosed')


def test_build_records_one_per_host_in_order() -> None:
    records = _report.build_records(['b', 'a', 'b', 'c'], {'a': {'verdict': ok_verdict('a')}, 'b': {'verdict': verdict('b')}})
    assert [r['host'] for r in records] == ['b', 'a', 'c']
    assert records[2]['status'] == 'unreachable'


# --- fleet maximum ------------------------------------------------------------------------------


def fake_diagnose(calls: list[tuple[t.Any, ...]]) -> t.Callable[..., dict[str, t.Any]]:
    def diagnose(facts: dict[str, t.Any], freshness: dict[str, t.Any], **kwargs: t.Any) -> dict[str, t.Any]:
        calls.append((facts, freshness, kwargs))
        behind = freshness['latest'] - facts['tetra_version']
        status = 'ok' if behind <= freshness['max_behind'] else 'stale'
        return verdict(kwargs.get('host'), status, 'up_to_date' if status == 'ok' else 'stale_definitions',
                       versions={'tetra': facts['tetra_version'], 'latest': freshness['latest'],
                                 'latest_source': freshness['source'], 'behind': behind},
                       checked_at='2030-01-01T00:00:00Z', timings=None)
    return diagnose


def unknown_latest(host: str, tetra: int) -> dict[str, t.Any]:
    return {'verdict': ok_verdict(host, tetra) | {'versions': {'tetra': tetra, 'latest': None, 'latest_source': 'unknown', 'behind': None}},
            'facts': {'tetra_version': tetra}, 'freshness': {'latest': None, 'source': 'unknown', 'max_behind': 5}}


def test_fleet_max_recomputes_unknown_latest_verdicts() -> None:
    calls: list[tuple[t.Any, ...]] = []
    results = {'new': unknown_latest('new', 90610), 'old': unknown_latest('old', 90600), 'down': {'unreachable': True, 'msg': 'x'}}
    updated, fleet_max = _report.apply_fleet_max(results, fake_diagnose(calls))
    assert fleet_max == 90610
    assert len(calls) == 2
    facts, freshness, kwargs = calls[1]
    assert freshness == {'latest': 90610, 'source': 'fleet_max', 'max_behind': 5}
    assert kwargs['host'] == 'old' and kwargs['now'].year == 2026
    old = updated['old']['verdict']
    assert (old['status'], old['cause'], old['versions']['latest_source']) == ('stale', 'stale_definitions', 'fleet_max')
    assert old['checked_at'] == CHECKED, 'the original check time is kept'
    assert old['timings'] == {'endpoint_ms': 5200, 'round_trip_ms': 6100}
    assert results['old']['verdict']['status'] == 'ok', 'the input is not modified'


def test_fleet_max_leaves_known_latest_alone() -> None:
    calls: list[tuple[t.Any, ...]] = []
    results = {'a': {'verdict': ok_verdict('a'), 'facts': {'tetra_version': 1}, 'freshness': {}}}
    updated, fleet_max = _report.apply_fleet_max(results, fake_diagnose(calls))
    assert (updated, fleet_max, calls) == (results, None, [])


def test_fleet_max_without_any_version_changes_nothing() -> None:
    results = {'a': {'verdict': verdict('a', versions={'tetra': None, 'latest_source': 'unknown'}), 'facts': {}}}
    assert _report.apply_fleet_max(results, fake_diagnose([])) == (results, None)


def test_fleet_max_uses_the_real_diagnosis_when_present() -> None:
    pytest.importorskip('ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis')
    diagnose = _report._default_diagnose()
    assert callable(diagnose)


# --- merging ------------------------------------------------------------------------------------


def write_json(path: str, records: list[dict[str, t.Any]]) -> str:
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(_report.render_json(document(records)))
    return path


def test_merge_latest_record_per_host_wins(tmp_path: t.Any) -> None:
    old = [_report.verdict_record('a', verdict('a', checked_at='2026-11-27T00:00:00Z'), ''),
           _report.verdict_record('b', verdict('b', checked_at='2026-11-27T00:00:00Z'), '')]
    new = [_report.verdict_record('a', ok_verdict('a', checked_at='2026-11-28T00:00:00Z'), '')]
    os.mkdir(str(tmp_path / 'slice1'))
    write_json(str(tmp_path / 'slice1' / 'report.json'), old)
    loaded = _report.load_report(str(tmp_path / 'slice1'))
    merged = _report.merge_records(loaded, new)
    assert [(r['host'], r['status']) for r in merged] == [('a', 'ok'), ('b', 'failing')]
    # An older record given later does not replace a newer one.
    assert _report.merge_records(new, loaded)[0]['status'] == 'ok'


def test_load_report_rejects_other_json(tmp_path: t.Any) -> None:
    path = tmp_path / 'x.json'
    path.write_text(json.dumps({'format': 2, 'hosts': []}))
    with pytest.raises(ValueError, match='not a TETRA fleet report'):
        _report.load_report(str(path))
    path.write_text(json.dumps({'format': 1, 'hosts': [{'status': 'ok'}]}))
    with pytest.raises(ValueError, match='hosts'):
        _report.load_report(str(path))


# --- summary and formats ------------------------------------------------------------------------


def sample_records() -> list[dict[str, t.Any]]:
    results = {
        'ok-1': {'verdict': ok_verdict('ok-1')},
        'fail-1': {'verdict': verdict('fail-1', evidence=[HOSTILE], summary=HOSTILE)},
        'auth-1': {'unreachable': True, 'msg': 'ntlm: the specified credentials were rejected by the server'},
    }
    return _report.build_records(['ok-1', 'fail-1', 'auth-1', 'gone-1'], results, CHECKED)


def test_summary_counts() -> None:
    summary = _report.summarize(sample_records())
    assert summary['total'] == 4 and summary['ok'] == 1 and summary['needs_action'] == 3
    assert list(summary['by_status']) == list(_report.STATUS_ORDER)
    assert summary['by_status']['unreachable'] == 2
    assert summary['by_cause'] == {'authentication_failed': 1, 'host_unreachable': 1, 'revocation_check_failed': 1, 'up_to_date': 1}
    rows = _report.needs_action_rows(sample_records())
    assert [row['host'] for row in rows] == ['fail-1', 'auth-1', 'gone-1']
    assert len(_report.needs_action_rows(sample_records(), 1)) == 1


def test_json_is_versioned_with_one_record_per_host() -> None:
    data = json.loads(_report.render_json(document(sample_records())))
    assert data['format'] == 1
    assert [r['host'] for r in data['hosts']] == ['auth-1', 'fail-1', 'gone-1', 'ok-1']
    for record in data['hosts']:
        assert set(_report.RECORD_FIELDS) <= set(record)
    assert data['summary']['total'] == 4


def test_csv_columns_and_formula_neutralised() -> None:
    rows = list(csv.DictReader(io.StringIO(_report.render_csv(sample_records()))))
    assert len(rows) == 4
    fail = next(row for row in rows if row['host'] == 'fail-1')
    assert fail['tetra'] == '90600' and fail['behind'] == '6' and fail['secondary'] == 'proxy_unreachable'
    assert fail['evidence'] == HOSTILE
    evil = _report.csv_row(_report.verdict_record('=HYPERLINK("x")', verdict(summary='@SUM(1)'), CHECKED))
    assert evil['host'].startswith("'=") and evil['summary'].startswith("'@")


def test_markdown_lists_hosts_needing_action_escaped() -> None:
    text = _report.render_markdown(document(sample_records()))
    assert '| failing | 1 |' in text and '| unreachable | 2 |' in text
    assert '## Hosts that need action' in text
    assert '<script>' not in text and '&lt;script&gt;' in text
    assert '\\| =cmd' in text
    assert 'ok-1' not in text.split('## Hosts that need action')[1]


def test_markdown_when_everything_is_ok() -> None:
    text = _report.render_markdown(document([_report.verdict_record('a', ok_verdict('a'), CHECKED)]))
    assert 'need action' in text and '## Hosts that need action' not in text


def test_html_is_self_contained_and_escapes_host_text() -> None:
    page = _report.page(document(sample_records()))
    assert page.startswith('<!DOCTYPE html>')
    assert '<script>alert' not in page
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in page
    assert page.count('<script>') == 1, 'only the page script'
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page), 'no external assets'
    assert '<link' not in page and '@import' not in page
    assert page.count('class="host-row"') == 4
    assert '<svg id="chart-status"' in page and '<svg id="chart-cause"' in page
    assert 'id="filter"' in page and 'id="status-filter"' in page
    assert '<details>' in page


def test_html_hostile_host_name_and_cause_are_escaped() -> None:
    record = _report.verdict_record('"><img src=x onerror=alert(1)>', verdict(cause='<b>x</b>'), CHECKED)
    page = _report.page(document([record]))
    assert '<img' not in page and '<b>x' not in page
    assert 'data-host="&quot;&gt;&lt;img' in page


def test_write_report_writes_every_format(tmp_path: t.Any) -> None:
    folder = str(tmp_path / 'out' / 'r')
    paths = _report.write_report(folder, document(sample_records()), ['json', 'csv', 'markdown', 'html'])
    assert sorted(os.listdir(folder)) == ['report.csv', 'report.html', 'report.json', 'report.md']
    assert paths['html'] == os.path.join(folder, 'report.html')


def test_write_report_without_formats_creates_nothing(tmp_path: t.Any) -> None:
    folder = str(tmp_path / 'none')
    assert _report.write_report(folder, document(sample_records()), []) == {}
    assert not os.path.exists(folder)


def test_stats_summary_is_small() -> None:
    doc = document(sample_records())
    stats = _report.stats_summary(doc, {'html': '/r/report.html', 'json': '/r/report.json'}, '/r')
    assert stats['total'] == 4 and stats['needs_action'] == 3
    assert stats['by_status'] == {'failing': 1, 'unreachable': 2, 'ok': 1}
    assert stats['html'] == '/r/report.html'
    assert len(json.dumps(stats)) < 1000


def test_default_report_dir_under_cwd() -> None:
    import datetime
    now = datetime.datetime(2026, 11, 28, 2, 31, tzinfo=datetime.timezone.utc)
    assert _report.default_report_dir('/base', now) == '/base/out/tetra-report-20261128T023100Z'


# --- action plan, run metadata, fleet lines, HTML features ------------------------------------------


def planned_records() -> list[dict[str, t.Any]]:
    results = {
        'ok-1': {'verdict': ok_verdict('ok-1')},
        'pa-1': {'verdict': verdict('pa-1', cause='proxy_auth_failed', action='Check the proxy credentials (user and password).'),
                 'facts': {'local': {'proxy': {'server': 'proxy-a', 'port': 8080}}}},
        'pa-2': {'verdict': verdict('pa-2', cause='proxy_auth_failed', action='Check the proxy credentials (user and password).'),
                 'facts': {'local': {'proxy': {'server': 'proxy-a', 'port': 8080}}}},
        'st-1': {'verdict': verdict('st-1', 'stale', 'stale_definitions', remediable=True, age_hours=None,
                                    action='Force an update: sfc.exe -forceupdate. Then re-check.')},
    }
    return _report.build_records(sorted(results), results, CHECKED, addresses={'pa-1': '10.0.0.5', 'st-1': '10.0.9.1'})


def test_records_carry_attributes_and_the_document_a_plan() -> None:
    records = planned_records()
    by_host = {r['host']: r for r in records}
    assert by_host['pa-1']['attributes'] == {'proxy': 'proxy-a:8080', 'subnet': '10.0.0.0/24'}
    assert by_host['ok-1']['attributes'] == {}
    doc = document(records, run={'inventory': 'inv.ini', 'started': '2026-11-28T02:30:00Z', 'finished': '2026-11-28T02:31:05Z'})
    assert [(g['cause'], g['hosts'], (g['shared'] or {}).get('value')) for g in doc['plan']] == [
        ('proxy_auth_failed', ['pa-1', 'pa-2'], 'proxy-a:8080'), ('stale_definitions', ['st-1'], '10.0.9.0/24')]
    assert doc['run']['duration_s'] == 65 and doc['run']['inventory'] == 'inv.ini'
    assert set(doc['run']) == set(_report.RUN_FIELDS)
    assert json.loads(_report.render_json(doc))['plan'][0]['team'] == 'proxy'
    stats = _report.stats_summary(doc, {}, '/r')
    assert stats['plan'][0] == {'cause': 'proxy_auth_failed', 'team': 'proxy', 'count': 2, 'text': doc['plan'][0]['text'],
                                'shared': doc['plan'][0]['shared']}
    assert 'hosts' not in stats['plan'][0], 'the AWX artifact stays small'


def test_merged_records_keep_their_attributes(tmp_path: t.Any) -> None:
    folder = str(tmp_path / 'slice')
    _report.write_report(folder, document(planned_records()), ['json'])
    doc = document(_report.merge_records(_report.load_report(folder)))
    assert doc['plan'][0]['hosts'] == ['pa-1', 'pa-2'] and doc['plan'][0]['shared']['value'] == 'proxy-a:8080'


def test_markdown_starts_with_the_plan_and_the_run() -> None:
    text = _report.render_markdown(document(planned_records(), run={'inventory': 'inv.ini', 'ansible_core': '2.19.14'}))
    assert 'Run: inventory inv.ini; ansible-core 2.19.14.' in text
    assert text.index('## Action plan') < text.index('## Summary') < text.index('## Hosts that need action')
    assert '| proxy_auth_failed | 2 | proxy proxy-a:8080 | proxy team |' in text


def test_fleet_lines_table_plan_and_report_path() -> None:
    doc = document(planned_records())
    lines = _report.fleet_lines(doc, {'html': '/r/report.html'}, '/r')
    assert lines[0] == 'TETRA fleet: 4 hosts, 1 ok, 3 need action'
    assert lines[1].split() == ['HOST', 'STATUS', 'CAUSE', 'ACTION']
    assert lines[2].split()[:3] == ['pa-1', 'failing', 'proxy_auth_failed'] and lines[2].endswith('Check the proxy credentials')
    assert lines[5].split() == ['ok-1', 'ok', 'up_to_date']
    assert 'proxy_auth_failed: 2 hosts, all using proxy proxy-a:8080 -> proxy team' in lines
    assert lines[-1] == 'Report: /r/report.html'
    short = _report.fleet_lines(doc, {}, '/r', limit=2)
    assert '... and 2 more hosts (1 ok): see the report' in short and short[-1] == 'Report: /r'


@pytest.mark.parametrize('action, short', [
    ('Force an update: sfc.exe -forceupdate (playbooks/remediate.yml), then re-check.', 'Force an update'),
    ('Check the proxy credentials (user and password).', 'Check the proxy credentials'),
    ('x' * 100, 'x' * 67 + '...'),
    ('', ''),
])
def test_short_action(action: str, short: str) -> None:
    assert _report.short_action(action) == short


def test_html_plan_first_run_metadata_remediable_and_visible_search() -> None:
    doc = document(planned_records(), run={'inventory': 'inv.ini', 'ansible_core': '2.19.14', 'collection': '1.0.0',
                                           'started': '2026-11-28T02:30:00Z', 'duration_s': 125})
    page = _report.page(doc)
    assert page.index('id="plan"') < page.index('id="summary"') < page.index('id="host-table"')
    assert page.count('class="plan-group"') == 2 and 'data-hosts="pa-1 pa-2"' in page
    assert '<dd data-run="duration_s">2 min 05 s</dd>' in page and '<dd data-run="inventory">inv.ini</dd>' in page
    assert '<th data-type="text">Remediable</th>' in page
    assert page.count('<td class="remediable" data-sort="yes">') == 1
    search = re.findall(r'data-search="([^"]*)"', page)
    assert len(search) == 4 and not any('schannel' in value for value in search), 'evidence is not a visible field'
    assert any(value.startswith('pa-1 failing proxy_auth_failed') for value in search)
    assert '<g class="bar" data-label="proxy_auth_failed" role="button"' in page
    assert 'id="cause-filter"' in page and 'viewBox=' in page
    # Empty values sort as empty, never as "None".
    assert 'data-sort="None"' not in page and '>None<' not in page


def test_html_without_plan_says_nothing_to_do() -> None:
    page = _report.page(document([ok_verdict('a') | {'attributes': {}}]))
    assert 'Nothing to do: every host is up to date.' in page


# ---- hostile endpoints and controller files (issue 12) ----

HOSTILE_TEXT = 'svc\ud800\x1b]0;pwned\x07\x1b[2J\r\x08\u202etxt.exe'


def hostile_results() -> dict[str, t.Any]:
    bad = verdict('ep-bad', 'failing', 'service_stopped', summary=HOSTILE_TEXT, evidence=['service %s is Stopped' % HOSTILE_TEXT], action=HOSTILE_TEXT)
    return {'ep-1': {'verdict': ok_verdict('ep-1')}, 'ep-bad': {'verdict': bad},
            'ep-types': {'verdict': {'status': ['x'], 'evidence': 5, 'versions': 'no', 'secondary': 7}},
            'ep-down': {'unreachable': True, 'msg': 'gave up \x1b[31m', 'timings': {'elapsed_ms': 70001, 'bound_s': 70}}}


@pytest.mark.parametrize('fmt', sorted(_report.REPORT_FILES))
def test_a_hostile_host_is_a_bad_row_and_every_format_is_written(tmp_path, fmt):
    results = hostile_results()
    records = _report.build_records(sorted(results) + ['ep-missing'], results, CHECKED)
    document = _report.build_document(records, {'title': 'T\x1b[2J'})
    paths = _report.write_report(str(tmp_path), document, [fmt])
    text = open(paths[fmt], encoding='utf-8').read()  # strict UTF-8
    assert '\x1b' not in text and '\x07' not in text and '\u202e' not in text and '\x08' not in text
    assert not re.search('[\ud800-\udfff]', text)
    for host in ('ep-bad', 'ep-down', 'ep-missing', 'ep-types') + (('ep-1',) if fmt != 'markdown' else ()):
        assert host in text
    assert os.listdir(str(tmp_path)) == [os.path.basename(paths[fmt])]


def test_hostile_text_stays_visible_and_unreachable_rows_keep_their_timings():
    results = hostile_results()
    rows = {r['host']: r for r in _report.build_records(sorted(results), results, CHECKED)}
    assert '\\x1b]0;pwned\\x07' in rows['ep-bad']['summary'] and '\\ud800' in rows['ep-bad']['summary']
    assert rows['ep-down']['timings'] == {'elapsed_ms': 70001, 'bound_s': 70}
    assert rows['ep-types']['status'] == 'unknown'


def test_a_result_that_cannot_be_read_costs_only_its_own_row():
    class Exploding(dict):
        def get(self, *args, **kwargs):
            raise RuntimeError('boom')
    results = {'ep-1': {'verdict': ok_verdict('ep-1')}, 'ep-x': Exploding(verdict=1)}
    rows = {r['host']: r for r in _report.build_records(['ep-1', 'ep-x'], results, CHECKED)}
    assert rows['ep-1']['status'] == 'ok'
    assert (rows['ep-x']['status'], rows['ep-x']['cause']) == ('unknown', 'evidence_invalid')
    assert 'RuntimeError: boom' in rows['ep-x']['summary']


def test_no_password_reaches_a_report(tmp_path):
    evidence = ['policy.xml: <proxy><password>hunter2</password></proxy>', '{"password": "hunter2"}']
    results = {'ep-1': {'verdict': verdict('ep-1', evidence=evidence)}}
    document = _report.build_document(_report.build_records(['ep-1'], results, CHECKED), {})
    for path in _report.write_report(str(tmp_path), document, list(_report.REPORT_FILES)).values():
        assert 'hunter2' not in open(path, encoding='utf-8').read()


def test_report_files_never_follow_a_planted_link(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep me')
    folder = tmp_path / 'report'
    folder.mkdir()
    for name in _report.REPORT_FILES.values():
        os.symlink(str(victim), str(folder / (name + '.tmp')))
    os.symlink(str(victim), str(folder / 'report.json'))
    document = _report.build_document(_report.build_records(['ep-1'], {'ep-1': {'verdict': ok_verdict('ep-1')}}, CHECKED), {})
    paths = _report.write_report(str(folder), document, list(_report.REPORT_FILES))
    assert victim.read_text() == 'keep me'
    assert not os.path.islink(paths['json']) and json.loads(open(paths['json'], encoding='utf-8').read())['format'] == 1


def test_write_file_atomic_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', broken)
    with pytest.raises(OSError):
        _files.write_file_atomic(str(tmp_path / 'a.json'), 'x')
    assert os.listdir(str(tmp_path)) == []


def test_write_file_atomic_gives_the_usual_permissions(tmp_path):
    path = _files.write_file_atomic(str(tmp_path / 'a.json'), 'x')
    assert os.stat(path).st_mode & 0o777 == _files._file_mode()
