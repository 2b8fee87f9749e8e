# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every injected fault, seen through plain pywinrm."""

from __future__ import annotations

import json
import socket
import threading
import time
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
    for _attempt in range(2):
        with pytest.raises(winrm.exceptions.WinRMOperationTimeoutError):
            protocol.get_command_output_raw(shell, command_id)
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)
    entry = faults.requests('hung')[-1]
    assert entry['signalled'] is True and entry['exit_code'] is None


# ---- faults of the chaos fleet (issue 12): the transport stalls and hostile payloads ----

@pytest.fixture(scope='module')
def chaos(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    from tests.lab.pytest_plugin import fleet_path  # pylint: disable=import-outside-toplevel
    with Lab(fleet_path('chaos'), workdir=str(tmp_path_factory.mktemp('chaos')), time_scale=0.2) as lab:
        yield lab


def in_thread(function: t.Callable[[], t.Any], seconds: float) -> dict[str, t.Any]:
    """Run a blocking client call for at most `seconds`; {'value'|'error'} when it ended, {} when it still hangs."""
    outcome: dict[str, t.Any] = {}

    def target() -> None:
        try:
            outcome['value'] = function()
        except Exception as exc:  # pylint: disable=broad-except
            outcome['error'] = exc
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome


def test_half_open_accepts_tcp_and_never_answers(chaos: Lab) -> None:
    with socket.create_connection((chaos.address('half_open'), 5985), timeout=5) as raw:
        raw.sendall(b'POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')  # the write succeeds
        raw.settimeout(1.5)
        with pytest.raises(socket.timeout):
            raw.recv(1)
    assert chaos.state('half_open').counters['half_open'] >= 1


def test_frozen_answers_the_shell_then_nothing(chaos: Lab) -> None:
    protocol = session(chaos, 'frozen', operation_timeout_sec=1, read_timeout_sec=2)
    shell = protocol.open_shell()  # Create is answered
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # pylint: disable=broad-except  # requests' ReadTimeout, wrapped or not
        protocol.run_command(shell, 'hostname')
    assert 'timed out' in str(caught.value).lower() or 'timeout' in type(caught.value).__name__.lower()
    assert time.monotonic() - started < 10
    assert chaos.state('frozen').counters['frozen'] >= 1
    # the close (WS-Management Delete) hangs as well: only a client-side bound ends it
    assert in_thread(lambda: protocol.close_shell(shell), 3.5).keys() <= {'error'}


def test_slow_drip_beats_every_read_timeout(chaos: Lab) -> None:
    protocol = session(chaos, 'slow_drip', operation_timeout_sec=1, read_timeout_sec=2)
    shell = protocol.open_shell()
    outcome = in_thread(lambda: protocol.run_command(shell, 'hostname'), 4)
    assert outcome == {}  # still receiving, one byte every 0.6 s, after twice the read timeout
    assert chaos.state('slow_drip').counters['drips'] >= 1


@pytest.mark.parametrize('host, check', [
    ('payload_surrogates', lambda doc, raw: '\\ud800' in raw and '\ud800' in doc['install']['service']['name']),
    ('payload_escapes', lambda doc, raw: '\x1b]0;pwned\x07' in doc['host']['computer_name'] and '\u202e' in doc['install']['service']['name']),
    ('payload_wrong_types', lambda doc, raw: doc['install'] == [1]),
])
def test_hostile_payloads_inside_a_valid_document(chaos: Lab, host: str, check: t.Callable[..., bool]) -> None:
    out, dummy, rc = run(session(chaos, host), command_line(request()))
    raw = out.decode('ascii')  # the script escapes every non-ASCII character
    assert rc == 0 and check(json.loads(raw), raw)


def test_deep_json_payload(chaos: Lab) -> None:
    out, dummy, rc = run(session(chaos, 'payload_deep'), command_line(request()))
    assert rc == 0 and out.count(b'[') == 100000
    with pytest.raises(RecursionError):
        json.loads(out)


def test_huge_payload_size() -> None:
    from tests.lab.commands import hostile_payload  # pylint: disable=import-outside-toplevel
    text = hostile_payload({'kind': 'huge', 'mb': 0.5}, {})
    assert len(text) > 512 * 1024 and text.startswith('{"format":1')
    with pytest.raises(ValueError, match='unknown payload kind'):
        hostile_payload({'kind': 'nope'}, {})


def test_huge_payload_over_winrm(chaos: Lab) -> None:
    out, dummy, rc = run(session(chaos, 'payload_huge', read_timeout_sec=120, operation_timeout_sec=60), command_line(request()))
    assert rc == 0 and len(out) > 50 * 1024 * 1024


def test_lost_collect_answer_is_powershells_stop_text(chaos: Lab) -> None:
    out, dummy, rc = run(session(chaos, 'answer_lost'), command_line(request()))
    assert rc == 0 and b'The pipeline has been stopped.' in out
