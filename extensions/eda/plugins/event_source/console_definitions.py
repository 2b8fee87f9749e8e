# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Event source secure_endpoint.tetra.console_definitions (Event-Driven Ansible).

Polls the Secure Endpoint API v1 (GET /v1/computers) and puts one event on the queue per computer whose
TETRA definitions failed (console status) or are older than ``max_age_hours``. Each stale-definitions
episode of a computer (same connector GUID, same definitions version and update time) is emitted once:
what was emitted is kept in ``state_file`` (JSON, written atomically after every event), so a restart
does not emit it again; a computer that becomes current leaves the file, and its next failure is a new
event.

Arguments (the inventory plugin's names; secrets from the environment by default):

    url / region           API base URL, or nam | eu | apjc (SECURE_ENDPOINT_API_HOST / SECURE_ENDPOINT_REGION)
    client_id / api_key    SECURE_ENDPOINT_CLIENT_ID / SECURE_ENDPOINT_API_KEY; the key is never logged
    state_file             dedup state (default ~/.cache/secure_endpoint_tetra/console_definitions.json)
    interval               seconds between polls (default 300; the API allows 3,000 requests an hour)
    max_age_hours          definitions older than this are an event (default 24)
    console_groups, hostname_patterns, operating_systems (default ['Windows*']), query (JMESPath)
    ansible_host_preference  [hostname] by default, as the inventory plugin
    inventory_hostname     hostname | short_hostname | connector_guid (default hostname)
    page_size, timeout, validate_certs, ca_path, max_retries, max_wait
    once                   poll once and return (tests, cron-like runs)

Event:

    {"secure_endpoint": {"reason": "failed" | "aged", "hostname": ..., "inventory_hostname": ...,
                         "ansible_host": ..., "connector_guid": ..., "definitions": {...}, "last_seen": ...,
                         "tetra_console": {...the inventory plugin's host variable...}}}

Needs ansible-core (ansible.module_utils.urls) beside ansible-rulebook, and jmespath for ``query``.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import logging
import os
import sys
import tempfile
import typing as t

DOCUMENTATION = r'''
---
short_description: Secure Endpoint computers whose TETRA definitions failed or aged
description:
  - Polls the Secure Endpoint API v1 and emits one event per computer whose TETRA definitions failed or are older
    than O(max_age_hours), once per stale-definitions episode (deduplicated in O(state_file), restart-safe).
options:
  url:
    description: API base URL; overrides O(region). Default from C(SECURE_ENDPOINT_API_HOST).
    type: str
  region:
    description: nam, eu or apjc. Default from C(SECURE_ENDPOINT_REGION), else nam.
    type: str
  client_id:
    description: API client ID. Default from C(SECURE_ENDPOINT_CLIENT_ID).
    type: str
  api_key:
    description: API key. Default from C(SECURE_ENDPOINT_API_KEY). Never logged.
    type: str
  state_file:
    description: JSON file remembering what was emitted.
    type: str
  interval:
    description: Seconds between polls.
    type: int
    default: 300
  max_age_hours:
    description: Definitions older than this are an event.
    type: float
    default: 24
  once:
    description: Poll once, then stop.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: TETRA definitions that failed
  hosts: all
  sources:
    - secure_endpoint.tetra.console_definitions:
        region: eu
        interval: 600
        state_file: /var/lib/eda/tetra-console.json
'''

LOG = logging.getLogger('secure_endpoint.tetra.console_definitions')
DEFAULT_STATE_FILE = os.path.join(os.path.expanduser('~'), '.cache', 'secure_endpoint_tetra', 'console_definitions.json')


def _import_plugin_utils(name: str) -> t.Any:
    """A module of the collection's plugin_utils (_console, _console_api), also when ansible-rulebook runs this file
    outside an import path."""
    module = 'ansible_collections.secure_endpoint.tetra.plugins.plugin_utils.' + name
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    collection = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    namespace = os.path.dirname(collection)
    root = os.path.dirname(os.path.dirname(namespace))
    if os.path.basename(os.path.dirname(namespace)) == 'ansible_collections' and root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(module)


class DedupState:
    """connector GUID -> the episode already emitted ("version|updated_at"), kept in a JSON file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.emitted: dict[str, str] = {}
        try:
            with open(path, encoding='utf-8') as handle:
                data = json.load(handle)
            if isinstance(data, dict) and isinstance(data.get('emitted'), dict):
                self.emitted = {str(k): str(v) for k, v in data['emitted'].items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            LOG.warning('state file %s unreadable (%s): starting without it', path, exc)

    @staticmethod
    def episode(console: dict[str, t.Any]) -> str:
        definitions = console.get('definitions') or {}
        return '%s|%s' % (definitions.get('version'), definitions.get('updated_at'))

    def is_new(self, guid: str, episode: str) -> bool:
        return self.emitted.get(guid) != episode

    def mark(self, guid: str, episode: str) -> None:
        self.emitted[guid] = episode

    def forget_except(self, guids: set[str]) -> bool:
        """Drop computers that no longer need an event (current again); True when something changed."""
        stale = [g for g in self.emitted if g not in guids]
        for guid in stale:
            del self.emitted[guid]
        return bool(stale)

    def save(self) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix='.console_definitions.', dir=folder)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump({'format': 1, 'emitted': self.emitted}, handle, indent=1, sort_keys=True)
        os.replace(partial, self.path)


def _bool(value: t.Any) -> bool:
    """Booleans as rulebook variables give them: true/false, or the text of a template ("False")."""
    if isinstance(value, str):
        return value.strip().lower() in ('1', 'true', 'yes', 'on')
    return bool(value)


def _setting(args: dict[str, t.Any], name: str, env: str | None = None, default: t.Any = None) -> t.Any:
    value = args.get(name)
    if value in (None, '') and env:
        value = os.environ.get(env)
    return default if value in (None, '') else value


def poll(console_mod: t.Any, args: dict[str, t.Any], state: DedupState, now: datetime.datetime) -> list[tuple[str, str, dict[str, t.Any]]]:
    """One poll: (connector GUID, episode, event) for every computer that needs an event and was not emitted yet."""
    api_mod = _import_plugin_utils('_console_api')
    base = api_mod.api_url(_setting(args, 'url', 'SECURE_ENDPOINT_API_HOST'), _setting(args, 'region', 'SECURE_ENDPOINT_REGION', 'nam'))
    client = api_mod.ConsoleClient(
        base, _setting(args, 'client_id', 'SECURE_ENDPOINT_CLIENT_ID'), _setting(args, 'api_key', 'SECURE_ENDPOINT_API_KEY'),
        timeout=int(_setting(args, 'timeout', default=30)), validate_certs=_bool(_setting(args, 'validate_certs', default=True)),
        ca_path=_setting(args, 'ca_path'), max_retries=int(_setting(args, 'max_retries', default=3)),
        max_wait=float(_setting(args, 'max_wait', default=60)))
    records = list(client.computers(page_size=int(_setting(args, 'page_size', default=500))))
    records = console_mod.apply_query(records, _setting(args, 'query'))
    records = [r for r in records if console_mod.matches(r, _setting(args, 'hostname_patterns', default=[]),
                                                         _setting(args, 'operating_systems', default=['Windows*']),
                                                         _setting(args, 'console_groups', default=[]))]
    max_age = float(_setting(args, 'max_age_hours', default=24))
    preference = _setting(args, 'ansible_host_preference', default=['hostname'])
    naming = _setting(args, 'inventory_hostname', default='hostname')
    found: list[tuple[str, str, dict[str, t.Any]]] = []
    needing: set[str] = set()
    for record in records:
        state_view = console_mod.console_state(record, source=base)
        reason = console_mod.event_reason(state_view, now, max_age)
        guid = str(record.get('connector_guid') or record.get('hostname') or '')
        if not reason or not guid:
            continue
        needing.add(guid)
        episode = DedupState.episode(state_view)
        if not state.is_new(guid, episode):
            continue
        found.append((guid, episode, {'secure_endpoint': {
            'reason': reason,
            'hostname': record.get('hostname'),
            'inventory_hostname': _inventory_name(record, naming),
            'ansible_host': _ansible_host(record, preference),
            'connector_guid': record.get('connector_guid'),
            'definitions': state_view['definitions'],
            'last_seen': record.get('last_seen'),
            'tetra_console': state_view,
        }}))
    if state.forget_except(needing):
        state.save()
    return found


def _inventory_name(record: dict[str, t.Any], how: str) -> t.Any:
    if how == 'connector_guid':
        return record.get('connector_guid')
    name = record.get('hostname') or record.get('connector_guid')
    return str(name).split('.', 1)[0] if how == 'short_hostname' and name else name


def _ansible_host(record: dict[str, t.Any], preference: list[str]) -> t.Any:
    for source in preference:
        if source == 'hostname' and record.get('hostname'):
            return record['hostname']
        if source == 'internal_ip' and record.get('internal_ips'):
            return record['internal_ips'][0]
        if source == 'external_ip' and record.get('external_ip'):
            return record['external_ip']
        if source == 'network_address':
            for address in record.get('network_addresses') or []:
                if isinstance(address, dict) and address.get('ip'):
                    return address['ip']
    return None


async def main(queue: asyncio.Queue, args: dict[str, t.Any]) -> None:
    """The ansible-rulebook entry point."""
    console_mod = _import_plugin_utils('_console')
    state = DedupState(os.path.expanduser(str(_setting(args, 'state_file', default=DEFAULT_STATE_FILE))))
    interval = float(_setting(args, 'interval', default=300))
    once = _bool(_setting(args, 'once', default=False))
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            found = await asyncio.to_thread(poll, console_mod, args, state, now)
        except console_mod.ConsoleError as exc:
            if exc.status in (401, 403, 404) or once:
                raise
            LOG.warning('Secure Endpoint API poll failed, retrying in %.0f s: %s', interval, exc)
            found = []
        for guid, episode, event in found:
            await queue.put(event)
            state.mark(guid, episode)
            state.save()
        if once:
            return
        await asyncio.sleep(interval)


if __name__ == '__main__':
    # python console_definitions.py: one poll printed (credentials from the environment).

    class _PrintQueue:
        async def put(self, event: dict[str, t.Any]) -> None:
            print(json.dumps(event, sort_keys=True))

    asyncio.run(main(t.cast(asyncio.Queue, _PrintQueue()), {'once': True}))
