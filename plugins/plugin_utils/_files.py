# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Files the controller writes (evidence, reports, bundle manifests): atomically, never through a planted link.

Kept apart from the report code so that the endpoint actions, which save evidence on every host, do not
import the report writers in each forked worker.
"""

from __future__ import annotations

import os
import tempfile


def _file_mode() -> int:
    """0o666 less the process umask: what open() would have given a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_file_atomic(path: str, data: str | bytes, mode: int | None = None) -> str:
    """Create or replace ``path`` atomically without following any planted link.

    The data goes to a new temporary file in the same folder, created by mkstemp (O_CREAT | O_EXCL |
    O_NOFOLLOW, random name, owner-only until complete), flushed, then renamed over ``path``: rename
    replaces a link at ``path`` itself, never its target, and readers see the old or the new file whole.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = data.encode('utf-8', 'backslashreplace') if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=folder)
    try:
        with os.fdopen(handle, 'wb') as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path
