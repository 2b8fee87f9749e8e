# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tests for plugin_utils/_evidence.py. Samples: see samples/README.md (seed = verbatim, synthetic = marked)."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import typing as t

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import (
    LASTERROR_CODES,
    WINDOWS_ERRORS,
    EvidenceError,
    check_evidence_document,
    decode_lasterror,
    decode_text,
    error_name,
    hresult_hex,
    parse_curl,
    parse_evidence,
    parse_local_xml,
    parse_policy_xml,
    parse_posture,
)
from tests.paths import SAMPLES_DIR as SAMPLES

PROXY_PASSWORD = 'S3cr3t-Pr0xy!pw'
SEED_UUID = '5c6e64fa-7738-4b39-b201-15451e33bfe6'

POSTURE_KEYS = {'available', 'agent_uuid', 'connected', 'connector_version', 'engines', 'tetra_version', 'problem', 'raw'}
LOCAL_KEYS = {'available', 'tetra_version', 'version_source', 'last_update', 'last_success', 'last_check', 'lasterror', 'proxy',
              'agent_uuid', 'policy_uuid', 'problem'}
POLICY_KEYS = {'readable', 'tetra_enabled', 'updater_enabled', 'update_server', 'interval', 'proxy', 'crl_check', 'policy_uuid',
               'policy_name', 'log_level', 'debug_logging', 'problem'}
CURL_KEYS = {'ran', 'exit_code', 'http_status', 'connected', 'connected_ip', 'schannel_error', 'error_name', 'revocation_offline', 'summary'}
LASTERROR_KEYS = {'unsigned', 'signed', 'hex', 'known', 'problem', 'action'}
FACT_KEYS = {'format', 'action', 'context', 'host', 'installed', 'install', 'posture', 'local', 'policy', 'tetra_version',
             'tetra_version_source', 'probes', 'problems'}


def sample(name: str) -> str:
    with open(os.path.join(SAMPLES, name), encoding='utf-8', newline='') as handle:
        return handle.read()


def document() -> dict[str, t.Any]:
    return json.loads(sample('synthetic-evidence-failing.json'))


