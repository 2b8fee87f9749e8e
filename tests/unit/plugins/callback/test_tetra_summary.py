# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t
from unittest.mock import MagicMock

import pytest
import yaml

from ansible import constants as C
from ansible.inventory.host import Host

from ansible_collections.secure_endpoint.tetra.plugins.callback import tetra_summary
from ansible_collections.secure_endpoint.tetra.plugins.callback.tetra_summary import CallbackModule


class Capture:
    """A Display stand-in that keeps what would be printed."""

    verbosity = 0

    def __init__(self) -> None:
        self.lines: list[str] = []

    def display(self, msg: str, *args: t.Any, **kwargs: t.Any) -> None:
        self.lines.append(msg)

    def __getattr__(self, name: str) -> t.Any:
        return lambda *args, **kwargs: None

    @property
    def text(self) -> str:
        return '\n'.join(self.lines)


class FakeResult:
    """What callbacks receive: ``host``/``result`` (2.19+) and ``_host``/``_result`` (before)."""

    def __init__(self, host: str, data: dict[str, t.Any]) -> None:
        self.host = self._host = Host(host)
        self.result = self._result = data


class OldResult:
    """ansible-core 2.18 shape: only the underscored attributes."""

    def __init__(self, host: str, data: dict[str, t.Any]) -> None:
        self._host = Host(host)
        self._result = data


def make_result(host: str, data: dict[str, t.Any]) -> FakeResult:
    return FakeResult(host, data)


def verdict(status: str, cause: str, action: str = '') -> dict[str, t.Any]:
    return {'verdict': {'status': status, 'cause': cause, 'action': action, 'summary': cause}}


def new_plugin(display: Capture, **options: t.Any) -> CallbackModule:
    """The plugin with its documented options registered, as the plugin loader would."""
    plugin = CallbackModule(display=display)
    plugin._load_name = 'secure_endpoint.tetra.tetra_summary'
    definitions = yaml.safe_load(tetra_summary.DOCUMENTATION)['options']
    C.config.initialize_plugin_configuration_definitions('callback', plugin._load_name, definitions)
    plugin.set_options(direct=options or None)
    return plugin


@pytest.fixture
def callback() -> tuple[CallbackModule, Capture]:
    display = Capture()
    return new_plugin(display), display


def test_documentation_is_valid_yaml() -> None:
    doc = yaml.safe_load(tetra_summary.DOCUMENTATION)
    assert doc['name'] == 'tetra_summary' and doc['type'] == 'aggregate'
    assert CallbackModule.CALLBACK_TYPE == 'aggregate' and CallbackModule.CALLBACK_NEEDS_ENABLED is True


