# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The self-test's shape table: a good document passes, every kind of wrong shape fails with its reason."""

from __future__ import annotations

import copy
import typing as t

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import build_request
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._selftest import (
    ALL_SECTIONS, SECTIONS, SHAPES, check_document, collect_request, failed_rows, failure_message, format_table, iso_time, summary,
)
from ansible_collections.secure_endpoint.tetra.tests.unit.plugins.plugin_utils.test__diagnosis import healthy_document, revocation_blocked

REQUEST = dict(collect_request({'context': 'system'}), format=1)


def failures(document: t.Any, request: dict[str, t.Any] | None = None) -> dict[tuple[str, str], str]:
    return {(row['section'], row['check']): row['detail'] for row in failed_rows(check_document(document, request or REQUEST))}


def test_healthy_document_passes_every_check():
    rows = check_document(healthy_document(), REQUEST)
    assert not failed_rows(rows), failed_rows(rows)
    sections = {row['section'] for row in rows}
    assert set(ALL_SECTIONS) <= sections and {'document', 'host', 'context', 'probes', 'errors', 'controller'} <= sections
    assert next(r for r in rows if r['section'] == 'controller')['detail'].startswith('verdict ')


def test_failing_endpoint_is_still_a_good_shape():
    """A revocation failure is a verdict, not a shape problem: the chain is there, the error is typed."""
    assert failures(revocation_blocked(healthy_document())) == {}


def test_every_section_has_a_shape_and_every_shape_type_is_known():
    assert set(SECTIONS) == set(ALL_SECTIONS)
    simple = {'str', 'int', 'bool', 'dict', 'any', 'stamp', 'date'}

    def known(kind: str) -> bool:
        kind = kind.rstrip('?')
        return known(kind[5:-1]) if kind.startswith('list[') else kind in simple or kind in SHAPES
    kinds = [kind for dummy, kind in SECTIONS.values()] + [k for shape in SHAPES.values() for part in shape.values() for k in part.values()]
    assert all(known(kind) for kind in kinds), [kind for kind in kinds if not known(kind)]


def test_request_is_tetra_diagnose_request():
    from ansible_collections.secure_endpoint.tetra.plugins.action.tetra_diagnose import ActionModule as DiagnoseAction
    args = {'context': 'system', 'region': 'eu', 'deadline': 60}
    assert collect_request(args) == build_request(DiagnoseAction.ACTION, DiagnoseAction.SECTIONS, args)
    assert tuple(collect_request({})['sections']) == ALL_SECTIONS


def mutate(change: t.Callable[[dict[str, t.Any]], t.Any]) -> dict[str, t.Any]:
    document = copy.deepcopy(healthy_document())
    change(document)
    return document


