# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Strict type check of an evidence document before anything is concluded from it (issue 12 item 3).

The types are the format's own table, ``_evidence_format.SHAPES`` / ``_evidence_format.SECTIONS`` (docs/evidence.md): one
description of the format for the field self-test and for the diagnosis. The diagnosis is more lenient than the
self-test on presence only: a missing key or a null value is "could not be obtained" (the parsers say so), and a
one-element list that PowerShell 5.1 unwrapped to its item is accepted. A value of another type (`"install": [1]`,
`"exit_code": "35"`, a list of numbers where objects belong) is wrong: the caller reports ``evidence_invalid``.
"""

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence_format import SECTIONS, SHAPES

_SCALARS: dict[str, tuple[type, ...]] = {'str': (str,), 'stamp': (str,), 'date': (str,), 'int': (int,), 'bool': (bool,), 'dict': (dict,)}
_MAX_PROBLEMS = 20


def _type_name(value: t.Any) -> str:
    return {bool: 'bool', int: 'int', float: 'float', str: 'string', list: 'list', dict: 'object'}.get(type(value), type(value).__name__)


def _short(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + '...'


def _scalar_ok(value: t.Any, kind: str) -> bool:
    if kind == 'int' and isinstance(value, bool):
        return False
    return isinstance(value, _SCALARS[kind])


def _walk(value: t.Any, kind: str, path: str, problems: list[str], depth: int = 0) -> None:
    kind = kind.rstrip('?')
    if value is None or kind == 'any' or len(problems) >= _MAX_PROBLEMS or depth > 12:
        return
    if kind.startswith('list[') and kind.endswith(']'):
        item = kind[5:-1]
        if not isinstance(value, list):
            value = [value]  # PowerShell 5.1 unwraps one-element arrays: the item alone is judged as the list's item
        for index, entry in enumerate(value):
            _walk(entry, item, '%s[%d]' % (path, index), problems, depth + 1)
        return
    if kind in _SCALARS:
        if not _scalar_ok(value, kind):
            problems.append('%s: expected %s, got %s %s' % (path, {'dict': 'an object', 'stamp': 'a string', 'date': 'a string'}.get(
                kind, 'a ' + ('string' if kind == 'str' else kind)), _type_name(value), _short(value)))
        return
    shape = SHAPES.get(kind)
    if shape is None:
        return
    if not isinstance(value, dict):
        problems.append('%s: expected an object, got %s %s' % (path, _type_name(value), _short(value)))
        return
    for key, sub in list(shape.get('required', {}).items()) + list(shape.get('optional', {}).items()):
        if key in value:
            _walk(value[key], sub, '%s.%s' % (path, key) if path else key, problems, depth + 1)


def shape_problems(doc: dict[str, t.Any]) -> list[str]:
    """'<field path>: expected <type>, got <type> <value>' for every known field of the wrong type (at most 20)."""
    problems: list[str] = []
    _walk(doc, 'document', '', problems)
    probes = doc.get('probes')
    if probes is not None and not isinstance(probes, dict):
        problems.append('probes: expected an object, got %s %s' % (_type_name(probes), _short(probes)))
    for path, kind in SECTIONS.values():
        parent = doc if len(path) == 1 else probes
        if isinstance(parent, dict) and path[-1] in parent:
            _walk(parent[path[-1]], kind, '.'.join(path), problems)
    return list(dict.fromkeys(problems))
