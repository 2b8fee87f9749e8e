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
