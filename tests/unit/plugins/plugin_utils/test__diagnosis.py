# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every cause of the catalog, from realistic evidence documents through the real parsers.

The documents are synthetic (built from shared/reference/secure-endpoint.md) except the two curl
outputs, which are the seed's own, verbatim, from samples/.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import CATALOG, OUTCOMES, diagnose, invalid_evidence_verdict
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console import CONSOLE_CAUSES
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import parse_evidence
from tests.paths import SAMPLES_DIR as SAMPLES

NOW = datetime.datetime(2023, 5, 19, 20, 0, 0, tzinfo=datetime.timezone.utc)
HOURS = 3600
SERVER = 'tetra-defs.amp.cisco.com'
FRESH = {'latest': 90606, 'source': 'versions.id', 'max_behind': 5}
REVOCATION_OFFLINE = -2146885613  # 0x80092013


def seed(name: str) -> str:
    with open(os.path.join(SAMPLES, name), encoding='utf-8') as handle:
        return handle.read()


def epoch(hours_ago: float) -> int:
    return int(NOW.timestamp() - hours_ago * HOURS)


def local_xml(version: int, success_hours_ago: float = 1, check_hours_ago: float = 1, lasterror: int = 0) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><config><agent><uuid>5c6e64fa-7738-4b39-b201-15451e33bfe6</uuid>'
            '<engine><tetra><defversions>1:%d</defversions><lastupdate>%d</lastupdate><lastsuccesstime>%d</lastsuccesstime>'
            '<lastupdatechecked>%d</lastupdatechecked><lasterror>%d</lasterror></tetra></engine></agent>'
            '<janus><policy><uuid>0fd1b2c4-1f2e-4c55-9a0e-1d2b3c4d5e6f</uuid></policy></janus></config>'
            % (version, epoch(success_hours_ago), epoch(success_hours_ago), epoch(check_hours_ago), lasterror))


def policy_xml(tetra: int = 1, updater: int = 1, server: str = SERVER, proxy: str = '') -> str:
    return ('<?xml version="1.0"?><Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><Object><config>'
            '<agent><scansettings><tetra><enable>%d</enable><updater><enable>%d</enable><server>%s</server>'
            '<interval>3600</interval></updater></tetra></scansettings></agent>%s</config></Object></Signature>'
            % (tetra, updater, server, proxy))


def error(kind: str, hresult: int, native: int | None = None, message: str = 'synthetic') -> dict:
    found = {'type': kind, 'hresult': hresult, 'message': message}
    if native is not None:
        found['native_error'] = native
    return found


