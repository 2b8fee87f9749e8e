# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Generalization corpus (issue 11): every witness counts, alone or together, and no false cause.

corpus/index.json lists one sample per file with the cause a TAC engineer would give. Most samples are
RECONSTRUCTED from public wording (curl's own strings, Microsoft-published Windows error texts in English,
French, German and Spanish, .NET exception texts, Resolve-DnsName error records), not captured from an
endpoint; the two seed samples are the seed document's own output. See the index's `provenance` per sample.

Each sample is put into a realistic evidence document (test__diagnosis.healthy_document, behind by 6
versions) three ways: curl-only (no .NET network probes), .NET-only (no curl) and combined with a sample of
the other witness that has the same cause. When the witnesses disagree the verdict keeps the cause and says so.
"""

from __future__ import annotations

import collections
import copy
import json
import os

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import CATALOG, diagnose
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import parse_curl, parse_evidence
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import (
    FRESH, NOW, SERVER, behind, healthy_document,
)

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
with open(os.path.join(CORPUS, 'index.json'), encoding='utf-8') as _handle:
    INDEX = json.load(_handle)['samples']
CURL = [s for s in INDEX if s['kind'] == 'curl']
NET = [s for s in INDEX if s['kind'] == 'dotnet']
NETWORK_PROBES = ('dns', 'tls', 'http', 'proxy')
# Causes no network probe can prove: the connector's own lasterror is their only witness (issue 11 item 2).
CONNECTOR_ONLY = {'proxy_auth_failed', 'proxy_download_failed'}
# Causes from the host itself (policy, service, posture), not from the network.
HOST_CAUSES = {'tetra_disabled', 'service_stopped', 'connector_disconnected', 'update_server_misconfigured'}
PROXY = ('proxy.corp.example', 8080)


def read(name: str) -> str:
    with open(os.path.join(CORPUS, name), encoding='utf-8', newline='') as handle:
        return handle.read()


def with_curl(document: dict, sample: dict) -> dict:
    document['probes']['curl'].update(exit_code=sample['exit_code'], output=read(sample['file']), duration_ms=2000)
    return document


def with_proxy(document: dict, probe: dict | None = None) -> dict:
    """The connector is configured for a proxy (local.xml), and the proxy probe says `probe`."""
    document['files']['local_xml']['text'] = document['files']['local_xml']['text'].replace(
        '</config>', '<proxy><server>%s</server><port>%d</port></proxy></config>' % PROXY)
    document['probes']['proxy'] = dict({'server': PROXY[0], 'port': PROXY[1], 'source': 'local_xml',
                                        'connect': {'ok': True, 'duration_ms': 12, 'timed_out': False, 'error': None},
                                        'connect_status': 200, 'status_line': 'HTTP/1.1 200 Connection established'}, **(probe or {}))
    return document


def with_net(document: dict, sample: dict) -> dict:
    data = json.loads(read(sample['file']))
    error, probes = data.get('error'), document['probes']
    tls = probes['tls']
    if sample['probe'] == 'dns':
        probes['dns'][0].update(addresses=[], duration_ms=1500, error=error)
        tls['connect'].update(ok=False, address=None, error=error)
        tls.update(handshake=None, chain=[], chain_status=[])
    elif sample['probe'] == 'connect':
        tls['connect'].update(ok=False, address=None, timed_out=error.get('code') == 10060, duration_ms=5001, error=error)
        tls.update(handshake=None, chain=[], chain_status=[])
    elif sample['probe'] == 'handshake':
        tls['handshake'].update(ok=False, protocol=None, error=error)
        tls['chain_status'] = data.get('chain_status', [])
    else:
        connect = {'ok': error is None, 'duration_ms': 5001 if error else 12, 'timed_out': False, 'error': error}
        with_proxy(document, {'connect': connect, 'connect_status': data.get('connect_status'), 'status_line': data.get('status_line')})
    return document


def only(document: dict, keep: str) -> dict:
    """curl-only: no .NET network probe; net-only: no curl."""
    if keep == 'curl':
        for name in NETWORK_PROBES:
            document['probes'].pop(name, None)
    else:
        document['probes'].pop('curl')
    return document


def verdict(document: dict) -> dict:
    return diagnose(parse_evidence(document), FRESH, host='ep', now=NOW)


def causes_of(result: dict) -> set[str]:
    return {result['cause']} | {finding['cause'] for finding in result['secondary']}


def curl_document(sample: dict) -> dict:
    document = with_curl(behind(healthy_document()), sample)
    return document


@pytest.mark.parametrize('sample', CURL, ids=[s['file'] for s in CURL])
def test_curl_only_reaches_the_cause(sample: dict) -> None:
    document = curl_document(sample)
    if sample['cause'] == 'up_to_date':
        document = with_curl(healthy_document(), sample)
    result = verdict(only(document, 'curl'))
    assert result['cause'] == sample['cause'], result
    assert result['cause'] not in CONNECTOR_ONLY and not causes_of(result) & CONNECTOR_ONLY


@pytest.mark.parametrize('sample', NET, ids=[s['file'] for s in NET])
def test_net_only_reaches_the_cause(sample: dict) -> None:
    result = verdict(only(with_net(behind(healthy_document()), sample), 'net'))
    assert result['cause'] == sample['cause'], result
    assert not causes_of(result) & CONNECTOR_ONLY


def _pairs() -> list[tuple[dict, dict]]:
    net_by_cause = collections.defaultdict(list)
    for sample in NET:
        net_by_cause[sample['cause']].append(sample)
    return [(c, n) for c in CURL for n in net_by_cause.get(c['cause'], [])[:2]]


@pytest.mark.parametrize('curl_sample, net_sample', _pairs(), ids=['%s+%s' % (c['file'], n['file']) for c, n in _pairs()])
def test_combined_witnesses_reach_the_cause(curl_sample: dict, net_sample: dict) -> None:
    result = verdict(with_net(curl_document(curl_sample), net_sample))
    assert result['cause'] == curl_sample['cause'], result
    assert not [line for line in result['evidence'] if 'disagrees' in line], result['evidence']


def test_table_every_network_cause_from_curl_only_net_only_and_both() -> None:
    """The table of issue 11: for every cause reachable by network evidence, each witness alone and both reach it."""
    curl_causes = {s['cause'] for s in CURL}
    net_causes = {s['cause'] for s in NET}
    network = {c.name for c in CATALOG if c.blocking} - CONNECTOR_ONLY - HOST_CAUSES - {'root_certificate_missing'}
    assert network <= curl_causes, network - curl_causes
    assert network <= net_causes, network - net_causes
    assert network <= {c['cause'] for c, _n in _pairs()}


@pytest.mark.parametrize('witness', ['curl', 'net'])
def test_root_certificate_missing_from_each_witness_with_the_root_store(witness: str) -> None:
    """The root store probe tells a missing root from interception; with it each witness reaches root_certificate_missing."""
    document = behind(healthy_document())
    document['probes']['roots'][0].update(present=False, subject=None)
    if witness == 'curl':
        document = only(with_curl(document, [s for s in CURL if s['file'] == 'curl-untrusted-root-8x-en.txt'][0]), 'curl')
    else:
        document = only(with_net(document, [s for s in NET if s['file'] == 'net-handshake-untrusted-en.json'][0]), 'net')
    result = verdict(document)
    assert result['cause'] == 'root_certificate_missing', result
    assert 'tls_interception' not in causes_of(result)
    assert len(result['evidence']) >= 2


@pytest.mark.parametrize('cause', sorted(CONNECTOR_ONLY | {'proxy_unreachable'}))
def test_connector_lasterror_alone_reaches_the_proxy_causes(cause: str) -> None:
    code = {'proxy_auth_failed': 4294965196, 'proxy_unreachable': 4294965193, 'proxy_download_failed': 4294965187}[cause]
    document = only(behind(healthy_document(), lasterror=code), 'curl')
    document['probes'].pop('curl')
    assert verdict(document)['cause'] == cause


@pytest.mark.parametrize('curl_file, net_ok, disagreeing', [
    ('curl-revocation-8x-en.txt', 'handshake', '.NET probe disagrees: the TLS handshake'),
    ('curl-resolve-8x.txt', 'dns', '.NET probe disagrees: tetra-defs.amp.cisco.com resolved to'),
    ('curl-refused-8x.txt', 'connect', '.NET probe disagrees: TCP connect to'),
    ('curl-untrusted-root-8x-en.txt', 'handshake', '.NET probe disagrees: the TLS handshake'),
    ('curl-cert-expired-8x-en.txt', 'handshake', '.NET probe disagrees: the TLS handshake'),
])
def test_disagreeing_witnesses_are_both_shown(curl_file: str, net_ok: str, disagreeing: str) -> None:
    sample = [s for s in CURL if s['file'] == curl_file][0]
    result = verdict(curl_document(sample))  # the .NET probes of healthy_document all succeeded
    assert result['cause'] == sample['cause'], result
    assert any(line.startswith(disagreeing) for line in result['evidence']), result['evidence']
    assert any(line.startswith('curl.exe exit') for line in result['evidence'])


def test_net_failure_with_a_curl_that_succeeded_says_curl_disagrees() -> None:
    sample = [s for s in NET if s['file'] == 'net-handshake-revocation-de.json'][0]
    document = with_net(behind(healthy_document()), sample)
    result = verdict(document)
    assert result['cause'] == 'revocation_check_failed'
    assert 'curl.exe disagrees: exit 0, HTTP 200' in result['evidence']


# ---------------------------------------------------------------- proxy authentication is context unless proven

@pytest.mark.parametrize('witness', ['net', 'curl', 'both'])
def test_authenticating_proxy_on_an_updating_host_is_not_a_proxy_cause(witness: str) -> None:
    """Updating fine through an authenticating proxy: unauthenticated CONNECT gets 407, lasterror 0, recent success."""
    document = behind(healthy_document(), version=90604, success_hours_ago=2, check_hours_ago=1, lasterror=0)
    # The direct path is closed, as in every proxy-only network.
    document['probes']['tls']['connect'].update(ok=False, address=None, timed_out=True, duration_ms=5001)
    document['probes']['tls'].update(handshake=None, chain=[], chain_status=[])
    with_proxy(document, {'connect_status': 407, 'status_line': 'HTTP/1.1 407 Proxy Authentication Required'} if witness != 'curl' else None)
    if witness != 'net':
        with_curl(document, [s for s in CURL if s['file'] == 'curl-connect-407-8x.txt'][0])
    result = verdict(document)
    assert result['status'] in ('ok', 'stale') and result['cause'] in ('up_to_date', 'stale_definitions'), result
    assert not {c for c in causes_of(result) if c.startswith('proxy_')}, result
    assert 'update_server_unreachable' not in causes_of(result)
    assert any('requires authentication' in line for line in result['evidence']), result['evidence']


def test_a_behind_host_behind_an_authenticating_proxy_is_stale_and_the_407_is_context() -> None:
    document = with_proxy(behind(healthy_document()), {'connect_status': 407, 'status_line': 'HTTP/1.1 407 Proxy Authentication Required'})
    result = verdict(document)
    assert (result['status'], result['cause']) == ('stale', 'stale_definitions')
    assert any(line.startswith('context: proxy proxy.corp.example:8080 requires authentication') for line in result['evidence'])


def test_proxy_auth_needs_the_connectors_credentials() -> None:
    document = with_proxy(behind(healthy_document()), {'connect_status': 407, 'with_credentials': True})
    assert verdict(document)['cause'] == 'proxy_auth_failed'


def test_connect_refused_with_a_status_is_a_proxy_finding_never_remediable() -> None:
    for name in ('curl-connect-403-8x.txt', 'curl-connect-407-8x.txt'):
        result = verdict(curl_document([s for s in CURL if s['file'] == name][0]))
        assert 'download_interrupted' not in causes_of(result), result
    refused = verdict(curl_document([s for s in CURL if s['file'] == 'curl-connect-403-8x.txt'][0]))
    assert (refused['cause'], refused['remediable']) == ('proxy_refused', False)


def test_dead_proxy_is_told_apart_from_a_dead_update_server() -> None:
    proxy = parse_curl(read('curl-proxy-refused-8x.txt'), 7)
    server = parse_curl(read('curl-refused-8x.txt'), 7)
    assert (proxy['connect_failed_host'], proxy['connect_failed_port']) == ('10.20.0.15', 3128)
    assert (server['connect_failed_host'], server['connect_failed_port']) == (SERVER, 443)
    assert verdict(curl_document([s for s in CURL if s['file'] == 'curl-proxy-refused-8x.txt'][0]))['cause'] == 'proxy_unreachable'


# ---------------------------------------------------------------- codes, never text

@pytest.mark.parametrize('sample', [s for s in CURL if s['language'] in ('fr', 'de', 'es')], ids=lambda s: s['file'])
def test_localized_text_is_never_what_decides(sample: dict) -> None:
    """The localized part of each line replaced by nonsense: same verdict."""
    text = read(sample['file'])
    scrambled = '\n'.join(line.split(' - ')[0] + (' - zzz' if ' - ' in line else '') for line in text.split('\n'))
    before = parse_curl(text, sample['exit_code'])
    after = parse_curl(scrambled, sample['exit_code'])
    assert (before['schannel_error'], before['tls_class']) == (after['schannel_error'], after['tls_class'])


def test_unknown_codes_are_findings() -> None:
    result = verdict(curl_document([s for s in CURL if s['file'] == 'curl-unknown-code-7x-fr.txt'][0]))
    assert result['cause'] == 'tls_handshake_failed'
    unknown = [f for f in result['secondary'] if f['cause'] == 'unrecognized_code'][0]
    assert unknown['evidence'] == ['curl.exe schannel code 0x80090349: not in the table']
    result = verdict(behind(healthy_document(), check_hours_ago=0.5, lasterror=4294965000))
    assert result['cause'] == 'intermittent_connectivity'
    assert result['evidence'][0] == "local.xml lasterror 4294965000 (signed -2296, 0xFFFFF708): not in Cisco's published table"
    assert [f['evidence'] for f in result['secondary'] if f['cause'] == 'unrecognized_code'] == [
        ["local.xml lasterror 4294965000 (signed -2296, 0xFFFFF708): not in Cisco's published table"]]


def test_dotnet_hresult_is_labelled_as_dotnet_not_schannel() -> None:
    sample = [s for s in NET if s['file'] == 'net-handshake-revocation-de.json'][0]
    result = verdict(with_net(behind(healthy_document()), sample))
    text = ' | '.join(result['evidence'])
    assert 'schannel 0x80092013 (schannel/CryptoAPI CRYPT_E_REVOCATION_OFFLINE)' in text
    assert 'schannel 0x80131501' not in text
    facts = parse_evidence(with_net(behind(healthy_document()), sample))
    assert 'HResult 0x80131501 (.NET COR_E_SYSTEM)' in facts['probes']['tls']['handshake_error']
    assert facts['probes']['tls']['handshake_hresult'] == '0x80131501' and facts['probes']['tls']['handshake_error_hex'] == '0x80092013'


@pytest.mark.parametrize('sample', [s for s in NET if s['probe'] == 'dns'], ids=lambda s: s['file'])
def test_dns_codes_from_any_field_are_named(sample: dict) -> None:
    facts = parse_evidence(with_net(behind(healthy_document()), sample))
    entry = facts['probes']['dns'][0]
    assert entry['error_code'] in (11001, 9003, 1460, 9002) and entry['error_name'], entry
    result = verdict(with_net(behind(healthy_document()), sample))
    assert 'error None' not in ' '.join(result['evidence'])


def test_policy_unreadable_on_813_and_later_is_context_not_also_found() -> None:
    result = verdict(behind(healthy_document()))
    assert 'policy_unreadable' not in causes_of(result)
    assert 'context: policy.xml not readable locally, as expected on connector 8.1.3 and later' in result['evidence']
    older = behind(healthy_document())
    older['install'].update(display_version='8.1.2.21150', version_dirs=['8.1.2.21150'])
    assert 'policy_unreadable' in causes_of(verdict(older))


def test_corpus_index_is_honest_about_provenance() -> None:
    languages = collections.Counter(s['language'] for s in INDEX)
    assert {'en', 'fr', 'de', 'es'} <= set(languages)
    assert all(s['provenance'] == 'reconstructed' or s['provenance'].startswith('captured') for s in INDEX)
    assert {s['curl_version'][0] for s in CURL} == {'7', '8'}
    for sample in INDEX:
        assert os.path.exists(os.path.join(CORPUS, sample['file'])), sample['file']
    assert copy.deepcopy(INDEX) == INDEX
