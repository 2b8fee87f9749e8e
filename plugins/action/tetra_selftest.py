# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import decode_text
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import (
    EvidenceCall, RemoteError, parse_document,
)
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import COMMON_SPEC, NETWORK_SPEC
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._selftest import (
    ALL_SECTIONS, check_document, failed_rows, failure_message, format_table, summary,
)

DEFAULT_DIR = 'tetra-selftest'


class ActionModule(TetraActionBase):
    """One collect request with every section (tetra_diagnose's request), then the shape checks."""

    ARGUMENT_SPEC = dict(COMMON_SPEC, **NETWORK_SPEC, evidence_dir={'type': 'path', 'default': DEFAULT_DIR})
    SECTIONS = ALL_SECTIONS

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        host = self.host_name(task_vars)
        request = self.build_request(args)
        call = EvidenceCall(self._connection, request, max_bytes=self.max_bytes)
        # Raises RemoteError(unreachable) when the endpoint cannot be reached: nothing to check then.
        rc, stdout, stderr = call.exchange()
        extra: dict[str, t.Any] = {'selftest': True}
        try:
            document: t.Any = parse_document(rc, stdout, stderr, call.max_bytes)
        except RemoteError as exc:
            rows = [{'section': 'document', 'check': 'one JSON evidence object', 'ok': False, 'detail': exc.result['msg']}]
            # Stored the way tetra_diagnose stores it (analyze.yml replays it), plus everything that came back.
            document = {'invalid_output': exc.result}
            extra.update(raw_stdout=decode_text(stdout or b''), raw_stderr=decode_text(stderr or b''), rc=rc)
        else:
            rows = check_document(document, call.request)
        extra['checks'] = rows
        evidence_path = self.store(args, task_vars, call.request, document, **extra)
        failed = failed_rows(rows)
        result: dict[str, t.Any] = {
            'checks': rows,
            'table': format_table(rows),
            'summary': summary(rows),
            'failures': failed,
            'evidence_path': evidence_path,
            'timings': dict(call.timings(), endpoint_ms=document.get('duration_ms')),
        }
        if failed:
            result.update(failed=True, msg=failure_message(rows, host, evidence_path))
        else:
            result['msg'] = '%s: all %d self-test checks passed. Evidence saved to %s.' % (host, len(rows), evidence_path)
        return result