def healthy_document(version: int = 90606) -> dict:
    chain = [
        {'subject': 'CN=tetra-defs.amp.cisco.com, O=Cisco Systems Inc., C=US', 'issuer': 'CN=HydrantID Server CA O1, O=IdenTrust, C=US',
         'thumbprint': 'A1' * 20, 'not_before': '2023-01-01T00:00:00Z', 'not_after': '2024-01-01T00:00:00Z',
         'aia_text': 'URL=http://commercial.ocsp.identrust.com', 'crl_text': 'URL=http://validation.identrust.com/crl/hydrantidcao1.crl'},
        {'subject': 'CN=HydrantID Server CA O1, O=IdenTrust, C=US', 'issuer': 'CN=IdenTrust Commercial Root CA 1, O=IdenTrust, C=US',
         'thumbprint': 'B2' * 20, 'not_before': '2019-12-12T00:00:00Z', 'not_after': '2029-12-12T00:00:00Z', 'aia_text': None, 'crl_text': None},
    ]
    return {
        'format': 1, 'action': 'collect', 'started': '2023-05-19T19:59:58Z', 'duration_ms': 1800, 'context': 'system',
        'host': {'computer_name': 'DESKTOP-QFC3PVT', 'os_caption': 'Microsoft Windows 11 Pro', 'os_build': '10.0.22621',
                 'ps_version': '5.1.22621.1778', 'culture': 'en-US', 'user': 'DESKTOP-QFC3PVT\\ansible', 'is_system': False},
        'install': {'install_dir': 'C:\\Program Files\\Cisco\\AMP', 'version_dirs': ['8.1.7.21417'],
                    'service': {'name': 'CiscoAMP', 'image_path': '"C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\sfc.exe"',
                                'state': 'Running', 'start_type': 'Auto'},
                    'display_version': '8.1.7.21417',
                    'sfc': {'path': 'C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\sfc.exe', 'company': 'Cisco Systems, Inc.', 'file_version': '8.1.7.21417'},
                    'reboot_pending': False, 'isolated': False},
        'posture': {'path': 'C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\AmpCLI.exe', 'found': True, 'exit_code': 0, 'timed_out': False,
                    'stdout': json.dumps({'agent_uuid': '5c6e64fa-7738-4b39-b201-15451e33bfe6', 'connected': True, 'connector_version': '8.1.7',
                                          'engines': [{'name': 'TETRA', 'version': str(version)}, {'name': 'SPERO', 'version': '11'}]}),
                    'stderr': '', 'duration_ms': 640, 'error': None},
        'files': {'local_xml': {'path': 'C:\\Program Files\\Cisco\\AMP\\local.xml', 'readable': True, 'text': local_xml(version), 'error': None},
                  'policy_xml': {'path': 'C:\\Program Files\\Cisco\\AMP\\policy.xml', 'readable': False, 'text': None,
                                 'error': error('System.UnauthorizedAccessException', -2147024891)}},
        'system': {'winhttp_proxy': 'Current WinHTTP proxy settings:\r\n\r\n    Direct access (no proxy server).',
                   'curl_path': 'C:\\Windows\\System32\\curl.exe',
                   'dns_servers': ['10.0.0.53'], 'pac_url': None},
        'probes': {
            'dns': [{'name': n, 'addresses': ['52.22.1.10'], 'duration_ms': 20, 'timed_out': False, 'error': None}
                    for n in (SERVER, 'commercial.ocsp.identrust.com', 'validation.identrust.com')],
            'tls': {'host': SERVER, 'port': 443,
                    'connect': {'ok': True, 'address': '52.22.1.10', 'duration_ms': 30, 'timed_out': False, 'error': None},
                    'handshake': {'ok': True, 'protocol': 'Tls12', 'duration_ms': 120, 'timed_out': False, 'error': None},
                    'policy_errors': 'None', 'chain': chain, 'chain_status': []},
            'curl': {'path': 'C:\\Windows\\System32\\curl.exe', 'found': True, 'exit_code': 0, 'output': seed('seed-curl-tetra-defs-ok.txt'),
                     'timed_out': False, 'duration_ms': 400},
            'http': [{'url': 'http://%s/' % h, 'status': 200, 'duration_ms': 50, 'timed_out': False, 'via_proxy': None, 'error': None}
                     for h in ('commercial.ocsp.identrust.com', 'validation.identrust.com')],
            'roots': [{'thumbprint': 'DF717EAA4AD94EC9558499602D48DE5FBCF03A25', 'present': True, 'subject': 'CN=IdenTrust Commercial Root CA 1'}],
            'proxy': None,
        },
        'errors': [],
    }


def behind(document: dict, version: int = 90600, success_hours_ago: float = 48, check_hours_ago: float = 30, lasterror: int = 0) -> dict:
    document['posture']['stdout'] = re.sub(r'("name": "TETRA", "version": ")\d+', r'\g<1>%d' % version, document['posture']['stdout'])
    document['files']['local_xml']['text'] = local_xml(version, success_hours_ago, check_hours_ago, lasterror)
    return document


def revocation_blocked(document: dict) -> dict:
    tls = document['probes']['tls']
    tls['handshake'] = {'ok': False, 'protocol': None, 'duration_ms': 10020, 'timed_out': False,
                        'error': error('System.Security.Authentication.AuthenticationException', -2146233087, REVOCATION_OFFLINE)}
    tls['chain_status'] = ['RevocationStatusUnknown', 'OfflineRevocation']
    document['probes']['curl'].update(exit_code=35, output=seed('seed-curl-tetra-defs-revocation-offline.txt'), duration_ms=10500)
    for probe in document['probes']['http']:
        probe.update(status=None, timed_out=True, duration_ms=5003, error=error('System.Net.WebException', -2146233079))
        probe['error']['status'] = 'Timeout'
    return behind(document)


def dns_failure(document: dict) -> dict:
    document['probes']['dns'][0].update(addresses=[], duration_ms=2100,
                                        error={'type': 'System.Net.Sockets.SocketException', 'hresult': -2147467259, 'code': 11001,
                                               'message': 'Hote inconnu'})
    document['probes']['tls']['connect'].update(ok=False, address=None,
                                                error={'type': 'System.Net.Sockets.SocketException', 'hresult': -2147467259, 'code': 11001})
    document['probes']['tls'].update(handshake=None, chain=[])
    document['probes']['curl'].update(exit_code=6, output='* Could not resolve host: %s\ncurl: (6) Could not resolve host: %s\n' % (SERVER, SERVER))
    return behind(document)


