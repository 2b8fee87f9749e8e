# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Requests and commands built by hand, exactly as docs/evidence.md describes them (no collection code)."""

from __future__ import annotations

import base64
import json
import typing as t

import winrm

from tests.lab import Lab

USER, PASSWORD = 'ansible', 'Lab-Passw0rd!'
PREFIX = 'PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand '
ALL_SECTIONS = ('install', 'posture', 'files', 'system', 'dns', 'tls', 'curl', 'http', 'roots', 'proxy')
ALL_ACTIONS = ('collect', 'probes_only', 'forceupdate', 'support_start', 'support_finish', 'read_file', 'support_cleanup')


def entry_main(actions: t.Sequence[str] = ALL_ACTIONS, sections: t.Sequence[str] = ALL_SECTIONS, cim: bool = True) -> str:
    """A stand-in for one joined entry of the endpoint script: its main's request line (docs/evidence.md)."""
    listed = ', '.join("'%s'" % a for a in actions), ', '.join("'%s'" % s for s in sections)
    os_query = 'function Add-OsEvidence { Get-CimInstance -ClassName Win32_OperatingSystem -OperationTimeoutSec 15 }\n' if cim else ''
    return '# stand-in for the endpoint script\n%s$Request = Read-TetraRequest $Document @(%s) @(%s)\n' % (os_query, listed[0], listed[1])


SCRIPT = entry_main()


# The collection's stdin bootstrap (plugins/plugin_utils/_remote.py): request and script through $input.
INPUT_BOOTSTRAP = ('$TetraLines = @($input | ForEach-Object { ([string]$_) -split "`r?`n" })\n'
                   '$TetraRequest = [string]$TetraLines[0]\n'
                   '$TetraScript = ($TetraLines | Select-Object -Skip 1) -join "`n"\n. ([ScriptBlock]::Create($TetraScript))\n')


def input_launch(req: dict[str, t.Any], script: str) -> tuple[str, bytes]:
    """The command line and stdin of a request sent the collection's way."""
    data = base64.b64encode(json.dumps(req).encode('utf-8')).decode('ascii')
    return PREFIX + encode(INPUT_BOOTSTRAP), (data + '\n' + script).encode('utf-8')


def request(**overrides: t.Any) -> dict[str, t.Any]:
    base: dict[str, t.Any] = {
        'format': 1, 'action': 'collect', 'deadline_s': 40, 'sections': list(ALL_SECTIONS), 'context': 'user',
        'concurrent': True, 'update_server': 'tetra-defs.amp.cisco.com',
        'dns_names': ['tetra-defs.amp.cisco.com', 'commercial.ocsp.identrust.com', 'validation.identrust.com'],
        'http_urls': ['http://commercial.ocsp.identrust.com/', 'http://validation.identrust.com/'],
        'root_thumbprints': ['DF717EAA4AD94EC9558499602D48DE5FBCF03A25'],
        'timeouts': {'ampcli': 10, 'dns': 5, 'connect': 5, 'tls': 10, 'curl': 12, 'http': 5, 'proxy': 5}, 'proxy': None,
    }
    base.update(overrides)
    return base


def encode(text: str) -> str:
    return base64.b64encode(text.encode('utf-16-le')).decode('ascii')


def bootstrap(req: dict[str, t.Any], script: str = SCRIPT) -> str:
    data = base64.b64encode(json.dumps(req).encode('utf-8')).decode('ascii')
    return "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n$TetraRequest = '%s'\n%s" % (data, script)


def command_line(req: dict[str, t.Any], script: str = SCRIPT) -> str:
    return PREFIX + encode(bootstrap(req, script))


def session(lab: Lab, host: str, transport: t.Any = 'ntlm', https: bool = False, password: str = PASSWORD,
            **kwargs: t.Any) -> winrm.Protocol:
    return winrm.Protocol(lab.endpoint_url(host, https), transport=transport, username=USER, password=password,
                          server_cert_validation='validate', ca_trust_path=lab.ca_path or 'legacy_requests', **kwargs)


def run(protocol: winrm.Protocol, line: str, stdin: bytes | None = None, chunk: int = 200000) -> tuple[bytes, bytes, int]:
    """One command the way Ansible runs it: stdin in chunks, End only on the last one."""
    shell = protocol.open_shell(codepage=65001)
    try:
        command, dummy, arguments = line.partition(' ')
        command_id = protocol.run_command(shell, command, arguments.split(' ') if arguments else [],
                                          console_mode_stdin=stdin is None)
        if stdin is not None:
            for offset in range(0, len(stdin), chunk):
                protocol.send_command_input(shell, command_id, stdin[offset:offset + chunk], end=offset + chunk >= len(stdin))
        out, err, rc = protocol.get_command_output(shell, command_id)
        protocol.cleanup_command(shell, command_id)
    except Exception:
        try:  # like Ansible: best-effort cleanup, the first error is the one that counts
            protocol.close_shell(shell)
        except Exception:  # pylint: disable=broad-except
            pass
        raise
    protocol.close_shell(shell)
    return out, err, rc


def collect(lab: Lab, host: str, transport: str = 'ntlm', https: bool = False, **overrides: t.Any) -> dict[str, t.Any]:
    out, err, rc = run(session(lab, host, transport, https), command_line(request(**overrides)))
    assert rc == 0, err
    document = json.loads(out)
    assert isinstance(document, dict)
    return document
