# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible's own psrp connection plugin (pypsrp), unmodified, against the lab's PowerShell Remoting server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t

import pytest

from tests.lab import Lab

from .helpers import PASSWORD, SCRIPT, USER, command_line, input_launch, request
from .test_ansible import ansible
from tests.paths import REPO_ROOT

BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize('https', [False, True])
@pytest.mark.parametrize('transport', ['ntlm', 'basic'])
def test_raw_through_the_psrp_connection(tetra_lab_factory: t.Any, https: bool, transport: str) -> None:
    lab = tetra_lab_factory('catalog', https=https, transport=transport, connection='psrp')
    with open(lab.inventory_path, encoding='utf-8') as handle:
        inventory = handle.read()
    assert 'ansible_connection=psrp' in inventory and 'ansible_psrp_auth=%s' % transport in inventory
    assert 'ansible_psrp_protocol=%s' % ('https' if https else 'http') in inventory
    assert ('ansible_psrp_ca_cert=' in inventory) is https
    results = ansible(lab.inventory_path, 'healthy,french_locale,wrong_password,host_down', '-m', 'raw', '-a', 'hostname')
    assert results['healthy']['stdout_lines'] == ['HEALTHY'] and results['healthy']['rc'] == 0, results['healthy']
    assert results['french_locale']['stdout_lines'] == ['PC-COMPTA-07']
    assert results['wrong_password']['unreachable'] is True, results['wrong_password']
    assert 'failed to authenticate' in results['wrong_password']['msg']
    assert results['host_down']['unreachable'] is True
    entry = lab.requests('healthy')[0]
    assert (entry['transport'], entry['auth'], entry['scheme']) == ('psrp', transport, 'https' if https else 'http')
    assert entry['encrypted'] is (transport == 'ntlm' and not https)
    assert entry['script'].startswith('hostname') and entry['exit_code'] == 0
    assert lab.state('wrong_password').counters['auth_failures'] >= 1


def psrp_connection(lab: Lab, host: str, **options: t.Any) -> t.Any:
    from ansible.playbook.play_context import PlayContext  # pylint: disable=import-outside-toplevel
    from ansible.plugins.loader import connection_loader  # pylint: disable=import-outside-toplevel
    connection = connection_loader.get('psrp', PlayContext(), None)
    variables = {'ansible_host': lab.address(host), 'ansible_user': USER, 'ansible_password': PASSWORD, 'ansible_port': 5985,
                 'ansible_psrp_protocol': 'http', 'ansible_psrp_auth': 'ntlm', '_extras': {}}
    variables.update(options)
    connection.set_options(var_options=variables)
    return connection


def test_evidence_request_with_stdin_through_the_psrp_connection(tetra_lab: Lab) -> None:
    """exec_command with in_data, as the collection's actions call it: the request and script arrive as pipeline input."""
    connection = psrp_connection(tetra_lab, 'healthy')
    line, stdin = input_launch(request(sections=['files', 'posture']), SCRIPT + '# evidence script\n' * 3000)
    rc, stdout, stderr = connection.exec_command(line, in_data=stdin, sudoable=False)
    assert rc == 0, stderr
    document = json.loads(stdout)
    assert document['files']['local_xml']['readable'] is True and 'posture' in document and 'dns' not in document
    # The same runspace pool runs the next pipeline (Ansible stops the previous one first).
    rc, stdout, dummy = connection.exec_command(line, in_data=stdin, sudoable=False)
    connection.close()
    assert rc == 0 and json.loads(stdout)['host']
    entries = [e for e in tetra_lab.requests('healthy') if e['transport'] == 'psrp' and e['action'] == 'collect']
    assert len(entries) >= 2 and entries[-1]['request']['sections'] == ['files', 'posture']
    assert entries[-1]['stdin_bytes'] == len(stdin.rstrip(b'\n')) and entries[-1]['runspace_pool_id'] == entries[-2]['runspace_pool_id']
    assert not entries[-1]['signalled']


def test_console_in_loader_gets_nothing(tetra_lab: Lab) -> None:
    """A runspace has no console: a loader reading [Console]::In runs nothing, even with in_data."""
    connection = psrp_connection(tetra_lab, 'healthy')
    loader = "$TetraScript = [Console]::In.ReadToEnd()\n. ([ScriptBlock]::Create($TetraScript))\n"
    rc, stdout, dummy = connection.exec_command(command_line(request(sections=['files']), loader), in_data=b'# script\n', sudoable=False)
    connection.close()
    assert rc == 0 and stdout == b''


