# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Base class for the collection's endpoint action plugins.

A subclass names its argument spec, the evidence sections it needs and how facts become its result;
this class validates arguments, makes the one endpoint call, parses the evidence, optionally stores
it, and turns every kind of failure into a clear task result.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import EVIDENCE_FORMAT, utc_now
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._evidence import EvidenceError, parse_evidence
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import MAX_OUTPUT_BYTES, EvidenceCall, RemoteError
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import REDACTED, redact, redact_text
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._files import write_file_atomic
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import build_request, max_answer_bytes

# redact() is the collection's one redaction (defined in _text.py, used by the endpoint call, which
# quotes endpoint output in its messages): XML elements, attributes and JSON forms, any case, cut text.
__all__ = ['REDACTED', 'TetraActionBase', 'evidence_file_name', 'redact', 'redact_text', 'save_evidence', 'utc_now']


def evidence_file_name(host: str) -> str:
    """The file name of a host's saved evidence: the inventory name when it is a safe file name as it is,
    else the cleaned name plus a short stable hash of the real name, so two hosts whose cleaned names collide
    (``ep/7`` and ``ep_7``, ``ep/7`` and ``ep:7``) never share a file. analyze.yml names the replay host from
    the record's ``host``, not from the file name."""
    name = re.sub(r'[^A-Za-z0-9_.-]', '_', host).strip('.') or 'endpoint'
    if name != host:
        name = '%s-%s' % (name, hashlib.sha256(host.encode('utf-8', 'surrogatepass')).hexdigest()[:8])
    return name + '.json'


def save_evidence(folder: str, host: str, request: dict[str, t.Any], document: dict[str, t.Any], **extra: t.Any) -> str:
    """Write one host's evidence where analyze.yml can replay it; returns the file path."""
    path = os.path.join(folder, evidence_file_name(host))
    record = redact(dict(extra, format=EVIDENCE_FORMAT, host=host, saved_at=utc_now(), request=request, evidence=document))
    # Lone surrogates from a hostile endpoint cannot be written as UTF-8: JSON escapes them (ensure_ascii).
    write_file_atomic(path, json.dumps(record, indent=1, sort_keys=True, default=str) + '\n')
    return path


class TetraActionBase(ActionBase):
    """One endpoint round trip: request -> evidence document -> facts -> result."""

    ARGUMENT_SPEC: dict[str, t.Any] = {}
    MUTUALLY_EXCLUSIVE: list[list[str]] = []
    ACTION = 'collect'
    SECTIONS: tuple[str, ...] = ()

    calls = 0
    # The size cap on each endpoint answer (max_answer_mb when the module has it).
    max_bytes = MAX_OUTPUT_BYTES
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC, mutually_exclusive=self.MUTUALLY_EXCLUSIVE)[1]
        result['changed'] = False
        try:
            if 'max_answer_mb' in self.ARGUMENT_SPEC:
                self.max_bytes = max_answer_bytes(args)
            result.update(self.run_action(args, task_vars))
        except ValueError as exc:
            raise AnsibleActionFail(to_text(exc)) from None
        except RemoteError as exc:
            result.update(exc.result)
        # Results are printed (-v) and registered: no password leaves the action, whatever form it came in.
        return t.cast(dict, redact(result))

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """Default flow: one collect call, then the subclass shapes the facts."""
        request = self.build_request(args)
        document, call = self.call_endpoint(request)
        evidence_path = self.store(args, task_vars, request, document)
        result = self.build_result(args, self.facts(document), task_vars)
        result['timings'] = {'endpoint_ms': document.get('duration_ms'), 'round_trip_ms': call.round_trip_ms, 'attempts': call.attempts}
        if evidence_path:
            result['evidence_path'] = evidence_path
        return result

    def build_request(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        return build_request(self.ACTION, self.SECTIONS, args)

    def call_endpoint(self, request: dict[str, t.Any]) -> tuple[dict[str, t.Any], EvidenceCall]:
        call = EvidenceCall(self._connection, request, max_bytes=self.max_bytes)
        return call.run(), call

    def call(self, request: dict[str, t.Any]) -> dict[str, t.Any]:
        """One endpoint call, counted in ``self.calls`` (modules that make several report it)."""
        self.calls += 1
        return self.call_endpoint(request)[0]

    @staticmethod
    def facts(document: dict[str, t.Any]) -> dict[str, t.Any]:
        """Parsed facts; a document that is not evidence is a failure of the call, quoting what came back."""
        try:
            return parse_evidence(document)
        except EvidenceError as exc:
            raise RemoteError('The endpoint answered with something that is not evidence: %s' % exc) from None

    def store(self, args: dict[str, t.Any], task_vars: dict[str, t.Any], request: dict[str, t.Any], document: dict[str, t.Any],
              **extra: t.Any) -> str | None:
        if not args.get('evidence_dir'):
            return None
        return save_evidence(args['evidence_dir'], self.host_name(task_vars), request, document, **extra)

    @staticmethod
    def host_name(task_vars: dict[str, t.Any]) -> str:
        return str(task_vars.get('inventory_hostname', 'endpoint'))

    def build_result(self, args: dict[str, t.Any], facts: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        raise NotImplementedError
