#!/usr/bin/env python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Write files/collect-request.json: the request tetra_diagnose sends with its default options.

An administrator runs the shipped script with it on an endpoint without WinRM:

    powershell -ExecutionPolicy Bypass -File tetra_evidence.ps1 -RequestFile collect-request.json -OutFile HOST.json

The request comes from the collection's own builder (plugins/plugin_utils/_request.py), never by hand:

    python tools/make_collect_request.py            # (re)write files/collect-request.json
    python tools/make_collect_request.py --check    # exit 1 when the shipped file is out of date
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import typing as t

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_MODULE = os.path.join(REPO_ROOT, 'plugins', 'plugin_utils', '_request.py')
COMMON_MODULE = os.path.join(REPO_ROOT, 'plugins', 'plugin_utils', '_common.py')
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, 'files', 'collect-request.json')


def _load(name: str, path: str) -> t.Any:
    """A plugin_utils module that imports nothing from the collection, loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _request_module() -> t.Any:
    """plugins/plugin_utils/_request.py (the request builder)."""
    return _load('tetra_request_builder', REQUEST_MODULE)


# Added by _remote.EvidenceCall to every request; defined once in plugins/plugin_utils/_common.py.
EVIDENCE_FORMAT = _load('tetra_common', COMMON_MODULE).EVIDENCE_FORMAT


def collect_request() -> dict[str, t.Any]:
    """tetra_diagnose's request with every option at its default (context system, every section)."""
    builder = _request_module()
    spec = dict(builder.COMMON_SPEC, **builder.NETWORK_SPEC)
    defaults = {name: option.get('default') for name, option in spec.items()}
    request = builder.build_request('collect', builder.POSTURE_SECTIONS + builder.NETWORK_SECTIONS, defaults)
    return dict(request, format=EVIDENCE_FORMAT)


def render(request: dict[str, t.Any]) -> str:
    """Plain UTF-8 JSON (ASCII in fact), no BOM, keys sorted, one trailing newline."""
    return json.dumps(request, indent=2, sort_keys=True, ensure_ascii=True) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='file to write (default: files/collect-request.json)')
    parser.add_argument('--check', action='store_true', help='only compare; exit 1 when the file is missing or out of date')
    options = parser.parse_args(argv)
    text = render(collect_request())
    try:
        with open(options.output, encoding='utf-8') as handle:
            current = handle.read()
    except OSError:
        current = None
    if options.check:
        if current != text:
            print('%s is out of date: run python tools/make_collect_request.py' % options.output, file=sys.stderr)
            return 1
        print('%s is up to date' % options.output)
        return 0
    if current != text:
        with open(options.output, 'w', encoding='utf-8', newline='\n') as handle:
            handle.write(text)
        print('wrote %s' % options.output)
    else:
        print('%s is up to date' % options.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
