# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Evidence documents built by the lab follow docs/evidence.md, scenario by scenario."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
import typing as t
import zipfile
from pathlib import Path

import pytest

from tests.lab import Lab, evidence

from .helpers import ALL_SECTIONS, collect

TOP = ['format', 'action', 'started', 'context', 'host', 'install', 'posture', 'files', 'system', 'probes', 'errors', 'duration_ms']
HOST = {'computer_name', 'os_caption', 'os_build', 'ps_version', 'culture', 'user', 'is_system'}
INSTALL = {'install_dir', 'version_dirs', 'service', 'display_version', 'sfc', 'reboot_pending', 'isolated'}
POSTURE = {'path', 'found', 'exit_code', 'stdout', 'stderr', 'timed_out', 'duration_ms', 'encoding', 'error'}
PROBES = {'dns', 'tls', 'curl', 'http', 'roots', 'proxy'}
TLS = {'host', 'port', 'connect', 'handshake', 'policy_errors', 'chain', 'chain_status', 'chain_source', 'timed_out', 'not_run'}


def test_collect_document_matches_the_contract(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'healthy')
    assert list(doc) == TOP
    assert (doc['format'], doc['action'], doc['context']) == (1, 'collect', 'user')
    assert set(doc['host']) == HOST and set(doc['install']) == INSTALL and set(doc['posture']) == POSTURE
    assert set(doc['probes']) == PROBES and set(doc['probes']['tls']) == TLS
    assert doc['posture']['stdout'].startswith('{ "agent_uuid": "') and '"connector_version": "8.1.7", "engi' in doc['posture']['stdout']
    assert doc['probes']['curl']['output'].startswith('* Trying 192.XXX.X.X:443...')
    assert doc['probes']['tls']['chain'][-1]['thumbprint'] == 'DF717EAA4AD94EC9558499602D48DE5FBCF03A25'
    assert doc['probes']['proxy'] is None and [e['section'] for e in doc['errors']] == ['policy_xml']  # 8.1.7: unreadable
    assert 'x:90606' in doc['files']['local_xml']['text']


def test_only_requested_sections_are_present(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'healthy', sections=['files'])
    assert list(doc) == ['format', 'action', 'started', 'context', 'host', 'files', 'errors', 'duration_ms']
    doc = collect(tetra_lab, 'healthy', sections=['dns'])
    assert set(doc['probes']) == {'dns'}


def test_revocation_blocked_uses_the_seed_text(tetra_lab: Lab) -> None:
    probes = collect(tetra_lab, 'revocation_blocked')['probes']
    assert probes['curl']['exit_code'] == 35
    assert 'Unknown error (0x80092013) - The revocation function' in probes['curl']['output']
    assert probes['tls']['handshake']['error']['native_error'] == -2146885613
    assert probes['tls']['chain_status'] == ['RevocationStatusUnknown', 'OfflineRevocation']
    assert all(h['timed_out'] for h in probes['http'])


@pytest.mark.parametrize('host,curl_exit', [('dns_failure', 6), ('firewall_blocked', 28), ('tls_interception', 60),
                                            ('download_interrupted', 56), ('proxy_unreachable', 28)])
def test_curl_exit_codes(tetra_lab: Lab, host: str, curl_exit: int) -> None:
    assert collect(tetra_lab, host, sections=['curl'])['probes']['curl']['exit_code'] == curl_exit


def test_proxy_behaviour(tetra_lab: Lab) -> None:
    auth = collect(tetra_lab, 'proxy_auth', sections=['proxy', 'files'])
    assert auth['probes']['proxy']['connect_status'] == 407 and auth['probes']['proxy']['source'] == 'policy'
    assert '<lasterror>4294965196</lasterror>' in auth['files']['local_xml']['text']
    down = collect(tetra_lab, 'proxy_unreachable', sections=['proxy'])['probes']['proxy']
    assert down['connect']['timed_out'] is True and down['connect_status'] is None
    asked = collect(tetra_lab, 'healthy', sections=['proxy'], proxy={'server': 'p.example', 'port': 3128})['probes']['proxy']
    assert (asked['server'], asked['source'], asked['connect_status']) == ('p.example', 'request', 200)


