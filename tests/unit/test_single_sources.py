# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts with one source (issue 15): the copies that have to stay elsewhere, in the docs and in the lab (which
imports nothing from the collection), are held to that source here."""

from __future__ import annotations

import os
import re
import typing as t

import pytest
import yaml

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _common, _request
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._codes import LASTERROR_CODES, lasterror_of_cause, lasterror_signed
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import CATALOG, LASTERROR_CAUSES
from tests.lab import evidence as lab_evidence
from tests.paths import REPO_ROOT

CAUSES_DOC = os.path.join(REPO_ROOT, 'docs', 'causes.md')
LAB_SCENARIOS = os.path.join(REPO_ROOT, 'tests', 'lab', 'scenarios')
# The causes a connector lasterror proves, by name: the table must keep proving each one.
PROXY_CAUSES = {'proxy_unreachable': -2103, 'proxy_auth_failed': -2100, 'proxy_download_failed': -2109}


def read(path: str) -> str:
    with open(path, encoding='utf-8') as handle:
        return handle.read()


# ---------------------------------------------------------------- the evidence format and timestamps (the lab's copies)

def test_the_lab_writes_the_collections_evidence_format_and_timestamps() -> None:
    assert lab_evidence.EVIDENCE_FORMAT == _common.EVIDENCE_FORMAT
    assert lab_evidence.TIMESTAMP_FORMAT == _common.TIMESTAMP_FORMAT
    assert lab_evidence.NETWORK_SECTIONS == _request.NETWORK_SECTIONS


def test_a_lab_timestamp_parses_as_the_collections() -> None:
    moment = _common.parse_timestamp(lab_evidence._iso(1_790_000_000))  # pylint: disable=protected-access
    assert _common.format_timestamp(moment) == '2026-09-21T14:13:20Z'


# ---------------------------------------------------------------- connector lasterror codes

def test_the_lasterror_table_proves_each_proxy_cause_with_ciscos_code() -> None:
    assert {cause: lasterror_signed(lasterror_of_cause(cause)) for cause in PROXY_CAUSES} == PROXY_CAUSES
    assert LASTERROR_CAUSES == {code: entry.cause for code, entry in LASTERROR_CODES.items() if entry.cause}
    assert set(LASTERROR_CAUSES.values()) <= {cause.name for cause in CATALOG}
    with pytest.raises(KeyError):
        lasterror_of_cause('dns_resolution_failed')


def causes_table() -> dict[str, list[str]]:
    """docs/causes.md's "Blocking findings" rows: cause -> its cells."""
    rows = {}
    for line in read(CAUSES_DOC).splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if line.startswith('| ') and len(cells) == 6 and cells[0] not in ('cause', '---'):
            rows[cells[0]] = cells
    return rows


def test_docs_causes_lists_the_lasterror_of_each_cause_from_the_table() -> None:
    documented = {cause: cells[3] for cause, cells in causes_table().items() if cells[3] != '-'}
    expected = {entry.cause: '%d (%d)' % (code, lasterror_signed(code)) for code, entry in LASTERROR_CODES.items() if entry.cause}
    assert documented == expected


def test_docs_causes_names_ciscos_table_as_it_is() -> None:
    listed = re.search(r"Cisco's table: ([-\d, ]+)\)", read(CAUSES_DOC))
    assert listed, "docs/causes.md no longer names Cisco's lasterror table"
    assert sorted(int(code) for code in listed.group(1).split(',')) == sorted(lasterror_signed(code) for code in LASTERROR_CODES if code)


def lasterrors(node: t.Any) -> t.Iterator[int]:
    """Every `lasterror:` value anywhere in a lab scenario file."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'lasterror' and value is not None:
                yield int(value)
            else:
                yield from lasterrors(value)
    elif isinstance(node, list):
        for item in node:
            yield from lasterrors(item)


@pytest.mark.parametrize('name', sorted(os.listdir(LAB_SCENARIOS)))
def test_every_lasterror_a_lab_scenario_sets_is_in_the_table(name: str) -> None:
    codes = set(lasterrors(yaml.safe_load(read(os.path.join(LAB_SCENARIOS, name)))))
    assert codes and codes <= set(LASTERROR_CODES)


# ---------------------------------------------------------------- "is this Cisco's sfc.exe"

@pytest.mark.parametrize('company, is_cisco', [
    ('Cisco Systems, Inc.', True), ('CISCO SYSTEMS, INC.', True), ('cisco', True),
    ('Microsoft Corporation', False), ('Cisc0 Systems', False), ('', None), (None, None), (17, None),
])
def test_is_cisco_publisher(company: t.Any, is_cisco: bool | None) -> None:
    assert _common.is_cisco_publisher(company) is is_cisco


@pytest.mark.parametrize('company', ['Cisco Systems, Inc.', 'CISCO SYSTEMS, INC.', 'Microsoft Corporation', '', None])
def test_the_lab_endpoint_refuses_the_sfc_the_controller_refuses(company: str | None) -> None:
    """The lab plays the script's check; it must agree with the controller's, or lab runs test a different rule."""
    expected = {True: None, False: 'sfc_not_cisco', None: 'sfc_missing'}[_common.is_cisco_publisher(company)]
    assert lab_evidence.sfc_refusal({'path': 'C:\\AMP\\sfc.exe', 'company': company}) == expected
    assert lab_evidence.sfc_refusal(None) == 'sfc_missing'
