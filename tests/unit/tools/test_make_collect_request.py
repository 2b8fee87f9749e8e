# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""files/collect-request.json is generated from the request builder and is what tetra_diagnose sends."""

from __future__ import annotations

import importlib.util
import json
import os

from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import healthy_document
from tests.paths import REPO_ROOT

TOOL = os.path.join(REPO_ROOT, 'tools', 'make_collect_request.py')
SHIPPED = os.path.join(REPO_ROOT, 'files', 'collect-request.json')

_spec = importlib.util.spec_from_file_location('make_collect_request', TOOL)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def shipped_bytes() -> bytes:
    with open(SHIPPED, 'rb') as handle:
        return handle.read()


def test_shipped_file_is_up_to_date():
    """Regenerated from plugins/plugin_utils/_request.py; run tools/make_collect_request.py when this fails."""
    assert shipped_bytes().decode('utf-8') == tool.render(tool.collect_request()), \
        'files/collect-request.json is out of date: run .venv/bin/python tools/make_collect_request.py'
    assert tool.main(['--check']) == 0


def test_shipped_file_is_what_tetra_diagnose_sends_by_default(fake_connection, run_action):
    connection = fake_connection(healthy_document())
    run_action(DiagnoseAction, connection)
    sent = connection.request()
    assert json.loads(shipped_bytes()) == sent
    assert sent['context'] == 'system' and sent['action'] == 'collect' and sent['format'] == 1
    assert sent['sections'] == ['install', 'posture', 'files', 'system', 'dns', 'tls', 'curl', 'http', 'roots', 'proxy']


def test_plain_utf8_without_bom():
    data = shipped_bytes()
    assert not data.startswith(b'\xef\xbb\xbf') and data.isascii() and data.endswith(b'}\n') and b'\r' not in data


def test_check_fails_on_a_stale_or_missing_file(tmp_path, capsys):
    stale = tmp_path / 'collect-request.json'
    stale.write_text('{"format": 1}\n')
    assert tool.main(['--check', '--output', str(stale)]) == 1
    assert 'out of date' in capsys.readouterr().err
    assert tool.main(['--check', '--output', str(tmp_path / 'missing.json')]) == 1
    assert tool.main(['--output', str(stale)]) == 0
    assert stale.read_text() == shipped_bytes().decode('utf-8')
