# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Force a TETRA definitions update with the connector's own sfc.exe and prove what happened.

Call 1 reads the install and local.xml (before state) and decides on the controller whether the update
may run; call 2 runs ``"<versioned folder>\\sfc.exe" -forceupdate`` (the endpoint checks CompanyName
again); then cheap ``files``-only polls until the version advances, lasterror or the last-check time
changes, or ``timeout`` passes. At most ``timeout // poll_interval + 2`` calls in all.
"""

from __future__ import annotations

import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _remediation as rem
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import TetraActionBase
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import RemoteError
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import build_request

ARGUMENT_SPEC: dict[str, t.Any] = {
    'timeout': {'type': 'int', 'default': 300},
    'poll_interval': {'type': 'int', 'default': 5},
    'wait': {'type': 'bool', 'default': True},
    'deadline': {'type': 'int', 'default': 90},
}
BEFORE_SECTIONS = ('install', 'files')
POLL_SECTIONS = ('files',)


class ActionModule(TetraActionBase):

    ARGUMENT_SPEC = ARGUMENT_SPEC
    clock = rem.Clock()

    def run_action(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        if args['timeout'] < 0 or args['poll_interval'] < 1:
            raise ValueError('timeout must be >= 0 and poll_interval >= 1 (got %s and %s)' % (args['timeout'], args['poll_interval']))
        if args['deadline'] < 70:
            raise ValueError('deadline must be at least 70 seconds: the endpoint gives sfc.exe -forceupdate up to 60 s (got %s)' % args['deadline'])
        self.calls = 0
        document = self.call(build_request('collect', BEFORE_SECTIONS, args))
        facts = self.facts(document)
        before = rem.snapshot(facts)
        result: dict[str, t.Any] = {
            'changed': False, 'updated': False, 'refused': None,
            'connector_version': rem.connector_version(facts),
            'sfc_path': (facts.get('install') or {}).get('sfc_path'),
            'command': rem.forceupdate_command(facts),
            'version_before': before['tetra_version'], 'version_after': before['tetra_version'],
            'lasterror_before': before['lasterror'], 'lasterror': before['lasterror'],
            'last_check_before': before['last_check'], 'last_check': before['last_check'],
            'polls': 0, 'duration_s': 0.0,
        }
        refusal = rem.forceupdate_refusal(facts, rem.sfc_company(document))
        if refusal:
            result.update(refused=refusal[0], outcome='refused', msg=refusal[1], command=None, calls=self.calls)
            return result
        if self._task.check_mode:
            result.update(changed=True, outcome='check_mode', calls=self.calls, would_run=result['command'],
                          msg='Check mode: would run %s, then poll local.xml every %d s for up to %d s. Nothing was run.'
                          % (result['command'], args['poll_interval'], args['timeout']))
            return result
        return self.force(args, before, result)

    # ---- the forced update and the polls ----

    def force(self, args: dict[str, t.Any], before: dict[str, t.Any], result: dict[str, t.Any]) -> dict[str, t.Any]:
        started = self.clock.now()
        try:
            document = self.call(build_request('forceupdate', POLL_SECTIONS, args))
            run: dict[str, t.Any] = document['forceupdate'] if isinstance(document.get('forceupdate'), dict) else {}
            result['forceupdate'] = run
            stop = self.check_run(run, result)
            if stop:
                return dict(result, calls=self.calls, duration_s=self.elapsed(started))
            now = rem.snapshot(self.facts(document))
            outcome = rem.poll_outcome(before, now)
            if outcome is None and not args['wait']:
                outcome = 'not_waited'
            limit = rem.max_polls(args['timeout'], args['poll_interval'])
            while outcome is None and result['polls'] < limit:
                remaining = args['timeout'] - (self.clock.now() - started)
                if remaining <= 0:
                    break
                self.clock.sleep(min(args['poll_interval'], remaining))
                now = rem.snapshot(self.facts(self.call(build_request('collect', POLL_SECTIONS, args))))
                result['polls'] += 1
                outcome = rem.poll_outcome(before, now)
        except RemoteError as exc:
            # Keep what is known: the update may have run even though a later call failed.
            exc.result.update({k: v for k, v in result.items() if k not in exc.result}, calls=self.calls,
                              duration_s=self.elapsed(started))
            raise
        outcome = outcome or 'timeout'
        updated = outcome == 'version_advanced'
        result.update(outcome=outcome, updated=updated, changed=updated, calls=self.calls, duration_s=self.elapsed(started),
                      version_after=now['tetra_version'], lasterror=now['lasterror'], last_check=now['last_check'])
        result['msg'] = rem.OUTCOME_MESSAGES[outcome] % {
            'before': before['tetra_version'], 'after': now['tetra_version'], 'duration': result['duration_s'],
            'lasterror': rem.lasterror_text(now), 'last_check': now['last_check'], 'timeout': args['timeout']}
        return result

    def check_run(self, run: dict[str, t.Any], result: dict[str, t.Any]) -> bool:
        """True when there is nothing to poll for: the endpoint refused, or sfc.exe failed."""
        if run.get('refused'):
            code = str(run['refused'])
            result.update(refused=code, outcome='refused', command=None,
                          msg='The endpoint refused to run sfc.exe (%s): %s' % (code, rem.REFUSALS.get(code, code).replace('%s', 'sfc.exe')))
            return True
        if not run.get('ran'):
            raise RemoteError('The endpoint did not report running sfc.exe -forceupdate: %s' % (run or 'no forceupdate record'))
        if run.get('exit_code') is None:
            result.setdefault('warnings', []).append('%s did not return within the endpoint\'s 60 s limit and was stopped; '
                                                     'polling for the result anyway' % run.get('command'))
            return False
        if run.get('exit_code') != 0:
            result.update(failed=True, outcome='command_failed',
                          msg='%s exited with code %s; nothing to wait for' % (run.get('command'), run.get('exit_code')))
            return True
        return False

    # ---- helpers ----

    def elapsed(self, started: float) -> float:
        return round(self.clock.now() - started, 1)
