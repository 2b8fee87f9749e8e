# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._messages import resolve_msg
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import COMMON_SPEC, NETWORK_SPEC


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC)
    SECTIONS = ('system', 'dns')

    def build_result(self, args: dict[str, t.Any], facts: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        results = (facts.get('probes') or {}).get('dns') or []
        result = {
            'update_server': results[0]['name'] if results else None,
            'context': facts.get('context'),
            'dns_servers': (facts.get('system') or {}).get('dns_servers'),
            'results': results,
            'resolved': bool(results) and all(entry.get('ok') for entry in results),
            'failed_names': [entry.get('name') for entry in results if not entry.get('ok')],
        }
        result['msg'] = resolve_msg(result)
        return result
