# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Build evidence requests from validated module arguments.

Everything here is data: host names are checked against RFC 1123 before they go anywhere near an
endpoint, and even then they only travel inside the base64 request.
"""

from __future__ import annotations

import re
import typing as t

# Secure Endpoint public cloud TETRA hosts (Cisco doc 118121).
REGION_UPDATE_SERVERS = {
    'nam': 'tetra-defs.amp.cisco.com',
    'eu': 'tetra-defs.eu.amp.cisco.com',
    'apjc': 'tetra-defs.apjc.amp.cisco.com',
}
# Revocation hosts the seed names; the chain the endpoint receives may add others.
REVOCATION_HOSTS = ('commercial.ocsp.identrust.com', 'validation.identrust.com')
# Roots the connector needs in LocalMachine\Root (Cisco doc 216943).
REQUIRED_ROOTS = {'DF717EAA4AD94EC9558499602D48DE5FBCF03A25': 'IdenTrust Commercial Root CA 1'}

DEFAULT_TIMEOUTS = {'ampcli': 10, 'dns': 5, 'connect': 5, 'tls': 10, 'curl': 12, 'http': 5, 'proxy': 5}
POSTURE_SECTIONS = ('install', 'posture', 'files', 'system')
NETWORK_SECTIONS = ('dns', 'tls', 'curl', 'http', 'roots', 'proxy')

_HOSTNAME = re.compile(r'^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$')

TIMEOUTS_SPEC: dict[str, t.Any] = {
    'type': 'dict', 'default': {},
    'options': {name: {'type': 'int'} for name in DEFAULT_TIMEOUTS},
}
COMMON_SPEC: dict[str, t.Any] = {
    'evidence_dir': {'type': 'path'},
    'deadline': {'type': 'int', 'default': 40},
}
NETWORK_SPEC: dict[str, t.Any] = {
    'region': {'type': 'str', 'default': 'nam', 'choices': sorted(REGION_UPDATE_SERVERS)},
    'update_server': {'type': 'str'},
    'context': {'type': 'str', 'default': 'system', 'choices': ['system', 'user']},
    'concurrent': {'type': 'bool', 'default': True},
    'timeouts': TIMEOUTS_SPEC,
    'revocation_hosts': {'type': 'list', 'elements': 'str'},
    'proxy_server': {'type': 'str'},
    'proxy_port': {'type': 'int'},
}


def check_hostname(value: str, what: str) -> str:
    """The value when it is a valid DNS host name, else ValueError naming the option."""
    if not isinstance(value, str) or not _HOSTNAME.match(value):
        raise ValueError('%s must be a DNS host name (letters, digits, hyphens and dots), got %r' % (what, value))
    return value.rstrip('.').lower()


def update_server(args: dict[str, t.Any]) -> str:
    """The update server to probe: the user's choice, else the region's public TETRA host."""
    if args.get('update_server'):
        return check_hostname(args['update_server'], 'update_server')
    return REGION_UPDATE_SERVERS[args.get('region') or 'nam']


def timeouts(args: dict[str, t.Any]) -> dict[str, int]:
    chosen = {k: v for k, v in (args.get('timeouts') or {}).items() if v is not None}
    for name, value in chosen.items():
        if value <= 0:
            raise ValueError('timeouts.%s must be a positive number of seconds, got %r' % (name, value))
    return dict(DEFAULT_TIMEOUTS, **chosen)


def proxy(args: dict[str, t.Any]) -> dict[str, t.Any] | None:
    if not args.get('proxy_server'):
        return None
    port = args.get('proxy_port') or 80
    if not 0 < port < 65536:
        raise ValueError('proxy_port must be between 1 and 65535, got %r' % port)
    return {'server': check_hostname(args['proxy_server'], 'proxy_server'), 'port': port}


def build_request(action: str, sections: t.Iterable[str], args: dict[str, t.Any]) -> dict[str, t.Any]:
    """The request document for one call (docs/evidence.md)."""
    sections = list(sections)
    request: dict[str, t.Any] = {
        'action': action,
        'sections': sections,
        'deadline_s': args.get('deadline') or 40,
        'timeouts': timeouts(args),
        'context': args.get('context') or 'user',
        'concurrent': args.get('concurrent', True),
    }
    if any(s in NETWORK_SECTIONS for s in sections):
        server = update_server(args)
        revocation = [check_hostname(h, 'revocation_hosts') for h in (args.get('revocation_hosts') or REVOCATION_HOSTS)]
        request.update({
            'update_server': server,
            'dns_names': [server] + revocation,
            'http_urls': ['http://%s/' % h for h in revocation],
            'probe_chain_urls': True,
            'root_thumbprints': sorted(REQUIRED_ROOTS),
            'proxy': proxy(args),
        })
    return request