WRONG_SHAPES = [
    # (what, change, failing (section, check), words in its detail)
    ('install is a list', lambda d: d.update(install=[d['install']]), ('install', 'required keys and types'), 'install: expected an object'),
    ('required key missing', lambda d: d['install'].pop('version_dirs'), ('install', 'required keys and types'), "'version_dirs' is missing"),
    ('hresult as text', lambda d: d['files']['policy_xml']['error'].update(hresult='0x80070005'),
     ('files', 'required keys and types'), 'files.policy_xml.error.hresult: expected int, got str'),
    ('bool as text', lambda d: d['install'].update(reboot_pending='False'), ('install', 'required keys and types'), 'expected bool'),
    ('one-element array unrolled', lambda d: d['probes']['dns'][0].update(addresses='52.22.1.10'),
     ('dns', 'required keys and types'), 'probes.dns[0].addresses: expected a list, got str'),
    ('chain missing while TLS connected', lambda d: d['probes']['tls'].pop('chain'),
     ('tls', 'chain present when the handshake reached the certificate'), 'chain is missing'),
    ('chain empty while TLS connected', lambda d: d['probes']['tls'].update(chain=[]),
     ('tls', 'chain present when the handshake reached the certificate'), 'the chain is empty'),
    ('chain empty, handshake failed after the certificate', lambda d: d['probes']['tls'].update(chain=[], policy_errors='RemoteCertificateChainErrors'),
     ('tls', 'chain present when the handshake reached the certificate'), 'policy_errors='),
    ('LocalSystem task did not run', lambda d: (d.update(context='user'), d['errors'].append(
        {'section': 'context', 'type': 'System.TimeoutException', 'hresult': -2146233083, 'message': 'LocalSystem probes did not finish'})),
     ('context', 'probes ran in the requested context (LocalSystem task ran)'), 'System.TimeoutException'),
    ('context error although context says system', lambda d: d['errors'].append(
        {'section': 'context', 'type': 'System.UnauthorizedAccessException', 'hresult': -2147024891}),
     ('context', 'probes ran in the requested context (LocalSystem task ran)'), 'UnauthorizedAccessException'),
    ('replacement character', lambda d: d['probes']['curl'].update(output='* schannel: H\ufffdte inconnu'),
     ('curl', 'text decodes cleanly'), 'U+FFFD'),
    ('mojibake', lambda d: d['host'].update(os_caption='Microsoft Windows 11 Professionnel \u00c3\u00a9dition'),
     ('host', 'text decodes cleanly'), 'mojibake'),
    ('UTF-16 read as bytes', lambda d: d['system'].update(winhttp_proxy='C\x00u\x00r\x00r\x00e\x00n\x00t\x00'),
     ('system', 'text decodes cleanly'), 'NUL'),
    ('started in the endpoint culture', lambda d: d.update(started='28/11/2026 02:30:00'), ('document', 'dates are ISO 8601'), 'not an ISO 8601 UTC time'),
    ('started with a dot as time separator', lambda d: d.update(started='2026-11-28T02.30.00Z'), ('document', 'dates are ISO 8601'), 'ISO 8601'),
    ('certificate date as /Date()/', lambda d: d['probes']['tls']['chain'][0].update(not_after='/Date(1700000000000)/'),
     ('tls', 'dates are ISO 8601'), 'probes.tls.chain[0].not_after'),
    ('section missing', lambda d: d.pop('system'), ('system', 'present'), 'system missing although requested'),
    ('probes missing', lambda d: d.pop('probes'), ('probes', 'present and an object'), 'missing'),
    ('timed-out probe without identity', lambda d: d['probes']['http'].__setitem__(1, {'timed_out': True, 'error': None}),
     ('http', 'required keys and types'), 'does not say what it probed'),
    ('requested name without a record', lambda d: d['probes']['dns'].pop(), ('dns', 'every requested name has a record'), 'validation.identrust.com'),
    ('requested root without a record', lambda d: d['probes'].update(roots=[]), ('roots', 'every requested root has a record'), 'DF717EAA'),
    ('PowerShell 7 ran it', lambda d: d['host'].update(ps_version='7.4.1'), ('host', 'Windows PowerShell 5.1'), '7.4.1'),
    ('not an IP address', lambda d: d['system'].update(dns_servers=['10.0.0.53 10.0.0.54']), ('system', 'DNS servers are IP addresses'), '10.0.0.53 10.0.0.54'),
    ('local.xml garbled', lambda d: d['files']['local_xml'].update(text='<config><tetra>'), ('files', 'local.xml text is XML'), 'not XML'),
    ('readable without text', lambda d: d['files']['local_xml'].update(text=None), ('files', 'readable means text, unreadable means an error'),
     'local_xml readable but text is null'),
    ('format 2', lambda d: d.update(format=2), ('document', 'format is 1'), '2'),
    ('wrong action', lambda d: d.update(action='forceupdate'), ('document', 'action is the one requested'), 'forceupdate'),
    ('negative duration', lambda d: d['probes']['tls']['connect'].update(duration_ms=-5), ('document', 'durations are not negative'), '-5'),
    ('error entry without section', lambda d: d['errors'].append({'type': 'System.Exception', 'hresult': -2146233088}),
     ('document', 'required keys and types'), "errors[0]: required key 'section' is missing"),
    ('thumbprint garbled', lambda d: d['probes']['tls']['chain'][0].update(thumbprint='A1 B2'), ('tls', 'thumbprints and chain status names'), 'A1 B2'),
    ('wrong update server', lambda d: d['probes']['tls'].update(host='example.com'), ('tls', 'probes the requested update server'), 'example.com'),
    ('proxy status mismatch', lambda d: d['probes'].update(proxy={
        'server': 'proxy.corp', 'port': 8080, 'source': 'policy', 'connect_status': 200, 'status_line': 'HTTP/1.1 407 Proxy Authentication Required',
        'connect': {'ok': True, 'duration_ms': 3, 'timed_out': False, 'error': None}}),
     ('proxy', 'CONNECT status matches the status line'), '407'),
]


@pytest.mark.parametrize('what, change, failing, words', WRONG_SHAPES, ids=[case[0] for case in WRONG_SHAPES])
def test_wrong_shape_fails_with_a_clear_reason(what, change, failing, words):
    found = failures(mutate(change))
    assert failing in found, '%s: expected %s to fail, failed: %s' % (what, failing, found)
    assert words in found[failing], found[failing]


