# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The console client (recorded HTTP) and the console state in verdicts (the four cases of issue 14)."""

from __future__ import annotations

import copy
import datetime
import io
import json
from urllib.error import HTTPError

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console_api import ConsoleClient, api_url
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console import (
    ConsoleError, apply_console, apply_query, console_state, definitions_state, event_reason, matches,
    unreachable_note,
)

NOW = datetime.datetime(2026, 11, 28, 6, 0, 0, tzinfo=datetime.timezone.utc)
KEY = 'S3cret-api-key-never-shown'


def ago(hours: float) -> str:
    return (NOW - datetime.timedelta(hours=hours)).strftime('%Y-%m-%dT%H:%M:%S+00:00')


def record(name: str = 'ep-042', status: str = 'Definitions Up To Date', version: str = '90606', updated_h: float = 1,
           seen_h: float = 0.2, faults: list | None = None, os_name: str = 'Windows 11 Pro') -> dict:
    return {
        'connector_guid': '5c6e64fa-7738-4b39-b201-15451e33bfe6', 'hostname': name, 'active': True,
        'connector_version': '8.1.7.21417', 'operating_system': os_name, 'internal_ips': ['10.1.2.3'],
        'external_ip': '203.0.113.9', 'group_guid': 'g1', 'groups': [{'guid': 'g1', 'name': 'Branch Paris'}],
        'policy': {'guid': 'p1', 'name': 'Protect'}, 'last_seen': ago(seen_h), 'faults': faults or [],
        'av_update_definitions': {'status': status, 'detection_engine': 'TETRA 64 bit', 'version': version, 'updated_at': ago(updated_h)},
    }


def verdict(status: str = 'ok', cause: str = 'up_to_date', tetra: int = 90606, age: float = 1.0) -> dict:
    return {'host': 'ep-042', 'status': status, 'cause': cause, 'summary': 's', 'evidence': ['TETRA %d vs latest 90606' % tetra],
            'action': 'a', 'remediable': cause == 'stale_definitions', 'secondary': [],
            'versions': {'tetra': tetra, 'latest': 90606, 'behind': 90606 - tetra}, 'age_hours': age, 'checked_at': '2026-11-28T06:00:00Z'}


# ---------------------------------------------------------------- console state

@pytest.mark.parametrize('status, state', [
    ('Definitions Up To Date', 'current'), ('Definitions Update Failed', 'failed'),
    ('Failed: The Connector was unable to reach the TETRA update server', 'failed'),
    ('Definitions Out Of Date', 'outdated'), ('Something new', 'unknown'), (None, 'unknown'),
])
def test_definitions_state(status, state):
    assert definitions_state(status) == state


def test_console_state_shape_and_missing_definitions():
    state = console_state(record(), source='https://api.amp.cisco.com')
    assert state['definitions'] == {'status': 'Definitions Up To Date', 'state': 'current', 'version': 90606,
                                    'updated_at': ago(1), 'detection_engine': 'TETRA 64 bit', 'reported': True}
    assert state['groups'] == [{'guid': 'g1', 'name': 'Branch Paris'}] and state['internal_ips'] == ['10.1.2.3']
    bare = record()
    del bare['av_update_definitions']
    assert console_state(bare)['definitions']['state'] == 'unknown'
    assert console_state(bare)['definitions']['reported'] is False


def test_filters_and_query():
    records = [record('a.corp'), record('b.corp', status='Definitions Update Failed'), record('mac1', os_name='macOS 14')]
    assert [r['hostname'] for r in records if matches(r, operating_systems=['Windows*'])] == ['a.corp', 'b.corp']
    assert [r['hostname'] for r in records if matches(r, hostnames=['B.*'])] == ['b.corp']
    assert [r['hostname'] for r in records if matches(r, groups=['branch*'])] == ['a.corp', 'b.corp', 'mac1']
    assert not matches(records[0], groups=['Servers'])
    failed = apply_query(records, "[?av_update_definitions.status != 'Definitions Up To Date']")
    assert [r['hostname'] for r in failed] == ['b.corp']
    with pytest.raises(ConsoleError, match='list of computer records'):
        apply_query(records, '[].hostname')
    with pytest.raises(ConsoleError, match='not a valid JMESPath'):
        apply_query(records, '[?')


