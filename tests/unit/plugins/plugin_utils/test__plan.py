# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _diagnosis, _plan, _report


def record(host: str, cause: str, status: str = 'failing', **attributes: str) -> dict[str, t.Any]:
    outcome = _diagnosis.OUTCOMES.get(cause)
    return {'host': host, 'status': status, 'cause': cause, 'action': outcome.action if outcome else 'Check it.',
            'summary': outcome.summary if outcome else cause, 'remediable': bool(outcome and outcome.remediable),
            'attributes': attributes}


def facts(proxy: dict[str, t.Any] | None = None, issuers: list[str] | None = None, **extra: t.Any) -> dict[str, t.Any]:
    return dict({'local': {'proxy': proxy, 'policy_uuid': 'pol-1'}, 'policy': {'readable': False},
                 'probes': {'tls': {'host': 'tetra-defs.amp.cisco.com', 'issuers': issuers or []}, 'proxy': None}}, **extra)


# --- attributes -----------------------------------------------------------------------------------


def test_attributes_from_facts_and_address() -> None:
    result = {'facts': facts({'server': 'Proxy-A.corp.example', 'port': 8080},
                             ['CN=Contoso Web Inspection CA, O=Contoso', 'CN=IdenTrust Commercial Root CA 1'])}
    assert _plan.attributes(result, '10.1.2.37') == {
        'proxy': 'proxy-a.corp.example:8080', 'update_server': 'tetra-defs.amp.cisco.com',
        'issuer': 'Contoso Web Inspection CA', 'policy': 'pol-1', 'subnet': '10.1.2.0/24'}


def test_readable_policy_wins_and_trusted_issuers_are_not_interception() -> None:
    result = {'facts': facts(None, ['CN=HydrantID Server CA O1', 'CN=IdenTrust Commercial Root CA 1'],
                             policy={'proxy': {'server': '10.20.0.15', 'port': 3128}, 'update_server': 'tetra.corp.example',
                                     'policy_name': 'Protect'})}
    found = _plan.attributes(result, 'ep-1.corp.example')
    assert found == {'proxy': '10.20.0.15:3128', 'update_server': 'tetra.corp.example', 'policy': 'Protect'}


def test_dns_servers_from_facts_or_the_saved_evidence(tmp_path: t.Any) -> None:
    assert _plan.attributes({'facts': facts(system={'dns_servers': ['10.0.0.53', '10.0.0.54']})})['dns_servers'] == '10.0.0.53, 10.0.0.54'
    saved = tmp_path / 'ep-1.json'
    saved.write_text(json.dumps({'format': 1, 'evidence': {'system': {'dns_servers': ['10.20.0.53']}}}))
    assert _plan.attributes({'facts': facts(), 'evidence_path': str(saved)})['dns_servers'] == '10.20.0.53'
    assert 'dns_servers' not in _plan.attributes({'facts': facts(), 'evidence_path': str(tmp_path / 'missing.json')})


@pytest.mark.parametrize('result', [None, {}, 'garbage', {'unreachable': True, 'msg': 'refused'}, {'facts': 'x'}])
def test_attributes_of_hosts_without_facts(result: t.Any) -> None:
    assert _plan.attributes(result) == {}
    assert _plan.attributes(result, '192.168.7.9') == {'subnet': '192.168.7.0/24'}


@pytest.mark.parametrize('address, subnet', [('10.0.0.1', '10.0.0.0/24'), ('ep-1', None), ('', None), (None, None), ('fe80::1', None)])
def test_subnet_of(address: t.Any, subnet: str | None) -> None:
    assert _plan.subnet_of(address) == subnet


# --- grouping -------------------------------------------------------------------------------------


def fleet() -> list[dict[str, t.Any]]:
    records = [record('ok-%d' % i, 'up_to_date', 'ok', proxy='proxy-a:8080') for i in range(3)]
    records += [record('pa-%d' % i, 'proxy_auth_failed', proxy='proxy-a:8080', dns_servers='10.0.0.53', subnet='10.0.1.0/24')
                for i in range(4)]
    records += [record('pb-%d' % i, 'proxy_auth_failed', proxy='proxy-b:3128', dns_servers='10.0.0.53') for i in range(2)]
    records += [record('dh-%d' % i, 'dns_resolution_failed', dns_servers='10.0.0.53', subnet='10.0.%d.0/24' % i) for i in range(3)]
    records += [record('db-%d' % i, 'dns_resolution_failed', dns_servers='10.20.0.53', proxy='proxy-a:8080') for i in range(2)]
    records += [record('dx', 'dns_resolution_failed', subnet='10.9.9.0/24')]
    records += [record('stopped', 'service_stopped')]
    records += [record('down', 'host_unreachable', 'unreachable')]
    return records