def test_policy_xml_readable_or_denied(tetra_lab: Lab) -> None:
    readable = collect(tetra_lab, 'tetra_disabled', sections=['files'])['files']['policy_xml']
    assert readable['readable'] and 'xmlns="http://www.w3.org/2000/09/xmldsig#"' in readable['text']
    assert '<enable>0</enable>' in readable['text']
    doc = collect(tetra_lab, 'policy_unreadable', sections=['files'])
    assert doc['files']['policy_xml']['error']['hresult'] == -2147024891
    assert doc['errors'][0]['section'] == 'policy_xml'
    files = collect(tetra_lab, 'proxy_download', sections=['files'])['files']
    # The scenario's policy.xml holds a proxy password; the script (and so the lab) drops the element before
    # printing: the evidence never carries it, the rest of the proxy section stays.
    secret = files['policy_xml']['text']
    assert 'Pr0xy-S3cret!lab' not in secret and '<password>' not in secret
    assert '<username>CORP\\svc-amp</username>' in secret or '<username>svc-amp</username>' in secret
    assert '<server>' in secret and 'Pr0xy-S3cret!lab' not in files['local_xml']['text']


def _ps_string(name: str) -> str:
    """A single-quoted string assigned to $name at the top of files/tetra_sections.ps1, unquoted."""
    text = (Path(__file__).resolve().parents[3] / 'files' / 'tetra_sections.ps1').read_text(encoding='ascii')
    match = re.search(r"^\$%s = '((?:[^']|'')*)'$" % re.escape(name), text, re.M)
    assert match, name
    return match.group(1).replace("''", "'")


def test_secret_patterns_are_the_scripts() -> None:
    assert _ps_string('SecretElementPattern') == evidence.SECRET_ELEMENT_PATTERN
    assert _ps_string('SecretAttributePattern') == evidence.SECRET_ATTRIBUTE_PATTERN


@pytest.mark.parametrize('raw, kept', [
    ('<proxy><server>p</server><password>S3cret</password></proxy>', '<proxy><server>p</server></proxy>'),
    ('<proxy><PassWord>S3cret</password><port>1</port></proxy>', '<proxy><port>1</port></proxy>'),
    ('<c:proxy><c:proxy_password a="1">S3<x/>cret</c:proxy_password></c:proxy>', '<c:proxy></c:proxy>'),
    ('<p><passwd>S3cret</passwd><ProxyPwd>S3cret</ProxyPwd><pwd/><password /></p>', '<p></p>'),
    ('<proxy server="p" password="S3cret" Proxy_Pwd=\'S3cret\'/>', '<proxy server="p"/>'),
    ('<a xmlns:pwd="urn:x"><pwd:server>p</pwd:server></a>', '<a xmlns:pwd="urn:x"><pwd:server>p</pwd:server></a>'),
    ('<proxy><username>u</username><pass_hint>h</pass_hint></proxy>', '<proxy><username>u</username><pass_hint>h</pass_hint></proxy>'),
])
def test_drop_secrets(raw: str, kept: str) -> None:
    assert evidence.drop_secrets(raw) == kept


def test_older_local_xml_layout_and_no_ampcli(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'connector_725', sections=['install', 'posture', 'files'])
    assert '<defversions>x:90597</defversions>' in doc['files']['local_xml']['text']
    assert doc['install']['service']['name'] == 'CiscoAMP_7.2.5' and doc['posture']['found'] is False


def test_not_installed(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'not_installed')
    assert doc['install']['install_dir'] is None and doc['install']['version_dirs'] == [] and doc['install']['service'] is None
    assert doc['posture']['found'] is False and doc['files']['local_xml']['path'] is None


def test_french_locale_messages(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'french_locale', sections=['dns', 'system'])
    assert doc['host']['culture'] == 'fr-FR'
    assert doc['probes']['dns'][0]['error']['message'] == 'Hôte inconnu' and doc['probes']['dns'][0]['error']['code'] == 11001
    assert 'Paramètres du proxy WinHTTP' in doc['system']['winhttp_proxy']


def test_user_passes_system_fails(tetra_lab: Lab) -> None:
    user = collect(tetra_lab, 'system_context_revocation', sections=['tls', 'http'])
    system = collect(tetra_lab, 'system_context_revocation', sections=['tls', 'http'], context='system')
    assert user['context'] == 'user' and user['probes']['tls']['handshake']['ok'] is True
    assert system['context'] == 'system' and system['probes']['tls']['chain_status'] == ['RevocationStatusUnknown', 'OfflineRevocation']


