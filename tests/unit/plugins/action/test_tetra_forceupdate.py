# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tetra_forceupdate against a fake connection that answers with recorded evidence documents."""

from __future__ import annotations


import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.secure_endpoint.tetra.plugins.action import tetra_forceupdate
from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_forceupdate import ActionModule

NOW = 1_790_000_000


def local_xml(tetra: int, lasterror: int = 0, last_check: int = NOW - 3600, last_success: int = NOW - 86400) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><config><agent><uuid>5c6e64fa-7738-4b39-b201-15451e33bfe6</uuid><engine><tetra>'
            '<defversions>1:%d</defversions><lastupdate>%d</lastupdate><lastsuccesstime>%d</lastsuccesstime>'
            '<lastupdatechecked>%d</lastupdatechecked><lasterror>%d</lasterror></tetra></engine></agent></config>'
            % (tetra, last_success, last_success, last_check, lasterror))


def document(action='collect', version='8.1.7.21417', tetra=90600, lasterror=0, last_check=NOW - 3600, company='Cisco Systems, Inc.',
             install=True, sfc=True, forceupdate=None) -> dict:
    folder = 'C:\\Program Files\\Cisco\\AMP\\%s' % version
    doc = {'format': 1, 'action': action, 'started': '2026-09-21T10:00:00Z', 'duration_ms': 120, 'context': 'user',
           'host': {'computer_name': 'EP-1', 'os_caption': 'Microsoft Windows 11 Pro', 'os_build': '10.0.22621',
                    'ps_version': '5.1.22621.1778', 'culture': 'en-US', 'user': 'EP-1\\ansible', 'is_system': False},
           'files': {'local_xml': {'path': 'C:\\Program Files\\Cisco\\AMP\\local.xml', 'readable': True,
                                   'text': local_xml(tetra, lasterror, last_check), 'error': None},
                     'policy_xml': {'path': 'C:\\Program Files\\Cisco\\AMP\\policy.xml', 'readable': False, 'text': None,
                                    'error': {'type': 'System.UnauthorizedAccessException', 'hresult': -2147024891}}},
           'errors': []}
    if install:
        doc['install'] = {'install_dir': 'C:\\Program Files\\Cisco\\AMP', 'version_dirs': [version],
                          'service': {'name': 'CiscoAMP', 'image_path': '"%s\\sfc.exe"' % folder, 'state': 'Running', 'start_type': 'Auto'},
                          'display_version': version,
                          'sfc': {'path': folder + '\\sfc.exe', 'company': company if sfc else None, 'file_version': version},
                          'reboot_pending': False, 'isolated': False}
    if forceupdate is not None:
        doc['forceupdate'] = forceupdate
    return doc


def ran(exit_code=0, version='8.1.7.21417'):
    return {'ran': True, 'command': '"C:\\Program Files\\Cisco\\AMP\\%s\\sfc.exe" -forceupdate' % version, 'exit_code': exit_code,
            'duration_ms': 310, 'refused': None}


@pytest.fixture(autouse=True)
def clock(monkeypatch, fake_clock):
    monkeypatch.setattr(ActionModule, 'clock', fake_clock)
    return fake_clock


@pytest.fixture
def run(run_action):
    def run(connection, args=None, check_mode=False):
        return run_action(ActionModule, connection, args, check_mode)
    return run


def test_connector_725_is_refused_after_one_read(fake_connection, run):
    connection = fake_connection(document(version='7.2.5'))
    result = run(connection)
    assert connection.actions == ['collect']
    assert connection.requests[0]['sections'] == ['install', 'files']
    assert result['refused'] == 'connector_too_old' and result['outcome'] == 'refused'
    assert not result.get('failed')
    assert result['changed'] is False and '7.2.5' in result['msg'] and '7.2.7' in result['msg']
    assert result['version_before'] == 90600


def test_connector_727_runs_the_connectors_own_sfc_and_stops_on_advance(clock, fake_connection, run):
    connection = fake_connection(document(version='7.2.7'), document('forceupdate', version='7.2.7', forceupdate=ran(version='7.2.7')),
                                 document(version='7.2.7', install=False),
                                 document(version='7.2.7', install=False, tetra=90606, last_check=NOW))
    result = run(connection)
    assert connection.actions == ['collect', 'forceupdate', 'collect', 'collect']
    assert connection.requests[1]['sections'] == ['files'] and connection.requests[2]['sections'] == ['files']
    assert result['command'] == '"C:\\Program Files\\Cisco\\AMP\\7.2.7\\sfc.exe" -forceupdate'
    assert (result['version_before'], result['version_after'], result['outcome']) == (90600, 90606, 'version_advanced')
    assert result['changed'] is True and result['updated'] is True and not result.get('failed')
    assert result['polls'] == 2 and result['calls'] == 4 and clock.sleeps == [5, 5]
    assert result['duration_s'] == 10.0
    assert result['lasterror']['unsigned'] == 0 and result['lasterror']['problem'] == 'no error'


@pytest.mark.parametrize('company, sfc, refused', [('Microsoft Corporation', True, 'sfc_not_cisco'), (None, False, 'sfc_missing')])
def test_sfc_that_is_not_ciscos_is_never_run(company, sfc, refused, fake_connection, run):
    connection = fake_connection(document(company=company, sfc=sfc))
    result = run(connection)
    assert connection.actions == ['collect']
    assert result['refused'] == refused and result['changed'] is False and result['command'] is None
    if company:
        assert 'Microsoft Corporation' in result['msg'] and 'System File Checker' in result['msg']


