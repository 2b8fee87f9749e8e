# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""docs/endpoint-commands.md lists exactly the command lines plugins/plugin_utils/_request.py builds (tools/endpoint_commands.py)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _request
from tests.paths import REPO_ROOT

_spec = importlib.util.spec_from_file_location('endpoint_commands', os.path.join(REPO_ROOT, 'tools', 'endpoint_commands.py'))
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)


def doc_text() -> str:
    with open(tool.DOC, encoding='utf-8') as handle:
        return handle.read()


def test_the_doc_lists_every_command_request_py_builds_and_no_other():
    """Run `python tools/endpoint_commands.py --write` (and write a row by hand for a new command) when this fails."""
    assert tool.problems(doc_text(), tool.built_commands()) == []
    assert tool.main([]) == 0


def test_every_command_of_windows_commands_is_compared():
    built = tool.built_commands()
    assert set(built) == set(_request.windows_commands('tetra-defs.amp.cisco.com')) and 'curl' in built and 'system_task' in built
    assert set(tool.documented_commands(doc_text())) == set(built)


def test_the_doc_shows_values_by_name_not_the_stand_ins():
    built = tool.built_commands()
    assert built['curl'] == ('-v --max-time <n> https://<update server>/', 'UTF-8')
    assert '<MB>' in built['pktmon_start'][0] and '"<work dir>\\capture.etl"' in built['netsh_trace_start'][0]
    assert '{' not in ''.join(arguments for arguments, _encoding in built.values())


@pytest.mark.parametrize('change, expected', [
    (lambda built: built.update(new_tool=('-x', 'OEM')), 'new_tool: built by _request.py but has no row'),
    (lambda built: built.pop('pktmon_stop'), 'pktmon_stop: listed in docs/endpoint-commands.md but not built'),
    (lambda built: built.update(system_task=(built['system_task'][0].replace('-NoProfile ', ''), 'OEM')), 'system_task: the doc shows'),
    (lambda built: built.update(curl=(built['curl'][0], 'OEM')), 'curl: the doc shows'),
], ids=['command without a row', 'row without a command', 'changed arguments', 'changed encoding'])
def test_a_difference_either_way_is_named(change, expected):
    built = tool.built_commands()
    change(built)
    found = tool.problems(doc_text(), built)
    assert len(found) == 1 and found[0].startswith(expected)


def test_write_takes_the_arguments_from_request_py_and_keeps_the_rest(tmp_path):
    stale = doc_text().replace('stop` [`pktmon_stop`, OEM]', 'stop --all` [`pktmon_stop`, UTF-8]')
    page = tmp_path / 'endpoint-commands.md'
    page.write_text(stale, encoding='utf-8')
    assert tool.main(['--doc', str(page)]) == 1
    assert tool.main(['--doc', str(page), '--write']) == 0
    assert page.read_text(encoding='utf-8') == doc_text()
