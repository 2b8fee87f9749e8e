# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._messages import tls_msg
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._diagnosis import check_interception, check_revocation, check_root_missing
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import COMMON_SPEC, NETWORK_SPEC


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC)
    SECTIONS = ('dns', 'tls', 'curl', 'http', 'roots')

    def build_result(self, args: dict[str, t.Any], facts: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        probes = facts.get('probes') or {}
        tls = probes.get('tls') or {}
        result = {
            'context': facts.get('context'),
            'tls': tls,
            'curl': probes.get('curl'),
            'revocation_hosts': probes.get('http') or [],
            'roots': probes.get('roots') or [],
            'dns': probes.get('dns') or [],
            'ok': bool(tls.get('handshake_ok')),
            'interception': check_interception(facts) or [],
            'revocation_problem': check_revocation(facts) or [],
            'missing_roots': check_root_missing(facts) or [],
        }
        result['msg'] = tls_msg(result)
        return result
