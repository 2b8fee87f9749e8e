# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make this checkout importable as ansible_collections.secure_endpoint.tetra for the unit tests.

Creates (when absent) the untracked symlink .build/collections/ansible_collections/secure_endpoint/tetra
pointing at the repository root and puts its collections root first on sys.path. `make collection`
stages a *copy* of the tree at that same path for ansible-test; importing that copy would test stale
code, so when the path holds anything but a symlink to this checkout, a second symlink under
.build/unit-collections is used instead. When the tests already run inside an
ansible_collections/<namespace>/<name> tree (ansible-test units), nothing is changed.
"""

from __future__ import annotations

import os
import sys

from tests.paths import REPO_ROOT

CANDIDATE_ROOTS = (os.path.join(REPO_ROOT, '.build', 'collections'), os.path.join(REPO_ROOT, '.build', 'unit-collections'))
COLLECTION_PATH = ('ansible_collections', 'secure_endpoint', 'tetra')


def _points_here(link: str) -> bool:
    return os.path.islink(link) and os.path.realpath(link) == os.path.realpath(REPO_ROOT)


def _ensure_link(root: str) -> bool:
    """True when `root` holds (or now holds) a symlink to this checkout."""
    link = os.path.join(root, *COLLECTION_PATH)
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(REPO_ROOT, link)
        except FileExistsError:
            pass  # created meanwhile by a parallel test process
    return _points_here(link)


def _in_collection_tree() -> bool:
    parts = os.path.realpath(REPO_ROOT).split(os.sep)
    return len(parts) >= 3 and parts[-3] == 'ansible_collections'


def _collections_root() -> str | None:
    if _in_collection_tree():
        return None
    return next((root for root in CANDIDATE_ROOTS if _ensure_link(root)), None)


COLLECTIONS_ROOT = _collections_root()
if COLLECTIONS_ROOT is not None and COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)


# ---------------------------------------------------------------- the shared fake connection and action helpers
#
# Imported here, below the sys.path set-up above: the collection is importable only from this point on.

import base64
import json
import time
import typing as t
from unittest.mock import MagicMock

import pytest

from ansible.playbook.play_context import PlayContext

# What a FakeConnection answers a call with: an evidence document (sent as JSON, exit 0), a raw
# (rc, stdout, stderr) tuple, an exception to raise, or a callable taking no argument that returns one of these
# (a slow or hung endpoint: `lambda: time.sleep(3) or document`).
Answer = t.Any


def request_of(stdin: bytes) -> dict[str, t.Any]:
    """The request the endpoint reads: the first stdin line, base64 JSON (_remote.build_command)."""
    return json.loads(base64.b64decode(stdin.split(b'\n', 1)[0]))


def endpoint_output(answer: Answer) -> t.Any:
    """exec_command's return value for an answer; raises the answer when it is an exception."""
    if isinstance(answer, BaseException):
        raise answer
    if isinstance(answer, dict):
        return 0, json.dumps(answer).encode('utf-8'), b''
    return answer


class FakeConnection:
    """The one stand-in for a winrm/psrp/ssh connection plugin in the unit tests.

    Answers each exec_command with the next recorded answer, or, with ``respond``, with what an emulated
    endpoint answers to the decoded request. Keeps every call; ``close_s`` and ``reset_s`` make close and
    reset take that long, as on a frozen endpoint (the per-host bound in _remote must hold regardless).
    """

    def __init__(self, *answers: Answer, respond: t.Callable[[dict[str, t.Any]], Answer] | None = None,
                 close_s: float = 0.0, reset_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.respond = respond
        self.close_s = close_s
        self.reset_s = reset_s
        self.calls: list[tuple[str, bytes | None]] = []
        self.resets = 0
        self.closes = 0
        # What ActionBase and the bounded close in _remote read from a real plugin.
        self._shell = MagicMock()
        self.shell_id: str | None = 'shell-1'
        self._connected = True

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> t.Any:
        self.calls.append((cmd, in_data))
        answer = self.respond(request_of(in_data or b'')) if self.respond else self.answers.pop(0)
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer()
        return endpoint_output(answer)

    def reset(self) -> None:
        self.resets += 1
        time.sleep(self.reset_s)

    def close(self) -> None:
        self.closes += 1
        time.sleep(self.close_s)

    @property
    def commands(self) -> list[str]:
        return [cmd for cmd, _stdin in self.calls]

    @property
    def stdin(self) -> list[bytes | None]:
        return [stdin for _cmd, stdin in self.calls]

    @property
    def requests(self) -> list[dict[str, t.Any]]:
        """The decoded request of every call, in order."""
        return [request_of(stdin or b'') for stdin in self.stdin]

    @property
    def actions(self) -> list[str]:
        return [request['action'] for request in self.requests]

    def request(self, index: int = 0) -> dict[str, t.Any]:
        return self.requests[index]


class FakeClock:
    """The clock of an action that waits (ActionModule.clock): sleeping only moves the time on, or raises ``fail_sleep``."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []
        self.fail_sleep: BaseException | None = None

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        failure = self.fail_sleep
        if failure is not None:
            raise failure
        self.time += seconds


def make_action(cls: type, connection: t.Any, args: dict[str, t.Any] | None = None, check_mode: bool = False) -> t.Any:
    """An action plugin instance as the task executor builds it, for secure_endpoint.tetra.<module name>."""
    task = MagicMock()
    task.args = args or {}
    task.check_mode = check_mode
    task.async_val = 0
    task.action = 'secure_endpoint.tetra.' + cls.__module__.rsplit('.', 1)[-1]
    action = cls(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    action._load_name = task.action  # set by the plugin loader in a real run; 2.18's argument validation reads it
    return action


def run_action(cls: type, connection: t.Any, args: dict[str, t.Any] | None = None, check_mode: bool = False,
               host: str = 'ep-1') -> dict[str, t.Any]:
    """One task of action plugin ``cls`` on inventory host ``host``; its result."""
    return make_action(cls, connection, args, check_mode).run(task_vars={'inventory_hostname': host})


@pytest.fixture(name='fake_connection')
def fake_connection_fixture() -> type[FakeConnection]:
    """FakeConnection, to build with the answers a test needs: ``fake_connection(document, AnsibleConnectionFailure(...))``."""
    return FakeConnection


@pytest.fixture(name='run_action')
def run_action_fixture() -> t.Callable[..., dict[str, t.Any]]:
    """run_action(cls, connection, args=None, check_mode=False, host='ep-1') -> the task result."""
    return run_action


@pytest.fixture(name='make_action')
def make_action_fixture() -> t.Callable[..., t.Any]:
    return make_action


@pytest.fixture(name='fake_clock')
def fake_clock_fixture() -> FakeClock:
    """A fresh FakeClock; a test module patches it in as its action's ``clock``."""
    return FakeClock()
