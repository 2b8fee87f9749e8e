# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Windows endpoint lab: simulated WinRM endpoints for tests, benchmarks and the demo (docs/lab.md)."""

from __future__ import annotations

from .lab import Lab, random_subnet

__all__ = ['Lab', 'random_subnet']