def test_failing_script_and_exit_codes(tetra_lab: Lab) -> None:
    connection = psrp_connection(tetra_lab, 'healthy')
    rc, stdout, stderr = connection.exec_command('Get-Date', sudoable=False)
    assert rc == 1 and stdout == b''
    assert b"Get-Date : The term 'Get-Date' is not recognized" in stderr
    assert b'FullyQualifiedErrorId : CommandNotFoundException' in stderr
    rc, stdout, stderr = connection.exec_command('exit 3', sudoable=False)
    assert (rc, stdout, stderr) == (3, b'', b'')
    rc, stdout, stderr = connection.exec_command('whoami', sudoable=False)
    connection.close()
    assert rc == 0 and stdout == b'healthy\\ansible'
    # A request whose data line does not decode fails in the bootstrap: an error record, rc 1.
    connection = psrp_connection(tetra_lab, 'healthy')
    line, dummy = input_launch(request(), '# script')
    rc, stdout, stderr = connection.exec_command(line, in_data=b'not-base64!\n# script\n', sudoable=False)
    connection.close()
    assert rc == 1 and b'ConvertFrom-Json' in stderr


def test_ntlm_over_https_and_operation_timeout_retry(tetra_lab: Lab) -> None:
    """A pipeline that runs longer than OperationTimeout: TimedOut faults, pypsrp polls again."""
    connection = psrp_connection(tetra_lab, 'healthy', ansible_port=5986, ansible_psrp_protocol='https',
                                 ansible_psrp_ca_cert=tetra_lab.ca_path, ansible_psrp_operation_timeout=1)
    before = tetra_lab.state('healthy').counters['operation_timeouts']
    line, stdin = input_launch(request(), SCRIPT)
    rc, stdout, stderr = connection.exec_command(line, in_data=stdin, sudoable=False)
    connection.close()
    assert rc == 0, stderr
    assert json.loads(stdout)['host']
    duration = tetra_lab.requests('healthy')[-1]['duration_ms']
    if duration > 1500:
        assert tetra_lab.state('healthy').counters['operation_timeouts'] > before


def test_faults_reach_the_psrp_client(tetra_lab_factory: t.Any) -> None:
    """garbage_stdout and clixml_stderr (a progress record, not an error) as the WinRS path serves them."""
    lab = tetra_lab_factory('catalog', connection='psrp')
    connection = psrp_connection(lab, 'garbage_output')
    line, stdin = input_launch(request(), SCRIPT)
    rc, stdout, dummy = connection.exec_command(line, in_data=stdin, sudoable=False)
    connection.close()
    assert rc == 0
    with pytest.raises(ValueError):
        json.loads(stdout)


def collections_root(tmp: str) -> str:
    """The staged collection (make collection), else a symlink to this checkout."""
    for root in [p for p in (os.environ.get('ANSIBLE_COLLECTIONS_PATH') or '').split(os.pathsep) if p] + \
            [os.path.join(REPO_ROOT, '.build', 'collections')]:
        if os.path.isdir(os.path.join(root, 'ansible_collections', 'secure_endpoint', 'tetra', 'plugins')):
            return root
    os.makedirs(os.path.join(tmp, 'ansible_collections', 'secure_endpoint'))
    os.symlink(REPO_ROOT, os.path.join(tmp, 'ansible_collections', 'secure_endpoint', 'tetra'))
    return tmp


def test_tetra_diagnose_module_through_psrp(tetra_lab_factory: t.Any) -> None:
    """The collection's diagnose action over psrp reaches the catalog verdict of healthy and dns_failure."""
    lab = tetra_lab_factory('catalog', connection='psrp')
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tree:
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_GATHERING='explicit',
                   ANSIBLE_COLLECTIONS_PATH=collections_root(tmp), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
        done = subprocess.run([os.path.join(BIN, 'ansible'), 'healthy,dns_failure', '-i', lab.inventory_path, '--tree', tree,
                               '-m', 'secure_endpoint.tetra.tetra_diagnose'], env=env, capture_output=True, text=True,
                              timeout=180, check=False)
        results = {}
        for name in os.listdir(tree):
            with open(os.path.join(tree, name), encoding='utf-8') as handle:
                results[name] = json.load(handle)
    assert set(results) == {'healthy', 'dns_failure'}, done.stdout[-2000:] + done.stderr[-2000:]
    verdicts = {host: (result.get('verdict') or {}) for host, result in results.items()}
    assert (verdicts['healthy'].get('status'), verdicts['healthy'].get('cause')) == ('ok', 'up_to_date'), results['healthy']
    assert (verdicts['dns_failure'].get('status'), verdicts['dns_failure'].get('cause')) == ('failing', 'dns_resolution_failed')
    entries = lab.requests('healthy')
    assert entries and all(e['transport'] == 'psrp' for e in entries)
    assert all(e['request'] is not None for e in entries)