def firewall(document: dict) -> dict:
    document['probes']['tls']['connect'].update(ok=False, address=None, timed_out=True, duration_ms=5001)
    document['probes']['tls'].update(handshake=None, chain=[])
    document['probes']['curl'].update(exit_code=28, output='*   Trying 52.22.1.10:443...\n'
                                      'curl: (28) Failed to connect to %s port 443 after 12000 ms: Timed out\n' % SERVER)
    return behind(document)


def interception(document: dict) -> dict:
    tls = document['probes']['tls']
    tls['chain'][0]['issuer'] = 'CN=Corp SSL Inspection CA, O=Example Corp'
    tls['chain'] = tls['chain'][:1] + [{'subject': 'CN=Corp SSL Inspection CA, O=Example Corp', 'issuer': 'CN=Corp SSL Inspection CA, O=Example Corp',
                                        'thumbprint': 'C3' * 20, 'not_before': None, 'not_after': None, 'aia_text': None, 'crl_text': None}]
    tls['handshake'].update(ok=False, error=error('System.Security.Authentication.AuthenticationException', -2146233087, -2146762487))
    tls['chain_status'] = ['UntrustedRoot']
    document['probes']['curl'].update(exit_code=60, output='curl: (60) schannel: SEC_E_UNTRUSTED_ROOT (0x80090325) - '
                                      'The certificate chain was issued by an authority that is not trusted.\n')
    return behind(document)


def root_missing(document: dict) -> dict:
    document['probes']['roots'][0].update(present=False, subject=None)
    document['probes']['tls']['handshake'].update(ok=False, error=error('System.Security.Authentication.AuthenticationException', -2146233087, -2146762487))
    return behind(document)


def proxy(document: dict, lasterror: int, connect_ok: bool = True, status: int | None = 200) -> dict:
    document['files']['local_xml']['text'] = local_xml(90600, 48, 1, lasterror).replace(
        '</config>', '<proxy><server>proxy.corp.example</server><port>8080</port></proxy></config>')
    document['posture']['stdout'] = document['posture']['stdout'].replace('"90606"', '"90600"')
    document['probes']['proxy'] = {'server': 'proxy.corp.example', 'port': 8080, 'source': 'local_xml',
                                   'connect': {'ok': connect_ok, 'duration_ms': 5001 if not connect_ok else 12, 'timed_out': not connect_ok, 'error': None},
                                   'connect_status': status, 'status_line': 'HTTP/1.1 %s x' % status if status else None}
    return document


def interrupted(document: dict) -> dict:
    document['probes']['curl'].update(exit_code=56, output='< HTTP/1.1 200 OK\n* Recv failure: Connection was reset\n'
                                      'curl: (56) Recv failure: Connection was reset\n')
    return behind(document)


def disconnected(document: dict) -> dict:
    document['posture']['stdout'] = document['posture']['stdout'].replace('"connected": true', '"connected": false')
    return behind(document)


def stopped(document: dict) -> dict:
    document['install']['service']['state'] = 'Stopped'
    return behind(document)


def disabled(document: dict) -> dict:
    document['files']['policy_xml'] = {'path': 'C:\\Program Files\\Cisco\\AMP\\policy.xml', 'readable': True, 'text': policy_xml(tetra=0), 'error': None}
    return behind(document)


def misconfigured(document: dict) -> dict:
    document['files']['policy_xml'] = {'path': 'x', 'readable': True, 'text': policy_xml(server='tetra.corp.example'), 'error': None}
    document['probes']['tls']['host'] = 'tetra.corp.example'
    document['probes']['dns'][0].update(name='tetra.corp.example', addresses=[],
                                        error={'type': 'System.Net.Sockets.SocketException', 'hresult': -1, 'code': 11001})
    return behind(document)


def too_old(document: dict) -> dict:
    document['install'].update(version_dirs=['7.2.5'], display_version='7.2.5')
    document['install']['service']['image_path'] = '"C:\\Program Files\\Cisco\\AMP\\7.2.5\\sfc.exe"'
    return behind(document)


def stale(document: dict) -> dict:
    return behind(document)


def intermittent(document: dict) -> dict:
    return behind(document, check_hours_ago=0.5, lasterror=4294967295)


