# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Field self-test: does one evidence document have the shape docs/evidence.md documents?

The shape rules are data: ``SHAPES`` maps every object of the format to its required and optional
keys and their types, ``SECTIONS`` says where each requested section lives in the document. The few
rules that are not about shape (a chain when the handshake reached the certificate, the LocalSystem
task ran, every requested name was probed, clean text, ISO 8601 dates) are small functions in
``SEMANTIC_CHECKS``. Keys the format does not know are accepted (the format grows) and named in the
detail of the shape row, so a new field is visible without failing anyone.

:func:`check_document` returns one row per (section, check): ``{section, check, ok, detail}``.
"""

from __future__ import annotations

import ipaddress
import re
import traceback
import typing as t
from xml.etree import ElementTree

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import EVIDENCE_FORMAT
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_format import (
    SECTIONS, SHAPES, SKIPPED, _C1_CONTROL, _CHAIN_FLAG, _DETAIL_ITEMS, _MOJIBAKE, _THUMBPRINT, _VERSION, _short,
    _type_name, iso_time, validate,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import NETWORK_SECTIONS, POSTURE_SECTIONS, build_request

__all__ = [
    'ALL_SECTIONS', 'SECTIONS', 'SHAPES', 'check_document', 'collect_request', 'controller_row', 'failed_rows', 'failure_message',
    'format_table', 'iso_time', 'summary',
]

Row = t.Dict[str, t.Any]

# Every section tetra_diagnose asks for, in its order: the self-test sends exactly its request.
ALL_SECTIONS = POSTURE_SECTIONS + NETWORK_SECTIONS


# ---------------------------------------------------------------- text and helpers

def strings(value: t.Any, path: str) -> t.Iterator[tuple[str, str]]:
    """Every (path, string) inside `value`, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield '%s{key}' % path, key
            yield from strings(item, '%s.%s' % (path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, '%s[%d]' % (path, index))


def text_problems(value: t.Any, path: str) -> list[str]:
    """Strings that did not decode cleanly: U+FFFD, NUL, C1 controls, UTF-8 read as an 8-bit code page."""
    problems = []
    for where, text in strings(value, path):
        for label, pattern in (('U+FFFD replacement character', '\ufffd'), ('NUL character', '\x00')):
            if pattern in text:
                index = text.index(pattern)
                problems.append('%s: %s in %r' % (where, label, text[max(0, index - 20):index + 20]))
        for label, regex in (('mojibake (UTF-8 read as an 8-bit code page)', _MOJIBAKE), ('C1 control character', _C1_CONTROL)):
            match = regex.search(text)
            if match:
                problems.append('%s: %s %r in %r' % (where, label, match.group(0), text[max(0, match.start() - 20):match.end() + 20]))
    return problems


def lookup(document: dict[str, t.Any], path: tuple[str, ...]) -> tuple[bool, t.Any]:
    value: t.Any = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _is_ip(text: t.Any) -> bool:
    try:
        ipaddress.ip_address(str(text).split('%', maxsplit=1)[0])
    except ValueError:
        return False
    return isinstance(text, str)


def _summary(items: list[str]) -> str:
    if not items:
        return ''
    text = '; '.join(items[:_DETAIL_ITEMS])
    return text + ('; ... (%d in all)' % len(items) if len(items) > _DETAIL_ITEMS else '')


def _records(value: t.Any) -> list[dict[str, t.Any]]:
    return [item for item in (value if isinstance(value, list) else []) if isinstance(item, dict)]


def _finished(record: dict[str, t.Any]) -> bool:
    return not ((record.get('timed_out') is True or record.get('not_run') is True) and 'duration_ms' not in record)


# ---------------------------------------------------------------- semantic checks (one function per row)
# Each takes (section value, request, document) and returns None when it passes, else the reason.
# They only run when the section's shape passed, so they may trust the types.

def _format_one(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    fmt = value.get('format')
    return None if fmt == EVIDENCE_FORMAT and not isinstance(fmt, bool) else 'format is %r, expected %d' % (fmt, EVIDENCE_FORMAT)


def _action_is_request(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    return None if value.get('action') == request.get('action') else 'action %r, requested %r' % (value.get('action'), request.get('action'))


def _durations(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = ['%s=%r' % (path, number) for path, number in _numbers(value, 'document') if path.endswith('duration_ms') and number < 0]
    return _summary(bad) or None


def _numbers(value: t.Any, path: str) -> t.Iterator[tuple[str, t.Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, '%s.%s' % (path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, '%s[%d]' % (path, index))
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, value


def _powershell_51(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    version = str(value.get('ps_version'))
    return None if version == '5.1' or version.startswith('5.1.') else 'ps_version %r: the script is written for Windows PowerShell 5.1' % version


def _context(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    wanted = request.get('context') or 'user'
    errors = [e for e in _records(document.get('errors')) if e.get('section') == 'context']
    if wanted == 'system':
        if document.get('context') != 'system' or errors:
            why = '; '.join('%s %s' % (e.get('type'), e.get('message') or '') for e in errors) or 'no context error given'
            return 'context=system requested, probes ran as %r (%s)' % (document.get('context'), why.strip())
        return None
    return None if document.get('context') == 'user' else 'context=user requested, document says %r' % document.get('context')


def _version_numbers(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    names = list(value.get('version_dirs') or []) + ([value['display_version']] if value.get('display_version') else [])
    bad = [name for name in names if not _VERSION.match(name)]
    return 'not version numbers: %s' % ', '.join(map(repr, bad)) if bad else None


def _process_consistent(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    if not value['found']:
        return None if value.get('stdout') is None else 'found=false but stdout is not null'
    if value['exit_code'] is None and not value['timed_out'] and value['error'] is None:
        return 'found=true, not timed out and no error, but exit_code is null'
    return None


def _files_consistent(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = []
    for name in ('local_xml', 'policy_xml'):
        record = value[name]
        if record['readable'] and not isinstance(record['text'], str):
            bad.append('%s readable but text is null' % name)
        if not record['readable'] and record['path'] and record['error'] is None:
            bad.append('%s not readable and no error says why' % name)
    return '; '.join(bad) or None


def _local_xml_parses(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    record = value['local_xml']
    if not record['readable']:
        return None
    try:
        ElementTree.fromstring(record['text'].lstrip('\ufeff'))
    except ElementTree.ParseError as exc:
        return 'local.xml text is not XML: %s' % exc
    return None


def _dns_servers(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = [server for server in value['dns_servers'] if not _is_ip(server)]
    return 'not IP addresses: %s' % ', '.join(map(repr, bad)) if bad else None


def _all_names_resolved(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    names = [r.get('name') for r in _records(value)]
    missing = [name for name in request.get('dns_names') or [] if name not in names]
    return 'requested names without a record: %s' % ', '.join(missing) if missing else None


def _addresses(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = ['%s: %r' % (r.get('name'), a) for r in _records(value) for a in r.get('addresses') or [] if not _is_ip(a)]
    return 'not IP addresses: %s' % _summary(bad) if bad else None


def _tls_target(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    if (value.get('host'), value.get('port')) != (request.get('update_server'), 443):
        return 'probed %s:%s, requested %s:443' % (value.get('host'), value.get('port'), request.get('update_server'))
    return None


def _tls_chain(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    if not _finished(value):
        return None
    connect, handshake = value.get('connect'), value.get('handshake')
    if not isinstance(connect, dict) or connect.get('ok') is not True:
        return None
    if not isinstance(handshake, dict):
        return 'TCP connected but there is no handshake record'
    saw_certificate = handshake.get('ok') or value.get('policy_errors') is not None
    if saw_certificate and not value.get('chain'):
        return ('TCP connected and the handshake reached the certificate (ok=%s, policy_errors=%r) but the chain is %s'
                % (handshake.get('ok'), value.get('policy_errors'), 'missing' if 'chain' not in value else 'empty'))
    return None


def _certificates(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = ['chain[%d] thumbprint %r' % (i, c.get('thumbprint')) for i, c in enumerate(_records(value.get('chain')))
           if not _THUMBPRINT.match(str(c.get('thumbprint')))]
    bad += ['chain_status %r' % flag for flag in value.get('chain_status') or [] if not _CHAIN_FLAG.match(str(flag))]
    return _summary(bad) or None


def _curl_ran(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    if not _finished(value) or not value['found']:
        return None
    if value['exit_code'] is None and not value['timed_out']:
        return 'curl.exe found, not timed out, but exit_code is null'
    return None if value.get('output') else 'curl.exe ran but its output is empty'


def _all_urls_fetched(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    urls = [r.get('url') for r in _records(value)]
    missing = [url for url in request.get('http_urls') or [] if url not in urls]
    return 'requested URLs without a record: %s' % ', '.join(missing) if missing else None


def _http_status(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    bad = ['%s: %r' % (r.get('url'), r.get('status')) for r in _records(value) if r.get('status') is not None and not 100 <= r['status'] <= 599]
    return 'not HTTP status codes: %s' % _summary(bad) if bad else None


def _all_roots(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    got = {str(r.get('thumbprint')).upper() for r in _records(value)}
    missing = [tp for tp in request.get('root_thumbprints') or [] if tp.upper() not in got]
    unnamed = [str(r.get('thumbprint')) for r in _records(value) if r.get('present') and not r.get('subject')]
    bad = (['requested roots without a record: %s' % ', '.join(missing)] if missing else []) + \
          (['present but no subject: %s' % ', '.join(unnamed)] if unnamed else [])
    return '; '.join(bad) or None


def _proxy_status(value: t.Any, request: dict[str, t.Any], document: dict[str, t.Any]) -> str | None:
    if not value or not value.get('status_line') or value.get('connect_status') is None:
        return None
    match = re.match(r'^HTTP/[0-9.]+ (\d{3})', value['status_line'])
    if not match or int(match.group(1)) != value['connect_status']:
        return 'connect_status %r does not match status_line %r' % (value['connect_status'], value['status_line'])
    return None


# Checks that read defensively and also run when their section's shape is wrong (these are the
# failures the self-test exists for: a missing chain is both a shape and a chain problem).
ROBUST_CHECKS = frozenset(('probes ran in the requested context (LocalSystem task ran)', 'chain present when the handshake reached the certificate'))

# (section, check name, function): `document`, `host` and `context` rows are always there; the others
# when their section was requested.
SEMANTIC_CHECKS: tuple[tuple[str, str, t.Callable[[t.Any, dict[str, t.Any], dict[str, t.Any]], str | None]], ...] = (
    ('document', 'format is 1', _format_one),
    ('document', 'action is the one requested', _action_is_request),
    ('document', 'durations are not negative', _durations),
    ('host', 'Windows PowerShell 5.1', _powershell_51),
    ('context', 'probes ran in the requested context (LocalSystem task ran)', _context),
    ('install', 'versions are version numbers', _version_numbers),
    ('posture', 'process record is consistent', _process_consistent),
    ('files', 'readable means text, unreadable means an error', _files_consistent),
    ('files', 'local.xml text is XML', _local_xml_parses),
    ('system', 'DNS servers are IP addresses', _dns_servers),
    ('dns', 'every requested name has a record', _all_names_resolved),
    ('dns', 'addresses are IP addresses', _addresses),
    ('tls', 'probes the requested update server', _tls_target),
    ('tls', 'chain present when the handshake reached the certificate', _tls_chain),
    ('tls', 'thumbprints and chain status names', _certificates),
    ('curl', 'curl.exe ran and was captured', _curl_ran),
    ('http', 'every requested URL has a record', _all_urls_fetched),
    ('http', 'status codes are HTTP codes', _http_status),
    ('roots', 'every requested root has a record', _all_roots),
    ('proxy', 'CONNECT status matches the status line', _proxy_status),
)


# ---------------------------------------------------------------- the runner

def _row(section: str, check: str, problem: str | None, detail: str = '') -> Row:
    return {'section': section, 'check': check, 'ok': problem is None, 'detail': problem if problem is not None else detail}


def _shape_rows(section: str, value: t.Any, kind: str, path: str, shallow: t.Collection[str] = ()) -> tuple[list[Row], bool]:
    """The shape row, and a dates row when the section has dates; True when the types are right."""
    problems: list[tuple[str, str]] = []
    extras: list[str] = []
    validate(value, kind, path, problems, extras, shallow)
    structural = [text for what, text in problems if what != 'date']
    dates = [text for what, text in problems if what == 'date']
    detail = 'extra keys accepted: %s' % _summary(extras) if extras else ''
    rows = [_row(section, 'required keys and types', _summary(structural) or None, detail)]
    if _has_dates(kind):
        rows.append(_row(section, 'dates are ISO 8601', _summary(dates) or None))
    return rows, not structural


def _has_dates(kind: str, seen: tuple[str, ...] = ()) -> bool:
    kind = kind.rstrip('?')
    if kind.startswith('list['):
        return _has_dates(kind[5:-1], seen)
    if kind in ('stamp', 'date'):
        return True
    if kind in SHAPES and kind not in seen:
        return any(_has_dates(k, seen + (kind,)) for part in SHAPES[kind].values() for k in part.values())
    return False


def check_document(document: t.Any, request: dict[str, t.Any]) -> list[Row]:
    """Every self-test row for one evidence document answering `request`."""
    if not isinstance(document, dict):
        return [_row('document', 'one JSON evidence object', 'got %s %s' % (_type_name(document), _short(document)))]
    rows: list[Row] = []
    shape_ok: dict[str, bool] = {}
    values: dict[str, t.Any] = {'document': document}
    nested = {'host', 'probes'} | {path[0] for path, dummy in SECTIONS.values()}
    top_rows, shape_ok['document'] = _shape_rows('document', document, 'document', 'document', shallow=nested)
    rows.extend(top_rows)
    top_level = {key: value for key, value in document.items() if key not in nested and key != 'errors'}
    rows.append(_row('document', 'text decodes cleanly', _summary(text_problems(top_level, 'document')) or None))
    if 'host' in document:
        host_rows, shape_ok['host'] = _shape_rows('host', document['host'], 'host', 'host')
        rows.extend(host_rows)
        rows.append(_row('host', 'text decodes cleanly', _summary(text_problems(document['host'], 'host')) or None))
        values['host'] = document['host']
    rows.append(_row('errors', 'text decodes cleanly', _summary(text_problems(document.get('errors'), 'errors')) or None))
    shape_ok['context'] = shape_ok['document']
    requested = [s for s in request.get('sections') or [] if s in SECTIONS]
    if any(s in NETWORK_SECTIONS for s in requested):
        values['context'] = document  # where the probes ran matters only when there are probes
        present = isinstance(document.get('probes'), dict)
        rows.append(_row('probes', 'present and an object', None if present else 'probes is %s' % (
            'missing' if 'probes' not in document else _type_name(document['probes']))))
        if present:
            extras = [key for key in document['probes'] if key not in SECTIONS or key not in requested]
            if extras:
                rows[-1]['detail'] = 'extra keys accepted: %s' % ', '.join(extras)
    for section in requested:
        path, kind = SECTIONS[section]
        found, value = lookup(document, path)
        rows.append(_row(section, 'present', None if found else '%s missing although requested' % '.'.join(path)))
        if not found:
            shape_ok[section] = False
            continue
        section_rows, shape_ok[section] = _shape_rows(section, value, kind, '.'.join(path))
        rows.extend(section_rows)
        rows.append(_row(section, 'text decodes cleanly', _summary(text_problems(value, '.'.join(path))) or None))
        values[section] = value
    for section, name, check in SEMANTIC_CHECKS:
        if section not in values:
            continue
        if not shape_ok.get(section) and not (name in ROBUST_CHECKS and isinstance(values[section], dict)):
            rows.append({'section': section, 'check': name, 'ok': None, 'detail': SKIPPED})
            continue
        try:
            problem = check(values[section], request, document)
        except Exception as exc:  # pylint: disable=broad-except  # a check must never hide the table
            problem = 'check raised %s: %s' % (type(exc).__name__, exc)
        rows.append(_row(section, name, problem))
    rows.append(controller_row(document))
    local = [s for s in requested if s not in NETWORK_SECTIONS]
    network = [s for s in requested if s in NETWORK_SECTIONS]
    return _ordered(rows, ['document', 'host', 'context'] + local + ['probes'] + network + ['errors', 'controller'])


def controller_row(document: dict[str, t.Any]) -> Row:
    """The collection's own parser and diagnosis read the document without an exception."""
    # Imported here: the diagnosis pulls in the cause catalog, which the shape table does not need.
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import diagnose  # pylint: disable=import-outside-toplevel
    from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import parse_evidence  # pylint: disable=import-outside-toplevel
    try:
        verdict = diagnose(parse_evidence(document), {'latest': None, 'source': 'unknown', 'max_behind': 5, 'max_age_hours': 24}, host='selftest')
    except Exception as exc:  # pylint: disable=broad-except  # that is the finding
        where = traceback.extract_tb(exc.__traceback__)[-1]
        problem = '%s: %s (%s:%d)' % (type(exc).__name__, exc, where.filename.rsplit('/', 1)[-1], where.lineno or 0)
        return _row('controller', 'parse_evidence and diagnose read it', problem)
    return _row('controller', 'parse_evidence and diagnose read it', None, 'verdict %s / %s' % (verdict.get('status'), verdict.get('cause')))


def _ordered(rows: list[Row], sections: list[str]) -> list[Row]:
    rank = {name: index for index, name in enumerate(dict.fromkeys(sections))}
    return sorted(rows, key=lambda row: rank.get(row['section'], len(rank)))


def failed_rows(rows: list[Row]) -> list[Row]:
    """Rows that failed (`ok` false); skipped rows (`ok` null) are not failures."""
    return [row for row in rows if row['ok'] is False]


def summary(rows: list[Row]) -> dict[str, int]:
    return {'total': len(rows), 'passed': sum(1 for r in rows if r['ok'] is True), 'failed': len(failed_rows(rows)),
            'skipped': sum(1 for r in rows if r['ok'] is None)}


def format_table(rows: list[Row], width: int = 110) -> list[str]:
    """The rows as fixed-width text lines: section, check, pass/FAIL/skip, detail (cut to `width`)."""
    section_w = max([len('section')] + [len(r['section']) for r in rows])
    check_w = max([len('check')] + [len(r['check']) for r in rows])
    line = '%-*s  %-*s  %-6s  %s'
    lines = [line % (section_w, 'section', check_w, 'check', 'result', 'detail'),
             line % (section_w, '-' * section_w, check_w, '-' * check_w, '------', '------')]
    for row in rows:
        detail = ' '.join(str(row['detail'] or '').split())
        if len(detail) > width:
            detail = detail[:width - 3] + '...'
        result = {True: 'pass', False: 'FAIL'}.get(row['ok'], 'skip')
        lines.append((line % (section_w, row['section'], check_w, row['check'], result, detail)).rstrip())
    return lines


def failure_message(rows: list[Row], host: str, evidence_path: str | None) -> str:
    failed = failed_rows(rows)
    names = ', '.join('%s/%s (%s)' % (r['section'], r['check'], ' '.join(str(r['detail']).split())[:160]) for r in failed)
    skipped = summary(rows)['skipped']
    also = ' (%d more not checked because the shape is wrong)' % skipped if skipped else ''
    saved = ' Evidence saved to %s.' % evidence_path if evidence_path else ''
    return '%s: %d of %d self-test checks failed%s: %s.%s' % (host, len(failed), len(rows), also, names, saved)


def collect_request(args: dict[str, t.Any]) -> dict[str, t.Any]:
    """The one collect request with every section, exactly as tetra_diagnose builds it."""
    return build_request('collect', ALL_SECTIONS, args)
