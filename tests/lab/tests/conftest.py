# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The lab's own tests use the same fixtures other test folders import."""

from __future__ import annotations

import os

from tests.lab.pytest_plugin import tetra_lab, tetra_lab_factory  # noqa: F401  pylint: disable=unused-import

# Realistic delays would make this suite take minutes: run the lab's own tests at 1/20 of lab time.
os.environ.setdefault('TETRA_LAB_TIME_SCALE', '0.05')