def not_installed(document: dict) -> dict:
    document['install'] = {'install_dir': None, 'version_dirs': [], 'service': None, 'display_version': None, 'sfc': None,
                           'reboot_pending': False, 'isolated': False}
    document['posture'] = {'path': 'AmpCLI.exe', 'found': False, 'exit_code': None, 'stdout': None, 'stderr': None, 'timed_out': False, 'duration_ms': 0}
    document['files'] = {'local_xml': {'path': None, 'readable': False, 'text': None, 'error': None},
                         'policy_xml': {'path': None, 'readable': False, 'text': None, 'error': None}}
    return document


def ampcli_missing(document: dict) -> dict:
    document['posture'] = {'path': 'C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\AmpCLI.exe', 'found': False, 'exit_code': None,
                           'stdout': None, 'stderr': None, 'timed_out': False, 'duration_ms': 0, 'error': None}
    return document


CASES = [
    (lambda d: d, 'ok', 'up_to_date'),
    (ampcli_missing, 'ok', 'up_to_date'),
    (not_installed, 'not_installed', 'connector_not_installed'),
    (revocation_blocked, 'failing', 'revocation_check_failed'),
    (dns_failure, 'failing', 'dns_resolution_failed'),
    (firewall, 'failing', 'update_server_unreachable'),
    (interception, 'failing', 'tls_interception'),
    (root_missing, 'failing', 'root_certificate_missing'),
    (lambda d: proxy(d, 4294965193, connect_ok=False, status=None), 'failing', 'proxy_unreachable'),
    (lambda d: proxy(d, 4294965196, status=407), 'failing', 'proxy_auth_failed'),
    (lambda d: proxy(d, 4294965187), 'failing', 'proxy_download_failed'),
    (interrupted, 'failing', 'download_interrupted'),
    (disconnected, 'failing', 'connector_disconnected'),
    (stopped, 'failing', 'service_stopped'),
    (disabled, 'failing', 'tetra_disabled'),
    (misconfigured, 'failing', 'update_server_misconfigured'),
    (too_old, 'stale', 'connector_too_old'),
    (stale, 'stale', 'stale_definitions'),
    (intermittent, 'stale', 'intermittent_connectivity'),
]


def verdict_for(mutate, freshness=None) -> dict:
    return diagnose(parse_evidence(mutate(healthy_document())), freshness or FRESH, host='ep', now=NOW)


@pytest.mark.parametrize('mutate, status, cause', CASES, ids=[c[2] + '-' + c[0].__name__ for c in CASES])
def test_every_cause_from_realistic_evidence(mutate, status, cause):
    verdict = verdict_for(mutate)
    assert (verdict['status'], verdict['cause']) == (status, cause), verdict
    assert verdict['action'] and verdict['summary']
    if status not in ('ok', 'not_installed'):
        assert verdict['evidence'], verdict


def test_every_catalog_cause_is_covered_by_a_case():
    tested = {c[2] for c in CASES}
    # The network causes added by issue 11 (proxy_refused, tls_handshake_failed, unrecognized_code) are covered by test__corpus.py.
    assert set(OUTCOMES) - tested <= {'definitions_unknown', 'evidence_invalid', 'context_fallback', 'posture_unavailable', 'policy_unreadable',
                                      'probes_not_run', 'proxy_refused', 'tls_handshake_failed', 'unrecognized_code'}


def test_revocation_evidence_quotes_the_code_and_the_unreachable_hosts():
    verdict = verdict_for(revocation_blocked)
    text = ' | '.join(verdict['evidence'])
    assert '0x80092013' in text
    assert 'validation.identrust.com:80 timed out after 5.0 s' in text
    assert 'as LocalSystem' in text
    assert not verdict['remediable']


def test_primary_is_the_first_catalog_entry_and_others_are_secondary():
    verdict = verdict_for(lambda d: stopped(revocation_blocked(d)))
    assert verdict['cause'] == 'service_stopped'
    assert [s['cause'] for s in verdict['secondary']][:1] == ['revocation_check_failed']
    order = [c.name for c in CATALOG]
    assert order.index('service_stopped') < order.index('revocation_check_failed')


def test_current_host_with_a_network_problem_is_ok_with_a_warning():
    verdict = verdict_for(lambda d: dns_failure(d) and behind(d, version=90606, success_hours_ago=1))
    assert verdict['status'] == 'ok'
    assert 'dns_resolution_failed' in [s['cause'] for s in verdict['secondary']]


def test_a_host_one_version_behind_with_a_blocking_problem_is_failing():
    verdict = verdict_for(lambda d: dns_failure(d) and behind(d, version=90605, success_hours_ago=7))
    assert (verdict['status'], verdict['cause']) == ('failing', 'dns_resolution_failed')