def test_hosts_are_grouped_by_cause_and_the_attribute_that_names_the_root_cause() -> None:
    plan = _plan.build_plan(fleet(), status_order=_report.STATUS_ORDER)
    groups = {(g['cause'], (g['shared'] or {}).get('attribute'), (g['shared'] or {}).get('value')): g['hosts'] for g in plan}
    assert groups == {
        ('proxy_auth_failed', 'proxy', 'proxy-a:8080'): ['pa-0', 'pa-1', 'pa-2', 'pa-3'],
        ('proxy_auth_failed', 'proxy', 'proxy-b:3128'): ['pb-0', 'pb-1'],
        ('dns_resolution_failed', 'dns_servers', '10.0.0.53'): ['dh-0', 'dh-1', 'dh-2'],
        ('dns_resolution_failed', 'dns_servers', '10.20.0.53'): ['db-0', 'db-1'],
        ('dns_resolution_failed', 'subnet', '10.9.9.0/24'): ['dx'],
        ('service_stopped', None, None): ['stopped'],
        ('host_unreachable', None, None): ['down'],
    }
    assert [g['count'] for g in plan] == sorted((g['count'] for g in plan), reverse=True), 'largest group first'
    assert not any(host.startswith('ok-') for g in plan for host in g['hosts'])


def test_each_group_has_team_action_once_and_a_sentence() -> None:
    plan = _plan.build_plan(fleet())
    first = plan[0]
    assert first['team'] == 'proxy' and first['team_label'] == 'proxy team'
    assert first['action'] == _diagnosis.OUTCOMES['proxy_auth_failed'].action
    assert first['text'] == 'proxy_auth_failed: 4 hosts, all using proxy proxy-a:8080 -> proxy team'
    dns = next(g for g in plan if g['hosts'] == ['dh-0', 'dh-1', 'dh-2'])
    assert dns['text'] == 'dns_resolution_failed: 3 hosts, all using DNS servers 10.0.0.53 -> network/firewall team'
    single = next(g for g in plan if g['hosts'] == ['dx'])
    assert single['text'] == 'dns_resolution_failed: 1 host, using subnet 10.9.9.0/24 -> network/firewall team'
    stopped = next(g for g in plan if g['cause'] == 'service_stopped')
    assert stopped['text'] == 'service_stopped: 1 host -> endpoint team' and stopped['shared'] is None


def test_teams_can_be_overridden_and_every_catalog_cause_has_a_team() -> None:
    plan = _plan.build_plan(fleet(), teams={'proxy_auth_failed': 'netsec'})
    assert plan[0]['team'] == 'netsec' and plan[0]['team_label'] == 'netsec team'
    # Causes added to the catalog later fall back to the endpoint team; every one maps to a labelled team.
    assert all(_plan.team_of(name) in _plan.TEAM_LABELS for name in _diagnosis.OUTCOMES)
    assert _plan.team_of('a_new_cause') == 'endpoint'
    assert set(_plan.TEAMS.values()) <= set(_plan.TEAM_LABELS)
    assert {k for keys in _plan.CAUSE_KEYS.values() for k in keys} <= set(_plan.ATTRIBUTES)


def test_remediable_groups_and_plan_lines() -> None:
    records = [record('s-%d' % i, 'stale_definitions', 'stale', subnet='10.0.0.0/24') for i in range(7)]
    plan = _plan.build_plan(records)
    assert len(plan) == 1 and plan[0]['remediable'] is True and plan[0]['team'] == 'endpoint'
    lines = _plan.plan_lines(plan, limit=5, hosts_shown=3)
    assert lines[0] == 'stale_definitions: 7 hosts, all using subnet 10.0.0.0/24 -> endpoint team'
    assert lines[1].startswith('    action: Force an update')
    assert lines[2] == '    hosts: s-0, s-1, s-2 and 4 more'
    assert _plan.plan_lines(_plan.build_plan(fleet()), limit=2)[-1] == '... and 5 more groups: see the report'


def test_empty_and_all_ok_fleets_have_no_plan() -> None:
    assert _plan.build_plan([]) == []
    assert _plan.build_plan([record('a', 'up_to_date', 'ok')]) == []


def test_records_without_attributes_group_by_cause() -> None:
    records = [{'host': 'a', 'status': 'failing', 'cause': 'tls_interception', 'action': 'x'},
               {'host': 'b', 'status': 'failing', 'cause': 'tls_interception', 'action': 'x'}]
    plan = _plan.build_plan(records)
    assert len(plan) == 1 and plan[0]['hosts'] == ['a', 'b'] and plan[0]['team'] == 'security'
