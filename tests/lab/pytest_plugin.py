# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pytest fixtures for the endpoint lab.

Use from any test folder's conftest.py::

    from tests.lab.pytest_plugin import tetra_lab, tetra_lab_factory  # noqa: F401  (fixtures)

``tetra_lab`` (session): the catalog fleet over NTLM on HTTP and HTTPS, a random free 127.x.y subnet.
``tetra_lab_factory`` (function): ``make(fleet='catalog', connection='winrm' | 'psrp', **Lab kwargs) -> Lab``;
every lab it starts is stopped at teardown. ``connection='psrp'`` writes an inventory for Ansible's psrp
connection (the endpoints serve WinRS and PowerShell Remoting alike). Both yield ``tests.lab.Lab`` objects: ``.inventory_path``, ``.log_path``,
``.requests(host=None, action=None)`` (request log entries), ``.state(host)`` (per-host state:
``.snapshot()``, ``.counters``), ``.address(host)``, ``.endpoint_url(host, https=None)``, ``.ca_path``.
``TETRA_LAB_TIME_SCALE`` (default 1.0) scales every simulated delay.
"""

from __future__ import annotations

import os
import typing as t

import pytest

from .lab import Lab

FLEETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fleets')


def fleet_path(fleet: str) -> str:
    """'catalog' -> tests/lab/fleets/catalog.yml; a path stays a path."""
    if os.path.sep in fleet or fleet.endswith('.yml'):
        return fleet
    return os.path.join(FLEETS, fleet + '.yml')


def default_time_scale() -> float:
    return float(os.environ.get('TETRA_LAB_TIME_SCALE', '1.0'))


@pytest.fixture(scope='session')
def tetra_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    """The catalog fleet for the whole session."""
    workdir = str(tmp_path_factory.mktemp('tetra-lab'))
    with Lab(fleet_path('catalog'), workdir=workdir, https=True, time_scale=default_time_scale()) as lab:
        yield lab


@pytest.fixture
def tetra_lab_factory(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Callable[..., Lab]]:
    """Start labs on demand; all are stopped when the test ends."""
    started: list[Lab] = []

    def make(fleet: str = 'catalog', connection: str = 'winrm', **kwargs: t.Any) -> Lab:
        kwargs['connection'] = connection
        kwargs.setdefault('workdir', str(tmp_path_factory.mktemp('tetra-lab')))
        kwargs.setdefault('time_scale', default_time_scale())
        lab = Lab(fleet_path(fleet), **kwargs).start()
        started.append(lab)
        return lab

    yield make
    for lab in started:
        lab.stop()