def test_a_day_without_success_is_stale_even_within_max_behind():
    verdict = verdict_for(lambda d: behind(d, version=90603, success_hours_ago=26))
    assert (verdict['status'], verdict['cause']) == ('stale', 'stale_definitions')


def test_freshness_threshold_is_configurable():
    def slightly_behind(document):
        return behind(document, version=90603, success_hours_ago=5)
    assert verdict_for(slightly_behind)['status'] == 'ok'
    assert verdict_for(slightly_behind, dict(FRESH, max_behind=2))['status'] == 'stale'


def test_unknown_latest_judges_on_age_and_says_so():
    verdict = verdict_for(stale, {'latest': None, 'source': 'unknown', 'max_behind': 5, 'max_age_hours': 24})
    assert verdict['versions']['latest_source'] == 'unknown'
    assert verdict['status'] == 'stale'
    assert verdict['age_hours'] == 48.0


def test_policy_unreadable_and_missing_ampcli_are_secondary_findings():
    verdict = verdict_for(ampcli_missing)
    # policy.xml unreadable is expected on 8.1.3 and later: context in the evidence, not a secondary finding (issue 11 item 5).
    assert 'posture_unavailable' in {s['cause'] for s in verdict['secondary']}
    assert 'policy_unreadable' not in {s['cause'] for s in verdict['secondary']}
    assert any(line.startswith('context: policy.xml not readable locally') for line in verdict['evidence'])
    assert verdict['versions']['tetra'] == 90606


def test_verdicts_are_deterministic_and_json_serialisable():
    first = verdict_for(revocation_blocked)
    assert first == verdict_for(revocation_blocked)
    json.dumps(first)


def test_proxy_password_never_reaches_the_verdict():
    secret = 'S3cr3t-Pr0xy!'
    document = disabled(healthy_document())
    document['files']['policy_xml']['text'] = policy_xml(tetra=0, proxy='<proxy><server>p.example</server><port>8080</port>'
                                                         '<username>svc</username><password>%s</password></proxy>' % secret)
    facts = parse_evidence(document)
    assert secret not in json.dumps(facts)
    assert secret not in json.dumps(diagnose(facts, FRESH, now=NOW))


def test_invalid_evidence_gets_a_row():
    verdict = invalid_evidence_verdict('ep-9', 'The endpoint did not return one JSON document')
    assert (verdict['status'], verdict['cause'], verdict['host']) == ('unknown', 'evidence_invalid', 'ep-9')


def test_source_documents_are_not_mutated():
    document = healthy_document()
    snapshot = copy.deepcopy(document)
    diagnose(parse_evidence(document), FRESH, now=NOW)
    assert document == snapshot


def test_docs_causes_page_names_every_cause_of_the_catalog_and_console():
    page = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'docs', 'causes.md')
    with open(page, encoding='utf-8') as handle:
        documented = set(re.findall(r'^\| ([a-z_]+) \|', handle.read(), re.M)) - {'cause'}
    assert documented == set(OUTCOMES) | set(CONSOLE_CAUSES)


# ---------------------------------------------------------------- probes that did not run (issue 10)

def _not_run(document: dict, reason: dict | None = None) -> dict:
    """Every network probe as the script reports it when the LocalSystem task did not finish: identity + not_run."""
    probes = document['probes']
    probes['dns'] = [{'name': p['name'], 'timed_out': False, 'not_run': True, 'error': reason} for p in probes['dns']]
    probes['tls'] = {'host': SERVER, 'port': 443, 'timed_out': False, 'not_run': True, 'error': reason}
    probes['curl'] = {'path': 'C:\\Windows\\System32\\curl.exe', 'url': 'https://%s/' % SERVER, 'timed_out': False, 'not_run': True, 'error': reason}
    probes['http'] = [{'url': p['url'], 'timed_out': False, 'not_run': True, 'error': reason} for p in probes['http']]
    return document


def task_unfinished(document: dict) -> dict:
    document['system_task'] = {'registered': True, 'started': True, 'finished': False, 'stopped': True, 'state': 'Running',
                               'last_result': 267009, 'is_system': None, 'duration_ms': 37000, 'error': None}
    document['errors'] = [{'section': 'system_task', 'type': 'System.TimeoutException', 'hresult': -2146233083, 'message': 'x'}]
    return behind(_not_run(document, error('System.TimeoutException', -2146233083)))


