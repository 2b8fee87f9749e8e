#!/usr/bin/env python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Keep the command table of docs/endpoint-commands.md equal to what plugins/plugin_utils/_request.py builds.

Each row of that table shows one command of ``windows_commands()``: the executable (chosen by the endpoint
script, written by hand), then the arguments and encoding, which come from _request.py. This tool compares
the two, or rewrites the arguments and encodings of the rows from _request.py (executables, "when" and
"timeout" stay as written):

    python tools/endpoint_commands.py            # exit 1 and name each difference
    python tools/endpoint_commands.py --write    # rewrite the rows' arguments from _request.py

A command _request.py builds that has no row needs one written by hand (its executable, when, timeout).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import typing as t

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_MODULE = os.path.join(REPO_ROOT, 'plugins', 'plugin_utils', '_request.py')
DOC = os.path.join(REPO_ROOT, 'docs', 'endpoint-commands.md')

# Values chosen per call, built with stand-ins the doc then shows by name: (option, stand-in, as documented).
_OPTIONS = (('server', 'update-server.invalid', '<update server>'), ('curl_timeout', 123457, '<n>'), ('capture_max_mb', 987654, '<MB>'))
# Placeholders the script fills on the endpoint, as the doc shows them.
_PLACEHOLDERS = {
    '{work_dir}': '<work dir>',
    '{script}': 'C:\\Windows\\Temp\\tetra-<id>\\tetra_evidence.ps1',
    '{request}': 'C:\\Windows\\Temp\\tetra-<id>\\request.json',
    '{output}': 'C:\\Windows\\Temp\\tetra-<id>\\probes.json',
}
_ENCODINGS = {'utf-8': 'UTF-8', 'oem': 'OEM'}
# | `<executable> <arguments>` [`<name>`, <ENCODING>] | when | timeout |
_ROW = re.compile(r'^\| `(?P<exe>[^` ]+)(?: (?P<arguments>[^`]*))?` \[`(?P<name>\w+)`(?:, (?P<encoding>[A-Z0-9-]+))?\] \|(?P<rest>.*)$')


class Row(t.NamedTuple):
    exe: str
    arguments: str
    encoding: str | None


def _request_module() -> t.Any:
    """plugins/plugin_utils/_request.py, loaded from its file (it imports nothing from the collection)."""
    spec = importlib.util.spec_from_file_location('tetra_request_commands', REQUEST_MODULE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def shown(arguments: str) -> str:
    """A command's arguments as the doc shows them: stand-ins and placeholders by name."""
    for _option, stand_in, name in _OPTIONS:
        arguments = arguments.replace(str(stand_in), name)
    for placeholder, name in _PLACEHOLDERS.items():
        arguments = arguments.replace(placeholder, name)
    return arguments


def built_commands() -> dict[str, tuple[str, str]]:
    """name -> (arguments, encoding) of every command _request.py builds (curl included), as the doc shows them."""
    commands = _request_module().windows_commands(**{option: stand_in for option, stand_in, _name in _OPTIONS})
    return {name: (shown(command['arguments']), _ENCODINGS[command['encoding']]) for name, command in commands.items()}


def documented_commands(doc: str) -> dict[str, Row]:
    """name -> row of the doc's command table."""
    rows = (_ROW.match(line) for line in doc.splitlines())
    return {match['name']: Row(match['exe'], match['arguments'] or '', match['encoding']) for match in rows if match}


def problems(doc: str, built: dict[str, tuple[str, str]]) -> list[str]:
    """Every difference between the doc's table and the commands built, one line each; [] when they agree."""
    documented = documented_commands(doc)
    found = ['%s: built by _request.py but has no row in docs/endpoint-commands.md' % name for name in sorted(set(built) - set(documented))]
    found += ['%s: listed in docs/endpoint-commands.md but not built by _request.py' % name for name in sorted(set(documented) - set(built))]
    for name in sorted(set(built) & set(documented)):
        row = documented[name]
        if (row.arguments, row.encoding) != built[name]:
            found.append('%s: the doc shows %r (%s), _request.py builds %r (%s)' % (name, row.arguments, row.encoding, *built[name]))
    return found


def rewritten(doc: str, built: dict[str, tuple[str, str]]) -> str:
    """The doc with each row's arguments and encoding taken from the commands built."""
    def row(match: re.Match[str]) -> str:
        if match['name'] not in built:
            return match[0]
        arguments, encoding = built[match['name']]
        return '| `%s%s` [`%s`, %s] |%s' % (match['exe'], ' ' + arguments if arguments else '', match['name'], encoding, match['rest'])
    return '\n'.join(_ROW.sub(row, line) for line in doc.split('\n'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--doc', default=DOC, help='the page to check (default: docs/endpoint-commands.md)')
    parser.add_argument('--write', action='store_true', help="rewrite the rows' arguments and encodings from _request.py")
    options = parser.parse_args(argv)
    with open(options.doc, encoding='utf-8') as handle:
        doc = handle.read()
    built = built_commands()
    if options.write:
        with open(options.doc, 'w', encoding='utf-8') as handle:
            handle.write(rewritten(doc, built))
        doc = rewritten(doc, built)
    found = problems(doc, built)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
