# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every injected fault, seen through plain pywinrm."""

from __future__ import annotations

import json
import typing as t

import pytest
import requests
import winrm
from winrm.exceptions import InvalidCredentialsError

from tests.lab import Lab

from .helpers import command_line, request, run, session


@pytest.fixture(scope='module')
def faults(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    from tests.lab.pytest_plugin import fleet_path  # pylint: disable=import-outside-toplevel
    with Lab(fleet_path('faults'), workdir=str(tmp_path_factory.mktemp('faults')), time_scale=0.2) as lab:
        yield lab


def test_host_down_refuses_connections(faults: Lab) -> None:
    with pytest.raises(requests.exceptions.ConnectionError, match='Connection refused'):
        run(session(faults, 'host_down'), 'hostname')


def test_http_500_is_a_wsman_fault(faults: Lab) -> None:
    with pytest.raises(winrm.exceptions.WSManFaultError) as caught:
        run(session(faults, 'server_500'), command_line(request()))
    assert caught.value.code == 500 and caught.value.wsman_fault_code == 1726
    assert faults.state('server_500').counters['faults_500'] >= 1


def test_reset_mid_receive_then_retry_succeeds(faults: Lab) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        run(session(faults, 'flaky_reset'), command_line(request()))
    out, dummy, rc = run(session(faults, 'flaky_reset'), command_line(request()))
    assert rc == 0 and json.loads(out)['format'] == 1
    assert faults.state('flaky_reset').counters['resets'] == 1


def test_reset_every_time(faults: Lab) -> None:
    for dummy in range(2):
        with pytest.raises(requests.exceptions.ConnectionError):
            run(session(faults, 'always_reset', 'basic'), command_line(request()))


def test_garbage_stdout(faults: Lab) -> None:
    out, dummy, rc = run(session(faults, 'garbage_output'), command_line(request()))
    assert rc == 0
    assert out.startswith(b'Windows PowerShell') and b'"format"' not in out


def test_clixml_noise_on_stderr(faults: Lab) -> None:
    out, err, rc = run(session(faults, 'noisy_stderr'), command_line(request()))
    assert rc == 0 and json.loads(out)['format'] == 1
    assert err.startswith(b'#< CLIXML') and b'Preparing modules for first use.' in err


def test_slow_authentication_still_authenticates(faults: Lab) -> None:
    out, dummy, rc = run(session(faults, 'slow_auth'), 'hostname')
    assert (out, rc) == (b'SLOW-AUTH\r\n', 0)


def test_wrong_password_gets_401(faults: Lab) -> None:
    with pytest.raises(InvalidCredentialsError):
        run(session(faults, 'wrong_password', password='Wrong-Passw0rd'), 'hostname')
    assert faults.state('wrong_password').counters['auth_failures'] >= 1


def test_hanging_command_is_signalled(faults: Lab) -> None:
    protocol = session(faults, 'hung', operation_timeout_sec=1, read_timeout_sec=3)
    shell = protocol.open_shell()
    command, dummy, arguments = command_line(request()).partition(' ')
    command_id = protocol.run_command(shell, command, arguments.split(' '))
    for dummy in range(2):
        with pytest.raises(winrm.exceptions.WinRMOperationTimeoutError):
            protocol.get_command_output_raw(shell, command_id)
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)
    entry = faults.requests('hung')[-1]
    assert entry['signalled'] is True and entry['exit_code'] is None