def test_endpoint_side_refusal_is_reported(fake_connection, run):
    refused = {'ran': False, 'command': None, 'exit_code': None, 'duration_ms': 0, 'refused': 'sfc_not_cisco'}
    connection = fake_connection(document(), document('forceupdate', forceupdate=refused))
    result = run(connection)
    assert connection.actions == ['collect', 'forceupdate']
    assert result['refused'] == 'sfc_not_cisco' and result['changed'] is False and result['polls'] == 0


def test_check_mode_reports_the_command_and_only_reads(clock, fake_connection, run):
    connection = fake_connection(document())
    result = run(connection, check_mode=True)
    assert connection.actions == ['collect']
    assert result['would_run'] == '"C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\sfc.exe" -forceupdate'
    assert result['outcome'] == 'check_mode' and 'Nothing was run' in result['msg']
    assert clock.sleeps == []


def test_check_mode_on_an_old_connector_is_refused_too(fake_connection, run):
    connection = fake_connection(document(version='7.2.5'))
    result = run(connection, check_mode=True)
    assert result['refused'] == 'connector_too_old' and result['changed'] is False


def test_polling_stops_when_lasterror_changes(fake_connection, run):
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False),
                                 document(install=False, lasterror=4294965193))
    result = run(connection)
    assert connection.actions == ['collect', 'forceupdate', 'collect']
    assert result['outcome'] == 'lasterror_changed' and result['changed'] is False and result['updated'] is False
    assert result['lasterror']['signed'] == -2103 and result['lasterror']['problem'] == 'cannot connect to the proxy'
    assert 'cannot connect to the proxy' in result['msg'] and not result.get('failed')


def test_polling_stops_when_last_check_changes(fake_connection, run):
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False),
                                 document(install=False, last_check=NOW))
    result = run(connection)
    assert result['outcome'] == 'last_check_changed' and result['changed'] is False and result['polls'] == 1


def test_polling_stops_at_the_timeout_with_a_bounded_number_of_calls(clock, fake_connection, run):
    unchanged = [document(install=False)] * 20
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False), *unchanged)
    result = run(connection, {'timeout': 30, 'poll_interval': 5})
    assert result['outcome'] == 'timeout' and result['changed'] is False
    assert result['polls'] == 6 and len(connection.requests) == 8 == 30 // 5 + 2
    assert result['version_after'] == 90600 and 'No change within 30 s' in result['msg']


def test_slow_calls_count_against_the_timeout(clock, monkeypatch, fake_connection, run):
    """Each call takes 7 s here: the loop stops when the timeout has passed, not after timeout/interval polls."""
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False),
                                 *[document(install=False)] * 20)
    original = connection.exec_command

    def slow(cmd, in_data=None, sudoable=True):
        clock.time += 7
        return original(cmd, in_data, sudoable)

    monkeypatch.setattr(connection, 'exec_command', slow)
    result = run(connection, {'timeout': 30, 'poll_interval': 5})
    assert result['outcome'] == 'timeout'
    assert len(connection.requests) == 4 and result['polls'] == 2  # 7 + (5 + 7) * 2 = 31 s > 30 s


def test_version_already_advanced_in_the_forceupdate_answer_needs_no_poll(clock, fake_connection, run):
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False, tetra=90606, last_check=NOW))
    result = run(connection)
    assert result['outcome'] == 'version_advanced' and result['polls'] == 0 and clock.sleeps == []


def test_wait_false_returns_right_after_the_command(fake_connection, run):
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False))
    result = run(connection, {'wait': False})
    assert result['outcome'] == 'not_waited' and result['changed'] is False and connection.actions == ['collect', 'forceupdate']


def test_sfc_exit_code_non_zero_fails_without_polling(fake_connection, run):
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(exit_code=1), install=False))
    result = run(connection)
    assert result['failed'] is True and result['outcome'] == 'command_failed' and 'exited with code 1' in result['msg']
    assert connection.actions == ['collect', 'forceupdate']


def test_hung_sfc_warns_and_still_polls(fake_connection, run):
    hung = dict(ran(), exit_code=None, duration_ms=60012)
    connection = fake_connection(document(), document('forceupdate', forceupdate=hung, install=False),
                                 document(install=False, tetra=90606, last_check=NOW))
    result = run(connection)
    assert result['outcome'] == 'version_advanced' and result['changed'] is True
    assert any('60 s' in w for w in result['warnings'])


def test_an_unreachable_poll_keeps_what_is_known(fake_connection, run):
    from ansible.errors import AnsibleConnectionFailure
    connection = fake_connection(document(), document('forceupdate', forceupdate=ran(), install=False),
                                 AnsibleConnectionFailure('Connection refused'))
    result = run(connection)
    assert result['unreachable'] is True
    assert result['version_before'] == 90600 and result['forceupdate']['ran'] is True and result['calls'] == 3


@pytest.mark.parametrize('args, text', [({'poll_interval': 0}, 'poll_interval'), ({'deadline': 10}, 'deadline'), ({'bogus': 1}, 'bogus')])
def test_bad_arguments_fail_before_contacting_the_endpoint(args, text, fake_connection, run):
    connection = fake_connection()
    with pytest.raises(AnsibleActionFail, match=text):
        run(connection, args)
    assert connection.requests == []


def test_argument_spec_matches_the_documentation():
    import yaml
    from ansible_collections.secure_endpoint.tetra.plugins.modules import tetra_forceupdate as doc
    options = yaml.safe_load(doc.DOCUMENTATION)['options']
    assert set(options) == set(tetra_forceupdate.ARGUMENT_SPEC)
    for name, spec in tetra_forceupdate.ARGUMENT_SPEC.items():
        assert options[name]['type'] == spec['type']
        assert options[name].get('default') == spec.get('default')
