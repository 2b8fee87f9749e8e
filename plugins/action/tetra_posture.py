# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._messages import posture_msg
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import COMMON_SPEC, POSTURE_SECTIONS


def posture_summary(facts: dict[str, t.Any]) -> dict[str, t.Any]:
    """The connector's state as the posture module returns it."""
    install = facts.get('install') or {}
    posture = facts.get('posture') or {}
    return {
        'installed': facts.get('installed', False),
        'connector_version': install.get('connector_version'),
        'tetra_version': facts.get('tetra_version'),
        'tetra_version_source': facts.get('tetra_version_source'),
        'agent_uuid': posture.get('agent_uuid') or (facts.get('local') or {}).get('agent_uuid'),
        'connected': posture.get('connected'),
        'service': install.get('service'),
        'host': facts.get('host'),
        'install': install,
        'posture': posture,
        'local': facts.get('local'),
        'policy': facts.get('policy'),
        'problems': facts.get('problems', []),
    }


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC)
    SECTIONS = POSTURE_SECTIONS

    def build_result(self, args: dict[str, t.Any], facts: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        result = posture_summary(facts)
        result['msg'] = posture_msg(result)
        return result
