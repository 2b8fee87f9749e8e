#!/usr/bin/env python
# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Let ``ansible-test sanity --venv`` run where only the package index is reachable.

Before it creates a virtual environment, ansible-test downloads a pip bootstrap script
(``get-pip-<version>.py``) from a CI file server into ``~/.ansible/test/cache/get_pip_<v>.py``.
That server is not reachable here, so this writes a stand-in at that path that bootstraps pip with
the interpreter's own ``ensurepip``; ansible-test then installs its pinned sanity requirements
from the package index as usual. A real cached script is never overwritten.

Run it with the Python of the virtual environment that holds ansible-test.
"""

from __future__ import annotations

import os
import re
import sys

STAND_IN = 'import ensurepip; ensurepip.bootstrap(upgrade=True)\n'


def pip_version() -> str:
    """The pip version the installed ansible-test bootstraps into its virtual environments."""
    import ansible_test  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
    with open(path, encoding='utf-8') as handle:
        match = re.search(r"\bpip='([0-9.]+)'", handle.read())
    if not match:
        raise SystemExit(f'cannot find the pip bootstrap version in {path}')
    return match.group(1)


def main() -> int:
    version = pip_version()
    cache = os.path.expanduser(f"~/.ansible/test/cache/get_pip_{version.replace('.', '_')}.py")
    if os.path.exists(cache):
        print(f'ansible-test pip {version} bootstrap already cached: {cache}')
        return 0
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, 'w', encoding='ascii') as handle:
        handle.write(STAND_IN)
    print(f'ansible-test pip {version} bootstrap: wrote ensurepip stand-in {cache}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