def test_event_reason():
    assert event_reason(console_state(record(status='Definitions Update Failed')), NOW) == 'failed'
    assert event_reason(console_state(record(updated_h=30)), NOW) == 'aged'
    assert event_reason(console_state(record(updated_h=30)), NOW, max_age_hours=48) is None
    assert event_reason(console_state(record()), NOW) is None


# ---------------------------------------------------------------- console state in verdicts

def test_console_failed_but_endpoint_current_is_console_lagging():
    state = console_state(record(status='Definitions Update Failed', version='90601', updated_h=30))
    result = apply_console(verdict(), {'tetra_version': 90606}, state, NOW)
    assert result['status'] == 'ok' and result['cause'] == 'up_to_date'
    lagging = [s for s in result['secondary'] if s['cause'] == 'console_lagging']
    assert lagging and 'the console is lagging' in ' '.join(lagging[0]['evidence'])
    assert 'endpoint: TETRA 90606, current' in lagging[0]['evidence']
    assert result['console']['notes'] == ['console lagging']
    assert any(line.startswith('console: Definitions Update Failed, TETRA 90601') for line in result['evidence'])


def test_console_older_version_but_endpoint_current_is_lagging_too():
    state = console_state(record(version='90604'))
    assert [s['cause'] for s in apply_console(verdict(), {'tetra_version': 90606}, state, NOW)['secondary']] == ['console_lagging']


def test_recent_last_seen_with_old_definitions_is_an_update_gap():
    state = console_state(record(status='Definitions Update Failed', version='90602', updated_h=40, seen_h=0.3))
    result = apply_console(verdict('stale', 'stale_definitions', 90602, 40), {'tetra_version': 90602}, state, NOW)
    assert result['cause'] == 'console_update_gap' and result['status'] == 'stale'
    assert 'intermittent or blocked' in ' '.join(result['evidence'])
    assert result['secondary'][0]['cause'] == 'stale_definitions'  # the former primary is kept
    # with a blocking cause the cause stays, the console corroborates it
    blocked = apply_console(verdict('failing', 'dns_resolution_failed', 90601, 52), {'tetra_version': 90601}, state, NOW)
    assert blocked['cause'] == 'dns_resolution_failed'
    assert [s['cause'] for s in blocked['secondary']] == ['console_update_gap']


def test_not_seen_for_days_is_offline_not_tetra():
    state = console_state(record(version='90590', updated_h=100, seen_h=98))
    result = apply_console(verdict('stale', 'stale_definitions', 90590, 100), {'tetra_version': 90590}, state, NOW)
    assert result['cause'] == 'computer_offline' and result['remediable'] is False
    assert 'not a TETRA problem' in result['summary']
    assert any('not seen by the console for 4.1 days' in line for line in result['evidence'])
    stopped = apply_console(verdict('failing', 'service_stopped', 90590, 100), {'tetra_version': 90590}, state, NOW)
    assert stopped['cause'] == 'service_stopped' and [s['cause'] for s in stopped['secondary']] == ['computer_offline']


def test_relevant_faults_become_evidence():
    faults = [{'name': 'Product Update Failed', 'severity': 'major'}, 'Reboot Pending', {'name': 'Isolation unavailable'}]
    result = apply_console(verdict(), {'tetra_version': 90606}, console_state(record(faults=faults)), NOW)
    assert 'console fault: Product Update Failed (major)' in result['evidence']
    assert 'console fault: Reboot Pending' in result['evidence']
    assert not any('Isolation' in line for line in result['evidence'])
    assert [s['cause'] for s in result['secondary']] == ['console_faults']


def test_no_console_changes_nothing_and_input_is_not_mutated():
    original = verdict('stale', 'stale_definitions', 90602, 40)
    kept = copy.deepcopy(original)
    assert apply_console(original, {}, None, NOW) is original
    apply_console(original, {}, console_state(record(status='Definitions Update Failed', updated_h=40)), NOW)
    assert original == kept


def test_unreachable_note():
    assert 'offline (not a TETRA problem)' in unreachable_note(console_state(record(seen_h=100)), NOW)
    assert unreachable_note(console_state(record()), NOW).startswith('console: Definitions Up To Date')
    assert unreachable_note(None, NOW) is None


# ---------------------------------------------------------------- the client, with the HTTP call recorded

class Answer:
    def __init__(self, data, headers=None):
        self.body = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.headers = headers or {}

    def read(self):
        return self.body


def http_error(url, code, headers=None):
    return HTTPError(url, code, 'status %d' % code, headers or {}, io.BytesIO(b'{}'))


