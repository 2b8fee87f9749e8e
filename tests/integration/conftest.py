# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared fixtures for the playbook integration tests against the endpoint lab.

Fixtures any ``tests/integration/test_*.py`` can use:

- ``ansible_env``: environment for ``ansible-playbook``/``ansible-runner`` subprocesses, with the
  collection on ``ANSIBLE_COLLECTIONS_PATH`` (the Makefile's staged copy when it exported one, else a
  symlink to this checkout made for the session).
- ``lab_catalog``: the catalog fleet served by ``python -m tests.lab serve`` for the whole session:
  ``.inventory`` (path), ``.hosts`` (inventory names), ``.expected`` (host -> {status, cause}),
  ``.latest_version``.
- ``run_playbook``: a function ``(args, env, log_name)`` running ``ansible-playbook`` from the
  repository root and keeping its output in tests/output/integration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from tests.lab.scenario import load_fleet
from tests.paths import REPO_ROOT

OUTPUT_DIR = os.path.join(REPO_ROOT, 'tests', 'output', 'integration')
CATALOG = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets', 'catalog.yml')
VENV_BIN = os.path.dirname(sys.executable)
LAB_START_TIMEOUT_S = 60


def _has_collection(root: str) -> bool:
    return os.path.isdir(os.path.join(root, 'ansible_collections', 'secure_endpoint', 'tetra', 'plugins'))


@pytest.fixture(scope='session')
def collections_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A collections root holding secure_endpoint.tetra."""
    for root in (os.environ.get('ANSIBLE_COLLECTIONS_PATH') or '').split(os.pathsep):
        if root and _has_collection(root):
            return root
    root = str(tmp_path_factory.mktemp('collections'))
    os.makedirs(os.path.join(root, 'ansible_collections', 'secure_endpoint'))
    os.symlink(REPO_ROOT, os.path.join(root, 'ansible_collections', 'secure_endpoint', 'tetra'))
    return root


@pytest.fixture(scope='session')
def ansible_env(collections_root: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        'PATH': VENV_BIN + os.pathsep + env.get('PATH', ''),
        'ANSIBLE_COLLECTIONS_PATH': collections_root,
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_HOST_KEY_CHECKING': 'false',
        'ANSIBLE_RETRY_FILES_ENABLED': 'false',
        'ANSIBLE_CALLBACKS_ENABLED': 'secure_endpoint.tetra.tetra_summary',
        'ANSIBLE_FORKS': '25',
        'PYTHONPATH': REPO_ROOT,
    })
    return env


@dataclasses.dataclass
class Lab:
    inventory: str
    hosts: list[str]
    expected: dict[str, dict[str, t.Any]]
    latest_version: int


def _load_expectations() -> tuple[dict[str, dict[str, t.Any]], int]:
    fleet = load_fleet(CATALOG)
    return {host.name: dict(host.expect) for host in fleet.hosts}, fleet.latest_version


def _wait_for_inventory(process: subprocess.Popen[bytes], path: str, log: str) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            time.sleep(0.3)  # let the writer finish the file
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    with open(log, encoding='utf-8', errors='replace') as handle:
        output = handle.read()[-4000:]
    pytest.fail('The lab did not write its inventory within %d s (exit %s):\n%s'
                % (LAB_START_TIMEOUT_S, process.poll(), output))


@contextlib.contextmanager
def served_lab(fleet: str, folder: t.Any, env: dict[str, str], *options: str, wait_for: str = 'lab.ini') -> t.Iterator[str]:
    """``python -m tests.lab serve --fleet FLEET --inventory FOLDER/lab.ini OPTIONS...`` for the duration of the block.

    Waits until ``FOLDER/<wait_for>`` is written, yields the inventory path and stops the lab afterwards.
    """
    inventory, log = os.path.join(str(folder), 'lab.ini'), os.path.join(str(folder), 'lab.log')
    with open(log, 'wb') as out:
        process = subprocess.Popen([sys.executable, '-m', 'tests.lab', 'serve', '--fleet', fleet, '--inventory', inventory] + list(options),
                                   cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_inventory(process, os.path.join(str(folder), wait_for), log)
        yield inventory
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _inventory_hosts(path: str, env: dict[str, str]) -> list[str]:
    import json  # pylint: disable=import-outside-toplevel
    out = subprocess.run([os.path.join(VENV_BIN, 'ansible-inventory'), '-i', path, '--list'],
                         env=env, check=True, capture_output=True, text=True).stdout
    return sorted(json.loads(out).get('_meta', {}).get('hostvars', {}))


@pytest.fixture(scope='session')
def lab_catalog(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Lab]:
    expected, latest = _load_expectations()
    with served_lab(CATALOG, tmp_path_factory.mktemp('lab'), ansible_env) as inventory:
        yield Lab(inventory, _inventory_hosts(inventory, ansible_env), expected, latest)


def _run_playbook(args: list[str], env: dict[str, str], log_name: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook from the repository root; its output is kept in tests/output/integration."""
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    done = subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook')] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    with open(os.path.join(OUTPUT_DIR, log_name), 'w', encoding='utf-8') as handle:
        handle.write('$ ansible-playbook %s\n(exit %d)\n%s\n--- stderr ---\n%s' % (' '.join(args), done.returncode, done.stdout, done.stderr))
    return done


@pytest.fixture(scope='session')
def run_playbook() -> t.Callable[..., subprocess.CompletedProcess[str]]:
    """``run_playbook(args, env, log_name)``: ansible-playbook from the repository root, output kept."""
    return _run_playbook