def test_semantic_checks_are_skipped_when_the_shape_is_wrong():
    rows = check_document(mutate(lambda d: d.update(install=[d['install']])), REQUEST)
    skipped = [r for r in rows if (r['section'], r['check']) == ('install', 'versions are version numbers')]
    assert skipped == [{'section': 'install', 'check': 'versions are version numbers', 'ok': None, 'detail': 'not checked: the shape is wrong'}]
    assert summary(rows) == {'total': len(rows), 'passed': len(rows) - 2, 'failed': 1, 'skipped': 1}
    assert any(line.startswith('install') and ' skip ' in line for line in format_table(rows))


def test_extra_keys_are_accepted_and_named():
    document = mutate(lambda d: (d['probes']['tls'].update(chain_source='callback'), d.update(system_task={'ran': True, 'exit_code': 0}),
                                 d['install'].update(new_field=1)))
    rows = check_document(document, REQUEST)
    assert not failed_rows(rows), failed_rows(rows)
    install = next(r for r in rows if (r['section'], r['check']) == ('install', 'required keys and types'))
    assert install['detail'] == 'extra keys accepted: install.new_field'


def test_timed_out_probe_with_identity_passes():
    document = mutate(lambda d: (d['probes']['http'].__setitem__(1, {'url': 'http://validation.identrust.com/', 'timed_out': True, 'error': None}),
                                 d['probes'].update(tls={'host': 'tetra-defs.amp.cisco.com', 'port': 443, 'timed_out': True, 'error': None})))
    assert failures(document) == {}


def test_probe_that_did_not_run_passes_with_its_identity_and_fails_without():
    not_run = {'name': 'tetra-defs.amp.cisco.com', 'timed_out': False, 'not_run': True, 'error': None}
    assert failures(mutate(lambda d: d['probes']['dns'].__setitem__(0, not_run))) == {}
    nameless = {'timed_out': False, 'not_run': True, 'error': None}
    assert failures(mutate(lambda d: d['probes']['dns'].__setitem__(0, nameless)))


def test_sections_not_requested_may_be_absent():
    request = dict(build_request('collect', ('install', 'posture', 'files', 'system'), {}), format=1)
    document = mutate(lambda d: d.pop('probes'))
    rows = check_document(document, request)
    assert not failed_rows(rows), failed_rows(rows)
    assert 'probes' not in {row['section'] for row in rows}


def test_user_context_requested():
    request = dict(collect_request({'context': 'user'}), format=1)
    assert failures(mutate(lambda d: d.update(context='user')), request) == {}
    assert ('context', 'probes ran in the requested context (LocalSystem task ran)') in failures(healthy_document(), request)


def test_not_a_document():
    rows = check_document(['not', 'an', 'object'], REQUEST)
    assert [(r['section'], r['check'], r['ok']) for r in rows] == [('document', 'one JSON evidence object', False)]


def test_parser_exception_is_a_failed_controller_row(monkeypatch):
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _evidence

    def boom(document):
        raise KeyError('chain')
    monkeypatch.setattr(_evidence, 'parse_evidence', boom)
    assert "KeyError: 'chain'" in failures(healthy_document())[('controller', 'parse_evidence and diagnose read it')]


@pytest.mark.parametrize('text, ok', [
    ('2026-11-28T02:30:00Z', True), ('2024-01-01T00:00:00.0000000Z', True), ('2024-01-01T00:00:00+01:00', True),
    ('2024-01-01T00:00:00', False), ('2024-13-01T00:00:00Z', False), ('01/01/2024 00:00:00', False), (1700000000, False),
])
def test_iso_time(text, ok):
    assert (iso_time(text) is not None) is ok


def test_table_and_message():
    document = mutate(lambda d: d.update(install=[d['install']]))
    rows = check_document(document, REQUEST)
    lines = format_table(rows)
    assert lines[0].split() == ['section', 'check', 'result', 'detail']
    assert len(lines) == len(rows) + 2
    assert any(line.startswith('install') and ' FAIL ' in line for line in lines)
    assert all(len(line) < 250 for line in lines)
    message = failure_message(rows, 'ep-1', '/tmp/x/ep-1.json')
    assert message.startswith('ep-1: 1 of %d self-test checks failed (1 more not checked because the shape is wrong): '
                              'install/required keys and types (' % len(rows))
    assert 'versions are version numbers' not in message and message.endswith('Evidence saved to /tmp/x/ep-1.json.')