def pypsrp_pool(lab: Lab, host: str, **wsman_options: t.Any) -> t.Any:
    from pypsrp.host import PSHost, PSHostUserInterface  # pylint: disable=import-outside-toplevel
    from pypsrp.powershell import RunspacePool  # pylint: disable=import-outside-toplevel
    from pypsrp.wsman import WSMan  # pylint: disable=import-outside-toplevel
    connection = WSMan(lab.address(host), port=5985, ssl=False, username=USER, password=PASSWORD, auth='ntlm', **wsman_options)
    # pypsrp's hints say str for the host's UI culture; None is what it accepts and documents as "not set".
    return RunspacePool(connection, host=PSHost(None, None, False, 'lab test', None, PSHostUserInterface(), None))  # type: ignore[arg-type]


def test_small_envelopes_fragment_both_ways(tetra_lab: Lab) -> None:
    """A 8 KiB MaxEnvelopeSize: the input spans many Sends and the evidence document many Receives (MS-PSRP 2.2.4)."""
    from pypsrp.powershell import PowerShell  # pylint: disable=import-outside-toplevel
    line, stdin = input_launch(request(), SCRIPT + '# evidence script\n' * 2000)
    script = base64_script(line)
    with pypsrp_pool(tetra_lab, 'healthy', max_envelope_size=8192, operation_timeout=5) as pool:
        shell = PowerShell(pool)
        shell.add_script(script)
        output = shell.invoke(input=stdin.decode('utf-8').splitlines())  # type: ignore[arg-type]  # a list is an iterable input
    assert not shell.had_errors and len(output) == 1
    assert json.loads(output[0])['host']['computer_name'] == 'HEALTHY'
    entry = tetra_lab.requests('healthy')[-1]
    assert entry['bytes_out'] > 8192 and entry['stdin_bytes'] > 30000


def base64_script(line: str) -> str:
    """The script inside a `PowerShell ... -EncodedCommand <b64>` line, as Ansible's psrp connection decodes it."""
    import base64  # pylint: disable=import-outside-toplevel
    return base64.b64decode(line.split(' ')[-1]).decode('utf-16-le')


def test_hung_pipeline_is_stopped_by_signal(tetra_lab_factory: t.Any) -> None:
    """hang: Receive answers TimedOut until the client stops the pipeline (powershell/signal/crtl_c)."""
    from pypsrp.complex_objects import PSInvocationState  # pylint: disable=import-outside-toplevel
    from pypsrp.powershell import PowerShell  # pylint: disable=import-outside-toplevel
    lab = tetra_lab_factory('faults')
    with pypsrp_pool(lab, 'hung', operation_timeout=1) as pool:
        shell = PowerShell(pool)
        shell.add_script('hostname')
        shell.begin_invoke()
        shell.poll_invoke()
        shell.poll_invoke()
        assert shell.state == PSInvocationState.RUNNING
        shell.stop()
    assert lab.state('hung').counters['operation_timeouts'] >= 2
    entry = lab.requests('hung')[-1]
    assert entry['transport'] == 'psrp' and entry['signalled'] is True and entry['exit_code'] is None


def test_serve_accepts_connection_psrp() -> None:
    from tests.lab.__main__ import parse_args  # pylint: disable=import-outside-toplevel
    args = parse_args(['serve', '--fleet', 'f.yml', '--inventory', 'i.ini', '--connection', 'psrp'])
    assert args.connection == 'psrp'
    assert parse_args(['serve', '--fleet', 'f.yml', '--inventory', 'i.ini']).connection == 'winrm'
    with pytest.raises(ValueError):
        Lab(os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'catalog.yml'), connection='ssh')