def test_deadline_marks_unfinished_probes(tetra_lab: Lab) -> None:
    doc = collect(tetra_lab, 'revocation_blocked', sections=['dns', 'http'], deadline_s=6, concurrent=False)
    http = doc['probes']['http']
    assert http[-1] == {'url': 'http://validation.identrust.com/', 'timed_out': False, 'not_run': True, 'error': None}  # still queued
    assert doc['duration_ms'] < 6000


def test_sequential_probes_add_up(tetra_lab: Lab) -> None:
    together = collect(tetra_lab, 'revocation_blocked', sections=['http'], concurrent=True)['duration_ms']
    apart = collect(tetra_lab, 'revocation_blocked', sections=['http'], concurrent=False)['duration_ms']
    assert apart > together + 4000  # lab time, not wall time: two 5 s timeouts summed vs overlapped


def test_forceupdate_advances_after_lab_seconds(tetra_lab_factory: t.Any) -> None:
    lab = tetra_lab_factory('faults', time_scale=0.25)
    before = collect(lab, 'stale_recovers', sections=['files'])['files']['local_xml']['text']
    assert 'x:90602' in before
    doc = collect(lab, 'stale_recovers', action='forceupdate', sections=['install'])
    assert doc['forceupdate']['ran'] is True and doc['forceupdate']['command'].endswith('sfc.exe" -forceupdate')
    assert 'x:90602' in collect(lab, 'stale_recovers', sections=['files'])['files']['local_xml']['text']
    polls = 0
    while 'x:90606' not in collect(lab, 'stale_recovers', sections=['files'])['files']['local_xml']['text']:
        polls += 1
        assert polls < 50, 'the forced update never landed'
        time.sleep(0.1)
    assert lab.state('stale_recovers').snapshot()['lasterror'] == 0
    assert lab.state('stale_recovers').counters['forceupdates'] == 1


def test_support_bundle_travels_in_chunks(tetra_lab: Lab) -> None:
    work = 'C:\\Windows\\Temp\\tetra-support-t1'
    start = collect(tetra_lab, 'healthy', action='support_start', sections=[], capture='pktmon', capture_max_mb=256, work_dir=work)
    assert start['support']['debug_logging']['exit_code'] == 0 and tetra_lab.state('healthy').debug_logging
    finish = collect(tetra_lab, 'healthy', action='support_finish', sections=[], capture='pktmon', work_dir=work)
    assert finish['support']['debug_logging']['exit_code'] == 0 and not tetra_lab.state('healthy').debug_logging
    bundle = [f for f in finish['support']['files'] if f['path'].endswith('.zip')][0]
    data, offset = b'', 0
    while True:
        chunk = collect(tetra_lab, 'healthy', action='read_file', sections=[], path=bundle['path'], offset=offset, length=512 * 1024)['file']
        data += base64.b64decode(chunk['data_b64'])
        offset += len(base64.b64decode(chunk['data_b64']))
        if chunk['eof']:
            break
    assert len(data) == bundle['size'] and hashlib.sha256(data).hexdigest().upper() == bundle['sha256']
    assert 'local.xml' in zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert len(tetra_lab.requests('healthy', 'read_file')) >= 3


def test_read_file_errors(tetra_lab: Lab) -> None:
    missing = collect(tetra_lab, 'healthy', action='read_file', sections=[], path='C:\\Windows\\Temp\\tetra-support-x\\nope.zip',
                      offset=0, length=10)
    assert 'file' not in missing and missing['errors'][0]['type'] == 'System.IO.FileNotFoundException'
    outside = collect(tetra_lab, 'policy_unreadable', action='read_file', sections=[], path='C:\\Program Files\\Cisco\\AMP\\policy.xml',
                      offset=0, length=10)
    assert 'file' not in outside and outside['errors'][0]['hresult'] == -2147024891
    assert 'tetra-support-' in outside['errors'][0]['message']


def test_every_catalog_scenario_answers(tetra_lab: Lab) -> None:
    for host, spec in tetra_lab.hosts.items():
        if spec.expect.get('status') in ('unreachable', 'unknown'):
            continue
        doc = collect(tetra_lab, host, sections=ALL_SECTIONS)
        assert doc['format'] == 1 and list(doc) == TOP, host