class Opener:
    """Answers in order; records every call (URL and keyword arguments)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, url, **kwargs):
        self.calls.append((url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            raise http_error(url, answer, {'X-RateLimit-Reset': '2'} if answer == 429 else {})
        return answer


def page(names, following=None):
    return Answer({'metadata': {'links': {'next': following} if following else {}}, 'data': [record(n) for n in names]})


def client(opener, **kwargs):
    sleeps = []
    made = ConsoleClient('https://api.amp.cisco.com', 'client-1', KEY, opener=opener, sleep=sleeps.append, **kwargs)
    return made, sleeps


def test_pagination_basic_auth_and_limit():
    opener = Opener(page(['a', 'b'], 'https://api.amp.cisco.com/v1/computers?limit=2&offset=2'), page(['c']))
    made, dummy = client(opener)
    assert [r['hostname'] for r in made.computers(page_size=2)] == ['a', 'b', 'c']
    assert opener.calls[0][0] == 'https://api.amp.cisco.com/v1/computers?limit=2'
    assert opener.calls[1][0].endswith('offset=2')
    kwargs = opener.calls[0][1]
    assert kwargs['url_username'] == 'client-1' and kwargs['url_password'] == KEY and kwargs['force_basic_auth'] is True
    assert kwargs['validate_certs'] is True and kwargs['use_netrc'] is False


def test_page_size_is_capped_at_500():
    opener = Opener(page([]))
    list(client(opener)[0].computers(page_size=9999))
    assert opener.calls[0][0].endswith('limit=500')


def test_next_link_to_another_host_is_refused():
    opener = Opener(page(['a'], 'https://evil.example/v1/computers?offset=1'))
    with pytest.raises(ConsoleError, match='another host'):
        list(client(opener)[0].computers())
    assert len(opener.calls) == 1


def test_rate_limit_waits_and_retries_bounded():
    opener = Opener(429, 429, page(['a']))
    made, sleeps = client(opener)
    assert [r['hostname'] for r in made.computers()] == ['a']
    assert sleeps == [2.0, 2.0] and made.waited == 4.0
    opener = Opener(429, 429, 429, 429)
    made, sleeps = client(opener, max_retries=3)
    with pytest.raises(ConsoleError, match='rate limited') as caught:
        list(made.computers())
    assert caught.value.status == 429 and len(opener.calls) == 4


def test_rate_limit_longer_than_max_wait_fails_at_once():
    def opener(url, **kwargs):
        raise http_error(url, 429, {'X-Rate-Limit-Reset': '3500'})
    made, sleeps = client(opener, max_wait=60)
    with pytest.raises(ConsoleError, match='wait 3500 s, more than max_wait 60 s'):
        list(made.computers())
    assert sleeps == []


def test_remaining_zero_waits_before_the_next_request():
    opener = Opener(Answer({'data': [], 'metadata': {}}, {'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '5'}))
    made, sleeps = client(opener)
    list(made.computers())
    assert sleeps == [5.0]


@pytest.mark.parametrize('code, text', [(401, 'authentication failed'), (403, 'access denied'), (404, 'not found'),
                                        (500, 'try again later'), (503, 'try again later'), (418, 'refused the request')])
def test_http_errors_are_clear_and_never_show_the_key(code, text):
    made, dummy = client(Opener(code))
    with pytest.raises(ConsoleError, match=text) as caught:
        list(made.computers())
    assert caught.value.status == code and KEY not in str(caught.value) and KEY not in repr(made)


def test_bad_json_and_bad_shape():
    with pytest.raises(ConsoleError, match='not JSON'):
        list(client(Opener(Answer(b'<html>proxy login</html>')))[0].computers())
    with pytest.raises(ConsoleError, match='no "data" list'):
        list(client(Opener(Answer({'data': {'x': 1}})))[0].computers())


def test_api_url_and_missing_credentials():
    assert api_url(None, 'eu') == 'https://api.eu.amp.cisco.com'
    assert api_url('http://127.0.0.1:8080/', None) == 'http://127.0.0.1:8080'
    with pytest.raises(ConsoleError, match='user:password'):
        api_url('https://id:key@api.amp.cisco.com', None)
    with pytest.raises(ConsoleError, match='region must be one of'):
        api_url(None, 'mars')
    with pytest.raises(ConsoleError, match='client_id and api_key are required'):
        ConsoleClient('https://api.amp.cisco.com', 'id', '')
