# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The helpers of the slice-and-merge benchmark: slices cover every host once, the scaled fleet has the size asked."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.bench.bench_diagnose import report_rows, scaled_fleet, slice_hosts, slice_inventory
from tests.lab.scenario import load_fleet
from tests.paths import REPO_ROOT


@pytest.mark.parametrize('count', [1, 3, 4, 7])
def test_slices_cover_every_host_once(count: int) -> None:
    hosts = ['h%d' % i for i in range(10)]
    parts = slice_hosts(hosts, count)
    assert sorted(h for part in parts for h in part) == hosts
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_more_slices_than_hosts_gives_no_empty_slice() -> None:
    assert slice_hosts(['a', 'b'], 4) == [['a'], ['b']]


def test_zero_slices_is_refused() -> None:
    with pytest.raises(ValueError):
        slice_hosts(['a'], 0)


@pytest.mark.parametrize('size', [7, 2000])
def test_scaled_fleet_has_the_size_asked_and_loads(tmp_path: os.PathLike[str], size: int) -> None:
    dest = scaled_fleet(os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'scale500.yml'), size, os.path.join(tmp_path, 'fleet.yml'))
    with open(dest, encoding='utf-8') as handle:
        assert sum(entry['count'] for entry in yaml.safe_load(handle)['hosts']) == size
    names = [spec.name for spec in load_fleet(dest).hosts]
    assert len(names) == len(set(names)) == size


def test_report_rows_counts_duplicates_apart(tmp_path: os.PathLike[str]) -> None:
    with open(os.path.join(tmp_path, 'report.json'), 'w', encoding='utf-8') as handle:
        json.dump({'hosts': [{'host': 'a'}, {'host': 'b'}, {'host': 'a'}]}, handle)
    assert report_rows(str(tmp_path)) == (3, 2)


def test_slice_inventory_keeps_only_the_slice_hosts_and_the_group_vars() -> None:
    hosts = ['ep-%d ansible_host=127.0.0.%d' % (i, i) for i in (1, 2, 3)]
    text = '\n'.join(['# lab', '[windows]'] + hosts + ['', '[windows:vars]', 'ansible_user=x']) + '\n'
    expected = '\n'.join(['# lab', '[windows]', hosts[0], hosts[2], '', '[windows:vars]', 'ansible_user=x']) + '\n'
    assert slice_inventory(text, ['ep-1', 'ep-3']) == expected
