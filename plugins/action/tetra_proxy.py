# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._messages import proxy_msg
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import COMMON_SPEC, NETWORK_SPEC


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC)
    SECTIONS = ('files', 'system', 'proxy')

    def build_result(self, args: dict[str, t.Any], facts: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        local = facts.get('local') or {}
        policy = facts.get('policy') or {}
        system = facts.get('system') or {}
        probe = (facts.get('probes') or {}).get('proxy')
        result = {
            'context': facts.get('context'),
            'policy_proxy': policy.get('proxy'),
            'local_proxy': local.get('proxy'),
            'winhttp_proxy': system.get('winhttp_proxy'),
            'pac_url': system.get('pac_url'),
            'lasterror': local.get('lasterror'),
            'probe': probe,
            'configured': bool(policy.get('proxy') or local.get('proxy') or probe),
            'problems': facts.get('problems', []),
        }
        result['msg'] = proxy_msg(result)
        return result