def task_never_started(document: dict) -> dict:
    """The task never started: the probes ran as the WinRM user (context user) and saw a healthy network."""
    document['context'] = 'user'
    document['system_task'] = {'registered': True, 'started': False, 'finished': False, 'stopped': False, 'state': 'Ready',
                               'last_result': 267011, 'is_system': None, 'duration_ms': 10200, 'error': None}
    document['errors'] = [{'section': 'context', 'type': 'System.InvalidOperationException', 'hresult': -2146233079, 'message': 'x'}]
    return behind(document)


def old_nameless_timeouts(document: dict) -> dict:
    """Probes that only say timed_out (no identity) from a task that never finished: nothing may be concluded."""
    document['system_task'] = {'registered': True, 'started': False, 'finished': False, 'stopped': False, 'state': 'Queued',
                               'last_result': 267011, 'duration_ms': 38000, 'error': None}
    document['probes'].update(dns=[{'timed_out': True, 'error': None}] * 3, tls={'timed_out': True, 'error': None},
                              http=[{'timed_out': True, 'error': None}] * 2, curl={'timed_out': True, 'error': None})
    return behind(document)


def test_unfinished_system_task_says_not_run_and_derives_no_network_cause():
    verdict = verdict_for(task_unfinished)
    assert (verdict['status'], verdict['cause']) == ('stale', 'stale_definitions'), verdict
    secondary = {f['cause']: f for f in verdict['secondary']}
    assert 'probes_not_run' in secondary
    lines = secondary['probes_not_run']['evidence']
    assert lines[0] == 'the LocalSystem scheduled task started but did not finish before the deadline (stopped)'
    assert 'not run: dns %s' % SERVER in lines and 'not run: tls %s:443' % SERVER in lines
    assert 'not run: http http://validation.identrust.com/' in lines and 'not run: curl https://%s/' % SERVER in lines
    network = {'dns_resolution_failed', 'update_server_unreachable', 'revocation_check_failed', 'tls_interception', 'download_interrupted'}
    assert not network & ({verdict['cause']} | set(secondary))


def test_task_that_never_started_is_never_read_as_network_timeouts():
    verdict = verdict_for(old_nameless_timeouts)
    causes = {verdict['cause']} | {f['cause'] for f in verdict['secondary']}
    assert verdict['cause'] == 'stale_definitions'
    assert 'probes_not_run' in causes
    assert not causes & {'dns_resolution_failed', 'update_server_unreachable', 'revocation_check_failed'}
    line = [f for f in verdict['secondary'] if f['cause'] == 'probes_not_run'][0]['evidence'][0]
    assert line == 'the LocalSystem scheduled task never started (state Queued, last result 0x00041303)'


def test_task_never_started_then_user_probes_are_judged_and_the_fallback_is_said():
    verdict = verdict_for(task_never_started)
    finding = [f for f in verdict['secondary'] if f['cause'] == 'probes_not_run'][0]
    assert finding['evidence'] == ['the LocalSystem scheduled task never started (state Ready, last result 0x00041303): '
                                   'the probes ran as the WinRM user']
    assert 'context_fallback' in {f['cause'] for f in verdict['secondary']}


def test_revocation_evidence_from_probes_that_did_not_run_is_ignored():
    def mutate(document: dict) -> dict:
        document = revocation_blocked(document)
        for probe in document['probes']['http']:
            probe['not_run'] = True
        document['probes']['tls']['not_run'] = True
        document['probes']['curl']['not_run'] = True
        return document
    verdict = verdict_for(mutate)
    assert verdict['cause'] != 'revocation_check_failed'
    assert 'revocation_check_failed' not in {f['cause'] for f in verdict['secondary']}
    assert verdict['status'] == 'stale'


def test_a_queued_probe_cut_by_the_deadline_is_not_a_dns_failure():
    def mutate(document: dict) -> dict:
        document['context'] = 'user'
        document['probes']['dns'][0] = {'name': SERVER, 'timed_out': False, 'not_run': True, 'error': None}
        return behind(document)
    verdict = verdict_for(mutate)
    assert verdict['cause'] == 'stale_definitions'
    assert [f['evidence'] for f in verdict['secondary'] if f['cause'] == 'probes_not_run'] == [['not run: dns %s' % SERVER]]


def test_a_probe_that_ran_and_timed_out_still_counts():
    verdict = verdict_for(revocation_blocked)
    assert verdict['cause'] == 'revocation_check_failed'
    assert 'probes_not_run' not in {f['cause'] for f in verdict['secondary']}
