# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The lab's console API: consistent with the endpoints, paginated, authenticated, rate limited."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

from tests.lab.api import MAX_LIMIT, STATUS_CURRENT, STATUS_FAILED
from tests.paths import REPO_ROOT as REPO


def get(lab, path, key=None, user=None):
    """(status, headers, JSON body) of one GET."""
    request = urllib.request.Request(lab.api.url + path)
    token = base64.b64encode(('%s:%s' % (user or lab.api.client_id, key or lab.api.api_key)).encode()).decode()
    request.add_header('Authorization', 'Basic ' + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def all_computers(lab, limit=MAX_LIMIT):
    status, headers, page = get(lab, '/v1/computers?limit=%d' % limit)
    records, pages = list(page['data']), 1
    while page['metadata']['links'].get('next'):
        following = page['metadata']['links']['next'].replace(lab.api.url, '')
        status, headers, page = get(lab, following)
        assert status == 200
        records.extend(page['data'])
        pages += 1
    return records, pages


def test_every_endpoint_consistent_with_its_scenario(tetra_lab):
    records, pages = all_computers(tetra_lab)
    assert pages == 1 and [r['hostname'] for r in records] == list(tetra_lab.hosts)
    by_name = {r['hostname']: r for r in records}
    for name, spec in tetra_lab.hosts.items():
        record, state = by_name[name], tetra_lab.state(name)
        assert record['internal_ips'] == [spec.address] and record['network_addresses'][0]['ip'] == spec.address
        assert record['connector_guid'] == state.agent_uuid
        assert record['connector_version'] == spec.scenario['install']['version']
        definitions = record.get('av_update_definitions')
        if not spec.scenario['install']['installed'] or not spec.scenario['policy']['tetra_enable']:
            assert definitions is None, name
            continue
        assert definitions['version'] == str(state.tetra_version), name
        assert definitions['detection_engine'] == 'TETRA 64 bit'
    assert by_name['healthy']['av_update_definitions']['status'] == STATUS_CURRENT
    assert by_name['dns_failure']['av_update_definitions']['status'] == STATUS_FAILED
    # time of the last success = the endpoint's local.xml lastsuccesstime
    updated = by_name['dns_failure']['av_update_definitions']['updated_at']
    assert time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime(tetra_lab.state('dns_failure').last_success)) == updated
    assert by_name['host_down']['last_seen'] < by_name['healthy']['last_seen']


def test_pagination_links_and_metadata(tetra_lab):
    records, pages = all_computers(tetra_lab, limit=5)
    assert pages == 5 and [r['hostname'] for r in records] == list(tetra_lab.hosts)
    status, dummy, page = get(tetra_lab, '/v1/computers?limit=5&offset=20')
    assert page['metadata']['results'] == {'total': 22, 'current_item_count': 2, 'index': 20, 'items_per_page': 5}
    assert 'next' not in page['metadata']['links'] and 'prev' in page['metadata']['links']
    status, dummy, page = get(tetra_lab, '/v1/computers?limit=9999')
    assert page['metadata']['results']['items_per_page'] == MAX_LIMIT
    status, dummy, page = get(tetra_lab, '/v1/computers?hostname[]=proxy')
    assert sorted(r['hostname'] for r in page['data']) == ['proxy_auth', 'proxy_download', 'proxy_unreachable']


def test_basic_auth_failures(tetra_lab):
    for key, user in (('wrong-key', None), (None, 'someone-else')):
        status, headers, body = get(tetra_lab, '/v1/computers', key=key, user=user)
        assert status == 401 and body['errors'][0]['details'] == ['Unknown API key or Client ID']
    request = urllib.request.Request(tetra_lab.api.url + '/v1/version')
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert get(tetra_lab, '/v1/version')[0] == 200


def test_rate_limit_429_and_headers(tetra_lab_factory):
    lab = tetra_lab_factory('catalog')
    lab.api.set_rate_limit(3, 1.0)
    answers = [get(lab, '/v1/version') for dummy in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert [a[1]['X-RateLimit-Remaining'] for a in answers] == ['2', '1', '0', '0']
    assert answers[3][1]['X-RateLimit-Limit'] == '3' and int(answers[3][1]['X-RateLimit-Reset']) <= 1
    time.sleep(1.1)
    assert get(lab, '/v1/version')[0] == 200


def test_console_lags_a_forced_update(tetra_lab_factory):
    lab = tetra_lab_factory('catalog', time_scale=0.02)   # lag 30 lab s = 0.6 s
    state = lab.state('stale_recovers')
    with state.lock:
        state.tetra_version, state.last_success = state.latest_version, int(time.time())
    first = {r['hostname']: r for r in get(lab, '/v1/computers')[2]['data']}['stale_recovers']
    assert first['av_update_definitions']['status'] == STATUS_FAILED        # not yet
    time.sleep(0.8)
    later = {r['hostname']: r for r in get(lab, '/v1/computers')[2]['data']}['stale_recovers']
    assert later['av_update_definitions'] == dict(later['av_update_definitions'], status=STATUS_CURRENT,
                                                  version=str(state.latest_version))


def test_injected_server_errors(tetra_lab):
    tetra_lab.api.fail_next(503, times=2)
    assert [get(tetra_lab, '/v1/version')[0] for dummy in range(3)] == [503, 503, 200]


def test_serve_writes_the_api_inventory_source(tmp_path):
    inventory, source = tmp_path / 'lab.ini', tmp_path / 'lab.computers.yml'
    process = subprocess.Popen([sys.executable, '-m', 'tests.lab', 'serve', '--fleet', 'tests/lab/fleets/catalog.yml',
                                '--inventory', str(inventory), '--api-inventory', str(source), '--time-scale', '0.05'],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        ready = process.stdout.readline()
        assert 'console API http://127.0.0.1:' in ready and str(source) in ready, ready
        config = yaml.safe_load(source.read_text())
        assert config['plugin'] == 'secure_endpoint.tetra.computers' and config['ansible_host_preference'] == ['internal_ip']
        assert config['url'] in ready and config['compose']['ansible_connection'] == "'winrm'"
        token = base64.b64encode(('%s:%s' % (config['client_id'], config['api_key'])).encode()).decode()
        request = urllib.request.Request(config['url'] + '/v1/computers')
        request.add_header('Authorization', 'Basic ' + token)
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert len(json.loads(answer.read())['data']) == 22
    finally:
        process.terminate()
        process.wait(20)
