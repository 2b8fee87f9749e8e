# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible's own winrm connection plugin, unmodified, against the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import typing as t

import pytest

from tests.lab import Lab
from tests.lab.commands import sleep_seconds

from .helpers import SCRIPT, command_line, input_launch, request

BIN = os.path.dirname(sys.executable)


def ansible(inventory: str, pattern: str, *args: str) -> dict[str, dict[str, t.Any]]:
    """Run an ad hoc command; per-host results from the builtin tree callback."""
    with tempfile.TemporaryDirectory() as tree:
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_GATHERING='explicit', ANSIBLE_FORKS='25')
        subprocess.run([os.path.join(BIN, 'ansible'), pattern, '-i', inventory, '--tree', tree, *args], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
        results = {}
        for name in os.listdir(tree):
            with open(os.path.join(tree, name), encoding='utf-8') as handle:
                results[name] = json.load(handle)
        return results


@pytest.mark.parametrize('https', [False, True])
def test_raw_through_the_winrm_connection(tetra_lab_factory: t.Any, https: bool) -> None:
    lab = tetra_lab_factory('catalog', https=https)
    results = ansible(lab.inventory_path, 'healthy,french_locale,wrong_password,host_down', '-m', 'raw', '-a', 'hostname')
    assert results['healthy']['stdout_lines'] == ['HEALTHY'] and results['healthy']['rc'] == 0
    assert results['french_locale']['stdout_lines'] == ['PC-COMPTA-07']
    assert results['wrong_password']['unreachable'] is True
    assert 'credentials were rejected' in results['wrong_password']['msg']
    assert results['host_down']['unreachable'] is True and 'Connection refused' in results['host_down']['msg']
    assert lab.requests('healthy')[0]['transport'] == 'ntlm'
    assert lab.requests('healthy')[0]['encrypted'] is not https


def test_unknown_command_fails_like_powershell(tetra_lab: Lab) -> None:
    result = ansible(tetra_lab.inventory_path, 'healthy', '-m', 'raw', '-a', 'Get-Date')['healthy']
    assert result['rc'] == 1 and result['msg'] == 'non-zero return code'
    assert "The term 'Get-Date' is not recognized" in result['stdout'] + result.get('stderr', '') + result.get('msg', '')


def test_start_sleep_answers_after_its_time_and_other_forms_fail(tetra_lab: Lab) -> None:
    """The benchmark's same-duration baseline: Start-Sleep as PowerShell 5.1 takes it, nothing the lab cannot time."""
    before = len(tetra_lab.requests('healthy'))
    result = ansible(tetra_lab.inventory_path, 'healthy', '-m', 'raw', '-a', 'Start-Sleep -Seconds 30')['healthy']
    assert result['rc'] == 0 and result['stdout'] == ''
    slept = tetra_lab.requests('healthy')[before:]
    assert [entry['exit_code'] for entry in slept] == [0] and slept[0]['duration_ms'] >= 30000 * tetra_lab.time_scale
    refused = ansible(tetra_lab.inventory_path, 'healthy', '-m', 'raw', '-a', 'Start-Sleep -Minutes 1')['healthy']
    assert refused['rc'] == 1 and "The term 'Start-Sleep' is not recognized" in refused['stdout'] + refused.get('stderr', '')


@pytest.mark.parametrize('text, seconds', [
    ('Start-Sleep 3', 3.0), ('start-sleep -Seconds 2', 2.0), ('Start-Sleep -s 1', 1.0), ('Start-Sleep -Milliseconds 250', 0.25),
    ('Start-Sleep -m 5', 0.005), ('Start-Sleep -Seconds 1.5', None), ('Start-Sleep', None), ('Start-Sleep -Minutes 1', None), ('hostname', None),
])
def test_sleep_seconds_reads_start_sleep_as_powershell_binds_it(text: str, seconds: float | None) -> None:
    assert sleep_seconds(text) == seconds


def winrm_connection(lab: Lab, host: str) -> t.Any:
    from ansible.playbook.play_context import PlayContext  # pylint: disable=import-outside-toplevel
    from ansible.plugins.loader import connection_loader  # pylint: disable=import-outside-toplevel
    connection = connection_loader.get('winrm', PlayContext(), None)
    connection.set_options(var_options={'ansible_host': lab.address(host), 'ansible_user': 'ansible',
                                        'ansible_password': 'Lab-Passw0rd!', 'ansible_port': 5985,
                                        'ansible_winrm_transport': 'ntlm', 'ansible_winrm_scheme': 'http', '_extras': {}})
    return connection


def test_evidence_command_with_stdin_through_ansible_connection(tetra_lab: Lab) -> None:
    """exec_command with in_data, as the collection's actions call it: request and script read through $input."""
    connection = winrm_connection(tetra_lab, 'healthy')
    line, stdin = input_launch(request(sections=['files', 'posture']), SCRIPT + '# evidence script\n' * 30000)
    rc, stdout, dummy = connection.exec_command(line, in_data=stdin, sudoable=False)
    connection.close()
    assert rc == 0 and json.loads(stdout)['files']['local_xml']['readable'] is True
    entry = tetra_lab.requests('healthy')[-1]
    assert entry['stdin_bytes'] == len(stdin) and entry['request']['sections'] == ['files', 'posture']


def test_the_old_launch_is_refused_as_powershell_exe_refuses_it(tetra_lab: Lab) -> None:
    """Anything after the -EncodedCommand value (the pre-fix form) fails before the script starts."""
    connection = winrm_connection(tetra_lab, 'healthy')
    loader = "$TetraScript = [Console]::In.ReadToEnd()\n. ([ScriptBlock]::Create($TetraScript))\n"
    line = command_line(request(sections=['files']), loader) + '; If (-not $?) { exit 1 }'
    rc, stdout, stderr = connection.exec_command(line, in_data=b'# script\n', sudoable=False)
    assert rc == -196608 and stdout == b''
    assert b'-EncodedCommand' in stderr
    # The same bootstrap without the suffix starts, but [Console]::In gives the script nothing.
    rc, stdout, stderr = connection.exec_command(command_line(request(sections=['files']), loader), in_data=b'# script\n', sudoable=False)
    connection.close()
    assert rc == 0 and stdout == b''