def strings_in(value: t.Any) -> t.Iterator[str]:
    """Every key and scalar of a nested structure, as text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)
    else:
        yield str(value)


def assert_no_password(value: t.Any) -> None:
    leaks = [text for text in strings_in(value) if PROXY_PASSWORD in text]
    assert not leaks, leaks


# ---------------------------------------------------------------- decode_text

@pytest.mark.parametrize('data, expected', [
    (b'<config/>', '<config/>'),
    (b'\xef\xbb\xbf<config/>', '<config/>'),
    ('\ufeff<config/>', '<config/>'),
    ('<config>\u00e9</config>'.encode('utf-16-le'), '<config>\u00e9</config>'),
    (b'\xff\xfe' + '<config>\u00e9</config>'.encode('utf-16-le'), '<config>\u00e9</config>'),
    (b'\xfe\xff' + '<config>\u00e9</config>'.encode('utf-16-be'), '<config>\u00e9</config>'),
    ('{"a": 1}'.encode('utf-16-be'), '{"a": 1}'),
    ('<config><site>Z\u00fcrich \u2013 8.1.7 \u20ac</site></config>'.encode('utf-16-le'), '<config><site>Z\u00fcrich \u2013 8.1.7 \u20ac</site></config>'),
    ('<config><site>\u0141\u00f3d\u017a \u2013 \u20ac</site></config>'.encode('utf-16-be'), '<config><site>\u0141\u00f3d\u017a \u2013 \u20ac</site></config>'),
    ('acc\u00e8s refus\u00e9'.encode('cp1252'), 'acc\u00e8s refus\u00e9'),
    ('acc\u00e8s'.encode('utf-8'), 'acc\u00e8s'),
    (b'', ''),
    (None, ''),
    (b'\xff\xfe\x41', ''),
])
def test_decode_text(data: t.Any, expected: str) -> None:
    assert decode_text(data).rstrip('\ufffd') == expected


def test_decode_text_str_with_interleaved_nuls() -> None:
    assert decode_text('<\x00c\x00o\x00n\x00f\x00i\x00g\x00/\x00>\x00') == '<config/>'


@pytest.mark.parametrize('data', [bytes(range(256)), b'\x81\x8d\x8f\x90\x9d', b'\x00' * 7, 12345, object()])
def test_decode_text_never_raises(data: t.Any) -> None:
    assert isinstance(decode_text(data), str)


# ---------------------------------------------------------------- codes

@pytest.mark.parametrize('value, expected', [
    (-2146885613, '0x80092013'),
    (2148081683, '0x80092013'),
    ('-2146885613', '0x80092013'),
    ('0x80092013', '0x80092013'),
    (-2147024891, '0x80070005'),
    (0, '0x00000000'),
    (5, '0x00000005'),
    (2 ** 32, ''),
    (-(2 ** 31) - 1, ''),
    ('garbage', ''),
    (None, ''),
    (True, ''),
])
def test_hresult_hex(value: t.Any, expected: str) -> None:
    assert hresult_hex(value) == expected


@pytest.mark.parametrize('value, name', [
    (-2146885613, 'CRYPT_E_REVOCATION_OFFLINE'),
    (0x80092012, 'CRYPT_E_NO_REVOCATION_CHECK'),
    (0x800B0109, 'CERT_E_UNTRUSTEDROOT'),
    (0x800B010F, 'CERT_E_CN_NO_MATCH'),
    (0x80090325, 'SEC_E_UNTRUSTED_ROOT'),
    (0x80090322, 'SEC_E_WRONG_PRINCIPAL'),
    (0x12345678, None),
])
def test_error_name(value: int, name: str | None) -> None:
    assert error_name(value) == name


def test_windows_error_table_is_consistent() -> None:
    assert all(0x80000000 <= code <= 0xFFFFFFFF and name.isupper() for code, name in WINDOWS_ERRORS.items())


# ---------------------------------------------------------------- lasterror

@pytest.mark.parametrize('value', [4294965193, -2103, '4294965193', '-2103', ' 4294965193\n'])
def test_lasterror_proxy_connect(value: t.Any) -> None:
    result = decode_lasterror(value)
    assert set(result) == LASTERROR_KEYS
    assert result == {'unsigned': 4294965193, 'signed': -2103, 'hex': '0xFFFFF7C9', 'known': True,
                      'problem': 'cannot connect to the proxy', 'action': 'check network connectivity to the proxy'}


@pytest.mark.parametrize('unsigned, signed, problem, action', [
    (4294965193, -2103, 'cannot connect to the proxy', 'check network connectivity to the proxy'),
    (4294965196, -2100, 'cannot authenticate with the proxy', 'check the proxy credentials'),
    (4294965187, -2109, 'proxy connection and download failure', 'check download problems in the proxy logs'),
])
@pytest.mark.parametrize('signed_input', [False, True])
def test_lasterror_seed_table(unsigned: int, signed: int, problem: str, action: str, signed_input: bool) -> None:
    result = decode_lasterror(signed if signed_input else unsigned)
    assert (result['unsigned'], result['signed'], result['known'], result['problem'], result['action']) == (unsigned, signed, True, problem, action)


@pytest.mark.parametrize('value', [0, '0'])
def test_lasterror_zero(value: t.Any) -> None:
    result = decode_lasterror(value)
    assert (result['unsigned'], result['signed'], result['known'], result['problem']) == (0, 0, True, 'no error')


@pytest.mark.parametrize('value', [4294965000, -2296])
def test_lasterror_unknown(value: int) -> None:
    result = decode_lasterror(value)
    assert result['known'] is False
    assert (result['unsigned'], result['signed']) == (4294965000, -2296)
    assert 'unknown code' in result['problem'] and '4294965000' in result['problem'] and '-2296' in result['problem']


@pytest.mark.parametrize('value', [None, '', 'abc', 2 ** 40, [1], True])
def test_lasterror_unparseable(value: t.Any) -> None:
    result = decode_lasterror(value)
    assert set(result) == LASTERROR_KEYS and result['known'] is False and result['unsigned'] is None


def test_lasterror_table_is_data() -> None:
    assert {4294965193, 4294965196, 4294965187, 0} <= set(LASTERROR_CODES)


# ---------------------------------------------------------------- posture

@pytest.mark.parametrize('name', ['seed-ampcli-posture-prefix.txt'])
def test_posture_seed_prefix_with_prompt(name: str) -> None:
    result = parse_posture(sample(name))
    assert set(result) == POSTURE_KEYS
    assert result['available'] is False
    assert (result['agent_uuid'], result['connected'], result['connector_version']) == (SEED_UUID, True, '8.1.7')
    assert result['tetra_version'] is None
    assert 'truncated' in result['problem'] and '"engi' in result['problem'].replace('\\"', '"')
    assert result['raw'] == sample(name)


def test_posture_seed_prefix_json_line_only() -> None:
    line = sample('seed-ampcli-posture-prefix.txt').splitlines()[1]
    result = parse_posture(line)
    assert (result['available'], result['agent_uuid'], result['connected'], result['connector_version']) == (False, SEED_UUID, True, '8.1.7')
    assert 'truncated' in result['problem']


def test_posture_full_synthetic() -> None:
    result = parse_posture(sample('synthetic-posture-full.json'))
    assert result['available'] is True and result['problem'] is None
    assert result['tetra_version'] == 90604
    assert result['engines']['tetra'] == {'version': 90604, 'raw': '90604'}
    assert result['engines']['exprev'] == {'version': 2189, 'raw': '1:2189'}
    assert result['engines']['cloud']['version'] is None


BASE = {'agent_uuid': SEED_UUID, 'connected': True, 'connector_version': '8.1.7'}


@pytest.mark.parametrize('engines, expected', [
    ([{'name': 'TETRA', 'version': '90604'}], 90604),
    ([{'name': 'TETRA', 'definition_version': 'x:90604'}], 90604),
    ([{'name': 'Tetra', 'definitionVersion': 90604}], 90604),
    ([{'engine': 'TETRA 64 bit', 'defVersion': '1:90604'}], 90604),
    ({'TETRA': '90604', 'ExPrev': '1:2189'}, 90604),
    ({'tetra': {'version': 90604, 'enabled': True}}, 90604),
    ({'tetra': 90604}, 90604),
    ([{'name': 'ClamAV', 'version': '27000'}, {'name': 'TETRA', 'version': '90606'}], 90606),
])
def test_posture_engine_shapes(engines: t.Any, expected: int) -> None:
    result = parse_posture(json.dumps(dict(BASE, engines=engines)))
    assert result['available'] is True and result['tetra_version'] == expected and result['problem'] is None


@pytest.mark.parametrize('extra, problem', [
    ({}, 'no engine list'),
    ({'engines': [{'name': 'ClamAV', 'version': '1'}]}, 'no TETRA engine'),
    ({'engines': [{'name': 'TETRA', 'version': '9.0.6'}]}, 'not a number'),
    ({'engines': 'TETRA 90604'}, 'no engine list'),
])
def test_posture_without_tetra(extra: dict[str, t.Any], problem: str) -> None:
    result = parse_posture(json.dumps(dict(BASE, **extra)))
    assert result['available'] is True and result['tetra_version'] is None and problem in result['problem']


def test_posture_nested_engine_container() -> None:
    result = parse_posture(json.dumps(dict(BASE, status={'engines': [{'name': 'TETRA', 'version': 'x:90600'}]})))
    assert result['tetra_version'] == 90600


@pytest.mark.parametrize('stdout, words', [
    (None, 'no posture output'),
    ('', 'empty'),
    ('   \r\n', 'empty'),
    ('AmpCLI: unknown command', 'not valid JSON'),
    ('[1, 2]', 'not a JSON object'),
    ('\x00\x01garbage{{{', 'not valid JSON'),
    ('{"agent_uuid": "abc", "connected": tru', 'truncated'),
])
def test_posture_bad_input(stdout: str | None, words: str) -> None:
    result = parse_posture(stdout)
    assert set(result) == POSTURE_KEYS and result['available'] is False and words in result['problem']


def test_posture_problem_quotes_at_most_200_chars() -> None:
    problem = parse_posture('x' * 500)['problem']
    assert 'x' * 200 in problem and 'x' * 201 not in problem


@pytest.mark.parametrize('encode', [
    lambda text: text.encode('utf-16-le'),
    lambda text: b'\xff\xfe' + text.encode('utf-16-le'),
    lambda text: b'\xef\xbb\xbf' + text.encode('utf-8'),
    lambda text: '\ufeff' + text,
])
def test_posture_encodings(encode: t.Callable[[str], t.Any]) -> None:
    assert parse_posture(encode(sample('synthetic-posture-full.json')))['tetra_version'] == 90604


# ---------------------------------------------------------------- local.xml

def test_local_xml_old_layout() -> None:
    result = parse_local_xml(sample('synthetic-local-old.xml'))
    assert set(result) == LOCAL_KEYS
    assert result['available'] is True and result['problem'] is None
    assert (result['tetra_version'], result['version_source']) == (90600, 'defversions')
    assert result['last_update'] == '2023-05-17T19:16:49Z'
    assert result['last_success'] == '2023-05-17T19:16:49Z'
    assert result['last_check'] == '2023-05-18T19:16:49Z'
    assert result['lasterror']['signed'] == -2103 and result['lasterror']['known'] is True
    assert result['agent_uuid'] == SEED_UUID
    assert result['policy_uuid'] == '0b6e1f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b'
    assert result['proxy'] == {'server': 'proxy.corp.example', 'port': 8080, 'type': '1', 'auth_type': '2',
                               'username': 'CORP\\svc-amp', 'pac_url': None}
    assert_no_password(result)


def test_local_xml_new_layout() -> None:
    result = parse_local_xml(sample('synthetic-local-new.xml'))
    assert (result['tetra_version'], result['version_source']) == (90604, 'stats_definitions')
    assert result['lasterror']['problem'] == 'no error'
    assert result['last_check'] == '2023-05-17T20:16:49Z'
    assert result['proxy'] is None and result['problem'] is None


@pytest.mark.parametrize('definitions, expected', [
    ('{"engineDefinitions":[{"defVersion":"x:90601"}]}', 90601),
    ('{"engineDefinitions":[{"engine":"ExPrev","defVersion":"1:2189"},{"name":"TETRA","defVersion":"x:90602"}]}', 90602),
    ('{"engineDefinitions":[{"engine":"ClamAV","defVersion":"x:27001"},{"engine":"Other","defVersion":"x:5"}]}', 27001),
])
def test_local_xml_stats_definitions_pick(definitions: str, expected: int) -> None:
    text = '<config><agent><engine><stats><definitions>%s</definitions></stats></engine></agent></config>' % definitions.replace('&', '&amp;')
    assert parse_local_xml(text)['tetra_version'] == expected


@pytest.mark.parametrize('body, problem', [
    ('<stats><definitions>not json</definitions></stats>', 'not JSON'),
    ('<stats><definitions>{"engineDefinitions":[]}</definitions></stats>', 'no defVersion'),
    ('<tetra><defversions>garbage</defversions></tetra>', 'not x:NNNNN'),
    ('', 'no TETRA definition version'),
])
def test_local_xml_version_problems(body: str, problem: str) -> None:
    result = parse_local_xml('<config><agent><engine>%s</engine></agent></config>' % body)
    assert result['available'] is True and result['tetra_version'] is None and problem in result['problem']


def test_local_xml_lasterror_elsewhere_in_tree() -> None:
    text = ('<config><agent><engine><tetra><defversions>x:1</defversions></tetra></engine></agent>'
            '<update><tetra><lasterror>-2100</lasterror></tetra></update></config>')
    result = parse_local_xml(text)
    assert result['lasterror']['unsigned'] == 4294965196 and result['lasterror']['problem'] == 'cannot authenticate with the proxy'


def test_local_xml_no_lasterror() -> None:
    assert parse_local_xml('<config><agent><uuid>x</uuid></agent></config>')['lasterror'] is None


@pytest.mark.parametrize('encode', [
    lambda text: '\ufeff' + text,
    lambda text: b'\xef\xbb\xbf' + text.encode('utf-8'),
    lambda text: b'\xff\xfe' + text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode('utf-16-le'),
    lambda text: text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode('utf-16-le'),
    lambda text: b'\xfe\xff' + text.encode('utf-16-be'),
])
def test_local_xml_encodings(encode: t.Callable[[str], t.Any]) -> None:
    result = parse_local_xml(encode(sample('synthetic-local-old.xml')))
    assert result['available'] is True and result['tetra_version'] == 90600


@pytest.mark.parametrize('text, words', [
    (None, 'missing'),
    ('', 'empty'),
    ('garbage \x00\x01', 'not well-formed'),
    ('<root><a>1</a></root>', 'no <config> root'),
    ('<config><agent><engine><tetra><defversions>x:906', 'not well-formed'),
])
def test_local_xml_bad_input(text: str | None, words: str) -> None:
    result = parse_local_xml(text)
    assert set(result) == LOCAL_KEYS and result['available'] is False and words in result['problem']


def test_local_xml_truncated_does_not_leak_password() -> None:
    text = sample('synthetic-local-old.xml')
    cut = text[:text.index(PROXY_PASSWORD) + 6]
    result = parse_local_xml(cut)
    assert result['available'] is False
    assert_no_password(result)
    assert PROXY_PASSWORD[:6] not in result['problem']


@pytest.mark.parametrize('value, expected', [('0', None), ('', None), ('abc', None), ('1684351009000', '2023-05-17T19:16:49Z')])
def test_local_xml_times(value: str, expected: str | None) -> None:
    result = parse_local_xml('<config><agent><engine><tetra><lastupdate>%s</lastupdate></tetra></engine></agent></config>' % value)
    assert result['last_update'] == expected


# ---------------------------------------------------------------- policy.xml

def test_policy_xml_namespaced() -> None:
    result = parse_policy_xml(sample('synthetic-policy.xml'))
    assert set(result) == POLICY_KEYS
    assert result == {
        'readable': True, 'tetra_enabled': True, 'updater_enabled': True, 'update_server': 'tetra-defs.amp.cisco.com',
        'interval': 3600, 'crl_check': True, 'policy_uuid': '0b6e1f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b', 'policy_name': 'Protect',
        'log_level': 549755813887, 'debug_logging': True, 'problem': None,
        'proxy': {'server': 'proxy.corp.example', 'port': 8080, 'type': '1', 'auth_type': '2', 'username': 'CORP\\svc-amp', 'pac_url': None},
    }
    assert_no_password(result)


def test_policy_xml_prefixed_namespace_and_no_proxy() -> None:
    text = ('<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:Object><ds:config><ds:agent><ds:log><ds:level>1</ds:level></ds:log>'
            '<ds:scansettings><ds:tetra><ds:enable>0</ds:enable></ds:tetra></ds:scansettings></ds:agent>'
            '<ds:proxy><ds:server></ds:server><ds:password>%s</ds:password></ds:proxy></ds:config></ds:Object></ds:Signature>' % PROXY_PASSWORD)
    result = parse_policy_xml(text)
    assert (result['readable'], result['tetra_enabled'], result['proxy'], result['debug_logging']) == (True, False, None, False)
    assert_no_password(result)


def test_policy_xml_bare_config_and_pac() -> None:
    text = '<config><proxy><pacloc>http://wpad.corp.example/proxy.pac</pacloc></proxy><agent><scansettings><tetra/></scansettings></agent></config>'
    result = parse_policy_xml(text)
    assert result['proxy']['pac_url'] == 'http://wpad.corp.example/proxy.pac' and result['proxy']['server'] is None


@pytest.mark.parametrize('text, words', [
    (None, 'missing'),
    ('not xml', 'not well-formed'),
    ('<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>', 'no Signature/Object/config'),
    ('<config><agent/></config>', 'no agent/scansettings/tetra'),
])
def test_policy_xml_bad_input(text: str | None, words: str) -> None:
    result = parse_policy_xml(text)
    assert set(result) == POLICY_KEYS and words in result['problem']


@pytest.mark.parametrize('offset', [-3, 0, 5, len(PROXY_PASSWORD) + 4, len(PROXY_PASSWORD) + 40])
def test_policy_xml_truncated_never_leaks_password(offset: int) -> None:
    text = sample('synthetic-policy.xml')
    result = parse_policy_xml(text[:text.index(PROXY_PASSWORD) + offset])
    assert result['readable'] is False
    assert_no_password(result)


def test_policy_xml_utf16_with_bom() -> None:
    data = b'\xff\xfe' + sample('synthetic-policy.xml').replace('encoding="UTF-8"', 'encoding="UTF-16"').encode('utf-16-le')
    assert parse_policy_xml(data)['update_server'] == 'tetra-defs.amp.cisco.com'


# ---------------------------------------------------------------- curl

@pytest.mark.parametrize('name, exit_code, expected', [
    ('seed-curl-tetra-defs-ok.txt', 0,
     {'exit_code': 0, 'http_status': 200, 'connected': True, 'connected_ip': '192.XXX.X.X', 'schannel_error': None,
      'revocation_offline': False, 'summary': None}),
    ('seed-curl-tetra-defs-revocation-offline.txt', 35,
     {'exit_code': 35, 'http_status': None, 'connected': True, 'connected_ip': '192.XXX.X.XX', 'schannel_error': '0x80092013',
      'error_name': 'CRYPT_E_REVOCATION_OFFLINE', 'revocation_offline': True,
      'summary': 'curl: (35) schannel: next InitializeSecurityContext failed: Unknown error (0x80092013) - The revocation function'}),
    ('seed-curl-tetra-defs-revocation-offline.txt', None, {'exit_code': 35, 'revocation_offline': True}),
    ('synthetic-curl-revocation-named.txt', 35, {'schannel_error': '0x80092013', 'error_name': 'CRYPT_E_REVOCATION_OFFLINE', 'revocation_offline': True}),
    ('synthetic-curl-revocation-fr.txt', 35, {'schannel_error': '0x80092013', 'error_name': 'CRYPT_E_REVOCATION_OFFLINE', 'revocation_offline': True}),
    ('synthetic-curl-untrusted-root-fr.txt', 60,
     {'schannel_error': '0x80090325', 'error_name': 'SEC_E_UNTRUSTED_ROOT', 'revocation_offline': False, 'connected': True}),
    ('synthetic-curl-resolve.txt', 6, {'connected': False, 'http_status': None, 'schannel_error': None,
                                       'summary': 'curl: (6) Could not resolve host: tetra-defs.amp.cisco.com'}),
    ('synthetic-curl-connect.txt', 7, {'connected': False, 'connected_ip': None, 'schannel_error': None}),
    ('synthetic-curl-timeout.txt', 28, {'connected': False, 'summary': 'curl: (28) Connection timed out after 12004 milliseconds'}),
    ('synthetic-curl-recv.txt', 56, {'connected': True, 'connected_ip': '52.1.2.3', 'http_status': None, 'schannel_error': None}),
    ('synthetic-curl-proxy-ok.txt', 0, {'http_status': 204, 'connected_ip': '10.0.0.8', 'summary': None}),
])
@pytest.mark.parametrize('newline', ['\n', '\r\n'])
def test_curl(name: str, exit_code: int | None, expected: dict[str, t.Any], newline: str) -> None:
    result = parse_curl(sample(name).replace('\n', newline), exit_code)
    assert CURL_KEYS <= set(result) and result['ran'] is True
    assert {key: result[key] for key in expected} == expected


def test_curl_decides_from_numbers_not_text() -> None:
    text = 'curl: (35) schannel: quelque chose (0x80092012) - La fonction de r\u00e9vocation'
    result = parse_curl(text, 35)
    assert (result['schannel_error'], result['error_name'], result['revocation_offline']) == ('0x80092012', 'CRYPT_E_NO_REVOCATION_CHECK', False)


def test_curl_windows_typographic_apostrophe() -> None:
    text = sample('synthetic-curl-revocation-fr.txt').replace("n'a", 'n\u2019a').replace('\n', '\r\n')
    assert '\u2019' in text
    result = parse_curl(text.encode('utf-8'), 35)
    assert (result['schannel_error'], result['revocation_offline']) == ('0x80092013', True)
    assert '\u2019' in result['summary']


def test_curl_unknown_code_keeps_printed_name() -> None:
    result = parse_curl('curl: (35) schannel: SEC_E_SOMETHING_NEW (0x8009FFFF) - x', 35)
    assert (result['schannel_error'], result['error_name']) == ('0x8009FFFF', 'SEC_E_SOMETHING_NEW')


def test_curl_proxy_407() -> None:
    text = ('* Connected to proxy.corp.example (10.0.0.8) port 8080\r\n< HTTP/1.1 407 Proxy Authentication Required\r\n'
            'curl: (56) CONNECT tunnel failed, response 407\r\n')
    result = parse_curl(text, 56)
    assert (result['http_status'], result['exit_code']) == (407, 56)


@pytest.mark.parametrize('output, exit_code, ran', [(None, None, False), ('', None, True), (None, 6, True), (b'\xff\xfe\x00', 'x', True)])
def test_curl_empty(output: t.Any, exit_code: t.Any, ran: bool) -> None:
    result = parse_curl(output, exit_code)
    assert result['ran'] is ran and result['connected'] is False and result['http_status'] is None


def test_curl_utf16_output() -> None:
    assert parse_curl(sample('seed-curl-tetra-defs-ok.txt').encode('utf-16-le'), 0)['http_status'] == 200


# ---------------------------------------------------------------- check_evidence_document

@pytest.mark.parametrize('obj, words', [
    (None, 'NoneType'),
    ([{'format': 1}], 'list'),
    ('{"format": 1}', 'str'),
    ({}, 'format is None'),
    ({'format': 2}, 'format is 2'),
    ({'format': '1'}, "format is '1'"),
    ({'format': True}, 'format is True'),
])
def test_check_evidence_document_rejects(obj: t.Any, words: str) -> None:
    with pytest.raises(EvidenceError, match='.') as info:
        check_evidence_document(obj)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_evidence_rejects_non_evidence() -> None:
    with pytest.raises(EvidenceError):
        parse_evidence({'format': 0})


def test_check_evidence_document_accepts() -> None:
    doc = {'format': 1}
    assert check_evidence_document(doc) is doc


# ---------------------------------------------------------------- parse_evidence

def test_evidence_full_document() -> None:
    facts = parse_evidence(document())
    assert FACT_KEYS <= set(facts)
    assert (facts['format'], facts['action'], facts['context']) == (1, 'collect', 'system')
    assert facts['host']['computer_name'] == 'DESKTOP-QFC3PVT'
    assert facts['installed'] is True
    install = facts['install']
    assert (install['active_version'], install['connector_version'], install['service_running'], install['sfc_is_cisco']) == (
        '8.1.7.21417', '8.1.7.21417', True, True)
    assert install['service'] == {'name': 'CiscoAMP', 'state': 'Running', 'start_type': 'Auto',
                                  'image_path': '"C:\\Program Files\\Cisco\\AMP\\8.1.7.21417\\sfc.exe"'}
    assert (facts['posture']['found'], facts['posture']['exit_code'], facts['posture']['tetra_version']) == (True, 0, 90604)
    assert (facts['tetra_version'], facts['tetra_version_source']) == (90604, 'posture')
    assert facts['local']['tetra_version'] == 90600 and facts['local']['lasterror']['signed'] == -2103
    policy = facts['policy']
    assert policy['readable'] is False and policy['error']['hresult'] == -2147024891 and policy['error']['hex'] == '0x80070005'
    assert 'System.UnauthorizedAccessException' in policy['problem']
    assert any('policy' in problem for problem in facts['problems'])
    assert facts['errors'][0]['section'] == 'policy_xml'


def test_evidence_probes() -> None:
    probes = parse_evidence(document())['probes']
    assert [entry['ok'] for entry in probes['dns']] == [True, True, False]
    assert probes['dns'][2]['error_code'] == 11001
    tls = probes['tls']
    assert (tls['connect_ok'], tls['handshake_ok'], tls['handshake_error_hex'], tls['handshake_error_name'], tls['revocation_offline']) == (
        True, False, '0x80092013', 'CRYPT_E_REVOCATION_OFFLINE', True)
    assert tls['leaf_issuer'].startswith('CN=HydrantID Server CA O1') and len(tls['issuers']) == 3 and len(tls['chain']) == 3
    assert tls['ocsp_urls'] == ['http://commercial.ocsp.identrust.com']
    assert 'http://validation.identrust.com/crl/hydrantidcao1.crl' in tls['crl_urls']
    assert (probes['curl']['found'], probes['curl']['exit_code'], probes['curl']['revocation_offline']) == (True, 35, True)
    assert [(h['host'], h['ok'], h['status'], h['timed_out']) for h in probes['http']] == [
        ('commercial.ocsp.identrust.com', True, 200, False), ('validation.identrust.com', False, None, True)]
    assert 'Timeout' in probes['http'][1]['error']
    assert probes['roots'] == [{'thumbprint': 'DF717EAA4AD94EC9558499602D48DE5FBCF03A25', 'present': True,
                                'subject': 'CN=IdenTrust Commercial Root CA 1, O=IdenTrust, C=US'}]
    assert (probes['proxy']['connect_ok'], probes['proxy']['connect_timed_out'], probes['proxy']['auth_required']) == (False, True, False)


def test_evidence_never_leaks_password() -> None:
    doc = document()
    doc['files']['policy_xml'] = {'path': 'p', 'readable': True, 'text': sample('synthetic-policy.xml'), 'error': None}
    facts = parse_evidence(doc)
    assert facts['policy']['proxy']['username'] == 'CORP\\svc-amp'
    assert_no_password(facts)


def test_evidence_tls_revocation_from_chain_status_only() -> None:
    doc = document()
    doc['probes']['tls']['handshake'] = {'ok': False, 'error': {'type': 'System.IO.IOException', 'hresult': -2146232800}}
    tls = parse_evidence(doc)['probes']['tls']
    # 0x80131620 is the .NET IOException's own HResult, not a schannel code: it is never the handshake code.
    assert tls['revocation_offline'] is True and tls['handshake_error_hex'] is None and tls['handshake_hresult'] == '0x80131620'
    doc['probes']['tls']['chain_status'] = []
    assert parse_evidence(doc)['probes']['tls']['revocation_offline'] is False


def test_evidence_proxy_auth_required() -> None:
    doc = document()
    doc['probes']['proxy'] = {'server': 'proxy.corp.example', 'port': 8080, 'source': 'policy_xml',
                              'connect': {'ok': True, 'timed_out': False, 'error': None}, 'connect_status': 407,
                              'status_line': 'HTTP/1.1 407 Proxy Authentication Required'}
    assert parse_evidence(doc)['probes']['proxy']['auth_required'] is True


def test_evidence_not_installed() -> None:
    doc = {'format': 1, 'action': 'collect', 'context': 'user', 'host': {'computer_name': 'PC'},
           'install': {'install_dir': None, 'version_dirs': [], 'service': None, 'display_version': None, 'sfc': None,
                       'reboot_pending': False, 'isolated': False},
           'posture': {'path': 'AmpCLI.exe', 'found': False, 'exit_code': None, 'stdout': None, 'stderr': None, 'timed_out': False,
                       'duration_ms': 0, 'error': None},
           'files': {'local_xml': {'path': None, 'readable': False, 'text': None, 'error': None},
                     'policy_xml': {'path': None, 'readable': False, 'text': None, 'error': None}},
           'errors': []}
    facts = parse_evidence(doc)
    assert facts['installed'] is False
    assert facts['install']['active_version'] is None and facts['install']['service_running'] is None
    assert facts['posture']['available'] is False and 'not found' in facts['posture']['problem']
    assert facts['tetra_version'] is None and facts['probes'] is None
    assert any('no connector installed' in problem for problem in facts['problems'])


def test_evidence_no_ampcli_falls_back_to_local_xml() -> None:
    doc = document()
    doc['posture'] = {'path': 'C:\\x\\AmpCLI.exe', 'found': False, 'stdout': None}
    facts = parse_evidence(doc)
    assert (facts['tetra_version'], facts['tetra_version_source']) == (90600, 'local_xml')
    assert 'AmpCLI.exe not found' in facts['posture']['problem']


def test_evidence_active_version_without_service() -> None:
    doc = document()
    doc['install']['service'] = None
    doc['install']['display_version'] = None
    doc['install']['version_dirs'] = ['8.1.10.1', '8.1.7.21417', 'junk']
    install = parse_evidence(doc)['install']
    assert install['active_version'] == '8.1.10.1' and install['connector_version'] == '8.1.10.1'


def test_evidence_connector_version_from_posture() -> None:
    doc = document()
    doc['install'] = {'install_dir': 'C:\\AMP', 'version_dirs': [], 'service': None}
    assert parse_evidence(doc)['install']['connector_version'] == '8.1.7'


def test_evidence_sfc_not_cisco() -> None:
    doc = document()
    doc['install']['sfc']['company'] = 'Microsoft Corporation'
    assert parse_evidence(doc)['install']['sfc_is_cisco'] is False


def test_evidence_sections_absent() -> None:
    facts = parse_evidence({'format': 1, 'action': 'collect', 'files': {'local_xml': {'readable': True, 'text': sample('synthetic-local-new.xml')}}})
    assert facts['install'] is None and facts['installed'] is None and facts['posture'] is None and facts['probes'] is None
    assert facts['policy']['readable'] is False
    assert (facts['tetra_version'], facts['tetra_version_source']) == (90604, 'local_xml')


def test_evidence_powershell_unwrapped_arrays() -> None:
    doc = document()
    doc['probes']['dns'] = doc['probes']['dns'][0]
    doc['install']['version_dirs'] = '8.1.7.21417'
    doc['probes']['tls']['chain_status'] = 'OfflineRevocation'
    facts = parse_evidence(doc)
    assert facts['probes']['dns'][0]['ok'] is True and facts['install']['version_dirs'] == ['8.1.7.21417']
    assert facts['probes']['tls']['chain_status'] == ['OfflineRevocation']


def test_evidence_timed_out_probe_placeholders() -> None:
    doc = document()
    doc['probes']['tls'] = {'timed_out': True, 'error': None}
    doc['probes']['dns'] = [{'timed_out': True, 'error': None}]
    probes = parse_evidence(doc)['probes']
    assert probes['tls']['connect_timed_out'] is True and probes['tls']['connect_ok'] is None
    assert probes['dns'][0]['ok'] is False and probes['dns'][0]['timed_out'] is True


# ---------------------------------------------------------------- robustness

JUNK: list[t.Any] = [None, 0, -1, 2 ** 70, 1.5, True, '', 'x' * 300, '<config>', '{"engi', [], [None], {}, {'a': None}, [[{}]],
                     b'\xff\xfe', {'format': 1}]


def _paths(value: t.Any, prefix: tuple[t.Any, ...] = ()) -> t.Iterator[tuple[t.Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _replace(doc: dict[str, t.Any], path: tuple[t.Any, ...], value: t.Any) -> dict[str, t.Any]:
    mutated = copy.deepcopy(doc)
    node = mutated
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return mutated


def test_parse_evidence_every_field_replaced_by_junk() -> None:
    """Each value of the realistic document, one at a time, replaced by every kind of junk: facts, the wrong ones named."""
    doc = document()
    paths = [path for path in _paths(doc) if path and path != ('format',)]
    assert len(paths) > 100
    invalid = 0
    for path in paths:
        for junk in JUNK:
            facts = parse_evidence(_replace(doc, path, junk))
            assert FACT_KEYS <= set(facts), path
            json.dumps(facts)
            if facts['invalid']:
                invalid += 1
                assert ': expected ' in facts['invalid'] and facts['invalid'] in facts['problems']
    assert invalid > 100


def test_parse_evidence_random_structures() -> None:
    rng = random.Random(20261128)
    doc = document()
    paths = [path for path in _paths(doc) if path and path != ('format',)]
    for _round in range(300):
        mutated = doc
        for path in rng.sample(paths, 8):
            try:
                mutated = _replace(mutated, path, rng.choice(JUNK))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed the parent
        facts = parse_evidence(mutated)
        assert isinstance(facts['problems'], list)
        assert_no_password(facts)


@pytest.mark.parametrize('section', ['host', 'install', 'posture', 'files', 'system', 'probes', 'errors'])
@pytest.mark.parametrize('junk', JUNK)
def test_parse_evidence_sections_of_wrong_type(section: str, junk: t.Any) -> None:
    """Issue 12 item 3: a section of the wrong type makes the document evidence_invalid naming the field."""
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose  # pylint: disable=import-outside-toplevel
    facts = parse_evidence({'format': 1, section: junk})
    assert FACT_KEYS <= set(facts)
    wrong = not isinstance(junk, dict) and junk is not None and not (section == 'errors' and isinstance(junk, list) and all(
        isinstance(item, (dict, type(None))) for item in junk))
    if wrong:
        assert re.search(r'%s(\[0\])?: expected' % section, facts['invalid']), facts['invalid']
        assert diagnose(facts, {'latest': None})['cause'] == 'evidence_invalid'
    else:
        assert facts['invalid'] is None
    if section == 'install' and not isinstance(junk, dict):
        assert facts['installed'] is None


@pytest.mark.parametrize('doc, field', [
    ({'format': 1, 'install': [1]}, 'install: expected an object, got list [1]'),
    ({'format': 1, 'install': {'version_dirs': [1]}}, 'install.version_dirs[0]: expected a string, got int 1'),
    ({'format': 1, 'probes': {'curl': {'exit_code': '35'}}}, "probes.curl.exit_code: expected a int, got string '35'"),
    ({'format': 1, 'probes': {'dns': [{'name': 'x', 'timed_out': 'no'}]}}, "probes.dns[0].timed_out: expected a bool, got string 'no'"),
    ({'format': 1, 'probes': {'tls': {'chain': ['CN=x']}}}, "probes.tls.chain[0]: expected an object, got string 'CN=x'"),
    ({'format': 1, 'host': {'computer_name': 5}}, 'host.computer_name: expected a string, got int 5'),
    ({'format': 1, 'errors': [{'section': 'x', 'hresult': 'bad'}]}, "errors[0].hresult: expected a int, got string 'bad'"),
    ({'format': 1, 'files': {'local_xml': {'text': ['<config/>']}}}, "files.local_xml.text: expected a string, got list ['<config/>']"),
])
def test_wrong_types_are_named_and_never_give_a_verdict(doc: dict[str, t.Any], field: str) -> None:
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose  # pylint: disable=import-outside-toplevel
    facts = parse_evidence(doc)
    assert field in facts['invalid']
    verdict = diagnose(facts, {'latest': 90606}, host='ep')
    assert (verdict['status'], verdict['cause'], verdict['host']) == ('unknown', 'evidence_invalid', 'ep')
    assert field in verdict['evidence'][0]


def test_wrong_types_inside_a_realistic_document_are_never_a_confident_verdict() -> None:
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose  # pylint: disable=import-outside-toplevel
    doc = document()
    doc['install'] = [1]
    verdict = diagnose(parse_evidence(doc), {'latest': 90606}, host='ep')
    assert verdict['cause'] == 'evidence_invalid' and 'install: expected an object, got list [1]' in verdict['evidence'][0]


def test_powershell_unwrapped_one_element_arrays_and_nulls_are_not_wrong_types() -> None:
    doc = document()
    doc['probes']['dns'] = doc['probes']['dns'][0]
    doc['install']['version_dirs'] = '8.1.7.21417'
    doc['errors'] = doc['errors'][0]
    doc['system'] = None
    assert parse_evidence(doc)['invalid'] is None


@pytest.mark.parametrize('parser', [parse_posture, parse_local_xml, parse_policy_xml, decode_lasterror, decode_text, hresult_hex])
@pytest.mark.parametrize('junk', JUNK + ['<config><agent><engine><tetra><lasterror>abc</lasterror></tetra></engine></agent></config>',
                                         '<!DOCTYPE x [<!ENTITY a "aaaa">]><config>&a;</config>'])
def test_parsers_never_raise(parser: t.Callable[[t.Any], t.Any], junk: t.Any) -> None:
    parser(junk)
    parse_curl(junk, junk)


@pytest.mark.parametrize('parser', [parse_local_xml, parse_policy_xml])
@pytest.mark.parametrize('text', [
    '<config><proxy><server>p</server><password>%s' % PROXY_PASSWORD,
    '<config><proxy><password>%s</password><server>p</server>' % PROXY_PASSWORD,
    '<config><proxy><ds:password xmlns:ds="urn:x">%s</ds:password>' % PROXY_PASSWORD,
    '<config><proxy><PASSWORD>%s</PASSWORD></proxy>\x00<' % PROXY_PASSWORD,
])
def test_short_truncated_xml_problem_masks_password(parser: t.Callable[[t.Any], dict[str, t.Any]], text: str) -> None:
    result = parser(text)
    assert result['problem'] and 'REDACTED' in result['problem']
    assert_no_password(result)


def test_xml_parsers_without_xmltodict(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _evidence_files  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(_evidence_files, 'xmltodict', None)
    for parser, flag in ((parse_local_xml, 'available'), (parse_policy_xml, 'readable')):
        result = parser(sample('synthetic-local-old.xml'))
        assert result[flag] is False and 'xmltodict is not installed' in result['problem']


# ---------------------------------------------------------------- probes that did not run, system task (issue 10)

def _probe_doc(probes: dict, **top: t.Any) -> dict:
    return dict({'format': 1, 'action': 'collect', 'context': 'system', 'probes': probes, 'errors': []}, **top)


def test_probes_keep_their_identity_when_they_did_not_run_or_timed_out():
    facts = parse_evidence(_probe_doc({
        'dns': [{'name': 'tetra-defs.amp.cisco.com', 'timed_out': False, 'not_run': True, 'error': None},
                {'name': 'validation.identrust.com', 'timed_out': True, 'not_run': False, 'error': None}],
        'tls': {'host': 'tetra-defs.amp.cisco.com', 'port': 443, 'timed_out': False, 'not_run': True, 'error': None},
        'curl': {'path': 'C:\\Windows\\System32\\curl.exe', 'url': 'https://tetra-defs.amp.cisco.com/', 'timed_out': False, 'not_run': True,
                 'error': None},
        'http': [{'url': 'http://validation.identrust.com/', 'timed_out': False, 'not_run': True, 'error': None}],
        'proxy': {'server': 'proxy.corp.example', 'port': 8080, 'source': 'policy', 'timed_out': False, 'not_run': True, 'error': None},
    }))
    probes = facts['probes']
    assert [(e['name'], e['ok'], e['not_run'], e['timed_out']) for e in probes['dns']] == [
        ('tetra-defs.amp.cisco.com', None, True, False), ('validation.identrust.com', False, False, True)]
    assert (probes['tls']['host'], probes['tls']['port'], probes['tls']['not_run'], probes['tls']['connect_ok']) == (
        'tetra-defs.amp.cisco.com', 443, True, None)
    assert (probes['curl']['url'], probes['curl']['not_run'], probes['curl']['exit_code']) == ('https://tetra-defs.amp.cisco.com/', True, None)
    assert (probes['http'][0]['host'], probes['http'][0]['ok'], probes['http'][0]['not_run']) == ('validation.identrust.com', None, True)
    assert (probes['proxy']['server'], probes['proxy']['not_run'], probes['proxy']['connect_ok']) == ('proxy.corp.example', True, None)
    assert not any('resolving tetra-defs.amp.cisco.com' in p for p in facts['problems'])
    assert 'resolving validation.identrust.com failed: timed out' in facts['problems']
    assert 'probe not run: tls tetra-defs.amp.cisco.com:443' in facts['problems']
    assert 'probe not run: proxy proxy.corp.example:8080' in facts['problems']


@pytest.mark.parametrize('record, problem', [
    ({'registered': True, 'started': False, 'finished': False, 'stopped': False, 'state': 'Ready', 'last_result': 267011},
     'the LocalSystem scheduled task never started (state Ready, last result 0x00041303)'),
    ({'registered': True, 'started': True, 'finished': False, 'stopped': True, 'state': 'Running', 'last_result': 267009},
     'the LocalSystem scheduled task started but did not finish (state Running, stopped True)'),
])
def test_system_task_record_is_parsed_and_reported(record: dict, problem: str):
    facts = parse_evidence(_probe_doc({}, system_task=dict(record, is_system=None, duration_ms=1000, error=None)))
    assert facts['system_task']['registered'] is True and facts['system_task']['started'] is record['started']
    assert problem in facts['problems']


def test_finished_system_task_and_new_fields_are_plain_facts():
    facts = parse_evidence(_probe_doc(
        {'tls': {'host': 'h', 'port': 443, 'chain': [], 'chain_status': [], 'chain_source': 'callback', 'timed_out': False, 'not_run': False},
         'http': [{'url': 'http://validation.identrust.com/', 'status': 200, 'timed_out': False, 'not_run': False, 'via_proxy': None,
                   'proxy_mode': 'direct', 'duration_ms': 40, 'error': None}]},
        system_task={'registered': True, 'started': True, 'finished': True, 'stopped': False, 'state': 'Ready', 'last_result': 0,
                     'is_system': True, 'duration_ms': 2500, 'error': None}))
    assert facts['probes']['tls']['chain_source'] == 'callback' and facts['probes']['http'][0]['proxy_mode'] == 'direct'
    assert facts['system_task']['finished'] is True and facts['system_task']['is_system'] is True
    assert not any('LocalSystem' in p for p in facts['problems'])
    assert parse_evidence(_probe_doc({}))['system_task'] is None


def test_a_section_that_failed_on_the_endpoint_is_null_with_its_error():
    facts = parse_evidence({'format': 1, 'install': None, 'posture': None,
                            'errors': [{'section': 'install', 'type': 'Microsoft.Management.Infrastructure.CimException', 'hresult': -2146233088}]})
    assert not any('section install is null' in p for p in facts['problems'])
    assert any('section posture is null and no errors entry says why' in p for p in facts['problems'])
    assert any('endpoint error in install' in p for p in facts['problems'])