def test_table_after_recap_with_counts_and_hosts_needing_action(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    plugin.v2_runner_on_ok(make_result('ep-ok', verdict('ok', 'up_to_date')))
    plugin.v2_runner_on_ok(make_result('ep-ok2', verdict('ok', 'up_to_date')))
    plugin.v2_runner_on_ok(make_result('ep-dns', verdict('failing', 'dns_resolution_failed', 'Fix DNS for tetra-defs')))
    plugin.v2_runner_on_failed(make_result('ep-stale', verdict('stale', 'stale_definitions', 'Force an update')))
    plugin.v2_runner_on_unreachable(make_result('ep-pw', {'unreachable': True, 'msg': 'ntlm: the specified credentials were rejected'}))
    plugin.v2_runner_on_unreachable(OldResult('ep-down', {'unreachable': True, 'msg': 'Connection refused'}))
    plugin.v2_runner_on_ok(make_result('ep-ok', {'changed': False, 'msg': 'unrelated task'}))
    plugin.v2_playbook_on_stats(MagicMock())
    text = display.text
    assert 'TETRA SUMMARY (6 hosts)' in text
    lines = [' '.join(line.split()) for line in display.lines]
    assert 'ok 2' in lines and 'failing 1' in lines and 'unreachable 2' in lines and 'stale 1' in lines
    assert 'up_to_date 2' in lines and 'authentication_failed 1' in lines and 'host_unreachable 1' in lines
    assert 'Hosts that need action (4):' in text
    assert any(line.startswith('ep-dns failing dns_resolution_failed Fix DNS') for line in lines)
    order = [line.split()[0] for line in lines if line.startswith('ep-')]
    assert order == ['ep-dns', 'ep-pw', 'ep-down', 'ep-stale'], 'most urgent first'
    assert 'ep-ok ' not in text


def test_report_counts_win_and_paths_are_printed(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    plugin.v2_runner_on_ok(make_result('ep-1', verdict('ok', 'up_to_date')))
    report = {'report_format': 1, 'paths': {'html': '/r/report.html', 'json': '/r/report.json'},
              'summary': {'total': 3, 'by_status': {'ok': 1, 'failing': 2}, 'by_cause': {'up_to_date': 1, 'tls_interception': 2}},
              'needs_action': [{'host': 'a', 'status': 'failing', 'cause': 'tls_interception', 'action': 'x'},
                               {'host': 'b', 'status': 'failing', 'cause': 'tls_interception', 'action': 'y'}]}
    plugin.v2_runner_on_ok(make_result('ep-1', report))
    plugin.v2_playbook_on_stats(MagicMock())
    assert 'TETRA SUMMARY (3 hosts)' in display.text
    assert 'report html: /r/report.html' in display.lines


def test_everything_ok_and_truncation(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    plugin.v2_runner_on_ok(make_result('a', verdict('ok', 'up_to_date')))
    plugin.v2_playbook_on_stats(MagicMock())
    assert 'All hosts are up to date.' in display.lines

    display2 = Capture()
    plugin2 = new_plugin(display2, max_hosts=2, action_width=10)
    for index in range(5):
        plugin2.v2_runner_on_ok(make_result('h%d' % index, verdict('failing', 'dns_resolution_failed', 'a' * 50)))
    plugin2.v2_playbook_on_stats(MagicMock())
    assert '... and 3 more: see the report' in display2.lines
    assert 'aaaaaaa...' in display2.text and 'a' * 11 not in display2.text


def test_silent_without_verdicts(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    plugin.v2_runner_on_ok(make_result('a', {'changed': False}))
    plugin.v2_playbook_on_stats(MagicMock())
    assert display.lines == []


def test_plan_from_the_report_is_printed_first_with_full_actions(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    action = 'Check the proxy credentials (user and password in the policy\'s proxy settings). ' * 3
    report = {'report_format': 1, 'paths': {'html': '/r/report.html'},
              'summary': {'total': 40, 'by_status': {'failing': 37, 'ok': 3}, 'by_cause': {'dns_resolution_failed': 37}},
              'needs_action': [],
              'plan': [{'cause': 'dns_resolution_failed', 'team': 'network', 'count': 37, 'action': action,
                        'text': 'dns_resolution_failed: 37 hosts, all using DNS servers 10.0.0.53 -> network/firewall team'}]}
    plugin.v2_runner_on_ok(make_result('localhost', report))
    plugin.v2_playbook_on_stats(MagicMock())
    lines = display.lines
    start = lines.index('Action plan (1 groups, one action each):')
    assert lines[start + 1] == '  dns_resolution_failed: 37 hosts, all using DNS servers 10.0.0.53 -> network/firewall team'
    assert lines[start + 2] == '      action: ' + ' '.join(action.split()), 'actions are printed in full by default'
    assert start < lines.index('report html: /r/report.html')


def test_plan_from_collected_verdicts_groups_by_cause(callback: tuple[CallbackModule, Capture]) -> None:
    plugin, display = callback
    for host in ('a', 'b', 'c'):
        plugin.v2_runner_on_ok(make_result(host, verdict('failing', 'tls_interception', 'Exempt the server from TLS inspection.')))
    plugin.v2_runner_on_ok(make_result('d', verdict('ok', 'up_to_date')))
    plugin.v2_playbook_on_stats(MagicMock())
    assert '  tls_interception: 3 hosts -> PKI/security team' in display.lines


def test_connection_libraries_are_imported_in_the_parent() -> None:
    import sys
    assert 'winrm' in tetra_summary.PRELOADED and 'winrm' in sys.modules
    assert tetra_summary.preload(['no_such_module_for_tetra', 'json']) == ['json']
