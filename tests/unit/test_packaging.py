# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The packaging files agree: one collection version (galaxy.yml), one tested ansible-core range."""

from __future__ import annotations

import os
import re

import yaml

from tests.paths import REPO_ROOT


def _read(name: str) -> str:
    with open(os.path.join(REPO_ROOT, name), encoding='utf-8') as handle:
        return handle.read()


def _tested_versions() -> list[tuple[int, int]]:
    match = re.search(r'^TRANSPORT_VERSIONS \?= (.+)$', _read('Makefile'), re.M)
    assert match, 'TRANSPORT_VERSIONS not found in the Makefile'
    return [tuple(int(part) for part in version.split('.')) for version in match.group(1).split()]  # type: ignore[misc]


def test_execution_environment_names_no_collection_version() -> None:
    version = yaml.safe_load(_read('galaxy.yml'))['version']
    assert version not in _read('execution-environment.yml'), 'the collection version belongs in galaxy.yml only'


def test_execution_environment_ansible_core_range_is_the_tested_range() -> None:
    ee = yaml.safe_load(_read('execution-environment.yml'))
    spec = ee['dependencies']['ansible_core']['package_pip']
    match = re.fullmatch(r'ansible-core>=(\d+)\.(\d+),<(\d+)\.(\d+)', spec)
    assert match, spec
    low, high = (int(match.group(1)), int(match.group(2))), (int(match.group(3)), int(match.group(4)))
    tested = _tested_versions()
    assert low == min(tested), (spec, tested)
    assert high == (max(tested)[0], max(tested)[1] + 1), (spec, tested)
    requires = yaml.safe_load(_read('meta/runtime.yml'))['requires_ansible']
    assert requires.startswith('>=%d.%d' % low), requires
    if max(tested) >= (2, 20):  # ansible-core 2.20 and later need Python 3.12
        assert ee['dependencies']['python_interpreter']['python_path'].endswith(('3.12', '3.13')), ee['dependencies']


def test_execution_environment_installs_the_tarball_it_copies() -> None:
    ee = yaml.safe_load(_read('execution-environment.yml'))
    (entry,) = ee['additional_build_files']
    (collection,) = ee['dependencies']['galaxy']['collections']
    assert collection['type'] == 'file'
    assert collection['name'] == '%s/%s' % (entry['dest'], os.path.basename(entry['src']))
    assert entry['src'] == '.build/ee/secure_endpoint-tetra.tar.gz'
    assert '$(BUILD)/ee/$(NAMESPACE)-$(NAME).tar.gz' in _read('Makefile')
